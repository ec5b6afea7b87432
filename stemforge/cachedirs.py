"""Where a dataset root's cache lives: the default directory, and the one remembered for a root
built with ``--cache DIR`` (``$STEMFORGE_CACHE_DIR/roots/<root name>-<hash>.json``)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .atomic import atomic_file

INDEX_FILE = "index.jsonl"


def cache_base() -> Path:
    return Path(os.environ.get("STEMFORGE_CACHE_DIR") or Path.home() / ".cache" / "stemforge")


def _root_slug(root: Path) -> str:
    h = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:10]
    return f"{Path(root).resolve().name}-{h}"


def default_cache_dir(root: Path) -> Path:
    return cache_base() / _root_slug(root)


def _cache_pointer(root: Path) -> Path:
    return cache_base() / "roots" / f"{_root_slug(root)}.json"


def remembered_cache_dir(root: Path) -> Path | None:
    """The cache directory remembered for ``root`` (set by building it with ``cache_dir``), or
    None when the root uses its default one."""
    try:
        d = json.loads(_cache_pointer(root).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("root") != str(Path(root).resolve()) \
            or not isinstance(d.get("cache_dir"), str):
        return None
    return Path(d["cache_dir"])


def remember_cache_dir(root: Path, cache_dir: Path) -> None:
    """Make ``cache_dir`` the one every later use of ``root`` opens (the default: forget)."""
    pointer = _cache_pointer(root)
    cache_dir = Path(cache_dir).resolve()
    if cache_dir == default_cache_dir(root).resolve():
        pointer.unlink(missing_ok=True)
        return
    pointer.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(pointer, "w", fsync=False) as fh:
        fh.write(json.dumps({"root": str(Path(root).resolve()), "cache_dir": str(cache_dir)}) + "\n")


def resolve_cache_dir(root: Path, cache_dir=None) -> tuple[Path, str]:
    """``(cache directory, how it was chosen)`` for ``root``: ``given`` (``cache_dir``),
    ``remembered`` (an earlier build with ``cache_dir``) or ``default``."""
    if cache_dir is not None:
        return Path(cache_dir), "given"
    remembered = remembered_cache_dir(root)
    if remembered is not None and (remembered / INDEX_FILE).is_file():
        return remembered, "remembered"
    return default_cache_dir(root), "default"
