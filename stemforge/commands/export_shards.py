"""``stemforge export-shards DIR``: WebDataset-style tar shards of a generated set."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("export-shards", help="pack a generated set into WebDataset-style tar "
                       "shards (DIR/shards/shard-NNNNNN.tar + shards.json) for streaming")
    p.add_argument("dir", metavar="DIR", help="folder written by `stemforge generate`")
    p.add_argument("--per-shard", type=int, default=1000,
                   help="items per shard (default 1000)")
    p.add_argument("--out", "--dest", dest="dest", metavar="DIR",
                   help="output folder for the shards (default DIR/shards)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars and lines")
    return p


def run(args) -> int:
    from ..jobs.shards import export_shards

    paths = export_shards(args.dir, per_shard=args.per_shard, dest=args.dest,
                          progress=not args.no_progress)
    where = paths[0].parent if paths else args.dest
    print(f"{args.dir}: wrote {len(paths)} shard(s) to {where} (index: shards.json)")
    return 0
