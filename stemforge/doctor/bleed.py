"""Bleed: how much of stem ``j`` leaks into stem ``k``, from their short-time spectra.

Model: ``X_k(t, f) = H(f) X_j(t, f) + N_k(t, f)``, where ``N_k`` (stem ``k``'s own content) is
independent of ``X_j``; ``H`` may hold any delay and filtering (a microphone picking up another
instrument). Per frequency bin, ``H`` is estimated twice by least squares, on two halves of the
track made of alternating ``HALF_SECONDS`` blocks; ``Re(H_A conj(H_B))`` is then an unbiased
estimate of ``|H(f)|²``: a real ``H`` is the same in both halves, while the noise of two
independent estimates does not correlate. Chance correlations of two instruments playing the
same pitch average out over the many blocks (their relative phase changes from note to note);
with even/odd frames instead of blocks they did not (clean synthetic songs showed up to -36 dB
of "bleed" between bass and pad), with 2 s blocks a 6 s excerpt of real music had too few.
``H`` is solved twice: for the pair alone, and jointly on all the other stems (stems correlate
with each other, and leakage of one must not be credited to another); the smaller estimate is
kept, since the joint fit in turn amplifies noise where two sources are nearly collinear. The bins are combined with inverse-variance weights, ``w_f ∝ (P_j(f) / P_k(f))²``: bins where
``j`` is strong and ``k`` weak say the most. The result, ``gain`` (a power ratio), is the bleed
level relative to the source stem ``j``: a copy of ``j`` at -20 dB gives -20 dB. Its standard
error comes with it; bleed is flagged when ``gain >= bleed_db`` and ``gain >= bleed_z`` standard
errors. Time spans are the 1 s windows where the leaked part is within 20 dB of everything else
in stem ``k`` (the bleed is audible there, e.g. in the rests of a vocal).

What it cannot see: bleed between two stems that both leak into each other equally (the
estimate attributes it to one direction), bleed of a source that is never louder than the
receiving stem in any band (large standard error, so not flagged), and leakage of a sound that
is in no stem.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LO_HZ, HI_HZ = 60.0, 9000.0
SPAN_DB = -20.0
HALF_SECONDS = 0.5        # the halves alternate blocks of this length (measured: see docs/doctor.md)
WEIGHT_CAP = 100.0        # bins where the source leads by 10 dB or more weigh the same


@dataclass
class Bleed:
    """Leakage of stem ``source`` into stem ``into``: ``gain_db`` (relative to the source),
    its standard error as a power ratio, and spans (seconds) where it is audible."""

    into: int
    source: int
    gain_db: float
    gain: float
    stderr: float
    spans: list[list[float]]
    bands: int = 0


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cw, 0.5 * cw[-1])])


def bins_needed(bin_hz: float) -> int:
    """Bins (from 0) the estimate reads at a bin spacing of ``bin_hz``."""
    return int(HI_HZ / bin_hz) + 1


@dataclass
class CrossSums:
    """Sums over frames of stems' spectra on the bleed band (``n`` bins): ``ce/co (K, K, n)``
    complex128 (``k < j`` filled) ``X_k conj(X_j)`` over half A/B of the frames (frames ``t``
    with ``t // half`` even/odd); ``pe/po (K, n)`` float64 ``|X_k|²`` over half A/B;
    ``win (K, n_windows)`` ``|X_k|²`` over all bins of each window of ``W`` frames;
    ``n_even``/``n_odd`` frames in half A/B."""

    ce: np.ndarray
    co: np.ndarray
    pe: np.ndarray
    po: np.ndarray
    win: np.ndarray
    n_even: int
    n_odd: int


def cross_sums_reference(X: np.ndarray, W: int, half: int) -> CrossSums:
    """NumPy definition of :func:`cross_sums` (``X`` complex64 ``(K, F, n)``)."""
    K, F, n = X.shape
    x = X.astype(np.complex128)
    in_b = (np.arange(F) // half) % 2 == 1
    ev, od = x[:, ~in_b], x[:, in_b]
    ce = np.zeros((K, K, n), np.complex128)
    co = np.zeros((K, K, n), np.complex128)
    for k in range(K):
        for j in range(k + 1, K):
            ce[k, j] = (ev[k] * np.conj(ev[j])).sum(axis=0)
            co[k, j] = (od[k] * np.conj(od[j])).sum(axis=0)
    p = x.real ** 2 + x.imag ** 2
    n_win = -(-F // W)
    win = np.stack([np.add.reduceat(pk.sum(axis=1), np.arange(0, F, W)) for pk in p]) \
        if F else np.zeros((K, 0))
    return CrossSums(ce, co, p[:, ~in_b].sum(axis=1), p[:, in_b].sum(axis=1),
                     win.reshape(K, n_win), ev.shape[1], od.shape[1])


def cross_sums(X: np.ndarray, W: int, half: int) -> CrossSums:
    """Cross-spectral sums of ``X`` complex64 ``(K, F, n)`` (compiled; the same values as
    :func:`cross_sums_reference` up to summation order)."""
    from ._kernels import cross_sums as kernel

    K, F, n = X.shape
    n_win = -(-F // W)
    n_b = int(((np.arange(F) // half) % 2 == 1).sum())
    out = CrossSums(np.zeros((K, K, n), np.complex128), np.zeros((K, K, n), np.complex128),
                    np.zeros((K, n)), np.zeros((K, n)), np.zeros((K, n_win)), F - n_b, n_b)
    if F:
        kernel(X, W, half, out.ce, out.co, out.pe, out.po, out.win)
    return out


def band_slice(nbins: int, bin_hz: float) -> slice:
    """The bins of the bleed band (``LO_HZ``..``HI_HZ``) in a spectrum of ``nbins`` bins."""
    lo = int(np.ceil(LO_HZ / bin_hz))
    return slice(lo, min(nbins, int(HI_HZ / bin_hz) + 1))


def _joint_h(C: np.ndarray, pdiag: np.ndarray, into: int, srcs: list[int]) -> np.ndarray:
    """Per bin, the least-squares ``H`` (``(n, len(srcs))`` complex) of stem ``into`` on the
    stems ``srcs`` jointly, from one half's sums: ``C[a, b] = Σ X_a conj(X_b)`` (``a < b``
    filled) and ``pdiag[a] = Σ |X_a|²``."""
    n = pdiag.shape[1]
    if len(srcs) == 1:   # one source: a division
        return (np.conj(C[srcs[0], into]) if srcs[0] < into else C[into, srcs[0]])[:, None] \
            / (pdiag[srcs[0]] + 1e-9 * np.maximum(pdiag[srcs[0]], 1e-30))[:, None]

    def c(a, b):  # Σ_t X_a conj(X_b) for any a, b
        if a == b:
            return pdiag[a].astype(np.complex128)
        return C[a, b] if a < b else np.conj(C[b, a])

    m = len(srcs)
    M = np.empty((n, m, m), np.complex128)
    rhs = np.empty((n, m), np.complex128)
    for i, si in enumerate(srcs):   # normal equations: Σ_j H_j Σ X_j conj(X_i) = Σ X_k conj(X_i)
        rhs[:, i] = c(into, si)
        for j, sj in enumerate(srcs):
            M[:, i, j] = c(sj, si)
    load = 1e-9 * np.maximum(np.einsum("nii->n", M).real, 1e-30)  # silent bins stay solvable
    M[:, np.arange(m), np.arange(m)] += load[:, None]
    return np.linalg.solve(M, rhs[..., None])[..., 0]


def estimate(X: np.ndarray, bin_hz: float, first_bin: int, fps: float,
             skip: set | None = None) -> list[Bleed]:
    """Bleed of every ordered pair of stems from their spectra on the bleed band: ``X``
    complex64 ``(K, F, n)`` whose bin 0 is bin ``first_bin`` of the full spectrum (see
    :func:`band_slice`); ``skip``: unordered pairs ``(k, j)`` not to estimate (copies).

    ``H`` of a receiving stem is solved jointly on all the other stems (per bin and half), so
    leakage of one stem is not also credited to the stems it happens to correlate with."""
    K, F, n = X.shape
    half = max(1, int(round(HALF_SECONDS * fps)))
    if K < 2 or F <= half or n == 0:
        return []
    W = max(1, int(round(fps)))
    s = cross_sums(X, W, half)
    f = (first_bin + np.arange(n)) * bin_hz
    edges = np.flatnonzero(np.r_[True, np.diff(np.floor(3 * np.log2(f / LO_HZ))) > 0])
    P = s.pe + s.po
    tiny = 1e-20
    skip = {tuple(sorted(p)) for p in (skip or ())}
    out = []
    for into in range(K):
        srcs = [j for j in range(K) if j != into and tuple(sorted((into, j))) not in skip]
        if not srcs:
            continue
        h_a = _joint_h(s.ce, s.pe, into, srcs)
        h_b = _joint_h(s.co, s.po, into, srcs)
        for col, src in enumerate(srcs):
            ok = (s.pe[src] > tiny) & (s.po[src] > tiny) & (P[into] > tiny) & (P[src] >= P[into])
            if not ok.any():
                continue
            ratio = np.where(ok, P[src] / np.maximum(P[into], tiny), 0.0)
            w = 2.0 * s.n_even * s.n_odd * np.minimum(ratio ** 2, WEIGHT_CAP)
            sw = w.sum()
            if sw <= 0:
                continue
            bw = np.add.reduceat(w, edges)
            used = bw > 0
            # the pair on its own, and within the joint fit: each fails differently (a pair
            # credits leakage of a correlated stem; a joint fit amplifies noise where two
            # sources are nearly collinear), so the smaller of the two is kept
            pair_a = _joint_h(s.ce, s.pe, into, [src])[:, 0]
            pair_b = _joint_h(s.co, s.po, into, [src])[:, 0]
            gains = []
            for ha, hb in ((pair_a, pair_b), (h_a[:, col], h_b[:, col])):
                v = np.where(ok, (ha * np.conj(hb)).real, 0.0)
                bv = np.add.reduceat(w * v, edges) / np.maximum(bw, tiny)
                gains.append(_weighted_median(bv[used], bw[used]))
            g = min(gains)
            se = float(1.0 / np.sqrt(sw))
            spans = []
            if g > 0:
                leak = g * s.win[src]
                rest = np.maximum(s.win[into] - leak, tiny)
                audible = (leak >= rest * 10 ** (SPAN_DB / 10)) & (s.win[into] > tiny)
                spans = [[w0 * W / fps, min(F, (w0 + 1) * W) / fps]
                         for w0 in np.flatnonzero(audible)]
            gain_db = float(10 * np.log10(g)) if g > 0 else -200.0
            out.append(Bleed(into, src, gain_db, g, se, spans, int(used.sum())))
    return out
