"""``stemforge import-jams JAMS... --index ROOT --out DIR``: render Scaper JAMS as stemforge
specs and audio (one item per JAMS)."""
from __future__ import annotations

from ._common import add_dataset_args, open_index


def add_parser(sub):
    p = sub.add_parser("import-jams", help="turn Scaper JAMS files into specs and render them "
                       "(the audio Scaper renders, mixture = sum of one target per label)")
    p.add_argument("jams", nargs="+", metavar="JAMS", help="Scaper JAMS files")
    add_dataset_args(p, positional=False,
                     what="dataset root (e.g. Scaper's fg_path, layout 'scaper') or index file "
                          "holding the JAMS's source files")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (new or empty)")
    p.add_argument("--format", choices=("wav", "flac"), default="wav")
    return p


def run(args) -> int:
    from ..jobs.jams_import import import_jams

    dirs = import_jams(args.jams, open_index(args), args.out, args.format)
    print(f"{args.out}: rendered {len(dirs)} item(s) from Scaper JAMS (<id>/spec.json)")
    return 0
