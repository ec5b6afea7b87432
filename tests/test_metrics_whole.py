"""The fast whole-track metrics (``stemforge.metrics.whole``) against their references
(``si_sdr``, ``mdx_sdr``, ``csdr``): the same values up to summation order (1e-9 dB), on music-
like signals with silences, perfect and silent estimates, padding, odd lengths and hops."""
from __future__ import annotations

import numpy as np
import pytest

from stemforge.metrics import csdr, mdx_sdr, si_sdr
from stemforge.metrics.validate import MetricsError
from stemforge.metrics.whole import NAMES, whole_track

SR = 8000


def _song(n, seed, nsrc=4, channels=2):
    """Sustained tones with note gaps (exact digital silence), one source silent at the start."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    refs = np.zeros((nsrc, channels, n))
    for j in range(nsrc):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        tone = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
        gate = (np.floor(t * (1 + j)) % 3 != 1).astype(float)  # rests of a third of the time
        for c in range(channels):
            refs[j, c] = 0.3 * tone * gate * (0.6 + 0.4 * c)
    refs[0, :, : SR] = 0.0  # a second of digital silence: its chunk is skipped by cSDR
    ests = 0.85 * refs + 0.1 * refs.sum(0)[None] + 0.01 * rng.standard_normal(refs.shape)
    return refs, ests


def _references(refs, ests, win, hop):
    return {"SI-SDR": si_sdr(refs, ests), "MDX-SDR": mdx_sdr(refs, ests),
            "cSDR": csdr(refs, ests, win=win, hop=hop)}


@pytest.mark.parametrize("n,win,hop,seed", [(5 * SR + 37, SR, SR, 0), (3 * SR + 5, SR, SR // 2, 1),
                                            (SR // 2, SR, SR, 2), (4 * SR, SR, SR, 3)])
def test_equals_the_references(n, win, hop, seed):
    refs, ests = _song(n, seed)
    got = whole_track(refs, ests, win=win, hop=hop)
    want = _references(refs, ests, win, hop)
    assert list(got) == list(NAMES)
    for name in NAMES:
        assert got[name].shape == (4,)
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-9, err_msg=name)


def test_edge_cases_match_the_references():
    """A perfect estimate (SI-SDR +inf), a silent reference (SI-SDR and cSDR NaN, MDX finite),
    a silent estimate, and estimates of another length (zero-padded / trimmed)."""
    refs, ests = _song(3 * SR, 4)
    ests[1] = refs[1]          # perfect
    refs[2] = 0.0              # silent reference
    ests[3] = 0.0              # silent estimate
    for e in (ests, ests[..., : -100], np.concatenate([ests, ests[..., :50]], -1)):
        got = whole_track(refs, e, win=SR)
        want = _references(refs, e, SR, SR)
        for name in NAMES:
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-9, err_msg=name)
    got = whole_track(refs, ests, win=SR)
    assert got["SI-SDR"][1] == np.inf and np.isnan(got["SI-SDR"][2]) and np.isnan(got["cSDR"][2])
    assert np.isfinite(got["MDX-SDR"]).all()


def test_subset_and_float32_inputs():
    refs, ests = _song(2 * SR + 3, 5)
    r32, e32 = refs.astype(np.float32), ests.astype(np.float32)
    got = whole_track(list(r32), list(e32), win=SR, which=["cSDR"])
    assert list(got) == ["cSDR"]
    np.testing.assert_allclose(got["cSDR"], csdr(r32, e32, win=SR), rtol=0, atol=1e-9)


def test_bad_input_is_the_references_error():
    refs, ests = _song(SR, 6)
    ests[2, 0, 10] = np.nan
    with pytest.raises(MetricsError, match="estimate bass: NaN/inf samples"):
        whole_track(refs, ests, names=["drums", "other", "bass", "vocals"])
    with pytest.raises(MetricsError, match="estimates have 1 channels, references have 2"):
        whole_track(refs, ests[:, :1])
    with pytest.raises(ValueError, match="unknown whole-track metric"):
        whole_track(refs, refs, which=["SDR"])
