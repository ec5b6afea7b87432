"""``stemforge report PATH... --out DIR``: a static HTML report to look at and listen to data."""
from __future__ import annotations

import sys


def add_parser(sub):
    p = sub.add_parser("report", help="write a static HTML report (players, spectrograms, "
                       "tables, plots) of a dataset, a generated set, or evaluation results")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="dataset root or index.jsonl, generated set folder, results folder, or "
                   "`stemforge doctor` output (kind detected automatically; several may be "
                   "given; NAME=DIR names a results folder's method; several results are also "
                   "compared side by side)")
    p.add_argument("--index", action="append", default=[], metavar="ROOT",
                   help="a dataset to report (as a PATH; repeatable)")
    p.add_argument("--layout", help="layout of the dataset PATHs (default: the one remembered "
                   "from the last `stemforge index`, else auto-detected)")
    p.add_argument("--out", required=True, help="output folder (index.html + assets/)")
    p.add_argument("--kind", default="auto",
                   choices=["auto", "dataset", "generated", "results", "doctor"],
                   help="force the kind of every PATH (default: detect)")
    p.add_argument("--max-items", type=int, default=100,
                   help="tracks / mixtures with players and images (default 100)")
    p.add_argument("--excerpt", type=float, default=10.0,
                   help="seconds of audio per preview; in comparisons, the excerpt where two "
                   "methods differ most (default 10)")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def run(args) -> int:
    from ..errors import StemforgeError
    from ..report import build_report

    paths = [*args.paths, *args.index]
    if not paths:
        raise StemforgeError("nothing to report: give dataset roots, generated sets, results "
                             "folders or doctor outputs as PATHs")
    res = build_report(paths, args.out, kind=args.kind, max_items=args.max_items,
                       preview_seconds=args.excerpt, title=args.title,
                       progress=not args.no_progress, layout=args.layout)
    for p in res.problems:
        print(f"stemforge report: problem: {p}", file=sys.stderr)
    if not res.rendered:
        print(f"stemforge report: error: nothing could be rendered (see {res.index_html})",
              file=sys.stderr)
        return 1
    print(f"report: {res.index_html} ({res.size_bytes / 1e6:.1f} MB, "
          f"{len(res.problems)} problems)")
    return 0
