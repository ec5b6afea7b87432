"""Small signal utilities: resampling and tape speed changes (soxr), Rubber Band time/pitch
(pedalboard), channel conversion.

Arrays are float32 ``(channels, frames)``.
"""
from __future__ import annotations

import numpy as np

from ..errors import AudioError
from ..types import Hz


def resample(audio: np.ndarray, sr_in: Hz, sr_out: Hz, quality: str = "HQ") -> np.ndarray:
    """Resample ``(C, T)`` audio with soxr. Returns float32 ``(C, round(T * sr_out / sr_in))``."""
    if sr_in == sr_out:
        return audio
    import soxr

    out = soxr.resample(np.ascontiguousarray(audio.T), sr_in, sr_out, quality=quality)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Convert ``(C, T)`` to ``(channels, T)``.

    mono → N: the channel is repeated; N → mono: the channels are averaged;
    other changes are refused (ambiguous).
    """
    c = audio.shape[0]
    if c == channels:
        return audio
    if c == 1:
        return np.repeat(audio, channels, axis=0)
    if channels == 1:
        return audio.mean(axis=0, keepdims=True, dtype=np.float32)
    raise AudioError(f"cannot convert {c}-channel audio to {channels} channels")


def tape(audio: np.ndarray, sr: Hz, speed: float, quality: str = "HQ",
         frames: int | None = None) -> np.ndarray:
    """Play float32 ``(C, T)`` ``speed`` times faster (one soxr resampling of ``quality`` from
    ``sr`` to ``sr / speed``, read back at ``sr``): float32 ``(C, round(T / speed))``, pitch
    and tempo x ``speed``; only the first ``frames`` frames when given (the rest is dropped
    before the copy back to channel-first order)."""
    import soxr

    out = soxr.resample(audio.T, float(sr), float(sr) / float(speed), quality=quality)
    return np.ascontiguousarray(np.asarray(out[:frames], dtype=np.float32).T)


def rubberband(audio: np.ndarray, sr: Hz, rate: float, semitones: float, hq: bool) -> np.ndarray:
    """Rubber Band through pedalboard: float32 ``(C, T)`` -> ``(C, round(T / rate))``, tempo x
    ``rate`` and pitch shifted by ``semitones``; ``hq``: the R3 "finer" engine, else R2
    "faster". Formants are not preserved."""
    import pedalboard

    return pedalboard.time_stretch(
        audio, float(sr), stretch_factor=float(rate), pitch_shift_in_semitones=float(semitones),
        high_quality=hq, preserve_formants=False,
    )
