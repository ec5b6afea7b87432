"""Augmented mixing throughput: pitch/tempo on every stem, stemforge vs Scaper 1.6.5, one core.

Run from the repository root::

    bash benchmarks/peers/setup_scaper.sh          # once: Scaper 1.6.5 + numpy<2 in its own venv
    python benchmarks/augment.py [--quick] [--no-peer]

Workload (same for every row): the mixing benchmark's coherent 4-stem (vocals, drums, bass,
other) 5 s stereo 44.1 kHz mixtures with loudness gains (snr uniform(-5, 5) relative to ref_db
uniform(-30, -10), Scaper semantics) and fix_clipping, over the synthetic dataset of
``benchmarks/_data.py`` (20 tracks x 30 s), PLUS a pitch shift of uniform(-2, 2) semitones and a
tempo change of uniform(0.9, 1.1) on every stem, shared by the four stems of a mixture (as the
seed tutorial does). Loudness is measured after the pitch/tempo processing by both tools.

Rows (one process each, BLAS/OpenMP capped at 1 thread; pedalboard/Rubber Band and SoX run
single-threaded):

* stemforge ``hq``: ``pitch_tempo`` step, Rubber Band R3 (pedalboard), pitch and tempo
  independent.
* stemforge ``fast``: ``pitch_tempo`` step, Rubber Band R2 stretch + soxr tape speed change,
  same semantics as ``hq``.
* stemforge ``quick``: ``pitch_shift`` then ``time_stretch`` steps in ``quick`` mode, i.e. two
  tape speed changes, run as ONE soxr resampling by the product of the speeds (consecutive
  quick steps are fused): pitch and tempo move together (NOT independent: a different, cheaper
  effect than the rows above; see ``stemforge/augment/pitch.py``).
* stemforge ``quick, loudness: source``: the same two quick steps with the opt-in
  ``loudness: source``: the stem's loudness for its snr gain is taken from the index's stored
  K-weighted energies of the source span the tape output covers (no K-weighting filter at mix
  time) instead of being measured on the processed audio: an APPROXIMATION of the level
  (docs/augmentation.md gives its measured error), the audio effect is the same.
* stemforge ``quick, loudness: source, quality: LQ``: as above with soxr ``LQ`` tape
  resampling (16-bit, pass band to 80 % of Nyquist instead of HQ's 95 %).
* stemforge ``quick, one tape step`` (informative): only the ``pitch_shift`` quick step — one
  soxr speed change per stem, which already moves pitch AND tempo (by the same factor); this is
  what a tape-style augmentation costs when one speed change is all a recipe asks for.
* Scaper 1.6.5 default: ``pitch_shift`` + ``time_stretch`` through pyrubberband (the
  ``rubberband`` CLI, R2 engine, temp files), ``generate(fix_clipping=True)``.
* Scaper 1.6.5 ``quick_pitch_time=True``: SoX's quick ``pitch``/``tempo`` algorithms (pysox).
* floor: memmap slices at stemforge's drawn (track, start) read, ONE soxr speed change per stem
  (the minimum work any resampling pitch/tempo needs) and summed; no loudness, no gains.
* stemforge ``cached``: ``pitch_tempo`` step in ``mode: cached``: the same draws snapped to the
  grid ``--variant-grid`` (default ``semitones=-2,0,2 tempo=0.9,1,1.1``) and read from
  Rubber Band R3 variants pre-computed by ``prepare(index, variants=...)`` (HQ quality, pitch
  and tempo independent; loudness from the variants' stored energies, i.e. measured on the
  processed audio once, at prepare time). The variants are rendered for a SEPARATE, smaller
  dataset built by the same generator (``--variant-tracks`` x ``--variant-seconds``, default
  4 x 20 s) to bound the one-off cost; its precompute CPU time and storage are reported apart,
  with how many mixtures amortise them against Scaper quick. ``plain`` = the same recipe
  without augmentation on that dataset (what "cost ~ plain mixing" is compared with).

Timing: wall and CPU seconds (process + children: Scaper's rubberband/sox subprocesses are
counted) for the whole per-item work, after a warm-up item. Ratios are computed from CPU time
(the machine is shared; CPU time is what one core gives). Target (issue 4): stemforge's quick
mode >= 10x Scaper's quick-mode throughput.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _data  # noqa: E402
import mixing  # noqa: E402
from stemforge.mixing.mixer import Mixer  # noqa: E402

DURATION = mixing.DURATION
TARGETS = mixing.TARGETS
SEMITONES = ["uniform", -2, 2]
TEMPO = ["uniform", 0.9, 1.1]


def recipe(mode: str, grid: str | None = None) -> dict:
    """The mixing benchmark's recipe plus shared pitch/tempo on every stem in ``mode``."""
    if mode == "plain":
        return {**mixing.RECIPE, "name": "bench-augment-plain"}
    if mode == "cached":
        aug = [{"step": "pitch_tempo", "p": 1.0, "stems": "all", "shared": True,
                "semitones": SEMITONES, "tempo": TEMPO, "mode": "cached", "grid": grid}]
    elif mode == "quick1":  # informative: ONE tape step (pitch and tempo change together)
        aug = [{"step": "pitch_shift", "p": 1.0, "stems": "all", "shared": True,
                "semitones": SEMITONES, "mode": "quick"}]
    elif mode in ("quick", "quick_src", "quick_src_lq"):
        extra = {"loudness": "source"} if mode != "quick" else {}
        if mode == "quick_src_lq":
            extra["quality"] = "LQ"
        aug = [{"step": "pitch_shift", "p": 1.0, "stems": "all", "shared": True,
                "semitones": SEMITONES, "mode": "quick", **extra},
               {"step": "time_stretch", "p": 1.0, "stems": "all", "shared": True,
                "rate": TEMPO, "mode": "quick", **extra}]
    else:
        aug = [{"step": "pitch_tempo", "p": 1.0, "stems": "all", "shared": True,
                "semitones": SEMITONES, "tempo": TEMPO, "mode": mode}]
    return {**mixing.RECIPE, "name": f"bench-augment-{mode}", "augment": aug}


def _clock() -> tuple[float, float]:
    """(wall, CPU of this process + waited-for children) seconds; getrusage, not os.times'
    10 ms ticks."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def time_stemforge(mixer: Mixer, n: int) -> tuple[float, float]:
    """(wall, CPU) seconds for items 0..n-1 (draw + process + render), in batches of 64
    (``Mixer.mixtures``, as a loader or a stream asks for them)."""
    w0, c0 = _clock()
    for b0 in range(0, n, 64):
        mixer.mixtures(range(b0, min(b0 + 64, n)))
    w1, c1 = _clock()
    return w1 - w0, c1 - c0


def time_floor(index, mixer: Mixer, n: int) -> tuple[float, float]:
    """Memmap read + one soxr speed change per stem + sum, at stemforge's drawn slices."""
    import soxr

    frames = mixer.recipe.frames
    plan = []
    for i in range(n):
        spec = mixer.spec(i)
        # quick-mode specs: pitch_shift (tape by 2**(st/12)) then time_stretch (tape by rate);
        # the floor does the combined speed change in one resampling
        plan.append([(s.track, s.stem, s.start, s.source_frames,
                      2.0 ** (s.steps[0]["semitones"] / 12.0) * s.steps[1]["rate"])
                     for s in spec.sources])
    maps = {(t.id, s): index.cache.get(t.stems[s].key) for t in index.tracks for s in TARGETS}
    w0, c0 = _clock()
    for item in plan:
        mix = None
        for tid, stem, start, nsrc, speed in item:
            x = soxr.resample(maps[(tid, stem)][:, start:start + nsrc].T, 44100.0,
                              44100.0 / speed, quality="HQ")[:frames].T
            assert x.shape == (2, frames), x.shape
            mix = x.copy() if mix is None else mix + x
    w1, c1 = _clock()
    return w1 - w0, c1 - c0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="augmented mixing: stemforge vs Scaper")
    ap.add_argument("--n-hq", type=int, default=8, help="items, stemforge hq")
    ap.add_argument("--n-fast", type=int, default=16, help="items, stemforge fast")
    ap.add_argument("--n-quick", type=int, default=100, help="items, stemforge quick and floor")
    ap.add_argument("--n-peer", type=int, default=6, help="items, Scaper default (rubberband)")
    ap.add_argument("--n-peer-quick", type=int, default=20, help="items, Scaper quick (sox)")
    ap.add_argument("--quick", action="store_true", help="a quarter of every item count")
    ap.add_argument("--root", type=Path, default=_data.DEFAULT_ROOT, help="dataset directory")
    ap.add_argument("--venv", type=Path, default=None, help="Scaper peer venv")
    ap.add_argument("--no-peer", action="store_true", help="skip Scaper")
    ap.add_argument("--n-cached", type=int, default=200, help="items, stemforge cached and plain")
    ap.add_argument("--variant-root", type=Path, default=Path(str(_data.DEFAULT_ROOT) + "-variants"),
                    help="dataset directory for the cached row (its variants are stored there)")
    ap.add_argument("--variant-tracks", type=int, default=4)
    ap.add_argument("--variant-seconds", type=float, default=20.0)
    ap.add_argument("--variant-grid", default="semitones=-2,0,2 tempo=0.9,1,1.1")
    ap.add_argument("--only-cached", action="store_true",
                    help="only the cached/plain rows and the Scaper rows")
    a = ap.parse_args(argv)
    if a.quick:
        for k in ("n_hq", "n_fast", "n_quick", "n_peer", "n_peer_quick", "n_cached"):
            setattr(a, k, max(2, getattr(a, k) // 4))

    seconds = 30.0
    index = _data.build(a.root, 20, seconds)
    _data.warm_page_cache(a.root)
    rows = []
    mixers = {}
    pre = cached_rows(a, rows)
    modes = () if a.only_cached else (
        ("quick", a.n_quick), ("quick_src", a.n_quick), ("quick_src_lq", a.n_quick),
        ("quick1", a.n_quick), ("fast", a.n_fast), ("hq", a.n_hq))
    for mode, n in modes:
        mixer = mixers[mode] = Mixer(recipe(mode), index, seed=0)
        m = mixer.mixture(10_000)  # warm-up: imports, Rubber Band/soxr set-up
        assert m.mix.shape == (2, mixer.recipe.frames) and m.mix.dtype == np.float32
        assert all(s.steps for s in m.spec.sources)
        if mode == "quick1":
            assert all(len(s.steps) == 1 for s in m.spec.sources)
        w, c = time_stemforge(mixer, n)
        label = {"quick1": "stemforge quick, one tape step (pitch_shift only)",
                 "quick_src": "stemforge quick, loudness: source (approximate levels)",
                 "quick_src_lq": "stemforge quick, loudness: source, quality: LQ"}.get(
            mode, f"stemforge {mode}")
        rows.append({"name": label, "items": n, "seconds": w, "cpu_seconds": c,
                     "audio_seconds": n * DURATION})
        print(f"stemforge {mode} done", file=sys.stderr)
    if "quick" in mixers:
        time_floor(index, mixers["quick"], 2)
        w, c = time_floor(index, mixers["quick"], a.n_quick)
        rows.append({"name": "floor (memmap read + 1 soxr speed change per stem + sum)",
                     "items": a.n_quick, "seconds": w, "cpu_seconds": c,
                     "audio_seconds": a.n_quick * DURATION})
    peer_info = None
    if not a.no_peer:
        for quick, n, name in ((True, a.n_peer_quick, "Scaper 1.6.5 quick (sox)"),
                               (False, a.n_peer, "Scaper 1.6.5 default (rubberband)")):
            extra = ["--augment"] + (["--quick-pitch-time"] if quick else [])
            out = _data.run_scaper(a.root, n, a.venv, *extra, source_max=seconds - DURATION,
                                   timeout=1800)
            rows.append({"name": name, "items": n, "seconds": out["seconds"],
                         "cpu_seconds": out["cpu_seconds"], "audio_seconds": n * DURATION})
            peer_info = out
            print(f"{name} done", file=sys.stderr)

    print(f"\nAugmented mixing: coherent 4-stem {DURATION:g} s stereo 44.1 kHz, snr + ref_db "
          f"loudness gains, fix_clipping, shared pitch uniform(-2, 2) st + tempo "
          f"uniform(0.9, 1.1) on every stem; one core; one run")
    print(f"machine: {_data.machine()}")
    if peer_info:
        print(f"peer: {peer_info['tool']} (numpy {peer_info['numpy']})")
    print()
    print(cpu_table(rows, [("vs Scaper quick", "Scaper 1.6.5 quick (sox)"),
                           ("vs Scaper default", "Scaper 1.6.5 default (rubberband)"),
                           ("vs floor", "floor (memmap read + 1 soxr speed change per stem + sum)")]))
    print()
    print(pre["text"])
    by = {r["name"]: r for r in rows}
    quick = by.get("Scaper 1.6.5 quick (sox)")
    cached = by[CACHED]
    if quick:
        per_q = quick["cpu_seconds"] / quick["items"]
        per_c = cached["cpu_seconds"] / cached["items"]
        print(f"amortised against Scaper quick after {pre['cpu'] / (per_q - per_c):,.0f} mixtures "
              f"(precompute CPU / ({1000 * per_q:.1f} - {1000 * per_c:.1f}) ms saved per mixture)")
    return 0


CACHED = "stemforge cached (Rubber Band R3 variants, HQ)"


def cached_rows(a, rows: list[dict]) -> dict:
    """Prepare the variant dataset (timed: the one-off cost), then time the cached and plain
    rows on it. Appends to ``rows``; returns the precompute figures."""
    from stemforge.augment.grid import parse_grid
    from stemforge.prepare import prepare

    grid = parse_grid(a.variant_grid)
    vindex = _data.build(a.variant_root, a.variant_tracks, a.variant_seconds)
    record = a.variant_root / "variants-cost.json"  # the one-off cost, kept for later runs
    w0, c0 = _clock()
    st = prepare(vindex, workers=1, variants=grid)
    w1, c1 = _clock()
    if st.variants_written:
        cost = {"variants": st.variants_written, "wall": w1 - w0, "cpu": c1 - c0,
                "grid": grid.spec(), "machine": _data.machine()}
        record.write_text(json.dumps(cost) + "\n")
    else:
        cost = json.loads(record.read_text())
    stems = sum(len(t.stems) for t in vindex.tracks)
    stem_seconds = sum(t.duration * len(t.stems) for t in vindex.tracks)
    n_pts = len(grid.points())
    total_bytes = sum(f.stat().st_size for f in vindex.variants.folder.glob("*.npy"))
    per = cost["cpu"] / (cost["variants"] * stem_seconds / stems)
    text = (f"precompute (one-off{'' if st.variants_written else ', recorded by an earlier run'}): "
            f"{cost['variants']} variants ({stems} stems x {n_pts} points of {cost['grid']}, "
            f"{stem_seconds / stems:g} s each) in {cost['wall']:.1f} s wall, {cost['cpu']:.1f} s "
            f"CPU (one worker) = {1000 * per:.0f} ms CPU per stem-second per grid point; storage "
            f"{total_bytes / 1e9:.2f} GB for {stem_seconds:.0f} stem-seconds ({n_pts} x the plain "
            f"StemCache's float32, + energies)")
    _data.warm_page_cache(a.variant_root)  # stems and variants read once (cache/*.npy)
    for mode, label in (("cached", CACHED), ("plain", "stemforge plain mixing, no augmentation "
                                                      "(same dataset)")):
        mixer = Mixer(recipe(mode, a.variant_grid), vindex, seed=0)
        m = mixer.mixture(10_000)
        assert m.mix.shape == (2, mixer.recipe.frames)
        if mode == "cached":
            assert all(s.steps and s.steps[0]["mode"] == "cached" for s in m.spec.sources)
        w, c = time_stemforge(mixer, a.n_cached)
        rows.append({"name": label, "items": a.n_cached, "seconds": w, "cpu_seconds": c,
                     "audio_seconds": a.n_cached * DURATION})
        print(f"stemforge {mode} done", file=sys.stderr)
    return {"text": text, "cpu": cost["cpu"]}


def cpu_table(rows: list[dict], refs: list[tuple[str, str]]) -> str:
    """Markdown table with wall and CPU throughput; ratio columns from CPU throughput."""
    by = {r["name"]: r for r in rows}
    refs = [(lab, n) for lab, n in refs if n in by]

    def cpu_rate(r):
        return r["audio_seconds"] / r["cpu_seconds"] if r["cpu_seconds"] > 0 else float("nan")

    head = ("| | items | wall s | CPU s | CPU ms per item | audio-s per wall-s | "
            "audio-s per CPU-s |" + "".join(f" {lab} (CPU) |" for lab, _ in refs))
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(refs)]
    for r in rows:
        ratios = "".join(f" {_data._ratio(cpu_rate(r) / cpu_rate(by[n]))} |" for _, n in refs)
        lines.append(f"| {r['name']} | {r['items']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
                     f"{1000 * r['cpu_seconds'] / r['items']:.1f} | "
                     f"{r['audio_seconds'] / r['seconds']:,.1f} | {cpu_rate(r):,.1f} |" + ratios)
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
