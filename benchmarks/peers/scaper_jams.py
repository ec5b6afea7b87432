"""Scaper 1.6.5 side of stemforge's JAMS round trips (tests/test_scaper.py). Runs in the PEER
venv only (numpy<2; made by ``bash benchmarks/peers/setup_scaper.sh``)::

    <venv>/bin/python benchmarks/peers/scaper_jams.py render OUT JAMS...
    <venv>/bin/python benchmarks/peers/scaper_jams.py generate CONFIG.json OUT

``render``: ``scaper.generate_from_jams(path)`` of each JAMS, with no other argument (the
export must be renderable as it is); writes ``OUT/<k>.npz`` for the k-th JAMS: ``mix``
float64 ``(T, C)``, ``events`` float64 ``(E, T, C)`` (Scaper's isolated events, in annotation
order, after its clip scaling), ``scale`` (its peak-normalisation factor).

``generate``: a Scaper script in the seed tutorial's style (CONFIG: ``fg``/``bg`` folders,
``n`` items, ``duration``, ``sr``, ``channels``, ``labels``, ``style``) writes
``OUT/<k>.jams`` and ``OUT/<k>.npz`` as above. Style ``tutorial``: one event per label,
event_time 0, the whole duration, snr uniform(-5, 5), ref_db uniform(-30, -10), no fades,
fix_clipping; item k is coherent when k is even (every label from the same song, the nussl
trick: the first event's file with the label folder swapped, the same source_time), else
incoherent (each label a random file and time). Style ``events``: Scaper's soundscape model
with its default 10 ms fades: a background (label ``bg``), 1-3 events per label with
event_time and event_duration drawn, snr uniform(-5, 5), fix_clipping.

Scaper is made to use pysox (the ``sox`` command line) rather than soxbindings: soxbindings
1.2.3 returns corrupt audio from ``generate_from_jams`` on some inputs (Scaper issue 157),
and pysox is Scaper's own fallback. Does not import stemforge (it needs NumPy 2).
"""
from __future__ import annotations

import json
import os
import sys
import warnings

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"
sys.modules["soxbindings"] = None  # Scaper's `import soxbindings as sox` fails: it uses pysox

import numpy as np  # noqa: E402


def save(path, audio, events, scale):
    np.savez(path, mix=np.asarray(audio, np.float64),
             events=np.asarray(events, np.float64).reshape(len(events), *np.shape(audio)),
             scale=float(scale))


def render(out, jams_files):
    import scaper

    os.makedirs(out, exist_ok=True)
    for k, path in enumerate(jams_files):
        audio, jam, _, events = scaper.generate_from_jams(path)
        ann = jam.search(namespace="scaper")[0]
        save(os.path.join(out, f"{k}.npz"), audio, events,
             ann.sandbox.scaper["peak_normalization_scale_factor"])


def _tutorial(scaper, cfg, k):
    labels, dur = cfg["labels"], cfg["duration"]
    sc = scaper.Scaper(dur, cfg["fg"], cfg["bg"], random_state=k)
    sc.sr, sc.n_channels = cfg["sr"], cfg["channels"]
    sc.ref_db = float(sc.random_state.uniform(-30, -10))
    sc.fade_in_len = sc.fade_out_len = 0
    params = dict(label=("const", labels[0]), source_file=("choose", []),
                  source_time=("uniform", 0, 300), event_time=("const", 0),
                  event_duration=("const", dur), snr=("uniform", -5, 5),
                  pitch_shift=None, time_stretch=None)
    if k % 2 == 0:  # coherent: the nussl trick
        sc.add_event(**params)
        event = sc._instantiate_event(sc.fg_spec[0])
        sc.reset_fg_event_spec()
        params["source_time"] = ("const", event.source_time)
        for label in labels:
            src = event.source_file.replace(f"{os.sep}{labels[0]}{os.sep}",
                                            f"{os.sep}{label}{os.sep}")
            sc.add_event(**{**params, "label": ("const", label), "source_file": ("const", src)})
    else:
        for label in labels:
            sc.add_event(**{**params, "label": ("const", label)})
    return sc


def _events(scaper, cfg, k):
    labels, dur = cfg["labels"], cfg["duration"]
    sc = scaper.Scaper(dur, cfg["fg"], cfg["bg"], random_state=k)
    sc.sr, sc.n_channels = cfg["sr"], cfg["channels"]
    sc.ref_db = -6  # loud: fix_clipping acts
    sc.add_background(label=("const", "bg"), source_file=("choose", []),
                      source_time=("const", 0))
    rng = np.random.RandomState(1000 + k)
    for label in labels:
        for _ in range(int(rng.randint(1, 4))):
            sc.add_event(label=("const", label), source_file=("choose", []),
                         source_time=("uniform", 0, 300), event_time=("uniform", 0, dur),
                         event_duration=("uniform", 0.6, 1.5), snr=("uniform", -5, 5),
                         pitch_shift=None, time_stretch=None)
    return sc


def generate(config, out):
    import scaper

    with open(config) as fh:
        cfg = json.load(fh)
    os.makedirs(out, exist_ok=True)
    make = {"tutorial": _tutorial, "events": _events}[cfg["style"]]
    for k in range(cfg["n"]):
        sc = make(scaper, cfg, k)
        audio, jam, _, events = sc.generate(
            audio_path=None, jams_path=os.path.join(out, f"{k}.jams"), fix_clipping=True,
            disable_instantiation_warnings=True)
        ann = jam.search(namespace="scaper")[0]
        save(os.path.join(out, f"{k}.npz"), audio, events,
             ann.sandbox.scaper["peak_normalization_scale_factor"])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    warnings.simplefilter("ignore")
    if argv and argv[0] == "render" and len(argv) >= 3:
        render(argv[1], argv[2:])
    elif argv and argv[0] == "generate" and len(argv) == 3:
        generate(argv[1], argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
