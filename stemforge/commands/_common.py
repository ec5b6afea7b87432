"""Argument helpers shared by the commands: one grammar for every command.

* The dataset is ``--index ROOT`` in every command that takes one; commands that act on the
  dataset itself (``index``, ``info``, ``prepare``, ``oracle``) also take it as their first
  positional argument. ``--layout``, ``--cache``, ``--group`` and ``--taxonomy`` go with it.
  Commands that mix (``generate``, ``regenerate``) take several datasets of a recipe's
  ``datasets:``, one ``--index NAME=ROOT`` each, with ``--layout/--cache/--taxonomy
  NAME=VALUE`` for one of them (a plain value applies to all, except ``--cache``).
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


class _Collect(argparse.Action):
    """``store`` (the last value in ``dest``) that also keeps every value given, in order, in
    ``all_<dest>``: ``--index``, ``--layout``, ``--cache`` and ``--taxonomy`` take
    ``NAME=VALUE`` once per dataset."""

    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, self.dest, value)
        key = f"all_{self.dest}"
        setattr(namespace, key, [*(getattr(namespace, key, None) or []), value])


def add_dataset_args(p: argparse.ArgumentParser, positional: bool = True,
                     aliases: tuple[str, ...] = (), required: bool = True,
                     what: str = "dataset root folder, or an index.jsonl file",
                     several: bool = False) -> None:
    """``ROOT`` / ``--index ROOT`` and the options that say how to read the dataset.
    ``several``: the command takes several datasets (``--index NAME=ROOT`` once per
    dataset, a recipe's ``datasets:``); every command accepts ``NAME=ROOT`` for its one."""
    named = " (NAME=ROOT once per dataset of a recipe with datasets:)" if several else ""
    if positional:
        p.add_argument("root", nargs="?", metavar="ROOT", help=f"{what} (or --index ROOT)")
        p.add_argument("--index", *aliases, dest="index_opt", metavar="[NAME=]ROOT",
                       action=_Collect, help="the dataset, as the positional ROOT")
    else:
        p.add_argument("--index", *aliases, dest="root", metavar="[NAME=]ROOT",
                       required=required, action=_Collect, help=what + named)
    per = " (NAME=... for one dataset of several)" if several else ""
    p.add_argument("--layout", action=_Collect, metavar="[NAME=]LAYOUT",
                   help="dataset layout (default: the one remembered from the last "
                   "`stemforge index` of ROOT, else auto-detected; see docs/datasets.md)" + per)
    p.add_argument("--cache", action=_Collect, metavar="[NAME=]DIR",
                   help="cache directory for the index and decoded stems (default: "
                   "the one remembered for ROOT, else $STEMFORGE_CACHE_DIR or "
                   "~/.cache/stemforge/<root>-<hash>); remembered for ROOT" + per)
    p.add_argument("--group", action="append", default=[], metavar="NAME=STEM,STEM",
                   help="define a group of stems, e.g. accompaniment=drums,bass,other")
    p.add_argument("--taxonomy", action=_Collect, metavar="[NAME=]FILE.yaml",
                   help="map instrument labels to targets (target: [labels] or '*'; see "
                   "docs/datasets.md)" + per)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars and lines")
    p.set_defaults(several_datasets=several)


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


def _named(value: str) -> tuple[str | None, str]:
    """``("musdb", "/data/m")`` for ``musdb=/data/m``; ``(None, value)`` for a plain value
    (also a path that exists as written, ``=`` and all)."""
    from ..indexset import valid_dataset_name

    name, sep, rest = value.partition("=")
    if sep and rest and valid_dataset_name(name) and not Path(value).exists():
        return name, rest
    return None, value


def dataset_bindings(args) -> dict[str, str] | None:
    """``{name: root}`` when the datasets were given as ``--index NAME=ROOT`` (once per
    dataset), None for one plain ``--index ROOT`` (or the positional ROOT)."""
    given = list(getattr(args, "all_root", None) or getattr(args, "all_index_opt", None) or [])
    if not given:
        return None
    pairs = [_named(v) for v in given]
    if all(n is None for n, _ in pairs):
        if len(pairs) > 1:
            raise StemforgeError(f"--index given {len(pairs)} times ({', '.join(given)}); give "
                                 "one dataset, or name each: --index NAME=ROOT per dataset of a "
                                 "recipe with datasets:")
        return None
    if any(n is None for n, _ in pairs):
        plain = next(v for (n, _), v in zip(pairs, given, strict=True) if n is None)
        raise StemforgeError(f"--index {plain}: name every dataset (--index NAME=ROOT) when "
                             "several are given")
    out: dict[str, str] = {}
    for n, root in pairs:
        if n in out:
            raise StemforgeError(f"--index {n}=...: dataset {n!r} given twice")
        out[n] = root
    if len(out) > 1 and not getattr(args, "several_datasets", False):
        raise StemforgeError(f"this command takes one dataset, got {len(out)} (--index "
                             f"{', --index '.join(f'{k}={v}' for k, v in out.items())}); "
                             "several datasets are for generate and regenerate")
    return out


def dataset_root(args) -> str:
    """The dataset of a command: its positional ROOT or ``--index ROOT`` (one of them; a
    single ``--index NAME=ROOT`` is its ROOT)."""
    pos, opt = getattr(args, "root", None), getattr(args, "index_opt", None)
    binds = dataset_bindings(args)
    if binds is not None:
        if len(binds) > 1:
            raise StemforgeError(f"this command takes one dataset, got {len(binds)}")
        root = next(iter(binds.values()))
        if opt:
            opt = root
        else:
            pos = root
    if pos and opt and Path(pos) != Path(opt):
        raise StemforgeError(f"two datasets given ({pos} and --index {opt}); give one")
    root = pos or opt
    if not root:
        raise StemforgeError("no dataset given: pass its root folder (ROOT or --index ROOT)")
    return root


def per_dataset(args, option: str, names: list[str] | None) -> dict:
    """The values of ``--<option>`` per dataset: for one dataset (``names`` None) ``{None:
    value}`` (a ``NAME=`` form naming it is accepted); for several, ``{name: value}``, a plain
    value applying to every dataset (except ``--cache``: one cache folder per dataset)."""
    given = list(getattr(args, f"all_{option}", None) or [])
    out: dict = {}
    for v in given:
        n, value = _named(v)
        if names is None:
            out[None] = value
            continue
        if n is None:
            if option == "cache":
                raise StemforgeError(f"--cache {v}: each dataset needs its own cache folder; "
                                     "give --cache NAME=DIR per dataset")
            out.update(dict.fromkeys(names, value))
        elif n not in names:
            raise StemforgeError(f"--{option} {v}: no dataset {n!r} is given (--index "
                                 f"{', '.join(names)})")
        else:
            out[n] = value
    return out


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
    ``verify_content``: hash every file in full (``index --verify-content``). Several
    ``--index NAME=ROOT`` (commands made with ``several=True``) give an
    :class:`~stemforge.indexset.IndexSet`, each dataset with its ``--layout/--cache/--taxonomy
    NAME=...``."""
    from ..index import Index

    binds = None if root else dataset_bindings(args)
    groups = parse_groups(getattr(args, "group", []))
    progress = not getattr(args, "no_progress", False)
    if binds is not None and (len(binds) > 1 or getattr(args, "several_datasets", False)):
        from ..indexset import IndexSet

        names = list(binds)
        opts = {o: per_dataset(args, o, names) for o in ("layout", "cache", "taxonomy")}
        return IndexSet({n: Index.open(Path(r), layout=opts["layout"].get(n),
                                       cache_dir=opts["cache"].get(n), groups=groups,
                                       workers=workers, progress=progress,
                                       taxonomy=opts["taxonomy"].get(n),
                                       verify_content=verify_content)
                         for n, r in binds.items()})
    root = root or dataset_root(args)
    opts = {o: per_dataset(args, o, None).get(None) for o in ("layout", "cache", "taxonomy")}
    return Index.open(Path(root), layout=opts["layout"], cache_dir=opts["cache"], groups=groups,
                      workers=workers, progress=progress, taxonomy=opts["taxonomy"],
                      verify_content=verify_content)
