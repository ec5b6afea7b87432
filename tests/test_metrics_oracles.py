"""Oracles: ordering on the real excerpt, and agreement with plain loop implementations."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import istft, stft

from stemforge.metrics import MetricsError, bss_eval_v4
from stemforge.metrics.oracles import oracle

EPS = np.finfo(float).eps
NAMES = ["drums", "bass", "other", "vocals"]


@pytest.fixture(scope="module")
def excerpt():
    import stempeg
    from stemforge.audio.io import read_streams

    streams = read_streams(stempeg.example_stem_path(), expected=5)
    n = min(a.shape[1] for a in streams)
    return streams[0][:, :n].astype(np.float64), {k: a[:, :n].astype(np.float64) for k, a in zip(NAMES, streams[1:], strict=True)}


def _spec(x):
    return stft(x, nperseg=2048)[-1]


def _back(Y, n):
    return istft(Y)[1][:n]


def plain_mask_oracle(mix, src, kind, alpha):
    """Channel by channel, bin by bin: the textbook IRM / IBM."""
    out = {k: np.zeros_like(mix) for k in src}
    n = mix.shape[1]
    for c in range(mix.shape[0]):
        X = _spec(mix[c])
        S = {k: _spec(v[c]) for k, v in src.items()}
        for k in src:
            M = np.zeros(X.shape)
            for f in range(X.shape[0]):
                for t in range(X.shape[1]):
                    if kind == "irm":
                        total = EPS + sum(abs(S[o][f, t]) ** alpha for o in src)
                        M[f, t] = abs(S[k][f, t]) ** alpha / total
                    else:
                        M[f, t] = 1.0 if abs(S[k][f, t]) ** alpha / (EPS + abs(X[f, t]) ** alpha) >= 0.5 else 0.0
            out[k][c] = _back(X * M, n)
    return out


def plain_mwf(mix, src):
    """Frequency by frequency with explicit 2x2 matrices (sigsep-mus-oracle's model)."""
    X = np.stack([_spec(c) for c in mix])  # (I, F, T)
    I, F, T = X.shape
    Y = {k: np.stack([_spec(c) for c in v]) for k, v in src.items()}
    eye = np.eye(I)
    R, P = {}, {}
    for k, Yk in Y.items():
        p0 = np.mean(np.abs(Yk) ** 2, axis=0)
        Rk = np.zeros((F, I, I), complex)
        for f in range(F):
            acc = np.zeros((I, I), complex)
            for t in range(T):
                v = Yk[:, f, t]
                acc += np.outer(v, v.conj()) / (EPS + p0[f, t])
            Rk[f] = acc / T
        col = Rk[0, 0, :] + Rk[1, 1, :]  # np.trace over (F, I) axes, as the original
        Rk = Rk * I / col + EPS * eye
        Pk = np.zeros((F, T))
        for f in range(F):
            a, b, c, d = Rk[f, 0, 0], Rk[f, 0, 1], Rk[f, 1, 0], Rk[f, 1, 1]
            inv = np.array([[d, -b], [-c, a]]) / (EPS + a * d - b * c)
            for t in range(T):
                v = Yk[:, f, t]
                Pk[f, t] = np.real(np.trace(inv @ np.outer(v, v.conj()))) / I
        R[k], P[k] = Rk, Pk
    out = {}
    for k in src:
        Z = np.zeros_like(X)
        for f in range(F):
            for t in range(T):
                C = sum(P[o][f, t] * R[o][f] for o in src)
                a, b, c, d = C[0, 0], C[0, 1], C[1, 0], C[1, 1]
                Cinv = np.array([[d, -b], [-c, a]]) / (EPS + a * d - b * c)
                Z[:, f, t] = P[k][f, t] * R[k][f] @ Cinv @ X[:, f, t]
        out[k] = np.stack([_back(z, mix.shape[1]) for z in Z])
    return out


def _short(mix, src, frames=12000):
    return mix[:, :frames], {k: v[:, :frames] for k, v in src.items()}


@pytest.mark.parametrize("method,kind,alpha", [("irm1", "irm", 1), ("irm2", "irm", 2), ("ibm", "ibm", 1)])
def test_mask_oracles_match_plain_loops(excerpt, method, kind, alpha):
    mix, src = _short(*excerpt, frames=6000)
    ours = oracle(method, mix, src)
    plain = plain_mask_oracle(mix, src, kind, alpha)
    for k in src:
        np.testing.assert_allclose(ours[k], plain[k], atol=1e-6)


def test_mwf_matches_plain_loops(excerpt):
    mix, src = _short(*excerpt, frames=8000)
    ours = oracle("mwf", mix, src)
    plain = plain_mwf(mix, src)
    for k in src:
        np.testing.assert_allclose(ours[k], plain[k], atol=1e-6)


def test_oracle_ordering_on_real_excerpt(excerpt):
    mix, src = excerpt
    refs = np.stack([src[k] for k in NAMES])

    def median_sdr(est):
        return np.nanmedian(bss_eval_v4(refs, np.stack([est[k] for k in NAMES])).sdr)

    irm2 = median_sdr(oracle("irm2", mix, src))
    irm1 = median_sdr(oracle("irm1", mix, src))
    mixture = median_sdr({k: mix for k in NAMES})
    mwf = median_sdr(oracle("mwf", mix, src))
    assert irm2 >= irm1 >= mixture
    assert mwf > mixture + 5


def test_oracle_errors():
    mix = np.ones((2, 100))
    with pytest.raises(MetricsError, match="unknown oracle method 'foo'"):
        oracle("foo", mix, {"a": mix})
    with pytest.raises(MetricsError, match="source 'a': shape \\(1, 100\\) differs from the mixture"):
        oracle("irm2", mix, {"a": mix[:1]})
    with pytest.raises(MetricsError, match="mwf oracle supports mono or stereo"):
        oracle("mwf", np.ones((3, 100)), {"a": np.ones((3, 100))})
