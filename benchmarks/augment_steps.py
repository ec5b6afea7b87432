"""Micro-benchmark: cost of each augmentation step on 5 s of stereo 44.1 kHz audio.

Run from the repository root::

    python benchmarks/augment_steps.py [--repeat 3]

For every registered step: median wall time of ``apply_steps`` (ms per call, one core: pedalboard
and Rubber Band run single-threaded here). Pitch/tempo rows also show the peer the seed's tool
chain uses: the ``rubberband`` CLI (what pyrubberband, hence Scaper's HQ path, spawns; temp WAV
in/out included, as pyrubberband does) and SoX's ``pitch``/``tempo`` effects (pysox's path).
The floor row is one ``np.copy`` of the buffer. Needs Debian ``rubberband-cli`` and ``sox`` for
the peer columns (rows print "n/a" otherwise). Takes well under 2 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemforge.augment import apply_steps, names, parse_chain, source_frames  # noqa: E402

SR, SECONDS = 44100, 5
OUT = SR * SECONDS

PITCH_TEMPO = [
    ("pitch_shift", {"semitones": 1.5}, ["-p", "1.5"], ["pitch", "150"]),
    ("time_stretch", {"rate": 1.08}, ["-T", "1.08"], ["tempo", "1.08"]),
    ("pitch_tempo", {"semitones": 1.5, "tempo": 1.08}, ["-p", "1.5", "-T", "1.08"],
     ["pitch", "150", "tempo", "1.08"]),
]


def timed(fn, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1000 * float(np.median(ts))


def signal(frames):
    """Music-like test signal: decaying harmonic notes plus a little noise, stereo."""
    rng = np.random.default_rng(0)
    t = np.arange(frames) / SR
    x = np.zeros((2, frames))
    for k, f in enumerate((110, 165, 220, 330, 440, 660)):
        env = np.exp(-3 * ((t + 0.3 * k) % 0.5))
        x[0] += 0.1 * env * np.sin(2 * np.pi * f * t)
        x[1] += 0.1 * env * np.sin(2 * np.pi * f * 1.003 * t + k)
    x += 0.01 * rng.standard_normal(x.shape)
    return x.astype(np.float32)


def cli(cmd, x, tmp):
    """Run a file-to-file CLI the way pyrubberband/pysox do (write WAV, run, read WAV)."""
    src, dst = os.path.join(tmp, "in.wav"), os.path.join(tmp, "out.wav")

    def run():
        sf.write(src, x.T, SR, subtype="FLOAT")
        subprocess.run(cmd(src, dst), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return sf.read(dst, dtype="float32")

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    ctx = {"sample_rate": SR, "channels": 2, "mode": "incoherent", "shared": {}}
    rows = []
    base = signal(OUT + 2 * SR)  # enough for every step's source_frames
    floor = timed(lambda: np.copy(base[:, :OUT]), max(args.repeat, 10))
    rows.append(("floor: np.copy", "", floor, "", None))

    skip = {p[0] for p in PITCH_TEMPO}
    for name in names():
        if name in skip:
            continue
        steps = parse_chain([{"step": name}], sample_rate=SR).draw(np.random.default_rng(0),
                                                                   "s", ctx)
        x = np.ascontiguousarray(base[:, : source_frames(steps, OUT)])
        rows.append((name, "", timed(lambda: apply_steps(x, SR, steps, OUT), args.repeat), "", None))

    have_rb, have_sox = shutil.which("rubberband"), shutil.which("sox")
    with tempfile.TemporaryDirectory() as tmp:
        for name, params, rb_args, sox_args in PITCH_TEMPO:
            for mode in ("hq", "fast", "quick"):
                if name == "pitch_tempo" and mode == "quick":
                    continue
                steps = [{"step": name, **params, "mode": mode}]
                x = np.ascontiguousarray(base[:, : source_frames(steps, OUT)])
                ours = timed(lambda: apply_steps(x, SR, steps, OUT), args.repeat)
                peer, peer_ms = "", None
                x5 = base[:, :OUT]
                if mode in ("hq", "fast") and have_rb:
                    flag = "--fine" if mode == "hq" else "--fast"
                    peer = f"rubberband CLI {flag}"
                    peer_ms = timed(cli(lambda s, d: ["rubberband", "-q", flag, *rb_args, s, d],
                                        x5, tmp), args.repeat)
                elif mode == "quick" and have_sox:
                    peer = "sox " + " ".join(sox_args)
                    peer_ms = timed(cli(lambda s, d: ["sox", s, d, *sox_args], x5, tmp),
                                    args.repeat)
                rows.append((f"{name} ({mode})", "", ours, peer, peer_ms))
        # pitch_shift then time_stretch, both quick: ONE fused tape resampling (HQ, then LQ)
        for quality in ("HQ", "LQ"):
            extra = {} if quality == "HQ" else {"quality": quality}
            steps = [{"step": "pitch_shift", "semitones": 1.5, "mode": "quick", **extra},
                     {"step": "time_stretch", "rate": 1.08, "mode": "quick", **extra}]
            x = np.ascontiguousarray(base[:, : source_frames(steps, OUT)])
            ours = timed(lambda: apply_steps(x, SR, steps, OUT), args.repeat)
            peer, peer_ms = "", None
            if have_sox:
                peer = "sox pitch 150 tempo 1.08"
                peer_ms = timed(cli(lambda s, d: ["sox", s, d, "pitch", "150", "tempo", "1.08"],
                                    base[:, :OUT], tmp), args.repeat)
            rows.append((f"pitch+tempo (quick {quality}, fused)", "", ours, peer, peer_ms))

    print(f"augmentation steps on {SECONDS} s stereo {SR} Hz float32, median of {args.repeat}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'step':<24}{'ours ms':>10}{'x realtime':>12}   {'peer':<28}{'peer ms':>9}{'speed-up':>10}")
    for name, _, ms, peer, peer_ms in rows:
        rt = SECONDS * 1000 / ms if ms > 0 else float("inf")
        extra = f"   {peer:<28}{peer_ms:>9.1f}{peer_ms / ms:>9.1f}x" if peer_ms else ""
        print(f"{name:<24}{ms:>10.2f}{rt:>12.0f}{extra}")


if __name__ == "__main__":
    main()
