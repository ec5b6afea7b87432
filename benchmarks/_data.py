"""Shared synthetic multitrack dataset for the side-by-side benchmarks (stemforge vs Scaper).

``build(root, tracks=20, seconds=30)`` writes, once (reused when ``<root>/dataset.json`` matches):

* a MUSDB18-HQ-style tree for stemforge: ``<root>/train/<track>/{drums,bass,other,vocals}.wav``
  (stereo, 44.1 kHz, 16-bit PCM like MUSDB18-HQ);
* Scaper foreground folders over the same files: ``<root>/fg/<label>/<track>.wav`` (symlinks)
  and an empty background folder ``<root>/bg/`` (Scaper requires a bg path);
* stemforge's index and StemCache (int16 memmaps of the 16-bit PCM) in ``<root>/cache`` via
  ``Index.build(root, cache_dir=...)`` and ``prepare(index)``.

Two styles (``style=``):

* ``synthetic`` (default, ``<root>`` = ``$STEMFORGE_BENCH_DATA`` or /tmp/stemforge-bench-data):
  each stem is distinct: drums = decaying noise bursts on a beat grid, bass = low sine with a
  harmonic, other = a three-note chord, vocals = a vibrato tone; each has a little noise, its
  own per-track pitch/tempo, and silent gaps (whole seconds zeroed), so loudness and silence
  handling both have something to do.
* ``sustained`` (default root ``<that>-sustained``): clipping-prone sustained music, as real
  instrument recordings are and the synthetic style is not: dense chords (4-6 notes of
  harmonic-rich tones) held for 1.5-4 s with soft attacks, long bass notes, a legato
  vibrato-and-formant melody, dense drums (kick, snare and hats on eighths), every stem loud
  (peaks near full scale) with short rests only. Its peak envelopes are flat (every block
  close to the peak), so the renderer's envelope bound settles fewer items, and with the
  mixing benchmark's recipe 30 % or more of the items clip under ``fix_clipping``
  (``benchmarks/mixing.py`` prints the share).

Randomness: ``SeedSequence([seed, track])``.

Command line (to pre-build or inspect)::

    python benchmarks/_data.py --root /tmp/stemforge-bench-data [--tracks 20] [--seconds 30]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR = 44100
STEMS = ("drums", "bass", "other", "vocals")
DEFAULT_ROOT = Path(os.environ.get("STEMFORGE_BENCH_DATA", "/tmp/stemforge-bench-data"))


def _stem(name: str, rng: np.random.Generator, frames: int) -> np.ndarray:
    """One synthetic stem: float32 ``(2, frames)``, peak well below 1."""
    t = np.arange(frames, dtype=np.float64) / SR
    if name == "drums":
        bpm = rng.uniform(90, 140)
        beat = 60.0 / bpm
        phase = (t % beat) / beat
        env = np.exp(-30.0 * phase * beat)
        x = env * rng.standard_normal(frames) * 0.3
        x += 0.4 * env * np.sin(2 * np.pi * 60 * t)  # kick body
    elif name == "bass":
        f = rng.uniform(41, 82)
        x = 0.35 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(2 * np.pi * 2 * f * t)
    elif name == "other":
        f = rng.uniform(196, 392)
        x = sum(0.12 * np.sin(2 * np.pi * f * r * t + rng.uniform(0, 6.28))
                for r in (1.0, 1.26, 1.5))
    else:  # vocals
        f = rng.uniform(220, 660)
        vib = 0.01 * np.sin(2 * np.pi * 5.5 * t)
        x = 0.3 * np.sin(2 * np.pi * f * np.cumsum(1 + vib) / SR)
    x = x + 0.01 * rng.standard_normal(frames)
    # silent gaps: a few whole seconds zeroed
    secs = frames // SR
    for s in rng.choice(secs, size=max(1, secs // 6), replace=False):
        x[s * SR:(s + 1) * SR] = 0.0
    pan = rng.uniform(0.35, 0.65)
    out = np.stack([x * (1 - pan) * 2, x * pan * 2]) * rng.uniform(0.3, 1.0)
    return np.clip(out, -0.99, 0.99).astype(np.float32)


def _tone(f: np.ndarray | float, t: np.ndarray, harmonics: int, tilt: float,
          phase: float = 0.0) -> np.ndarray:
    """A harmonic-rich tone of (instantaneous) frequency ``f`` Hz: ``harmonics`` partials with
    amplitudes ``k ** -tilt`` (below Nyquist), normalised to peak ~1."""
    ph = 2 * np.pi * (np.cumsum(np.broadcast_to(f, t.shape)) / SR) + phase
    x = np.zeros_like(t)
    fmax = float(np.max(f))
    for k in range(1, harmonics + 1):
        if k * fmax < SR / 2 - 1000:
            x += k ** -tilt * np.sin(k * ph)
    return x / (np.max(np.abs(x)) + 1e-9)


def _notes(rng: np.random.Generator, frames: int, lo: float, hi: float):
    """(start, end) frame spans of held notes of ``lo``-``hi`` seconds, back to back with
    short rests (50-250 ms) between some of them."""
    spans, pos = [], 0
    while pos < frames:
        n = int(rng.uniform(lo, hi) * SR)
        spans.append((pos, min(frames, pos + n)))
        pos += n + (int(rng.uniform(0.05, 0.25) * SR) if rng.random() < 0.3 else 0)
    return spans


def _envelope(n: int, attack: float, release: float) -> np.ndarray:
    """Soft attack and release (seconds) over a held note of ``n`` frames."""
    e = np.ones(n)
    a, r = min(n // 2, int(attack * SR)), min(n // 2, int(release * SR))
    if a:
        e[:a] = np.linspace(0.0, 1.0, a)
    if r:
        e[n - r:] = np.linspace(1.0, 0.0, r)
    return e


def _sustained_stem(name: str, rng: np.random.Generator, frames: int) -> np.ndarray:
    """One stem of the ``sustained`` style: float32 ``(2, frames)``, peak ~0.9-0.99."""
    t = np.arange(frames, dtype=np.float64) / SR
    x = np.zeros(frames)
    key = rng.uniform(0, 12)
    midi = lambda m: 440.0 * 2 ** ((m + key - 69) / 12)  # noqa: E731
    if name == "drums":
        bpm = rng.uniform(100, 150)
        eighth = 30.0 / bpm
        for k in range(int(frames / SR / eighth)):
            s0 = int(k * eighth * SR)
            n = min(frames - s0, int(0.25 * SR))
            tt = np.arange(n) / SR
            hit = 0.35 * rng.standard_normal(n) * np.exp(-tt * 60)  # hat
            if k % 4 == 0:
                hit += 0.9 * np.sin(2 * np.pi * (50 + 80 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 8)
            if k % 4 == 2:
                hit += 0.6 * rng.standard_normal(n) * np.exp(-tt * 18)
            x[s0:s0 + n] += hit
    elif name == "bass":
        for a, b in _notes(rng, frames, 1.0, 3.0):
            f = midi(rng.integers(28, 43))
            x[a:b] = _tone(f, t[a:b], 8, 1.2, rng.uniform(0, 6.28)) * _envelope(b - a, 0.01, 0.05)
    elif name == "other":
        for a, b in _notes(rng, frames, 1.5, 4.0):
            root_note = rng.integers(48, 60)
            chord = root_note + np.array(sorted(rng.choice([0, 3, 4, 7, 10, 11, 12, 14, 16, 19],
                                                           size=rng.integers(4, 7),
                                                           replace=False)))
            seg = sum(_tone(midi(m) * (1 + rng.uniform(-0.002, 0.002)), t[a:b], 12, 1.0,
                            rng.uniform(0, 6.28)) for m in chord)
            x[a:b] = seg * _envelope(b - a, 0.15, 0.3)
    else:  # vocals: legato melody with vibrato and a formant-ish spectrum
        for a, b in _notes(rng, frames, 0.6, 2.5):
            f = midi(rng.integers(57, 74)) * (1 + 0.012 * np.sin(2 * np.pi * 5.5 * t[a:b]))
            x[a:b] = _tone(f, t[a:b], 16, 0.7, rng.uniform(0, 6.28)) * _envelope(b - a, 0.04, 0.1)
    x = x + 0.003 * rng.standard_normal(frames)
    pan = rng.uniform(0.35, 0.65)
    out = np.stack([x * (1 - pan) * 2, x * pan * 2])
    out *= rng.uniform(0.9, 0.99) / (np.max(np.abs(out)) + 1e-9)  # loud: peak near full scale
    return out.astype(np.float32)


STYLES = {"synthetic": _stem, "sustained": _sustained_stem}


def default_root(style: str = "synthetic") -> Path:
    """Where a style's dataset lives by default."""
    return DEFAULT_ROOT if style == "synthetic" else DEFAULT_ROOT.with_name(
        f"{DEFAULT_ROOT.name}-{style}")


def build(root: Path = DEFAULT_ROOT, tracks: int = 20, seconds: float = 30.0, seed: int = 0,
          verbose: bool = True, style: str = "synthetic"):
    """Write (or reuse) the dataset of ``style`` (see the module docstring) under ``root``;
    return the prepared stemforge ``Index``."""
    from stemforge.index import Index
    from stemforge.prepare import prepare

    root = Path(root)
    meta = {"tracks": tracks, "seconds": seconds, "seed": seed, "sample_rate": SR,
            "stems": list(STEMS), "format": "bench-data/1"}
    if style != "synthetic":  # the synthetic stamp stays as it was: existing sets are reused
        meta["style"] = style
    make = STYLES[style]
    stamp = root / "dataset.json"
    t0 = time.perf_counter()
    if not (stamp.is_file() and json.loads(stamp.read_text()) == meta):
        frames = int(round(seconds * SR))
        for i in range(tracks):
            name = f"track{i:03d}"
            tdir = root / "train" / name
            tdir.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
            for s in STEMS:
                sf.write(tdir / f"{s}.wav", make(s, rng, frames).T, SR, subtype="PCM_16")
                link = root / "fg" / s / f"{name}.wav"
                link.parent.mkdir(parents=True, exist_ok=True)
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(tdir / f"{s}.wav")
        (root / "bg").mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(meta))
    index = Index.build(root, cache_dir=root / "cache")
    prepare(index)
    if verbose:
        print(f"dataset ({style}): {len(index)} tracks x {seconds:g} s x {len(STEMS)} stereo stems at "
              f"{SR} Hz in {root} (ready in {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return index


def track_names(index) -> list[str]:
    return [t.id for t in index.tracks]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--tracks", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--style", choices=sorted(STYLES), default="synthetic")
    a = ap.parse_args(argv)
    idx = build(a.root, a.tracks, a.seconds, style=a.style)
    print(idx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ---------------------------------------------------------------------- shared bench helpers
def warm_page_cache(root: Path = DEFAULT_ROOT) -> int:
    """Read every dataset and cache file once so no tool pays first-touch disk reads.
    Returns bytes read."""
    total = 0
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and not p.is_symlink() and p.suffix in (".wav", ".npy"):
            with open(p, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    total += len(chunk)
    return total


def single_thread_env() -> None:
    """One core: cap BLAS/OpenMP pools (call before importing numpy-heavy modules)."""
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        os.environ[v] = "1"


def default_venv() -> Path:
    return Path(os.environ.get("STEMFORGE_PEERS_DIR", "/tmp/stemforge-peers")) / "scaper-venv"


def run_scaper(root: Path, n: int, venv: Path | None = None, *extra: str,
               source_max: float | None = None, timeout: float = 600) -> dict:
    """Run ``benchmarks/peers/scaper_run.py`` in the peer venv; its JSON timings as a dict.

    Raises SystemExit with setup instructions when the venv is missing."""
    import subprocess

    venv = Path(venv or default_venv())
    py = venv / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"Scaper peer venv not found at {venv}; create it with "
                         f"`bash benchmarks/peers/setup_scaper.sh {venv}` (or pass --no-peer)")
    script = Path(__file__).resolve().parent / "peers" / "scaper_run.py"
    cmd = [str(py), str(script), "--json", "--fg", str(Path(root) / "fg"),
           "--bg", str(Path(root) / "bg"), "--n", str(n), *extra]
    if source_max is not None:
        cmd += ["--source-max", f"{source_max:g}"]
    env = {**os.environ}
    env.pop("PYTHONPATH", None)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(rows: list[dict], refs: list[tuple[str, str]]) -> str:
    """Markdown table: name, items, seconds, audio-s per s, then one ratio column per
    ``(column label, reference row name)`` in ``refs`` (throughput of the row / of the reference).

    ``rows``: dicts with ``name``, ``items``, ``seconds`` (wall), ``audio_seconds`` and
    optionally ``cpu_seconds`` (process + children CPU time: robust on a shared machine); when
    every row has it, CPU throughput and the same ratios computed from CPU time follow."""
    by = {r["name"]: r for r in rows}

    def rate(r):
        return r["audio_seconds"] / r["seconds"] if r["seconds"] > 0 else float("nan")

    def cpu_rate(r):
        c = r.get("cpu_seconds")
        return r["audio_seconds"] / c if c else float("nan")

    refs = [(label, name) for label, name in refs if name in by]
    with_cpu = all(r.get("cpu_seconds") for r in rows)
    head = "| | items | seconds | audio-s per s |" + "".join(f" {lab} |" for lab, _ in refs)
    head += " CPU-s per item |"
    if with_cpu:  # ratios of CPU throughput: what one core gives, robust on a loaded machine
        head += " audio-s per CPU-s |" + "".join(f" {lab} (CPU) |" for lab, _ in refs)
    ncol = 2 * len(refs) + 2 if with_cpu else len(refs) + 1
    lines = [head, "|---|---:|---:|---:|" + "---:|" * ncol]
    for r in rows:
        ratios = "".join(f" {_ratio(rate(r) / rate(by[n]))} |" for _, n in refs)
        line = (f"| {r['name']} | {r['items']} | {r['seconds']:.3f} | {rate(r):,.1f} |"
                + ratios + f" {_cpu(r)} |")
        if with_cpu:
            line += f" {cpu_rate(r):,.1f} |" + "".join(
                f" {_ratio(cpu_rate(r) / cpu_rate(by[n]))} |" for _, n in refs)
        lines.append(line)
    return "\n".join(lines)


def _cpu(r: dict) -> str:
    c = r.get("cpu_seconds")
    return "-" if c is None else f"{1000 * c / r['items']:.2f} ms"


def _ratio(x: float) -> str:
    return f"{x:.2g}x" if x < 1 else f"{x:.1f}x" if x < 100 else f"{x:.0f}x"


def machine() -> str:
    import platform
    import subprocess

    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((l.split(":", 1)[1].strip() for l in out.splitlines()
                      if l.startswith("Model name")), "")
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{model or platform.processor()} ({platform.machine()}), {os.cpu_count()} cores, "
            f"load avg {load:.2f}, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}")
