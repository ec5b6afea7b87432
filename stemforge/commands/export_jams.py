"""``stemforge export-jams DIR``: one Scaper-style JAMS annotation per generated item."""
from __future__ import annotations

import sys

from ._common import add_dataset_args, open_index


def add_parser(sub):
    p = sub.add_parser("export-jams", help="write <id>/mixture.jams (Scaper's `scaper` "
                       "namespace, rendered as is by scaper.generate_from_jams) for every item "
                       "of a generated set")
    p.add_argument("dir", metavar="DIR", help="folder written by `stemforge generate` (the "
                   "JAMS files go into its item folders)")
    add_dataset_args(p, positional=False, required=False,
                     what="dataset root or index file to use instead of the job file's")
    p.add_argument("--materialize", metavar="DIR",
                   help="write the sources the set uses as WAV files DIR/<stem>/<track>.wav "
                        "(Scaper's layout; decodes .stem.mp4) and point the JAMS at them")
    return p


def run(args) -> int:
    from ..jobs.jams_export import export_jams

    index = open_index(args) if args.root else None
    files, warnings = export_jams(args.dir, index=index, materialize=args.materialize,
                                  progress=not args.no_progress)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{args.dir}: wrote {len(files)} JAMS file(s) (<id>/mixture.jams)")
    return 0
