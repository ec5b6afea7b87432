"""The on-disk layout of a generated set, shared by generate, regenerate and export-jams::

    DIR/stemforge-job.json        what produced the set (recipe, seed, epoch, n, format, index)
    DIR/manifest.csv              one row per item (written when a run completes)
    DIR/<id>/mixture.<ext>        <id> = item index zero-padded to 6 digits ("000000")
    DIR/<id>/<target>.<ext>       one file per recipe target, ext = wav | flac
    DIR/<id>/unmastered.<ext>     the targets' sum, only when the recipe's mastering bus is
                                  non-linear (master: {linear: false}; the mixture is then
                                  the bus's output, not that sum)
    DIR/<id>/spec.json            the MixSpec; written LAST, so it marks the item complete

Every file is written atomically (hidden temp file ``.<name>.<random>.part`` in the same folder,
fsync, rename). Leftover temp files from a killed run are hidden dot-files; :func:`clean_temp`
removes them when a run resumes.
"""
from __future__ import annotations

import io as _io
import struct
from pathlib import Path

import numpy as np

from ..errors import StemforgeError

JOB_FILE = "stemforge-job.json"
MANIFEST_FILE = "manifest.csv"
SPEC_FILE = "spec.json"
MIX_NAME = "mixture"
UNMASTERED_NAME = "unmastered"  # = stemforge.mixing.master.UNMASTERED
LOCK_FILE = ".stemforge.lock"
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}
TEMP_SUFFIX = ".part"


class JobError(StemforgeError):
    """A batch job cannot run or finish: output folder unusable, disk full, mismatching job."""


def item_id(i: int) -> str:
    """``7 -> "000007"``."""
    return f"{int(i):06d}"


def item_dir(out: Path, i: int) -> Path:
    return Path(out) / item_id(i)


def audio_names(targets: list[str], fmt: str, unmastered: bool = False) -> list[str]:
    """File names of one item's audio: mixture first, then the targets in recipe order, then
    (``unmastered``: a non-linear mastering bus) the un-mastered sum."""
    return [f"{n}.{fmt}" for n in [MIX_NAME, *targets, *([UNMASTERED_NAME] if unmastered
                                                         else [])]]


def item_audio_names(spec, fmt: str) -> list[str]:
    """:func:`audio_names` of the item a spec describes."""
    return audio_names(spec.targets, fmt, unmastered=not spec.master_linear)


def item_arrays(spec, rendered) -> list:
    """The arrays :func:`item_audio_names` names, from a render or a ``Mixture`` of ``spec``:
    mix, targets in spec order, and the un-mastered sum when the bus is non-linear."""
    extra = [] if spec.master_linear else [rendered.unmastered]
    return [rendered.mix, *(rendered.targets[t] for t in spec.targets), *extra]


def is_complete(out: Path, i: int) -> bool:
    return (item_dir(out, i) / SPEC_FILE).is_file()


def encode(audio: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """``(channels, frames)`` float32 -> file bytes: WAV 32-bit float (bit-exact) or FLAC PCM_24.

    The same bytes every time for the same input (generate and regenerate --verify rely on it).
    WAV is written here rather than by libsndfile, whose float WAV files carry a ``PEAK`` chunk
    stamped with the current time (two writes of one signal a second apart differ)."""
    if fmt not in FORMATS:
        raise JobError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "wav":
        return wav_float32(audio, sample_rate)
    import soundfile as sf

    container, subtype = FORMATS[fmt]
    buf = _io.BytesIO()
    sf.write(buf, np.ascontiguousarray(np.asarray(audio).T), int(sample_rate), subtype=subtype,
             format=container)
    return buf.getvalue()


def wav_float32(audio: np.ndarray, sample_rate: int) -> bytearray:
    """``(channels, frames)`` -> a canonical WAVE_FORMAT_IEEE_FLOAT file (RIFF, ``fmt `` of 18
    bytes, ``fact``, ``data``; little-endian float32 interleaved). Deterministic: no clock, no
    PEAK chunk. Read back by soundfile/libsndfile, scipy, ffmpeg.

    One buffer of the file's size is allocated and the samples are interleaved straight into it
    (no intermediate copies: large short-lived allocations cost page faults)."""
    a = np.asarray(audio)
    if a.ndim != 2:
        raise JobError(f"audio to encode must be (channels, frames), got shape {a.shape}")
    channels, frames = a.shape
    block = 4 * channels
    nbytes = block * frames
    fmt_chunk = struct.pack("<HHIIHHH", 3, channels, int(sample_rate),
                            int(sample_rate) * block, block, 32, 0)
    head = (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt_chunk) + 12 + 8 + nbytes) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
            + b"fact" + struct.pack("<II", 4, frames)
            + b"data" + struct.pack("<I", nbytes))
    buf = bytearray(len(head) + nbytes)
    buf[:len(head)] = head
    np.frombuffer(buf, dtype="<f4", offset=len(head)).reshape(frames, channels)[...] = a.T
    return buf


def temp_files(out: Path) -> list[Path]:
    """Hidden temp files left by interrupted atomic writes in DIR and its item folders."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = list(out.glob(f".*{TEMP_SUFFIX}"))
    found += out.glob(f"*/.*{TEMP_SUFFIX}")
    return sorted(found)


def clean_temp(out: Path) -> int:
    """Remove leftover temp files (call only while holding the job lock). Returns the count."""
    n = 0
    for p in temp_files(out):
        p.unlink(missing_ok=True)
        n += 1
    return n
