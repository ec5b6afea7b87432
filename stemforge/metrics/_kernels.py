"""Compiled inner loops of BSS Eval v4 (:mod:`stemforge.metrics.bsseval`, ``toeplitz``).

NumPy runs these as many small passes over large temporaries (the cross-spectra as one einsum
per reference row, the projections as a batched matmul of 8 x 16 matrices per frequency, five
energy passes over the projected spectra, a Levinson recursion as ~20 tiny array operations per
step). Here each is one loop nest over data blocks that stay in cache, with no temporaries
beyond a block. Import this module lazily (it imports numba).

Complex spectra are passed as float64 views (``z.view(np.float64)``: real and imaginary parts
interleaved on the last axis, ``2 F`` values for ``F`` bins); per block of ``FBLOCK`` bins the
kernels split them into real and imaginary rows, so that the inner loops are plain real
arithmetic over contiguous memory, which LLVM vectorises. IEEE arithmetic (no ``fastmath``):
sums over frequencies use eight fixed lanes per block of bins (bin ``k`` to lane ``k % 8``,
the lanes added in order, then the blocks in order), so every result is deterministic and independent of how frames or bins are
split over threads; it differs from NumPy's pairwise sums by rounding only (~1e-16 relative).
"""
from __future__ import annotations

import numpy as np

from .._jit import njit

#: frequency bins per block: the cross-spectrum pass touches rows x chunks x FBLOCK x 16 bytes
#: per block (16 rows x 23 chunks x 64 x 16 B = 0.4 MB for a 22 s stereo 4-source track: L2)
FBLOCK = 64
LANES = 8


@njit
def cross_spectra(spec, m, c0, c1, step, f_lo, f_hi, acc_r, acc_d):
    """Accumulate cross-spectra over chunks ``c0 .. c1 - 1`` at bins ``f_lo .. f_hi - 1``.

    ``spec``: (rows, nc, 2F) float64, interleaved complex spectra of ``m`` reference rows then
    ``q = rows - m`` estimate rows. Adds ``sum_k conj(X_p[k]) X_r[k]`` for reference pairs
    ``p <= r`` (row-major upper-triangle order) into ``acc_r`` (m (m + 1) / 2, 2F) and
    ``sum_k conj(X_p[k]) Y_c[k]`` into ``acc_d`` (m, q, 2F). Chunks are summed in groups of
    ``step`` (``c0 .. c0 + step - 1``, ...) in a local buffer, each group's sum then added to the
    accumulator: per bin the same additions in the same order as one call per group, whatever
    the bin range, so splitting the bins over threads does not change a bit. Per block of
    ``FBLOCK`` bins the spectra are first split into real and imaginary parts (contiguous
    inner loops).
    """
    rows = spec.shape[0]
    nk = c1 - c0
    sr = np.empty((rows, nk, FBLOCK))  # the block's spectra, real and imaginary parts apart
    si = np.empty((rows, nk, FBLOCK))
    re = np.empty(FBLOCK)
    im = np.empty(FBLOCK)
    for f0 in range(f_lo, f_hi, FBLOCK):
        nb = min(f_hi, f0 + FBLOCK) - f0
        a0 = 2 * f0
        a1 = 2 * (f0 + nb)
        for r in range(rows):
            for k in range(nk):
                z = spec[r, c0 + k]
                for i in range(nb):
                    sr[r, k, i] = z[a0 + 2 * i]
                    si[r, k, i] = z[a0 + 2 * i + 1]
        pair = 0
        for p in range(m):
            for r in range(p, rows):
                if r < m:
                    out = acc_r[pair, a0:a1]
                    pair += 1
                else:
                    out = acc_d[p, r - m, a0:a1]
                for g0 in range(0, nk, step):
                    re[:nb] = 0.0
                    im[:nb] = 0.0
                    for k in range(g0, min(nk, g0 + step)):
                        ar = sr[p, k]
                        ai = si[p, k]
                        br = sr[r, k]
                        bi = si[r, k]
                        for i in range(nb):
                            re[i] += ar[i] * br[i] + ai[i] * bi[i]
                            im[i] += ar[i] * bi[i] - ai[i] * br[i]
                    for i in range(nb):
                        out[2 * i] += re[i]
                        out[2 * i + 1] += im[i]


@njit
def _lane_sum(v, nb, lanes):
    """``sum(v[:nb])`` in LANES fixed lanes (vectorisable without reassociation); ``lanes`` is
    scratch (LANES,)."""
    lanes[:] = 0.0
    top = nb - nb % LANES
    for k0 in range(0, top, LANES):
        for ln in range(LANES):
            lanes[ln] += v[k0 + ln]
    for k in range(top, nb):
        lanes[k - top] += v[k]
    s = 0.0
    for ln in range(LANES):
        s += lanes[ln]
    return s


@njit
def projection_energies(spec, t0, t1, hall, hown, w, nch, out):
    """Frame projections and their energies, by Parseval, for frames ``t0 .. t1 - 1``.

    ``spec``: (2m, nfr, 2F) float64 interleaved frame spectra (rows ``0..m-1`` references
    ``X``, ``m..2m-1`` estimates ``Y``; channel ``c`` belongs to source ``c // nch``);
    ``hall``: (m, m, 2F) filter spectra from reference channel ``i`` to output channel ``c``
    (projection on all references ``P_c = sum_i X_i hall[i, c]``); ``hown``: (nch, m, 2F)
    from channel ``i`` of source ``c // nch`` to output ``c`` (own-source projection ``O_c``);
    ``w``: (F,) Parseval weights. Adds to ``out`` (5, t1 - t0, nsrc) (row ``t - t0`` for frame
    ``t``), summed over each source's
    channels: ``|O - X|^2`` (ISR denominator), ``|O|^2`` (SIR numerator), ``|P - O|^2`` (SIR
    denominator), ``|P|^2`` (SAR numerator), ``|Y - P|^2`` (SAR denominator).
    """
    m = hall.shape[0]
    rows = spec.shape[0]
    F = w.shape[0]
    hr = np.empty((m, m, FBLOCK))  # per block of bins: real / imaginary parts apart
    hi = np.empty((m, m, FBLOCK))
    gr = np.empty((nch, m, FBLOCK))
    gi = np.empty((nch, m, FBLOCK))
    xr = np.empty((rows, FBLOCK))
    xi = np.empty((rows, FBLOCK))
    pr = np.empty((m, FBLOCK))
    pi = np.empty((m, FBLOCK))
    orr = np.empty((m, FBLOCK))
    oi = np.empty((m, FBLOCK))
    term = np.empty((5, FBLOCK))
    lanes = np.empty(LANES)
    for f0 in range(0, F, FBLOCK):
        nb = min(F, f0 + FBLOCK) - f0
        a0 = 2 * f0
        for i in range(m):  # filter blocks: split once, reused by every frame
            for c in range(m):
                _split(hall[i, c], a0, nb, hr[i, c], hi[i, c])
        for i in range(nch):
            for c in range(m):
                _split(hown[i, c], a0, nb, gr[i, c], gi[i, c])
        for t in range(t0, t1):
            for i in range(rows):
                _split(spec[i, t], a0, nb, xr[i], xi[i])
            for c in range(m):
                prc = pr[c]
                pic = pi[c]
                prc[:nb] = 0.0
                pic[:nb] = 0.0
                for i in range(m):  # P_c = sum_i X_i hall[i, c]
                    _cmac(xr[i], xi[i], hr[i, c], hi[i, c], prc, pic, nb)
                first = (c // nch) * nch
                orc = orr[c]
                oic = oi[c]
                orc[:nb] = 0.0
                oic[:nb] = 0.0
                for i in range(nch):  # O_c = sum over c's source channels
                    _cmac(xr[first + i], xi[first + i], gr[i, c], gi[i, c], orc, oic, nb)
                xrc = xr[c]
                xic = xi[c]
                yrc = xr[m + c]
                yic = xi[m + c]
                for k in range(nb):
                    wk = w[f0 + k]
                    dr = orc[k] - xrc[k]
                    di = oic[k] - xic[k]
                    term[0, k] = wk * (dr * dr + di * di)
                    term[1, k] = wk * (orc[k] * orc[k] + oic[k] * oic[k])
                    dr = prc[k] - orc[k]
                    di = pic[k] - oic[k]
                    term[2, k] = wk * (dr * dr + di * di)
                    term[3, k] = wk * (prc[k] * prc[k] + pic[k] * pic[k])
                    dr = yrc[k] - prc[k]
                    di = yic[k] - pic[k]
                    term[4, k] = wk * (dr * dr + di * di)
                src = c // nch
                for e in range(5):
                    out[e, t - t0, src] += _lane_sum(term[e], nb, lanes)


@njit(inline="always")
def _split(z, a0, nb, re, im):
    """Real and imaginary parts of interleaved ``z[a0 : a0 + 2 nb]`` into ``re``, ``im``."""
    for k in range(nb):
        re[k] = z[a0 + 2 * k]
        im[k] = z[a0 + 2 * k + 1]


@njit(inline="always")
def _cmac(ar, ai, br, bi, cr, ci, nb):
    """``c += a * b`` (complex, parts apart) over the first ``nb`` entries."""
    for k in range(nb):
        cr[k] += ar[k] * br[k] - ai[k] * bi[k]
        ci[k] += ar[k] * bi[k] + ai[k] * br[k]


@njit
def frame_energies(refs, ests, starts, stops, s_energy, err_energy, silent):
    """Time-domain frame energies and museval's silence rule in one pass.

    ``refs``, ``ests``: (nsrc, nch, N) float64 or float32 (each sample taken to float64
    before any arithmetic: float32 stacks give the bits of their float64 copies);
    ``starts``, ``stops``: (nwin,) int64 frame bounds. Writes ``s_energy[t, j] = sum s^2`` and ``err_energy[t, j] = sum (ŝ - s)^2`` over
    frame ``t``'s samples and source ``j``'s channels ((nwin, nsrc) float64), and
    ``silent[t]`` ((nwin,) bool): some reference or estimate has a channel sum of exactly zero
    at every sample of the frame.
    """
    nsrc, nch, _ = refs.shape
    lanes = np.empty(LANES)
    lane2 = np.empty(LANES)
    for t in range(starts.shape[0]):
        a = starts[t]
        b = stops[t]
        n = b - a
        top = n - n % LANES
        quiet = False
        for j in range(nsrc):
            lanes[:] = 0.0
            lane2[:] = 0.0
            for c in range(nch):
                r = refs[j, c, a:b]
                e = ests[j, c, a:b]
                for k0 in range(0, top, LANES):
                    for ln in range(LANES):
                        rv = np.float64(r[k0 + ln])
                        dv = np.float64(e[k0 + ln]) - rv
                        lanes[ln] += rv * rv
                        lane2[ln] += dv * dv
                for k in range(top, n):
                    rv = np.float64(r[k])
                    dv = np.float64(e[k]) - rv
                    lanes[k - top] += rv * rv
                    lane2[k - top] += dv * dv
            s0 = 0.0
            s1 = 0.0
            for ln in range(LANES):
                s0 += lanes[ln]
                s1 += lane2[ln]
            s_energy[t, j] = s0
            err_energy[t, j] = s1
            if _channel_sum_zero(refs, j, a, b) or _channel_sum_zero(ests, j, a, b):
                quiet = True
        silent[t] = quiet


@njit
def dot_sums(x, y, xx, xy):
    """Per source ``j``: ``xx[j] = sum x^2`` and ``xy[j] = sum x y`` over all channels and
    samples (SI-SDR's projection). ``x``, ``y``: (nsrc, nch, N) float64 or float32, each
    sample taken to float64; ``xx``, ``xy``: (nsrc,) float64. Channel by channel in eight
    fixed lanes, the same order for both sums (so ``y == x`` gives ``xy == xx`` exactly)."""
    nsrc, nch, n = x.shape
    top = n - n % LANES
    l1 = np.empty(LANES)
    l2 = np.empty(LANES)
    for j in range(nsrc):
        l1[:] = 0.0
        l2[:] = 0.0
        for c in range(nch):
            xr = x[j, c]
            yr = y[j, c]
            for k0 in range(0, top, LANES):
                for ln in range(LANES):
                    xv = np.float64(xr[k0 + ln])
                    l1[ln] += xv * xv
                    l2[ln] += xv * np.float64(yr[k0 + ln])
            for k in range(top, n):
                xv = np.float64(xr[k])
                l1[k - top] += xv * xv
                l2[k - top] += xv * np.float64(yr[k])
        s1 = 0.0
        s2 = 0.0
        for ln in range(LANES):
            s1 += l1[ln]
            s2 += l2[ln]
        xx[j] = s1
        xy[j] = s2


@njit
def scaled_error_sums(x, y, alpha, tt, ee):
    """Per source ``j``, with ``t = alpha[j] x[j]`` (SI-SDR's target): ``tt[j] = sum t^2`` and
    ``ee[j] = sum (y - t)^2`` over all channels and samples. ``x``, ``y``: (nsrc, nch, N)
    float64 or float32 (each sample taken to float64); ``alpha``, ``tt``, ``ee``: (nsrc,)
    float64. The sums of :func:`frame_energies` over the whole track of ``t`` (rounded to
    float64) against ``y``, in its order, without the scaled copy."""
    nsrc, nch, n = x.shape
    top = n - n % LANES
    l1 = np.empty(LANES)
    l2 = np.empty(LANES)
    for j in range(nsrc):
        a = alpha[j]
        l1[:] = 0.0
        l2[:] = 0.0
        for c in range(nch):
            xr = x[j, c]
            yr = y[j, c]
            for k0 in range(0, top, LANES):
                for ln in range(LANES):
                    tv = np.float64(xr[k0 + ln]) * a
                    dv = np.float64(yr[k0 + ln]) - tv
                    l1[ln] += tv * tv
                    l2[ln] += dv * dv
            for k in range(top, n):
                tv = np.float64(xr[k]) * a
                dv = np.float64(yr[k]) - tv
                l1[k - top] += tv * tv
                l2[k - top] += dv * dv
        s1 = 0.0
        s2 = 0.0
        for ln in range(LANES):
            s1 += l1[ln]
            s2 += l2[ln]
        tt[j] = s1
        ee[j] = s2


@njit
def _channel_sum_zero(x, j, a, b):
    """Whether ``x[j, :, k].sum() == 0`` (channels added in order) for every ``a <= k < b``;
    stops at the first sample where it is not (at once, for all but silent frames)."""
    for k in range(a, b):
        cs = np.float64(x[j, 0, k])  # in float64 whatever the stack's type
        for c in range(1, x.shape[1]):
            cs += np.float64(x[j, c, k])
        if cs != 0.0:
            return False
    return True


@njit
def _scratch(m, q):
    """The small work arrays of one Levinson solve, shared by :func:`levinson` and
    :func:`levinson_t`: ``ef, eb`` (m, m) reflection terms, ``ex`` (m, q) prediction of the next
    right-hand block, ``g`` (m, m), ``res`` (m, q) its residual, ``fa, ba`` (m, m) the two
    ``(I - ...)^-1`` factors, ``work`` (m, 2m) for their inversion, ``r0inv`` (m, m) and ``eye``."""
    return (np.empty((m, m)), np.empty((m, m)), np.empty((m, q)), np.empty((m, m)),
            np.empty((m, q)), np.empty((m, m)), np.empty((m, m)), np.empty((m, 2 * m)),
            np.empty((m, m)), np.eye(m))


@njit(inline="always")
def _predictor_stacks(rows, cols):
    """The six work stacks of a block Levinson solve, ``(rows, cols)`` float64 each (``(L m, m)``
    for :func:`levinson`, transposed for :func:`levinson_t`): the two stacks of correlation
    blocks, the forward and backward predictors (zeroed), and their two updates."""
    return (np.empty((rows, cols)), np.empty((rows, cols)), np.zeros((rows, cols)),
            np.zeros((rows, cols)), np.empty((rows, cols)), np.empty((rows, cols)))


@njit(inline="always")
def _r0_inverse(r0, eye, g, r0inv, work):
    """``r0inv = R(0)^-1``, written as ``(I - (I - R(0)))^-1`` with :func:`_inv_eye_minus`
    (``g``, ``work``: scratch)."""
    m = r0.shape[0]
    for a in range(m):
        for c in range(m):
            g[a, c] = eye[a, c] - r0[a, c]
    _inv_eye_minus(g, r0inv, work)


@njit
def levinson(R, Y, X):
    """Block Levinson (Whittle / Wiggins-Robinson) solve of ``T X = Y`` for each system.

    ``R``: (b, 2L-1, m, m) blocks ``R(-(L-1)) .. R(L-1)`` with ``R(-k) = R(k).T`` (block
    ``(a, c)`` of ``T`` is ``R(a - c)``); ``Y``: (b, L, m, q); writes ``X`` (b, L, m, q).
    The forward / backward predictors ``F``, ``B`` (first / last block column of the order-n
    inverse, stacked as (n m, m)) are updated with ``(I - eb ef)^-1`` and ``(I - ef eb)^-1``;
    every product is one BLAS call on contiguous stacks (``np.dot``). Raises
    ``np.linalg.LinAlgError`` when a block to invert is singular.
    """
    nsys, L, m, q = Y.shape
    # Ht block k = R(L-1-k).T: Ht[top-nm:top].T = [R(n) .. R(1)]; Vt block k = R(k+1):
    # Vt[:nm].T = [R(1).T .. R(n).T]
    Lm, top = L * m, (L - 1) * m
    Ht, Vt, F, Bk, tf, tb = _predictor_stacks(Lm, m)
    dx = np.empty((Lm, q))
    ef, eb, ex, g, res, fa, ba, work, r0inv, eye = _scratch(m, q)
    for s in range(nsys):
        Rs = R[s]
        Xs = X[s].reshape(Lm, q)
        Ys = Y[s].reshape(Lm, q)
        for k in range(L - 1):
            for a in range(m):
                for c in range(m):
                    Ht[k * m + a, c] = Rs[2 * L - 2 - k, c, a]
                    Vt[k * m + a, c] = Rs[L + k, a, c]
        F[:] = 0.0
        Bk[:] = 0.0
        Xs[:] = 0.0
        _r0_inverse(Rs[L - 1], eye, g, r0inv, work)
        for a in range(m):  # loops, not F[:m] = r0inv: numba's shape-checked slice assignment
            for c in range(m):  # costs ~3 s of first compile
                F[a, c] = r0inv[a, c]
                Bk[a, c] = r0inv[a, c]
        _dot(r0inv, Ys[:m], Xs[:m])
        for n in range(1, L):
            nm = n * m
            hs = Ht[top - nm : top].T  # (m, nm), Fortran-contiguous
            _dot(hs, F[:nm], ef)
            _dot(Vt[:nm].T, Bk[:nm], eb)
            _dot(hs, Xs[:nm], ex)
            _dot(eb, ef, g)
            _inv_eye_minus(g, fa, work)
            _dot(ef, eb, g)
            _inv_eye_minus(g, ba, work)
            # tf = [F; 0] - [0; B] ef,  tb = [0; B] - [F; 0] eb
            _dot(Bk[:nm], ef, tf[m : nm + m])
            _dot(F[:nm], eb, tb[:nm])
            for r in range(m):
                for c in range(m):
                    tf[r, c] = F[r, c]
            for r in range(m, nm):
                for c in range(m):
                    tf[r, c] = F[r, c] - tf[r, c]
            for r in range(nm, nm + m):
                for c in range(m):
                    tf[r, c] = -tf[r, c]
            for r in range(m, nm):
                for c in range(m):
                    tb[r, c] = Bk[r - m, c] - tb[r, c]
            for r in range(nm, nm + m):
                for c in range(m):
                    tb[r, c] = Bk[r - m, c]
            for r in range(m):
                for c in range(m):
                    tb[r, c] = -tb[r, c]
            _dot(tf[: nm + m], fa, F[: nm + m])
            _dot(tb[: nm + m], ba, Bk[: nm + m])
            for a in range(m):
                for c in range(q):
                    res[a, c] = Ys[nm + a, c] - ex[a, c]
            _dot(Bk[: nm + m], res, dx[: nm + m])
            for r in range(nm + m):
                for c in range(q):
                    Xs[r, c] += dx[r, c]


#: below this many multiply-adds a product is a plain loop (BLAS call overhead dominates)
SMALL_PRODUCT = 4096


@njit
def _dot(a, b, out):
    """``out[:] = a @ b`` for 2-D float64 arrays; BLAS (``np.dot``) for large products, a plain
    loop for small ones."""
    n, k = a.shape
    p = b.shape[1]
    if n * k * p >= SMALL_PRODUCT:
        np.dot(a, b, out)
        return
    for i in range(n):
        for d in range(p):
            out[i, d] = 0.0
        for j in range(k):
            v = a[i, j]
            for d in range(p):
                out[i, d] += v * b[j, d]


@njit
def _inv_eye_minus(g, out, work):
    """``out = (I - g)^-1`` for a small (m, m) matrix by Gauss-Jordan elimination with partial
    pivoting; ``work`` is (m, 2m) scratch. Raises ``np.linalg.LinAlgError`` if singular."""
    m = g.shape[0]
    for i in range(m):
        for j in range(m):
            work[i, j] = -g[i, j]
            work[i, m + j] = 0.0
        work[i, i] += 1.0
        work[i, m + i] = 1.0
    for col in range(m):
        piv = col
        best = abs(work[col, col])
        for i in range(col + 1, m):
            if abs(work[i, col]) > best:
                best = abs(work[i, col])
                piv = i
        if best == 0.0:
            raise np.linalg.LinAlgError("singular block in the Levinson recursion")
        if piv != col:
            for j in range(2 * m):
                tmp = work[col, j]
                work[col, j] = work[piv, j]
                work[piv, j] = tmp
        inv_p = 1.0 / work[col, col]
        for j in range(2 * m):
            work[col, j] *= inv_p
        for i in range(m):
            if i != col:
                f = work[i, col]
                if f != 0.0:
                    for j in range(2 * m):
                        work[i, j] -= f * work[col, j]
    for i in range(m):
        for j in range(m):
            out[i, j] = work[i, m + j]


@njit
def _rowdots(A, Bt, n, out):
    """``out[a, d] = sum_{r < n} A[a, r] Bt[d, r]`` (``A @ Bt[:, :n].T``) with four partial sums
    per product (fixed order)."""
    top = n - n % 4
    for a in range(A.shape[0]):
        x = A[a]
        for d in range(Bt.shape[0]):
            y = Bt[d]
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for r in range(0, top, 4):
                s0 += x[r] * y[r]
                s1 += x[r + 1] * y[r + 1]
                s2 += x[r + 2] * y[r + 2]
                s3 += x[r + 3] * y[r + 3]
            for r in range(top, n):
                s0 += x[r] * y[r]
            out[a, d] = (s0 + s1) + (s2 + s3)


@njit
def levinson_t(R, Y, X):
    """:func:`levinson` with the stacks stored transposed (predictors ``(m, L m)``), all
    products as plain loops along the long axis: fast for small ``m`` (BLAS call overhead and
    length-``m`` inner loops dominate :func:`levinson` there). Same arguments and result."""
    nsys, L, m, q = Y.shape
    # H[:, top - nm : top] = [R(n) .. R(1)] (block k = R(L-1-k)); V[:, :nm] = [R(1).T .. R(n).T]
    Lm, top = L * m, (L - 1) * m
    H, V, Ft, Bt, tf, tb = _predictor_stacks(m, Lm)
    Xt = np.zeros((q, Lm))
    ef, eb, exT, g, res, fa, ba, work, r0inv, eye = _scratch(m, q)
    for s in range(nsys):
        Rs = R[s]
        for k in range(L - 1):
            for a in range(m):
                for c in range(m):
                    H[a, k * m + c] = Rs[2 * L - 2 - k, a, c]
                    V[a, k * m + c] = Rs[L + k, c, a]
        Ft[:] = 0.0
        Bt[:] = 0.0
        Xt[:] = 0.0
        _r0_inverse(Rs[L - 1], eye, g, r0inv, work)
        for a in range(m):
            for c in range(m):
                Ft[c, a] = r0inv[a, c]
                Bt[c, a] = r0inv[a, c]
            for d in range(q):
                v = 0.0
                for c in range(m):
                    v += r0inv[a, c] * Y[s, 0, c, d]
                Xt[d, a] = v
        for n in range(1, L):
            nm = n * m
            hs = H[:, top - nm : top]
            _rowdots(hs, Ft, nm, ef)  # ef = [R(n)..R(1)] F
            _rowdots(V, Bt, nm, eb)  # eb = [R(1).T..R(n).T] B
            _rowdots(hs, Xt, nm, exT)  # ex = [R(n)..R(1)] X
            _dot(eb, ef, g)
            _inv_eye_minus(g, fa, work)
            _dot(ef, eb, g)
            _inv_eye_minus(g, ba, work)
            # tf.T = [F; 0].T - ef.T [0; B].T ; tb.T = [0; B].T - eb.T [F; 0].T
            for d in range(m):
                tfd = tf[d]
                tbd = tb[d]
                for r in range(nm):
                    tfd[r] = Ft[d, r]
                tfd[nm : nm + m] = 0.0
                tbd[:m] = 0.0
                for r in range(nm):
                    tbd[m + r] = Bt[d, r]
                for b in range(m):
                    cf = ef[b, d]
                    cb = eb[b, d]
                    Bb = Bt[b]
                    Fb = Ft[b]
                    for r in range(nm):
                        tfd[m + r] -= cf * Bb[r]
                        tbd[r] -= cb * Fb[r]
            # F.T = fa.T tf.T, B.T = ba.T tb.T (rows 0 .. nm + m)
            for d in range(m):
                Fd = Ft[d]
                Bd = Bt[d]
                Fd[: nm + m] = 0.0
                Bd[: nm + m] = 0.0
                for b in range(m):
                    cf = fa[b, d]
                    cb = ba[b, d]
                    tfb = tf[b]
                    tbb = tb[b]
                    for r in range(nm + m):
                        Fd[r] += cf * tfb[r]
                        Bd[r] += cb * tbb[r]
            for a in range(m):
                for d in range(q):
                    res[a, d] = Y[s, n, a, d] - exT[a, d]
            for d in range(q):
                Xd = Xt[d]
                for b in range(m):
                    cx = res[b, d]
                    Bb = Bt[b]
                    for r in range(nm + m):
                        Xd[r] += cx * Bb[r]
        for k in range(L):
            for a in range(m):
                for d in range(q):
                    X[s, k, a, d] = Xt[d, k * m + a]
