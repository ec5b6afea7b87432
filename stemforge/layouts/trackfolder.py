"""Generic aligned multitrack folders: ``<root>/[<split>/]<track>/<stem>.{wav,flac}``.

Stem names are the file names without suffix. A file named ``mixture`` or ``mix`` is taken as the
real mixture, not a stem. A first-level folder holding track folders (rather than audio files)
is a split (its name becomes the split, e.g. train/valid/test).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..audio.io import SOUNDFILE_SUFFIXES
from .base import Layout, SourceRef, TrackEntry, audio_files, register, subdirs

SUFFIXES = (".wav", ".flac")
MIXTURE_NAMES = ("mixture", "mix")


def _track_dirs(root: Path) -> list[tuple[str | None, Path, list[Path]]]:
    out = []
    for d in subdirs(root):
        files = audio_files(d, SUFFIXES)
        if files:
            out.append((None, d, files))
        else:
            for t in subdirs(d):
                tf = audio_files(t, SUFFIXES)
                if tf:
                    out.append((d.name, t, tf))
    return out


def name_share(dirs: list[tuple[str | None, Path, list[Path]]]) -> float:
    """Fraction of track folders that hold the most common file name (1.0 = all share one)."""
    if not dirs:
        return 0.0
    counts = Counter(f.name.rsplit(".", 1)[0] for _, _, files in dirs for f in files)
    return max(counts.values()) / len(dirs)


def scan(root: Path) -> list[TrackEntry]:
    tracks = []
    for split, tdir, files in _track_dirs(root):
        stems, mixture = {}, None
        for f in files:
            name = f.name.rsplit(".", 1)[0]
            if name.lower() in MIXTURE_NAMES:
                mixture = SourceRef(str(f))
            else:
                stems[name] = SourceRef(str(f))
        if not stems:
            continue
        tracks.append(
            TrackEntry(name=tdir.name, split=split, stems=stems, mixture=mixture,
                       folder=split or "")
        )
    return tracks


def detect(root: Path) -> bool:
    dirs = _track_dirs(root)
    if not dirs:
        return False
    if any(split is not None for split, _, _ in dirs):
        return True
    return len(dirs) == 1 or name_share(dirs) > 0.5


LAYOUT = register(
    Layout(
        name="trackfolder",
        scan=scan,
        detect=detect,
        description="aligned stems: <root>/[<split>/]<track>/<stem>.{wav,flac}",
        generic=True,
    )
)

assert set(SUFFIXES) <= set(SOUNDFILE_SUFFIXES)
