"""Dataset layout readers, one module each, registered by name.

``get(name)`` returns a registered :class:`Layout`; ``detect(root)`` picks the layout of a
dataset root when exactly one specific layout (or else exactly one generic layout) matches.
Adding a layout = adding one module here and importing it below.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LayoutError
from .base import REGISTRY, Layout, SourceRef, TrackEntry, register
from . import musdb18, musdb18hq, trackfolder, labelfolder  # noqa: F401  (registration)
from . import dsd100, medleydb, slakh, moisesdb, channelsplit, csvmanifest, scaper  # noqa: F401

__all__ = ["Layout", "SourceRef", "TrackEntry", "register", "get", "detect", "names"]


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str) -> Layout:
    if name not in REGISTRY:
        raise LayoutError(f"unknown layout {name!r}; known layouts: {', '.join(names())}")
    return REGISTRY[name]


def check_root(root: Path) -> Path:
    root = Path(root)
    if not root.exists():
        raise LayoutError(f"{root}: dataset root does not exist")
    if not root.is_dir():
        raise LayoutError(f"{root}: dataset root is not a folder")
    if not any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise LayoutError(f"{root}: dataset root is empty")
    return root


def detect(root: Path) -> Layout:
    """The one layout that matches ``root``; errors list the candidates when 0 or several match."""
    root = check_root(root)
    hits = [lay for lay in REGISTRY.values() if lay.detect(root)]
    specific = [lay for lay in hits if not lay.generic]
    cands = specific or hits
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise LayoutError(
            f"{root}: no known dataset layout matches; pass --layout with one of "
            f"{', '.join(names())} (see docs/datasets.md)"
        )
    raise LayoutError(
        f"{root}: ambiguous layout, it matches {', '.join(sorted(c.name for c in cands))}; "
        "pass --layout to choose"
    )
