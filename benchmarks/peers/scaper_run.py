"""Scaper 1.6.5 side of the stemforge benchmarks. Runs in the PEER venv only (numpy<2)::

    bash benchmarks/peers/setup_scaper.sh            # once: /tmp/stemforge-peers/scaper-venv
    /tmp/stemforge-peers/scaper-venv/bin/python benchmarks/peers/scaper_run.py --json \\
        --fg DATA/fg --bg DATA/bg --n 20 [--augment] [--quick-pitch-time]

Generates ``n`` coherent 4-stem mixtures the way the seed tutorial does (Scaper's MUSDB
tutorial): one Scaper per item seeded by the item index; 4 foreground events vocals, drums,
bass, other; event_time 0, event_duration = duration; ``source_time`` drawn once for the first
event (uniform over the file) and reused as a constant by every event with the same song
(``source_file`` of the first event with the label swapped) — the coherent case; snr
uniform(-5, 5); ``ref_db`` uniform(-30, -10); no fades; ``generate(fix_clipping=True)`` in memory
(no files written). With ``--augment``, pitch_shift uniform(-2, 2) and time_stretch
uniform(0.9, 1.1) on every event (shared, as in the tutorial); ``--quick-pitch-time`` selects
SoX's quick pitch/tempo algorithms.

Timing: wall time of the whole per-item function (Scaper setup + event draws + the whole
``generate`` call); ``generate`` alone is reported too. Prints a JSON object with ``--json``.
Does not import stemforge (it would need NumPy 2).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402

LABELS = ("vocals", "drums", "bass", "other")


def make_mix(sc_mod, fg, bg, item, duration, source_max, augment, quick):
    """One coherent mixture, tutorial style. Returns (audio, generate_seconds)."""
    rng = np.random.RandomState(item)
    sc = sc_mod.Scaper(duration, fg, bg, random_state=item)
    sc.sr = 44100
    sc.n_channels = 2
    sc.ref_db = float(rng.uniform(-30, -10))
    sc.fade_in_len = 0
    sc.fade_out_len = 0
    params = dict(label=("const", LABELS[0]), source_file=("choose", []),
                  source_time=("uniform", 0, source_max), event_time=("const", 0),
                  event_duration=("const", duration), snr=("uniform", -5, 5),
                  pitch_shift=("uniform", -2, 2) if augment else None,
                  time_stretch=("uniform", 0.9, 1.1) if augment else None)
    sc.add_event(**params)
    event = sc._instantiate_event(sc.fg_spec[0])
    sc.reset_fg_event_spec()
    params["source_time"] = ("const", event.source_time)
    if augment:
        params["pitch_shift"] = ("const", event.pitch_shift)
        params["time_stretch"] = ("const", event.time_stretch)
    for label in LABELS:
        params["label"] = ("const", label)
        src = event.source_file.replace(f"{os.sep}{LABELS[0]}{os.sep}", f"{os.sep}{label}{os.sep}")
        params["source_file"] = ("const", src)
        sc.add_event(**params)
    t0 = time.perf_counter()
    audio, _jam, _ann, _events = sc.generate(fix_clipping=True, quick_pitch_time=quick,
                                             disable_instantiation_warnings=True)
    return audio, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Scaper 1.6.5 coherent-mixture benchmark")
    ap.add_argument("--fg", required=True)
    ap.add_argument("--bg", required=True)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--source-max", type=float, default=25.0,
                    help="upper bound of source_time (file length - duration)")
    ap.add_argument("--augment", action="store_true", help="pitch_shift + time_stretch on every event")
    ap.add_argument("--quick-pitch-time", action="store_true")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    import scaper

    warnings.simplefilter("ignore")
    for i in range(a.warmup):  # imports, sox first call
        make_mix(scaper, a.fg, a.bg, 10_000 + i, a.duration, a.source_max, a.augment,
                 a.quick_pitch_time)
    gen = 0.0
    shape = None
    t0 = time.perf_counter()
    c0 = os.times()
    for i in range(a.n):
        audio, g = make_mix(scaper, a.fg, a.bg, i, a.duration, a.source_max, a.augment,
                            a.quick_pitch_time)
        gen += g
        shape = audio.shape
    wall = time.perf_counter() - t0
    c1 = os.times()
    out = {"tool": f"scaper {scaper.__version__}", "numpy": np.__version__, "items": a.n,
           "seconds": wall, "generate_seconds": gen, "audio_seconds": a.n * a.duration,
           "cpu_seconds": (c1.user - c0.user) + (c1.system - c0.system)
           + (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system),
           "shape": list(shape) if shape else None, "augment": a.augment,
           "quick_pitch_time": a.quick_pitch_time}
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
