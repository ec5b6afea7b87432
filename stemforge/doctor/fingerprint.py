"""Audio fingerprints (spectral-peak triplets) and duplicate matching through an inverted index.

Fingerprint of one signal (:func:`landmarks`), from its power spectrum on the rate-independent
grid of :mod:`stemforge.doctor.frames` (50 frames/s, ~43 Hz steps, 172 Hz-6 kHz):

1. log power, smoothed over seven frames (binomial weights, +-60 ms) so that a shift of the
   audio by a fraction of a frame barely moves a peak (unsmoothed, a half-frame shift keeps
   only ~5 % of the landmarks; smoothed, ~15 %, which is plenty to vote with);
2. peaks: points that are the maximum of their 9 frames x 7 grid steps neighbourhood and lie
   within ``DYNAMIC_DB`` of the loudest point (relative, so the gain of the audio does not
   matter); the ``PEAKS_PER_SECOND`` strongest per second are kept;
3. triplets: each peak (anchor) with the first ``FAN`` later peaks within ``MAX_DT`` frames and
   ``MAX_DF`` grid steps, every pair of those targets giving one 32-bit hash
   ``(f_anchor, df1, df2, dt1, dt2)``, stored with the anchor's frame.

Frequencies are in Hz and times in seconds, so the hashes survive resampling, gain and lossy
coding (peaks that dominate their neighbourhood stay where they were); an offset moves every
anchor by the same number of frames. Triplets rather than pairs: 32 bits instead of ~20, so
hashes of unrelated songs rarely collide even across 10,000 tracks.

Matching (:func:`match`): every landmark of every signal goes into one table sorted by hash (the
inverted index); only signals sharing a hash are compared, through the entries of that hash's
posting list, so the work grows with the number of landmarks times the (capped) posting-list
length, not with the number of signal pairs. Votes are counted per (signal pair, anchor offset),
each distinct hash once, with one frame of tolerance; a pair is a match when the best offset has ``min_votes`` votes,
the matched landmarks span at least ``min_span`` seconds (or most of the shorter signal), and
they are spread over that span (``min_coverage`` of its seconds hold one): music that repeats
a chord or a loop makes chance agreements that cluster at a few moments.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import convolve1d

from ..types import Seconds
from .frames import FPS

DYNAMIC_DB = 50.0        # peaks within this many dB of the loudest point
PEAKS_PER_SECOND = 10
NEIGHBOURHOOD = (9, 7)   # frames x grid steps
SMOOTH = np.array([1, 6, 15, 20, 15, 6, 1], np.float32) / 64  # over frames
FAN = 4                  # targets per anchor (6 triplets)
MAX_DT = 40              # frames (0.8 s)
MAX_DF = 31              # grid steps
MAX_POSTING = 256        # hashes held by more entries than this are ignored (stop words)


@dataclass
class Fingerprint:
    """Landmarks of one signal: ``hashes`` uint32 ``(N,)`` and anchor ``frames`` int32
    ``(N,)`` (sorted by frame), and the signal's length in frames."""

    hashes: np.ndarray
    frames: np.ndarray
    n_frames: int

    @property
    def seconds(self) -> float:
        return self.n_frames / FPS


def _max_filter(x: np.ndarray, nt: int, nf: int) -> np.ndarray:
    """Maximum over the ``nt x nf`` neighbourhood (odd sizes) of each point of ``x (F, G)``,
    outside points counting as -inf (separable: shifted maxima along each axis)."""
    F, G = x.shape
    ht, hf = nt // 2, nf // 2
    p = np.pad(x, ((ht, ht), (hf, hf)), constant_values=-np.inf)
    m = p[:, :G].copy()
    for k in range(1, nf):
        np.maximum(m, p[:, k:k + G], out=m)
    r = m[:F].copy()
    for k in range(1, nt):
        np.maximum(r, m[k:k + F], out=r)
    return r


def peaks(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spectral peaks of a grid power spectrogram ``(F, G)``: ``(frames, grid steps)`` int32
    arrays sorted by frame, then grid step."""
    F = power.shape[0]
    if F < 3:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    log = (10.0 * np.log10(power + 1e-20)).astype(np.float32)
    sm = convolve1d(log, SMOOTH, axis=0, mode="nearest")
    top = float(sm.max())
    if not np.isfinite(top) or top <= -190:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    mx = _max_filter(sm, *NEIGHBOURHOOD)
    t, f = np.nonzero((sm == mx) & (sm > top - DYNAMIC_DB))
    if not len(t):
        return t.astype(np.int32), f.astype(np.int32)
    v = sm[t, f]
    sec = t // FPS
    order = np.lexsort((-v, sec))                 # by second, strongest first
    sec_o = sec[order]
    first = np.searchsorted(sec_o, sec_o, side="left")
    rank = np.arange(len(order)) - first
    keep = np.sort(order[rank < PEAKS_PER_SECOND])  # back in (frame, step) order
    return t[keep].astype(np.int32), f[keep].astype(np.int32)


def triplets(t: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triplet hashes of peaks ``(t, f)`` (sorted by time): ``(hashes uint32, anchor frames
    int32)``. Hash bits: anchor grid step (8) | df1 + 32 (6) | df2 + 32 (6) | dt1 (6) |
    dt2 (6)."""
    n = len(t)
    if n < 3:
        return np.zeros(0, np.uint32), np.zeros(0, np.int32)
    W = 4 * FAN  # candidate targets looked at per anchor
    j = np.arange(n)[:, None] + np.arange(1, W + 1)[None, :]
    inside = j < n
    jj = np.where(inside, j, n - 1)
    dt = t[jj] - t[:, None]
    df = f[jj] - f[:, None]
    ok = inside & (dt > 0) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF)
    rank = np.cumsum(ok, axis=1)
    ok &= rank <= FAN
    # column index of the k-th valid target of each anchor (k = 1..FAN), or -1
    cols = np.full((n, FAN), -1, np.int64)
    r_idx, c_idx = np.nonzero(ok)
    cols[r_idx, rank[r_idx, c_idx] - 1] = c_idx
    hashes, frames = [], []
    rows = np.arange(n)
    for a in range(FAN):
        for b in range(a + 1, FAN):
            ca, cb = cols[:, a], cols[:, b]
            m = (ca >= 0) & (cb >= 0)
            if not m.any():
                continue
            r = rows[m]
            dt1, dt2 = dt[r, ca[m]], dt[r, cb[m]]
            df1, df2 = df[r, ca[m]], df[r, cb[m]]
            h = ((f[r].astype(np.uint32) << 24) | ((df1 + 32).astype(np.uint32) << 18)
                 | ((df2 + 32).astype(np.uint32) << 12) | (dt1.astype(np.uint32) << 6)
                 | dt2.astype(np.uint32))
            hashes.append(h)
            frames.append(t[r])
    if not hashes:
        return np.zeros(0, np.uint32), np.zeros(0, np.int32)
    h = np.concatenate(hashes)
    fr = np.concatenate(frames).astype(np.int32)
    order = np.argsort(fr, kind="stable")
    return h[order], fr[order]


def landmarks(power: np.ndarray) -> Fingerprint:
    """Fingerprint of one signal from its grid power spectrogram ``(F, G)`` (see the module
    docstring)."""
    t, f = peaks(power)
    h, fr = triplets(t, f)
    return Fingerprint(h, fr, int(power.shape[0]))


@dataclass
class Match:
    """Signals ``a`` and ``b`` (indices into the list given to :func:`match`, ``a < b``) share
    content: ``offset`` seconds = time in ``b`` minus time in ``a`` of the same content;
    ``span_a``/``span_b`` the matched stretch in each (seconds); ``votes`` landmarks agreeing
    on that offset; ``similarity`` votes / landmarks of the sparser signal inside its span;
    ``coverage`` the fraction of the span's seconds holding at least one agreeing landmark."""

    a: int
    b: int
    offset: Seconds
    span_a: tuple[Seconds, Seconds]
    span_b: tuple[Seconds, Seconds]
    votes: int
    similarity: float
    coverage: float = 1.0


def _pairs_sharing_hashes(hashes, sig, frames, groups_ok, max_posting):
    """Entries ``(sig_a, sig_b, offset, frame_a, hash)`` for every two landmarks of different
    signals that share a hash, with ``groups_ok(a, b)`` allowed; walks each posting list of at
    most ``max_posting`` entries (longer ones are stop words)."""
    order = np.argsort(hashes, kind="stable")
    h = hashes[order]
    s = sig[order]
    fr = frames[order]
    n = len(h)
    if n < 2:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty, empty
    start = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
    size = np.diff(np.r_[start, n])
    gsize = np.repeat(size, size)
    pos = np.arange(n) - np.repeat(start, size)
    live = (gsize >= 2) & (gsize <= max_posting)
    idx = np.flatnonzero(live)
    out_a, out_b, out_o, out_f, out_h = [], [], [], [], []
    k = 1
    while len(idx):
        # pair entry i with entry i + k of the same posting list
        idx = idx[pos[idx] + k < gsize[idx]]
        if not len(idx):
            break
        j = idx + k
        sa, sb = s[idx], s[j]
        keep = (sa != sb) & groups_ok(sa, sb)
        if keep.any():
            i1, j1 = idx[keep], j[keep]
            a, b = s[i1], s[j1]
            fa, fb = fr[i1], fr[j1]
            swap = a > b
            out_a.append(np.where(swap, b, a))
            out_b.append(np.where(swap, a, b))
            out_o.append(np.where(swap, fa - fb, fb - fa))
            out_f.append(np.where(swap, fb, fa))
            out_h.append(h[i1])
        k += 1
    if not out_a:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty, empty
    return (np.concatenate(out_a).astype(np.int64), np.concatenate(out_b).astype(np.int64),
            np.concatenate(out_o).astype(np.int64), np.concatenate(out_f).astype(np.int64),
            np.concatenate(out_h).astype(np.int64))


def match(prints: list[Fingerprint], groups: np.ndarray | None = None, min_votes: int = 10,
          min_span: Seconds = 10.0, min_coverage: float = 0.0,
          max_posting: int = MAX_POSTING) -> list[Match]:
    """Pairs of fingerprints that share content (see the module docstring).

    ``groups`` (int ``(len(prints),)``): only signals with the same group number are compared
    (e.g. mixtures with mixtures), and signals with group ``-1`` not at all.
    """
    n_sig = len(prints)
    if n_sig < 2:
        return []
    grp = np.zeros(n_sig, np.int64) if groups is None else np.asarray(groups, np.int64)
    counts = np.array([len(p.hashes) for p in prints])
    sig = np.repeat(np.arange(n_sig), counts)
    hashes = np.concatenate([p.hashes for p in prints]) if counts.sum() else np.zeros(0, np.uint32)
    frames = np.concatenate([p.frames for p in prints]) if counts.sum() else np.zeros(0, np.int32)
    valid = grp[sig] >= 0
    hashes, frames, sig = hashes[valid], frames[valid], sig[valid]

    def same_group(a, b):
        return grp[a] == grp[b]

    a, b, off, fa, hs = _pairs_sharing_hashes(hashes, sig, frames, same_group, max_posting)
    if not len(a):
        return []
    # votes per (pair, offset); offsets fit in 2**21 frames (~11 h). A hash votes once per
    # (pair, offset): a part that repeats (a sustained chord) cannot outvote a real match
    span = 1 << 21
    key = (a * n_sig + b) * (2 * span) + (off + span)
    order = np.lexsort((hs, key))
    key, fa, hs = key[order], fa[order], hs[order]
    first_of = np.r_[True, (key[1:] != key[:-1]) | (hs[1:] != hs[:-1])]
    key, fa = key[first_of], fa[first_of]
    ukey, first, votes = np.unique(key, return_index=True, return_counts=True)
    pair = ukey // (2 * span)
    offset = ukey % (2 * span) - span
    # one frame of tolerance: add the neighbours' votes
    same_pair_prev = np.r_[False, (pair[1:] == pair[:-1]) & (offset[1:] - offset[:-1] == 1)]
    same_pair_next = np.r_[(pair[1:] == pair[:-1]) & (offset[1:] - offset[:-1] == 1), False]
    total = votes.copy()
    total[same_pair_prev] += votes[np.flatnonzero(same_pair_prev) - 1]
    total[same_pair_next] += votes[np.flatnonzero(same_pair_next) + 1]
    # best offset per pair
    o2 = np.lexsort((-total, pair))
    best = o2[np.r_[True, pair[o2][1:] != pair[o2][:-1]]]
    best = best[total[best] >= min_votes]
    out = []
    for u in best:
        p = int(pair[u])
        ia, ib = divmod(p, n_sig)
        o = int(offset[u])
        sel = [u]
        if same_pair_prev[u]:
            sel.append(u - 1)
        if same_pair_next[u]:
            sel.append(u + 1)
        fa_m = np.concatenate([fa[first[k]:first[k] + votes[k]] for k in sel])
        offs = np.concatenate([np.full(votes[k], offset[k]) for k in sel])
        t0, t1 = int(fa_m.min()), int(fa_m.max()) + MAX_DT
        t0b, t1b = t0 + o, t1 + o
        pa, pb = prints[ia], prints[ib]
        t1, t1b = min(t1, pa.n_frames), min(t1b, pb.n_frames)
        span_s = (t1 - t0) / FPS
        shorter = min(pa.seconds, pb.seconds)
        if span_s < min(min_span, 0.8 * shorter):
            continue
        seconds = max(1, int(np.ceil(span_s)))
        coverage = len(np.unique((fa_m - t0) // FPS)) / seconds
        if coverage < min_coverage:
            continue
        na = int(((pa.frames >= t0) & (pa.frames <= t1)).sum())
        nb = int(((pb.frames >= t0b) & (pb.frames <= t1b)).sum())
        sim = float(total[u]) / max(1, min(na, nb))
        out.append(Match(ia, ib, float(offs.mean()) / FPS, (t0 / FPS, t1 / FPS),
                         (max(0, t0b) / FPS, t1b / FPS), int(total[u]), min(1.0, sim),
                         round(coverage, 3)))
    return out
