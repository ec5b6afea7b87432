"""``stemforge oracle ROOT --method irm2 --out DIR``: oracle estimates as DIR/<track>/<target>.wav."""
from __future__ import annotations

from ._common import add_dataset_args, add_workers_arg, open_index, workers
from .evaluate import select_split


# the methods of stemforge.jobs.oracle.ALL_METHODS, named here so that building the CLI parser does
# not import scipy.signal (a test keeps the two equal)
METHODS = ("ibm", "irm1", "irm2", "mwf", "mix")


def add_parser(sub):
    p = sub.add_parser("oracle", help="write oracle separations (ibm, irm1, irm2, mwf, mix) in "
                       "the estimates layout that `evaluate` reads")
    add_dataset_args(p)
    add_workers_arg(p, 1, "the tracks (K > 1: a local Dask cluster)")
    p.add_argument("--method", required=True, choices=METHODS,
                   help="oracle: ideal binary / ratio masks, multichannel Wiener filter, or "
                        "'mix' (mixture as estimate)")
    p.add_argument("--targets", nargs="+", default=None, metavar="TARGET",
                   help="stems or groups to write (default: every stem)")
    p.add_argument("--mixture", default="real", choices=["real", "sum"],
                   help="mask the real mixture when the dataset has one (default) or the stem sum")
    p.add_argument("--split", default=None,
                   help="split name or 'all' (default: test if present, else all)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on an existing Dask cluster; --workers K > 1 starts a local one")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    return p


def run(args) -> int:
    from ..jobs.oracle import run as run_oracle

    index = select_split(open_index(args), args.split)
    files = run_oracle(index, args.out, args.method, targets=args.targets, mixture=args.mixture,
                       workers=workers(args), scheduler=args.scheduler,
                       progress=not args.no_progress)
    print(f"oracle {args.method}: {len(index.tracks)} tracks, {len(files)} files -> {args.out}")
    return 0
