"""``stemforge generate RECIPE --index ROOT --n N --out DIR``: write a fixed set of mixtures."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("generate", help="write N mixtures (+ targets, specs, manifest) to a "
                       "folder; resumable, atomic, optionally on Dask")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--index", required=True, metavar="ROOT",
                   help="dataset root (its cached index is built or reused) or an index.jsonl")
    p.add_argument("--n", type=int, required=True, help="number of mixtures (items 0..N-1)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="job seed (default 0)")
    p.add_argument("--epoch", type=int, default=0, help="epoch (default 0)")
    p.add_argument("--format", choices=["wav", "flac"], default="wav",
                   help="wav = 32-bit float (bit-exact), flac = 24-bit PCM")
    p.add_argument("--workers", type=int, default=1,
                   help="K > 1: a local Dask cluster of K processes (default 1: in-process)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on an existing Dask cluster (workers need stemforge and the data "
                   "at the same paths)")
    p.add_argument("--continue", dest="allow_continue", action="store_true",
                   help="resume even if DIR was generated from another index location or "
                   "stemforge version (recipe, seed, epoch and format must still match)")
    p.add_argument("--no-fsync", action="store_true",
                   help="do not fsync each file: still atomic if the run is killed, but not "
                   "safe against power loss; faster on storage with slow fsync")
    p.add_argument("--exclude", metavar="DOCTOR.json",
                   help="drop the tracks, stems and spans `stemforge doctor` flagged for "
                   "exclusion (a doctor.json or its folder; same as the recipe's exclude:)")
    p.add_argument("--cache", help="cache directory for the index (default: see `index`)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def run(args) -> int:
    from ..index import Index
    from ..jobs.generate import generate
    from ..mixing.recipe import Recipe

    recipe = Recipe.load(args.recipe)
    if args.exclude:  # the recipe's `exclude:` field, set from the command line
        from ..doctor.exclude import ExclusionList

        excl = ExclusionList.coerce(args.exclude, field="--exclude")
        recipe = Recipe.from_dict({**recipe.to_dict(), "name": recipe.name,
                                   "exclude": excl.to_raw()})
    src = Path(args.index)
    if src.is_file():
        index = Index.load(src, progress=not args.no_progress)
    else:
        index = Index.build(src, cache_dir=args.cache, progress=not args.no_progress)
    res = generate(recipe, index, args.n, args.out, seed=args.seed, epoch=args.epoch,
                   fmt=args.format, workers=args.workers, scheduler=args.scheduler,
                   allow_continue=args.allow_continue, progress=not args.no_progress,
                   fsync=not args.no_fsync)
    rate = res.written / res.seconds if res.seconds > 0 else float("inf")
    print(f"{res.out}: {res.n} mixtures complete ({res.written} written, {res.skipped} already "
          f"there) in {res.seconds:.2f} s ({rate:.1f} mixtures/s)")
    if res.warnings:
        print(f"{res.warnings} silence-policy warning(s) recorded in the specs")
    print(f"manifest: {Path(res.out) / 'manifest.csv'}")
    return 0
