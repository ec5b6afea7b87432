"""float32 stacks (what ``stemforge evaluate`` reads files into): every metric takes the samples
to float64 before its sums, so float32 inputs score exactly as their float64 copies do."""
from __future__ import annotations

import numpy as np
import pytest

from stemforge.metrics import _kernels as K
from stemforge.metrics import bss_eval_v4, bss_eval_v4_sdr
from stemforge.metrics.sisdr import si_sdr
from stemforge.metrics.validate import as_stack, check_pair, silent_sources
from stemforge.metrics.whole import whole_track


def _pair(seed, nsrc, nch, n):
    rng = np.random.default_rng(seed)
    refs = (0.3 * rng.standard_normal((nsrc, nch, n))).astype(np.float32)
    refs[0, :, : n // 2] = 0  # silent frames
    ests = (0.7 * refs + 0.2 * np.roll(refs, 1, axis=0)
            + 0.05 * rng.standard_normal(refs.shape)).astype(np.float32)
    return refs, ests


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("nsrc,nch,n,win,hop,threads", [
    (4, 2, 2 * 44100 + 999, 44100, 44100, 1),  # frames = chunks, spectra kept
    (4, 2, 2 * 44100 + 999, 44100, 44100, 2),
    (2, 1, 30000, 4096, 1024, 1),              # overlapping frames: spectra per group
    (3, 2, 7000, 44100, 44100, 1),             # one frame
])
def test_bss_eval_of_float32_equals_its_float64_copy(nsrc, nch, n, win, hop, threads):
    refs, ests = _pair(nsrc * 10 + n, nsrc, nch, n)
    a = bss_eval_v4(refs, ests, win=win, hop=hop, filters_len=32, threads=threads)
    b = bss_eval_v4(refs.astype(np.float64), ests.astype(np.float64), win=win, hop=hop,
                    filters_len=32, threads=threads)
    for m in ("SDR", "ISR", "SIR", "SAR"):
        assert _same(a.metric(m), b.metric(m)), m
    if min(win, n) <= n // 2:
        assert np.isnan(a.sdr[:, 0]).all()  # the silent first frame
    assert _same(bss_eval_v4_sdr(refs, ests, win=win, hop=hop),
                 bss_eval_v4_sdr(refs.astype(np.float64), ests.astype(np.float64), win=win,
                                 hop=hop))


def test_whole_track_of_float32_equals_its_float64_copy_and_the_reference():
    refs, ests = _pair(1, 4, 2, 3 * 8000 + 17)
    a = whole_track(refs, ests, win=8000)
    b = whole_track(refs.astype(np.float64), ests.astype(np.float64), win=8000)
    assert all(_same(a[k], b[k]) for k in a)
    np.testing.assert_allclose(a["SI-SDR"], si_sdr(refs, ests), rtol=0, atol=1e-9)
    perfect = whole_track(refs, refs.copy(), win=8000)["SI-SDR"]
    assert np.isposinf(perfect).all()  # alpha exactly 1: zero error


def test_dot_sums_in_float64_and_in_one_order():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 1001)).astype(np.float32)
    y = rng.standard_normal((3, 2, 1001)).astype(np.float32)
    xx, xy = np.empty(3), np.empty(3)
    K.dot_sums(x, y, xx, xy)
    x64, y64 = x.astype(np.float64).reshape(3, -1), y.astype(np.float64).reshape(3, -1)
    np.testing.assert_allclose(xx, (x64 * x64).sum(1), rtol=1e-13)
    np.testing.assert_allclose(xy, (x64 * y64).sum(1), rtol=1e-12)
    xx2, xy2 = np.empty(3), np.empty(3)
    K.dot_sums(x, x, xx2, xy2)
    assert _same(xx2, xy2) and _same(xx, xx2)
    K.dot_sums(x.astype(np.float64), y.astype(np.float64), xx2, xy2)
    assert _same(xx, xx2) and _same(xy, xy2)


def test_silence_rule_sums_channels_in_float64():
    """1 + 2^-30 - 1 is 0 in float32 arithmetic but not in museval's float64: a float32 stack
    is not called silent where its float64 copy is not (3 channels)."""
    x = np.zeros((1, 3, 10), np.float32)
    x[0, :, 4] = [1.0, 2.0 ** -30, -1.0]
    assert not silent_sources(x)[0] and not silent_sources(x.astype(np.float64))[0]
    s = np.zeros(1, np.bool_)
    e32, e32b = np.empty((1, 1)), np.empty((1, 1))
    K.frame_energies(x, x, np.array([0]), np.array([10]), e32, e32b, s)
    assert not s[0]


def test_stacks_stay_float32_only_when_asked_and_both_are():
    a = [np.zeros((2, 5), np.float32), np.ones((2, 5), np.float32)]
    assert as_stack(a, "references").dtype == np.float64  # the readable references' default
    assert as_stack(a, "references", keep_float32=True).dtype == np.float32
    mixed = [a[0], np.ones((2, 5), np.float64)]
    assert as_stack(mixed, "references", keep_float32=True).dtype == np.float64
    r = as_stack(a, "r", keep_float32=True)
    e = as_stack([x.astype(np.float64) for x in a[::-1]], "e", keep_float32=True)
    r2, e2 = check_pair(r, e, require_nonsilent=False)
    assert r2.dtype == e2.dtype == np.float64  # a float32 stack beside a float64 one


def test_scaled_error_sums_equal_the_scaled_copy_passes():
    """SI-SDR's |a s|^2 and |ŝ - a s|^2 in one pass: bit for bit the frame-energy sums over the
    whole track of the float64 scaled copy against the estimate (what it replaced)."""
    rng = np.random.default_rng(4)
    for dt in (np.float32, np.float64):
        x = rng.standard_normal((3, 2, 5003)).astype(dt)
        y = (0.5 * x + 0.1 * rng.standard_normal(x.shape)).astype(dt)
        alpha = rng.random(3) + 0.5
        tt, ee = np.empty(3), np.empty(3)
        K.scaled_error_sums(x, y, alpha, tt, ee)
        for j in range(3):
            t = np.multiply(x[j : j + 1], alpha[j], dtype=np.float64)
            s_e, d_e, sil = np.empty((1, 1)), np.empty((1, 1)), np.empty(1, np.bool_)
            K.frame_energies(t, y[j : j + 1].astype(np.float64), np.array([0]),
                             np.array([x.shape[-1]]), s_e, d_e, sil)
            assert s_e[0, 0] == tt[j] and d_e[0, 0] == ee[j]


def test_blas_table_loads_without_scipy_linalg():
    """``stemforge evaluate`` loads SciPy's BLAS table by itself (not scipy.linalg's package):
    the BLAS recursion (m = 8) then runs, and a later ``import scipy.linalg`` works and shares
    the module."""
    import subprocess
    import sys

    code = """
import sys
import numpy as np
from stemforge.metrics.kernels import load_blas_table
load_blas_table()
print("scipy.linalg" in sys.modules, "scipy.linalg.cython_blas" in sys.modules)
from stemforge.metrics import bss_eval_v4
rng = np.random.default_rng(0)
r = rng.standard_normal((4, 2, 3000)).astype(np.float32)
s = bss_eval_v4(r, r + np.float32(0.1) * rng.standard_normal(r.shape).astype(np.float32),
                win=1000, hop=1000, filters_len=32)
print(bool(np.isfinite(s.sdr).all()))
import scipy.linalg
from scipy.linalg import cython_blas
print(cython_blas is sys.modules["scipy.linalg.cython_blas"],
      float(scipy.linalg.solve(2 * np.eye(2), np.ones(2))[0]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.split() == ["False", "True", "True", "True", "0.5"], out.stderr


def test_blas_table_that_does_not_load_by_itself_is_reported(monkeypatch):
    """If SciPy's BLAS module cannot be loaded on its own, a warning names the file and nothing
    is registered (the kernel's own import through scipy.linalg then applies)."""
    import importlib.util
    import sys

    from stemforge.errors import StemforgeWarning
    from stemforge.metrics import kernels as km

    class Refuses:
        def create_module(self, spec):
            return None

        def exec_module(self, module):
            raise ImportError("needs its package")

    real = importlib.util.spec_from_file_location

    def spec_for(name, path, *a, **k):
        spec = real(name, path, *a, **k)
        spec.loader = Refuses()
        return spec

    monkeypatch.delitem(sys.modules, km.BLAS_TABLE, raising=False)
    monkeypatch.setattr(km.importlib.util, "spec_from_file_location", spec_for)
    with pytest.warns(StemforgeWarning, match="cython_blas.*does not load by itself"):
        km.load_blas_table()
    assert km.BLAS_TABLE not in sys.modules
