"""``stemforge experiment``: measure what data recipes are worth.

* ``experiment synth DIR``: write synthetic 4-stem songs (musdb18hq layout) for experiments.
* ``experiment corpus DIR --songs N --seed S``: a multitrack corpus rendered with sampled
  instruments (music21 scores through FluidSynth; musdb18hq layout with a valid folder).
* ``experiment augmentation --index ROOT [--rows ...] [--quick]``: the data-limited study
  (stemforge.train.experiment): ablation rows and comparison recipes trained with several seeds
  on a few songs, chosen on the valid split, scored on the test split next to the oracle IRM;
  writes summary.csv/.md, curves.png, deltas.png (stemforge.train.results).
"""
from __future__ import annotations

from ._common import add_dataset_args, count, open_index


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

    c = esub.add_parser("corpus", help="write a multitrack corpus rendered with sampled "
                        "instruments (music21 scores, FluidSynth, GM soundfont; musdb18hq layout)")
    c.add_argument("root", help="output dataset folder (must not exist or be empty)")
    c.add_argument("--songs", type=int, default=40, help="songs (default 40)")
    c.add_argument("--seed", type=count, default=0, help="generator seed (default 0)")
    c.add_argument("--valid", type=int, default=None,
                   help="validation songs (default 20 %% of --songs)")
    c.add_argument("--test", type=int, default=None, help="test songs (default 40 %% of --songs)")
    c.add_argument("--seconds", type=float, nargs=2, default=(30.0, 90.0), metavar=("MIN", "MAX"),
                   help="song length range in seconds (default 30 90)")
    c.add_argument("--sample-rate", type=int, default=44100, help="Hz (default 44100)")
    c.add_argument("--composers", nargs="+", default=None, metavar="NAME",
                   help="music21 corpus folders to draw scores from (default: every multi-part "
                        "collection; never Bach)")
    c.add_argument("--soundfont", default=None, metavar="SF2",
                   help="General MIDI soundfont (default /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    c.add_argument("--workers", type=int, default=None,
                   help="processes (default: CPUs, at most 2)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")

    a = esub.add_parser("augmentation", help="the data-limited augmentation study: ablation "
                        "rows and comparison recipes, several seeds, scored on held-out songs")
    a.add_argument("--out", default="experiment-augmentation", metavar="DIR",
                   help="study folder; an interrupted study resumes there "
                        "(default ./experiment-augmentation)")
    a.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                   help="rows to run: plain remix gains swap pitch effects codec tutorial "
                        "recommended (default: the seven ablation rows, plain .. codec; with "
                        "--quick all nine; plain is always run; comparison rows join a study "
                        "later with --rows tutorial recommended)")
    a.add_argument("--targets", nargs="+", default=None, metavar="TARGET",
                   help="targets (default: every stem of the index)")
    a.add_argument("--quick", action="store_true",
                   help="a few minutes: tiny model, few steps, one seed, 3/2/2 songs, 8 s of "
                        "each song scored (checks the pipeline; says nothing about the recipes)")
    a.add_argument("--seeds", nargs="+", type=count, default=None, help="seeds (default 0 1 2)")
    a.add_argument("--train-songs", type=int, default=None, help="training songs (default 8)")
    a.add_argument("--valid-songs", type=int, default=None,
                   help="validation songs (at most; taken from train when the index has no "
                        "valid split; default 8)")
    a.add_argument("--test-songs", type=int, default=None,
                   help="test songs (default: the whole test split)")
    a.add_argument("--steps", type=int, default=None, help="optimisation steps per run (default 1500)")
    a.add_argument("--batch-size", type=int, default=None, help="mixtures per step (default 8)")
    a.add_argument("--duration", type=float, default=None,
                   help="training excerpt length in seconds (default 2)")
    a.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    a.add_argument("--valid-every", type=int, default=None,
                   help="validate (and checkpoint) every N steps (default 100)")
    a.add_argument("--hidden", type=int, default=None, help="model width (default 64)")
    a.add_argument("--eval-seconds", type=float, default=None,
                   help="score only the first seconds of each held-out song (default: whole)")
    a.add_argument("--pitch-mode", choices=["hq", "fast"], default=None,
                   help="mode of the recipes' pitch_tempo steps (default fast: Rubber Band R2)")
    a.add_argument("--jobs", type=int, default=2,
                   help="training runs in parallel, one CPU thread each (default 2)")
    a.add_argument("--device", default=None,
                   help="torch device (default: cuda if available, else cpu)")
    add_dataset_args(a, positional=False,
                     what="dataset root or its index.jsonl (train/valid/test splits, see docs)")
    return p


def run(args) -> int:
    if args.experiment == "synth":
        return _synth(args)
    if args.experiment == "corpus":
        return _corpus(args)
    from ..train.experiment import QUICK, Protocol, protocol_replace, run_study

    base = QUICK if args.quick else Protocol()
    protocol = protocol_replace(
        base, train_songs=args.train_songs, valid_songs=args.valid_songs,
        test_songs=args.test_songs, seeds=tuple(args.seeds) if args.seeds else None,
        steps=args.steps, batch_size=args.batch_size, duration=args.duration, lr=args.lr,
        valid_every=args.valid_every, hidden=args.hidden, eval_seconds=args.eval_seconds,
        pitch_mode=args.pitch_mode)
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    jobs = 1 if str(device).startswith("cuda") else max(1, args.jobs)
    from ..train.experiment import ABLATION, ROWS

    # the default study is the ablation (about 2 h on 2 idle cores); --quick checks every row
    rows = args.rows or (ROWS if args.quick else ABLATION)
    res = run_study(open_index(args), args.out, protocol, rows, args.targets,
                    device=device, jobs=jobs, progress=not args.no_progress)
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


def _corpus(args) -> int:
    from ..train.corpus import COMPOSERS, DEFAULT_SOUNDFONT, split_counts, write_corpus

    root = write_corpus(args.root, args.songs, args.seed, tuple(args.seconds), args.sample_rate,
                        args.valid, args.test, tuple(args.composers or COMPOSERS),
                        args.soundfont or DEFAULT_SOUNDFONT, args.workers,
                        progress=not args.no_progress)
    n = split_counts(args.songs, args.valid, args.test)
    print(f"wrote {args.songs} songs (train {n['train']}, valid {n['valid']}, test {n['test']}) "
          f"-> {root}")
    return 0
