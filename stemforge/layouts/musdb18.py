"""MUSDB18 (stem.mp4): ``<root>/{train,test}/<Artist - Title>.stem.mp4``.

Each file holds 5 AAC streams: 0 mixture (mastered, kept as the optional real mixture, never
assumed equal to the stem sum), 1 drums, 2 bass, 3 other, 4 vocals. Split: ``test`` folder →
``test``; ``train`` folder → ``valid`` for the 14 official validation tracks, else ``train``.
"""
from __future__ import annotations

from pathlib import Path

from .base import Layout, SourceRef, TrackEntry, audio_files, register

STREAMS = {"drums": 1, "bass": 2, "other": 3, "vocals": 4}
STEMS = ["drums", "bass", "other", "vocals"]
GROUPS = {"accompaniment": ["drums", "bass", "other"], "linear_mixture": STEMS}

VALIDATION_TRACKS = frozenset(
    [
        "Actions - One Minute Smile",
        "Clara Berry And Wooldog - Waltz For My Victims",
        "Johnny Lokke - Promises & Lies",
        "Patrick Talbot - A Reason To Leave",
        "Triviul - Angelsaint",
        "Alexander Ross - Goodbye Bolero",
        "Fergessen - Nos Palpitants",
        "Leaf - Summerghost",
        "Skelpolu - Human Mistakes",
        "Young Griffo - Pennies",
        "ANiMAL - Rockshow",
        "James May - On The Line",
        "Meaxic - Take A Step",
        "Traffic Experiment - Sirens",
    ]
)
SUFFIX = ".stem.mp4"


def musdb_split(folder: str, name: str) -> str:
    if folder == "test":
        return "test"
    return "valid" if name in VALIDATION_TRACKS else "train"


def _files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for folder in ("train", "test"):
        d = root / folder
        if d.is_dir():
            out += [(folder, p) for p in audio_files(d, (SUFFIX,))]
    return out


def scan(root: Path) -> list[TrackEntry]:
    tracks = []
    for folder, path in _files(root):
        name = path.name[: -len(SUFFIX)]
        stems = {s: SourceRef(str(path), STREAMS[s]) for s in STEMS}
        tracks.append(
            TrackEntry(
                name=name,
                split=musdb_split(folder, name),
                stems=stems,
                mixture=SourceRef(str(path), 0),
                folder=folder,
                meta={"streams": 5},
            )
        )
    return tracks


def detect(root: Path) -> bool:
    return bool(_files(root))


LAYOUT = register(
    Layout(
        name="musdb18",
        scan=scan,
        detect=detect,
        description="MUSDB18 stem.mp4: <root>/{train,test}/<Artist - Title>.stem.mp4",
        groups=GROUPS,
    )
)
