"""Whole-signal metrics: SI-SDR (Le Roux et al. 2019) and the MDX challenge SDR.

Shapes: ``references``/``estimates`` ``(nsrc, channels, frames)``; estimates of another length
are zero-padded / trimmed to the reference length, as for BSS Eval.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .validate import as_stack, check_pair

MDX_DELTA = 1e-7


def _pair(references, estimates, names, padding):
    refs = as_stack(references, "references", names)
    ests = as_stack(estimates, "estimates", names)
    return check_pair(refs, ests, names, padding=padding, require_nonsilent=False)


def si_sdr(references, estimates, names: Sequence[str] | None = None, padding: bool = True) -> np.ndarray:
    """Scale-invariant SDR per source in dB, over all samples and channels: ``(nsrc,)``.

    ``alpha = <ŝ, s> / |s|²``, ``SI-SDR = 10 log10(|alpha s|² / |alpha s - ŝ|²)``.
    A silent reference gives NaN (alpha undefined); a perfect estimate gives +inf.
    """
    refs, ests = _pair(references, estimates, names, padding)
    s = refs.reshape(refs.shape[0], -1)
    e = ests.reshape(ests.shape[0], -1)
    ss = np.einsum("ij,ij->i", s, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.einsum("ij,ij->i", e, s) / ss
        target = alpha[:, None] * s
        num = np.einsum("ij,ij->i", target, target)
        den = np.einsum("ij,ij->i", target - e, target - e)
    return si_sdr_db(ss, num, den)


def si_sdr_db(ss: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """SI-SDR from its sums: ``ss = |s|²``, ``num = |alpha s|²``, ``den = |alpha s - ŝ|²``
    (any shape): ``10 log10(num / den)``, +inf for a perfect estimate, NaN for a silent
    reference."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den == 0, np.inf, 10 * np.log10(num / den))
    return np.where(ss == 0, np.nan, out)


def mdx_sdr(references, estimates, names: Sequence[str] | None = None, padding: bool = True) -> np.ndarray:
    """MDX challenge ("new") SDR per source: ``10 log10((Σs² + 1e-7) / (Σ(s-ŝ)² + 1e-7))`` -> (nsrc,)."""
    refs, ests = _pair(references, estimates, names, padding)
    return mdx_db(np.sum(refs**2, axis=(1, 2)), np.sum((refs - ests) ** 2, axis=(1, 2)))


def mdx_db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """The challenges' SDR from its sums ``num = Σs²``, ``den = Σ(s - ŝ)²`` (any shape):
    ``10 log10((num + 1e-7) / (den + 1e-7))``."""
    return 10 * np.log10((num + MDX_DELTA) / (den + MDX_DELTA))
