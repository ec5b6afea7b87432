"""Pitch and tempo steps: ``pitch_shift``, ``time_stretch`` and the combined ``pitch_tempo``.

Modes (a fixed recipe option, recorded in every drawn step):

* ``hq``    — Rubber Band's R3 "finer" engine via ``pedalboard.time_stretch(high_quality=True)``;
  pitch and tempo are independent (pitch shift keeps the tempo, time stretch keeps the pitch).
* ``fast``  — Rubber Band's R2 "faster" engine (``high_quality=False``) for the tempo part only,
  then a soxr tape speed change for the pitch: stretch by ``tempo / ratio`` (pitch kept), then
  play ``ratio = 2 ** (s / 12)`` times faster. Same semantics as ``hq``, about 2-4x cheaper;
  a pure tone's pitch is within ~1 % on >= 2 s (R2's phase vocoder wobbles on short inputs).
* ``quick`` — a soxr resampling speed change, like a tape played faster or slower: pitch and
  tempo change *together*. ``pitch_shift`` by ``s`` semitones plays ``2 ** (s / 12)`` times
  faster; ``time_stretch`` by ``rate`` raises the pitch by ``12 * log2(rate)`` semitones.
  ``pitch_tempo`` cannot honour an independent pair with one speed change, so it refuses
  ``quick`` at recipe load time. Consecutive quick steps of a chain (e.g. ``pitch_shift`` then
  ``time_stretch``) are run by ``apply_steps`` as ONE speed change by the product of their
  speeds (the composition of two ideal tape changes is one tape change), so a stem is resampled
  once, not once per step.

Length: every mode returns exactly ``out_frames``. The input needed is
``ceil(out_frames * speed) + PAD`` frames, where ``speed`` is how many input frames one output
frame consumes (``rate``/``tempo`` for stretches, ``2 ** (s/12)`` for a quick pitch shift, 1 for
an hq/fast pitch shift). The ``PAD`` surplus keeps the kept region away from the processors'
end-of-input flush; ``apply`` trims it. No zero padding anywhere.

Rate convention: ``rate``/``tempo`` is a speed factor (1.1 = 10 % faster and 10 % shorter). Scaper's
``time_stretch`` factor is the reciprocal (2.0 = twice as long).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ..errors import RecipeError
from ..types import Frames, Hz
from .base import Param, Step, StepError, check_audio, fit_length, register

#: surplus input frames read by every pitch/tempo step (trimmed inside ``apply``)
PAD: Frames = 1024
MODES = ("hq", "fast", "quick")
MAX_SEMITONES = 24.0
MIN_RATE, MAX_RATE = 0.25, 4.0


def _rubberband(audio: np.ndarray, sr: Hz, rate: float, semitones: float, hq: bool) -> np.ndarray:
    """``(C, T)`` -> ``(C, round(T / rate))`` with pitch shifted by ``semitones``."""
    import pedalboard

    return pedalboard.time_stretch(
        audio, float(sr), stretch_factor=float(rate), pitch_shift_in_semitones=float(semitones),
        high_quality=hq, preserve_formants=False,
    )


def _stretch_then_tape(audio: np.ndarray, sr: Hz, tempo: float, semitones: float) -> np.ndarray:
    """``fast`` mode: R2 time stretch by ``tempo / ratio`` then tape by ``ratio``:
    ``(C, T)`` -> ``(C, ~T / tempo)``, pitch x ``ratio``, tempo x ``tempo``."""
    ratio = 2.0 ** (semitones / 12.0)
    y = _rubberband(audio, sr, tempo / ratio, 0.0, hq=False)
    return y if semitones == 0 else _tape(y, sr, ratio)


def tape(audio: np.ndarray, sr: Hz, speed: float, quality: str = "HQ",
         frames: Frames | None = None) -> np.ndarray:
    """Play float32 ``(C, T)`` ``speed`` times faster (one soxr resampling of ``quality`` from
    ``sr`` to ``sr / speed``, read back at ``sr``): float32 ``(C, round(T / speed))``, pitch
    and tempo x ``speed``; only the first ``frames`` frames when given (the rest is dropped
    before the copy back to channel-first order)."""
    return _tape(audio, sr, speed, quality, frames)


def _tape(audio: np.ndarray, sr: Hz, speed: float, quality: str = "HQ",
          frames: Frames | None = None) -> np.ndarray:
    """Play ``(C, T)`` ``speed`` times faster: ``(C, round(T / speed))``, pitch x ``speed``."""
    import soxr

    out = soxr.resample(audio.T, float(sr), float(sr) / float(speed), quality=quality)
    return np.ascontiguousarray(np.asarray(out[:frames], dtype=np.float32).T)


def _need(speed: float, out_frames: Frames) -> Frames:
    return int(math.ceil(out_frames * speed)) + PAD


def _run(name: str, audio: np.ndarray, sr: Hz, out_frames: Frames | None, speed: float,
         process) -> np.ndarray:
    audio = check_audio(name, audio)
    if out_frames is None:
        raise StepError(f"augmentation step '{name}' changes length: out_frames is required")
    need = _need(speed, out_frames)
    if audio.shape[1] != need:
        raise StepError(f"augmentation step '{name}': expected {need} input frames "
                        f"(source_frames for {out_frames} output frames), got {audio.shape[1]}")
    return fit_length(name, process(audio), out_frames)


def _check_mode(params: Mapping[str, Any], name: str, allowed=MODES) -> str:
    mode = params.get("mode")
    if mode not in allowed:
        raise StepError(f"augmentation step '{name}': mode must be one of {', '.join(allowed)}, "
                        f"got {mode!r}")
    return mode


LOUDNESS = ("measured", "source")
QUALITIES = ("HQ", "MQ", "LQ")
_QUALITY = Param("quality", "HQ", choices=QUALITIES,
                 doc="HQ | MQ | LQ (quick only): soxr quality of the tape resampling")
_LOUDNESS = Param("loudness", "measured", choices=LOUDNESS,
                  doc="measured | source (quick only): how the mixer measures the stem's "
                      "loudness for snr levels, see TapeLoudness")


class TapeOptions(Step):
    """The ``loudness`` and ``quality`` options of the tape-capable steps (``pitch_shift``,
    ``time_stretch``); both recorded in the step only when not the default, so specs of
    recipes that do not use them are unchanged.

    ``quality`` (mode ``quick`` only): soxr quality of the tape resampling, ``HQ`` (default,
    20-bit, pass band to 95 % of Nyquist), ``MQ`` (16-bit, 95 %) or ``LQ`` (16-bit, 80 %: in the
    output, content above ``0.8 * sr/2 * min(1, speed)`` rolls off, 17.6 kHz when speeding up
    at 44.1 kHz, ~14 kHz at speed 0.8; about a quarter cheaper than HQ).

    ``loudness``:

    ``measured`` (default): the mixer measures BS.1770 loudness on the processed audio, as
    Scaper does after pitch/tempo. ``source`` (mode ``quick`` only, opt-in): the mixer takes
    the loudness of the source frames the tape output covers, from the index's stored
    K-weighted energies, so no K-weighting filter runs at mix time. A tape speed change keeps
    the mean square but moves the spectrum by the speed factor under the K-weighting's 1.5 kHz
    shelf / 38 Hz high pass, so this is an APPROXIMATION (docs/augmentation.md gives the
    measured error: a few tenths of an LU at +-10 % speed, tests/test_augment_tape.py bounds it).
    """

    #: optional recorded options: name -> (default, choices); a non-default value needs quick
    OPTIONAL = {"loudness": ("measured", LOUDNESS), "quality": ("HQ", QUALITIES)}

    def validate(self, field, sample_rate):
        for name, (default, _) in self.OPTIONAL.items():
            if self.options[name] != default and self.options["mode"] != "quick":
                raise RecipeError(f"{field}.{name}", f"{name}: {self.options[name]} is only for "
                                  "mode quick (a tape speed change)")

    def draw(self, rng, context):
        out = super().draw(rng, context)
        for name, (default, _) in self.OPTIONAL.items():
            if out[name] == default:  # recorded only when not the default
                del out[name]
        return out

    @classmethod
    def check_params(cls, params):
        for name, (default, choices) in cls.OPTIONAL.items():
            if name not in params:
                continue
            v = params[name]
            if v not in choices or (v != default and params.get("mode") != "quick"):
                others = ", ".join(c for c in choices if c != default)
                raise StepError(f"augmentation step '{cls.name}': {name} must be one of "
                                f"{', '.join(choices)} ({others} with mode quick only), got "
                                f"{v!r} with mode {params.get('mode')!r}")
        rest = {k for k in params if k not in cls.OPTIONAL}
        want = {p.name for p in cls.schema if p.name not in cls.OPTIONAL}
        if rest != want:
            raise StepError(f"augmentation step '{cls.name}': expected parameters "
                            f"{sorted(want)} (and optionally {', '.join(cls.OPTIONAL)}), got "
                            f"{sorted(params)}")

    @classmethod
    def tape_quality(cls, params) -> str:
        return params.get("quality", "HQ")


_SEMITONES = Param("semitones", ["uniform", -2.0, 2.0], low=-MAX_SEMITONES, high=MAX_SEMITONES,
                   doc="pitch shift in semitones")
_MODE = Param("mode", "hq", choices=MODES, doc="hq | fast | quick (tape)")


@register
class PitchShift(TapeOptions):
    """Shift pitch by ``semitones`` (hq/fast: tempo kept; quick: tape, tempo follows)."""

    name = "pitch_shift"
    schema = (_SEMITONES, _MODE, _LOUDNESS, _QUALITY)
    shared_default = True

    @classmethod
    def _speed(cls, params) -> float:
        return 2.0 ** (float(params["semitones"]) / 12.0) if params["mode"] == "quick" else 1.0

    @classmethod
    def source_frames(cls, params, out_frames):
        return _need(cls._speed(params), out_frames)

    @classmethod
    def tape_speed(cls, params):
        cls.check_params(params)
        return cls._speed(params) if _check_mode(params, cls.name) == "quick" else None

    @classmethod
    def apply(cls, audio, sample_rate, params, out_frames=None):
        cls.check_params(params)
        mode, s = _check_mode(params, cls.name), float(params["semitones"])
        speed = cls._speed(params)
        if mode == "quick":
            return _run(cls.name, audio, sample_rate, out_frames, speed,
                        lambda x: _tape(x, sample_rate, speed, cls.tape_quality(params),
                                          out_frames))
        if mode == "fast":
            return _run(cls.name, audio, sample_rate, out_frames, speed,
                        lambda x: _stretch_then_tape(x, sample_rate, 1.0, s))
        return _run(cls.name, audio, sample_rate, out_frames, speed,
                    lambda x: _rubberband(x, sample_rate, 1.0, s, True))


@register
class TimeStretch(TapeOptions):
    """Change tempo by ``rate`` (speed factor; hq/fast: pitch kept; quick: tape, pitch follows)."""

    name = "time_stretch"
    schema = (Param("rate", ["uniform", 0.9, 1.1], low=MIN_RATE, high=MAX_RATE,
                    doc="speed factor: 1.1 = 10 % faster"), _MODE, _LOUDNESS,
              _QUALITY)
    shared_default = True

    @classmethod
    def source_frames(cls, params, out_frames):
        return _need(float(params["rate"]), out_frames)

    @classmethod
    def _checked(cls, params) -> tuple[str, float]:
        cls.check_params(params)
        mode, rate = _check_mode(params, cls.name), float(params["rate"])
        if not MIN_RATE <= rate <= MAX_RATE:
            raise StepError(f"augmentation step 'time_stretch': rate must be in "
                            f"[{MIN_RATE}, {MAX_RATE}], got {rate!r}")
        return mode, rate

    @classmethod
    def tape_speed(cls, params):
        mode, rate = cls._checked(params)
        return rate if mode == "quick" else None

    @classmethod
    def apply(cls, audio, sample_rate, params, out_frames=None):
        mode, rate = cls._checked(params)
        if mode == "quick":
            return _run(cls.name, audio, sample_rate, out_frames, rate,
                        lambda x: _tape(x, sample_rate, rate, cls.tape_quality(params),
                                          out_frames))
        return _run(cls.name, audio, sample_rate, out_frames, rate,
                    lambda x: _rubberband(x, sample_rate, rate, 0.0, mode == "hq"))


@register
class PitchTempo(Step):
    """Pitch ``semitones`` and tempo ``tempo`` together in one Rubber Band pass (as Scaper's
    pitch_shift + time_stretch, and the seed tutorial's pitch uniform(-2, 2) / tempo
    uniform(0.9, 1.1)). Modes hq | fast only."""

    name = "pitch_tempo"
    schema = (_SEMITONES,
              Param("tempo", ["uniform", 0.9, 1.1], low=MIN_RATE, high=MAX_RATE,
                    doc="speed factor: 1.1 = 10 % faster"),
              Param("mode", "hq", choices=MODES, doc="hq | fast"))
    shared_default = True

    def validate(self, field: str, sample_rate: Hz | None) -> None:
        if self.options["mode"] == "quick":
            raise RecipeError(
                f"{field}.mode",
                "pitch_tempo needs independent pitch and tempo, which one tape speed change "
                "(quick) cannot give; use mode hq or fast, or pitch_shift/time_stretch with "
                "mode quick",
            )

    @classmethod
    def source_frames(cls, params, out_frames):
        return _need(float(params["tempo"]), out_frames)

    @classmethod
    def apply(cls, audio, sample_rate, params, out_frames=None):
        cls.check_params(params)
        mode = _check_mode(params, cls.name, ("hq", "fast"))
        s, tempo = float(params["semitones"]), float(params["tempo"])
        if not MIN_RATE <= tempo <= MAX_RATE:
            raise StepError(f"augmentation step 'pitch_tempo': tempo must be in "
                            f"[{MIN_RATE}, {MAX_RATE}], got {tempo!r}")
        if mode == "fast":
            return _run(cls.name, audio, sample_rate, out_frames, tempo,
                        lambda x: _stretch_then_tape(x, sample_rate, tempo, s))
        return _run(cls.name, audio, sample_rate, out_frames, tempo,
                    lambda x: _rubberband(x, sample_rate, tempo, s, True))
