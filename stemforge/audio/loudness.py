"""BS.1770 loudness without filtering at mix time.

The mixing engine needs the integrated loudness (LUFS) of arbitrary excerpts of every stem.
Filtering each excerpt at mix time is too slow, so the index stores, once per stem, the
K-weighted, channel-weighted energy of every 10 ms *sub-block* (:func:`block_energies`) and,
per sub-block boundary, the *zero-state correction* (:func:`zero_state_corrections`).
:func:`excerpt_loudness` then rebuilds the 400 ms / 100 ms-hop gating blocks of any excerpt
from those energies (partial sub-blocks at the edges are interpolated, linear for steady
signals, see :func:`_cumulative`), corrects the first block and gates them exactly as
BS.1770 / pyloudnorm 0.2.0 ``Meter(rate).integrated_loudness`` does:

* K-weighting: RBJ-cookbook high shelf (+4 dB, Q=1/sqrt(2), 1500 Hz) followed by an RBJ high
  pass (Q=0.5, 38 Hz), designed for the actual sample rate (pyloudnorm's design);
* block ``j`` spans frames ``[int(0.4*(0.25 j)*sr), int(0.4*(0.25 j + 1)*sr))`` of the excerpt
  (clipped to its end), its mean square is its energy divided by ``0.4*sr``; there are
  ``int(round((T - 0.4) / 0.1)) + 1`` blocks for an excerpt of ``T`` seconds;
* channel weights 1, 1, 1, 1.41, 1.41 (L, R, C, Ls, Rs); block loudness
  ``-0.691 + 10 log10(weighted mean square)``;
* absolute gate -70 LUFS (``>=``), relative gate -10 LU below the loudness of the blocks that
  passed the absolute gate (``>``); ``-inf`` when no block survives.

Accuracy against pyloudnorm run on the excerpt's samples. pyloudnorm filters the excerpt from
zero state, the stored energies come from filtering the whole stem: the two differ by the
filter's free response at the start (dominant on drums and bass: ~0.1-0.3 LU for 0.5-1 s
excerpts), which the stored correction removes exactly for a start on the sub-block grid and
linearly interpolates between grid frames otherwise. Block edges inside a sub-block use the
interpolated cumulative energy. So on the 10 ms grid the look-up equals pyloudnorm to rounding
(``tests/test_loudness.py`` checks <= 0.01 LU from 1 s and <= 0.05 LU at 0.5 s on the real MUSDB
excerpt's stems, every grid start); off the grid both interpolations leave an error that is
largest at onsets and near the gates (BS.1770's gating is discontinuous). Measured figures:
``docs/benchmarks.md`` (``benchmarks/loudness.py``). Energies of pitch/tempo *variants* have no
corrections stored (their look-ups are as before: interpolated, zero-state error included).

Audio is ``(channels, frames)``; energies are float64 ``(n_sub,)`` in squared full-scale
sample units (sum over the sub-block's frames, not a mean).
"""
from __future__ import annotations

import functools
import itertools
import math
import threading

import numpy as np

from ..errors import AudioError
from ..types import LUFS, Decibels, Frames, Hz, Seconds

SUB_BLOCK_SECONDS: Seconds = 0.01
"""Length of one stored energy sub-block (10 ms; ``sub_block_frames(sr)`` frames)."""

BLOCK_SECONDS: Seconds = 0.4
OVERLAP = 0.75
ABSOLUTE_GATE: LUFS = -70.0
RELATIVE_GATE: Decibels = -10.0
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
MIN_SAMPLE_RATE: Hz = 8000
_CHUNK_SUB_BLOCKS = 1000  # block_energies filters 10 s at a time (bounded memory)


# ----------------------------------------------------------------------------- validation
def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(
        sample_rate, (int, np.integer, float, np.floating)
    ):
        raise AudioError(f"sample rate must be an integer number of Hz, got {sample_rate!r}")
    if not float(sample_rate).is_integer() or sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(
            f"sample rate must be an integer >= {MIN_SAMPLE_RATE} Hz, got {sample_rate!r}"
        )
    return int(sample_rate)


def _check_audio(audio) -> np.ndarray:
    if not isinstance(audio, np.ndarray):
        raise AudioError(f"audio must be a numpy array (channels, frames), got {type(audio).__name__}")
    if audio.ndim != 2:
        raise AudioError(f"audio must be 2-D (channels, frames), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"audio must hold floating-point samples, got dtype {audio.dtype}")
    c, t = audio.shape
    if not 1 <= c <= len(CHANNEL_WEIGHTS):
        raise AudioError(
            f"audio must have 1 to {len(CHANNEL_WEIGHTS)} channels (L, R, C, Ls, Rs), "
            f"got {c} (shape {audio.shape}; expected (channels, frames))"
        )
    if t == 0:
        raise AudioError("audio holds no frames; loudness needs at least one frame")
    return audio


def _check_energies(energies) -> np.ndarray:
    if not isinstance(energies, np.ndarray) or energies.ndim != 1 or energies.size == 0:
        shape = getattr(energies, "shape", type(energies).__name__)
        raise AudioError(
            f"energies must be a non-empty 1-D array from block_energies(), got {shape}"
        )
    # a plain ndarray view of a memmap (same buffer, same values): numpy's memmap subclass hooks
    # (__array_finalize__/__array_wrap__ on every slice and ufunc result) cost more than the
    # arithmetic on these short arrays
    return energies if type(energies) is np.ndarray else energies.view(np.ndarray)


def _check_span(energies: np.ndarray, sr: int, start, frames) -> tuple[int, int]:
    if type(start) is not int or type(frames) is not int:  # plain ints: nothing to convert
        for name, v in (("start", start), ("frames", frames)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise AudioError(f"excerpt {name} must be an integer frame count, got {v!r}")
        start, frames = int(start), int(frames)
    span = energies.shape[0] * _sub_block(sr)
    if start < 0:
        raise AudioError(f"excerpt start must be >= 0, got {start}")
    if frames < 1:
        raise AudioError(f"excerpt frames must be >= 1, got {frames}")
    if start + frames > span:
        raise AudioError(
            f"excerpt [{start}, {start + frames}) runs past the end of the energies, which "
            f"cover {span} frames ({energies.shape[0]} sub-blocks of {_sub_block(sr)} "
            f"frames at {sr} Hz)"
        )
    return start, frames


# ----------------------------------------------------------------------------- filtering
def sub_block_frames(sample_rate: Hz) -> Frames:
    """Frames per energy sub-block: ``round(sample_rate * 0.01)`` (441 at 44.1 kHz)."""
    return _sub_block(_check_rate(sample_rate))


def _sub_block(sr: int) -> Frames:
    """:func:`sub_block_frames` of an already checked rate."""
    return int(round(sr * SUB_BLOCK_SECONDS))


def _k_sos(sr: int) -> np.ndarray:
    """K-weighting as two second-order sections ``(2, 6)``: high shelf, then high pass.

    RBJ audio-EQ-cookbook designs with pyloudnorm 0.2.0's parameters, so the response at any
    sample rate is pyloudnorm's (not the 48 kHz table of BS.1770 re-used at other rates).
    """
    # high shelf: G = +4 dB, Q = 1/sqrt(2), fc = 1500 Hz
    a = 10.0 ** (4.0 / 40.0)
    w0 = 2.0 * np.pi * 1500.0 / sr
    alpha = np.sin(w0) / (2.0 * (1.0 / np.sqrt(2.0)))
    cw, sa = np.cos(w0), 2.0 * np.sqrt(a) * alpha
    shelf_b = [a * ((a + 1) + (a - 1) * cw + sa), -2 * a * ((a - 1) + (a + 1) * cw),
               a * ((a + 1) + (a - 1) * cw - sa)]
    shelf_a = [(a + 1) - (a - 1) * cw + sa, 2 * ((a - 1) - (a + 1) * cw),
               (a + 1) - (a - 1) * cw - sa]
    # high pass: Q = 0.5, fc = 38 Hz
    w0 = 2.0 * np.pi * 38.0 / sr
    alpha = np.sin(w0) / (2.0 * 0.5)
    cw = np.cos(w0)
    hp_b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
    hp_a = [1 + alpha, -2 * cw, 1 - alpha]
    sos = np.array([[*shelf_b, *shelf_a], [*hp_b, *hp_a]], dtype=np.float64)
    return sos / sos[:, 3:4]


def k_weighting(audio: np.ndarray, sample_rate: Hz) -> np.ndarray:
    """K-weight ``audio`` (BS.1770 pre-filter, pyloudnorm's design), filtering from zero state.

    ``audio``: ``(C, T)`` floating point, 1 <= C <= 5. Returns float64 ``(C, T)``.
    """
    from scipy.signal import sosfilt

    sr = _check_rate(sample_rate)
    x = _check_audio(audio)
    return sosfilt(_k_sos(sr), np.asarray(x, dtype=np.float64), axis=-1)


def _weighted_power(y: np.ndarray) -> np.ndarray:
    """``(C, T)`` K-weighted samples -> ``(T,)`` channel-weighted squared samples."""
    p = np.square(y[0])
    for ch in range(1, y.shape[0]):
        w = CHANNEL_WEIGHTS[ch]
        p += np.square(y[ch]) if w == 1.0 else w * np.square(y[ch])
    return p


def block_energies(audio: np.ndarray, sample_rate: Hz) -> np.ndarray:
    """Per-sub-block K-weighted energy of a whole stem: what the index stores.

    ``audio``: ``(C, T)`` floating point, 1 <= C <= 5, finite. Returns float64
    ``(ceil(T / B),)`` with ``B = sub_block_frames(sample_rate)``: entry ``k`` is
    ``sum_c w_c * sum_{t in [kB, (k+1)B)} y_c[t]**2`` where ``y`` is the K-weighted audio
    (filtered from zero state at frame 0) and ``w = (1, 1, 1, 1.41, 1.41)``. The last, partial
    sub-block holds the energy of the frames it has. Filters in 10 s chunks (state carried).
    """
    return _analyse(audio, sample_rate, False)[0]


def stem_analysis(audio: np.ndarray, sample_rate: Hz) -> tuple[np.ndarray, np.ndarray]:
    """``(block_energies, zero_state_corrections)`` of a whole stem in one filtering pass:
    the two float64 ``(ceil(T / B),)`` arrays the index stores."""
    return _analyse(audio, sample_rate, True)


def zero_state_corrections(audio: np.ndarray, sample_rate: Hz) -> np.ndarray:
    """Per sub-block boundary, what starting the K-weighting from zero state there does to the
    first gating block's energy: float64 ``(ceil(T / B),)``, entry ``k`` for an excerpt
    starting at frame ``k B`` (``B = sub_block_frames``).

    pyloudnorm filters an excerpt from zero state; the stored energies come from filtering the
    whole stem. The two outputs differ by the filter's free response ``r`` from the stem's state
    at the excerpt's start (linearity): ``y0 = y - r``. So the first gating block (the only one
    ``r`` reaches, see :data:`TRANSIENT_SECONDS`) holds ``sum (y - r)^2 = sum y^2 + d`` with
    ``d = sum_c w_c (z_c^T G z_c - 2 z_c . q_c)``: ``z_c`` the state, ``G`` the Gram matrix of
    the free responses over the block, ``q_c[j] = sum_m y_c[s + m] g_j[m]`` (``y`` filtered
    backwards through the free responses' common poles, then their numerators at the grid
    frames). Exact up to rounding and the ~1e-12 tail beyond 0.15 s; 0 at frame 0.
    ``audio``: ``(C, T)`` floating point, finite.
    """
    return _analyse(audio, sample_rate, True)[1]


TRANSIENT_SECONDS: Seconds = 0.15
"""Span of the K-weighting's free response that counts: it decays to ~1e-12 of its start within
0.15 s at any rate (the 38 Hz high pass's double pole), well inside the first gating block."""


def _analyse(audio, sample_rate, corrections: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The one filtering pass behind :func:`block_energies` and :func:`stem_analysis`: 10 s
    chunks, the filter state carried (and, for the corrections, 0.15 s of look-ahead output
    filtered from the chunk's end state and dropped)."""
    sr = _check_rate(sample_rate)
    x = _check_audio(audio)
    b = _sub_block(sr)
    c, t = x.shape
    n_sub = -(-t // b)
    sos = _k_sos(sr)
    zi = np.zeros((sos.shape[0], c, 2))
    out = np.empty(n_sub, dtype=np.float64)
    corr = np.empty(n_sub, dtype=np.float64) if corrections else None
    chunk = _CHUNK_SUB_BLOCKS * b
    ahead = int(TRANSIENT_SECONDS * sr) if corrections else 0
    if corrections:
        gram, poles, nums = _free_response(sr)
        weights = np.array(CHANNEL_WEIGHTS[:c])[:, None]
    for k0 in range(0, n_sub, _CHUNK_SUB_BLOCKS):
        seg = np.asarray(x[:, k0 * b: k0 * b + chunk + ahead], dtype=np.float64)
        n = min(chunk, t - k0 * b)
        y1, z1 = _sosfilt(sos[:1], seg[:, :n], zi[:1])
        y, z2 = _sosfilt(sos[1:], y1, zi[1:])
        p = _weighted_power(y)
        full = p.shape[0] // b
        out[k0: k0 + full] = p[: full * b].reshape(full, b).sum(axis=1)
        if full * b < p.shape[0]:
            out[k0 + full] = p[full * b:].sum()
        if corrections:
            grid = np.arange(0, n, b)
            z = np.concatenate([_states(sos[0], seg, y1, zi[0], grid),
                                _states(sos[1], y1, y, zi[1], grid)])  # (4, C, grid)
            if seg.shape[1] > n:  # the look-ahead's output (its end state is not kept)
                y = np.concatenate([y, _sosfilt(sos[1:], _sosfilt(sos[:1], seg[:, n:], z1)[0],
                                                z2)[0]], axis=1)
            # q[j] at frame g = sum_m y[g + m] g_j[m]: y reversed through the poles, then num_j
            v = _sosfilt(poles, y[:, ::-1], np.zeros((2, c, 2)))[0]
            at = y.shape[1] - 1 - grid  # frame g in the reversed signal
            taps = np.stack([v[:, np.maximum(at - i, 0)] * (at - i >= 0) for i in range(5)])
            q = np.einsum("ji,icg->jcg", nums, taps)
            quad = np.einsum("jcg,jk,kcg->cg", z, gram, z)
            cross = np.einsum("jcg,jcg->cg", z, q)
            corr[k0: k0 + grid.shape[0]] = (weights * (quad - 2.0 * cross)).sum(axis=0)
        zi = np.concatenate([z1, z2])
    if not np.isfinite(out).all():
        raise AudioError("audio holds NaN/inf samples; loudness needs finite samples")
    return out, corr


@functools.lru_cache(maxsize=16)
def _free_response(sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The K-weighting's response to its own state, for :func:`zero_state_corrections`.

    The cascade has four state values per channel (two per DF2T section, scipy's ``[z1, z2]``
    per section). From a state ``z`` and no input it outputs ``r = z @ g``, ``g`` float64
    ``(4, B0)`` (row ``j`` from the unit state ``j``; ``B0`` the first gating block's frames).
    Returns the Gram matrix ``G = g g^T`` ``(4, 4)`` (entries by ``math.fsum``: the same on
    every machine), the cascade's poles as two all-pole sections (``sosfilt`` form ``(2, 6)``)
    and the numerators ``(4, 5)`` whose impulse responses over those poles are the rows of ``g``.
    """
    sos = _k_sos(sr)
    n = int(BLOCK_SECONDS * sr)
    g = np.empty((4, n))
    for j in range(4):
        zi = np.zeros((2, 2))
        zi[j // 2, j % 2] = 1.0
        g[j] = _sosfilt(sos, np.zeros(n), zi)[0]
    gram = np.array([[math.fsum(g[i] * g[j]) for j in range(4)] for i in range(4)])
    den = np.convolve(sos[0, 3:], sos[1, 3:])
    nums = np.stack([np.convolve(den, g[j])[:5] for j in range(4)])
    poles = np.array([[1.0, 0.0, 0.0, *sos[0, 3:]], [1.0, 0.0, 0.0, *sos[1, 3:]]])
    return gram, poles, nums


def _sosfilt(sos, x, zi):
    from scipy.signal import sosfilt

    return sosfilt(sos, x, axis=-1, zi=zi)


def _states(sec: np.ndarray, x: np.ndarray, y: np.ndarray, z0: np.ndarray,
            at: np.ndarray) -> np.ndarray:
    """A DF2T biquad's state just *before* samples ``at`` (int, >= 0): ``(2, ..., len(at))``,
    from its input ``x``, output ``y`` ``(..., n)`` and its state ``z0`` ``(..., 2)`` before
    sample 0 (scipy's ``sosfilt`` layout ``[z1, z2]``). After sample ``t``:
    ``z2 = b2 x[t] - a2 y[t]`` and ``z1 = b1 x[t] - a1 y[t] + z2(after t - 1)``."""
    b1, b2, a1, a2 = sec[1], sec[2], sec[4], sec[5]
    out = np.empty((2, *x.shape[:-1], at.shape[0]))
    first = at == 0
    t1, t2 = np.maximum(at - 1, 0), np.maximum(at - 2, 0)
    z2_1 = b2 * x[..., t1] - a2 * y[..., t1]                     # after t - 1
    z2_2 = np.where(at >= 2, b2 * x[..., t2] - a2 * y[..., t2],  # after t - 2
                    z0[..., 1:2])
    out[0] = np.where(first, z0[..., 0:1], b1 * x[..., t1] - a1 * y[..., t1] + z2_2)
    out[1] = np.where(first, z0[..., 1:2], z2_1)
    return out


# ----------------------------------------------------------------------------- gating
@functools.lru_cache(maxsize=256)
def _block_bounds(frames: int, sr: int) -> np.ndarray:
    """pyloudnorm's gating-block edges for an excerpt of ``frames`` frames.

    Returns int64 ``(n_blocks + 4,)`` edges ``e`` (clipped to ``frames``): block ``j`` spans
    ``[e[j], e[j + 4])``. Same float expressions as pyloudnorm, so the same truncations.
    """
    step = 1.0 - OVERLAP
    t = frames / sr
    n_blocks = int(np.round((t - BLOCK_SECONDS) / (BLOCK_SECONDS * step))) + 1
    j = np.arange(n_blocks + 4, dtype=np.float64)
    edges = (BLOCK_SECONDS * (j * step) * sr).astype(np.int64)
    edges = np.minimum(edges, frames)
    edges.flags.writeable = False  # cached
    return edges


_ABS_GATE_POWER = 10.0 ** ((ABSOLUTE_GATE + 0.691) / 10.0)
_REL_GATE_FACTOR = 10.0 ** (RELATIVE_GATE / 10.0)


def _gate(block_energy: np.ndarray, sr: int) -> LUFS:
    """BS.1770 two-stage gating of ``(n_blocks,)`` weighted block energies -> LUFS.

    Compared in the power domain: block loudness ``l_j >= -70`` is
    ``z_j >= 10**((-70 + 0.691) / 10)`` and ``l_j > Gamma_r`` is ``z_j > 0.1 * mean(z_kept)``
    (identical up to rounding; pyloudnorm compares in dB). The second stage needs no check
    for emptiness: the largest kept block always exceeds a tenth of the kept blocks' mean.
    """
    norm = BLOCK_SECONDS * sr
    floor = _ABS_GATE_POWER * norm
    kept = block_energy >= floor
    n1 = np.count_nonzero(kept)
    if n1 == 0:
        return float("-inf")
    rel = _REL_GATE_FACTOR * np.where(kept, block_energy, 0.0).sum() / n1
    kept = (block_energy > rel) & (block_energy > floor)
    s2 = np.where(kept, block_energy, 0.0).sum()
    return float(-0.691 + 10.0 * math.log10(s2 / (np.count_nonzero(kept) * norm)))


def _loudness_from_segments(seg: np.ndarray, frames: int, sr: int) -> LUFS:
    """Gated loudness from the energies of the ``n_blocks + 3`` hop segments of an excerpt."""
    blocks = seg[:-3] + seg[1:-2] + seg[2:-1] + seg[3:]
    return _gate(blocks, sr)


def integrated_loudness(audio: np.ndarray, sample_rate: Hz) -> LUFS:
    """Integrated loudness of ``audio`` in LUFS, filtering its samples (no stored energies).

    ``audio``: ``(C, T)`` floating point, 1 <= C <= 5. Equal to pyloudnorm 0.2.0
    ``Meter(sr).integrated_loudness(audio.T)`` (to ~1e-6 LU; tested to 1e-4) when
    ``T >= 0.4 * sr``; shorter audio is measured as one block (see :func:`excerpt_loudness`).
    Returns ``-inf`` for silence or when every block is gated. Vectorised: per-hop sums by
    ``np.add.reduceat``, no Python loop over blocks.
    """
    sr = _check_rate(sample_rate)
    x = _check_audio(audio)
    p = _weighted_power(k_weighting(x, sr))
    if not np.isfinite(p).all():
        raise AudioError("audio holds NaN/inf samples; loudness needs finite samples")
    t = p.shape[0]
    if t < BLOCK_SECONDS * sr:
        return _short_loudness(float(p.sum()), t)
    edges = _block_bounds(t, sr)
    starts = edges[:-1]
    seg = np.zeros(starts.shape[0])
    nonempty = starts < edges[1:]
    # reduceat sums up to the next given index (empty segments are skipped, so that is the
    # segment's own upper edge); the last one runs to the end of the array: cut it at edges[-1].
    seg[nonempty] = np.add.reduceat(p[: edges[-1]], starts[nonempty])
    return _loudness_from_segments(seg, t, sr)


EVENT_MIN_SECONDS: Seconds = 0.5
"""Scaper measures an event shorter than this on copies of it laid end to end (>= 0.5 s)."""


def event_loudness(audio: np.ndarray, sample_rate: Hz) -> LUFS:
    """Integrated loudness of a Scaper event's audio as Scaper 1.6.5 measures it: an event
    shorter than :data:`EVENT_MIN_SECONDS` is tiled (``ceil(0.5 / duration)`` copies) first,
    then :func:`integrated_loudness`. ``audio``: ``(C, T)`` floating point."""
    sr = _check_rate(sample_rate)
    x = _check_audio(audio)
    t = x.shape[1]
    if t < EVENT_MIN_SECONDS * sr:
        x = np.tile(x, (1, int(np.ceil(EVENT_MIN_SECONDS / (t / float(sr))))))
    return integrated_loudness(x, sr)


def _short_loudness(energy: float, frames: int) -> LUFS:
    """An excerpt shorter than one gating block: one block over the whole excerpt."""
    if energy <= 0.0:
        return float("-inf")
    lufs = -0.691 + 10.0 * math.log10(energy / frames)
    return lufs if lufs >= ABSOLUTE_GATE else float("-inf")


def _cumulative(energies: np.ndarray, b: int, positions: np.ndarray) -> np.ndarray:
    """Energy from frame ``k0*b`` up to each absolute frame in ``positions`` (the reference).

    ``energies``: float64 ``(n,)`` sub-block energies; ``positions``: sorted int64 ``(M,)``
    within ``[k0*b, n*b]`` where ``k0 = positions[0] // b`` (sums start at sub-block ``k0`` to
    limit cancellation). Returns float64 ``(M,)``.

    Inside a sub-block the cumulative energy is a monotone cubic (Fritsch-Carlson / PCHIP on
    the sub-block sums): with energies ``p, e, n`` of the previous, this and the next
    sub-block, the part of ``e`` before relative position ``u`` in [0, 1] is
    ``e u^2 (3 - 2u) + h(p, e) u (1-u)^2 - h(e, n) u^2 (1-u)`` with ``h(x, y) = 2xy/(x+y)``.
    For steady signals this is ``e u`` (linear); next to silence it puts the energy on the
    loud side (fades, onsets). The first/last sub-block of an array is its own neighbour.
    ``_loudness_kernels.gate_sums`` computes the same per row (tested against this).
    """
    n = energies.shape[0]
    k0 = int(positions[0]) // b
    k = np.minimum(positions // b, n - 1)
    u = (positions - k * b) / b
    cur = energies.take(k)
    prv = energies.take(k - 1, mode="clip")  # clip: the first/last sub-block is its own
    nxt = energies.take(k + 1, mode="clip")  # neighbour (linear there)
    hp = 2.0 * prv * cur / (prv + cur + 1e-300)
    hn = 2.0 * nxt * cur / (nxt + cur + 1e-300)
    v = 1.0 - u
    uu = u * u
    part = cur * uu * (3.0 - 2.0 * u) + (hp * v - hn * u) * u * v
    cum = np.empty(int(k[-1]) - k0 + 1)
    cum[0] = 0.0
    np.cumsum(energies[k0: int(k[-1])], out=cum[1:])
    return cum[k - k0] + part


def start_correction(corrections: np.ndarray | None, b: int, start: int) -> float:
    """The zero-state correction of an excerpt starting at ``start`` (see
    :func:`zero_state_corrections`): the stored value on the sub-block grid (exact there),
    linear between the two grid frames around ``start`` elsewhere (an approximation: the
    filter's state moves with the signal); 0 without stored corrections. Plain float
    arithmetic (the same on every machine)."""
    if corrections is None:
        return 0.0
    n = corrections.shape[0]
    k = start // b
    u = (start - k * b) / b
    c0 = float(corrections[min(k, n - 1)])
    return c0 if u == 0.0 else c0 + u * (float(corrections[min(k + 1, n - 1)]) - c0)


def excerpt_loudness_reference(energies: np.ndarray, sample_rate: Hz, start: Frames,
                               frames: Frames, corrections: np.ndarray | None = None) -> LUFS:
    """The readable reference of :func:`excerpt_loudness`: plain NumPy, one excerpt.

    Gating blocks are those pyloudnorm forms on the excerpt; each block's energy is the
    cumulative energy (:func:`_cumulative`) at its end minus at its start; the first block
    gets the zero-state correction at the start (:func:`start_correction`, floored at 0),
    then two-stage gating (:func:`_gate`). :func:`excerpt_loudness`/:func:`excerpt_loudness_many` compute the
    same in one compiled pass; they agree with this to float rounding (summation order;
    ``tests/test_loudness_reference.py``). Change the semantics here first.
    """
    sr = _check_rate(sample_rate)
    e = _check_energies(energies)
    start, frames = _check_span(e, sr, start, frames)
    b = sub_block_frames(sr)
    d = start_correction(corrections, b, start)
    if frames < BLOCK_SECONDS * sr:
        c = _cumulative(e, b, np.array([start, start + frames], dtype=np.int64))
        return _short_loudness(max(float(c[1] - c[0]) + d, 0.0), frames)
    c = _cumulative(e, b, start + _block_bounds(frames, sr))
    z = c[4:] - c[:-4]  # block j spans edges j .. j+4
    z[0] = max(z[0] + d, 0.0)
    return _gate(z, sr)


def excerpt_loudness(energies: np.ndarray, sample_rate: Hz, start: Frames, frames: Frames,
                     corrections: np.ndarray | None = None) -> LUFS:
    """Integrated loudness (LUFS) of ``audio[:, start:start + frames]`` from stored energies.

    ``energies``: float64 ``(n_sub,)`` from :func:`block_energies` of the whole stem at
    ``sample_rate``; ``corrections``: its :func:`zero_state_corrections` (None: none applied).
    ``start``/``frames``: any frames (not tied to the 10 ms grid) with
    ``start + frames <= n_sub * sub_block_frames(sample_rate)``.

    Gating blocks are those pyloudnorm forms on the excerpt; each block's energy is the sum of
    the sub-blocks it covers, partial sub-blocks interpolated (monotone cubic, :func:`_cumulative`),
    the first block corrected for pyloudnorm's zero filter state (:func:`start_correction`).
    The batched path (:func:`excerpt_loudness_many`) with one row; its readable reference is
    :func:`excerpt_loudness_reference`.
    Returns ``-inf`` when the excerpt is silent or every block is gated.

    Excerpts shorter than 400 ms (where pyloudnorm raises) are measured as ONE block spanning
    the whole excerpt: ``-0.691 + 10 log10(energy / frames)``, ``-inf`` below the -70 LUFS
    absolute gate.

    Error vs pyloudnorm on the excerpt's samples: see the module doc (on the sub-block grid
    it is float rounding and gating ties only; off the grid the interpolations' error).
    Speed: ``benchmarks/loudness.py``.
    """
    sr = _check_rate(sample_rate)
    e = _check_energies(energies)
    start, frames = _check_span(e, sr, start, frames)
    return float(excerpt_loudness_many((e,), sr, (start,), frames,
                                       None if corrections is None else (corrections,))[0])


def excerpt_loudness_many(energies, sample_rate: Hz, starts, frames: Frames,
                          corrections=None) -> np.ndarray:
    """:func:`excerpt_loudness` of several excerpts of the same length at once.

    ``energies``: a sequence of R float64 ``(n_sub_i,)`` arrays from :func:`block_energies`
    (one per excerpt, e.g. the stems of one track); ``starts``: R start frames; ``frames``:
    the common excerpt length; ``corrections``: None or R entries, each the row's
    :func:`zero_state_corrections` or None. Returns float64 ``(R,)`` LUFS; a row's value does not depend on
    the other rows (``excerpt_loudness`` is this with one row). One compiled call for all rows
    (the mixer looks up every stem of an item together, and every item of a batch).
    The final logarithm is Python's ``math.log10`` per row, not ``np.log10``, whose SIMD
    variants differ by an ulp between processors: values are the same on every machine.
    """
    sr = _check_rate(sample_rate)
    es = [_check_energies(e) for e in energies]
    if len(es) != len(starts):
        raise AudioError(f"excerpt_loudness_many: {len(es)} energy arrays but "
                         f"{len(starts)} starts")
    if not es:
        return np.empty(0)
    b = _sub_block(sr)
    lengths = [e.shape[0] for e in es]
    st = _check_spans(lengths, sr, b, starts, frames, es)
    frames = int(frames)
    if corrections is None:
        corr = [0.0] * len(es)
    elif len(corrections) != len(es):
        raise AudioError(f"excerpt_loudness_many: {len(es)} energy arrays but "
                         f"{len(corrections)} corrections")
    else:
        corr = [start_correction(c, b, s) for c, s in zip(corrections, st.tolist())]
    if frames < BLOCK_SECONDS * sr:
        edges = np.array([0, frames], dtype=np.int64)
        return np.array([_short_loudness(max(float(c[1] - c[0]) + d, 0.0), frames)
                         for c, d in zip((_cumulative(e, b, s + edges)
                                          for e, s in zip(es, st.tolist())), corr)])
    from . import _loudness_kernels as kern  # lazy: keeps numba off the CLI's start-up path

    norm = BLOCK_SECONDS * sr
    bounds = _block_bounds(frames, sr)
    positions = st[:, None] + bounds
    # each row's sub-blocks that the kernel reads (~500 per 5 s row), gathered into one array;
    # a few rows (one item's stems) in plain ints, many (a batch) in numpy
    if len(es) <= _FEW_ROWS:
        first, last = int(bounds[0]), int(bounds[-1])
        spans = [kern.window(s + first, s + last, b, n) for s, n in zip(st.tolist(), lengths)]
        lo = [w[0] for w in spans]
        hi = [w[1] for w in spans]
        base = [0, *itertools.accumulate(h - l for l, h in spans)]
    else:
        lo_a, hi_a = kern.windows(positions[:, 0], positions[:, -1], b,
                                  np.array(lengths, dtype=np.int64))
        lo, hi = lo_a.tolist(), hi_a.tolist()
        base = [0, *itertools.accumulate((hi_a - lo_a).tolist())]
    buf = _scratch(base[-1])
    for e, a, z, k0, k1 in zip(es, base, base[1:], lo, hi):
        buf[a:z] = e[k0:k1]
    s2, n2, ok = kern.gate_sums(buf, np.array(base, dtype=np.int64),
                                np.array(lo, dtype=np.int64),
                                np.array(lengths, dtype=np.int64), positions, b,
                                _ABS_GATE_POWER * norm, _REL_GATE_FACTOR,
                                np.array(corr, dtype=np.float64))
    log10, inf = math.log10, -math.inf
    return np.array([-0.691 + 10.0 * log10(s / (n * norm)) if k else inf
                     for s, n, k in zip(s2.tolist(), n2.tolist(), ok.tolist())])


#: up to this many rows, :func:`excerpt_loudness_many` works out their windows in plain ints
#: (numpy's per-call cost dominates on a handful of rows)
_FEW_ROWS = 16


_local = threading.local()


def _scratch(n: int) -> np.ndarray:
    """A float64 ``(n,)`` work array reused by this thread's calls (a fresh megabyte per call
    would be fresh pages from the OS each time, costing more than filling it)."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.shape[0] < n:
        buf = _local.buf = np.empty(max(n, 1 << 16))
    return buf[:n]


def _check_spans(lengths: list, sr: int, b: int, starts, frames, es) -> np.ndarray:
    """:func:`_check_span` of every row at once: int64 ``(R,)`` starts. When a row fails, the
    per-row check runs to raise the same message it would."""
    if type(frames) is int and frames >= 1 and \
            all(type(x) is int and 0 <= x and x + frames <= n * b
                for x, n in zip(starts, lengths)):
        return np.array(starts, dtype=np.int64)
    return np.array([_check_span(e, sr, x, frames)[0] for e, x in zip(es, starts)],
                    dtype=np.int64)


def _readonly(e: np.ndarray) -> np.ndarray:
    """A read-only contiguous float64 plain ndarray (one kernel type for memmaps and arrays):
    ``e`` itself when it already is one (the index keeps its energies that way)."""
    if type(e) is np.ndarray and not e.flags.writeable and e.flags.c_contiguous \
            and e.dtype == np.float64:
        return e
    v = np.ascontiguousarray(e, dtype=np.float64).view(np.ndarray)
    v.flags.writeable = False
    return v


# ----------------------------------------------------------------------------- activity
def _window_loudness(e: np.ndarray, sr: int, start: int, frames: int, window: Seconds) -> np.ndarray:
    """Loudness ``(n_windows,)`` of consecutive ``window``-second windows from ``start``.

    ``n_windows = ceil(frames / w)`` with ``w = round(window * sr)``; the last window may be
    shorter and is measured over the frames it has.
    """
    if isinstance(window, (bool, np.bool_)) or not isinstance(window, (int, float, np.number)):
        raise AudioError(f"activity window must be a number of seconds, got {window!r}")
    if not math.isfinite(window) or int(round(float(window) * sr)) < 1:
        raise AudioError(
            f"activity window must be a positive number of seconds of at least one frame "
            f"at {sr} Hz, got {window!r}"
        )
    w = int(round(float(window) * sr))
    pos = np.minimum(np.arange(start, start + frames + w, w, dtype=np.int64), start + frames)
    pos = pos[: -(-frames // w) + 1]
    c = _cumulative(e, sub_block_frames(sr), pos)
    energy = np.maximum(np.diff(c), 0.0)
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(energy / np.diff(pos))


def _check_threshold(threshold_db) -> float:
    if isinstance(threshold_db, (bool, np.bool_)) or not isinstance(
        threshold_db, (int, float, np.number)
    ) or math.isnan(threshold_db):
        raise AudioError(f"activity threshold_db must be a number of dB (LUFS), got {threshold_db!r}")
    return float(threshold_db)


def active_fraction(
    energies: np.ndarray,
    sample_rate: Hz,
    start: Frames,
    frames: Frames,
    threshold_db: Decibels = -60.0,
    window: Seconds = 0.1,
) -> float:
    """Fraction in [0, 1] of the excerpt's ``window``-second windows that are active.

    The excerpt ``[start, start + frames)`` is cut into ``ceil(frames / round(window*sr))``
    consecutive windows from ``start`` (the last may be shorter); a window is active when its
    K-weighted loudness ``-0.691 + 10 log10(mean channel-weighted power)`` exceeds
    ``threshold_db``. ``energies``: float64 ``(n_sub,)`` from :func:`block_energies`.
    """
    sr = _check_rate(sample_rate)
    e = _check_energies(energies)
    thr = _check_threshold(threshold_db)
    start, frames = _check_span(e, sr, start, frames)
    return float(np.mean(_window_loudness(e, sr, start, frames, window) > thr))


def activity_mask(
    energies: np.ndarray,
    sample_rate: Hz,
    threshold_db: Decibels = -60.0,
    window: Seconds = 0.1,
) -> np.ndarray:
    """Activity of the whole stem: bool ``(ceil(n_sub * B / w),)``, one entry per window.

    Windows of ``w = round(window * sample_rate)`` frames from frame 0 over the energies' span
    ``n_sub * B`` frames (``B = sub_block_frames(sample_rate)``); entry ``i`` is True when
    window ``i``'s K-weighted loudness exceeds ``threshold_db`` (as in
    :func:`active_fraction`). The stem's last sub-block is usually partial, so the final
    window's power is slightly underestimated (its missing frames count as silence).
    """
    sr = _check_rate(sample_rate)
    e = _check_energies(energies)
    thr = _check_threshold(threshold_db)
    span = e.shape[0] * sub_block_frames(sr)
    return _window_loudness(e, sr, 0, span, window) > thr
