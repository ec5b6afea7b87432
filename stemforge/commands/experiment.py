"""``stemforge experiment``: measure what data recipes are worth.

* ``experiment synth DIR``: write synthetic 4-stem songs (musdb18hq layout) for experiments.
* ``experiment augmentation --index ROOT --steps N [--out DIR]``: train the same separator on
  plain coherent excerpts, the seed tutorial's recipe and stemforge's recommended recipe; score
  each on held-out tracks next to the oracle IRM; write summary.csv/.md/.png.
"""
from __future__ import annotations

from ._common import add_dataset_args, count, open_index
from .train import add_train_args, model_kw, set_threads, train_config


def add_parser(sub):
    p = sub.add_parser("experiment", help="experiments: synthetic data, augmentation study")
    esub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    esub.required = True

    s = esub.add_parser("synth", help="write synthetic multitrack songs (musdb18hq layout)")
    s.add_argument("root", help="output dataset folder (must not exist or be empty)")
    s.add_argument("--train", type=int, default=24, help="training songs (default 24)")
    s.add_argument("--test", type=int, default=6, help="held-out songs (default 6)")
    s.add_argument("--seconds", type=float, nargs=2, default=(10.0, 20.0), metavar=("MIN", "MAX"),
                   help="song duration range in seconds (default 10 20)")
    s.add_argument("--sample-rate", type=int, default=22050, help="Hz (default 22050)")
    s.add_argument("--seed", type=count, default=0, help="generator seed (default 0)")

    a = esub.add_parser("augmentation", help="train plain / tutorial / stemforge recipes for the "
                        "same steps and compare them on held-out tracks with the oracle IRM")
    a.add_argument("--out", default="experiment-augmentation", metavar="DIR",
                   help="output folder (default ./experiment-augmentation)")
    a.add_argument("--conditions", nargs="+", default=None, metavar="NAME",
                   help="subset of: plain tutorial stemforge (default: all)")
    a.add_argument("--targets", nargs="+", default=None, metavar="TARGET",
                   help="targets (default: drums bass other vocals, when present)")
    a.add_argument("--duration", type=float, default=2.0,
                   help="training excerpt length in seconds (default 2)")
    a.add_argument("--eval-split", default="test", help="held-out split (default test)")
    a.add_argument("--pitch-mode", choices=["hq", "fast"], default=None,
                   help="override the mode of the recipes' pitch_tempo steps (default: as "
                        "written; fast = Rubber Band R2, several times cheaper than hq)")
    a.add_argument("--no-mixture-baseline", action="store_true",
                   help="skip scoring the mixture itself as an estimate (saves one BSS Eval "
                        "per track)")
    add_train_args(a)
    add_dataset_args(a, positional=False,
                     what="dataset root (train split for training) or its index.jsonl")
    return p


def run(args) -> int:
    if args.experiment == "synth":
        return _synth(args)
    from ..errors import StemforgeError
    from ..train.experiment import CONDITIONS, run_augmentation

    conditions = args.conditions or list(CONDITIONS)
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad:
        raise StemforgeError(f"--conditions: unknown {', '.join(bad)}; known: {', '.join(CONDITIONS)}")
    set_threads(args)
    from ..train.experiment import ORACLES

    oracles = [o for o in ORACLES if not (args.no_mixture_baseline and ORACLES[o] == "mix")]
    res = run_augmentation(open_index(args), args.out, args.steps, conditions, args.targets,
                           args.duration, train_config(args, args.eval_split), model_kw(args),
                           args.eval_split, device=args.device, pitch_mode=args.pitch_mode,
                           oracles=oracles, progress=not args.no_progress)
    print((res.out / "summary.md").read_text())
    print("wrote " + ", ".join(str(p) for p in res.files))
    return 0


def _synth(args) -> int:
    from pathlib import Path

    import numpy as np

    from ..train.synth import write_dataset

    root = Path(args.root)
    write_dataset(root, np.random.default_rng(np.random.SeedSequence(args.seed)), args.train,
                  args.test, tuple(args.seconds), args.sample_rate)
    print(f"wrote {args.train} + {args.test} synthetic songs -> {root}")
    return 0
