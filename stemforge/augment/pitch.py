"""Pitch and tempo steps: ``pitch_shift``, ``time_stretch`` and the combined ``pitch_tempo``.

Modes (a fixed recipe option, recorded in every drawn step):

* ``hq``    — Rubber Band's R3 "finer" engine via ``pedalboard.time_stretch(high_quality=True)``;
  pitch and tempo are independent (pitch shift keeps the tempo, time stretch keeps the pitch).
* ``fast``  — Rubber Band's R2 "faster" engine (``high_quality=False``) for the tempo part only,
  then a soxr tape speed change for the pitch: stretch by ``tempo / ratio`` (pitch kept), then
  play ``ratio = 2 ** (s / 12)`` times faster. Same semantics as ``hq``, cheaper (costs in
  docs/benchmarks.md); a pure tone's pitch is within 1 % on >= 2 s (tested; R2's phase
  vocoder wobbles on short inputs).
* ``quick`` — a soxr resampling speed change, like a tape played faster or slower: pitch and
  tempo change *together*. ``pitch_shift`` by ``s`` semitones plays ``2 ** (s / 12)`` times
  faster; ``time_stretch`` by ``rate`` raises the pitch by ``12 * log2(rate)`` semitones.
  ``pitch_tempo`` cannot honour an independent pair with one speed change, so it refuses
  ``quick`` at recipe load time. Consecutive quick steps of a chain (e.g. ``pitch_shift`` then
  ``time_stretch``) are run by ``apply_steps`` as ONE speed change by the product of their
  speeds (the composition of two ideal tape changes is one tape change), so a stem is resampled
  once, not once per step.
* ``cached`` — the ``hq`` result read from a pre-computed variant: the value drawn from the
  recipe's distribution is snapped to the nearest point of the step's ``grid`` (recorded with
  the drawn value as ``variant: {semitones, tempo}``) and the renderer reads that variant of
  the stem, rendered once by ``stemforge prepare --variants`` through Rubber Band R3
  (:mod:`stemforge.augment.grid`, :mod:`stemforge.mixing.sources`). Cost ~ plain mixing; ``apply`` cannot run it on audio.

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

from ..audio import dsp
from ..errors import RecipeError
from ..types import Frames, Hz
from .base import Param, Step, StepError, fit_length, register
from .grid import VariantGrid, parse_grid, snap, step_point

#: surplus input frames read by every pitch/tempo step (trimmed inside ``apply``)
PAD: Frames = 1024
MODES = ("hq", "fast", "quick", "cached")
APPLY_MODES = ("hq", "fast", "quick")  # cached is rendered from the variant cache, not applied
MAX_SEMITONES = 24.0
MIN_RATE, MAX_RATE = 0.25, 4.0


def _stretch_then_tape(audio: np.ndarray, sr: Hz, tempo: float, semitones: float) -> np.ndarray:
    """``fast`` mode: R2 time stretch by ``tempo / ratio`` then tape by ``ratio``:
    ``(C, T)`` -> ``(C, ~T / tempo)``, pitch x ``ratio``, tempo x ``tempo``."""
    ratio = 2.0 ** (semitones / 12.0)
    y = dsp.rubberband(audio, sr, tempo / ratio, 0.0, hq=False)
    return y if semitones == 0 else dsp.tape(y, sr, ratio)


def _need(speed: float, out_frames: Frames) -> Frames:
    return int(math.ceil(out_frames * speed)) + PAD


def _run(name: str, audio: np.ndarray, sr: Hz, out_frames: Frames | None, speed: float,
         process) -> np.ndarray:
    """``process(audio)`` of checked C-contiguous audio, after checking its length against
    ``source_frames`` for ``out_frames``, trimmed to ``out_frames``."""
    if out_frames is None:
        raise StepError(f"augmentation step '{name}' changes length: out_frames is required")
    need = _need(speed, out_frames)
    if audio.shape[1] != need:
        raise StepError(f"augmentation step '{name}': expected {need} input frames "
                        f"(source_frames for {out_frames} output frames), got {audio.shape[1]}")
    return fit_length(name, process(audio), out_frames)


def _check_mode(params: Mapping[str, Any], name: str, allowed=APPLY_MODES) -> str:
    mode = params.get("mode")
    if mode not in allowed:
        raise StepError(f"augmentation step '{name}': mode must be one of {', '.join(allowed)}, "
                        f"got {mode!r}")
    return mode


_GRID = Param("grid", None, parser=parse_grid, record=False,
               doc="mode cached only: the prepared (semitones, tempo) grid, 'semitones=-2,-1,0,1,2 "
                   "tempo=0.9,1,1.1' or {semitones: [...], tempo: [...]}")


class CachedMode(Step):
    """The ``cached`` mode shared by the pitch/tempo steps. ``AXES``: the grid axes the step
    moves (``semitones`` for pitch_shift, ``tempo`` for time_stretch, both for pitch_tempo);
    ``VALUE``: the drawn param that snaps to each axis."""

    AXES: tuple[str, ...] = ()
    VALUE: dict = {}
    keeps_length = False

    def validate(self, field, sample_rate):
        super().validate(field, sample_rate)
        grid = self.options.get("grid")
        if self.options["mode"] != "cached":
            if grid is not None:
                raise RecipeError(f"{field}.grid", "grid is only for mode cached (pre-computed "
                                  "variants)")
            return
        if grid is None:
            raise RecipeError(f"{field}.grid", "mode cached needs the grid of prepared variants, "
                              "e.g. grid: 'semitones=-2,-1,0,1,2 tempo=0.9,1,1.1' (the SPEC given "
                              "to stemforge prepare --variants)")
        for axis in self.AXES:
            if len(self.AXES) == 1 and getattr(grid, axis) is None:
                raise RecipeError(f"{field}.grid", f"step '{self.name}' moves {axis} but the grid "
                                  f"has no {axis} values")

    def grid_points(self) -> list[tuple[float, float]]:
        """(semitones, tempo) points this configured cached step can use."""
        g: VariantGrid = self.options["grid"]
        sem = g.axis("semitones") if "semitones" in self.AXES else (0.0,)
        tem = g.axis("tempo") if "tempo" in self.AXES else (1.0,)
        return [(a, b) for a in sem for b in tem]

    def draw(self, rng, context):
        out = super().draw(rng, context)
        if self.options["mode"] == "cached":
            g: VariantGrid = self.options["grid"]
            point = {"semitones": 0.0, "tempo": 1.0}
            for axis in self.AXES:
                point[axis] = snap(out[self.VALUE[axis]], g.axis(axis), log=axis == "tempo")
            out["variant"] = point
        return out

    @classmethod
    def cached_point(cls, params) -> tuple[float, float]:
        """The recorded variant point of a cached step, checked against the step's axes."""
        s, t = step_point({"step": cls.name, **params})
        if ("semitones" not in cls.AXES and s != 0.0) or ("tempo" not in cls.AXES and t != 1.0):
            raise StepError(f"augmentation step '{cls.name}' (mode cached): variant "
                            f"{params['variant']!r} moves an axis the step does not "
                            f"({', '.join(cls.AXES)} only)")
        return s, t

    @classmethod
    def cached_error(cls) -> StepError:
        return StepError(f"augmentation step '{cls.name}' (mode cached) reads a pre-computed "
                         "variant of the stem; it is rendered from the variant cache "
                         "(stemforge.mixing.sources.read_source), not applied to audio")


LOUDNESS = ("measured", "source")
QUALITIES = ("HQ", "MQ", "LQ")
_QUALITY = Param("quality", "HQ", choices=QUALITIES,
                 doc="HQ | MQ | LQ (quick only): soxr quality of the tape resampling")
_LOUDNESS = Param("loudness", "measured", choices=LOUDNESS,
                  doc="measured | source (quick only): how the mixer measures the stem's "
                      "loudness for snr levels, see TapeLoudness")


class TapeOptions(CachedMode):
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
        super().validate(field, sample_rate)
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
        want = {p.name for p in cls.schema if p.name not in cls.OPTIONAL and p.record}
        if params.get("mode") == "cached":
            want.add("variant")
        if rest != want:
            raise StepError(f"augmentation step '{cls.name}': expected parameters "
                            f"{sorted(want)} (and optionally {', '.join(cls.OPTIONAL)}), got "
                            f"{sorted(params)}")
        if params.get("mode") == "cached":
            cls.cached_point(params)

    @classmethod
    def tape_quality(cls, params) -> str:
        return params.get("quality", "HQ")


_SEMITONES = Param("semitones", ["uniform", -2.0, 2.0], low=-MAX_SEMITONES, high=MAX_SEMITONES,
                   doc="pitch shift in semitones")
_MODE = Param("mode", "hq", choices=MODES, doc="hq | fast | quick (tape) | cached")


@register
class PitchShift(TapeOptions):
    """Shift pitch by ``semitones`` (hq/fast: tempo kept; quick: tape, tempo follows)."""

    name = "pitch_shift"
    schema = (_SEMITONES, _MODE, _LOUDNESS, _QUALITY, _GRID)
    shared_default = True
    AXES, VALUE = ("semitones",), {"semitones": "semitones"}

    @classmethod
    def _speed(cls, params) -> float:
        return 2.0 ** (float(params["semitones"]) / 12.0) if params["mode"] == "quick" else 1.0

    @classmethod
    def source_frames(cls, params, out_frames):
        return _need(cls._speed(params), out_frames)

    @classmethod
    def tape_speed(cls, params):
        cls.check_params(params)
        if params["mode"] == "cached":
            return None
        return cls._speed(params) if _check_mode(params, cls.name) == "quick" else None

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        if params["mode"] == "cached":
            raise cls.cached_error()
        mode, s = _check_mode(params, cls.name), float(params["semitones"])
        speed = cls._speed(params)
        if mode == "quick":
            return _run(cls.name, audio, sample_rate, out_frames, speed,
                        lambda x: dsp.tape(x, sample_rate, speed, cls.tape_quality(params),
                                          out_frames))
        if mode == "fast":
            return _run(cls.name, audio, sample_rate, out_frames, speed,
                        lambda x: _stretch_then_tape(x, sample_rate, 1.0, s))
        return _run(cls.name, audio, sample_rate, out_frames, speed,
                    lambda x: dsp.rubberband(x, sample_rate, 1.0, s, True))


@register
class TimeStretch(TapeOptions):
    """Change tempo by ``rate`` (speed factor; hq/fast: pitch kept; quick: tape, pitch follows)."""

    name = "time_stretch"
    schema = (Param("rate", ["uniform", 0.9, 1.1], low=MIN_RATE, high=MAX_RATE,
                    doc="speed factor: 1.1 = 10 % faster"), _MODE, _LOUDNESS,
              _QUALITY, _GRID)
    shared_default = True
    AXES, VALUE = ("tempo",), {"tempo": "rate"}

    @classmethod
    def source_frames(cls, params, out_frames):
        if params.get("mode") == "cached":
            return _need(cls.cached_point(params)[1], out_frames)
        return _need(float(params["rate"]), out_frames)

    @classmethod
    def _checked(cls, params) -> tuple[str, float]:
        cls.check_params(params)
        mode = "cached" if params["mode"] == "cached" else _check_mode(params, cls.name)
        rate = float(params["rate"])
        if not MIN_RATE <= rate <= MAX_RATE:
            raise StepError(f"augmentation step 'time_stretch': rate must be in "
                            f"[{MIN_RATE}, {MAX_RATE}], got {rate!r}")
        return mode, rate

    @classmethod
    def tape_speed(cls, params):
        mode, rate = cls._checked(params)
        return rate if mode == "quick" else None

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        mode, rate = cls._checked(params)
        if mode == "cached":
            raise cls.cached_error()
        if mode == "quick":
            return _run(cls.name, audio, sample_rate, out_frames, rate,
                        lambda x: dsp.tape(x, sample_rate, rate, cls.tape_quality(params),
                                          out_frames))
        return _run(cls.name, audio, sample_rate, out_frames, rate,
                    lambda x: dsp.rubberband(x, sample_rate, rate, 0.0, mode == "hq"))


@register
class PitchTempo(CachedMode):
    """Pitch ``semitones`` and tempo ``tempo`` together in one Rubber Band pass (as Scaper's
    pitch_shift + time_stretch, and the seed tutorial's pitch uniform(-2, 2) / tempo
    uniform(0.9, 1.1)). Modes hq | fast | cached (not quick)."""

    name = "pitch_tempo"
    schema = (_SEMITONES,
              Param("tempo", ["uniform", 0.9, 1.1], low=MIN_RATE, high=MAX_RATE,
                    doc="speed factor: 1.1 = 10 % faster"),
              Param("mode", "hq", choices=MODES, doc="hq | fast | cached"), _GRID)
    shared_default = True
    AXES, VALUE = ("semitones", "tempo"), {"semitones": "semitones", "tempo": "tempo"}

    def validate(self, field: str, sample_rate: Hz | None) -> None:
        super().validate(field, sample_rate)
        if self.options["mode"] == "quick":
            raise RecipeError(
                f"{field}.mode",
                "pitch_tempo needs independent pitch and tempo, which one tape speed change "
                "(quick) cannot give; use mode hq or fast, or pitch_shift/time_stretch with "
                "mode quick",
            )

    @classmethod
    def source_frames(cls, params, out_frames):
        if params.get("mode") == "cached":
            return _need(cls.cached_point(params)[1], out_frames)
        return _need(float(params["tempo"]), out_frames)

    @classmethod
    def check_params(cls, params):
        want = {"semitones", "tempo", "mode"} | ({"variant"} if params.get("mode") == "cached"
                                                 else set())
        if set(params) != want:
            raise StepError(f"augmentation step '{cls.name}': expected parameters "
                            f"{sorted(want)}, got {sorted(params)}")
        if params.get("mode") == "cached":
            cls.cached_point(params)

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        if params.get("mode") == "cached":
            raise cls.cached_error()
        mode = _check_mode(params, cls.name, ("hq", "fast"))
        s, tempo = float(params["semitones"]), float(params["tempo"])
        if not MIN_RATE <= tempo <= MAX_RATE:
            raise StepError(f"augmentation step 'pitch_tempo': tempo must be in "
                            f"[{MIN_RATE}, {MAX_RATE}], got {tempo!r}")
        if mode == "fast":
            return _run(cls.name, audio, sample_rate, out_frames, tempo,
                        lambda x: _stretch_then_tape(x, sample_rate, tempo, s))
        return _run(cls.name, audio, sample_rate, out_frames, tempo,
                    lambda x: dsp.rubberband(x, sample_rate, tempo, s, True))
