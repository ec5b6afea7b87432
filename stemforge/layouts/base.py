"""Records a layout reader returns, and the layout registry.

A layout is a pure function ``scan(root) -> list[TrackEntry]`` that only lists files (no audio
decoding), a cheap ``detect(root)`` used for auto-detection, and default groups. ``detect``
returns how well the tree fits: a bool, or the share (0..1) of the tree's tracks that hold what
the layout expects (see :func:`stemforge.layouts.detect` for how the shares are weighed).
The Index probes and analyses the audio afterwards.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import LayoutError


@dataclass(frozen=True)
class SourceRef:
    """Where one stem's audio lives: a file, and for multi-stream MP4 the audio stream index.

    ``paths`` holds more than one file when several source files are summed into one stem
    (MoisesDB); ``path`` is then the first of them. ``channel`` selects one channel of the
    file(s) as a mono stem (MIR-1K / iKala: left = accompaniment, right = vocals).
    """

    path: str
    stream: int | None = None
    label: str | None = None
    extra_paths: tuple[str, ...] = ()
    channel: int | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path, *self.extra_paths)


@dataclass
class TrackEntry:
    """One track as a layout sees it: a name, a split, its stems and optional real mixture."""

    name: str
    split: str | None
    stems: dict[str, SourceRef]
    mixture: SourceRef | None = None
    folder: str = ""  # the track's id prefix, usually its split folder
    meta: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. stems the layout skipped, and why

    @property
    def id(self) -> str:
        return f"{self.folder}/{self.name}" if self.folder else self.name


@dataclass(frozen=True)
class Layout:
    name: str
    scan: Callable[[Path], list[TrackEntry]]
    detect: Callable[[Path], bool | float]
    description: str
    groups: dict[str, list[str]] = field(default_factory=dict)
    generic: bool = False  # generic layouts yield to specific ones in auto-detection


REGISTRY: dict[str, Layout] = {}


def register(layout: Layout) -> Layout:
    REGISTRY[layout.name] = layout
    return layout


def audio_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Audio files directly inside ``folder`` (hidden files skipped), sorted by name."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise LayoutError(f"{folder}: cannot list folder ({e.strerror})") from e
    return [
        Path(e.path)
        for e in entries
        if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(suffixes)
    ]


def subdirs(folder: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise LayoutError(f"{folder}: cannot list folder ({e.strerror})") from e
    return [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")]
