"""``stemforge doctor ROOT [ROOT...] [--index NAME=ROOT ...] --out DIR``: find what is wrong with
one or several stem datasets (duplicates and leakage, bleed, broken stems and mixtures)."""
from __future__ import annotations

from pathlib import Path

from ..errors import StemforgeError
from ._common import add_workers_arg, workers


def add_parser(sub):
    p = sub.add_parser("doctor", help="check datasets for duplicates across splits and datasets, "
                       "bleed and broken stems; writes doctor.json (an exclusion list recipes "
                       "can apply) and findings.csv")
    p.add_argument("roots", nargs="*", metavar="ROOT",
                   help="dataset root folder or index.jsonl, named after its folder (or "
                   "--index ROOT; several datasets are checked together)")
    p.add_argument("--index", action="append", default=[], metavar="[NAME=]ROOT",
                   help="a dataset, as a positional ROOT; NAME= names it in the findings "
                   "(repeatable)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (doctor.json, findings.csv)")
    p.add_argument("--layout", help="layout of every dataset (default: the one remembered from "
                   "the last `stemforge index` of its root, else auto-detected)")
    p.add_argument("--cache", help="cache directory of the dataset's index, where its layout "
                   "and taxonomy are remembered (one dataset only; default: the one remembered "
                   "for ROOT, else $STEMFORGE_CACHE_DIR or ~/.cache/stemforge/<root>-<hash>)")
    p.add_argument("--taxonomy", metavar="FILE.yaml", help="map instrument labels to stems "
                   "(default: the taxonomy the dataset was indexed with)")
    add_workers_arg(p, 1, "checking tracks (K > 1: a local Dask cluster)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="check tracks on an existing Dask cluster (workers need stemforge and "
                   "the data at the same paths)")
    p.add_argument("--no-stem-fingerprints", action="store_true",
                   help="fingerprint only the mixtures (duplicates of single stems are not "
                   "searched; less memory for very large collections)")
    p.add_argument("--show", type=int, default=25, metavar="N",
                   help="findings printed on the terminal (default 25; all are in doctor.json)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars and lines")
    return p


def _named(spec: str) -> tuple[str | None, str]:
    """``NAME=ROOT`` -> (NAME, ROOT); a plain ROOT (or an existing path holding ``=``) ->
    (None, ROOT)."""
    name, sep, root = spec.partition("=")
    if not sep or Path(spec).exists() or "/" in name:
        return None, spec
    if not name.strip() or not root.strip():
        raise StemforgeError(f"--index {spec!r}: expected ROOT or NAME=ROOT")
    return name.strip(), root.strip()


def datasets_of(args) -> list:
    """The datasets to check, ``--index`` ones first (in order), then the positional ROOTs;
    an unnamed dataset whose folder name is taken gets ``-2``, ``-3``... appended."""
    from ..doctor.datasets import DatasetRef, resolve

    given = [_named(s) for s in args.index] + [(None, r) for r in args.roots]
    if not given:
        raise StemforgeError("no dataset given: pass its root folder (ROOT, --index ROOT or "
                             "--index NAME=ROOT)")
    if args.cache and len(given) > 1:
        raise StemforgeError(f"--cache {args.cache}: names one dataset's index, but "
                             f"{len(given)} datasets are given; index each with `stemforge "
                             "index ROOT --cache DIR` first (the cache is then remembered for "
                             "its root)")
    names = [n for n, _ in given if n is not None]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise StemforgeError(f"--index: the name {clash[0]!r} is given twice")
    refs = [resolve(r, name=n, layout=args.layout, taxonomy=args.taxonomy, cache=args.cache)
            for n, r in given]
    roots = [r.root for r in refs]
    dup = sorted({r for r in roots if roots.count(r) > 1})
    if dup:
        raise StemforgeError(f"dataset {dup[0]} is given twice; give each dataset once")
    taken, out = set(names), []
    for (name, _), ref in zip(given, refs, strict=True):
        n, k = ref.name, 1
        while name is None and n in taken:
            k += 1
            n = f"{ref.name}-{k}"
        taken.add(n)
        out.append(DatasetRef(n, ref.root, ref.layout, ref.taxonomy))
    return out


def run(args) -> int:
    from ..doctor.options import Options
    from ..doctor.run import findings_table, run_doctor, summary_table
    from ..jobs.dask_runner import check_scheduler

    refs = datasets_of(args)
    k = workers(args)
    if args.scheduler:
        check_scheduler(args.scheduler)
    opts = Options(fingerprint_stems=not args.no_stem_fingerprints)
    report = run_doctor(refs, out=args.out, options=opts, workers=k,
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
          f"{out / 'findings.csv'}; apply it with `exclude_flagged: {out / 'doctor.json'}` "
          f"in a recipe or `stemforge generate ... --exclude {out}`")
    worst = report.worst()
    return 1 if worst in ("warning", "error") else 0
