"""Exact sample-level steps: gain (dB or a linear factor), polarity flip, channel swap, time
shift, time reversal.

All take and return float32 ``(C, T)``; only ``time_shift`` changes length (it reads
``out_frames + max_frames`` and returns ``out_frames``).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import RecipeError
from ..types import Frames, Hz
from .base import Param, Step, StepError, fit_length, register


@register
class Gain(Step):
    """Multiply by ``10 ** (db / 20)``."""

    name = "gain"
    schema = (Param("db", ["uniform", -6.0, 6.0], low=-120.0, high=60.0, doc="gain in dB"),)

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        return audio * np.float32(10.0 ** (float(params["db"]) / 20.0))


@register
class Scale(Step):
    """Multiply by a linear ``factor`` (MSST's per-stem ``loudness``: a factor drawn uniformly
    in ``[loudness_min, loudness_max]``, 0.5..1.5 in its example config)."""

    name = "scale"
    schema = (Param("factor", ["uniform", 0.5, 1.5], low=0.0, high=1000.0,
                    doc="linear gain factor"),)

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        return audio * np.float32(params["factor"])


@register
class Polarity(Step):
    """Sign flip (Demucs ``FlipSign``): ``-audio``. No parameters; use ``p`` for the chance."""

    name = "polarity"

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        return np.negative(audio)


@register
class ChannelSwap(Step):
    """Reverse the channel order (stereo: swap left and right; Demucs ``FlipChannels``).
    Refused for mono recipes at load time."""

    name = "channel_swap"
    min_channels = 2

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        return np.ascontiguousarray(audio[::-1])


@register
class Reverse(Step):
    """Time reversal: ``audio[:, ::-1]``."""

    name = "reverse"

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        return np.ascontiguousarray(audio[:, ::-1])


@register
class TimeShift(Step):
    """Demucs-style misalignment of one stem against the others.

    Recipe: ``seconds`` (distribution, >= 0, bounded above). Drawn and recorded:
    ``frames`` = round(seconds * sample_rate) and ``max_frames`` = round(upper bound *
    sample_rate). The renderer reads ``out_frames + max_frames`` frames from the stem's start and
    ``apply`` returns ``audio[:, frames:frames + out_frames]``: the stem is delayed by
    ``max_frames - frames`` relative to an unshifted reading that started at ``max_frames``, and no
    zero padding is ever used. Every stem with this step reads the same span, as in Demucs'
    ``Shift`` (crop of length ``T`` at a random offset within ``T + shift``).
    """

    name = "time_shift"
    schema = (Param("seconds", ["uniform", 0.0, 1.0], low=0.0, high=60.0,
                    doc="offset into the extra span read, in seconds"),)
    recorded = ("frames", "max_frames")
    keeps_length = False

    def validate(self, field: str, sample_rate: Hz | None) -> None:
        hi = self.bounds("seconds")[1]
        if hi <= 0:
            raise RecipeError(f"{field}.seconds", "the maximum shift must be > 0 seconds")

    def draw(self, rng: np.random.Generator, context: Mapping[str, Any]) -> dict[str, Any]:
        sr = int(context["sample_rate"])
        seconds = float(self.options["seconds"].sample(rng))
        max_frames = int(round(self.bounds("seconds")[1] * sr))
        frames = min(max(int(round(seconds * sr)), 0), max_frames)
        return {"frames": frames, "max_frames": max_frames}

    @classmethod
    def check_params(cls, params):
        super().check_params(params)
        f, m = params["frames"], params["max_frames"]
        if not (isinstance(f, int) and isinstance(m, int) and 0 <= f <= m):
            raise StepError(f"augmentation step 'time_shift': need integers 0 <= frames <= "
                            f"max_frames, got frames={f!r}, max_frames={m!r}")

    @classmethod
    def source_frames(cls, params, out_frames):
        return out_frames + int(params["max_frames"])

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        if out_frames is None:
            out_frames = audio.shape[1] - params["max_frames"]
        need = cls.source_frames(params, out_frames)
        if audio.shape[1] != need:
            raise StepError(f"augmentation step 'time_shift': expected {need} input frames "
                            f"(out_frames + max_frames), got {audio.shape[1]}")
        f = params["frames"]
        return fit_length(cls.name, audio[:, f:], out_frames)
