"""``stemforge doctor ROOT [ROOT...] [--index NAME=ROOT ...] --out DIR``: find what is wrong with
one or several stem datasets (duplicates and leakage, bleed, broken stems and mixtures)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("doctor", help="check datasets for duplicates across splits and datasets, "
                       "bleed and broken stems; writes doctor.json (an exclusion list recipes "
                       "can apply) and findings.csv")
    p.add_argument("roots", nargs="*", metavar="ROOT",
                   help="dataset root or index.jsonl (named after its folder)")
    p.add_argument("--index", action="append", default=[], metavar="NAME=ROOT",
                   help="a dataset with an explicit name (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (doctor.json, findings.csv)")
    p.add_argument("--layout", help="layout of every ROOT (default: the index's, else "
                   "auto-detect)")
    p.add_argument("--taxonomy", metavar="FILE.yaml", help="map instrument labels to stems "
                   "(default: the taxonomy the dataset was indexed with)")
    p.add_argument("--workers", type=int, default=1,
                   help="K > 1: a local Dask cluster of K processes (default 1: in-process)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="check tracks on an existing Dask cluster (workers need stemforge and "
                   "the data at the same paths)")
    p.add_argument("--no-stem-fingerprints", action="store_true",
                   help="fingerprint only the mixtures (duplicates of single stems are not "
                   "searched; less memory for very large collections)")
    p.add_argument("--show", type=int, default=25, metavar="N",
                   help="findings printed on the terminal (default 25; all are in doctor.json)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def datasets_of(args) -> list:
    from ..doctor.datasets import resolve, unique_names
    from ..doctor.findings import DoctorError

    refs = [resolve(r, layout=args.layout, taxonomy=args.taxonomy) for r in args.roots]
    named = []
    for spec in args.index:
        name, sep, root = spec.partition("=")
        if not sep or not name.strip() or not root.strip():
            raise DoctorError(f"--index {spec!r}: expected NAME=ROOT")
        named.append(resolve(root.strip(), name=name.strip(), taxonomy=args.taxonomy))
    names = [r.name for r in named]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise DoctorError(f"--index: the name {clash[0]!r} is given twice")
    if not refs and not named:
        raise DoctorError("give at least one dataset: ROOT or --index NAME=ROOT")
    return unique_names(named + refs)


def run(args) -> int:
    from ..doctor.options import Options
    from ..doctor.run import findings_table, run_doctor, summary_table
    from ..jobs.dask_runner import check_scheduler

    refs = datasets_of(args)
    if args.scheduler:
        check_scheduler(args.scheduler)
    opts = Options(fingerprint_stems=not args.no_stem_fingerprints)
    report = run_doctor(refs, out=args.out, options=opts, workers=args.workers,
                        scheduler=args.scheduler, progress=not args.no_progress)
    n_tracks = sum(d["tracks"] for d in report.datasets)
    hours = sum(d["seconds"] for d in report.datasets) / 3600
    print(f"checked {n_tracks} tracks ({hours:.2f} h) in {len(report.datasets)} dataset(s): "
          + ", ".join(f"{d['name']} ({d['layout']}, {d['tracks']})" for d in report.datasets))
    print(summary_table(report))
    if report.findings:
        print()
        print(findings_table(report, limit=max(0, args.show)))
    out = Path(args.out)
    print(f"\nwrote {out / 'doctor.json'} ({len(report.findings)} findings) and "
          f"{out / 'findings.csv'}; apply it with `exclude: {out / 'doctor.json'}` in a recipe "
          f"or `stemforge generate ... --exclude {out}`")
    worst = report.worst()
    return 1 if worst in ("warning", "error") else 0
