"""Dataset layout readers, one module each, registered by name.

``get(name)`` returns a registered :class:`Layout`; ``detect(root)`` picks the layout of a
dataset root by weighing how much of the tree each layout explains (see :func:`detect`).
Adding a layout = adding one module here and importing it below.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LayoutError
from .base import REGISTRY, Layout, SourceRef, TrackEntry, register
from . import musdb18, musdb18hq, trackfolder, labelfolder  # noqa: F401  (registration)
from . import dsd100, medleydb, slakh, moisesdb, channelsplit, csvmanifest, scaper  # noqa: F401

__all__ = ["Layout", "SourceRef", "TrackEntry", "register", "get", "detect", "names",
           "scores"]


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


#: a specific layout whose share of the tree reaches this is taken without asking
STRONG = 0.8


def scores(root: Path) -> dict[str, float]:
    """Every registered layout's fit of ``root`` (0 = no match, 1 = every track fits)."""
    return {name: float(lay.detect(root)) for name, lay in sorted(REGISTRY.items())}


def detect(root: Path) -> Layout:
    """The layout of ``root``, weighing the evidence across the whole tree.

    A specific layout (musdb18hq, dsd100, ...) whose expected stems most tracks hold (share >=
    :data:`STRONG`) wins; a specific layout that fits only part of the tree competes with the
    generic ones (trackfolder, labelfolder) and a tie is refused; otherwise the one generic
    layout that matches. Errors list the candidate layouts (with their shares when partial).
    """
    root = check_root(root)
    fit = {n: s for n, s in scores(root).items() if s > 0}
    specific = {n: s for n, s in fit.items() if not REGISTRY[n].generic}
    generic = [n for n in fit if REGISTRY[n].generic]
    strong = [n for n, s in specific.items() if s >= STRONG]
    if len(strong) > 1:
        raise _ambiguous(root, strong, fit)
    if strong:
        return REGISTRY[strong[0]]
    cands = [*specific, *generic]
    if len(cands) == 1:
        return REGISTRY[cands[0]]
    if not cands:
        raise LayoutError(
            f"{root}: no known dataset layout matches; pass --layout with one of "
            f"{', '.join(names())} (see docs/datasets.md)"
        )
    raise _ambiguous(root, cands, fit)


def _ambiguous(root: Path, cands: list[str], fit: dict[str, float]) -> LayoutError:
    def show(n: str) -> str:
        s = fit[n]
        return n if s >= 1 or REGISTRY[n].generic else f"{n} ({s:.0%} of its tracks fit)"

    return LayoutError(
        f"{root}: ambiguous layout, it matches {', '.join(show(c) for c in sorted(cands))}; "
        "pass --layout to choose"
    )
