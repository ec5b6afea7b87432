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

With a mastering bus (recipe ``master:``, the spec's drawn ``master`` steps), between steps 2
and 3: :func:`master_gain` computes one time-varying gain ``g`` float32 ``(T,)`` from the mix
(limiter, compressor: gain computers on ``max_c |mix[c, n]|``), every target becomes
``fl32(t * g)`` (the same gain on every channel and target) and the mix is summed again (step
2), so ``mix == sum(targets)`` still holds; steps 3-4 then act on the mastered mix. A
non-linear bus (recipe ``master: {linear: false}``, :func:`master_bus`) also runs steps on
the mix alone (a codec, a saturation): the targets get the gain computers' gain, the mix is
the bus's output, and the clip scale multiplies both; the targets then sum to the un-mastered
mix (``mix_of(targets)``), which the sinks write beside them.

:mod:`stemforge.mixing.render` produces the same bytes through compiled kernels (one fused pass
per item, a clip scale found beforehand from peak envelopes, memmap views instead of copies);
``tests/test_mixing_reference.py`` checks every kernel against the functions here. To change
the mixing semantics, change them here first; those tests then say which kernel to follow.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..augment import get as get_step
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


def limiter_gain(level: np.ndarray, sr: int, threshold_db: float,
                 release_ms: float) -> np.ndarray:
    """A peak limiter's gain, float64 ``(T,)``, for the level ``max_c |mix[c, n]|``: the
    largest gain that keeps ``level * g`` at or under the ceiling ``10^(threshold_db / 20)``
    at every sample (instant attack, no look-ahead: ``g[n] <= ceiling / level[n]``),
    recovering towards 1 with a one-pole release (time constant ``release_ms``):
    ``g[n] = min(ceiling / level[n], g[n-1] + (1 - g[n-1]) * (1 - exp(-1 / (release * sr))))``,
    ``g[-1] = 1``. Written so that numba compiles this very function for render
    (``_kernels.limiter_gain``)."""
    ceiling = 10.0 ** (threshold_db / 20.0)
    rel = 1.0 - math.exp(-1.0 / (release_ms * 1e-3 * sr))
    g = np.empty(level.shape[0])
    prev = 1.0
    for n in range(level.shape[0]):
        x = float(level[n])
        cap = ceiling / x if x > ceiling else 1.0
        prev = min(cap, prev + (1.0 - prev) * rel)
        g[n] = prev
    return g


def compressor_gain(level: np.ndarray, sr: int, threshold_db: float, ratio: float,
                    attack_ms: float, release_ms: float, makeup_db: float) -> np.ndarray:
    """A feed-forward compressor's gain, float64 ``(T,)``: the static curve's gain reduction
    ``(1 - 1 / ratio) * max(0, L[n] - threshold_db)`` dB of the level ``L = 20 log10
    max_c |mix|`` (-200 dB for silence), smoothed by a one-pole attack (reduction growing)
    or release (shrinking) filter, ``s[-1] = 0``; gain ``10^((makeup_db - s[n]) / 20)``.
    Compiled as it is by numba for render (``_kernels.compressor_gain``)."""
    att = math.exp(-1.0 / (attack_ms * 1e-3 * sr))
    rel = math.exp(-1.0 / (release_ms * 1e-3 * sr))
    slope = 1.0 - 1.0 / ratio
    g = np.empty(level.shape[0])
    s = 0.0
    for n in range(level.shape[0]):
        x = float(level[n])
        L = 20.0 * math.log10(x) if x > 1e-10 else -200.0
        want = slope * (L - threshold_db) if L > threshold_db else 0.0
        a = att if want > s else rel
        s = a * s + (1.0 - a) * want
        g[n] = 10.0 ** ((makeup_db - s) / 20.0)
    return g


def master_gain(mix: np.ndarray, steps: Sequence[dict], sr: int,
                limiter=limiter_gain, compressor=compressor_gain) -> np.ndarray:
    """The mastering bus's gain: float32 ``(T,)`` from the float32 ``(C, T)`` mix and the
    drawn ``steps`` in order (each ``{"step": "limiter" | "compressor", params...}``); each
    step's gain is computed on the level of the mix as the steps before it left it (``level
    * g``, float64) and the gains multiply. Rounded to float32 once. ``limiter`` /
    ``compressor``: the gain computers (render passes their compiled twins, same values)."""
    level = _level(mix)
    g = np.ones(mix.shape[1])
    for step in steps:
        g = g * _step_gain(step, level * g, sr, limiter, compressor)
    return g.astype(np.float32)


def _level(mix: np.ndarray) -> np.ndarray:
    """``max_c |mix[c, n]|``, float64 ``(T,)``."""
    return np.max(np.abs(mix), axis=0).astype(np.float64) if mix.size else np.zeros(0)


def _step_gain(step: dict, level: np.ndarray, sr: int, limiter, compressor) -> np.ndarray:
    kind = step["step"]
    if kind == "limiter":
        return limiter(level, sr, step["threshold_db"], step["release_ms"])
    if kind == "compressor":
        return compressor(level, sr, step["threshold_db"], step["ratio"], step["attack_ms"],
                          step["release_ms"], step["makeup_db"])
    raise ValueError(f"unknown master step {kind!r}")


def master_bus(mix: np.ndarray, steps: Sequence[dict], sr: int,
               limiter=limiter_gain, compressor=compressor_gain) -> tuple[np.ndarray, np.ndarray]:
    """A non-linear bus (recipe ``master: {linear: false}``) on the float32 ``(C, T)`` mix:
    ``(g float32 (T,), out float32 (C, T))``. The bus's signal ``y`` starts as the mix; per
    drawn step in order, a gain computer (limiter, compressor) computes its gain ``gk`` on
    ``max_c |y|`` (float64) and ``y = fl32(y * fl32(gk))``; any other step is the augmentation
    step of that name applied to ``y`` alone (``stemforge.augment.get(name).apply``). ``g``
    is the product of the gain computers' gains (float64, rounded to float32 once): what the
    targets are multiplied by. ``out`` is the final ``y``: the mastered mix."""
    y = mix
    g = np.ones(mix.shape[1])
    for step in steps:
        if step["step"] in ("limiter", "compressor"):
            gk = _step_gain(step, _level(y), sr, limiter, compressor)
            g = g * gk
            y = np.multiply(y, gk.astype(np.float32)[None, :], dtype=np.float32)
        else:
            params = {k: v for k, v in step.items() if k != "step"}
            y = get_step(step["step"]).apply(y, sr, params)
    return g.astype(np.float32), np.array(y, dtype=np.float32, copy=True)


def apply_master(targets: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets ``fl32(t * g)`` (``g`` float32 ``(T,)`` on every channel) and their mix summed
    again (step 2): ``(targets (S, C, T), mix (C, T))``."""
    targets = np.multiply(targets, g[None, None, :], dtype=np.float32)
    return targets, mix_of(targets)


def mix_reference(groups: Sequence[Sequence[tuple[np.ndarray, float]]], channels: int,
                  frames: int, clipping: str,
                  scale: float | None = None, master: Sequence[dict] = (),
                  sample_rate: int = 0,
                  master_linear: bool = True) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Steps 1-4 for one item. ``groups``: per target (spec order) its members' ``(audio
    float32 (C, T), gain)`` in spec order. ``scale``: the recorded clip scale, or None to
    measure it; ``master``: the drawn mastering steps (at ``sample_rate``). Returns
    ``(targets (S, C, T), mix (C, T), scale, peak)``; ``peak`` is the unscaled (mastered)
    mix's (what the spec records), NaN-propagating.

    ``master_linear=False`` (a non-linear bus, :func:`master_bus`): the targets become
    ``fl32(t * g)``, the mix is the bus's output (not their sum), the clip scale (measured on
    that mix) multiplies targets and mix alike, ``fl32(x * k)``; the un-mastered sum of the
    returned targets is ``mix_of(targets)``."""
    targets = np.stack([target_sum(g, channels, frames) for g in groups])
    mix = mix_of(targets)
    if master and not master_linear:
        g, mix = master_bus(mix, master, sample_rate)
        targets = np.multiply(targets, g[None, None, :], dtype=np.float32)
    elif master:
        targets, mix = apply_master(targets, master_gain(mix, master, sample_rate))
    peak = peak_of(mix)
    k = clip_scale(clipping, peak) if scale is None else float(scale)
    if k != 1.0:
        targets = np.multiply(targets, np.float32(k), dtype=np.float32)
        if master and not master_linear:
            mix = np.multiply(mix, np.float32(k), dtype=np.float32)
        else:
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
                                              spec.clipping, spec.scale, spec.master,
                                              spec.sample_rate, spec.master_linear)
    return mix, dict(zip(spec.targets, targets, strict=True)), scale, peak
