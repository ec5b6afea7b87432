"""``stemforge export-jams DIR``: one Scaper-style JAMS annotation per generated item."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("export-jams", help="write <id>/mixture.jams (Scaper's `scaper` "
                       "namespace) for every item of a generated set")
    p.add_argument("dir", metavar="DIR", help="folder written by `stemforge generate`")
    p.add_argument("--index", metavar="ROOT",
                   help="dataset root or index file to use instead of the one in the job file")
    return p


def run(args) -> int:
    from ..jobs.jams_export import export_jams

    files = export_jams(args.dir, index=args.index)
    print(f"{args.dir}: wrote {len(files)} JAMS file(s) (<id>/mixture.jams)")
    return 0
