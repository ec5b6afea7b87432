"""Compiled batch of :func:`~stemforge.audio.loudness.excerpt_loudness` (the mixer's hot path).

:func:`gate_sums` does, for each row, what the reference
:func:`~stemforge.audio.loudness.excerpt_loudness_reference` does (monotone-cubic cumulative
energy at the gating-block edges, then two-stage gating) up to the final logarithm, and is
tested against it to float rounding. The gated sums use a fixed pairwise order
(:func:`_pairwise`, the association of NumPy's ``pairwise_sum`` on a contiguous array: 8-way
unrolled leaves of at most 128), so a value never depends on the processor's SIMD width.

Shapes: ``buf`` float64 ``(W,)``, the part of each row's energies the row reads, gathered
(row ``r``'s sub-blocks ``lo[r] .. lo[r] + base[r + 1] - base[r] - 1`` at ``buf[base[r]:
base[r + 1]]``, see :func:`windows`); ``base`` int64 ``(R + 1,)``; ``lo`` and ``n`` int64
``(R,)`` (first sub-block gathered, and the row's full length: indices are clamped to it as
before); ``positions`` int64 ``(R, M)`` absolute block-edge frames (sorted per row); ``corr``
float64 ``(R,)`` the zero-state correction added to each row's first block. Returns
``s2`` float64 ``(R,)`` (sum of the blocks kept by both gates), ``n2`` int64 ``(R,)`` (their
count) and ``ok`` bool ``(R,)`` (some block passed the absolute gate).

One gathered array rather than a tuple of rows: numba types a tuple by its length, so every
new batch size compiled (1-5 s) and cached another specialisation.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit


@njit
def _leaf(a, lo, n):
    """NumPy's pairwise-sum leaf (``n <= 128``): sequential below 8, else 8 accumulators."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    end = n - (n % 8)
    while i < end:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit
def _pairwise(a, lo, n):
    """NumPy's pairwise sum of ``a[lo:lo + n]`` (float64), same association: halves (the first
    a multiple of 8) summed separately down to leaves of <= 128. Iterative (an explicit stack:
    numba's on-disk cache cannot reload recursive functions)."""
    if n <= 128:
        return _leaf(a, lo, n)
    depth = 2
    m = n
    while m > 128:
        m = m // 2 + 8
        depth += 1
    slo = np.empty(2 * depth, np.int64)
    sn = np.empty(2 * depth, np.int64)
    sst = np.empty(2 * depth, np.int64)
    vals = np.empty(2 * depth)
    sp = 1
    slo[0] = lo
    sn[0] = n
    sst[0] = 0
    vsp = 0
    while sp > 0:
        top = sp - 1
        m = sn[top]
        if m <= 128:
            vals[vsp] = _leaf(a, slo[top], m)
            vsp += 1
            sp -= 1
            continue
        h = m // 2
        h -= h % 8
        if sst[top] == 0:
            sst[top] = 1
            slo[sp] = slo[top]
            sn[sp] = h
            sst[sp] = 0
            sp += 1
        elif sst[top] == 1:
            sst[top] = 2
            slo[sp] = slo[top] + h
            sn[sp] = m - h
            sst[sp] = 0
            sp += 1
        else:
            vals[vsp - 2] = vals[vsp - 2] + vals[vsp - 1]
            vsp -= 1
            sp -= 1
    return vals[0]


@njit
def pairwise_sum(a):
    """``np.add.reduce`` of a contiguous float64 ``(n,)`` array, bit for bit."""
    return 0.0 + _pairwise(a, 0, a.shape[0])


def window(first: int, last: int, b: int, n: int) -> tuple[int, int]:
    """:func:`windows` of one row, in plain ints."""
    k_first = min(first // b, n - 1)
    k_last = min(last // b, n - 1)
    return max(k_first - 1, 0), min(k_last + 1, n - 1) + 1


def windows(first: np.ndarray, last: np.ndarray, b: int, n: np.ndarray):
    """Sub-blocks ``[lo, hi)`` (int64 ``(R,)`` each) that :func:`gate_sums` reads of rows of
    ``n`` sub-blocks whose block edges run from frame ``first`` to frame ``last``: the edges'
    sub-blocks (clamped to the row) and one neighbour on each side (the cubic's
    harmonic-mean slopes)."""
    k_first = np.minimum(first // b, n - 1)
    k_last = np.minimum(last // b, n - 1)
    return np.maximum(k_first - 1, 0), np.minimum(k_last + 1, n - 1) + 1


@njit
def gate_sums(buf, base, lo, n_rows, positions, b, floor, rel_factor, corr):
    R, M = positions.shape
    nb = M - 4
    s2 = np.zeros(R)
    n2 = np.zeros(R, np.int64)
    ok = np.zeros(R, np.bool_)
    c = np.empty(M)
    z = np.empty(nb)
    w = np.empty(nb)
    for r in range(R):
        # e[g] of the full row is buf[off + g] for every g the row reads
        off = base[r] - lo[r]
        n = n_rows[r]
        p = positions[r]
        k0 = p[0] // b
        # cumulative energy from sub-block k0 at every edge
        acc = 0.0          # sum of sub-blocks k0 .. kk - 1
        kk = k0            # next sub-block to add
        for m in range(M):
            k = min(p[m] // b, n - 1)
            while kk < k:
                acc = acc + buf[off + kk] if kk > k0 else buf[off + kk]
                kk += 1
            cum = acc if k > k0 else 0.0
            u = (p[m] - k * b) / b
            prv = buf[off + min(max(k - 1, 0), n - 1)]
            cur = buf[off + k]
            nxt = buf[off + min(k + 1, n - 1)]
            hp = 2.0 * prv * cur / (prv + cur + 1e-300)
            hn = 2.0 * nxt * cur / (nxt + cur + 1e-300)
            v = 1.0 - u
            uu = u * u
            part = cur * uu * (3.0 - 2.0 * u) + (hp * v - hn * u) * u * v
            c[m] = cum + part
        n1 = 0
        for j in range(nb):
            zj = c[j + 4] - c[j]
            if j == 0:  # the zero-state correction of the first block, floored at 0
                zj = zj + corr[r]
                if zj < 0.0:
                    zj = 0.0
            z[j] = zj
            if zj >= floor:
                w[j] = zj
                n1 += 1
            else:
                w[j] = 0.0
        if n1 == 0:
            continue
        ok[r] = True
        rel = rel_factor * pairwise_sum(w) / n1
        cnt = 0
        for j in range(nb):
            zj = z[j]
            if zj > rel and zj > floor:
                w[j] = zj
                cnt += 1
            else:
                w[j] = 0.0
        s2[r] = pairwise_sum(w)
        n2[r] = cnt
    return s2, n2, ok
