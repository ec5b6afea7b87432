"""Audio input/output. Every reader returns ``float32`` arrays shaped ``(channels, frames)``.

* WAV/FLAC/OGG/AIFF go through soundfile, with true partial reads (seek + read).
* MUSDB18 ``.stem.mp4`` (and other MP4/M4A files) go through PyAV in-process: no system ffmpeg.
  A stem.mp4 holds several AAC streams; ``stream`` selects one (0 = mixture in MUSDB18).
  :func:`read_streams` decodes every audio stream in one demux pass.

All failures raise :class:`~stemforge.errors.AudioError` naming the file and the problem.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from ..errors import AudioError
from ..types import Frames, Hz

MP4_SUFFIXES = (".mp4", ".m4a")
SOUNDFILE_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".wave")
AUDIO_SUFFIXES = SOUNDFILE_SUFFIXES + MP4_SUFFIXES


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds: sample rate, channels, frames (per stream), number of audio streams."""

    sample_rate: Hz
    channels: int
    frames: Frames
    streams: int = 1


def is_mp4(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(MP4_SUFFIXES)


def _check_finite(audio: np.ndarray, path, stream=None) -> np.ndarray:
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        where = f"{path}" + (f" (stream {stream})" if stream is not None else "")
        raise AudioError(f"{where}: {bad} NaN/inf samples; stems must be finite")
    return audio


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: file is not readable (permission denied)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty")


# ---------------------------------------------------------------------------- soundfile
def _sf_reason(e: Exception) -> str:
    """libsndfile's reason without the path it repeats (e.g. 'Format not recognised')."""
    msg = str(e)
    return msg.rsplit(": ", 1)[-1].strip(" .") if ": " in msg else msg


def _sf_info(path: Path) -> AudioInfo:
    import soundfile as sf

    try:
        i = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError
        raise AudioError(f"{path}: not a readable audio file ({_sf_reason(e)})") from e
    if i.frames <= 0:
        raise AudioError(f"{path}: audio file holds no samples")
    return AudioInfo(int(i.samplerate), int(i.channels), int(i.frames), 1)


def _sf_read(path: Path, start: int, frames: int | None) -> np.ndarray:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            total = f.frames
            if start > total:
                raise AudioError(f"{path}: start frame {start} is past the end ({total} frames)")
            n = total - start if frames is None else frames
            f.seek(start)
            data = f.read(n, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"{path}: not a readable audio file ({_sf_reason(e)})") from e
    if frames is not None and data.shape[0] < frames:
        raise AudioError(
            f"{path}: truncated: asked for frames {start}..{start + frames}, "
            f"file holds {data.shape[0] + start}"
        )
    return np.ascontiguousarray(data.T)


# ---------------------------------------------------------------------------- PyAV
def _open_av(path: Path):
    import av

    try:
        return av.open(str(path))
    except Exception as e:
        raise AudioError(f"{path}: not a readable MP4 container ({e})") from e


def _mp4_info(path: Path, stream: int | None) -> AudioInfo:
    with _open_av(path) as c:
        audio = list(c.streams.audio)
        if not audio:
            raise AudioError(f"{path}: MP4 holds no audio stream")
        s = audio[stream or 0] if (stream or 0) < len(audio) else None
        if s is None:
            raise AudioError(f"{path}: has {len(audio)} audio streams, stream {stream} requested")
        cc = s.codec_context
        frames = int(s.duration * s.time_base * cc.sample_rate) if s.duration else 0
        return AudioInfo(int(cc.sample_rate), int(cc.channels), frames, len(audio))


def read_streams(path: str | os.PathLike, expected: int | None = None) -> list[np.ndarray]:
    """Decode every audio stream of an MP4 in a single demux pass.

    Returns one ``(channels, frames)`` float32 array per audio stream, in stream order.
    ``expected``: the number of audio streams required (MUSDB18: 5); anything else is an error.
    """
    path = Path(path)
    _check_readable(path)
    with _open_av(path) as c:
        streams = list(c.streams.audio)
        if expected is not None and len(streams) != expected:
            raise AudioError(
                f"{path}: expected {expected} audio streams (MUSDB18 stem.mp4), found {len(streams)}"
            )
        if not streams:
            raise AudioError(f"{path}: MP4 holds no audio stream")
        ids = [s.index for s in streams]
        declared = streams[0].duration
        want = None
        if declared and streams[0].time_base is not None:
            want = int(round(declared * streams[0].time_base * streams[0].codec_context.sample_rate))
        chunks: dict[int, list] = {i: [] for i in ids}
        try:
            for packet in c.demux(streams):
                for frame in packet.decode():
                    chunks[packet.stream.index].append(_frame_chunk(frame))
        except Exception as e:
            raise AudioError(f"{path}: corrupt or truncated MP4 ({e})") from e
    out = []
    for i in ids:
        if not chunks[i]:
            raise AudioError(f"{path}: audio stream {i} decodes to no samples (truncated?)")
        out.append(_check_finite(_join_chunks(chunks[i]), path, i))
    n = {a.shape[1] for a in out}
    if want is not None:
        if min(n) < want - 2048:
            raise AudioError(
                f"{path}: truncated: streams declare {want} frames, decoded only {min(n)}"
            )
    return out


def _frame_chunk(frame):
    """One decoded frame as either a tuple of per-channel float32 views of its planes (planar
    float, e.g. AAC's ``fltp``: no copy, no ``to_ndarray`` stacking) or a ``(C, n)`` array."""
    if frame.format.name == "fltp":
        n = frame.samples
        return tuple(np.frombuffer(p, np.float32, count=n) for p in frame.planes)
    return _frame_to_array(frame)


def _join_chunks(chunks: list) -> np.ndarray:
    """``(C, T)`` float32 from the chunks of :func:`_frame_chunk`, in order (one copy)."""
    if all(isinstance(c, tuple) for c in chunks) and len({len(c) for c in chunks}) == 1:
        n_ch = len(chunks[0])
        out = np.empty((n_ch, sum(c[0].shape[0] for c in chunks)), np.float32)
        for ch in range(n_ch):
            np.concatenate([c[ch] for c in chunks], out=out[ch])
        return out
    return np.concatenate([np.stack(c) if isinstance(c, tuple) else c for c in chunks], axis=1)


def _frame_to_array(frame) -> np.ndarray:
    a = frame.to_ndarray()
    if frame.format.is_planar:
        a = a.reshape(len(frame.layout.channels), -1)
    else:
        a = a.reshape(-1, len(frame.layout.channels)).T
    if a.dtype != np.float32:
        if np.issubdtype(a.dtype, np.integer):
            a = a.astype(np.float32) / float(np.iinfo(a.dtype).max + 1)
        else:
            a = a.astype(np.float32)
    return a


def _mp4_read(path: Path, stream: int, start: int, frames: int | None) -> np.ndarray:
    """Partial read of one stream: seek near ``start`` then decode only what is needed."""
    with _open_av(path) as c:
        audio = list(c.streams.audio)
        if stream >= len(audio):
            raise AudioError(f"{path}: has {len(audio)} audio streams, stream {stream} requested")
        s = audio[stream]
        sr = s.codec_context.sample_rate
        tb = s.time_base
        seek_to = max(0, start - 4096)
        if seek_to > 0:
            c.seek(int(seek_to / sr / tb), stream=s, backward=True, any_frame=False)
        end = None if frames is None else start + frames
        parts = []
        got_until = None
        try:
            for packet in c.demux(s):
                for frame in packet.decode():
                    if frame.pts is None:
                        raise AudioError(f"{path}: stream {stream} has no timestamps")
                    f0 = int(round(frame.pts * tb * sr))
                    a = _frame_to_array(frame)
                    f1 = f0 + a.shape[1]
                    got_until = f1
                    if f1 <= start:
                        continue
                    lo = max(start - f0, 0)
                    hi = a.shape[1] if end is None else min(a.shape[1], end - f0)
                    if hi > lo:
                        parts.append(a[:, lo:hi])
                    if end is not None and f1 >= end:
                        break
                if end is not None and got_until is not None and got_until >= end:
                    break
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(f"{path}: corrupt or truncated MP4 ({e})") from e
    data = np.concatenate(parts, axis=1) if parts else np.zeros((0, 0), np.float32)
    if frames is not None and (data.ndim != 2 or data.shape[1] < frames):
        have = 0 if data.ndim != 2 else data.shape[1]
        raise AudioError(
            f"{path}: truncated: stream {stream} ends before frame {start + frames} "
            f"(got {have} of {frames} frames from {start})"
        )
    return np.ascontiguousarray(data)


# ---------------------------------------------------------------------------- public
def info(path: str | os.PathLike, stream: int | None = None) -> AudioInfo:
    """Header facts. For MP4 the frame count is the container's estimate; decode for exactness."""
    path = Path(path)
    _check_readable(path)
    if is_mp4(path):
        return _mp4_info(path, stream)
    return _sf_info(path)


def read(
    path: str | os.PathLike,
    start: Frames = 0,
    frames: Frames | None = None,
    stream: int | None = None,
) -> np.ndarray:
    """Read ``frames`` frames from ``start`` (all to the end when ``frames`` is None).

    Returns float32 ``(channels, frames)``; raises AudioError when the file is shorter than asked,
    corrupt, or holds NaN/inf samples.
    """
    path = Path(path)
    _check_readable(path)
    if start < 0 or (frames is not None and frames < 0):
        raise AudioError(f"{path}: invalid read window start={start} frames={frames}")
    if is_mp4(path):
        audio = _mp4_read(path, stream or 0, int(start), frames)
    else:
        audio = _sf_read(path, int(start), frames)
    return _check_finite(audio, path, stream)


def write(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: Hz,
    subtype: str | None = None,
    atomic: bool = True,
) -> Path:
    """Write ``(channels, frames)`` audio as WAV or FLAC (by suffix).

    WAV defaults to FLOAT (bit-exact float32 round trip); FLAC to PCM_24.
    With ``atomic`` the data goes to a temp file in the same folder, then is renamed into place,
    so a crash never leaves a partial file under the final name.
    """
    import soundfile as sf

    path = Path(path)
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise AudioError(f"{path}: expected (channels, frames) audio, got shape {audio.shape}")
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path}: can only write .wav or .flac")
    subtype = subtype or ("FLOAT" if fmt == "WAV" else "PCM_24")
    data = np.ascontiguousarray(audio.T)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not atomic:
        sf.write(str(path), data, int(sample_rate), subtype=subtype, format=fmt)
        return path
    with atomic_file(path, "wb") as fh:
        sf.write(fh, data, int(sample_rate), subtype=subtype, format=fmt)
    return path
