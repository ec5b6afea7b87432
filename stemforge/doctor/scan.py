"""One pass over a source's samples: per-block statistics and the decimated signal.

:func:`scan` reads a source's samples once, as the audio file stores them: frames-major
``(T, C)``, int16 or int32 PCM (as read from a 16- or 24-bit file, no conversion) or float32,
with ``scale`` mapping them to full scale 1.0. It returns, per channel and per block of
``block`` frames (the last one may be shorter), the sum of squares and the largest and smallest
sample, plus every channel decimated by ``q``: for ``q = 2`` the 7-tap half-band filter
``HALFBAND`` (passband flat to ~0.3 of the output rate, -24 dB at 0.75 of it and falling, so
high frequencies do not alias into the band the doctor reads), then every other sample; for
other ``q`` the mean of ``q`` consecutive samples. Output sample ``i`` is centred on input
frame ``i * q``; a trailing remainder is dropped. Everything the doctor asks of one source's
samples (silence, dropouts, DC offset, clipping candidates, the decimated signals for the
spectra and the mixture relation) comes from these.

:func:`scan_reference` is the readable NumPy definition; :func:`scan` runs the compiled
``_kernels.scan_frames`` (tested against it): block by block, so a block's samples are read
from memory once for every channel, converted to float32 on the way (reading 16-bit PCM as
int16 is ~10x cheaper than having the decoder convert it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HALFBAND = np.array([-1, 0, 9, 16, 9, 0, -1], np.float64) / 32  # centred on tap 3


@dataclass
class Scan:
    """Per-block statistics of one source, each ``(C, B)``: ``squares`` (sum of squares,
    float64), ``high``/``low`` (largest/smallest sample, float64, full scale 1.0), and ``dec``
    float32 ``(C, T // q)``. A block whose ``high`` and ``low`` are both 0 is digital silence;
    block means (DC) come from ``dec``."""

    block: int
    q: int
    frames: int
    squares: np.ndarray
    high: np.ndarray
    low: np.ndarray
    dec: np.ndarray

    @property
    def blocks(self) -> int:
        return self.squares.shape[1]

    def block_sizes(self) -> np.ndarray:
        """Frames per block ``(B,)`` (the last block may be shorter)."""
        sizes = np.full(self.blocks, self.block, np.int64)
        if self.blocks:
            sizes[-1] = self.frames - self.block * (self.blocks - 1)
        return sizes


def scan_reference(x: np.ndarray, block: int, q: int, scale: float = 1.0) -> Scan:
    """NumPy definition of :func:`scan` (``x`` ``(T, C)``)."""
    xs = x.astype(np.float64).T * scale
    C, T = xs.shape
    B = -(-T // block)
    pad = B * block - T
    blocks = np.pad(xs, ((0, 0), (0, pad))).reshape(C, B, block)
    valid = np.pad(np.ones(T, bool), (0, pad)).reshape(B, block)
    squares = (blocks * blocks).sum(axis=2)
    high = np.where(valid, blocks, -np.inf).max(axis=2)
    low = np.where(valid, blocks, np.inf).min(axis=2)
    n = T // q
    if q == 2:
        xp = np.pad(xs, ((0, 0), (3, 3)))
        full = np.stack([np.convolve(ch, HALFBAND[::-1], mode="valid") for ch in xp])
        dec = full[:, : 2 * n: 2].astype(np.float32)
    else:
        dec = xs[:, : n * q].reshape(C, n, q).mean(axis=2).astype(np.float32)
    return Scan(block, q, T, squares, high, low, dec)


def scan(x: np.ndarray, block: int, q: int, scale: float = 1.0) -> Scan:
    """Per-block statistics and decimated channels of ``x`` (``(T, C)`` int16, int32 or
    float32, times ``scale`` = full scale; see the module docstring); the same values as
    :func:`scan_reference` up to float32 rounding (samples are scaled in float32, squares
    accumulated in float32 within a block). ``block`` must be a multiple of ``q``."""
    from ._kernels import scan_frames

    if block % q:
        raise ValueError(f"scan: block {block} is not a multiple of q {q}")
    if x.dtype not in (np.int16, np.int32, np.float32):
        x = x.astype(np.float32)
    x = np.ascontiguousarray(x)
    T, C = x.shape
    B = -(-T // block)
    squares = np.empty((C, B), np.float64)
    high = np.empty((C, B), np.float64)
    low = np.empty((C, B), np.float64)
    dec = np.empty((C, T // q), np.float32)
    if T:
        scan_frames(x, np.float32(scale), block, q, squares, high, low, dec)
    return Scan(block, q, T, squares, high, low, dec)
