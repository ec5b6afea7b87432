"""Pitch/tempo variant grids: the pure maths of the ``cached`` mode of ``pitch_shift``,
``time_stretch`` and ``pitch_tempo`` (see docs/augmentation.md, "Cached mode").

``stemforge prepare ROOT --variants "semitones=-2,-1,0,1,2 tempo=0.9,1,1.1"`` renders, once per
stem and grid point, the whole stem through Rubber Band R3 (``stemforge.prepare``) and stores it
beside the StemCache with its K-weighted 10 ms energies (:class:`~stemforge.audio.cache.
VariantCache`). A recipe step in ``mode: cached`` draws its value from its distribution, snaps
it to the nearest point of its declared ``grid`` and records both; rendering then reads a slice
of the variant instead of processing audio (:mod:`stemforge.mixing.sources`).

This module holds what both sides share: grids (parse, points, snapping), variant keys, and the
grid point a run of recorded cached steps asks for.

Keys. A variant is stored under ``variant_key(stem key, semitones, tempo)``: a hash of the
stem's content key, the grid point and :func:`engine` (the Rubber Band build and options), so a
changed stem file or engine can never serve a stale variant: it is simply missing, and
``mixing.sources.check_variants`` says so when the Mixer is built.

Time mapping. A variant at tempo ``t`` of a stem of ``T`` frames has ``round(T / t)`` frames
(Rubber Band's offline output, aligned with its input); source frame ``s`` sits at variant
frame ``round(s / t)`` (half up, :func:`variant_start`).

Chains. A cached step reads a variant of the UNPROCESSED stem, so cached entries must come
before every other step of the recipe's ``augment`` list (checked at load time). Consecutive
cached steps of one stem (e.g. ``pitch_shift`` then ``time_stretch``) combine into one variant:
semitones add, tempos multiply.
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..errors import RecipeError, StemforgeError
from .base import StepError, get

#: the identity point: the plain stem (never stored as a variant)
IDENTITY = (0.0, 1.0)
AXES = ("semitones", "tempo")
#: hard ranges, as the steps' (stemforge.augment.pitch MAX_SEMITONES, MIN_RATE/MAX_RATE)
RANGES = {"semitones": (-24.0, 24.0), "tempo": (0.25, 4.0)}
#: bump when the rendering of a variant changes in a way the pedalboard version does not show
FORMAT = 1


class VariantError(StemforgeError):
    """A variant grid is malformed, or a recipe needs variants that were not prepared."""


@functools.lru_cache(maxsize=1)
def engine() -> str:
    """The engine identity folded into every variant key: Rubber Band R3 "finer" as bundled
    by the installed pedalboard, formants not preserved (the ``hq`` mode's call)."""
    from importlib.metadata import version

    return f"rubberband-r3-finer/formants-off/pedalboard-{version('pedalboard')}/variants-{FORMAT}"


def _canon(v: float) -> float:
    """Grid values compared and keyed to 1e-6 (so 0.1 + 0.2 finds the 0.3 variant)."""
    return round(float(v), 6) + 0.0  # + 0.0: no -0.0


def fmt(v: float) -> str:
    """A grid value as written in a SPEC: shortest form (``-2``, ``0.9``, ``1.05``)."""
    return f"{_canon(v):g}"


@functools.lru_cache(maxsize=65536)  # called per stem per item by the sampler and renderer
def variant_key(stem_key: str, semitones: float, tempo: float) -> str:
    """Storage key of a stem's variant at (semitones, tempo) for the installed engine."""
    text = f"{stem_key}|semitones={_canon(semitones):.6f}|tempo={_canon(tempo):.6f}|{engine()}"
    return hashlib.sha1(text.encode()).hexdigest()[:24]


def is_identity(point: tuple[float, float]) -> bool:
    return _canon(point[0]) == 0.0 and _canon(point[1]) == 1.0


@dataclass(frozen=True)
class VariantGrid:
    """Declared grid values per axis (sorted, unique). ``None`` = axis not given (identity
    value only). The grid is the product of the axes."""

    semitones: tuple[float, ...] | None = None
    tempo: tuple[float, ...] | None = None

    def axis(self, name: str) -> tuple[float, ...]:
        vals = getattr(self, name)
        return vals if vals is not None else (IDENTITY[AXES.index(name)],)

    def points(self) -> list[tuple[float, float]]:
        """Every non-identity (semitones, tempo) point, in spec order."""
        return [(s, t) for s in self.axis("semitones") for t in self.axis("tempo")
                if not is_identity((s, t))]

    def spec(self) -> str:
        """The SPEC string (``semitones=-2,0,2 tempo=0.9,1``) of the given axes."""
        return " ".join(f"{a}={','.join(fmt(v) for v in getattr(self, a))}"
                        for a in AXES if getattr(self, a) is not None)


def parse_grid(value: Any, field: str = "--variants") -> VariantGrid:
    """A grid from a SPEC string ``"semitones=-2,-1,0,1,2 tempo=0.9,1,1.1"`` (axes separated by
    spaces, values by commas; either axis may be left out) or a mapping ``{semitones: [...],
    tempo: [...]}``. Errors (VariantError; RecipeError at ``field`` when ``field`` is a recipe
    path, i.e. does not start with ``-``) name the axis and value at fault."""
    def fail(msg: str):
        if field.startswith("-"):
            raise VariantError(f"{field} {value!r}: {msg}")
        raise RecipeError(field, msg)

    axes: dict[str, Any] = {}
    if isinstance(value, str):
        parts = value.split()
        if not parts:
            fail("empty grid; expected e.g. 'semitones=-2,-1,0,1,2 tempo=0.9,1,1.1'")
        for part in parts:
            name, sep, vals = part.partition("=")
            if not sep:
                fail(f"expected AXIS=V,V,... (axes: {', '.join(AXES)}), got {part!r}")
            if name in axes:
                fail(f"axis {name!r} given twice")
            axes[name] = vals.split(",")
    elif isinstance(value, Mapping):
        if not value:
            fail("empty grid; expected {semitones: [...], tempo: [...]}")
        axes = {str(k): (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in value.items()}
    else:
        fail(f"expected a grid string 'semitones=V,V tempo=V,V' or a mapping, got {value!r}")
    out: dict[str, tuple[float, ...]] = {}
    for name, raw in axes.items():
        if name not in AXES:
            fail(f"unknown axis {name!r}; axes: {', '.join(AXES)}")
        vals = []
        for v in raw:
            try:
                if isinstance(v, bool):
                    raise ValueError
                x = float(v)
            except (TypeError, ValueError):
                fail(f"{name}: {v!r} is not a number")
            lo, hi = RANGES[name]
            if not math.isfinite(x) or not lo <= x <= hi:
                fail(f"{name}: {v!r} is outside [{lo:g}, {hi:g}]")
            x = _canon(x)
            if x in vals:
                fail(f"{name}: value {fmt(x)} given twice")
            vals.append(x)
        if not vals:
            fail(f"{name}: no values")
        out[name] = tuple(sorted(vals))
    return VariantGrid(out.get("semitones"), out.get("tempo"))


def snap(value: float, values: Sequence[float], log: bool = False) -> float:
    """The grid value nearest ``value`` (|difference|, or |log ratio| for speed factors);
    ties go to the smaller value."""
    if log:
        return min(values, key=lambda g: (abs(math.log(value / g)), g))
    return min(values, key=lambda g: (abs(value - g), g))


# ---------------------------------------------------------------------- recorded steps
def is_cached(step: Mapping[str, Any]) -> bool:
    """True when a recorded step dict is a cached-mode pitch/tempo step."""
    return isinstance(step, Mapping) and step.get("mode") == "cached" and \
        step.get("step") in ("pitch_shift", "time_stretch", "pitch_tempo")


def step_point(step: Mapping[str, Any]) -> tuple[float, float]:
    """The grid point a recorded cached step uses (its ``variant``), validated."""
    v = step.get("variant")
    if not isinstance(v, Mapping) or set(v) != set(AXES):
        raise_step(step, f"expected variant {{semitones: S, tempo: T}}, got {v!r}")
    s, t = v["semitones"], v["tempo"]
    for name, x in (("semitones", s), ("tempo", t)):
        lo, hi = RANGES[name]
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) \
                or not lo <= x <= hi:
            raise_step(step, f"variant {name} must be a number in [{lo:g}, {hi:g}], got {x!r}")
    return float(s), float(t)


def raise_step(step: Mapping[str, Any], msg: str):
    raise StepError(f"augmentation step '{step.get('step')}' (mode cached): {msg}")


def combine(points: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """Semitones add, tempos multiply (canonicalised)."""
    s, t = 0.0, 1.0
    for a, b in points:
        s, t = s + a, t * b
    return _canon(s), _canon(t)


def cached_run(steps: Sequence[Mapping[str, Any]]) -> tuple[int, tuple[float, float]]:
    """``(k, point)``: the number of leading cached steps and their combined grid point. Each
    recorded step is checked by its class (params, variant axes): StepError otherwise."""
    k, points = 0, []
    while k < len(steps) and is_cached(steps[k]):
        cls = get(steps[k]["step"])
        params = {n: v for n, v in steps[k].items() if n != "step"}
        cls.check_params(params)
        points.append(cls.cached_point(params))
        k += 1
    return k, combine(points)


def variant_start(start: int, tempo: float) -> int:
    """The variant frame where source frame ``start`` sits at ``tempo`` (round half up)."""
    return int(math.floor(start / tempo + 0.5))


# ---------------------------------------------------------------------- recipe side
def entry_points(entry) -> list[tuple[float, float]] | None:
    """Grid points a cached chain entry can use (identity included when p < 1); None if the
    entry is not cached."""
    step = entry.step
    if step.options.get("mode") != "cached":
        return None
    pts = step.grid_points()
    if entry.p < 1.0 and IDENTITY not in pts:
        pts = pts + [IDENTITY]
    return pts


def required_points(chain, stem: str) -> list[tuple[float, float]]:
    """Non-identity combined points the chain's cached entries can ask of ``stem``."""
    sets = [pts for e in chain.entries if e.targets(stem, {})
            if (pts := entry_points(e)) is not None]
    combos = {IDENTITY}
    for pts in sets:
        combos = {combine([a, b]) for a in combos for b in pts}
    return sorted(p for p in combos if not is_identity(p))


