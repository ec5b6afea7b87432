"""Excerpt loudness: stored 10 ms energies (ours) vs pyloudnorm on samples (peer) vs our direct
measurement on samples (direct). One run, same data.

    cd /work/main && python benchmarks/loudness.py

Data: a synthetic 3-min stereo 44.1 kHz track (noise + tones in sections from 0 to -40 dB and
silence, 20 ms ramps) and 200 random excerpts per length (random start frames, not on the
10 ms grid). Also a second track with abrupt (sample-exact) level steps, to show the worst
case of the 10 ms grid; the real MUSDB excerpt bundled with stempeg (its four stems, starts on
the 10 ms grid and off it); and the time of block_energies / stem_analysis (energies + zero-state
corrections, what the index stores) on a 5-minute stereo track.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import pyloudnorm as pyln

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stemforge.audio import loudness as L  # noqa: E402

SR = 44100


def track(rng: np.random.Generator, seconds: float, ramp: float) -> np.ndarray:
    """(2, T) float32: noise + two tones, sections at 0/-6/-12/-20/-40 dB or silence."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = rng.standard_normal((2, n)) + 2 * np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 3100 * t)
    env = np.empty(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.3, 3.0) * SR)
        env[pos:pos + length] = 10 ** (rng.choice([0.0, -6.0, -12.0, -20.0, -40.0, -300.0]) / 20)
        pos += length
    if ramp > 0:
        w = np.hanning(2 * int(ramp * SR) + 1)
        env = np.sqrt(np.convolve(env ** 2, w / w.sum(), mode="same"))
    return (0.25 * x / np.abs(x).max() * env).astype(np.float32)


def timed(fn, items, repeats: int = 3):
    """Results and the best (of ``repeats``) mean time per item: the machine is shared."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = [fn(*it) for it in items]
        best = min(best, (time.perf_counter() - t0) / len(items))
    return out, best


def errors(a, b):
    """(max abs LU difference where both are finite, p95, count > 0.05 LU, count where
    exactly one of the two is -inf)."""
    a, b = np.asarray(a), np.asarray(b)
    fin = np.isfinite(a) & np.isfinite(b)
    d = np.abs(a[fin] - b[fin])
    one_inf = int((np.isfinite(a) != np.isfinite(b)).sum())
    return float(d.max()), float(np.quantile(d, 0.95)), int((d > 0.05).sum()), one_inf


def real_stems():
    """The four stems of the real MUSDB excerpt bundled with stempeg: (name, (2, T) float32)."""
    import stempeg

    from stemforge.audio.io import read_streams

    streams = read_streams(stempeg.example_stem_path(), expected=5)
    return list(zip(("drums", "bass", "other", "vocals"), streams[1:]))


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    data = [(name, track(rng, 180.0, ramp), "random")
            for name, ramp in (("sections, 20 ms ramps", 0.02), ("sections, abrupt steps", 0.0))]
    for name, x in real_stems():
        data += [(f"MUSDB {name}, 10 ms grid", x, "grid"), (f"MUSDB {name}, off grid", x, "random")]
    for name, x, where in data:
        e, corr = L.stem_analysis(x, SR)
        for seconds in (5.0, 1.0, 0.5):
            n = int(seconds * SR)
            if where == "grid":  # 200 of the grid starts (all of them when there are fewer)
                cands = np.arange(0, x.shape[1] - n + 1, 441)
                starts = cands if len(cands) <= 200 else rng.choice(cands, 200, replace=False)
            else:
                starts = rng.integers(0, x.shape[1] - n, size=200)
            ex = [(int(s), n) for s in starts]
            ours, t_ours = timed(lambda s, f: L.excerpt_loudness(e, SR, s, f, corr), ex)
            meter = pyln.Meter(SR)
            peer, t_peer = timed(lambda s, f: meter.integrated_loudness(x[:, s:s + f].T), ex)
            direct, t_direct = timed(lambda s, f: L.integrated_loudness(x[:, s:s + f], SR), ex)
            rows.append((name, seconds, t_ours, t_peer, t_direct,
                         errors(ours, peer), errors(direct, peer)[0]))

    print(f"{'signal':28s} {'excerpt':>7s} {'ours us':>8s} {'pyln us':>8s} {'direct us':>9s} "
          f"{'speed-up':>8s} {'ours max dLU':>12s} {'p95 dLU':>8s} {'>0.05':>5s} {'1 -inf':>6s} "
          f"{'direct max dLU':>14s}")
    for name, sec, to, tp, td, (emax, ep95, nbig, ninf), ed in rows:
        print(f"{name:28s} {sec:6.1f}s {to * 1e6:8.1f} {tp * 1e6:8.1f} {td * 1e6:9.1f} "
              f"{tp / to:7.0f}x {emax:12.4f} {ep95:8.4f} {nbig:5d} {ninf:6d} {ed:14.2e}")
    print("(200 excerpts per row (5 s on the grid: every grid start); '>0.05': excerpts off by "
          "more than 0.05 LU; '1 -inf': excerpts where exactly one of ours/pyloudnorm is -inf)")

    x5 = track(np.random.default_rng(1), 300.0, 0.02)
    L.block_energies(x5[:, : SR], SR)  # warm-up
    t0 = time.perf_counter()
    L.block_energies(x5, SR)
    t_be = time.perf_counter() - t0
    t0 = time.perf_counter()
    L.stem_analysis(x5, SR)
    t_sa = time.perf_counter() - t0
    t0 = time.perf_counter()
    L.integrated_loudness(x5, SR)
    t_il = time.perf_counter() - t0
    t0 = time.perf_counter()
    pyln.Meter(SR).integrated_loudness(x5.T)
    t_pl = time.perf_counter() - t0
    print(f"\n5-min stereo 44.1 kHz track: block_energies {t_be * 1e3:.0f} ms, "
          f"stem_analysis {t_sa * 1e3:.0f} ms, integrated_loudness {t_il * 1e3:.0f} ms, "
          f"pyloudnorm {t_pl * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
