"""MUSDB18-HQ: ``<root>/{train,test}/<Artist - Title>/{mixture,drums,bass,other,vocals}.wav``.

Same split and groups as MUSDB18; ``mixture.wav`` is the optional real mixture. A ``valid``
folder beside ``train`` and ``test`` (as ``stemforge experiment corpus`` writes) is split
``valid``.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LayoutError
from .base import Layout, SourceRef, TrackEntry, audio_files, register, subdirs
from .musdb18 import GROUPS, STEMS, musdb_split


def _track_dirs(root: Path) -> list[tuple[str, Path]]:
    out = []
    for folder in ("train", "valid", "test"):
        d = root / folder
        if d.is_dir():
            out += [(folder, t) for t in subdirs(d) if (t / "mixture.wav").exists()
                    or any((t / f"{s}.wav").exists() for s in STEMS)]
    return out


def scan(root: Path) -> list[TrackEntry]:
    tracks = []
    for folder, tdir in _track_dirs(root):
        missing = [s for s in STEMS if not (tdir / f"{s}.wav").is_file()]
        if missing:
            raise LayoutError(
                f"{tdir}: MUSDB18-HQ track is missing {', '.join(m + '.wav' for m in missing)}"
            )
        mix = tdir / "mixture.wav"
        tracks.append(
            TrackEntry(
                name=tdir.name,
                split="valid" if folder == "valid" else musdb_split(folder, tdir.name),
                stems={s: SourceRef(str(tdir / f"{s}.wav")) for s in STEMS},
                mixture=SourceRef(str(mix)) if mix.is_file() else None,
                folder=folder,
            )
        )
    return tracks


def detect(root: Path) -> float:
    """Share of the track folders under ``train/``/``test/`` (folders holding ``.wav`` files)
    that hold all four MUSDB stems: a tree of other stems (``bass.wav`` beside ``soprano.wav``)
    is not MUSDB18-HQ, a MUSDB18-HQ tree with one damaged track still is."""
    folders = [t for folder in ("train", "test") if (root / folder).is_dir()
               for t in subdirs(root / folder) if audio_files(t, (".wav",))]
    if not folders:
        return 0.0
    full = sum(all((t / f"{s}.wav").is_file() for s in STEMS) for t in folders)
    return full / len(folders)


LAYOUT = register(
    Layout(
        name="musdb18hq",
        scan=scan,
        detect=detect,
        description="MUSDB18-HQ: <root>/{train,valid,test}/<track>/{mixture,drums,bass,other,vocals}.wav",
        groups=GROUPS,
    )
)
