"""The doctor's time-frequency front end: one short-time spectrum per source, on a grid that does
not depend on the sample rate.

Sources are first averaged over channels and decimated by ``decimation(sr)`` (mean of ``q``
consecutive samples: 44.1/48 kHz -> 22.05/24 kHz), which halves the FFT work; the frequencies
the doctor reads (up to 6 kHz for fingerprints and labels, 11 kHz for bleed) stay well inside the
decimated band. Frames are ``FPS`` (50) per second: frame ``i`` starts at sample
``round(i * rate / FPS)``, so a track and a resampled copy of it (44.1, 48, 22.05 kHz ...) are cut
at the same instants. The window is ``WINDOW`` seconds long (1024 samples at 22.05 kHz, Hann)
and the FFT length the next fast length, so bins are ~21.5 Hz wide at every rate. :func:`grid_matrix` interpolates a
power spectrum onto ``GRID_HZ``, fixed frequencies in Hz, which is what the fingerprint and the
label rules read; the bleed estimate uses the complex spectra of one track (one rate) directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from ..types import Hz, Seconds

FPS = 50                                   # frames per second
WINDOW: Seconds = 1024 / 22050             # analysis window length (46 ms)
GRID_STEP = 44100 / 1024                   # Hz between grid frequencies (one 44.1 kHz bin)
GRID_HZ = GRID_STEP * np.arange(4, 140)    # 172 Hz .. 6 kHz: 136 grid frequencies


@dataclass(frozen=True)
class FramePlan:
    """Framing of one sample rate: window length, FFT length, Hann window (float32)."""

    sample_rate: Hz
    win: int
    nfft: int
    window: np.ndarray

    @property
    def bin_hz(self) -> float:
        return self.sample_rate / self.nfft

    def n_frames(self, frames: int) -> int:
        """Frames whose window fits inside ``frames`` samples."""
        if frames < self.win:
            return 0
        return int(np.floor((frames - self.win) * FPS / self.sample_rate)) + 1

    def starts(self, n: int) -> np.ndarray:
        """Start sample of frames ``0..n-1``: ``round(i * sr / FPS)`` (int64 ``(n,)``)."""
        return np.round(np.arange(n) * (self.sample_rate / FPS)).astype(np.int64)


def decimation(sample_rate: Hz) -> int:
    """Largest ``q <= sample_rate // 20000`` dividing ``sample_rate`` (1 for rates below
    40 kHz): sources are analysed at ``sample_rate / q``."""
    q = max(1, int(sample_rate) // 20000)
    while int(sample_rate) % q:
        q -= 1
    return q


@lru_cache(maxsize=16)
def plan(sample_rate: Hz) -> FramePlan:
    win = max(16, int(round(WINDOW * sample_rate)))
    nfft = scipy.fft.next_fast_len(win, real=True)
    return FramePlan(int(sample_rate), win, nfft, np.hanning(win).astype(np.float32))


def frame_times(n: int) -> np.ndarray:
    """Start time (s) of frames ``0..n-1``."""
    return np.arange(n) / FPS


def stft(x: np.ndarray, sample_rate: Hz) -> np.ndarray:
    """Short-time spectrum of mono ``x`` (float32 ``(T,)``): complex64 ``(F, nfft // 2 + 1)``."""
    return stft_many(x[None], sample_rate)[0]


def stft_many(x: np.ndarray, sample_rate: Hz) -> np.ndarray:
    """Short-time spectra of the rows of ``x`` (float32 ``(K, T)``, e.g. every stem of a track):
    complex64 ``(K, F, nfft // 2 + 1)``, row ``k`` equal to ``stft(x[k])``. One array, so that
    a selection of rows and bins is a view, not a copy."""
    p = plan(sample_rate)
    K, T = x.shape
    n = p.n_frames(T)
    if n == 0:
        return np.zeros((K, 0, p.nfft // 2 + 1), np.complex64)
    frames = np.empty((K, n, p.win), np.float32)
    hop = sample_rate / FPS
    if float(hop).is_integer() and p.win <= T:
        # every start is i * hop: a strided view, no gather
        for k in range(K):
            view = np.lib.stride_tricks.sliding_window_view(x[k], p.win)[:: int(hop)][:n]
            np.multiply(view, p.window, out=frames[k])
    else:
        idx = p.starts(n)[:, None] + np.arange(p.win)
        for k in range(K):
            np.multiply(x[k][idx], p.window, out=frames[k])
    return scipy.fft.rfft(frames, n=p.nfft, axis=2, workers=1).astype(np.complex64, copy=False)


@lru_cache(maxsize=16)
def grid_matrix(sample_rate: Hz):
    """``(lo, hi, M)``: for a power spectrum ``P`` at ``sample_rate``, ``P[:, lo:hi] @ M`` is its
    power in triangular bands centred on ``GRID_HZ``, each reaching to the next grid frequency
    (the same bands in Hz at every rate; grid points above Nyquist get zeros). ``M`` is a
    ``scipy.sparse`` CSR matrix ``(hi - lo, len(GRID_HZ))``, float32."""
    import scipy.sparse

    p = plan(sample_rate)
    nbins = p.nfft // 2 + 1
    f = np.arange(nbins) * p.bin_hz
    w = 1.0 - np.abs(f[:, None] - GRID_HZ[None, :]) / GRID_STEP
    w[:, GRID_HZ >= sample_rate / 2 - GRID_STEP] = 0.0
    # normalised by the bin width so that band powers do not depend on the FFT length
    w = np.maximum(w, 0.0) * (p.bin_hz / GRID_STEP)
    used = np.flatnonzero(w.any(axis=1))
    lo, hi = int(used[0]), int(used[-1]) + 1
    return lo, hi, scipy.sparse.csr_matrix(w[lo:hi].astype(np.float32))


def power_reference(spec: np.ndarray, bins: int) -> np.ndarray:
    """NumPy definition of :func:`power`."""
    s = spec[:, :bins]
    return (s.real * s.real + s.imag * s.imag).astype(np.float32)


def power(spec: np.ndarray, bins: int) -> np.ndarray:
    """``|spec|²`` of the first ``bins`` bins: float32 ``(F, bins)`` (compiled; the same
    values as :func:`power_reference`)."""
    from ._kernels import power_bins

    out = np.empty((spec.shape[0], min(bins, spec.shape[1])), np.float32)
    power_bins(spec, out)
    return out


def grid_power(pw: np.ndarray, sample_rate: Hz) -> np.ndarray:
    """Power ``pw`` (``(F, bins)``, at least up to 6 kHz) in the grid bands: float32
    ``(F, len(GRID_HZ))``."""
    lo, hi, m = grid_matrix(sample_rate)
    if pw.shape[1] < hi:
        raise ValueError(f"grid_power: needs {hi} bins, got {pw.shape[1]}")
    return np.asarray((m.T @ pw[:, lo:hi].T).T, dtype=np.float32)


def grid_bins(sample_rate: Hz) -> int:
    """Bins :func:`grid_power` needs at ``sample_rate``."""
    return grid_matrix(sample_rate)[1]
