"""Compiled loops of the doctor (numba, through :mod:`stemforge._jit`), each tested against the
NumPy reference named in its docstring. Imported lazily by the functions that run them.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit


@njit
def _tap(x, t, c, T, scale):  # pragma: no cover - compiled
    """Frame ``t`` of channel ``c`` as float32 at full scale, 0 outside ``0..T-1``."""
    if t < 0 or t >= T:
        return np.float32(0.0)
    return np.float32(x[t, c]) * scale


@njit
def _halfband_edges(x, scale, dec, c, i0, i1, T):  # pragma: no cover - compiled
    k = np.float32(1.0 / 32.0)
    for i in range(i0, i1):
        t = 2 * i
        dec[c, i] = (np.float32(16.0) * _tap(x, t, c, T, scale)
                     + np.float32(9.0) * (_tap(x, t - 1, c, T, scale) + _tap(x, t + 1, c, T, scale))
                     - (_tap(x, t - 3, c, T, scale) + _tap(x, t + 3, c, T, scale))) * k


@njit
def _scan_stereo_q2(x, scale, block, squares, high, low, dec):  # pragma: no cover - compiled
    """:func:`scan_frames` for ``C == 2, q == 2``: both channels in one loop, in registers."""
    T = x.shape[0]
    B = squares.shape[1]
    nd = dec.shape[1]
    inner = min(nd, (T - 4) // 2 + 1)   # outputs whose 7 taps are all inside
    k = np.float32(1.0 / 32.0) * scale
    for b in range(B):
        t0 = b * block
        t1 = min(T, t0 + block)
        s0 = np.float32(0.0)
        s1 = np.float32(0.0)
        s2 = np.float32(0.0)
        s3 = np.float32(0.0)
        hl = x[t0, 0]
        ll = x[t0, 0]
        hr = x[t0, 1]
        lr = x[t0, 1]
        t = t0
        while t + 2 <= t1:
            a0 = x[t, 0]
            a1 = x[t, 1]
            b0 = x[t + 1, 0]
            b1 = x[t + 1, 1]
            fa0 = np.float32(a0) * scale
            fa1 = np.float32(a1) * scale
            fb0 = np.float32(b0) * scale
            fb1 = np.float32(b1) * scale
            s0 += fa0 * fa0
            s1 += fb0 * fb0
            s2 += fa1 * fa1
            s3 += fb1 * fb1
            m = a0 if a0 > b0 else b0
            n = b0 if a0 > b0 else a0
            if m > hl:
                hl = m
            if n < ll:
                ll = n
            m = a1 if a1 > b1 else b1
            n = b1 if a1 > b1 else a1
            if m > hr:
                hr = m
            if n < lr:
                lr = n
            t += 2
        if t < t1:
            a0 = x[t, 0]
            a1 = x[t, 1]
            fa0 = np.float32(a0) * scale
            fa1 = np.float32(a1) * scale
            s0 += fa0 * fa0
            s2 += fa1 * fa1
            hl = max(hl, a0)
            ll = min(ll, a0)
            hr = max(hr, a1)
            lr = min(lr, a1)
        squares[0, b] = np.float64(s0) + np.float64(s1)
        squares[1, b] = np.float64(s2) + np.float64(s3)
        high[0, b] = np.float64(hl) * scale
        low[0, b] = np.float64(ll) * scale
        high[1, b] = np.float64(hr) * scale
        low[1, b] = np.float64(lr) * scale
        # the block is in the L1 cache: filter its decimated outputs now
        for i in range(max(2, (t0 + 1) // 2), min(inner, (t1 + 1) // 2)):
            t = 2 * i
            for c in range(2):
                dec[c, i] = (np.float32(16.0) * np.float32(x[t, c])
                             + np.float32(9.0) * (np.float32(x[t - 1, c]) + np.float32(x[t + 1, c]))
                             - (np.float32(x[t - 3, c]) + np.float32(x[t + 3, c]))) * k
    for c in range(2):
        _halfband_edges(x, scale, dec, c, 0, min(2, nd), T)
        _halfband_edges(x, scale, dec, c, max(2, inner), nd, T)


@njit
def _scan_generic(x, scale, block, q, squares, high, low, dec):  # pragma: no cover - compiled
    """:func:`scan_frames` for any ``C`` and ``q``: block by block, channel by channel."""
    T, C = x.shape
    B = squares.shape[1]
    nd = dec.shape[1]
    inner = min(nd, (T - 4) // 2 + 1)
    k = np.float32(1.0 / 32.0) * scale
    for b in range(B):
        t0 = b * block
        t1 = min(T, t0 + block)
        for c in range(C):
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            hi = x[t0, c]
            lo = x[t0, c]
            t = t0
            while t + 2 <= t1:
                a = x[t, c]
                e = x[t + 1, c]
                fa = np.float32(a) * scale
                fe = np.float32(e) * scale
                s0 += fa * fa
                s1 += fe * fe
                m = a if a > e else e
                n = e if a > e else a
                if m > hi:
                    hi = m
                if n < lo:
                    lo = n
                t += 2
            if t < t1:
                a = x[t, c]
                fa = np.float32(a) * scale
                s0 += fa * fa
                hi = max(hi, a)
                lo = min(lo, a)
            squares[c, b] = np.float64(s0) + np.float64(s1)
            high[c, b] = np.float64(hi) * scale
            low[c, b] = np.float64(lo) * scale
            if q == 2:
                for i in range(max(2, (t0 + 1) // 2), min(inner, (t1 + 1) // 2)):
                    t = 2 * i
                    dec[c, i] = (np.float32(16.0) * np.float32(x[t, c])
                                 + np.float32(9.0) * (np.float32(x[t - 1, c])
                                                      + np.float32(x[t + 1, c]))
                                 - (np.float32(x[t - 3, c]) + np.float32(x[t + 3, c]))) * k
            else:
                for i in range((t0 + q - 1) // q, min(nd, (t1 + q - 1) // q)):
                    acc = np.float32(0.0)
                    for r in range(q):
                        acc += np.float32(x[i * q + r, c])
                    dec[c, i] = acc * scale / np.float32(q)
    if q == 2:
        for c in range(C):
            _halfband_edges(x, scale, dec, c, 0, min(2, nd), T)
            _halfband_edges(x, scale, dec, c, max(2, inner), nd, T)


@njit
def scan_frames(x, scale, block, q, squares, high, low, dec):  # pragma: no cover - compiled
    """See :func:`stemforge.doctor.scan.scan` (``x`` ``(T, C)``; outputs written; reference
    :func:`stemforge.doctor.scan.scan_reference`). Squares accumulate in float32 in two chains
    (even/odd frames); extremes are compared in the file's own sample type, exactly."""
    if x.shape[1] == 2 and q == 2:
        _scan_stereo_q2(x, scale, block, squares, high, low, dec)
    else:
        _scan_generic(x, scale, block, q, squares, high, low, dec)


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
