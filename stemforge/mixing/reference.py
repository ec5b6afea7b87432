"""The mixing semantics in plain NumPy: the one readable reference of what ``render`` computes.

Given each kept source's pre-gain audio (float32 ``(C, T)``, see
:func:`stemforge.mixing.sources.process_stem`) and its gain, grouped by target in spec order:

1. a target is ``fl32(x0 * g0)``, then ``fl32(t + fl32(xk * gk))`` for each further member in
   spec order (float32 throughout, ``g`` rounded to float32 once); a target with no kept member
   is silence;
2. the mix is ``((t0 + t1) + t2) + ...`` over the targets in spec order;
3. the peak is the largest ``|mix|`` (NaN when the mix holds a NaN);
4. the clipping policy (:func:`clip_scale`) gives a scale; when it is not 1, every target becomes
   ``fl32(t * scale)`` and the mix is summed again (step 2) from the scaled targets, so
   ``mix == sum(targets)`` holds exactly for the returned arrays. A re-render applies the scale
   recorded in the spec instead of measuring it.

:mod:`stemforge.mixing.render` produces the same bytes through compiled kernels (one fused pass
per item, a clip scale found beforehand from peak envelopes, memmap views instead of copies);
``tests/test_mixing_reference.py`` checks every kernel against the functions here. To change
the mixing semantics, change them here first; those tests then say which kernel to follow.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .sources import process_stem

#: added to the peak before dividing, as Scaper does (never divides by zero)
CLIP_EPS = 1e-10


def clip_scale(clipping: str, peak: float) -> float:
    """The scale the clipping policy applies to a mix whose largest ``|x|`` is ``peak``:
    ``fix_clipping`` scales down when ``peak > 1``, ``peak_normalize`` always (a silent mix
    stays 1), ``none`` never. Scaper's semantics: ``1 / (peak + 1e-10)``."""
    if clipping == "peak_normalize" and peak > 0:
        return 1.0 / (peak + CLIP_EPS)
    if clipping == "fix_clipping" and peak > 1.0:
        return 1.0 / (peak + CLIP_EPS)
    return 1.0


def target_sum(members: Sequence[tuple[np.ndarray, float]], channels: int,
               frames: int) -> np.ndarray:
    """One target: float32 ``(C, T)`` sum of ``fl32(x * g)`` over ``members`` (audio, gain)
    in order; zeros when there is none."""
    if not members:
        return np.zeros((channels, frames), np.float32)
    t = None
    for audio, gain in members:
        contrib = np.multiply(audio, np.float32(gain), dtype=np.float32)
        t = contrib if t is None else np.add(t, contrib, dtype=np.float32)
    return t


def mix_of(targets: np.ndarray) -> np.ndarray:
    """The mix of float32 ``(S, C, T)`` targets: ``((t0 + t1) + t2) + ...``, float32 ``(C, T)``."""
    mix = targets[0].copy()
    for t in targets[1:]:
        mix += t
    return mix


def peak_of(mix: np.ndarray) -> float:
    """Largest ``|mix|``; NaN when the mix holds a NaN; 0 for an empty array."""
    if mix.size == 0:
        return 0.0
    return float(np.max(np.abs(mix)))  # np.max propagates NaN


def mix_reference(groups: Sequence[Sequence[tuple[np.ndarray, float]]], channels: int,
                  frames: int, clipping: str,
                  scale: float | None = None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Steps 1-4 for one item. ``groups``: per target (spec order) its members' ``(audio
    float32 (C, T), gain)`` in spec order. ``scale``: the recorded clip scale, or None to
    measure it. Returns ``(targets (S, C, T), mix (C, T), scale, peak)``; ``peak`` is the
    unscaled mix's (what the spec records), NaN-propagating."""
    targets = np.stack([target_sum(g, channels, frames) for g in groups])
    mix = mix_of(targets)
    peak = peak_of(mix)
    k = clip_scale(clipping, peak) if scale is None else float(scale)
    if k != 1.0:
        targets = np.multiply(targets, np.float32(k), dtype=np.float32)
        mix = mix_of(targets)
    return targets, mix, k, peak


def render_reference(spec, index) -> tuple[np.ndarray, dict[str, np.ndarray], float, float]:
    """A spec's audio by the reference: every kept source read and processed by
    :func:`~stemforge.mixing.sources.process_stem` (no memmap fast path, no peak bound),
    then :func:`mix_reference` with the spec's recorded scale (None: measured).
    Returns ``(mix (C, T), targets name -> (C, T), scale, peak)``."""
    C, T = spec.channels, spec.frames
    groups: dict[str, list] = {t: [] for t in spec.targets}
    for src in spec.sources:
        if not src.dropped:
            audio = np.asarray(process_stem(index, src, spec.sample_rate, C, T), np.float32)
            groups[src.target].append((audio, src.gain))
    targets, mix, scale, peak = mix_reference([groups[t] for t in spec.targets], C, T,
                                              spec.clipping, spec.scale)
    return mix, dict(zip(spec.targets, targets, strict=True)), scale, peak
