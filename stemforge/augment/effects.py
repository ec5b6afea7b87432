"""Effects through pedalboard: filters/EQ, compressor, reverb, distortion, chorus.

Each step builds a fresh pedalboard plugin from the recorded params and processes the whole
``(C, T)`` buffer with ``reset=True`` (state starts from zero every call), so ``apply`` is a pure,
deterministic function of ``(audio, sample_rate, params)``. Length is unchanged; tails past the
end (reverb) are cut, as a real excerpt of a longer processed recording would be.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import RecipeError
from ..types import Hz
from .base import Param, Step, StepError, register


class PedalboardStep(Step):
    """A length-preserving step rendered by one pedalboard plugin."""

    plugin: str = ""
    #: schema param name -> plugin constructor keyword
    kwargs: dict[str, str] = {}
    #: params holding a frequency that must stay below Nyquist
    freq_params: tuple[str, ...] = ()

    def validate(self, field: str, sample_rate: Hz | None) -> None:
        if sample_rate is None:
            return
        for name in self.freq_params:
            hi = self.bounds(name)[1]
            if hi >= sample_rate / 2:
                raise RecipeError(f"{field}.{name}", f"frequency {hi:g} Hz must be below the "
                                  f"Nyquist frequency {sample_rate / 2:g} Hz")

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        import pedalboard

        for name in cls.freq_params:
            if not 0 < float(params[name]) < sample_rate / 2:
                raise StepError(f"augmentation step '{cls.name}': {name}={params[name]!r} Hz "
                                f"must be in (0, {sample_rate / 2:g}) at {sample_rate} Hz")
        kw = {cls.kwargs.get(k, k): float(v) for k, v in params.items()}
        fx = getattr(pedalboard, cls.plugin)(**kw)
        out = fx(audio, float(sample_rate), reset=True)
        return np.ascontiguousarray(out, dtype=np.float32)


def _hz(name: str, default: Any, doc: str) -> Param:
    return Param(name, default, low=1.0, high=96000.0, doc=doc)


_Q = Param("q", 0.7071, low=0.05, high=20.0, doc="quality factor")
_EQ_DB = Param("gain_db", ["uniform", -6.0, 6.0], low=-40.0, high=40.0, doc="band gain in dB")


@register
class Lowpass(PedalboardStep):
    """First-order low-pass (pedalboard ``LowpassFilter``)."""

    name, plugin, freq_params = "lowpass", "LowpassFilter", ("cutoff_hz",)
    kwargs = {"cutoff_hz": "cutoff_frequency_hz"}
    schema = (_hz("cutoff_hz", ["uniform", 2000.0, 12000.0], "cutoff frequency"),)


@register
class Highpass(PedalboardStep):
    """First-order high-pass (pedalboard ``HighpassFilter``)."""

    name, plugin, freq_params = "highpass", "HighpassFilter", ("cutoff_hz",)
    kwargs = {"cutoff_hz": "cutoff_frequency_hz"}
    schema = (_hz("cutoff_hz", ["uniform", 40.0, 400.0], "cutoff frequency"),)


@register
class PeakEQ(PedalboardStep):
    """Peaking EQ band (pedalboard ``PeakFilter``)."""

    name, plugin, freq_params = "peak_eq", "PeakFilter", ("freq_hz",)
    kwargs = {"freq_hz": "cutoff_frequency_hz", "q": "q"}
    schema = (_hz("freq_hz", ["uniform", 200.0, 8000.0], "centre frequency"), _EQ_DB, _Q)


@register
class LowShelf(PedalboardStep):
    """Low shelf (pedalboard ``LowShelfFilter``)."""

    name, plugin, freq_params = "low_shelf", "LowShelfFilter", ("freq_hz",)
    kwargs = {"freq_hz": "cutoff_frequency_hz", "q": "q"}
    schema = (_hz("freq_hz", ["uniform", 80.0, 400.0], "shelf frequency"), _EQ_DB, _Q)


@register
class HighShelf(PedalboardStep):
    """High shelf (pedalboard ``HighShelfFilter``)."""

    name, plugin, freq_params = "high_shelf", "HighShelfFilter", ("freq_hz",)
    kwargs = {"freq_hz": "cutoff_frequency_hz", "q": "q"}
    schema = (_hz("freq_hz", ["uniform", 2000.0, 10000.0], "shelf frequency"), _EQ_DB, _Q)


@register
class Compressor(PedalboardStep):
    """Dynamic range compressor (pedalboard ``Compressor``)."""

    name, plugin = "compressor", "Compressor"
    schema = (
        Param("threshold_db", ["uniform", -30.0, -10.0], low=-80.0, high=0.0),
        Param("ratio", ["uniform", 2.0, 8.0], low=1.0, high=100.0),
        Param("attack_ms", 5.0, low=0.01, high=1000.0),
        Param("release_ms", 100.0, low=1.0, high=5000.0),
    )


@register
class Reverb(PedalboardStep):
    """Freeverb-style reverb (pedalboard ``Reverb``); every parameter in [0, 1]."""

    name, plugin = "reverb", "Reverb"
    schema = (
        Param("room_size", ["uniform", 0.1, 0.9], low=0.0, high=1.0),
        Param("damping", 0.5, low=0.0, high=1.0),
        Param("wet_level", ["uniform", 0.1, 0.4], low=0.0, high=1.0),
        Param("dry_level", 0.8, low=0.0, high=1.0),
        Param("width", 1.0, low=0.0, high=1.0),
    )


@register
class Distortion(PedalboardStep):
    """tanh waveshaper after ``drive_db`` of gain (pedalboard ``Distortion``)."""

    name, plugin = "distortion", "Distortion"
    schema = (Param("drive_db", ["uniform", 5.0, 20.0], low=0.0, high=60.0),)


@register
class Chorus(PedalboardStep):
    """Chorus (pedalboard ``Chorus``)."""

    name, plugin = "chorus", "Chorus"
    schema = (
        Param("rate_hz", ["uniform", 0.5, 2.0], low=0.0, high=100.0),
        Param("depth", 0.25, low=0.0, high=1.0),
        Param("centre_delay_ms", 7.0, low=0.0, high=100.0),
        Param("feedback", 0.0, low=-0.95, high=0.95),
        Param("mix", 0.5, low=0.0, high=1.0),
    )
