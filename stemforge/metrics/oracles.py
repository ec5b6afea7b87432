"""Oracle separations (upper bounds / data sanity checks), as sigsep-mus-oracle defines them.

All use ``scipy.signal.stft`` with ``nperseg=2048`` (Hann window, 50 % overlap, default
boundary padding) on the *mixture* and the true sources, then ``istft`` cut to the mixture length.

* ``irm1`` / ``irm2``: ideal ratio mask ``|S_j|^a / (eps + Σ_k |S_k|^a)`` with ``a`` = 1 / 2,
  per channel, applied to the mixture STFT.
* ``ibm``: ideal binary mask, ``|S_j|^a / (eps + |X|^a) >= theta`` (a = 1, theta = 0.5).
* ``mwf``: multichannel Wiener filter with time-invariant spatial covariance per source
  (local Gaussian model), 2x2 explicit inverses. Note: sigsep-mus-oracle normalises the spatial
  covariance with ``np.trace`` of the ``(F, I, I)`` array, which sums over the frequency and first
  channel axes (a quirk of that code); we reproduce it so numbers match the published oracle.

Inputs: mixture ``(channels, frames)``, sources as ``{name: (channels, frames)}``. Outputs
``{name: (channels, frames)}`` float32 with the mixture's frame count.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .validate import MetricsError

NFFT = 2048
EPS = np.finfo(float).eps
METHODS = ("ibm", "irm1", "irm2", "mwf")


def _stft(x: np.ndarray) -> np.ndarray:
    from scipy.signal import stft  # lazy: scipy.signal costs ~0.5 s to import, and scoring
    # (which imports this package) never needs it
    return stft(np.asarray(x, np.float64), nperseg=NFFT)[-1]  # (C, F, T)


def _istft(Y: np.ndarray, n: int) -> np.ndarray:
    from scipy.signal import istft
    return istft(Y)[1][..., :n].astype(np.float32)


def _check(mixture: np.ndarray, sources: Mapping[str, np.ndarray]) -> None:
    if mixture.ndim != 2:
        raise MetricsError(f"mixture: expected (channels, frames) audio, got shape {mixture.shape}")
    if not sources:
        raise MetricsError("oracle needs at least one true source")
    for name, s in sources.items():
        if s.shape != mixture.shape:
            raise MetricsError(
                f"source '{name}': shape {s.shape} differs from the mixture {mixture.shape}; "
                "expected (channels, frames) of the same size"
            )


def irm(mixture: np.ndarray, sources: Mapping[str, np.ndarray], alpha: float = 2.0) -> dict[str, np.ndarray]:
    """Ideal ratio mask with spectrogram exponent ``alpha`` (1: magnitude, 2: power)."""
    _check(mixture, sources)
    n = mixture.shape[-1]
    X = _stft(mixture)
    P = {name: np.abs(_stft(s)) ** alpha for name, s in sources.items()}
    model = EPS + sum(P.values())
    return {name: _istft(X * (p / model), n) for name, p in P.items()}


def ibm(
    mixture: np.ndarray, sources: Mapping[str, np.ndarray], alpha: float = 1.0, theta: float = 0.5
) -> dict[str, np.ndarray]:
    """Ideal binary mask: a bin goes to a source when ``|S|^a / (eps + |X|^a) >= theta``."""
    _check(mixture, sources)
    n = mixture.shape[-1]
    X = _stft(mixture)
    ax = EPS + np.abs(X) ** alpha
    return {
        name: _istft(X * ((np.abs(_stft(s)) ** alpha / ax) >= theta), n) for name, s in sources.items()
    }


def _invert(M: np.ndarray) -> np.ndarray:
    """Inverse of (..., I, I) matrices, I <= 2, by the explicit formula with eps (sigsep's ``invert``)."""
    if M.shape[-1] == 1:
        return 1.0 / (EPS + M)
    det = EPS + M[..., 0, 0] * M[..., 1, 1] - M[..., 0, 1] * M[..., 1, 0]
    inv = np.empty(M.shape, np.complex128)
    inv[..., 0, 0] = M[..., 1, 1] / det
    inv[..., 1, 0] = -M[..., 1, 0] / det
    inv[..., 0, 1] = -M[..., 0, 1] / det
    inv[..., 1, 1] = M[..., 0, 0] / det
    return inv


def mwf(mixture: np.ndarray, sources: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Multichannel Wiener filter, time-invariant spatial covariance (mono or stereo)."""
    _check(mixture, sources)
    n, nch = mixture.shape[-1], mixture.shape[0]
    if nch > 2:
        raise MetricsError(f"mwf oracle supports mono or stereo, mixture has {nch} channels")
    X = _stft(mixture)  # (I, F, T)
    I, F, _ = X.shape
    P, R = {}, {}
    for name, s in sources.items():
        Y = _stft(s)
        Rjj = np.einsum("aft,bft->ftab", Y, np.conj(Y))  # (F, T, I, I)
        p = np.mean(np.abs(Y) ** 2, axis=0)  # (F, T)
        r = np.mean(Rjj / (EPS + p[..., None, None]), axis=1)  # (F, I, I)
        r = r * I / np.trace(r) + EPS * np.eye(I)[None]  # np.trace quirk kept (see module doc)
        r_inv = _invert(r)
        P[name] = np.real(np.einsum("fab,ftba->ft", r_inv, Rjj)) / I
        R[name] = r
    cxx = sum(P[k][..., None, None] * R[k][:, None] for k in sources)
    inv_cxx = _invert(cxx)
    out = {}
    for name in sources:
        gain = (P[name][..., None, None] * R[name][:, None]) @ inv_cxx  # (F, T, I, I)
        Yj = np.einsum("ftab,bft->aft", gain, X)
        out[name] = _istft(Yj, n)
    return out


def oracle(method: str, mixture: np.ndarray, sources: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Dispatch by name: ``ibm``, ``irm1``, ``irm2`` or ``mwf``."""
    method = method.lower()
    if method == "irm1":
        return irm(mixture, sources, alpha=1.0)
    if method == "irm2":
        return irm(mixture, sources, alpha=2.0)
    if method == "ibm":
        return ibm(mixture, sources)
    if method == "mwf":
        return mwf(mixture, sources)
    raise MetricsError(f"unknown oracle method '{method}'; expected one of {', '.join(METHODS)}")
