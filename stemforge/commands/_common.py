"""Argument helpers shared by commands that take a dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import StemforgeError


def add_dataset_args(p: argparse.ArgumentParser, positional: bool = True) -> None:
    if positional:
        p.add_argument("root", help="dataset root folder, or an index.jsonl file")
    p.add_argument("--layout", help="dataset layout (default: auto-detect)")
    p.add_argument("--cache", help="cache directory for the index and decoded stems "
                   "(default: $STEMFORGE_CACHE_DIR or ~/.cache/stemforge/<root>-<hash>)")
    p.add_argument("--group", action="append", default=[], metavar="NAME=STEM,STEM",
                   help="define a group of stems, e.g. accompaniment=drums,bass,other")
    p.add_argument("--workers", type=int, default=None, help="worker processes: for indexing, the analysis pool; for evaluate/oracle, the size of the local Dask cluster (1 = in-process)")
    p.add_argument("--taxonomy", metavar="FILE.yaml", help="map instrument labels to targets "
                   "(target: [labels] or '*'; see docs/datasets.md)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def count(text: str) -> int:
    """argparse type for seeds and epochs: an integer >= 0 (they seed ``SeedSequence``)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def parse_groups(specs: list[str]) -> dict[str, list[str]]:
    groups = {}
    for spec in specs:
        name, sep, members = spec.partition("=")
        stems = [m.strip() for m in members.split(",") if m.strip()]
        if not sep or not name.strip() or not stems:
            raise StemforgeError(f"--group {spec!r}: expected NAME=STEM,STEM,...")
        groups[name.strip()] = stems
    return groups


def open_index(args, root: str | None = None, verify_content: bool = False):
    from ..index import Index

    root = root or args.root
    p = Path(root)
    if p.is_file() or p.name == "index.jsonl":
        return Index.load(p, progress=not getattr(args, "no_progress", False),
                          verify_content=verify_content)
    return Index.build(p, layout=getattr(args, "layout", None), cache_dir=getattr(args, "cache", None),
                       groups=parse_groups(getattr(args, "group", [])),
                       workers=getattr(args, "workers", None),
                       progress=not getattr(args, "no_progress", False),
                       taxonomy=getattr(args, "taxonomy", None), verify_content=verify_content)
