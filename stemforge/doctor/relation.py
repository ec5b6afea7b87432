"""How a track's stems relate to each other and to its real mixture, from Gram matrices.

Every channel of the mixture and of every stem (decimated signals, see
:mod:`stemforge.doctor.scan`; decimation is linear, so a linear relation between the full-rate
signals holds between the decimated ones) is a row of ``X``; per 1 s window ``w`` the Gram
matrix ``G_w = X_w X_wᵀ`` is formed once (one batched matrix product), and every question below
is a small quadratic form in these matrices (the signals are first reduced in rate once more,
by ``REDUCE``, averaging consecutive samples, which is linear too; so the relation is judged
on the content below ~2.7 kHz, where nearly all of a mix's energy is):

* **copies**: the correlation of two stems' channel sums (whole track); ``|r| >=
  copy_correlation`` is a copy (gain and polarity do not matter).
* **polarity / channel swap**: a hypothesis gives each stem a state (as is, inverted, channels
  swapped, both); the mixture channel ``c`` is modelled as ``g_c`` times the sum of the stems'
  channels under those states, ``g_c`` fitted by least squares. A coordinate search over the
  stems finds the hypothesis with the smallest sum over channels of the log residual (so a
  change must help the channels together, not trade one for another); a stem whose best state
  is not "as is" is reported when that lowers the mean residual by ``relation_gain_db``
  (otherwise the stems are taken as they are). A mixture whose fitted
  gain is negative is inverted relative to its stems.
* **residual over time**: per window and channel, the residual of the best hypothesis with the
  window's own least-squares gain (so slow gain changes from mastering do not count), in dB
  relative to the mixture window: ``10 log10(1 - r²)``, ``r`` the correlation of the mixture
  channel with the modelled sum. Floored at -60 dB (float32 Gram entries resolve no further).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FLOOR_DB = -60.0
REDUCE = 4        # 22.05 kHz decimated signals -> 5.5 kHz for the Gram matrices
FLOOR = 10 ** (FLOOR_DB / 10)
STATES = ((1.0, False), (-1.0, False), (1.0, True), (-1.0, True))  # (sign, swapped)
STATE_NAMES = ("as is", "inverted", "channels swapped", "inverted and channels swapped")


@dataclass
class Relation:
    """What :func:`relate` measured. Residuals are dB relative to the mixture, per channel;
    ``window_db`` is ``(W, C)`` (NaN where the mixture window is silent); ``states[k]`` indexes
    ``STATE_NAMES`` for stem ``k``."""

    window_seconds: float
    copies: list[tuple[int, int, float]] = field(default_factory=list)   # (k, j, correlation)
    states: list[int] = field(default_factory=list)
    gain: list[float] = field(default_factory=list)
    plain_db: list[float] = field(default_factory=list)   # whole track, stems as they are
    best_db: list[float] = field(default_factory=list)    # whole track, best hypothesis
    window_db: np.ndarray | None = None
    window_level_db: np.ndarray | None = None             # mixture RMS per window (dBFS)


def grams(rows: list[np.ndarray], window: int) -> tuple[np.ndarray, int]:
    """Per-window Gram matrices of ``rows`` (float32 ``(n,)`` each) after dividing their rate
    by ``REDUCE`` (mean of consecutive samples): float64 ``(W, R, R)`` over windows of
    ``window`` reduced samples (the last one zero-padded), and the reduced length."""
    R = len(rows)
    n = min(len(r) for r in rows) // REDUCE
    W = max(1, -(-n // window))
    x = np.zeros((W, R, window), np.float32)
    for r, row in enumerate(rows):
        half = row[0: REDUCE * n: REDUCE].copy()
        for k in range(1, REDUCE):
            half += row[k: REDUCE * n: REDUCE]
        half *= np.float32(1.0 / REDUCE)
        full = n // window
        x[:full, r, :] = half[: full * window].reshape(full, window)
        if n > full * window:
            x[full, r, : n - full * window] = half[full * window:]
    return np.matmul(x, x.transpose(0, 2, 1)).astype(np.float64), n


def _db(x):
    with np.errstate(divide="ignore"):
        return np.maximum(10 * np.log10(np.maximum(x, 0)), FLOOR_DB)


def _weights(K: int, C: int, states: list[int], c: int, with_mix: bool) -> np.ndarray:
    """Row weights modelling mixture channel ``c`` under ``states``."""
    off = C if with_mix else 0
    u = np.zeros(off + K * C)
    for k, st in enumerate(states):
        sign, swapped = STATES[st]
        src = (C - 1 - c) if (swapped and C == 2) else c
        u[off + k * C + src] = sign
    return u


def _residual(G: np.ndarray, c: int, u: np.ndarray) -> tuple[float, float]:
    """Relative residual of mixture channel ``c`` after the least-squares gain on ``u·X``, and
    that gain."""
    mm = G[c, c]
    mu = float(G[c] @ u)
    uu = float(u @ G @ u)
    if mm <= 0 or uu <= 0:
        return 1.0, 0.0
    return max(0.0, 1.0 - mu * mu / (mm * uu)), mu / uu


def relate(stems: list[np.ndarray], mixture: np.ndarray | None, rate: float,
           copy_correlation: float = 0.98, silence_db: float = -60.0,
           min_gain_db: float = 6.0) -> Relation:
    """Relations of float32 stems ``(C, n)`` (and the mixture ``(C, n)``, or None) sampled at
    ``rate`` Hz, all with the same ``C`` and ``n``; see the module docstring."""
    K = len(stems)
    C = stems[0].shape[0] if stems else (mixture.shape[0] if mixture is not None else 1)
    rows = [ch for a in ([mixture] if mixture is not None else []) + list(stems) for ch in a]
    # the rate is divided by REDUCE once more (means of consecutive samples): linear, so
    # relations survive, and the Gram matrices cost that much less
    rate = rate / REDUCE
    window = max(1, int(round(rate)))
    Gw, n_half = grams(rows, window)
    G = Gw.sum(axis=0)
    rel = Relation(window_seconds=window / rate)
    off = C if mixture is not None else 0
    # copies: correlation of channel sums
    mono = np.zeros((K, K))
    for k in range(K):
        for j in range(K):
            mono[k, j] = G[off + k * C: off + (k + 1) * C, off + j * C: off + (j + 1) * C].sum()
    for k in range(K):
        for j in range(k + 1, K):
            if mono[k, k] > 0 and mono[j, j] > 0:
                r = mono[k, j] / np.sqrt(mono[k, k] * mono[j, j])
                if abs(r) >= copy_correlation:
                    rel.copies.append((k, j, float(r)))
    if mixture is None or K == 0:
        return rel
    states = [0] * K

    def total(st):  # sum over channels of log residuals: a hypothesis must help every channel
        return sum(np.log(_residual(G, c, _weights(K, C, st, c, True))[0] + FLOOR)
                   for c in range(C))

    plain = [_residual(G, c, _weights(K, C, states, c, True)) for c in range(C)]
    options = range(len(STATES)) if C == 2 else (0, 1)
    best = total(states)
    for _ in range(2):
        changed = False
        for k in range(K):
            for st in options:
                if st == states[k]:
                    continue
                trial = states[:k] + [st] + states[k + 1:]
                v = total(trial)
                if v < best - 1e-9:
                    best, states, changed = v, trial, True
        if not changed:
            break
    fits = [_residual(G, c, _weights(K, C, states, c, True)) for c in range(C)]
    gain_db = float(np.mean([_db(r) for r, _ in plain]) - np.mean([_db(r) for r, _ in fits]))
    if gain_db < min_gain_db:
        states = [0] * K
        fits = plain
    rel.states = states
    rel.plain_db = [float(_db(r)) for r, _ in plain]
    rel.best_db = [float(_db(r)) for r, _ in fits]
    rel.gain = [float(g) for _, g in fits]
    W = Gw.shape[0]
    n_per = np.full(W, float(window))
    n_per[-1] = n_half - window * (W - 1)
    diag = np.einsum("wcc->wc", Gw[:, :C, :C])
    mix_pow = diag.sum(axis=1) / (C * n_per)
    level = np.where(mix_pow > 0, 10 * np.log10(np.maximum(mix_pow, 1e-30)), -200.0)
    wdb = np.full((W, C), np.nan)
    loud = (mix_pow >= 10 ** (silence_db / 10)) & (n_per >= 0.5 * window)  # no short tail
    for c in range(C):
        u = _weights(K, C, states, c, True)
        mu = Gw[:, c, :] @ u
        uu = np.einsum("i,wij,j->w", u, Gw, u)
        mm = Gw[:, c, c]
        ok = loud & (mm > 0) & (uu > 0)
        r = np.ones(W)
        r[ok] = np.maximum(0.0, 1.0 - mu[ok] ** 2 / (mm[ok] * uu[ok]))
        wdb[ok, c] = _db(r[ok])
    rel.window_db = wdb
    rel.window_level_db = level
    return rel
