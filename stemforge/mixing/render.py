"""Rendering: MixSpec (+ index) -> mixture and targets. Deterministic: same spec, same bytes.

For each non-dropped source: read → resample/channels → augmentation steps → ``* gain``
(float32), accumulated into its target in recipe order. The mix is the float32 sum of the
targets. Clipping (``spec.clipping``): ``fix_clipping`` scales mix and targets by
``1 / (peak + 1e-10)`` when the peak exceeds 1, ``peak_normalize`` always does, ``none`` never
(Scaper's semantics). The scale is computed on the first render and recorded in the spec;
re-renders apply the recorded scale. Finally ``mix`` is recomputed as the sum of the scaled
targets, so ``mix == sum(targets)`` holds exactly for the returned arrays.
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
    targets: dict[str, np.ndarray | None] = {t: None for t in spec.targets}
    kept = {} if keep_sources else None
    cache = getattr(index, "cache", None)
    scratch = None
    for src in spec.sources:
        if src.dropped:
            if kept is not None:
                kept[src.stem] = np.zeros((C, T), np.float32)
            continue
        g = np.float32(src.gain)
        audio = None if processed is None else processed.get(src.stem)
        if audio is None and not src.steps and src.track_sample_rate in (0, spec.sample_rate):
            # fast path: slice the prepared memmap, no copy before the gain
            t = index.track(src.track)
            s = t.stems[src.stem]
            mm = cache.get(s.key) if cache is not None else None
            if mm is not None and s.channels == C:
                audio = mm[:, src.start:src.start + T]
        if audio is None:
            audio = process_stem(index, src, spec.sample_rate, C, T)
        out = targets[src.target]
        if kept is not None:
            contrib = np.multiply(audio, g, dtype=np.float32)
            kept[src.stem] = contrib
            if out is None:
                targets[src.target] = out = tbuf[slot[src.target]]
                np.copyto(out, contrib)
            else:
                out += contrib
        elif out is None:
            targets[src.target] = np.multiply(
                audio, g, out=tbuf[slot[src.target]], dtype=np.float32)
        else:
            if scratch is None:
                scratch = np.empty((C, T), np.float32)
            np.multiply(audio, g, out=scratch)
            out += scratch
    for name, t in targets.items():
        if t is None:  # every member dropped
            targets[name] = tbuf[slot[name]]
            targets[name].fill(0.0)
    mix = _sum(targets, out=mixbuf)
    if spec.scale is None:
        peak = float(max(mix.max(), -mix.min())) if mix.size else 0.0
        spec.peak = peak
        if spec.clipping == "peak_normalize" and peak > 0:
            spec.scale = 1.0 / (peak + CLIP_EPS)
        elif spec.clipping == "fix_clipping" and peak > 1.0:
            spec.scale = 1.0 / (peak + CLIP_EPS)
        else:
            spec.scale = 1.0
    if spec.scale != 1.0:
        k = np.float32(spec.scale)
        for t in targets.values():
            t *= k
        _sum(targets, out=mix)
    return Rendered(mix, targets, kept)


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


def _sum(targets: dict[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Float32 sum of the targets in order (into ``out`` when given)."""
    vals = list(targets.values())
    if len(vals) == 1:
        if out is None:
            return vals[0].copy()
        np.copyto(out, vals[0])
        return out
    # ((t0 + t1) + t2) + ...: the first add writes ``out`` directly (no copy pass; same bytes)
    out = np.add(vals[0], vals[1], out=out)
    for v in vals[2:]:
        out += v
    return out
