"""DSD100 (SiSEC 2016): ``<root>/Mixtures/{Dev,Test}/<track>/mixture.wav`` and
``<root>/Sources/{Dev,Test}/<track>/{bass,drums,other,vocals}.wav``.

Split: ``Dev`` -> ``train``, ``Test`` -> ``test`` (track ids keep the folder: ``Dev/<track>``).
``mixture.wav`` is the optional real mixture. Groups as MUSDB18 (whose test set it became).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LayoutError
from .base import Layout, SourceRef, TrackEntry, audio_files, register, subdirs
from .musdb18 import GROUPS

STEMS = ["bass", "drums", "other", "vocals"]
SPLITS = {"Dev": "train", "Test": "test"}


def _track_dirs(root: Path) -> list[tuple[str, Path]]:
    out = []
    for folder in SPLITS:
        d = root / "Sources" / folder
        if d.is_dir():
            out += [(folder, t) for t in subdirs(d)
                    if any((t / f"{s}.wav").exists() for s in STEMS)]
    return out


def scan(root: Path) -> list[TrackEntry]:
    tracks = []
    for folder, tdir in _track_dirs(root):
        missing = [s for s in STEMS if not (tdir / f"{s}.wav").is_file()]
        if missing:
            raise LayoutError(
                f"{tdir}: DSD100 track is missing {', '.join(m + '.wav' for m in missing)}")
        mix = root / "Mixtures" / folder / tdir.name / "mixture.wav"
        tracks.append(TrackEntry(
            name=tdir.name, split=SPLITS[folder],
            stems={s: SourceRef(str(tdir / f"{s}.wav")) for s in STEMS},
            mixture=SourceRef(str(mix)) if mix.is_file() else None, folder=folder))
    return tracks


def detect(root: Path) -> float:
    """Share of the track folders under ``Sources/{Dev,Test}`` holding all four stems."""
    folders = [t for folder in SPLITS if (root / "Sources" / folder).is_dir()
               for t in subdirs(root / "Sources" / folder) if audio_files(t, (".wav",))]
    if not folders:
        return 0.0
    return sum(all((t / f"{s}.wav").is_file() for s in STEMS) for t in folders) / len(folders)


LAYOUT = register(Layout(
    name="dsd100", scan=scan, detect=detect,
    description="DSD100: <root>/Sources/{Dev,Test}/<track>/{bass,drums,other,vocals}.wav "
                "(+ <root>/Mixtures/{Dev,Test}/<track>/mixture.wav)",
    groups=GROUPS,
))
