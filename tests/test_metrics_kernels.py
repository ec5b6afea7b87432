"""Compiled BSS Eval kernels (stemforge.metrics._kernels) against plain NumPy references.

Small sizes (a few hundred bins / samples), so each test runs in milliseconds once the kernels
are compiled (numba's disk cache keeps them between runs).
"""
from __future__ import annotations

import numpy as np
import pytest

from stemforge.metrics import _kernels as K
from stemforge.metrics import bss_eval_v4, bsseval, toeplitz


def _cplx(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@pytest.mark.parametrize("m,q,nc,F,step", [(3, 2, 4, 150, 2), (1, 1, 1, 1, 1), (4, 4, 3, 64, 5)])
def test_cross_spectra_equal_sums_of_conjugate_products(m, q, nc, F, step):
    """Every reference pair p <= r and every reference x estimate pair, summed over the chunks
    c0..c1-1 only, added to what the accumulators held; bins outside [f_lo, f_hi) untouched."""
    rng = np.random.default_rng(m * 100 + F)
    spec = _cplx(rng, m + q, nc, F)
    iu, ju = np.triu_indices(m)
    acc_r0, acc_d0 = _cplx(rng, len(iu), F), _cplx(rng, m, q, F)
    acc_r, acc_d = acc_r0.copy(), acc_d0.copy()
    c0, c1 = (1, nc) if nc > 1 else (0, 1)
    f_lo, f_hi = (F // 3, F - 1) if F > 2 else (0, F)
    K.cross_spectra(spec.view(np.float64), m, c0, c1, step, f_lo, f_hi,
                    acc_r.view(np.float64), acc_d.view(np.float64))
    s = spec[:, c0:c1]
    want_r = acc_r0 + np.einsum("pkf,rkf->prf", np.conj(s[:m]), s[:m])[iu, ju]
    want_d = acc_d0 + np.einsum("pkf,ckf->pcf", np.conj(s[:m]), s[m:])
    band = slice(f_lo, f_hi)
    np.testing.assert_allclose(acc_r[:, band], want_r[:, band], rtol=0, atol=1e-12)
    np.testing.assert_allclose(acc_d[..., band], want_d[..., band], rtol=0, atol=1e-12)
    outside = np.ones(F, bool)
    outside[band] = False
    assert np.array_equal(acc_r[:, outside], acc_r0[:, outside])
    assert np.array_equal(acc_d[..., outside], acc_d0[..., outside])


def test_cross_spectra_grouping_is_the_order_of_per_group_calls():
    """One call with step-sized groups adds exactly what one call per group adds (bit for bit),
    which is what keeps kept / streamed / threaded correlation passes identical."""
    rng = np.random.default_rng(9)
    m, q, nc, F, step = 2, 2, 7, 40, 3
    spec = _cplx(rng, m + q, nc, F) * 10.0 ** rng.uniform(-8, 8, (m + q, nc, 1))
    one = [np.zeros((3, F), complex), np.zeros((m, q, F), complex)]
    per = [np.zeros((3, F), complex), np.zeros((m, q, F), complex)]
    K.cross_spectra(spec.view(np.float64), m, 0, nc, step, 0, F, one[0].view(np.float64),
                    one[1].view(np.float64))
    for g0 in range(0, nc, step):
        part = np.ascontiguousarray(spec[:, g0 : g0 + step])
        K.cross_spectra(part.view(np.float64), m, 0, part.shape[1], step, 0, F,
                        per[0].view(np.float64), per[1].view(np.float64))
    assert np.array_equal(one[0], per[0]) and np.array_equal(one[1], per[1])


def test_projection_energies_equal_numpy_projections():
    """All-reference and own-source projections and the five Parseval energies, frames t0..t1-1
    written to rows t - t0; channel c belongs to source c // nch."""
    rng = np.random.default_rng(1)
    nsrc, nch, nfr, F = 3, 2, 5, 131
    m = nsrc * nch
    spec = _cplx(rng, 2 * m, nfr, F)
    hall, hown = _cplx(rng, m, m, F), _cplx(rng, nch, m, F)
    w = rng.random(F)
    t0, t1 = 1, 4
    out = np.zeros((5, t1 - t0, nsrc))
    K.projection_energies(spec.view(np.float64), t0, t1, hall.view(np.float64),
                          hown.view(np.float64), w, nch, out)
    X, Y = spec[:m, t0:t1], spec[m:, t0:t1]  # (m, fr, F)
    P = np.einsum("itf,icf->ctf", X, hall)
    O = np.zeros_like(P)
    for c in range(m):
        j = c // nch
        for i in range(nch):
            O[c] += X[j * nch + i] * hown[i, c]

    def energy(z):  # (m, fr, F) -> (fr, nsrc)
        return np.einsum("f,ctf->tc", w, np.abs(z) ** 2).reshape(t1 - t0, nsrc, nch).sum(-1)

    want = np.stack([energy(O - X), energy(O), energy(P - O), energy(P), energy(Y - P)])
    np.testing.assert_allclose(out, want, rtol=1e-12)


def test_frame_energies_and_silence_rule():
    """Per-frame sum s^2 and (s_hat - s)^2 over channels; a frame is silent when some reference
    or estimate has channel sum exactly 0 at every sample (anti-phase stereo counts)."""
    rng = np.random.default_rng(2)
    refs = rng.standard_normal((3, 2, 103))
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    refs[1, :, 20:40] = 0.0  # frame 1 silent (reference)
    ests[2, 0, 60:80] = 1.0  # frame 3: estimate anti-phase -> channel sum zero
    ests[2, 1, 60:80] = -1.0
    starts = np.array([0, 20, 40, 60, 83], np.int64)
    stops = np.array([20, 40, 60, 80, 103], np.int64)
    s_e, e_e, silent = np.empty((5, 3)), np.empty((5, 3)), np.empty(5, np.bool_)
    K.frame_energies(refs, ests, starts, stops, s_e, e_e, silent)
    for t, (a, b) in enumerate(zip(starts, stops, strict=True)):
        np.testing.assert_allclose(s_e[t], (refs[:, :, a:b] ** 2).sum((1, 2)), rtol=1e-13)
        np.testing.assert_allclose(e_e[t], ((ests - refs)[:, :, a:b] ** 2).sum((1, 2)),
                                   rtol=1e-13)
    assert silent.tolist() == [False, True, False, True, False]


def _block_toeplitz(rng, nsys, L, m, q):
    """Random well-conditioned block-Toeplitz systems: R from the lagged correlations of noise."""
    n = 20 * L * m  # well above the L m unknowns: full rank
    x = rng.standard_normal((nsys, m, n))
    R = np.zeros((nsys, 2 * L - 1, m, m))
    for k in range(-(L - 1), L):
        a, b = max(0, -k), n - max(0, k)
        R[:, k + L - 1] = np.einsum("spn,srn->spr", x[:, :, a:b], x[:, :, a + k : b + k])
    return R, rng.standard_normal((nsys, L, m, q))


@pytest.mark.parametrize("m", [2, 7])  # the loop kernel (m < SMALL_BLOCK) and the BLAS kernel
def test_levinson_kernels_equal_dense_solve_and_numpy_recursion(m):
    rng = np.random.default_rng(m)
    L, q = 9, 3
    R, Y = _block_toeplitz(rng, 2, L, m, q)
    X = toeplitz.levinson(R, Y)
    for s in range(2):
        want = np.linalg.solve(toeplitz.dense(R[s]), Y[s].reshape(L * m, q)).reshape(L, m, q)
        np.testing.assert_allclose(X[s], want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(X, toeplitz.levinson_numpy(R, Y), rtol=1e-9, atol=1e-12)
    # both kernels on the same input agree (whichever toeplitz.levinson picked)
    X2 = np.empty_like(Y)
    (K.levinson_t if m >= toeplitz.SMALL_BLOCK else K.levinson)(R, Y, X2)
    np.testing.assert_allclose(X2, X, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("m", [2, 7])
def test_levinson_singular_block_raises_and_solve_falls_back(m):
    """A singular leading block raises LinAlgError from the compiled recursion; solve() then
    takes the dense path (least squares) and still returns a finite solution."""
    L, q = 4, 2
    R = np.zeros((1, 2 * L - 1, m, m))
    Y = np.ones((1, L, m, q))
    with pytest.raises(np.linalg.LinAlgError, match="singular block"):
        toeplitz.levinson(R, Y)
    X = toeplitz.solve(R[0] + 0.0, Y[0])
    assert X.shape == (L, m, q) and np.isfinite(X).all()


def test_inverse_kernel_pivots():
    """Gauss-Jordan with partial pivoting: a zero leading pivot is not a singular matrix."""
    g = np.eye(3) - np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, 1.0]])
    out, work = np.empty((3, 3)), np.empty((3, 6))
    K._inv_eye_minus(g, out, work)
    np.testing.assert_allclose(out, np.linalg.inv(np.eye(3) - g), rtol=1e-12)


def test_uncached_frame_spectra_path_equals_cached(monkeypatch):
    """Frames = chunks: reusing the correlation pass's spectra or recomputing them per frame
    group (when they would exceed FRAME_CACHE_BYTES) gives the same scores."""
    rng = np.random.default_rng(4)
    refs = rng.standard_normal((2, 2, 5300))
    ests = 0.7 * refs + 0.3 * rng.standard_normal(refs.shape)
    a = bss_eval_v4(refs, ests, win=1000, hop=1000, filters_len=16)
    monkeypatch.setattr(bsseval, "FRAME_CACHE_BYTES", 0)
    monkeypatch.setattr(bsseval, "GROUP_ELEMS", 1)  # one frame per group
    b = bss_eval_v4(refs, ests, win=1000, hop=1000, filters_len=16)
    for x, y in zip((a.sdr, a.isr, a.sir, a.sar), (b.sdr, b.isr, b.sir, b.sar), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-9)


@pytest.mark.parametrize("win,hop", [(1000, 1000), (1000, 400)])  # kept spectra / per step
def test_threads_give_bit_identical_scores(monkeypatch, win, hop):
    """threads=2 splits transforms by chunks, cross-spectrum sums by bins and projections by
    frames; every sum keeps its order, so the scores are equal bit for bit."""
    monkeypatch.setattr(toeplitz, "BLOCK", 700)
    monkeypatch.setattr(toeplitz, "STEP_ELEMS", 1)  # one chunk per step: several steps
    rng = np.random.default_rng(6)
    refs = rng.standard_normal((2, 2, 6100))
    ests = 0.6 * refs + 0.4 * rng.standard_normal(refs.shape)
    a = bss_eval_v4(refs, ests, win=win, hop=hop, filters_len=16)
    b = bss_eval_v4(refs, ests, win=win, hop=hop, filters_len=16, threads=2)
    for x, y in zip((a.sdr, a.isr, a.sir, a.sar), (b.sdr, b.isr, b.sir, b.sar), strict=True):
        assert np.array_equal(x, y)
