"""The augmentation step interface and its registry.

A step is split in two, like descript-audiotools' ``instantiate``/``transform``:

* ``draw(rng, context) -> dict`` — draws concrete parameters from the step's configured
  distributions with the caller's ``numpy.random.Generator``. The result is plain JSON data
  (floats, ints, bools, strings) recorded in the MixSpec.
* ``apply(audio, sample_rate, params, out_frames) -> audio`` — a pure, deterministic class
  method of the parameters alone: float32 ``(C, T_in)`` in, float32 ``(C, out_frames)`` out.
  A template: the base class checks the recorded params against the schema, the audio's shape,
  dtype and channels, and (length-preserving steps) the length, then calls the step's
  ``transform`` with the same arguments. A step writes only its draw (the schema, or
  :meth:`Step.draw` for derived values) and its ``transform``.

Steps that change length (pitch/tempo, time shift) override ``source_frames(params,
out_frames)``: how many input frames ``apply`` needs to return exactly ``out_frames``. The
renderer reads that many frames; ``apply`` trims any surplus itself and never zero-pads.

A configured step (one recipe entry's parameters) is an *instance* of a :class:`Step` subclass;
``apply`` and ``source_frames`` are class methods, so a recorded step dict can be rendered with
only the registry (``get(name).apply(...)``), no recipe needed.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from ..errors import RecipeError, StemforgeError
from .. import distributions
from ..distributions import Distribution
from ..types import Frames, Hz


class StepError(StemforgeError):
    """A recorded step (e.g. from a spec file) cannot be applied: unknown name, bad params,
    or audio of the wrong shape/length."""


@dataclass(frozen=True)
class Param:
    """One recipe parameter of a step.

    ``choices`` set → a fixed string option (e.g. ``mode``), not random.
    ``parser`` set → a fixed structured option parsed by ``parser(value, field)`` (e.g. the
    cached mode's ``grid``); ``None`` stays None (option not given). Neither is recorded by
    :meth:`Step.draw` when ``record`` is False.
    Otherwise the value is a distribution (see :mod:`stemforge.distributions`) whose whole
    support must lie in ``[low, high]``; ``integer`` rounds the drawn value to an int.
    """

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    integer: bool = False
    doc: str = ""
    parser: Callable[[Any, str], Any] | None = None
    record: bool = True

    def parse(self, value: Any, field: str) -> Any:
        if self.parser is not None:
            return None if value is None else self.parser(value, field)
        if self.choices is not None:
            if not isinstance(value, str) or value not in self.choices:
                raise RecipeError(
                    field, f"expected one of {', '.join(self.choices)}, got {value!r}"
                )
            return value
        return distributions.parse(value, field, low=self.low, high=self.high)


class Step(ABC):
    """Base class of every augmentation step. Subclasses set the class attributes below and
    implement :meth:`transform`; length-changing steps set ``keeps_length = False`` and also
    implement :meth:`source_frames`."""

    name: ClassVar[str] = ""
    schema: ClassVar[tuple[Param, ...]] = ()
    #: in coherent mixes, draw once per mixture and share across stems unless the recipe says
    shared_default: ClassVar[bool] = False
    #: the step needs at least this many channels (channel swap needs 2)
    min_channels: ClassVar[int] = 1
    #: names of the recorded (drawn) params when they differ from the schema's names
    recorded: ClassVar[tuple[str, ...] | None] = None
    #: the output has the input's length (``apply`` checks ``out_frames`` against it)
    keeps_length: ClassVar[bool] = True

    def __init__(self, options: Mapping[str, Any]):
        #: parsed recipe options: name -> Distribution (random) or str (fixed choice)
        self.options = dict(options)

    # ------------------------------------------------------------------ configuration
    @classmethod
    def configure(
        cls, raw: Mapping[str, Any], field: str, *, channels: int, sample_rate: Hz | None
    ) -> "Step":
        """Validate a recipe entry's parameters (``raw``: name -> YAML value) and build the step.

        Unknown parameters, bad values and channel/sample-rate conflicts raise RecipeError with
        the field path ``<field>.<param>``.
        """
        known = {p.name: p for p in cls.schema}
        for key in raw:
            if key not in known:
                listed = ", ".join(known) if known else "none"
                raise RecipeError(
                    f"{field}.{key}",
                    f"unknown parameter for step '{cls.name}'; its parameters are: {listed}",
                )
        if channels < cls.min_channels:
            raise RecipeError(
                field,
                f"step '{cls.name}' needs at least {cls.min_channels} channels but the recipe "
                f"has {channels} (mono input)",
            )
        options = {p.name: p.parse(raw.get(p.name, p.default), f"{field}.{p.name}")
                   for p in cls.schema}
        step = cls(options)
        step.validate(field, sample_rate)
        return step

    def validate(self, field: str, sample_rate: Hz | None) -> None:
        """Cross-parameter checks at recipe load time (override). ``sample_rate`` may be None."""

    def bounds(self, name: str) -> tuple[float, float]:
        opt = self.options[name]
        return opt.bounds if isinstance(opt, Distribution) else (math.nan, math.nan)

    # ------------------------------------------------------------------ draw / apply
    def draw(self, rng: np.random.Generator, context: Mapping[str, Any]) -> dict[str, Any]:
        """Concrete parameters as plain data. Draws the schema's random parameters in schema
        order (one ``Distribution.sample`` each) and copies fixed choices."""
        out: dict[str, Any] = {}
        for p in self.schema:
            if not p.record:
                continue
            opt = self.options[p.name]
            if isinstance(opt, Distribution):
                v = opt.sample(rng)
                out[p.name] = int(round(v)) if p.integer else float(v)
            else:
                out[p.name] = opt
        return out

    @classmethod
    def apply(
        cls, audio: np.ndarray, sample_rate: Hz, params: Mapping[str, Any],
        out_frames: Frames | None = None,
    ) -> np.ndarray:
        """float32 ``(C, source_frames(params, out_frames))`` -> float32 ``(C, out_frames)``.

        ``out_frames=None`` means "same as the input" for length-preserving steps (a
        length-changing step decides what it means). Checks, then :meth:`transform`: the
        params against the schema (:meth:`check_params`, StepError), the audio
        (:func:`check_audio`: 2-D float32 with at least ``min_channels`` channels, made
        C-contiguous) and, when ``keeps_length``, that ``out_frames`` is the input's length.
        """
        cls.check_params(params)
        audio = check_audio(cls.name, audio, cls.min_channels)
        if cls.keeps_length:
            if out_frames is not None and out_frames != audio.shape[1]:
                raise StepError(f"augmentation step '{cls.name}' keeps the length: got "
                                f"{audio.shape[1]} input frames but {out_frames} output frames "
                                "were requested")
            out_frames = audio.shape[1]
        return cls.transform(audio, sample_rate, params, out_frames)

    @classmethod
    @abstractmethod
    def transform(
        cls, audio: np.ndarray, sample_rate: Hz, params: Mapping[str, Any],
        out_frames: Frames | None,
    ) -> np.ndarray:
        """The step itself, on checked input (see :meth:`apply`): C-contiguous float32
        ``(C, T_in)`` -> float32 ``(C, out_frames)``; ``out_frames`` is an int for
        length-preserving steps."""

    @classmethod
    def source_frames(cls, params: Mapping[str, Any], out_frames: Frames) -> Frames:
        """Input frames needed to produce exactly ``out_frames`` output frames."""
        return out_frames

    @classmethod
    def tape_speed(cls, params: Mapping[str, Any]) -> float | None:
        """The speed factor when the recorded step is a pure tape speed change (a resampling:
        ``speed`` times faster, pitch x ``speed``), else None. Consecutive tape steps compose
        into one speed change (speeds multiply), which :func:`~stemforge.augment.chain.apply_steps`
        runs as a single resampling. Validates ``params`` like :meth:`apply` would."""
        return None

    @classmethod
    def tape_quality(cls, params: Mapping[str, Any]) -> str:
        """soxr quality of a tape step's resampling (only runs of equal quality are fused)."""
        return "HQ"

    # ------------------------------------------------------------------ helpers
    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """Refuse a recorded params dict that does not match the schema (e.g. a hand-edited spec)."""
        want = set(cls.recorded if cls.recorded is not None
                   else (p.name for p in cls.schema if p.record))
        got = set(params)
        if got != want:
            raise StepError(
                f"augmentation step '{cls.name}': expected parameters {sorted(want)}, "
                f"got {sorted(got)}"
            )


def check_audio(step: str, audio: np.ndarray, min_channels: int = 1) -> np.ndarray:
    """Validate ``(C, T)`` float32 audio for a step; returns it C-contiguous."""
    if not isinstance(audio, np.ndarray) or audio.ndim != 2:
        raise StepError(f"augmentation step '{step}': expected a (channels, frames) array, "
                        f"got shape {getattr(audio, 'shape', None)}")
    if audio.dtype != np.float32:
        raise StepError(f"augmentation step '{step}': expected float32 audio, got {audio.dtype}")
    if audio.shape[0] < min_channels:
        raise StepError(f"augmentation step '{step}': needs at least {min_channels} channels, "
                        f"got {audio.shape[0]}")
    return np.ascontiguousarray(audio)


def fit_length(step: str, audio: np.ndarray, out_frames: Frames) -> np.ndarray:
    """Trim ``audio`` to ``out_frames``; refuse (never pad) when it is shorter."""
    if audio.shape[1] < out_frames:
        raise StepError(
            f"augmentation step '{step}': produced {audio.shape[1]} frames but {out_frames} were "
            "requested; the input was shorter than source_frames() asked for"
        )
    return np.ascontiguousarray(audio[:, :out_frames], dtype=np.float32)


# ---------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[Step]] = {}


def register(cls: type[Step]) -> type[Step]:
    """Class decorator: make ``cls`` available by ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no step name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"augmentation step {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Step]:
    """The step class registered as ``name``; StepError listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise StepError(
            f"unknown augmentation step {name!r}; known steps: {', '.join(names())}"
        ) from None


def names() -> list[str]:
    """Registered step names, sorted."""
    return sorted(_REGISTRY)
