"""``stemforge doctor``: speed of the full per-track check against a plain read of the same audio,
how fingerprint matching scales with the collection, and recall/precision on planted defects.

    python benchmarks/doctor.py [--tracks 4] [--seconds 60] [--repeat 3]
                                [--matching 1250,2500,5000,10000] [--planted DIR]

**Speed.** ``--tracks`` music-like four-stem tracks (``stemforge.doctor.songs``; stereo,
44.1 kHz, 16-bit WAV like MUSDB18-HQ: four stems and the mixture) are written once under
``--root``. Rows: a plain soundfile read of the five files into float32 (what a loader does),
the same read in the files' own int16 (how the doctor decodes), and the doctor's full check of
each track (``check_track``: decode, every per-track check and the fingerprints of the mixture
and each stem; matching across tracks is timed separately). Each row runs ``--repeat`` times,
interleaved; the best CPU time of this process is kept (the machine may be shared: the load
average is printed). "x realtime per core" = seconds of track audio per CPU second.

**Matching.** Fingerprints of N synthetic tracks (120 s each; peak lists drawn like music's:
partials of notes from a key on a beat grid plus drum hits, turned into the doctor's triplet
hashes), 1 % of them planted copies of others (40 % of peaks lost, a third moved by a frame,
an offset); ``fingerprint.match`` over all N (mixtures) against an all-pairs comparison
(vote counting for each pair, timed on 300 pairs and extrapolated to N(N-1)/2).

**Planted defects** (``--planted DIR``): the >= 40-track, >= 30-defect set of
``stemforge.doctor.planted`` (FULL_PLAN) is made in DIR (once), checked, and scored per kind.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemforge.doctor import fingerprint, frames, songs  # noqa: E402
from stemforge.doctor.track import check_track  # noqa: E402
from stemforge.layouts import musdb18hq  # noqa: E402

SR = 44100


def build(root: Path, tracks: int, seconds: float) -> list:
    mark = root / f"built-{tracks}x{seconds:g}"
    if not mark.exists():
        rng = np.random.default_rng(0)
        for k in range(tracks):
            d = root / "train" / f"Bench - {k:02d}"
            d.mkdir(parents=True, exist_ok=True)
            st = songs.song(rng, seconds, SR)
            for n, a in st.items():
                sf.write(str(d / f"{n}.wav"), a.T, SR, subtype="PCM_16")
            sf.write(str(d / "mixture.wav"), sum(st.values()).T, SR, subtype="PCM_16")
        mark.write_text("ok\n")
    return [e for e in musdb18hq.scan(root) if e.name.startswith("Bench")][:tracks]


def cpu(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.process_time() - c, time.perf_counter() - w


def speed(args) -> None:
    entries = build(Path(args.root), args.tracks, args.seconds)
    files = [r.path for e in entries for r in [*e.stems.values(), e.mixture]]
    audio_s = args.tracks * args.seconds
    rows = {
        "plain read, float32 (soundfile)":
            lambda: [sf.read(f, dtype="float32", always_2d=True) for f in files],
        "plain read, int16 (soundfile; the doctor's decode)":
            lambda: [sf.read(f, dtype="int16", always_2d=True) for f in files],
        "doctor full check (decode, all checks, 5 fingerprints)":
            lambda: [check_track(e, "bench") for e in entries],
    }
    check_track(entries[0], "bench")  # compile / warm the kernels and caches
    best = {k: (float("inf"), float("inf")) for k in rows}
    load0 = os.getloadavg()
    for _ in range(args.repeat):
        for k, fn in rows.items():
            c, w = cpu(fn)
            best[k] = (min(best[k][0], c), min(best[k][1], w))
    load1 = os.getloadavg()
    floor = best["plain read, float32 (soundfile)"][0]
    print(f"\n**Full check of a 4-stem track vs a plain read** ({args.tracks} tracks x "
          f"{args.seconds:g} s, stereo 44.1 kHz 16-bit WAV, 4 stems + mixture; best of "
          f"{args.repeat}; load average {load0[0]:.1f} at start, {load1[0]:.1f} at end)\n")
    print("| method | CPU s | wall s | CPU ms per track-second | x realtime per core | "
          "CPU vs float32 read |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, (c, w) in best.items():
        print(f"| {k} | {c:.3f} | {w:.3f} | {1e3 * c / audio_s:.2f} | {audio_s / c:.0f} | "
              f"{c / floor:.2f}x |")


# ---------------------------------------------------------------------------- matching
def synthetic_peaks(rng, seconds: float):
    """A peak list shaped like music's: partials of notes on a beat grid, drum hits."""
    fps = frames.FPS
    beat = 60 / rng.uniform(80, 140)
    root = 48 + rng.integers(0, 12)
    scale = (0, 2, 4, 5, 7, 9, 11) if rng.random() < 0.5 else (0, 2, 3, 5, 7, 8, 10)
    t, f = [], []
    step = beat / 2
    for i in range(int(seconds / step)):
        t0 = i * step
        for _ in range(rng.integers(1, 4)):
            m = root + scale[rng.integers(0, 7)] + 12 * rng.integers(-1, 2)
            f0 = 440 * 2 ** ((m - 69) / 12)
            for k in range(1, 7):
                if rng.random() < 0.5:
                    g = int(round(k * f0 / frames.GRID_STEP)) - 4
                    if 0 <= g < len(frames.GRID_HZ):
                        t.append(int((t0 + rng.uniform(0, step)) * fps))
                        f.append(g)
        if i % 2 == 0:  # a drum hit: broadband peaks
            for g in rng.choice(len(frames.GRID_HZ), 3, replace=False):
                t.append(int(t0 * fps))
                f.append(int(g))
    t, f = np.array(t), np.array(f)
    o = np.lexsort((f, t))
    t, f = t[o], f[o]
    keep = np.r_[True, (np.diff(t) != 0) | (np.diff(f) != 0)]
    t, f = t[keep], f[keep]
    # at most PEAKS_PER_SECOND per second, as the fingerprint keeps (here: a random choice)
    sec = t // fps
    order = np.lexsort((rng.random(len(t)), sec))
    first = np.searchsorted(sec[order], sec[order])
    sel = np.sort(order[(np.arange(len(t)) - first) < fingerprint.PEAKS_PER_SECOND])
    return t[sel].astype(np.int32), f[sel].astype(np.int32)


def make_prints(n: int, seconds: float, rng):
    prints, planted = [], []
    for i in range(n):
        if i >= 100 and i % 100 == 0:   # a copy of an earlier track: lossy, moved, offset
            j = int(rng.integers(0, i - 1))
            t, f = base[j]
            keep = rng.random(len(t)) > 0.4
            t2 = t[keep] + rng.integers(-1, 2, keep.sum()) * (rng.random(keep.sum()) < 0.33)
            off = int(rng.integers(0, 5 * frames.FPS))
            t2 = t2 - off
            ok = t2 >= 0
            t2, f2 = np.sort(t2[ok]).astype(np.int32), f[keep][ok][np.argsort(t2[ok], kind="stable")]
            planted.append((j, i))
            pk = (t2, f2)
        else:
            pk = synthetic_peaks(rng, seconds)
        base.append(pk)
        h, fr_ = fingerprint.triplets(*pk)
        prints.append(fingerprint.Fingerprint(h, fr_, int(seconds * frames.FPS)))
    return prints, planted


base: list = []


def pair_votes(a, b) -> int:
    """The all-pairs baseline: votes of the best offset between two fingerprints."""
    ha, ia = np.unique(a.hashes, return_inverse=True)
    common, xa, xb = np.intersect1d(a.hashes, b.hashes, return_indices=True)
    if not len(common):
        return 0
    offs = []
    for h in common:
        fa = a.frames[a.hashes == h]
        fb = b.frames[b.hashes == h]
        offs.append((fb[None, :] - fa[:, None]).ravel())
    o = np.concatenate(offs)
    return int(np.bincount(o - o.min()).max())


def matching(args) -> None:
    sizes = [int(x) for x in args.matching.split(",") if x]
    print(f"\n**Fingerprint matching: inverted index vs all pairs** (synthetic 120 s tracks, "
          f"1 % planted copies; load average {os.getloadavg()[0]:.1f})\n")
    print("| tracks | landmarks | match CPU s | copies found | all pairs (extrapolated) CPU s |"
          " all pairs / index |")
    print("|---:|---:|---:|---:|---:|---:|")
    prev = None
    for n in sizes:
        base.clear()
        rng = np.random.default_rng(n)
        prints, planted = make_prints(n, 120.0, rng)
        c, _ = cpu(lambda: matching.out.append(fingerprint.match(prints, min_coverage=0.5)))
        found = {(m.a, m.b) for m in matching.out.pop()}
        hit = sum(1 for p in planted if p in found)
        r = np.random.default_rng(1)
        pairs = [tuple(r.choice(n, 2, replace=False)) for _ in range(300)]
        pc, _ = cpu(lambda: [pair_votes(prints[i], prints[j]) for i, j in pairs])
        allpairs = pc / len(pairs) * n * (n - 1) / 2
        lm = sum(len(p.hashes) for p in prints)
        grow = f" ({c / prev:.1f}x the previous)" if prev else ""
        prev = c
        print(f"| {n} | {lm / 1e6:.1f} M | {c:.2f}{grow} | {hit} / {len(planted)} | "
              f"{allpairs:.0f} | {allpairs / c:.0f}x |")


matching.out = []


def planted_table(args) -> None:
    from stemforge.doctor import planted as P
    from stemforge.doctor.datasets import resolve
    from stemforge.doctor.run import run_doctor

    root = Path(args.planted)
    if not (root / "planted.json").exists():
        t = time.perf_counter()
        P.make_planted(root, seed=args.seed)
        print(f"made {root} in {time.perf_counter() - t:.0f} s")
    ps = P.PlantedSet.load(root)
    refs = [resolve(r, name=n) for n, r in ps.datasets]
    c, w = cpu(lambda: planted_table.out.append(run_doctor(refs, out=root / "doctor")))
    report = planted_table.out.pop()
    rows, on_clean = P.score(report, ps)
    secs = sum(d["seconds"] for d in report.datasets)
    print(f"\n**Planted defects** ({len(ps.tracks)} tracks, {secs / 60:.1f} min, "
          f"{len(ps.defects)} defects, seed {args.seed}; checked in {w:.1f} s wall, "
          f"{c:.1f} s CPU, load average {os.getloadavg()[0]:.1f})\n")
    print(P.score_table(rows))
    print(f"\nfindings above info on the {len(ps.tracks) - len(ps.involved())} clean tracks: "
          f"{len(on_clean)}")


planted_table.out = []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.environ.get("STEMFORGE_BENCH_DATA",
                                                     "/tmp/stemforge-doctor-bench"))
    ap.add_argument("--tracks", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--matching", default="1250,2500,5000,10000",
                    help="collection sizes for the matching table ('' to skip)")
    ap.add_argument("--planted", metavar="DIR", help="also score the full planted set in DIR")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    if not args.skip_speed:
        speed(args)
    if args.matching:
        matching(args)
    if args.planted:
        planted_table(args)


if __name__ == "__main__":
    main()
