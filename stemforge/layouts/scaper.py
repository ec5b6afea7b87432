"""Scaper's source folders with coherent tracks: ``<root>/<label>/<song>.{wav,flac}``.

As Scaper's ``fg_path`` (labels are folder names) with the seed tutorial's nussl trick: files
that share a name across label folders are the stems of one song, so ``vocals/A.wav`` and
``drums/A.wav`` form the track ``A`` with stems ``vocals`` and ``drums`` (a song missing from
a label folder simply lacks that stem). Track ids are the file names without suffix.

Auto-detection picks this layout only on clear evidence, since ``<root>/<track>/<stem>.wav``
(trackfolder) has the same shape: at least two label folders holding audio files only, every
file name found in at least two of them, and more distinct songs than label folders (a
trackfolder tree has many track folders and few stem names). Otherwise pass ``--layout scaper``.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .base import Layout, SourceRef, TrackEntry, audio_files, register, subdirs
from .trackfolder import SUFFIXES


def _labels(root: Path) -> list[tuple[Path, list[Path]]]:
    return [(d, files) for d in subdirs(root) if (files := audio_files(d, SUFFIXES))]


def scan(root: Path) -> list[TrackEntry]:
    songs: dict[str, dict[str, SourceRef]] = defaultdict(dict)
    for d, files in _labels(root):
        for f in files:
            songs[f.name.rsplit(".", 1)[0]][d.name] = SourceRef(str(f), label=d.name)
    return [TrackEntry(name=name, split=None, stems=stems) for name, stems in sorted(songs.items())]


def detect(root: Path) -> bool:
    labels = _labels(root)
    if len(labels) < 2 or len(labels) != len(subdirs(root)):
        return False
    if any(subdirs(d) for d, _ in labels):
        return False
    count: dict[str, int] = defaultdict(int)
    for _, files in labels:
        for f in files:
            count[f.name.rsplit(".", 1)[0]] += 1
    return min(count.values()) >= 2 and len(count) > len(labels)


LAYOUT = register(
    Layout(
        name="scaper",
        scan=scan,
        detect=detect,
        description="Scaper source folders, songs shared across labels: <root>/<label>/<song>.{wav,flac}",
    )
)
