"""Argument helpers shared by the commands: one grammar for every command.

* The dataset is ``--index ROOT`` in every command that takes one; commands that act on the
  dataset itself (``index``, ``info``, ``prepare``, ``oracle``) also take it as their first
  positional argument. ``--layout``, ``--cache``, ``--group`` and ``--taxonomy`` go with it.
* A recipe is always positional: a YAML file or the name of a packaged recipe
  (``stemforge recipes``), with ``--set FIELD=VALUE`` overrides.
* Output is always ``--out``.
* ``--workers K`` is always the number of worker processes doing the command's parallel work
  (``1`` = in this process).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import StemforgeError


def add_dataset_args(p: argparse.ArgumentParser, positional: bool = True,
                     aliases: tuple[str, ...] = (), required: bool = True,
                     what: str = "dataset root folder, or an index.jsonl file") -> None:
    """``ROOT`` / ``--index ROOT`` and the options that say how to read the dataset."""
    if positional:
        p.add_argument("root", nargs="?", metavar="ROOT", help=f"{what} (or --index ROOT)")
        p.add_argument("--index", *aliases, dest="index_opt", metavar="ROOT",
                       help="the dataset, as the positional ROOT")
    else:
        p.add_argument("--index", *aliases, dest="root", metavar="ROOT", required=required,
                       help=what)
    p.add_argument("--layout", help="dataset layout (default: the one remembered from the last "
                   "`stemforge index` of ROOT, else auto-detected; see docs/datasets.md)")
    p.add_argument("--cache", help="cache directory for the index and decoded stems (default: "
                   "the one remembered for ROOT, else $STEMFORGE_CACHE_DIR or "
                   "~/.cache/stemforge/<root>-<hash>); remembered for ROOT")
    p.add_argument("--group", action="append", default=[], metavar="NAME=STEM,STEM",
                   help="define a group of stems, e.g. accompaniment=drums,bass,other")
    p.add_argument("--taxonomy", metavar="FILE.yaml", help="map instrument labels to targets "
                   "(target: [labels] or '*'; see docs/datasets.md)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars and lines")


def add_workers_arg(p: argparse.ArgumentParser, default: int | None, what: str,
                    *aliases: str) -> None:
    """``--workers K``: worker processes for the command's parallel work, the same meaning in
    every command (``1`` = in this process)."""
    shown = "all cores" if default is None else str(default)
    p.add_argument("--workers", *aliases, type=int, default=default, metavar="K",
                   help=f"worker processes for {what} (default {shown}; 1 = in this process)")


def workers(args) -> int | None:
    """``args.workers``, checked (a one-line error for K < 1)."""
    k = getattr(args, "workers", None)
    if k is not None and k < 1:
        raise StemforgeError(f"--workers {k}: expected 1 or more worker processes")
    return k


def add_recipe_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """The positional recipe and its ``--set`` overrides."""
    p.add_argument("recipe", nargs=None if required else "?", metavar="RECIPE",
                   help="recipe YAML file, or the name of a packaged recipe (`stemforge recipes`)")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   metavar="FIELD=VALUE",
                   help="override a recipe field, e.g. --set split=test --set duration=3 "
                        "--set stems.vocals.snr=\"[uniform,-3,3]\" (YAML values; repeatable)")


def load_recipe(args, name: str | None = None):
    """The recipe of ``args`` (``args.recipe`` or ``name``) with ``--set`` overrides applied."""
    from ..mixing.recipe import Recipe

    return Recipe.load(name or args.recipe, overrides=getattr(args, "overrides", None) or None)


def dataset_root(args) -> str:
    """The dataset of a command: its positional ROOT or ``--index ROOT`` (one of them)."""
    pos, opt = getattr(args, "root", None), getattr(args, "index_opt", None)
    if pos and opt and Path(pos) != Path(opt):
        raise StemforgeError(f"two datasets given ({pos} and --index {opt}); give one")
    root = pos or opt
    if not root:
        raise StemforgeError("no dataset given: pass its root folder (ROOT or --index ROOT)")
    return root


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


def open_index(args, root: str | None = None, workers: int | None = None,
               verify_content: bool = False):
    """The dataset of ``args`` as an Index (built or reused; the layout remembered or
    detected, ``--layout`` to override). ``workers``: the analysis pool when it must index;
    ``verify_content``: hash every file in full (``index --verify-content``)."""
    from ..index import Index

    root = root or dataset_root(args)
    return Index.open(Path(root), layout=getattr(args, "layout", None),
                      cache_dir=getattr(args, "cache", None),
                      groups=parse_groups(getattr(args, "group", [])),
                      workers=workers, progress=not getattr(args, "no_progress", False),
                      taxonomy=getattr(args, "taxonomy", None), verify_content=verify_content)
