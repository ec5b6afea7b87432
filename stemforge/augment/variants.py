"""Pre-computed pitch/tempo variants: the ``cached`` mode of ``pitch_shift``, ``time_stretch``
and ``pitch_tempo`` (see docs/augmentation.md, "Cached mode").

``stemforge prepare ROOT --variants "semitones=-2,-1,0,1,2 tempo=0.9,1,1.1"`` renders, once per
stem and grid point, the whole stem through Rubber Band R3 (the ``hq`` engine) and stores it
beside the StemCache with its K-weighted 10 ms energies (:class:`~stemforge.audio.cache.
VariantCache`). A recipe step in ``mode: cached`` draws its value from its distribution, snaps
it to the nearest point of its declared ``grid`` and records both; rendering then reads a slice
of the variant instead of processing audio, so a pitch/tempo-augmented mixture costs about what
a plain one does, at HQ quality.

Keys. A variant is stored under ``variant_key(stem key, semitones, tempo)``: a hash of the
stem's content key (its files' path, size and mtime), the grid point and :func:`engine` (the
Rubber Band build and options), so a changed stem file or engine can never serve a stale
variant: it is simply missing, and :func:`check_variants` says so when the Mixer is built.

Time mapping. A variant at tempo ``t`` of a stem of ``T`` frames has ``round(T / t)`` frames
(Rubber Band's offline output, aligned with its input); source frame ``s`` sits at variant
frame ``round(s / t)`` (half up). An excerpt drawn at source ``start`` reads the variant from
``round(start / t)``, exactly as many frames as the rest of the chain needs.

Chains. A cached step reads a variant of the UNPROCESSED stem, so cached entries must come
before every other step of the recipe's ``augment`` list (checked at load time). Consecutive
cached steps of one stem (e.g. ``pitch_shift`` then ``time_stretch``) combine into one variant:
semitones add, tempos multiply; :func:`check_variants` requires every combination.
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import AudioError, RecipeError, StemforgeError
from ..types import Frames

#: the identity point: the plain stem (never stored as a variant)
IDENTITY = (0.0, 1.0)
AXES = ("semitones", "tempo")
#: hard ranges, as the steps' (stemforge.augment.pitch MAX_SEMITONES, MIN_RATE/MAX_RATE)
RANGES = {"semitones": (-24.0, 24.0), "tempo": (0.25, 4.0)}
#: bump when the rendering of a variant changes in a way the pedalboard version does not show
FORMAT = 1
RESAMPLE_PAD = 16  # as stemforge.mixing.sample.RESAMPLE_PAD


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
    from .base import StepError

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
    from .base import get

    k, points = 0, []
    while k < len(steps) and is_cached(steps[k]):
        cls = get(steps[k]["step"])
        params = {n: v for n, v in steps[k].items() if n != "step"}
        cls.check_params(params)
        points.append(cls.cached_point(params))
        k += 1
    return k, combine(points)


def _command(index, grid_spec: str) -> str:
    return f"stemforge prepare {index.index_file} --variants '{grid_spec}'"


def _missing(index, track_id: str, stem: str, point, grid_spec: str) -> VariantError:
    return VariantError(
        f"track {track_id!r} stem {stem!r}: pitch/tempo variant semitones={fmt(point[0])} "
        f"tempo={fmt(point[1])} is not prepared (or the stem file changed since); run: "
        f"{_command(index, grid_spec)}")


def read_source(index, src, sample_rate: int, frames: Frames) -> tuple[np.ndarray, list[dict]]:
    """The audio a spec source's leading cached steps produce, and the steps left to apply.

    ``src``: a :class:`~stemforge.mixing.spec.SourceSpec` whose steps start with cached steps.
    Reads the variant (the plain stem at the identity point) from ``round(start / tempo)`` at
    the track's rate, resamples to ``sample_rate`` when the track differs, and returns float32
    ``(track channels, frame_plan(rest, frames)[0])`` plus ``rest`` (the remaining steps).
    The audio is a READ-ONLY view of the variant's memmap when no resampling is needed (no
    copy: the renderer multiplies it by the gain into its buffer), else a new array.
    Raises VariantError when the variant is not prepared, AudioError when it is too short.
    """
    from ..audio import dsp
    from .chain import frame_plan

    k, point = cached_run(src.steps)
    rest = list(src.steps[k:])
    m = frame_plan(rest, frames)[0]
    track = index.track(src.track)
    stem = track.stems[src.stem]
    sr_t = src.track_sample_rate or track.sample_rate
    n = m if sr_t == sample_rate else int(math.ceil(m * sr_t / sample_rate)) + RESAMPLE_PAD
    if is_identity(point):
        audio = index.read(src.track, src.stem, src.start, n)
    else:
        key = variant_key(stem.key, *point)
        mm = index.variants.get(key)
        if mm is None:
            raise _missing(index, src.track, src.stem, point,
                           VariantGrid((point[0],), (point[1],)).spec())
        v0 = int(math.floor(src.start / point[1] + 0.5))
        if v0 + n > mm.shape[1]:
            raise AudioError(
                f"track {src.track!r} stem {src.stem!r}: variant semitones={fmt(point[0])} "
                f"tempo={fmt(point[1])} ({index.variants.path(key)}) has {mm.shape[1]} frames, "
                f"{v0 + n} needed (start {src.start} -> {v0}); never zero-padded")
        audio = mm[:, v0:v0 + n]
    if sr_t != sample_rate:
        audio = dsp.resample(audio, sr_t, sample_rate)[:, :m]
    return audio, rest


def variant_energies(index, src, frames: Frames, preserving) -> tuple[int, Any, int] | None:
    """``(span, energies, start)`` giving a cached source's loudness from stored energies (the
    variant's own, or the plain stem's at the identity point), or None (no leading cached
    steps, a later step changes the K-weighted energy, or the variant's energies are missing).
    The caller checks the track's rate/channels as for plain stems."""
    k, point = cached_run(src.steps) if src.steps and is_cached(src.steps[0]) else (0, IDENTITY)
    if k == 0 or any(s.get("step") not in preserving for s in src.steps[k:]):
        return None
    if is_identity(point):
        return frames, index.energies(src.track, src.stem), src.start
    stem = index.track(src.track).stems[src.stem]
    e = index.variants.energies(variant_key(stem.key, *point))
    if e is None:
        return None
    return frames, e, int(math.floor(src.start / point[1] + 0.5))


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


def check_variants(recipe, index, by_stem: Mapping[str, Sequence]) -> None:
    """Refuse (VariantError) a recipe whose cached steps need variants the index's cache does
    not hold, for any candidate track of any source stem. Called when a Mixer is built (every
    generate / torch / regenerate path builds one), so a job never fails midway; a bare
    Sampler (e.g. the torch ValidationDataset, which applies no augmentation) does not check. The message names a missing (track, stem, point), how
    many are missing, and the exact ``stemforge prepare`` command that renders them."""
    if not any(entry_points(e) is not None for e in recipe.augment.entries):
        return
    missing, total, needed = [], 0, set()
    for s in recipe.sources:
        pts = required_points(recipe.augment, s)
        needed.update(pts)
        for track in by_stem.get(s, ()):
            stem = track.stems[s]
            for p in pts:
                total += 1
                if not index.variants.has(variant_key(stem.key, *p)):
                    missing.append((track.id, s, p))
    if not missing:
        return
    grid = VariantGrid(tuple(sorted({p[0] for p in needed})), tuple(sorted({p[1] for p in needed})))
    tid, s, p = missing[0]
    fields = ", ".join(e.key for e in recipe.augment.entries if entry_points(e) is not None)
    raise VariantError(
        f"recipe {recipe.name!r} {fields} (mode cached) needs {total} pitch/tempo variants, "
        f"{len(missing)} not prepared, e.g. track {tid!r} stem {s!r} at semitones={fmt(p[0])} "
        f"tempo={fmt(p[1])} (never prepared, or its stem file changed since); run: "
        f"{_command(index, grid.spec())}")


# ---------------------------------------------------------------------- rendering (prepare)
def render_variant(audio: np.ndarray, sample_rate: int, semitones: float, tempo: float):
    """A whole stem's variant: float32 ``(C, round(T / tempo))`` through Rubber Band R3
    (exactly the ``hq`` mode's call) and its K-weighted sub-block energies float64."""
    from ..audio import loudness
    from .pitch import _rubberband

    y = np.ascontiguousarray(_rubberband(np.ascontiguousarray(audio, np.float32), sample_rate,
                                         tempo, semitones, True), dtype=np.float32)
    return y, loudness.block_energies(y, sample_rate)
