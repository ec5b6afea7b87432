"""BSS Eval v4: frame-by-frame agreement with museval 0.4.1 (0.01 dB, NaN in the same places)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

import museval

from stemforge.metrics import MetricsError, bss_eval_v4, bss_eval_v4_sdr, frame_count, mdx_sdr, si_sdr
from stemforge.metrics import toeplitz

TOL = 0.01  # dB


@pytest.fixture(scope="module")
def real_excerpt():
    """The 6 s MUSDB18 excerpt shipped with stempeg: mixture (2, N) and {stem: (2, N)}."""
    import stempeg
    from stemforge.audio.io import read_streams

    streams = read_streams(stempeg.example_stem_path(), expected=5)
    n = min(a.shape[1] for a in streams)
    names = ["drums", "bass", "other", "vocals"]
    return streams[0][:, :n], {k: a[:, :n] for k, a in zip(names, streams[1:], strict=True)}


def _museval(refs, ests):
    """museval in its own layout (nsrc, frames, channels)."""
    return museval.evaluate(refs.transpose(0, 2, 1), ests.transpose(0, 2, 1), win=44100, hop=44100)


def _assert_agree(ours, ref):
    for name, a, b in zip(("SDR", "ISR", "SIR", "SAR"), (ours.sdr, ours.isr, ours.sir, ours.sar), ref, strict=True):
        assert a.shape == b.shape, name
        assert np.array_equal(np.isnan(a), np.isnan(b)), f"{name}: NaN pattern differs"
        ok = ~np.isnan(a)
        assert np.max(np.abs(a[ok] - b[ok]), initial=0.0) < TOL, f"{name}: {np.abs(a[ok] - b[ok]).max()}"


def _sources(rng, nsrc, seconds, nch=2, sr=44100):
    n = int(seconds * sr)
    refs = rng.standard_normal((nsrc, nch, n))
    for j in range(nsrc):  # give each source its own colour and some inter-channel correlation
        refs[j] = lfilter([1.0], [1.0, -0.3 - 0.15 * j], refs[j], axis=-1)
        refs[j, 1] = 0.6 * refs[j, 1] + 0.4 * refs[j, 0]
    return refs


def _estimates(rng, refs):
    mix = refs.sum(0)
    ests = 0.8 * refs + 0.15 * mix[None] + 0.05 * rng.standard_normal(refs.shape)
    return lfilter([1.0, 0.2], [1.0], ests, axis=-1)  # a little linear distortion


@pytest.mark.parametrize("nsrc", [2, 3, 5])
def test_matches_museval_synthetic(nsrc):
    rng = np.random.default_rng(nsrc)
    refs = _sources(rng, nsrc, 3.4)
    ests = _estimates(rng, refs)
    ours = bss_eval_v4(refs, ests)
    assert ours.sdr.shape == (nsrc, frame_count(refs.shape[-1], 44100, 44100)) == (nsrc, 3)
    _assert_agree(ours, _museval(refs, ests))


def test_silent_frames_are_nan_for_every_source():
    rng = np.random.default_rng(7)
    refs = _sources(rng, 3, 4.2)
    ests = _estimates(rng, refs)
    refs[1, :, 44100:88200] = 0.0  # reference silent in frame 1
    ests[2, :, 3 * 44100 :] = 0.0  # estimate silent in frame 3 (and the dropped tail)
    ours = bss_eval_v4(refs, ests)
    assert np.isnan(ours.sdr[:, 1]).all() and np.isnan(ours.sar[:, 3]).all()
    assert not np.isnan(ours.sir[:, [0, 2]]).any()
    _assert_agree(ours, _museval(refs, ests))


def test_sdr_only_equals_the_full_evaluation_and_museval():
    """bss_eval_v4_sdr skips the distortion filters: same SDR (bit for bit), NaN pattern,
    padding and errors as bss_eval_v4, and museval's SDR within TOL."""
    rng = np.random.default_rng(5)
    refs = _sources(rng, 3, 4.2)
    ests = _estimates(rng, refs)
    refs[1, :, 44100:88200] = 0.0
    full = bss_eval_v4(refs, ests[:, :, :-1000])
    sdr = bss_eval_v4_sdr(refs, ests[:, :, :-1000])
    assert sdr.shape == full.sdr.shape == (3, 4) and np.isnan(sdr[:, 1]).all()
    np.testing.assert_array_equal(sdr, full.sdr)
    ref = _museval(refs, ests[:, :, :-1000])[0]
    ok = ~np.isnan(sdr)
    assert np.array_equal(ok, ~np.isnan(ref)) and np.abs(sdr[ok] - ref[ok]).max() < TOL
    refs[2] = 0.0
    with pytest.raises(MetricsError, match="silent"):
        bss_eval_v4_sdr(refs, ests)


@pytest.mark.parametrize("delta", [-30000, 25000])
def test_estimates_of_other_length_are_padded_or_trimmed(delta):
    rng = np.random.default_rng(11)
    refs = _sources(rng, 2, 3.1)
    n = refs.shape[-1]
    ests = _estimates(rng, _sources(rng, 2, (n + delta) / 44100))  # any signal of other length
    ests = 0.5 * ests + 0.5 * np.pad(refs, ((0, 0), (0, 0), (0, max(delta, 0))))[..., : n + delta]
    ours = bss_eval_v4(refs, ests)
    _assert_agree(ours, _museval(refs, ests))
    with pytest.raises(MetricsError, match="estimates have .* frames, references"):
        bss_eval_v4(refs, ests, padding=False)


def test_levinson_path_equals_dense_solve():
    rng = np.random.default_rng(3)
    refs = _sources(rng, 3, 2.2)
    ests = _estimates(rng, refs)
    a, b = bss_eval_v4(refs, ests), bss_eval_v4(refs, ests, solver="dense")
    for x, y in zip((a.isr, a.sir, a.sar), (b.isr, b.sir, b.sar), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)


@pytest.mark.parametrize("n,block", [(5000, 1234), (5000, 7), (5000, 5000), (5, 1234), (4999, 1000)])
def test_correlations_match_direct_sums(n, block):
    """Every lag, every pair, against np.correlate; chunk boundaries included (block >= L - 1)."""
    rng = np.random.default_rng(5)
    x, y, L = rng.standard_normal((3, n)), rng.standard_normal((2, n)), 8
    R, D, _, _ = toeplitz.correlations(x, y, L, block=block)
    assert R.shape == (2 * L - 1, 3, 3) and D.shape == (L, 3, 2)
    for p in range(3):
        for r in range(3):
            full = np.correlate(x[r], x[p], mode="full")  # index n - 1 + k: sum x_p[i] x_r[i + k]
            want = [full[n - 1 + k] if abs(k) < n else 0.0 for k in range(-(L - 1), L)]
            np.testing.assert_allclose(R[:, p, r], want, atol=1e-9)
        for c in range(2):
            full = np.correlate(y[c], x[p], mode="full")
            want = [full[n - 1 + k] if k < n else 0.0 for k in range(L)]
            np.testing.assert_allclose(D[:, p, c], want, atol=1e-9)
    if n > 6:  # several chunks shorter than the filters would miss boundary pairs: refused
        with pytest.raises(ValueError, match="block 6 must be >= filters_len - 1"):
            toeplitz.correlations(x, y, L, block=6)


def plain_v4(refs, ests, win, hop, L):
    """BSS Eval v4 images written out plainly (museval's algorithm, dense, no FFT tricks):
    delayed-reference matrix, normal equations solved once per estimate, per-frame np.convolve."""
    nsrc, nch, n = refs.shape
    m = nsrc * nch
    x = refs.reshape(m, n)
    A = np.zeros((n + L - 1, m * L))  # column i*L + l: reference channel i delayed by l
    for i in range(m):
        for lag in range(L):
            A[lag : lag + n, i * L + lag] = x[i]
    eps = np.finfo(float).eps
    nwin = int(np.floor((n - win + hop) / hop)) if win < n else 1
    bounds = [(t * hop, min(t * hop + win, n)) for t in range(nwin)] if win < n else [(0, n)]
    out = np.zeros((4, nsrc, nwin))
    for j in range(nsrc):
        yp = np.vstack([ests[j].T, np.zeros((L - 1, nch))])  # (n + L - 1, nch)
        own = np.arange(j * nch * L, (j + 1) * nch * L)
        C = np.linalg.solve(A.T @ A + eps * np.eye(m * L), A.T @ yp).reshape(m, L, nch)
        Aj = A[:, own]
        Cj = np.linalg.solve(Aj.T @ Aj + eps * np.eye(len(own)), Aj.T @ yp).reshape(nch, L, nch)
        for t, (a, b) in enumerate(bounds):
            def proj(chans, filt):
                return np.array([sum(np.convolve(x[i, a:b], filt[k, :, c]) for k, i in enumerate(chans))
                                 for c in range(nch)])
            p_all = proj(range(m), C)
            p_own = proj(range(j * nch, (j + 1) * nch), Cj)
            s = np.pad(refs[j, :, a:b], ((0, 0), (0, L - 1)))
            e = np.pad(ests[j, :, a:b], ((0, 0), (0, L - 1)))
            silent = any(not refs[k, :, a:b].sum(0).any() or not ests[k, :, a:b].sum(0).any()
                         for k in range(nsrc))
            vals = [(s, e - s), (s, p_own - s), (p_own, p_all - p_own), (p_all, e - p_all)]
            out[:, j, t] = [np.nan if silent else 10 * np.log10(np.sum(u**2) / np.sum(v**2))
                            for u, v in vals]
    return out  # SDR, ISR, SIR, SAR


@pytest.mark.parametrize("win,hop,block,threads", [
    (1000, 1000, None, 1),  # frames = correlation chunks (spectra reused)
    (1000, 1000, None, 2),  # the same, chunks and frames split over 2 threads
    (1000, 400, 700, 1),  # overlapping frames; several correlation chunks with boundary pairs
    (1000, 400, 700, 2),
    (10, 10, None, 1),  # frames shorter than the filters
    (5000, 5000, None, 1),  # one frame over the whole signal
])
def test_matches_plain_dense_implementation(monkeypatch, win, hop, block, threads):
    """Every framing path against an independent dense implementation (cheap: L = 16)."""
    from stemforge.metrics import bsseval

    if block:
        monkeypatch.setattr(toeplitz, "BLOCK", block)
    if threads > 1:  # one chunk / frame per work item, so that the threads share the work
        monkeypatch.setattr(toeplitz, "STEP_ELEMS", 1)
        monkeypatch.setattr(bsseval, "GROUP_ELEMS", 1)
    rng = np.random.default_rng(win + hop)
    refs = _sources(rng, 3, 3100 / 44100, nch=2)
    ests = _estimates(rng, refs)
    refs[2, :, 1200:1500] = 0.0  # a silent stretch: frames touching it are NaN
    ours = bss_eval_v4(refs, ests, win=win, hop=hop, filters_len=16, threads=threads)
    want = plain_v4(refs, ests, win, hop, 16)
    for name, a, b in zip(("SDR", "ISR", "SIR", "SAR"), (ours.sdr, ours.isr, ours.sir, ours.sar), want, strict=True):
        assert a.shape == b.shape, name
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], atol=1e-6, err_msg=name)


def test_real_excerpt_with_oracle_estimates_matches_museval(real_excerpt):
    from stemforge.metrics.oracles import irm

    mix, src = real_excerpt
    refs = np.stack(list(src.values()))
    est = irm(mix, src, alpha=2.0)
    ests = np.stack([est[k] for k in src])
    _assert_agree(bss_eval_v4(refs, ests), _museval(refs, ests))


def test_bad_input_messages():
    rng = np.random.default_rng(0)
    refs = _sources(rng, 2, 1.5)
    with pytest.raises(MetricsError, match="estimates have 1 channels, references have 2"):
        bss_eval_v4(refs, refs[:, :1])
    with pytest.raises(MetricsError, match="2 reference sources but 1 estimates"):
        bss_eval_v4(refs, refs[:1])
    silent = refs.copy()
    silent[1] = 0
    with pytest.raises(MetricsError, match="reference bass is silent over the whole track"):
        bss_eval_v4(silent, refs, names=["drums", "bass"])
    with pytest.raises(MetricsError, match="estimate source 1 is silent"):
        bss_eval_v4(refs, silent)
    with pytest.raises(MetricsError, match=r"expected \(channels, frames\) audio"):
        bss_eval_v4([refs[0, 0], refs[1, 0]], refs)
    bad = refs.copy()
    bad[0, 0, 5] = np.nan
    with pytest.raises(MetricsError, match="NaN/inf"):
        bss_eval_v4(refs, bad)


def test_sisdr_and_mdx_definitions():
    rng = np.random.default_rng(2)
    s = rng.standard_normal((2, 2, 20000))
    e = 0.5 * s + 0.1 * rng.standard_normal(s.shape)
    a = np.sum(e[0] * s[0]) / np.sum(s[0] ** 2)
    want = 10 * np.log10(np.sum((a * s[0]) ** 2) / np.sum((a * s[0] - e[0]) ** 2))
    assert si_sdr(s, e)[0] == pytest.approx(want, abs=1e-9)
    assert si_sdr(s, 3.0 * e)[0] == pytest.approx(want, abs=1e-9)  # scale-invariant
    mdx = 10 * np.log10((np.sum(s[1] ** 2) + 1e-7) / (np.sum((s[1] - e[1]) ** 2) + 1e-7))
    assert mdx_sdr(s, e)[1] == pytest.approx(mdx, abs=1e-9)
    z = np.zeros_like(s)
    assert np.all(mdx_sdr(z, z) == 0.0)  # MDX's delta makes silence a 0 dB score
