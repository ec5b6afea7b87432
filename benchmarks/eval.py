"""BSS Eval v4 speed and accuracy: museval 0.4.1 vs stemforge vs fast_bss_eval, same track.

Track: synthetic, 4 stereo sources (coloured noise with inter-channel correlation), 44.1 kHz,
estimates = scaled references + leakage + noise + a short FIR. One run of each.

    python benchmarks/eval.py [--seconds 22.5]

fast_bss_eval computes a DIFFERENT mode (bss_eval_sources-style SDR per channel over the whole
signal with per-call filters, no framing), so it is reported for speed only, not compared.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemforge.metrics import bss_eval_v4  # noqa: E402


def make_track(seconds: float, rng: np.random.Generator, nsrc: int = 4, sr: int = 44100):
    n = int(seconds * sr)
    refs = rng.standard_normal((nsrc, 2, n))
    for j in range(nsrc):
        refs[j] = lfilter([1.0], [1.0, -0.3 - 0.15 * j], refs[j], axis=-1)
        refs[j, 1] = 0.6 * refs[j, 1] + 0.4 * refs[j, 0]
    ests = 0.8 * refs + 0.15 * refs.sum(0)[None] + 0.05 * rng.standard_normal(refs.shape)
    return refs, lfilter([1.0, 0.2], [1.0], ests, axis=-1)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=22.5)
    args = ap.parse_args()
    refs, ests = make_track(args.seconds, np.random.default_rng(0))
    rows = []
    ours, t_ours = timed(lambda: bss_eval_v4(refs, ests))
    ours2, t_ours2 = timed(lambda: bss_eval_v4(refs, ests))
    import museval

    mv, t_mv = timed(lambda: museval.evaluate(refs.transpose(0, 2, 1), ests.transpose(0, 2, 1)))
    diff = max(
        float(np.nanmax(np.abs(a - b)))
        for a, b in zip((ours.sdr, ours.isr, ours.sir, ours.sar), mv)
    )
    rows.append(("museval 0.4.1 evaluate (v4)", t_mv, "reference"))
    rows.append(("stemforge bss_eval_v4 (1st call)", t_ours, f"max |diff| {diff:.2e} dB"))
    rows.append(("stemforge bss_eval_v4 (2nd call)", t_ours2, ""))
    try:
        import fast_bss_eval

        import torch

        # (channels, nsrc, samples): one 4-source problem per channel; torch backend (its NumPy
        # backend fails under NumPy 2's solve() broadcasting rules)
        r_t = torch.from_numpy(np.ascontiguousarray(refs.transpose(1, 0, 2)))
        e_t = torch.from_numpy(np.ascontiguousarray(ests.transpose(1, 0, 2)))
        _, t_fb = timed(lambda: fast_bss_eval.bss_eval_sources(r_t, e_t, compute_permutation=False))
        rows.append(("fast_bss_eval 0.1.4 bss_eval_sources (torch)", t_fb, "other mode: not comparable"))
    except ImportError:
        rows.append(("fast_bss_eval", float("nan"), "not installed"))
    n = refs.shape[-1]
    print(f"track: {args.seconds:.1f} s, 4 stereo sources, {ours.sdr.shape[1]} frames of 1 s")
    print(f"{'method':46s} {'time [s]':>9s} {'x real time':>12s} {'vs museval':>11s}  note")
    for name, t, note in rows:
        print(f"{name:46s} {t:9.3f} {n / 44100 / t:12.1f} {t_mv / t:10.1f}x  {note}")


if __name__ == "__main__":
    main()
