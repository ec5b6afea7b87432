"""``stemforge generate RECIPE --index ROOT --n N --out DIR``: write a fixed set of mixtures."""
from __future__ import annotations

from pathlib import Path

from ._common import (add_dataset_args, add_recipe_args, add_workers_arg, count, load_recipe,
                      open_index, workers)


def add_parser(sub):
    p = sub.add_parser("generate", help="write N mixtures (+ targets, specs, manifest) to a "
                       "folder; resumable, atomic, optionally on Dask")
    add_recipe_args(p)
    add_dataset_args(p, positional=False, several=True)
    p.add_argument("--n", type=int, required=True, help="number of mixtures (items 0..N-1)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--seed", type=count, default=0, help="job seed (default 0)")
    p.add_argument("--epoch", type=count, default=0, help="epoch (default 0)")
    p.add_argument("--format", choices=["wav", "flac"], default="wav",
                   help="wav = 32-bit float (bit-exact), flac = 24-bit PCM")
    add_workers_arg(p, 1, "rendering (K > 1: a local Dask cluster)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on an existing Dask cluster (workers need stemforge and the data "
                   "at the same paths)")
    p.add_argument("--continue", dest="allow_continue", action="store_true",
                   help="resume even if DIR was generated from another index location or "
                   "stemforge version (recipe, seed, epoch, format and the audio itself must "
                   "still match)")
    p.add_argument("--no-fsync", action="store_true",
                   help="do not fsync each file: still atomic if the run is killed, but not "
                   "safe against power loss; faster on storage with slow fsync")
    p.add_argument("--exclude", metavar="DOCTOR.json",
                   help="drop the tracks, stems and spans `stemforge doctor` flagged for "
                   "exclusion (a doctor.json or its folder; the recipe's exclude_flagged:)")
    return p


def run(args) -> int:
    from ..jobs.generate import generate

    recipe = load_recipe(args)
    if args.exclude:  # the recipe's `exclude_flagged:` field, set from the command line
        recipe = recipe.with_overrides({"exclude_flagged": str(args.exclude)})
    k = workers(args)
    index = open_index(args)
    res = generate(recipe, index, args.n, args.out, seed=args.seed, epoch=args.epoch,
                   fmt=args.format, workers=k, scheduler=args.scheduler,
                   allow_continue=args.allow_continue, progress=not args.no_progress,
                   fsync=not args.no_fsync)
    rate = res.written / res.seconds if res.seconds > 0 else float("inf")
    print(f"{res.out}: {res.n} mixtures complete ({res.written} written, {res.skipped} already "
          f"there) in {res.seconds:.2f} s ({rate:.1f} mixtures/s)")
    if res.warnings:
        print(f"{res.warnings} silence-policy warning(s) recorded in the specs")
    print(f"manifest: {Path(res.out) / 'manifest.csv'}")
    return 0
