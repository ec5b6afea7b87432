"""``stemforge evaluate --index ROOT --estimates [NAME=]DIR ... --out RESULTS``: BSS Eval v4
(museval-compatible JSON per track), SI-SDR, MDX SDR (= SDX uSDR), SDX cSDR for one or several
methods; per-method CSV summaries (and boxplots with ``--plots``), a combined summary.csv. ``--references ROOT``
is an alias of ``--index ROOT``."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from ._common import add_dataset_args, add_workers_arg, open_index, workers


def add_parser(sub):
    p = sub.add_parser("evaluate", help="score separated estimates of one or several methods "
                       "against a dataset (museval JSON per track, summary.csv)")
    p.add_argument("--estimates", nargs="+", default=[], metavar="[NAME=]DIR",
                   help="estimates as DIR/<track name>/<target>.wav; several methods as "
                        "NAME=DIR NAME=DIR ... (results in RESULTS/<NAME>/); one bare DIR "
                        "writes its results directly in RESULTS")
    p.add_argument("--import", dest="imports", nargs="+", default=[], metavar="NAME=DIR",
                   help="museval JSON results written by another tool (DIR/<split>/<track>.json)"
                        " to compare with: copied into RESULTS/<NAME>/ and summarised")
    p.add_argument("--targets", nargs="+", default=None, metavar="TARGET",
                   help="stems or groups to score (default: the .wav names of the first "
                        "track's estimate folder)")
    p.add_argument("--metrics", default="bsseval,sisdr,mdx,csdr",
                   help="comma list of bsseval, sisdr, mdx (= usdr), csdr (default: all)")
    p.add_argument("--split", default=None,
                   help="split to score: a split name or 'all' (default: test if the "
                        "references have one, else all)")
    p.add_argument("--win", type=float, default=1.0, help="BSS Eval frame / cSDR chunk length "
                   "in seconds (default 1, as museval and the SDX challenges)")
    p.add_argument("--hop", type=float, default=1.0, help="BSS Eval / cSDR hop in seconds "
                   "(default 1)")
    p.add_argument("--plots", action="store_true",
                   help="also draw boxplot_<target>.png per method (about a second; "
                        "`stemforge report RESULTS` draws an HTML page with richer plots)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="score tracks on an existing Dask cluster (workers need stemforge and "
                   "the data at the same paths); --workers K > 1 starts a local one")
    p.add_argument("--out", required=True, metavar="RESULTS", help="results folder")
    add_dataset_args(p, positional=False, aliases=("--references",),
                     what="reference dataset root (any layout) or its index.jsonl "
                          "(--references is an alias)")
    add_workers_arg(p, 1, "the tracks (K > 1: a local Dask cluster)")
    return p


def select_split(index, split: str | None):
    splits = {t.split for t in index.tracks}
    if split is None:
        split = "test" if "test" in splits else "all"
    return index if split == "all" else index.subset(split)


@contextmanager
def lean_runtime() -> Iterator[None]:
    """This command's process settings (same numbers, less CPU), restored after:

    * ``OPENBLAS_NUM_THREADS=1`` unless set: tracks run side by side on evaluate's own threads
      and BLAS only sees 8x8-sized blocks, so OpenBLAS's threads would only spin beside them
      (effective when NumPy is not imported yet, as in the CLI; inherited by Dask workers);
    * the cyclic garbage collector's first threshold raised from 700 to 50,000 allocations:
      numba's and pandas' imports, which the run's critical path waits for, otherwise trigger
      ~350 collections (4 tracks: 0.15-0.21 s of collecting measured, 0.10-0.13 s with the
      raised threshold, which leaves ~17); every cycle is still collected, later;
    * SciPy's BLAS table loaded by itself (:func:`~stemforge.metrics.kernels.load_blas_table`:
      ~0.01 s instead of ~0.17 s of ``scipy.linalg``'s package import under the GIL while the
      first tracks are read; 10 interleaved runs: median 2.24 -> 2.00 s, CPU 3.79 -> 3.43 s).
      Command only: the module is then registered without the ``cython_blas`` attribute on
      ``scipy.linalg``, which does not matter to a process that ends with the command.
    """
    import gc

    ours = "OPENBLAS_NUM_THREADS" not in os.environ
    if ours:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 20)
    try:
        from ..metrics.kernels import load_blas_table  # after the variable: imports NumPy

        load_blas_table()
        yield
    finally:
        gc.set_threshold(*thresholds)
        if ours:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)


def run(args) -> int:
    with lean_runtime():
        return _run(args)


def _run(args) -> int:
    from ..errors import StemforgeError
    from ..jobs.evaluate import evaluate, parse_metrics, parse_named

    metrics = parse_metrics(args.metrics)
    if not args.estimates and not args.imports:
        raise StemforgeError("nothing to evaluate: give --estimates DIR (or NAME=DIR ...) "
                             "and/or --import NAME=DIR")
    imports = parse_named(args.imports, "--import")
    single = len(args.estimates) == 1 and "=" not in args.estimates[0] and not imports
    estimates = args.estimates[0] if single else parse_named(args.estimates, "--estimates")
    k = workers(args)
    index = select_split(open_index(args), args.split)
    res = evaluate(index, estimates, args.out, targets=args.targets, metrics=metrics,
                   workers=k, scheduler=args.scheduler,
                   progress=not args.no_progress, win=args.win, hop=args.hop, imports=imports,
                   plots=args.plots)
    import pandas as pd  # imported by evaluate while it scored the tracks

    for note in res.adjusted:
        print(f"note: estimate zero-padded / trimmed to the reference length: {note}")
    table = res.summary.pivot_table(index=["method", "target"], columns="metric",
                                    values="score", sort=False)
    table = table.reindex(columns=[m for m in dict.fromkeys(res.summary["metric"])])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    how = dict(zip(res.summary["metric"], res.summary["aggregation"]))
    for metric, label in how.items():
        print(f"  {metric}: {label}")
    n = len(res.tracks["track"].unique()) if len(res.tracks) else 0
    plots = ", boxplot_*.png" if args.plots else ""
    print(f"results: {len(res.methods)} method(s) x {n} tracks -> {args.out} (summary.csv, "
          f"methods.pandas, per method: <split>/<track>.json, summary_*.csv{plots}); "
          f"plots and players: stemforge report {args.out} --out PAGE")
    return 0
