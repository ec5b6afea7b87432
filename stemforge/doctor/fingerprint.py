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
inverted index, :class:`HashTable`). The signals are then queried in blocks: each landmark looks
its hash up (a binary search) and meets only the landmarks of its posting list, so the work
grows with the number of landmarks times the posting-list length (capped at ``MAX_POSTING``:
longer lists are stop words, hashes too common to tell songs apart), not with the number of
signal pairs, and the memory with the block. Votes are counted per (signal pair, anchor offset),
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
MAX_POSTING = 64         # hashes held by more entries than this are ignored (stop words)
BLOCK_LANDMARKS = 1 << 20  # query landmarks looked up at once (bounds the memory)
MAX_BLOCK_SIGNALS = 4096  # and at most this many query signals


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


@dataclass
class HashTable:
    """The inverted index: every landmark of every signal sorted by hash (``hashes`` uint32,
    ``sig``/``frames`` int32, all ``(N,)``)."""

    hashes: np.ndarray
    sig: np.ndarray
    frames: np.ndarray

    @classmethod
    def build(cls, prints: list[Fingerprint], include: np.ndarray) -> "HashTable":
        counts = np.array([len(p.hashes) if include[i] else 0 for i, p in enumerate(prints)])
        h = [p.hashes for i, p in enumerate(prints) if include[i]]
        f = [p.frames for i, p in enumerate(prints) if include[i]]
        if not h:
            z = np.zeros(0, np.int32)
            return cls(z.astype(np.uint32), z, z)
        hashes = np.concatenate(h)
        frames = np.concatenate(f).astype(np.int32)
        sig = np.repeat(np.arange(len(prints), dtype=np.int32), counts)
        order = np.argsort(hashes)
        return cls(hashes[order], sig[order], frames[order])

    def lookup(self, hashes: np.ndarray, max_posting: int):
        """For each query hash its posting list ``[lo, lo + n)``; lists longer than
        ``max_posting`` (stop words) count as empty. The queries are searched in sorted order
        (each binary search starts where the previous one ended: a merge, cache-friendly)."""
        order = np.argsort(hashes)
        hs = hashes[order]
        lo = np.empty(len(hashes), np.int64)
        n = np.empty(len(hashes), np.int64)
        lo[order] = np.searchsorted(self.hashes, hs, side="left")
        n[order] = np.searchsorted(self.hashes, hs, side="right") - lo[order]
        n[n > max_posting] = 0
        return lo, n


def votes_of(table: HashTable, q_sig: np.ndarray, q_frames: np.ndarray, q_hash: np.ndarray,
             same_group, max_posting: int):
    """Candidate entries of a block of query landmarks: ``(q, other, offset, q_frame, hash)``
    int64 arrays, one per landmark of another signal ``other > q`` sharing the hash (so each
    pair is counted from one side only, and completely: all its votes come from ``q``'s
    landmarks)."""
    lo, n = table.lookup(q_hash, max_posting)
    total = int(n.sum())
    z = np.zeros(0, np.int64)
    if total == 0:
        return z, z, z, z, z
    starts = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(total)
    rep = np.repeat(np.arange(len(q_hash)), n)
    other = table.sig[starts].astype(np.int64)
    q = q_sig[rep].astype(np.int64)
    keep = (other > q) & same_group(q, other)
    if not keep.any():
        return z, z, z, z, z
    other, q, rep, starts = other[keep], q[keep], rep[keep], starts[keep]
    qf = q_frames[rep].astype(np.int64)
    off = table.frames[starts].astype(np.int64) - qf
    return q, other, off, qf, q_hash[rep].astype(np.int64)


def match(prints: list[Fingerprint], groups: np.ndarray | None = None, min_votes: int = 10,
          min_span: Seconds = 10.0, min_coverage: float = 0.0,
          max_posting: int = MAX_POSTING, block_landmarks: int = BLOCK_LANDMARKS
          ) -> list[Match]:
    """Pairs of fingerprints that share content (see the module docstring).

    ``groups`` (int ``(len(prints),)``): only signals with the same group number are compared
    (e.g. mixtures with mixtures), and signals with group ``-1`` not at all. Query signals are
    taken in blocks of about ``block_landmarks`` landmarks, which bounds the memory.
    """
    n_sig = len(prints)
    if n_sig < 2:
        return []
    if n_sig >= 1 << 24:
        raise ValueError("match: at most 2**24 signals")
    grp = np.zeros(n_sig, np.int64) if groups is None else np.asarray(groups, np.int64)
    include = grp >= 0
    table = HashTable.build(prints, include)

    def same_group(a, b):
        return grp[a] == grp[b]

    out: list[Match] = []
    i = 0
    while i < n_sig:
        j, size = i, 0
        while j < n_sig and j - i < MAX_BLOCK_SIGNALS and (
                j == i or size + len(prints[j].hashes) <= block_landmarks):
            size += len(prints[j].hashes) if include[j] else 0
            j += 1
        block = [k for k in range(i, j) if include[k]]
        i = j
        if not block:
            continue
        qs = np.repeat(np.array(block, np.int32), [len(prints[k].hashes) for k in block])
        qf = np.concatenate([prints[k].frames for k in block])
        qh = np.concatenate([prints[k].hashes for k in block])
        q, other, off, fa, hs = votes_of(table, qs, qf, qh, same_group, max_posting)
        out += _best_offsets(prints, q, other, off, fa, hs, min_votes, min_span, min_coverage)
    return sorted(out, key=lambda m: (m.a, m.b))


def _best_offsets(prints, a, b, off, fa, hs, min_votes, min_span, min_coverage) -> list[Match]:
    """Matches from the candidate entries of signal pairs (``a`` from one query block). Votes
    are first counted per (pair, offset) as they come; for the pairs that reach ``min_votes``
    (with one frame of tolerance) they are counted again with each distinct hash voting once,
    so that a part that repeats (a sustained chord) cannot outvote a real match."""
    if not len(a):
        return []
    n_sig = len(prints)
    a0 = int(a.min())
    span = 1 << 21
    key = (((a - a0) * n_sig + b) << 22) | (off + span)   # (pair, offset) in one int64
    order = np.argsort(key)
    key, fa, hs = key[order], fa[order], hs[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    votes = np.diff(np.r_[first, len(key)])
    ukey = key[first]
    pair, offset = ukey >> 22, (ukey & ((1 << 22) - 1)) - span
    nxt = np.r_[(pair[1:] == pair[:-1]) & (offset[1:] - offset[:-1] == 1), False]
    prv = np.r_[False, nxt[:-1]]
    total = votes.copy()
    total[prv] += votes[np.flatnonzero(prv) - 1]
    total[nxt] += votes[np.flatnonzero(nxt) + 1]
    o2 = np.lexsort((-total, pair))
    best = o2[np.r_[True, pair[o2][1:] != pair[o2][:-1]]]
    best = best[total[best] >= min_votes]
    out = []
    for u in best:
        pa_i, ib = divmod(int(pair[u]), n_sig)
        ia = pa_i + a0
        sel = [u] + ([u - 1] if prv[u] else []) + ([u + 1] if nxt[u] else [])
        idx = np.concatenate([np.arange(first[k], first[k] + votes[k]) for k in sel])
        # each distinct (hash, offset) votes once
        pairs_ho = np.unique(np.stack([hs[idx], key[idx] & ((1 << 22) - 1)]), axis=1)
        n_votes = pairs_ho.shape[1]
        if n_votes < min_votes:
            continue
        fa_m = fa[idx]
        offs = (key[idx] & ((1 << 22) - 1)) - span
        o = int(offset[u])
        t0, t1 = int(fa_m.min()), int(fa_m.max()) + MAX_DT
        pa, pb = prints[ia], prints[ib]
        t1 = min(t1, pa.n_frames)
        t0b, t1b = t0 + o, min(t1 + o, pb.n_frames)
        span_s = (t1 - t0) / FPS
        if span_s < min(min_span, 0.8 * min(pa.seconds, pb.seconds)):
            continue
        seconds = max(1, int(np.ceil(span_s)))
        coverage = len(np.unique((fa_m - t0) // FPS)) / seconds
        if coverage < min_coverage:
            continue
        na = int(((pa.frames >= t0) & (pa.frames <= t1)).sum())
        nb = int(((pb.frames >= t0b) & (pb.frames <= t1b)).sum())
        sim = float(n_votes) / max(1, min(na, nb))
        out.append(Match(ia, ib, float(offs.mean()) / FPS, (t0 / FPS, t1 / FPS),
                         (max(0, t0b) / FPS, t1b / FPS), n_votes, min(1.0, sim),
                         round(coverage, 3)))
    return out
