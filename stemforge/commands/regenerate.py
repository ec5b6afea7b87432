"""``stemforge regenerate DIR [--verify]``: re-render a generated set from its specs."""
from __future__ import annotations

import sys

from ._common import add_dataset_args, add_workers_arg, open_index, workers


def add_parser(sub):
    p = sub.add_parser("regenerate", help="re-render a generated set from its specs: --verify "
                       "compares bytes with the files on disk; without it, rewrites missing or "
                       "wrong files")
    p.add_argument("dir", metavar="DIR", help="folder written by `stemforge generate`")
    p.add_argument("--verify", action="store_true",
                   help="only compare: report every file that differs (exit 1), write nothing")
    add_dataset_args(p, positional=False, required=False,
                     what="dataset root or index file to use instead of the job file's (e.g. "
                     "the dataset moved); refused if its audio is not the set's")
    add_workers_arg(p, 1, "re-rendering (K > 1: a local Dask cluster)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on an existing Dask cluster")
    return p


def run(args) -> int:
    from ..jobs.regenerate import repair, verify

    k = workers(args)
    index = open_index(args) if args.root else None
    kw = dict(index=index, workers=k, scheduler=args.scheduler, progress=not args.no_progress)
    if args.verify:
        res = verify(args.dir, **kw)
        for m in res.mismatches:
            print(f"MISMATCH {m}")
        if res.mismatches:
            items = len({m.item for m in res.mismatches if m.item})
            print(f"{res.out}: {len(res.mismatches)} mismatch(es) in {items} of {res.n} items",
                  file=sys.stderr)
            return 1
        print(f"{res.out}: all {res.n} items re-render byte-identically ({res.seconds:.2f} s)")
        return 0
    res = repair(args.dir, **kw)
    for f in res.rewritten:
        print(f"rewrote {f}")
    print(f"{res.out}: {res.n} items complete; {len(res.rewritten)} file(s) rewritten "
          f"({res.seconds:.2f} s)")
    return 0
