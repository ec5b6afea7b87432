"""Two-channel vocal/accompaniment files (MIR-1K, iKala): ``<root>/Wavfile/<clip>.wav``.

Each clip is one stereo file whose left channel (0) is the accompaniment and right channel (1)
the singing voice, as both datasets document; each channel becomes a mono stem
(``accompaniment``, ``vocals``) through ``SourceRef.channel``. Their sum is available as the
``linear_mixture`` group. MIR-1K's ``UndividedWavfile`` (whole songs) and the annotation folders
are ignored. There is no official split.
"""
from __future__ import annotations

from pathlib import Path

from .base import Layout, SourceRef, TrackEntry, audio_files, register

FOLDER = "Wavfile"
CHANNELS = {"accompaniment": 0, "vocals": 1}
GROUPS = {"linear_mixture": list(CHANNELS)}


def _files(root: Path) -> list[Path]:
    d = root / FOLDER
    return audio_files(d, (".wav",)) if d.is_dir() else []


def scan(root: Path) -> list[TrackEntry]:
    return [
        TrackEntry(
            name=f.name.rsplit(".", 1)[0], split=None,
            stems={s: SourceRef(str(f), label=s, channel=c) for s, c in CHANNELS.items()},
            meta={"channels": dict(CHANNELS)})
        for f in _files(root)
    ]


def detect(root: Path) -> bool:
    return bool(_files(root))


LAYOUT = register(Layout(
    name="channelsplit", scan=scan, detect=detect,
    description="MIR-1K / iKala: <root>/Wavfile/<clip>.wav, left = accompaniment, "
                "right = vocals",
    groups=GROUPS,
))
