"""Whole-track correlations and the block-Toeplitz normal equations of BSS Eval.

BSS Eval projects an estimate onto the span of delayed copies (lags ``0..L-1``) of the
reference channels. Ordered lag-major, the Gram matrix of those delayed signals is block
Toeplitz: block ``(a, b)`` is ``R(a - b)`` with ``R(k)[p, q] = sum_n x_p[n] x_q[n + k]``
(``m x m``, ``m`` = sources x channels) and ``R(-k) = R(k).T``. museval builds the full
``(L m) x (L m)`` matrix and LU-solves it once per estimate; here the system is solved once for
all right-hand sides by the block Levinson recursion (``O(L^2 m^3)``), refined against an exact
FFT mat-vec, and checked; if the residual is not at dense-solver level, we fall back to the
dense solve (Cholesky, then LU, then least squares, as museval does).
"""
from __future__ import annotations

import numpy as np

from . import scratch

EPS = np.finfo(float).eps  # museval adds eps * I to the Gram matrix before solving
BLOCK = 16384  # correlation chunk length (samples)
MAX_REFINE = 3  # iterative-refinement steps of the Levinson solution
STEP_ELEMS = 1 << 21  # chunk spectra (complex bins, all rows) transformed per step
IRFFT_ROWS = 8  # summed cross-spectra transformed back per step
SUMS = "bss.sums"  # the :mod:`.scratch` buffer of the summed cross-spectra


def fast_len(n: int) -> int:
    """The smallest 5-smooth number (``2^a 3^b 5^c``) >= ``n``: a fast real FFT length, as
    ``scipy.fft.next_fast_len(n, real=True)`` (tested equal). The transforms are NumPy's
    (the same pocketfft C++ code as scipy.fft's), so scoring does not import
    scipy.fft (~0.3 s of a command's start)."""
    if n <= 6:
        return max(int(n), 1)
    best = 1 << (int(n) - 1).bit_length()  # a power of two is 5-smooth
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # the smallest power of two taking p35 to n or above
            q = -(-n // p35)
            cand = p35 * (1 << (q - 1).bit_length())
            if cand < best:
                best = cand
            p35 *= 3
        p5 *= 5
    return best


def correlations(
    x: np.ndarray, y: np.ndarray, L: int, block: int = BLOCK, keep: bool = False, threads: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Lagged inner products over the whole (zero-extended) signals.

    ``x``: (m, N) references, ``y``: (q, N) estimates, float64.
    Returns ``R`` (2L-1, m, m) with ``R[k + L - 1][p, r] = sum_n x_p[n] x_r[n + k]``,
    ``D`` (L, m, q) with ``D[l][p, c] = sum_n x_p[n] y_c[n + l]``, with ``keep`` the spectra of
    all chunks (``block`` samples each, zero-padded to ``nfft``) of x then y as
    (m + q, nc, nfft // 2 + 1) complex (else None; a :mod:`.scratch` buffer, valid until this
    thread's next call), and ``nfft``.

    The signals are cut into chunks of ``block`` samples (needs ``block >= L - 1`` when there
    is more than one chunk). Within-chunk correlations come from the chunk spectra (cross-spectra
    summed over chunks by the compiled :func:`~stemforge.metrics._kernels.cross_spectra`,
    ``nfft >= block + L - 1`` so lags up to ``L - 1`` do not alias); the pairs ``(n, n + k)``
    that straddle a chunk boundary involve only the ``L - 1`` samples on either side of it, and
    are added from short FFTs of those edges. So every signal is transformed once (with ``keep``
    into the returned array, which the frame projections reuse; else a few chunks at a time
    into one reused buffer), and only ``m (m + 1) / 2 + m q`` inverse FFTs remain
    (``R(-k) = R(k).T``: pairs ``p <= r`` only). ``threads`` > 1 splits the transforms by
    chunks and the cross-spectrum sums by frequency bins: every sum is formed in the same order
    as with one thread, so the result is bit-identical.
    """
    m, n = x.shape
    q = y.shape[0]
    B = min(block, max(n, 1))
    nc = -(-n // B)
    if nc > 1 and B < L - 1:
        raise ValueError(f"block {B} must be >= filters_len - 1 ({L - 1})")
    nfft = fast_len(max(B + L - 1, 2 * L - 1))
    F = nfft // 2 + 1
    iu, ju = np.triu_indices(m)
    kept = scratch.empty("bss.spectra", (m + q, nc, F), np.complex128) if keep else None
    step = max(1, min(nc, STEP_ELEMS // ((m + q) * F)))
    # one buffer (SUMS): ref x ref pairs p <= r, then ref x estimate; dead once the lags are
    # out, so BSS Eval's filter spectra reuse it
    sums = scratch.empty(SUMS, (len(iu) + m * q, F), np.complex128)
    acc_r = sums[: len(iu)]
    acc_d = sums[len(iu) :].reshape(m, q, F)
    acc_r[...] = 0
    acc_d[...] = 0
    ar_f, ad_f = acc_r.view(np.float64), acc_d.view(np.float64)
    nthreads = max(1, int(threads))
    fcut = np.linspace(0, F, nthreads + 1).astype(np.int64)  # bin ranges of the threads

    def transform(c0, dst):  # chunks c0 .. c0 + k - 1 into dst (m + q, k, F)
        k = dst.shape[1]
        np.fft.rfft(_chunks(x, c0, c0 + k, B), n=nfft, axis=-1, out=dst[:m])
        np.fft.rfft(_chunks(y, c0, c0 + k, B), n=nfft, axis=-1, out=dst[m:])

    def cross(spec, c0, c1, part):  # bins of thread ``part``; the same sums whatever the split
        from .kernels import kernels  # loaded where first needed (``stemforge evaluate``
        # loads them in its main thread while its workers transform their first tracks)

        kernels().cross_spectra(spec.view(np.float64), m, c0, c1, step, fcut[part],
                               fcut[part + 1], ar_f, ad_f)

    starts = list(range(0, nc, step))
    if nthreads == 1:
        buf = None if keep else np.empty((m + q, min(step, nc), F), np.complex128)
        for c0 in starts:
            c1 = min(nc, c0 + step)
            dst = kept[:, c0:c1] if keep else buf[:, : c1 - c0]
            transform(c0, dst)
            if not keep:
                cross(dst, 0, c1 - c0, 0)
        if keep:
            cross(kept, 0, nc, 0)
    else:
        from concurrent.futures import ThreadPoolExecutor  # numba kernels and FFTs drop the GIL

        with ThreadPoolExecutor(nthreads) as pool:
            if keep:  # transforms split by chunk groups, then the sums split by bins
                list(pool.map(lambda c0: transform(c0, kept[:, c0 : min(nc, c0 + step)]), starts))
                list(pool.map(lambda part: cross(kept, 0, nc, part), range(nthreads)))
            else:
                buf = np.empty((m + q, min(step, nc), F), np.complex128)
                for c0 in starts:
                    dst = buf[:, : min(nc, c0 + step) - c0]
                    transform(c0, dst)
                    list(pool.map(lambda part: cross(dst, 0, dst.shape[1], part),
                                  range(nthreads)))
    lags = _circular_lags(acc_r, nfft, L - 1, L)  # lags -(L-1)..L-1
    d = _circular_lags(acc_d, nfft, 0, L)  # (m, q, L)
    if nc > 1:  # pairs straddling the nc - 1 chunk boundaries
        e = L - 1
        ns = fast_len(3 * e)
        idx = (np.arange(1, nc) * B)[:, None] + np.arange(-e, e)[None, :]  # (nb, 2e)
        inside = idx < n  # the last chunk may be shorter than e: zeros beyond the signal
        idx = np.minimum(idx, n - 1)
        left = np.zeros((m + q, nc - 1, 2 * e))
        right = np.zeros((m + q, nc - 1, 2 * e))
        left[:m, :, :e], left[m:, :, :e] = x[:, idx[:, :e]], y[:, idx[:, :e]]
        right[:m, :, e:] = x[:, idx[:, e:]] * inside[:, e:]
        right[m:, :, e:] = y[:, idx[:, e:]] * inside[:, e:]
        lf = np.fft.rfft(left, n=ns, axis=-1)  # (m+q, nb, Fs)
        rf = np.fft.rfft(right, n=ns, axis=-1)
        er = np.einsum("pbf,rbf->prf", np.conj(lf[:m]), rf[:m])
        er += np.conj(er.transpose(1, 0, 2))  # + conj(R_p) L_r
        ce = np.fft.irfft(er[iu, ju], n=ns, axis=-1)
        lags += np.concatenate([ce[:, ns - e :], ce[:, :L]], axis=1)
        ed = np.einsum("pbf,cbf->pcf", np.conj(lf[:m]), rf[m:])  # conj(L_x) R_y (lags >= 0)
        d += np.fft.irfft(ed, n=ns, axis=-1)[..., :L]
    R = np.empty((2 * L - 1, m, m))
    R[:, iu, ju] = lags.T
    R[:, ju, iu] = lags[:, ::-1].T  # R(k)[r, p] = R(-k)[p, r]
    D = np.ascontiguousarray(d.transpose(2, 0, 1))  # (L, m, q)
    return R, D, kept, nfft


def _circular_lags(spec: np.ndarray, nfft: int, before: int, after: int) -> np.ndarray:
    """Samples ``-before .. after - 1`` (circularly) of ``irfft(spec, nfft)`` along the last
    axis: (..., before + after). Transformed :data:`IRFFT_ROWS` rows at a time, so no
    full-length (..., nfft) array is ever held (each row's transform is the same)."""
    rows = spec.reshape(-1, spec.shape[-1])
    out = np.empty((rows.shape[0], before + after))
    for a in range(0, rows.shape[0], IRFFT_ROWS):
        t = np.fft.irfft(rows[a : a + IRFFT_ROWS], n=nfft, axis=-1)
        out[a : a + IRFFT_ROWS, :before] = t[:, nfft - before :]
        out[a : a + IRFFT_ROWS, before:] = t[:, :after]
    return out.reshape(spec.shape[:-1] + (before + after,))


def _chunks(a: np.ndarray, c0: int, c1: int, B: int) -> np.ndarray:
    """Chunks ``c0..c1-1`` of ``B`` samples of ``a`` (rows, N) as (rows, k, B): a view, or a
    zero-padded copy when the last chunk runs past the end."""
    n = a.shape[1]
    if c1 * B <= n:
        return a[:, c0 * B : c1 * B].reshape(a.shape[0], c1 - c0, B)
    out = np.zeros((a.shape[0], c1 - c0, B))
    out.reshape(a.shape[0], -1)[:, : n - c0 * B] = a[:, c0 * B :]
    return out


def dense(R: np.ndarray) -> np.ndarray:
    """The full ``(L m, L m)`` matrix with block ``(a, b) = R(a - b)``; ``R``: (2L-1, m, m)."""
    L = (R.shape[0] + 1) // 2
    m = R.shape[1]
    idx = np.arange(L)[:, None] - np.arange(L)[None, :] + L - 1
    return R[idx].transpose(0, 2, 1, 3).reshape(L * m, L * m)


def matvec(R: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``T @ X`` for the block-Toeplitz ``T`` of ``R`` (..., 2L-1, m, m); ``X``: (..., L, m, q)."""
    L = X.shape[-3]
    nfft = fast_len(3 * L - 2)
    hf = np.fft.rfft(R, n=nfft, axis=-3)
    xf = np.fft.rfft(X, n=nfft, axis=-3)
    y = np.fft.irfft(np.matmul(hf, xf), n=nfft, axis=-3)
    return y[..., L - 1 : 2 * L - 1, :, :]


#: below this block size the transposed, loop-only recursion is faster than BLAS calls
SMALL_BLOCK = 6


def levinson(R: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Solve ``T X = Y`` by the block Levinson recursion, compiled (:mod:`._kernels`).

    ``R``: (..., 2L-1, m, m) blocks ``R(-(L-1)) .. R(L-1)`` with ``R(-k) = R(k).T``;
    ``Y``: (..., L, m, q); leading axes are independent systems. Returns ``X`` (..., L, m, q).
    The maths of :func:`levinson_numpy`; BLAS products for ``m >= SMALL_BLOCK``, plain loops
    over transposed stacks below. Raises ``np.linalg.LinAlgError`` when a block is singular.
    """
    from .kernels import kernels

    L, m, q = Y.shape[-3:]
    lead = Y.shape[:-3]
    Rb = np.ascontiguousarray(np.broadcast_to(R, lead + R.shape[-3:]).reshape((-1,) + R.shape[-3:]))
    Yb = np.ascontiguousarray(Y.reshape((-1, L, m, q)), dtype=np.float64)
    X = np.empty_like(Yb)
    k = kernels()
    (k.levinson if m >= SMALL_BLOCK else k.levinson_t)(Rb, Yb, X)
    return X.reshape(lead + (L, m, q))


def levinson_numpy(R: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Solve ``T X = Y`` by the block Levinson (Whittle / Wiggins-Robinson) recursion in NumPy
    (the reference for the compiled :func:`levinson`).

    ``R``: (..., 2L-1, m, m) blocks ``R(-(L-1)) .. R(L-1)`` with ``R(-k) = R(k).T``;
    ``Y``: (..., L, m, q); leading axes are independent systems solved together.
    Returns ``X`` (..., L, m, q). Raises ``np.linalg.LinAlgError`` when a leading block is singular.
    """
    L, m, q = Y.shape[-3:]
    lead = Y.shape[:-3]
    Rp = R[..., L - 1 :, :, :]  # R(0) .. R(L-1)
    # H[k] = R(L-1-k) for k < L-1, so E_f = [R(n) .. R(1)] @ F = H[L-1-n:] @ F
    H = np.concatenate([Rp[..., :0:-1, :, :], Rp[..., :1, :, :]], axis=-3)
    H = np.moveaxis(H, -3, -2).reshape(lead + (m, L * m))
    V = np.moveaxis(np.swapaxes(Rp[..., 1:, :, :], -1, -2), -3, -2).reshape(lead + (m, (L - 1) * m))
    eye = np.eye(m)
    r0inv = np.linalg.inv(Rp[..., 0, :, :])
    F = np.zeros(lead + (L * m, m))
    Bk = np.zeros(lead + (L * m, m))
    X = np.zeros(lead + (L * m, q))
    Yf = Y.reshape(lead + (L * m, q))
    F[..., :m, :] = r0inv
    Bk[..., :m, :] = r0inv
    X[..., :m, :] = r0inv @ Yf[..., :m, :]
    top = (L - 1) * m
    for n in range(1, L):
        nm = n * m
        hs = H[..., top - nm : top]
        ef = hs @ F[..., :nm, :]
        eb = V[..., :nm] @ Bk[..., :nm, :]
        ex = hs @ X[..., :nm, :]
        fa = np.linalg.inv(eye - eb @ ef)
        ba = np.linalg.inv(eye - ef @ eb)
        fo = F[..., : nm + m, :].copy()
        bo = np.zeros_like(fo)
        bo[..., m:, :] = Bk[..., :nm, :]
        F[..., : nm + m, :] = (fo - bo @ ef) @ fa
        Bk[..., : nm + m, :] = (bo - fo @ eb) @ ba
        X[..., : nm + m, :] += Bk[..., : nm + m, :] @ (Yf[..., nm : nm + m, :] - ex)
    return X.reshape(lead + (L, m, q))


def _dense_solve(R: np.ndarray, Y: np.ndarray) -> np.ndarray:
    import scipy.linalg as sla  # the rare fallback only: its import costs ~0.2 s of a run

    if Y.ndim > 3:
        return np.stack([_dense_solve(r, y) for r, y in zip(R, Y)])
    L, m, q = Y.shape
    G = dense(R)
    rhs = Y.reshape(L * m, q)
    Greg = G + EPS * np.eye(G.shape[0])
    try:
        sol = sla.cho_solve(sla.cho_factor(Greg, lower=True, check_finite=False), rhs)
    except np.linalg.LinAlgError:
        try:
            sol = np.linalg.solve(Greg, rhs)
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(G, rhs, rcond=None)[0]
    return sol.reshape(L, m, q)


def solve(R: np.ndarray, Y: np.ndarray, method: str = "auto", tol: float = 1e-11) -> np.ndarray:
    """Solve ``(T + eps I) X = Y``; ``R`` (..., 2L-1, m, m), ``Y`` (..., L, m, q) -> (..., L, m, q).

    ``method``: "auto" (block Levinson, refined against the exact FFT mat-vec, residual-checked,
    dense fallback per system) or "dense" (Cholesky -> LU -> least squares, like museval).
    The fast path is accepted when ``||T X - Y|| <= tol * ||T||_1 ||X||`` (dense-solver level).
    """
    if method == "dense":
        return _dense_solve(R, Y)
    if method != "auto":
        raise ValueError(f"solver must be 'auto' or 'dense', got {method!r}")
    L = Y.shape[-3]
    Rreg = R.copy()
    Rreg[..., L - 1, :, :] += EPS * np.eye(R.shape[-1])
    try:
        X = levinson(Rreg, Y)
        for _ in range(MAX_REFINE):
            res = Y - matvec(Rreg, X)
            if _accepted(Rreg, X, res, tol).all():
                return X
            X = X + levinson(Rreg, res)
        good = _accepted(Rreg, X, Y - matvec(Rreg, X), tol)
    except np.linalg.LinAlgError:
        good = np.zeros(Y.shape[:-3], bool)
        X = np.zeros_like(Y)
    if Y.ndim == 3:
        return X if bool(good) else _dense_solve(R, Y)
    for i in np.flatnonzero(~good):
        X[i] = _dense_solve(R[i], Y[i])
    return X


def _accepted(R, X, res, tol):
    norm_t = np.abs(R).sum(axis=(-3, -2)).max(axis=-1)  # 1-norm bound of T
    rn = np.sqrt((res**2).sum(axis=(-3, -2, -1)))
    xn = np.sqrt((X**2).sum(axis=(-3, -2, -1)))
    return np.isfinite(rn) & (rn <= tol * norm_t * xn)
