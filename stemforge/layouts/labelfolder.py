"""Scaper-style source folders: ``<root>/<label>/<file>.{wav,flac}``.

Sources are unaligned: every file is its own single-stem track whose stem name is the folder's
label (so a mixture draws, e.g., one ``vocals`` file and one ``drums`` file independently).
Track ids are ``<label>/<file name without suffix>``.
"""
from __future__ import annotations

from pathlib import Path

from .base import Layout, SourceRef, TrackEntry, audio_files, register, subdirs
from .trackfolder import SUFFIXES, name_share


def _label_dirs(root: Path) -> list[tuple[None, Path, list[Path]]]:
    out = []
    for d in subdirs(root):
        files = audio_files(d, SUFFIXES)
        if files:
            out.append((None, d, files))
    return out


def scan(root: Path) -> list[TrackEntry]:
    tracks = []
    for _, d, files in _label_dirs(root):
        label = d.name
        for f in files:
            tracks.append(
                TrackEntry(
                    name=f.name.rsplit(".", 1)[0],
                    split=None,
                    stems={label: SourceRef(str(f), label=label)},
                    folder=label,
                )
            )
    return tracks


def detect(root: Path) -> bool:
    dirs = _label_dirs(root)
    if not dirs:
        return False
    # depth-2 audio (split/track/stem) is a trackfolder, not labels
    if any(audio_files(t, SUFFIXES) for d in subdirs(root) for t in subdirs(d)):
        return False
    return len(dirs) == 1 or name_share(dirs) <= 0.5


LAYOUT = register(
    Layout(
        name="labelfolder",
        scan=scan,
        detect=detect,
        description="Scaper-style unaligned sources: <root>/<label>/<file>.{wav,flac}",
        generic=True,
    )
)
