"""The MDX / SDX challenges' SDRs (2021-2023): utterance-level uSDR and chunk-level cSDR.

Both use the challenges' plain SDR, no distortion filter: ``10 log10((Σs² + δ) / (Σ(s - ŝ)² + δ))``
with ``δ = 1e-7``, summed over samples and channels.

* **uSDR** (utterance level) is that SDR over the whole track: the MDX 2021 leaderboard metric
  ("new SDR" in Demucs, ``GlobalSDR`` in the challenges' evaluation code). It is
  :func:`stemforge.metrics.mdx_sdr`; :func:`usdr` is the same function under the SDX name.
* **cSDR** (chunk level) is the median over 1 s chunks of the same SDR per chunk
  (``MedianFramewiseSDR(win=44100, hop=44100)`` in the challenges' evaluation code). Chunks where
  the reference is silent (zero energy) are skipped, as museval skips silent frames: their SDR
  says nothing about the separation (it is ``10 log10(δ / (Σŝ² + δ))``, very negative for any
  leakage and 0 dB for a silent estimate).

Challenge scores average a song's targets, then songs (mean over tracks).

Framing: chunks start at ``0, hop, 2 hop, ...`` and must fit in the track (a trailing partial
chunk is dropped, as in museval); a track shorter than one chunk is one chunk. The challenges' code
iterates ``range(0, N - win, hop)``: for a length that is an exact multiple of the hop it misses
the last full chunk and leaves a 0 dB placeholder in the median; we count that chunk instead.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .sisdr import mdx_db, mdx_sdr
from .validate import as_stack, check_pair

usdr = mdx_sdr  # the SDX name of the MDX challenge SDR (one implementation)


def chunk_starts(frames: int, win: int, hop: int) -> np.ndarray:
    """Start frames of the chunks of a ``frames``-long signal (see module doc)."""
    if win <= 0 or hop <= 0:
        raise ValueError(f"chunk length {win} / hop {hop}: expected positive frame counts")
    if frames <= win:
        return np.zeros(1, dtype=np.int64)
    return np.arange(0, frames - win + 1, hop, dtype=np.int64)


def chunk_sdr(references, estimates, win: int = 44100, hop: int | None = None,
              names: Sequence[str] | None = None, padding: bool = True) -> np.ndarray:
    """Per-chunk challenge SDR: ``(nsrc, chunks)`` in dB, NaN where the reference chunk is silent.

    ``references``/``estimates``: ``(nsrc, channels, frames)``; ``win``/``hop`` in frames
    (``hop`` defaults to ``win``). Chunk ``k`` covers ``[starts[k], starts[k] + win)``.
    """
    refs, ests = check_pair(as_stack(references, "references", names),
                            as_stack(estimates, "estimates", names), names, padding=padding,
                            require_nonsilent=False)
    hop = win if hop is None else hop
    starts = chunk_starts(refs.shape[-1], win, hop)
    out = np.empty((refs.shape[0], len(starts)))
    for k, a in enumerate(starts):
        s = refs[..., a:a + win]
        d = s - ests[..., a:a + win]
        out[:, k] = chunk_db(np.einsum("ict,ict->i", s, s), np.einsum("ict,ict->i", d, d))
    return out


def chunk_db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """A chunk's SDR from its sums ``num = Σs²`` and ``den = Σ(s - ŝ)²`` (any shape, float64):
    ``10 log10((num + δ) / (den + δ))``, NaN where the reference is silent (``num == 0``)."""
    with np.errstate(divide="ignore"):
        return np.where(num > 0, mdx_db(num, den), np.nan)


def chunk_median(chunks: np.ndarray) -> np.ndarray:
    """cSDR from per-chunk SDRs ``(nsrc, chunks)``: the median over each source's non-NaN
    chunks, ``(nsrc,)``; NaN for a source silent in every chunk."""
    out = np.full(chunks.shape[0], np.nan)
    for i, row in enumerate(chunks):
        row = row[~np.isnan(row)]
        if row.size:
            out[i] = float(np.median(row))
    return out


def csdr(references, estimates, win: int = 44100, hop: int | None = None,
         names: Sequence[str] | None = None, padding: bool = True) -> np.ndarray:
    """Chunk-level SDR per source: median over non-silent chunks of :func:`chunk_sdr`,
    ``(nsrc,)`` in dB; NaN for a source whose reference is silent in every chunk."""
    return chunk_median(chunk_sdr(references, estimates, win, hop, names, padding))
