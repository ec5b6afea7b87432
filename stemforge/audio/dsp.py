"""Small signal utilities: resampling (soxr) and channel conversion.

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
