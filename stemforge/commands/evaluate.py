"""``stemforge evaluate --index ROOT --estimates DIR --out RESULTS``: BSS Eval v4 (museval-
compatible JSON per track), SI-SDR, MDX SDR; CSV summaries and a boxplot per target.
``--references ROOT`` is an alias of ``--index ROOT``."""
from __future__ import annotations

from ._common import add_dataset_args, add_workers_arg, open_index, workers


def add_parser(sub):
    p = sub.add_parser("evaluate", help="score separated estimates against a dataset "
                       "(museval JSON per track, CSV summaries, boxplots)")
    p.add_argument("--estimates", required=True, metavar="DIR",
                   help="estimates as DIR/<track name>/<target>.wav")
    p.add_argument("--targets", nargs="+", default=None, metavar="TARGET",
                   help="stems or groups to score (default: the .wav names of the first "
                        "track's estimate folder)")
    p.add_argument("--metrics", default="bsseval,sisdr,mdx",
                   help="comma list of bsseval, sisdr, mdx (default: all)")
    p.add_argument("--split", default=None,
                   help="split to score: a split name or 'all' (default: test if the "
                        "references have one, else all)")
    p.add_argument("--win", type=float, default=1.0, help="BSS Eval frame length in seconds "
                   "(default 1, as museval)")
    p.add_argument("--hop", type=float, default=1.0, help="BSS Eval hop in seconds (default 1)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="score tracks on an existing Dask cluster (workers need stemforge and "
                   "the data at the same paths); --workers K > 1 starts a local one")
    p.add_argument("--out", required=True, metavar="RESULTS", help="results folder")
    add_dataset_args(p, positional=False, aliases=("--references",))
    add_workers_arg(p, 1, "the tracks (K > 1: a local Dask cluster)")
    return p


def select_split(index, split: str | None):
    splits = {t.split for t in index.tracks}
    if split is None:
        split = "test" if "test" in splits else "all"
    return index if split == "all" else index.subset(split)


def run(args) -> int:
    from ..jobs.evaluate import evaluate, parse_metrics

    metrics = parse_metrics(args.metrics)
    k = workers(args)
    index = select_split(open_index(args), args.split)
    res = evaluate(index, args.estimates, args.out, targets=args.targets, metrics=metrics,
                   workers=k, scheduler=args.scheduler,
                   progress=not args.no_progress, win=args.win, hop=args.hop)
    for note in res.adjusted:
        print(f"note: estimate zero-padded / trimmed to the reference length: {note}")
    print(res.targets.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"results: {len(res.tracks['track'].unique())} tracks -> {args.out} "
          f"(summary_tracks.csv, summary_targets.csv, boxplot_<target>.png)")
    return 0
