"""``stemforge export-jams DIR``: one Scaper-style JAMS annotation per generated item."""
from __future__ import annotations

import sys


def add_parser(sub):
    p = sub.add_parser("export-jams", help="write <id>/mixture.jams (Scaper's `scaper` "
                       "namespace, rendered as is by scaper.generate_from_jams) for every item "
                       "of a generated set")
    p.add_argument("dir", metavar="DIR", help="folder written by `stemforge generate`")
    p.add_argument("--index", metavar="ROOT",
                   help="dataset root or index file to use instead of the one in the job file")
    p.add_argument("--materialize", metavar="DIR",
                   help="write the sources the set uses as WAV files DIR/<stem>/<track>.wav "
                        "(Scaper's layout; decodes .stem.mp4) and point the JAMS at them")
    return p


def run(args) -> int:
    from ..jobs.jams_export import export_jams

    files, warnings = export_jams(args.dir, index=args.index, materialize=args.materialize)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{args.dir}: wrote {len(files)} JAMS file(s) (<id>/mixture.jams)")
    return 0
