"""Compiled loops of the doctor (numba, through :mod:`stemforge._jit`), each tested against the
NumPy reference named in its docstring. Imported lazily by the functions that run them.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit


@njit
def block_stats(x, block, squares, high, low):  # pragma: no cover - compiled
    """Per block of ``block`` frames and channel of float32 ``x (C, T)``: sum of squares
    (float32 within the block, two chains: even and odd frames), largest and smallest sample
    (reference: :func:`stemforge.doctor.scan.scan_reference`)."""
    C, T = x.shape
    B = squares.shape[1]
    for c in range(C):
        xc = x[c]
        for b in range(B):
            t0 = b * block
            t1 = min(T, t0 + block)
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            hi = xc[t0]
            lo = xc[t0]
            t = t0
            while t + 2 <= t1:
                a = xc[t]
                e = xc[t + 1]
                s0 += a * a
                s1 += e * e
                m = a if a > e else e
                n = e if a > e else a
                if m > hi:
                    hi = m
                if n < lo:
                    lo = n
                t += 2
            if t < t1:
                a = xc[t]
                s0 += a * a
                hi = max(hi, a)
                lo = min(lo, a)
            squares[c, b] = np.float64(s0) + np.float64(s1)
            high[c, b] = hi
            low[c, b] = lo


@njit
def _tap(xc, t, T):  # pragma: no cover - compiled
    return xc[t] if 0 <= t < T else np.float32(0.0)


@njit
def halfband(x, dec):  # pragma: no cover - compiled
    """``dec[c, i]``: the 7-tap half-band filter ``[-1, 0, 9, 16, 9, 0, -1] / 32`` centred on
    frame ``2 i`` of float32 ``x (C, T)``, zeros outside (reference:
    :func:`stemforge.doctor.scan.scan_reference`)."""
    C, T = x.shape
    nd = dec.shape[1]
    inner = min(nd, max(2, (T - 4) // 2 + 1))   # i in [2, inner): every tap inside
    k = np.float32(1.0 / 32.0)
    for c in range(C):
        xc = x[c]
        dc = dec[c]
        for i in range(2, inner):
            t = 2 * i
            dc[i] = (np.float32(16.0) * xc[t] + np.float32(9.0) * (xc[t - 1] + xc[t + 1])
                     - (xc[t - 3] + xc[t + 3])) * k
        for i in list(range(min(2, nd))) + list(range(max(2, inner), nd)):
            t = 2 * i
            dc[i] = (np.float32(16.0) * _tap(xc, t, T)
                     + np.float32(9.0) * (_tap(xc, t - 1, T) + _tap(xc, t + 1, T))
                     - (_tap(xc, t - 3, T) + _tap(xc, t + 3, T))) * k


@njit
def power_bins(spec, out):  # pragma: no cover - compiled
    """``out[t, f] = |spec[t, f]|²`` for the first ``out.shape[1]`` bins (reference:
    :func:`stemforge.doctor.frames.power_reference`)."""
    F, B = out.shape
    for t in range(F):
        for f in range(B):
            v = spec[t, f]
            out[t, f] = v.real * v.real + v.imag * v.imag


@njit
def cross_sums(X, W, half, ce, co, pe, po, win):  # pragma: no cover - compiled
    """Cross-spectra and powers of stems ``X`` complex64 ``(K, F, n)`` over the two halves of the
    frames (half A: frames ``t`` with ``(t // half)`` even, half B: odd) (reference:
    :func:`stemforge.doctor.bleed.cross_sums_reference`): ``ce/co[k, j, f]`` (``k < j``) sum
    ``X_k conj(X_j)`` over half A/B, ``pe/po[k, f]`` sum ``|X_k|²``, ``win[k, w]`` sums
    ``|X_k|²`` over all bins of frames ``w*W .. w*W+W-1``."""
    K, F, n = X.shape
    for t in range(F):
        odd = (t // half) & 1
        w = t // W
        for k in range(K):
            acc = 0.0
            for f in range(n):
                x = X[k, t, f]
                p = np.float64(x.real) * x.real + np.float64(x.imag) * x.imag
                acc += p
                if odd:
                    po[k, f] += p
                else:
                    pe[k, f] += p
            win[k, w] += acc
            for j in range(k + 1, K):
                if odd:
                    for f in range(n):
                        a = X[k, t, f]
                        b = X[j, t, f]
                        co[k, j, f] += np.complex128(a) * np.conj(np.complex128(b))
                else:
                    for f in range(n):
                        a = X[k, t, f]
                        b = X[j, t, f]
                        ce[k, j, f] += np.complex128(a) * np.conj(np.complex128(b))
