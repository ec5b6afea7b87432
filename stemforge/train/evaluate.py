"""Score separators and oracles on whole held-out tracks with :mod:`stemforge.metrics`.

For every track the references are the targets read from the index (groups summed), converted to
the evaluation rate and channel count, and the mixture is their sum (so ``mix == sum(targets)``
as in training). Per track and target: BSS Eval v4 SDR (museval's images mode, 1 s windows,
:func:`stemforge.metrics.bss_eval_v4_sdr`; median over windows that are not NaN — windows where
a reference is silent are NaN, as in museval) and SI-SDR over the whole track. A target silent
over the whole (cropped) track has no score (NaN) and is left out of that track's BSS Eval.
Summaries take the median over tracks (the SiSEC / museval convention).

Estimators are callables ``(mix (C, T), references {target: (C, T)}) -> {target: (C, T)}``;
oracles may look at the references, separators must not.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..audio import dsp
from ..metrics import bss_eval_v4_sdr, oracles, si_sdr
from .model import MaskSeparator
from .separate import separate_array

Estimator = Callable[[np.ndarray, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


def model_estimator(model: MaskSeparator, chunk: float = 30.0) -> Estimator:
    """Estimator that runs ``model`` (``separate_array``) on the mixture only."""
    def run(mix, refs):
        return dict(zip(model.config.targets, separate_array(model, mix, chunk=chunk)))
    return run


def oracle_estimator(method: str) -> Estimator:
    """``irm1`` / ``irm2`` / ``ibm`` / ``mwf`` (see :mod:`stemforge.metrics.oracles`) or ``mix``
    (the mixture as every estimate: the do-nothing baseline)."""
    if method == "mix":
        return lambda mix, refs: {t: mix for t in refs}
    return lambda mix, refs: oracles.oracle(method, mix, dict(refs))


def track_references(index, track, targets: Sequence[str], sample_rate: int, channels: int,
                     seconds: float | None = None) -> dict[str, np.ndarray]:
    """``{target: float32 (channels, T)}`` of one index track at ``sample_rate`` (its first
    ``seconds`` when given)."""
    out = {}
    frames = None if seconds is None else min(track.frames, int(round(seconds * track.sample_rate)))
    for t in targets:
        x = index.read(track.id, t, 0, frames) if frames is not None else index.read(track.id, t)
        x = dsp.resample(dsp.to_channels(x, channels), track.sample_rate, sample_rate)
        out[t] = np.ascontiguousarray(x, np.float32)
    n = min(x.shape[1] for x in out.values())
    return {t: x[:, :n] for t, x in out.items()}


def score_tracks(index, targets: Sequence[str], estimators: Mapping[str, Estimator],
                 sample_rate: int, channels: int, win_seconds: float = 1.0,
                 progress: bool = False, seconds: float | None = None) -> pd.DataFrame:
    """One row per (method, track, target): ``SDR`` (median of BSS Eval v4 windows) and
    ``SI-SDR`` in dB, plus ``windows`` (scored, non-NaN windows). ``seconds``: score only the
    first seconds of each track."""
    from tqdm.auto import tqdm

    rows = []
    win = int(round(win_seconds * sample_rate))
    for track in tqdm(index.tracks, desc="evaluate", disable=not progress):
        refs = track_references(index, track, targets, sample_rate, channels, seconds)
        mix = sum(refs.values())
        live = [t for t in targets if np.any(refs[t])]  # a silent reference has no score
        ref_stack = np.stack([refs[t] for t in live])
        for method, estimate in estimators.items():
            est = estimate(mix, refs)
            est_stack = np.stack([np.asarray(est[t], np.float32) for t in live])
            sdr_all = bss_eval_v4_sdr(ref_stack, est_stack, win=win, hop=win, names=live)
            sisdr = si_sdr(ref_stack, est_stack, names=live)
            for t in targets:
                row = {"method": method, "track": track.id, "target": t, "SDR": float("nan"),
                       "SI-SDR": float("nan"), "windows": 0}
                if t in live:
                    j = live.index(t)
                    sdr = sdr_all[j]
                    ok = ~np.isnan(sdr)  # +inf (a perfect window) counts, NaN (silent) does not
                    row.update(SDR=float(np.median(sdr[ok])) if ok.any() else float("nan"),
                               **{"SI-SDR": float(sisdr[j])}, windows=int(ok.sum()))
                rows.append(row)
    return pd.DataFrame(rows)


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Median over tracks per (method, target): columns method, target, SDR, SI-SDR, tracks."""
    g = scores.groupby(["method", "target"], sort=False)
    return g.agg(SDR=("SDR", "median"), **{"SI-SDR": ("SI-SDR", "median")},
                 tracks=("track", "nunique")).reset_index()
