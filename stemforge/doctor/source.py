"""Checks of one source on its own: silence, dropouts, clipping, DC offset.

All of them read the per-block statistics of :mod:`stemforge.doctor.scan` (20 ms blocks); only
the few blocks that reach a source's extreme values, and the edges of digital-silence runs, are
read again sample by sample.

* **silence**: a source with no 20 ms block above ``silence_db`` (RMS over channels, dBFS);
  "digital" when every sample is 0.
* **dropout**: a run of at least ``dropout_min`` seconds of exact zeros, inside the source (not
  its start or end), whose last millisecond before and first millisecond after are both within
  ``dropout_edge_db`` of the source's typical level (median RMS of its active blocks): sound
  cut off and resumed, not a note that decayed or a rest before an attack.
* **clipping**: at least ``clip_min_runs`` runs of ``clip_min_run`` or more consecutive samples
  equal to the channel's largest (or smallest) value. Clipping followed by a gain change keeps
  such flat runs; lossy coding (AAC/MP3) after clipping smears them, so it is not seen there.
* **DC offset**: a channel whose mean is above ``dc_offset`` in magnitude.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .findings import merge_spans
from .options import Options
from .scan import Scan

EDGE: float = 0.001     # seconds of signal read on each side of a dropout


@dataclass
class SourceFacts:
    """Measurements of one source (rates in Hz, levels in dBFS, times in seconds)."""

    name: str
    sample_rate: int
    channels: int
    frames: int
    peak_db: float
    rms_db: float
    active: float                     # fraction of 20 ms blocks above silence_db
    dc: list[float]
    silent: bool = False
    digital_silence: bool = False
    dropouts: list[list[float]] = field(default_factory=list)
    clip_runs: int = 0
    clip_spans: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def db(x: float, floor: float = -200.0) -> float:
    return float(10 * np.log10(x)) if x > 0 else floor


def block_rms(s: Scan) -> np.ndarray:
    """RMS over channels of every block ``(B,)`` (linear)."""
    return np.sqrt(s.squares.sum(axis=0) / (s.squares.shape[0] * s.block_sizes()))


def check_source(name: str, audio: np.ndarray, scale: float, sr: int, s: Scan,
                 opts: Options) -> SourceFacts:
    """Measure one source: its samples ``audio (T, C)`` as stored (times ``scale`` = full
    scale; see :func:`stemforge.doctor.scan.scan`) at ``sr``, and their scan ``s``."""
    T, C = audio.shape
    rms = block_rms(s)
    thr = 10 ** (opts.silence_db / 20)
    active = rms >= thr
    peak = float(max(np.abs(s.high).max(initial=0), np.abs(s.low).max(initial=0)))
    total_rms = float(np.sqrt(s.squares.sum() / max(1, C * T)))
    dc = [float(v) for v in s.dec.mean(axis=1)] if s.dec.shape[1] else [0.0] * C
    facts = SourceFacts(name, sr, C, T, db(peak ** 2), db(total_rms ** 2),
                        float(active.mean()) if len(active) else 0.0, dc)
    if not active.any():
        facts.silent = True
        facts.digital_silence = peak == 0.0
        return facts
    facts.dropouts = _dropouts(audio, scale, sr, s, rms, active, opts)
    facts.clip_runs, facts.clip_spans = _clipping(audio, sr, s, opts)
    return facts


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index runs of True in a boolean array."""
    if not mask.any():
        return []
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _dropouts(audio, scale, sr, s: Scan, rms, active, opts: Options) -> list[list[float]]:
    zero = (s.high.max(axis=0) == 0) & (s.low.min(axis=0) == 0)   # whole block digital zero
    min_blocks = max(1, int(np.ceil(opts.dropout_min * sr / s.block)) - 1)
    typical = float(np.median(rms[active]))
    edge_thr = typical * 10 ** (opts.dropout_edge_db / 20)
    e = max(1, int(round(EDGE * sr)))
    T = audio.shape[0]
    out = []
    for b0, b1 in _runs(zero):
        if b1 - b0 < min_blocks or b0 < 2 or b1 + 1 >= s.blocks:
            continue
        # cheap first test: sound in the blocks around the run (a cut keeps a large part of
        # the neighbouring block's level, see docs/doctor.md)
        if max(rms[b0 - 2], rms[b0 - 1]) < 0.5 * edge_thr or \
                max(rms[b1], rms[b1 + 1]) < 0.5 * edge_thr:
            continue
        # exact run of zeros: extend into the neighbouring blocks
        lo = b0 * s.block
        before = audio[max(0, lo - s.block):lo]
        nz = np.flatnonzero(np.any(before != 0, axis=1))
        start = lo - s.block + nz[-1] + 1 if len(nz) else lo - before.shape[0]
        hi = min(T, b1 * s.block)
        after = audio[hi:hi + s.block]
        nz = np.flatnonzero(np.any(after != 0, axis=1))
        end = hi + nz[0] if len(nz) else hi + after.shape[0]
        if start <= 0 or end >= T or (end - start) < opts.dropout_min * sr:
            continue
        pre = audio[max(0, start - e):start].astype(np.float64) * scale
        post = audio[end:end + e].astype(np.float64) * scale
        lvl = min(float(np.sqrt(np.mean(pre ** 2))), float(np.sqrt(np.mean(post ** 2))))
        if lvl >= edge_thr:
            out.append([round(start / sr, 3), round(end / sr, 3)])
    return out


def _clipping(audio, sr, s: Scan, opts: Options) -> tuple[int, list[list[float]]]:
    """Runs of ``clip_min_run``+ samples equal to a channel's extreme value; their count and
    the spans (blocks holding them, merged across gaps under 1 s)."""
    runs_total = 0
    spans = []
    n = opts.clip_min_run
    for c in range(audio.shape[1]):
        for top, arr, pick in ((s.high[c].max(), s.high[c], np.max),
                               (s.low[c].min(), s.low[c], np.min)):
            if abs(float(top)) < 1e-3:
                continue
            cand = np.flatnonzero(arr == top)
            # the extreme in the file's own sample type (exact comparisons below)
            ext = pick(audio[cand[0] * s.block:(cand[0] + 1) * s.block, c])
            for b in cand:
                lo = b * s.block
                seg = audio[lo:lo + s.block + n, c]    # a run may continue into the next block
                for r0, r1 in _runs(seg == ext):
                    if r1 - r0 >= n and lo + r0 < (b + 1) * s.block:
                        runs_total += 1
                        spans.append(((lo + r0) / sr, (lo + r1) / sr))
    if runs_total < opts.clip_min_runs:
        return runs_total, []
    return runs_total, merge_spans([(max(0.0, a - 0.05), b + 0.05) for a, b in spans], gap=1.0)
