"""Rendering: MixSpec (+ index) -> mixture and targets. Deterministic: same spec, same bytes.

For each non-dropped source: read → resample/channels → augmentation steps → ``* gain``
(float32), accumulated into its target in recipe order. The mix is the float32 sum of the
targets. Clipping (``spec.clipping``): ``fix_clipping`` scales mix and targets by
``1 / (peak + 1e-10)`` when the peak exceeds 1, ``peak_normalize`` always does, ``none`` never
(Scaper's semantics). The scale is computed on the first render and recorded in the spec;
re-renders apply the recorded scale. Finally ``mix`` is recomputed as the sum of the scaled
targets, so ``mix == sum(targets)`` holds exactly for the returned arrays.

The arithmetic runs in one compiled pass per item (:mod:`._kernels`, numba): every source row
is read once, block by block, into its target, the mix and the peak; bytes are those of the
plain float32 NumPy formulation (same operations, same order).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sample import process_stem
from .spec import MixSpec

CLIP_EPS = 1e-10


@dataclass
class Rendered:
    """``mix`` float32 ``(C, T)``; ``targets`` name -> float32 ``(C, T)`` in spec order;
    ``sources`` stem -> post-gain, pre-scale float32 ``(C, T)`` (only with ``keep_sources``)."""

    mix: np.ndarray
    targets: dict[str, np.ndarray]
    sources: dict[str, np.ndarray] | None = None


def render(spec: MixSpec, index, processed: dict | None = None,
           keep_sources: bool = False,
           out: tuple[np.ndarray, np.ndarray] | None = None) -> Rendered:
    """Audio of ``spec``: mix ``(C, T)`` and targets ``(C, T)`` each, float32.

    ``out``: optional ``(mix (C, T), targets (S, C, T))`` float32 C-contiguous arrays to render
    into (e.g. one item's rows of a batch buffer): the returned arrays are views of them, with
    exactly the values a render without ``out`` gives. Raises ``ValueError`` naming the array
    when a shape, dtype or layout does not fit.
    """
    C, T = spec.channels, spec.frames
    S = len(spec.targets)
    if out is None:
        # One buffer for every target and the mix (views ``tbuf[j]``, ``mixbuf``): a single
        # allocation per item that the allocator reuses across items, instead of S + 1 separate
        # ones it returns to the OS and page-faults back in each time (the dominant cost here).
        buf = np.empty((S + 1, C, T), np.float32)
        tbuf, mixbuf = buf[:S], buf[S]
    else:
        mixbuf, tbuf = _check_out(out, S, C, T)
    slot = {t: j for j, t in enumerate(spec.targets)}
    kept = {} if keep_sources else None
    cache = getattr(index, "cache", None)
    members: list[list[tuple[np.ndarray, np.float32]]] = [[] for _ in spec.targets]
    for src in spec.sources:
        if src.dropped:
            if kept is not None:
                kept[src.stem] = np.zeros((C, T), np.float32)
            continue
        audio = None if processed is None else processed.get(src.stem)
        if audio is None and not src.steps and src.track_sample_rate in (0, spec.sample_rate):
            # fast path: rows of the prepared memmap, no copy before the gain
            t = index.track(src.track)
            s = t.stems[src.stem]
            mm = cache.get(s.key) if cache is not None else None
            if mm is not None and s.channels == C and mm.dtype == np.float32:
                audio = mm[:, src.start:src.start + T]
        if audio is None:
            audio = process_stem(index, src, spec.sample_rate, C, T)
        audio = np.asarray(audio)
        if audio.dtype != np.float32 or audio.strides[-1] != 4:
            audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.shape != (C, T):
            raise ValueError(f"render: source {src.stem!r} of track {src.track!r} gave audio of "
                             f"shape {audio.shape}, expected {(C, T)}")
        g = np.float32(src.gain)
        if kept is not None:
            kept[src.stem] = np.multiply(audio, g, dtype=np.float32)
        members[slot[src.target]].append((audio, g))
    # sources grouped by target (spec order within a target): the kernels' layout
    rows, gains = [], []
    for group in members:
        for audio, g in group:
            rows.extend(_readonly_row(audio[c]) for c in range(C))
            gains.append(g)
    counts = tuple(len(group) for group in members)
    k = np.float32(1.0 if spec.scale is None else spec.scale)
    peak = _mix(counts, tuple(rows), np.array(gains, np.float32), tbuf, mixbuf, k)
    if spec.scale is None:
        peak = float(peak)
        spec.peak = peak
        if spec.clipping == "peak_normalize" and peak > 0:
            spec.scale = 1.0 / (peak + CLIP_EPS)
        elif spec.clipping == "fix_clipping" and peak > 1.0:
            spec.scale = 1.0 / (peak + CLIP_EPS)
        else:
            spec.scale = 1.0
        if spec.scale != 1.0:
            _rescale(counts, tbuf, mixbuf, np.float32(spec.scale))
    targets = {t: tbuf[j] for t, j in slot.items()}
    mix = mixbuf
    return Rendered(mix, targets, kept)


def _mix(counts: tuple[int, ...], rows: tuple, gains: np.ndarray, tbuf: np.ndarray,
         mixbuf: np.ndarray, scale: np.float32) -> float:
    """Targets and mix into ``tbuf``/``mixbuf`` by the compiled kernels; returns the peak."""
    if not rows:  # every source dropped: silence
        tbuf.fill(0.0)
        mixbuf.fill(0.0)
        return 0.0
    from . import _kernels  # lazy: numba's import stays off the CLI's start-up path

    plan = _kernels.plan_kernels(counts)
    if plan is not None:
        return plan.mix(rows, gains, tbuf, mixbuf, scale)
    return _kernels.mix_generic(rows, gains, np.array(counts, np.int64), tbuf, mixbuf, scale)


def _rescale(counts: tuple[int, ...], tbuf: np.ndarray, mixbuf: np.ndarray,
             scale: np.float32) -> None:
    from . import _kernels

    plan = _kernels.plan_kernels(counts)
    (plan.rescale if plan is not None else _kernels.rescale_generic)(tbuf, mixbuf, scale)


def _readonly_row(row: np.ndarray) -> np.ndarray:
    """A read-only plain-ndarray view of a contiguous ``(T,)`` row (one numba type for memmap
    slices and computed arrays alike, so a kernel compiles once per shape)."""
    v = row.view(np.ndarray)
    v.flags.writeable = False
    return v


def _check_out(out, S: int, C: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        mix, targets = out
    except (TypeError, ValueError):
        raise ValueError("render(out=...): expected a pair (mix (C, T), targets (S, C, T))") from None
    for name, a, shape in (("mix", mix, (C, T)), ("targets", targets, (S, C, T))):
        if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.shape != shape \
                or not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"render(out=...): {name} must be a writable C-contiguous float32 "
                             f"array of shape {shape}, got "
                             f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
    return mix, targets
