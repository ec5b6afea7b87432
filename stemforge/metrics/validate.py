"""Input checks shared by every metric: shapes, channel counts, lengths, silent sources.

Our convention is ``(nsrc, channels, frames)`` (museval uses ``(nsrc, frames, channels)``).
Estimates of another length than the references are padded with zeros at the end or trimmed
to the reference length, exactly as ``museval.evaluate(..., padding=True)`` does.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import StemforgeError
from . import scratch


class MetricsError(StemforgeError):
    """Inputs to a metric are inconsistent (shapes, channels, silent sources, missing targets)."""


def _names(n: int, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [f"source {i}" for i in range(n)]
    if len(names) != n:
        raise MetricsError(f"got {len(names)} names for {n} sources")
    return list(names)


def as_stack(arrays, what: str, names: Sequence[str] | None = None,
             buffer: str | None = None, keep_float32: bool = False) -> np.ndarray:
    """Stack a sequence of ``(channels, frames)`` arrays (or take a 3-D array) as float64.

    Returns ``(nsrc, channels, frames)``. Sources must share channels and frames. ``buffer``:
    stack a sequence into this thread's :mod:`~stemforge.metrics.scratch` buffer of that name
    (valid until the next call asking for it). ``keep_float32``: when every input is float32
    the stack stays float32 (half the memory; for the fast paths, whose kernels and transforms
    take every sample to float64 first, so the scores are those of a float64 stack, bit for
    bit). The readable references (:mod:`.sisdr`, :mod:`.sdx`) always get float64.
    """
    if isinstance(arrays, np.ndarray) and arrays.ndim == 3:
        if keep_float32 and arrays.dtype == np.float32:
            return arrays
        return np.asarray(arrays, dtype=np.float64)
    arrays = [np.asarray(a) for a in arrays]
    if not arrays:
        raise MetricsError(f"{what}: no sources given; expected (nsrc, channels, frames)")
    labels = _names(len(arrays), names)
    for a, lab in zip(arrays, labels):
        if a.ndim != 2:
            raise MetricsError(f"{what} {lab}: expected (channels, frames) audio, got shape {a.shape}")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        detail = ", ".join(f"{lab} {a.shape}" for a, lab in zip(arrays, labels))
        raise MetricsError(f"{what}: sources differ in (channels, frames): {detail}")
    dtype = np.float32 if keep_float32 and all(a.dtype == np.float32 for a in arrays) \
        else np.float64
    if buffer is not None:
        out = scratch.empty(buffer, (len(arrays),) + arrays[0].shape, dtype)
        return np.stack(arrays, out=out)
    return np.stack(arrays).astype(dtype, copy=False)


def pad_or_trim(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """museval's ``pad_or_truncate`` in our layout: zero-pad or cut estimates to the reference length.

    ``references``/``estimates``: ``(nsrc, channels, frames)``; returns estimates with
    ``references.shape[-1]`` frames.
    """
    n = references.shape[-1]
    m = estimates.shape[-1]
    if m > n:
        return estimates[..., :n]
    if m < n:
        pad = np.zeros(estimates.shape[:-1] + (n - m,), dtype=estimates.dtype)
        return np.concatenate([estimates, pad], axis=-1)
    return estimates


SILENCE_BLOCK = 1 << 16  # samples summed at a time by silent_sources


def silent_sources(x: np.ndarray) -> np.ndarray:
    """museval's silence rule: the channel sum is zero at every sample. ``x``: (nsrc, C, N) -> (nsrc,) bool.
    Channel sums in float64 (as museval's float64 arrays), also for a float32 ``x``.

    Block by block, stopping at a source's first non-zero block (the same sums as over the
    whole track; music is rarely silent for a whole block, so this reads a small part of it)."""
    silent = np.ones(x.shape[0], bool)
    for i in range(x.shape[0]):
        for a in range(0, x.shape[-1], SILENCE_BLOCK):
            if np.any(x[i, :, a : a + SILENCE_BLOCK].sum(axis=0, dtype=np.float64) != 0):
                silent[i] = False
                break
    return silent


def check_pair(
    references: np.ndarray,
    estimates: np.ndarray,
    names: Sequence[str] | None = None,
    padding: bool = True,
    require_nonsilent: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and align a reference/estimate stack pair; returns the stacks (views or
    copies; both float64 unless both are float32).

    Raises :class:`MetricsError` on: different source counts, wrong channel count, different
    lengths with ``padding=False``, non-finite samples, or a source silent over the whole track
    (museval raises there too: the decomposition is undefined).
    """
    labels = _names(references.shape[0], names)
    if references.ndim != 3 or estimates.ndim != 3:  # checked before names are matched
        raise MetricsError(
            f"expected (nsrc, channels, frames) arrays, got references {references.shape}, "
            f"estimates {estimates.shape}"
        )
    if references.shape[0] != estimates.shape[0]:
        raise MetricsError(
            f"{references.shape[0]} reference sources but {estimates.shape[0]} estimates"
        )
    if references.shape[1] != estimates.shape[1]:
        raise MetricsError(
            f"estimates have {estimates.shape[1]} channels, references have "
            f"{references.shape[1]}; expected the same channel count (shape is "
            "(nsrc, channels, frames))"
        )
    if references.shape[-1] == 0:
        raise MetricsError("references hold no samples")
    if estimates.shape[-1] != references.shape[-1]:
        if not padding:
            raise MetricsError(
                f"estimates have {estimates.shape[-1]} frames, references {references.shape[-1]} "
                "(pass padding=True to zero-pad / trim estimates as museval does)"
            )
        estimates = pad_or_trim(references, estimates)
    for arr, what in ((references, "reference"), (estimates, "estimate")):
        if not np.isfinite(arr).all():
            bad = [labels[i] for i in range(arr.shape[0]) if not np.isfinite(arr[i]).all()]
            raise MetricsError(f"{what} {', '.join(bad)}: NaN/inf samples; expected finite audio")
    for arr, what in ((references, "reference"), (estimates, "estimate")):
        if not require_nonsilent:
            break
        silent = silent_sources(arr)
        if silent.any():
            bad = ", ".join(labels[i] for i in np.flatnonzero(silent))
            raise MetricsError(
                f"{what} {bad} is silent over the whole track (all zeros); BSS Eval needs every "
                f"{what} to be non-silent (museval raises here too)"
            )
    if references.dtype != estimates.dtype:  # a float32 stack with a float64 one
        references = references.astype(np.float64, copy=False)
        estimates = estimates.astype(np.float64, copy=False)
    return references, estimates
