"""Sources: how a spec's source becomes pre-gain audio, for sampling and rendering alike.

:func:`process_stem` reads one :class:`~stemforge.mixing.spec.SourceSpec` and brings it to the
output format (resample, channels, augmentation steps); leading ``mode: cached`` pitch/tempo
steps read their prepared variant instead (:func:`read_source`). The sampler uses it to measure
loudness on processed audio, the renderer (and :mod:`stemforge.mixing.reference`) to read
sources. :func:`check_variants` refuses a recipe whose cached steps need variants that were
never prepared; :func:`variant_energies` gives a cached source's stored energies.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from ..audio import dsp
from ..augment.chain import apply_steps, frame_plan, source_frames
from ..augment.grid import (IDENTITY, VariantError, VariantGrid, cached_run, entry_points, fmt,
                            is_cached, is_identity, required_points, variant_key, variant_start)
from ..errors import AudioError
from ..types import Frames, Hz

#: surplus track-rate frames read before resampling a source to the output rate
RESAMPLE_PAD: Frames = 16


class SourceRead(Protocol):
    """What reading a source needs (a :class:`~stemforge.mixing.spec.SourceSpec`, or the
    sampler's draft of one before its gain is known)."""

    track: str
    stem: str
    start: int
    source_frames: int
    track_sample_rate: int
    steps: Sequence[Mapping[str, Any]]
    # Scaper's event model (``spec.EventPlacement``: ``key``, ``placed``, ``frames_out``)
    offset: int
    event_frames: int | None
    fade_in: int
    fade_out: int
    role: str
    pad_frames: int   # zeros appended after the read (recipe pad: true, a short track)


def track_frames(track_rate: Hz, rate: Hz, frames: Frames) -> Frames:
    """Track-rate frames to read so that ``frames`` frames exist at the output ``rate``."""
    if track_rate == rate:
        return frames
    return int(math.ceil(frames * track_rate / rate)) + RESAMPLE_PAD


def process_stem(index, src: SourceRead, sample_rate: Hz, channels: int,
                 frames: Frames) -> np.ndarray:
    """Read one source and bring it to the output format, pre-gain: float32 ``(channels, frames)``.

    :func:`event_audio`, then for an event (``src.placed``: Scaper's event model) its fades and
    its place in the mixture, silence elsewhere (:func:`place_event`).
    """
    audio = event_audio(index, src, sample_rate, channels, frames)
    return place_event(audio, src, frames) if src.placed(frames) else audio


def event_audio(index, src, sample_rate: Hz, channels: int, frames: Frames) -> np.ndarray:
    """The source as its loudness is measured: float32 ``(channels, src.frames_out(frames))``,
    before fades and placement (``frames``: the mixture's length; a plain source spans it).

    read ``source_frames`` at the track's rate (+ ``pad_frames`` zeros) → resample (soxr) →
    channel conversion → augmentation steps (exactly the event's frames out). Leading
    ``mode: cached`` pitch/tempo steps read their pre-computed variant instead
    (:func:`read_source`). A background's excerpt is looped to the event's length (Scaper tiles
    short backgrounds).
    """
    n = src.frames_out(frames)
    if src.steps and is_cached(src.steps[0]):
        audio, rest = read_source(index, src, sample_rate, n)
        audio = dsp.to_channels(audio, channels)  # a read-only memmap view when nothing follows
        return apply_steps(audio, sample_rate, rest, n) if rest else audio
    audio = index.read(src.track, src.stem, src.start, src.source_frames)
    if src.pad_frames:  # a track shorter than the excerpt, zero-padded at its end (pad: true)
        audio = np.pad(audio, ((0, 0), (0, src.pad_frames)))
    need = source_frames(src.steps, n)
    if src.track_sample_rate and src.track_sample_rate != sample_rate:
        audio = dsp.resample(audio, src.track_sample_rate, sample_rate)[:, :need]
    audio = dsp.to_channels(audio, channels)
    if src.role == "background" and audio.shape[1] < n:
        audio = np.tile(audio, (1, -(-n // audio.shape[1])))[:, :n]
    if src.steps:
        audio = apply_steps(audio, sample_rate, src.steps, n)
    return audio


def place_event(audio: np.ndarray, src, frames: Frames) -> np.ndarray:
    """An event's ``(C, n)`` audio faded (Scaper's sine windows: ``sin(linspace(0, pi/2,
    fade_in))`` over its first frames, the reverse over its last) and put at ``src.offset`` of
    ``frames`` silent frames (cut at the mixture's end): float32 ``(C, frames)``."""
    audio = np.array(audio, dtype=np.float32)
    if src.fade_in > 0:
        k = min(src.fade_in, audio.shape[1])
        audio[:, :k] *= np.sin(np.linspace(0.0, np.pi / 2, src.fade_in))[:k].astype(np.float32)
    if src.fade_out > 0:
        k = min(src.fade_out, audio.shape[1])
        w = np.sin(np.linspace(np.pi / 2, 0.0, src.fade_out))[src.fade_out - k:]
        audio[:, audio.shape[1] - k:] *= w.astype(np.float32)
    out = np.zeros((audio.shape[0], frames), np.float32)
    end = min(frames, src.offset + audio.shape[1])
    if end > src.offset:
        out[:, src.offset:end] = audio[:, :end - src.offset]
    return out


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
    k, point = cached_run(src.steps)
    rest = list(src.steps[k:])
    m = frame_plan(rest, frames)[0]
    track = index.track(src.track)
    stem = track.stems[src.stem]
    sr_t = src.track_sample_rate or track.sample_rate
    n = track_frames(sr_t, sample_rate, m)
    if is_identity(point):
        audio = index.read(src.track, src.stem, src.start, n)
    else:
        key = variant_key(stem.key, *point)
        mm = index.variants.get(key)
        if mm is None:
            raise _missing(index, src.track, src.stem, point,
                           VariantGrid((point[0],), (point[1],)).spec())
        v0 = variant_start(src.start, point[1])
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
    return frames, e, variant_start(src.start, point[1])


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
