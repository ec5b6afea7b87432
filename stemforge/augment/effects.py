"""Effects through pedalboard: filters/EQ (one band, or seven), compressor, reverb, distortion,
chorus, phaser.

Each step builds a fresh pedalboard plugin from the recorded params and processes the whole
``(C, T)`` buffer with ``reset=True`` (state starts from zero every call), so ``apply`` is a pure,
deterministic function of ``(audio, sample_rate, params)``. Length is unchanged; tails past the
end (reverb) are cut, as a real excerpt of a longer processed recording would be.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

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


@register
class Phaser(PedalboardStep):
    """Phaser (pedalboard ``Phaser``); defaults are MSST's ``pedalboard_phazer`` ranges. Its LFO
    starts at phase zero on every call (``reset=True``)."""

    name, plugin, freq_params = "phaser", "Phaser", ("centre_hz",)
    kwargs = {"centre_hz": "centre_frequency_hz"}
    schema = (
        Param("rate_hz", ["uniform", 1.0, 10.0], low=0.0, high=100.0, doc="LFO rate"),
        Param("depth", ["uniform", 0.25, 0.95], low=0.0, high=1.0),
        _hz("centre_hz", ["uniform", 200.0, 12000.0], "centre frequency of the sweep"),
        Param("feedback", ["uniform", 0.0, 0.5], low=-0.95, high=0.95),
        Param("mix", ["uniform", 0.1, 0.9], low=0.0, high=1.0, doc="wet share"),
    )


#: the seven bands of audiomentations' ``SevenBandParametricEQ`` (MSST's
#: ``seven_band_parametric_eq``): (filter, lowest, highest centre frequency in Hz)
EQ7_BANDS = (
    ("LowShelfFilter", 42.0, 95.0),
    ("PeakFilter", 91.0, 204.0),
    ("PeakFilter", 196.0, 441.0),
    ("PeakFilter", 421.0, 948.0),
    ("PeakFilter", 909.0, 2045.0),
    ("PeakFilter", 1957.0, 4404.0),
    ("HighShelfFilter", 4216.0, 9486.0),
)


def _mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def _hz_of_mel(mel: float) -> float:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@register
class SevenBandEQ(Step):
    """A seven-band parametric EQ: a low shelf, five peaking bands and a high shelf in series
    (pedalboard ``LowShelfFilter``/``PeakFilter``/``HighShelfFilter``), the bands and ranges
    of audiomentations' ``SevenBandParametricEQ`` (MSST's ``seven_band_parametric_eq``).

    Draws per band ``k`` = 1..7, in band order: its centre frequency uniformly on the mel scale
    within the band's fixed range (:data:`EQ7_BANDS`), its gain from ``gain_db``, its Q from
    ``shelf_q`` (bands 1 and 7) or ``peak_q``. Recorded flat: ``band{k}_hz``, ``band{k}_db``,
    ``band{k}_q``. The top band reaches 9486 Hz, so the sample rate must exceed 18972 Hz.
    """

    name = "seven_band_eq"
    schema = (
        Param("gain_db", ["uniform", -12.0, 12.0], low=-40.0, high=40.0,
              doc="each band's gain in dB, drawn per band"),
        Param("peak_q", ["uniform", 0.5, 5.0], low=0.05, high=20.0,
              doc="Q of the five peaking bands, drawn per band"),
        Param("shelf_q", ["uniform", 0.1, 0.999], low=0.05, high=20.0,
              doc="Q of the two shelves, drawn per band"),
    )
    recorded = tuple(f"band{k}_{what}" for k in range(1, 8) for what in ("hz", "db", "q"))

    def validate(self, field: str, sample_rate: Hz | None) -> None:
        top = EQ7_BANDS[-1][2]
        if sample_rate is not None and top >= sample_rate / 2:
            raise RecipeError(f"{field}.step", f"seven_band_eq's top band reaches {top:g} Hz, "
                              f"which needs a sample rate above {2 * top:g} Hz; the recipe's "
                              f"is {sample_rate} Hz")

    def draw(self, rng: np.random.Generator, context: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, (kind, lo, hi) in enumerate(EQ7_BANDS, start=1):
            m_lo, m_hi = _mel(lo), _mel(hi)
            out[f"band{k}_hz"] = float(_hz_of_mel(m_lo + (m_hi - m_lo) * rng.random()))
            out[f"band{k}_db"] = float(self.options["gain_db"].sample(rng))
            q = self.options["shelf_q" if kind != "PeakFilter" else "peak_q"]
            out[f"band{k}_q"] = float(q.sample(rng))
        return out

    @classmethod
    def check_params(cls, params):
        super().check_params(params)
        for key in cls.recorded:
            v = params[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or (not key.endswith("_db") and v <= 0):
                raise StepError(f"augmentation step 'seven_band_eq': {key} must be a finite "
                                f"number{' > 0' if not key.endswith('_db') else ''}, got {v!r}")

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        import pedalboard

        board = []
        for k, (kind, _, _) in enumerate(EQ7_BANDS, start=1):
            hz = float(params[f"band{k}_hz"])
            if not hz < sample_rate / 2:
                raise StepError(f"augmentation step 'seven_band_eq': band{k}_hz={hz!r} Hz must "
                                f"be below {sample_rate / 2:g} Hz at {sample_rate} Hz")
            board.append(getattr(pedalboard, kind)(
                cutoff_frequency_hz=hz, gain_db=float(params[f"band{k}_db"]),
                q=float(params[f"band{k}_q"])))
        out = pedalboard.Pedalboard(board)(audio, float(sample_rate), reset=True)
        return np.ascontiguousarray(out, dtype=np.float32)
