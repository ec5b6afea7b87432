"""``stemforge export-jams DIR``: one Scaper-style JAMS annotation per generated item."""
from __future__ import annotations

from ._common import add_dataset_args, open_index


def add_parser(sub):
    p = sub.add_parser("export-jams", help="write <id>/mixture.jams (Scaper's `scaper` "
                       "namespace) for every item of a generated set")
    p.add_argument("dir", metavar="DIR", help="folder written by `stemforge generate` (the "
                   "JAMS files go into its item folders)")
    add_dataset_args(p, positional=False, required=False,
                     what="dataset root or index file to use instead of the job file's")
    return p


def run(args) -> int:
    from ..jobs.jams_export import export_jams

    index = open_index(args) if args.root else None
    files = export_jams(args.dir, index=index, progress=not args.no_progress)
    print(f"{args.dir}: wrote {len(files)} JAMS file(s) (<id>/mixture.jams)")
    return 0
