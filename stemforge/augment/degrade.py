"""Degradations written in NumPy (plus soxr for resampling): bit crushing, a down/up-sampling
round trip, added noise, tanh distortion.

Each is a pure function of ``(audio, sample_rate, params)``; float32 ``(C, T)`` in and out, the
length unchanged. Noise needs random samples: the step draws an integer ``seed`` with the
caller's generator (recorded in the spec) and ``apply`` builds its noise from that seed alone,
so rendering a recorded step reproduces the same noise without any other state.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import RecipeError
from ..types import Hz
from .base import Param, Step, StepError, register

#: noise seeds are drawn in [0, NOISE_SEEDS)
NOISE_SEEDS = 2 ** 32


def rms(audio: np.ndarray) -> float:
    """The mean over channels of each channel's RMS, float64 (audiomentations'
    ``calculate_rms``, which MSST's tanh distortion levels with)."""
    x = np.asarray(audio, np.float64)
    return float(np.mean(np.sqrt(np.mean(x * x, axis=-1)))) if x.size else 0.0


@register
class Bitcrush(Step):
    """Quantise to ``bits`` bits: ``round(x * 2^bits) / 2^bits`` (pedalboard's ``Bitcrush``,
    MSST's ``pedalboard_bitcrash``; no dither, no clipping; ``bits`` may be fractional as in
    MSST, which draws it uniformly in [4, 16]). Rounding is half to even."""

    name = "bitcrush"
    schema = (Param("bits", ["uniform", 4.0, 16.0], low=1.0, high=32.0, doc="bit depth"),)

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        q = 2.0 ** float(params["bits"])
        return (np.round(audio.astype(np.float64) * q) / q).astype(np.float32)


@register
class Resample(Step):
    """Down/up-sampling round trip through ``rate_hz`` (MSST's ``pedalboard_resample``: its
    target rate uniform in [4000, 44100] Hz): removes the content above ``rate_hz / 2`` (soxr
    HQ, linear phase, aligned).

    The ``T`` input frames become ``n = max(1, round(T * rate_hz / sample_rate))`` frames and
    then ``T`` again: both resamplings use the exact ratio ``n / T`` and its inverse, so the
    output has exactly the input's length and no drift (the effective rate differs from
    ``rate_hz`` by less than ``sample_rate / (2 T)`` Hz). ``rate_hz`` must not exceed the
    recipe's sample rate (checked at load time).
    """

    name = "resample"
    schema = (Param("rate_hz", ["uniform", 8000.0, 44100.0], low=1000.0, high=384000.0,
                    doc="intermediate sample rate"),)

    def validate(self, field: str, sample_rate: Hz | None) -> None:
        hi = self.bounds("rate_hz")[1]
        if sample_rate is not None and hi > sample_rate:
            raise RecipeError(f"{field}.rate_hz", f"rate {hi:g} Hz exceeds the recipe's sample "
                              f"rate {sample_rate} Hz (a round trip through a higher rate "
                              "changes nothing)")

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        import soxr

        rate = float(params["rate_hz"])
        if not 0 < rate <= sample_rate:
            raise StepError(f"augmentation step 'resample': rate_hz={rate!r} must be in "
                            f"(0, {sample_rate}] at {sample_rate} Hz")
        T = audio.shape[1]
        n = max(1, int(round(T * rate / sample_rate)))
        if T == 0 or n == T:
            return audio.copy()
        down = soxr.resample(audio.T, float(T), float(n), quality="HQ")
        up = soxr.resample(down, float(n), float(T), quality="HQ")
        if up.shape[0] != T:  # soxr's length for the exact ratio T / n is T
            raise AssertionError(f"resample round trip gave {up.shape[0]} frames, not {T}")
        return np.ascontiguousarray(up.T, dtype=np.float32)


def white(seed: int, shape: tuple[int, int]) -> np.ndarray:
    """Standard normal float64 ``shape`` noise from ``seed`` alone (independent per channel)."""
    return np.random.default_rng(int(seed)).standard_normal(shape)


def pink(seed: int, shape: tuple[int, int]) -> np.ndarray:
    """Pink (1/f power) float64 ``shape`` noise from ``seed``: :func:`white` shaped by
    ``1 / sqrt(f)`` in the frequency domain over the whole excerpt (DC removed), scaled to unit
    RMS per channel."""
    w = white(seed, shape)
    T = shape[1]
    if T < 2:
        return np.zeros(shape)
    spec = np.fft.rfft(w, axis=-1)
    f = np.fft.rfftfreq(T)
    shaping = np.zeros_like(f)
    shaping[1:] = 1.0 / np.sqrt(f[1:])
    x = np.fft.irfft(spec * shaping, n=T, axis=-1)
    norm = np.sqrt(np.mean(x * x, axis=-1, keepdims=True))
    return x / np.where(norm > 0, norm, 1.0)


class NoiseStep(Step):
    """Shared draw of the noise steps: the schema's parameters, then ``seed``."""

    def draw(self, rng: np.random.Generator, context: Mapping[str, Any]) -> dict[str, Any]:
        out = super().draw(rng, context)
        out["seed"] = int(rng.integers(NOISE_SEEDS))
        return out

    @classmethod
    def check_params(cls, params):
        super().check_params(params)
        s = params["seed"]
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < NOISE_SEEDS:
            raise StepError(f"augmentation step '{cls.name}': seed must be an integer in "
                            f"[0, {NOISE_SEEDS}), got {s!r}")


@register
class Noise(NoiseStep):
    """Add white or pink noise at ``snr_db`` below the stem: the noise (unit RMS per channel,
    :func:`white` or :func:`pink`) is scaled to ``rms(x) / 10^(snr_db / 20)``, ``rms`` as in
    :func:`rms`, so ``rms(x) / rms(noise) == 10^(snr_db / 20)``. A silent stem gets no noise
    (the level is relative to it). Records ``color``, ``snr_db`` and ``seed``."""

    name = "noise"
    schema = (
        Param("color", "white", choices=("white", "pink"), doc="noise spectrum"),
        Param("snr_db", ["uniform", 10.0, 40.0], low=-30.0, high=120.0,
              doc="stem-to-noise ratio in dB"),
    )
    recorded = ("color", "snr_db", "seed")

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        if params["color"] not in ("white", "pink"):
            raise StepError(f"augmentation step 'noise': color must be white or pink, got "
                            f"{params['color']!r}")
        shape = audio.shape
        if params["color"] == "pink":
            n = pink(params["seed"], shape)
        else:
            n = white(params["seed"], shape)
            n = n / np.maximum(np.sqrt(np.mean(n * n, axis=-1, keepdims=True)), 1e-300)
        level = rms(audio) / 10.0 ** (float(params["snr_db"]) / 20.0)
        return (audio.astype(np.float64) + level * n).astype(np.float32)


@register
class GaussianNoise(NoiseStep):
    """Add white Gaussian noise of standard deviation ``amplitude`` (absolute, in full-scale
    units): MSST's ``gaussian_noise`` (audiomentations ``AddGaussianNoise``, amplitude uniform in
    [0.001, 0.015]). Records ``amplitude`` and ``seed``."""

    name = "gaussian_noise"
    schema = (Param("amplitude", ["uniform", 0.001, 0.015], low=0.0, high=10.0,
                    doc="noise standard deviation"),)
    recorded = ("amplitude", "seed")

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        n = white(params["seed"], audio.shape)
        return (audio.astype(np.float64) + float(params["amplitude"]) * n).astype(np.float32)


@register
class TanhDistortion(Step):
    """tanh soft clipping driven by the stem's own level (audiomentations ``TanhDistortion``,
    MSST's ``tanh_distortion``): with ``a = amount`` in [0, 1], the threshold ``h`` is the
    ``(100 - 99 a)``-th percentile of ``|x|`` over all channels and frames (linear
    interpolation), ``y = tanh(0.5 x / (h + 1e-6))``, then ``y`` is scaled to ``x``'s level
    (``y * rms(x) / rms(y)``, :func:`rms`) unless ``rms(x) <= 1e-9``. Computed in float64."""

    name = "tanh_distortion"
    schema = (Param("amount", ["uniform", 0.01, 0.7], low=0.0, high=1.0,
                    doc="distortion amount, 0..1"),)

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        x = audio.astype(np.float64)
        if x.size == 0:
            return audio.copy()
        h = np.percentile(np.abs(x), 100.0 - 99.0 * float(params["amount"]))
        y = np.tanh(x * (0.5 / (h + 1e-6)))
        before = rms(x)
        if before > 1e-9:
            y = y * (before / rms(y))
        return y.astype(np.float32)
