"""BSS Eval v4, images mode — the numbers of ``museval.evaluate(refs, ests, win, hop, mode='v4')``.

Shapes: ``references`` and ``estimates`` are ``(nsrc, channels, frames)`` (our convention;
museval takes ``(nsrc, frames, channels)``), or sequences of ``(channels, frames)`` arrays.
Computation is float64 throughout (float32 inputs stay float32 in memory — half the size — and
every sample is taken to float64 before any arithmetic: the scores of their float64 copies).

What museval does, and what we reproduce:

* Distortion filters of length ``filters_len`` (512) are solved ONCE on the whole track
  (v3 re-solves per frame): ``C`` projects estimate ``j`` onto all delayed reference channels,
  ``C_j`` onto the delayed channels of reference ``j`` only. Normal equations ``(G + eps I) C = D``.
* Frames: ``nwin = floor((N - win + hop) / hop)`` when ``win < N`` (a trailing partial window is
  dropped), else one frame over the whole signal. Projections are frame-local: the frame's
  reference samples are convolved with the whole-track filters (full length ``win + L - 1``).
* Per frame and source: ``s`` = reference, ``P_j`` = its own-channel projection, ``P`` = the
  projection on all references, ``ŝ`` = estimate; ``SDR = |s|²/|ŝ-s|²``,
  ``ISR = |s|²/|P_j-s|²``, ``SIR = |P_j|²/|P-P_j|²``, ``SAR = |P|²/|ŝ-P|²`` (dB). A zero
  denominator gives ``+inf`` (museval's ``_safe_db``).
* A frame where any reference or any estimate is silent (channel sum zero at every sample) is
  NaN for every source. A source silent over the whole track is an error.
* Estimates of another length are zero-padded at the end or trimmed to the reference length
  (museval ``padding=True``); with ``padding=False`` a length mismatch is an error.

How it is faster (same maths): whole-track lagged correlations from chunked FFTs (one pass,
cross-spectra summed over chunks), one block-Toeplitz solve for all estimates (block Levinson,
refined and residual-checked, dense fallback) instead of one dense LU per estimate, and all frame
projections and energies in the frequency domain (Parseval), per frame and block of bins. The
cross-spectrum sums, the Levinson recursions, the projections with their five energies and the
time-domain frame energies are compiled loops (:mod:`stemforge.metrics._kernels`, numba,
imported on first use): no large temporaries beyond the frame spectra themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..types import Frames
from . import scratch, toeplitz
from .toeplitz import fast_len
from .validate import as_stack, check_pair

FRAME_CACHE_BYTES = 768 * 2**20  # keep per-frame spectra from the correlation pass up to this
GROUP_ELEMS = 1 << 21  # frame-spectrum elements projected per step


@dataclass(frozen=True)
class BSSEvalScores:
    """Framewise scores in dB, each ``(nsrc, nwin)`` float64; ``win``/``hop`` in samples."""

    sdr: np.ndarray
    isr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray
    win: Frames
    hop: Frames

    def metric(self, name: str) -> np.ndarray:
        return {"SDR": self.sdr, "ISR": self.isr, "SIR": self.sir, "SAR": self.sar}[name.upper()]


def frame_count(n: Frames, win: Frames, hop: Frames) -> int:
    """museval's ``Framing.nwin``."""
    if win < n:
        return int(np.floor((n - win + hop) / hop))
    return 1


def frame_bounds(n: Frames, win: Frames, hop: Frames) -> list[tuple[int, int]]:
    """(start, stop) of each frame, as museval's ``Framing`` iterator yields them."""
    if win >= n:
        return [(0, n)]
    return [(t * hop, min(t * hop + win, n)) for t in range(frame_count(n, win, hop))]


def _db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10 * np.log10(num / den)
    return np.where(den == 0, np.inf, out)


def _parseval_weights(nfft: int) -> np.ndarray:
    w = np.full(nfft // 2 + 1, 2.0)
    w[0] = 1.0
    if nfft % 2 == 0:
        w[-1] = 1.0
    return w / nfft


def _filters(R, D, nsrc, nch, L, solver):
    """Whole-track filters: all references ``(L, m, m)`` (estimate channel ``c`` of ``D``'s
    columns is column ``c``), and each source's own ``(nsrc, L, nch, nch)``."""
    h_all = toeplitz.solve(R, D, method=solver)
    Rj = np.stack([R[:, j * nch : (j + 1) * nch, j * nch : (j + 1) * nch] for j in range(nsrc)])
    Dj = np.stack([D[:, j * nch : (j + 1) * nch, j * nch : (j + 1) * nch] for j in range(nsrc)])
    h_own = toeplitz.solve(Rj, Dj, method=solver)  # (nsrc, L, nch, nch), one batched recursion
    return h_all, h_own


def _filter_spectra(h_all, h_own, nfft):
    """Filter spectra in the projection kernel's layout: ``hall`` (m, m, F) from reference
    channel ``i`` to output ``c``; ``hown`` (nch, m, F) from channel ``i`` of output ``c``'s
    source to ``c``."""
    nsrc, L, nch, _ = h_own.shape
    m = nsrc * nch
    F = nfft // 2 + 1
    # in the summed cross-spectra's buffer: they are dead once the correlations are out
    both = scratch.empty(toeplitz.SUMS, (m * m + nch * m, F), np.complex128)
    hall = both[: m * m].reshape(m, m, F)
    hown = both[m * m :].reshape(nch, m, F)
    np.fft.rfft(np.ascontiguousarray(h_all.transpose(1, 2, 0)), n=nfft, axis=-1, out=hall)
    own = np.ascontiguousarray(h_own.transpose(2, 0, 3, 1)).reshape(nch, m, L)
    np.fft.rfft(own, n=nfft, axis=-1, out=hown)
    return hall, hown


def _frame_spectra(x, y, starts, flen, nfft, out):
    """Spectra of the zero-padded frames ``[a, a + flen)`` for ``a`` in ``starts`` (evenly
    spaced) of references then estimates into ``out`` (m + q, len(starts), nfft // 2 + 1)."""
    m = x.shape[0]
    hop = int(starts[1] - starts[0]) if len(starts) > 1 else 1
    for src, rows in ((x, slice(0, m)), (y, slice(m, None))):
        seg = np.lib.stride_tricks.sliding_window_view(src, flen, axis=1)
        seg = seg[:, starts[0] : starts[-1] + 1 : hop]  # (rows, frames, flen) view
        np.fft.rfft(seg, n=nfft, axis=-1, out=out[rows])
    return out


def bss_eval_v4(
    references,
    estimates,
    win: Frames = 44100,
    hop: Frames = 44100,
    filters_len: int = 512,
    padding: bool = True,
    names: Sequence[str] | None = None,
    solver: str = "auto",
    threads: int = 1,
) -> BSSEvalScores:
    """BSS Eval v4 images-mode SDR, ISR, SIR, SAR per source and frame (museval-identical maths).

    ``references``, ``estimates``: ``(nsrc, channels, frames)`` or sequences of
    ``(channels, frames)``; estimates may be longer/shorter (trimmed / zero-padded, see module doc).
    ``names`` label sources in error messages. ``solver``: "auto" (block Levinson, checked, with
    dense fallback) or "dense". ``threads`` > 1 splits the correlation and projection passes
    over that many threads (same numbers; for a single call on an otherwise idle machine — keep 1
    when tracks already run in parallel). Returns :class:`BSSEvalScores` with ``(nsrc, nwin)``
    arrays. Raises :class:`~stemforge.metrics.validate.MetricsError` on inconsistent input.
    """
    refs = as_stack(references, "references", names, keep_float32=True)
    ests = as_stack(estimates, "estimates", names, keep_float32=True)
    refs, ests = check_pair(refs, ests, names, padding=padding)
    return bss_eval_v4_checked(refs, ests, win, hop, filters_len, solver, threads)


def bss_eval_v4_checked(refs: np.ndarray, ests: np.ndarray, win: Frames = 44100,
                        hop: Frames = 44100, filters_len: int = 512, solver: str = "auto",
                        threads: int = 1) -> BSSEvalScores:
    """:func:`bss_eval_v4` on float64 (or both float32) ``(nsrc, channels, frames)`` stacks that
    :func:`~stemforge.metrics.validate.check_pair` already passed (same length, finite,
    no silent source): for callers that check once for several metrics."""
    nsrc, nch, n = refs.shape
    L = int(filters_len)
    m = nsrc * nch
    x = np.ascontiguousarray(refs.reshape(m, n))
    y = np.ascontiguousarray(ests.reshape(m, n))
    bounds = frame_bounds(n, win, hop)
    nwin = len(bounds)

    aligned = win >= n or (hop == win and win >= L - 1)  # frames = correlation chunks
    block = min(win, n) if aligned else max(toeplitz.BLOCK, L)
    nc = -(-n // block)
    nfft_guess = fast_len(block + L - 1)
    keep = aligned and nc * 2 * m * (nfft_guess // 2 + 1) * 16 <= FRAME_CACHE_BYTES
    R, D, kept, nfft = toeplitz.correlations(x, y, L, block=block, keep=keep, threads=threads)
    h_all, h_own = _filters(R, D, nsrc, nch, L, solver)

    starts = np.array([a for a, _ in bounds], np.int64)
    stops = np.array([b for _, b in bounds], np.int64)
    flen = int(stops[0] - starts[0])  # every frame has this length (see frame_bounds)
    if kept is None:
        nfft = fast_len(flen + L - 1)
    hall, hown = _filter_spectra(h_all, h_own, nfft)
    hall_f, hown_f = hall.view(np.float64), hown.view(np.float64)
    w = _parseval_weights(nfft)
    F = nfft // 2 + 1
    energies = np.zeros((5, nwin, nsrc))
    group = nwin if kept is not None else max(1, min(nwin, GROUP_ELEMS // (2 * m * F)))
    nthreads = max(1, min(threads, nwin))
    if nthreads > 1:
        group = min(group, -(-nwin // nthreads))

    def project(firsts):  # frame groups starting at ``firsts``; writes their frames only
        from .kernels import kernels  # loaded where first needed, after the transforms

        buf = None
        for f0 in firsts:
            f1 = min(nwin, f0 + group)
            if kept is not None:
                spec, t0, t1 = kept, f0, f1
            else:  # one buffer per worker, reused by its groups (no fresh pages per group)
                if buf is None:
                    buf = np.empty((2 * m, group, F), np.complex128)
                dst = buf[:, : f1 - f0]
                spec, t0, t1 = _frame_spectra(x, y, starts[f0:f1], flen, nfft, dst), 0, f1 - f0
            part = np.zeros((5, t1 - t0, nsrc))
            kernels().projection_energies(spec.view(np.float64), t0, t1, hall_f, hown_f, w, nch,
                                         part)
            energies[:, f0:f1] = part

    firsts = list(range(0, nwin, group))
    if nthreads > 1 and len(firsts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(nthreads) as pool:
            list(pool.map(project, [firsts[i::nthreads] for i in range(nthreads)]))
    else:
        project(firsts)
    isr_den, sir_num, sir_den, sar_num, sar_den = energies

    s_energy, err_energy, silent = _frame_energies(x.reshape(nsrc, nch, n),
                                                   y.reshape(nsrc, nch, n), starts, stops)
    out = [
        _db(s_energy, err_energy),
        _db(s_energy, isr_den),
        _db(sir_num, sir_den),
        _db(sar_num, sar_den),
    ]
    for arr in out:
        arr[silent] = np.nan
    sdr, isr, sir, sar = (np.ascontiguousarray(a.T) for a in out)
    return BSSEvalScores(sdr, isr, sir, sar, int(win), int(hop))


def _frame_energies(refs: np.ndarray, ests: np.ndarray, starts: np.ndarray, stops: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(|s|^2, |ŝ - s|^2)`` per frame and source ((nwin, nsrc) float64) and the frames'
    silence flags ((nwin,) bool). In images mode the four error terms sum to ``ŝ - s``, so the
    SDR of a frame is the ratio of the two and needs no distortion filters."""
    from .kernels import kernels

    nsrc = refs.shape[0]
    nwin = len(starts)
    s_energy = np.empty((nwin, nsrc))
    err_energy = np.empty((nwin, nsrc))
    silent = np.empty(nwin, np.bool_)
    kernels().frame_energies(refs, ests, starts, stops, s_energy, err_energy, silent)
    return s_energy, err_energy, silent


def bss_eval_v4_sdr(references, estimates, win: Frames = 44100, hop: Frames = 44100,
                    padding: bool = True, names: Sequence[str] | None = None) -> np.ndarray:
    """The SDR of :func:`bss_eval_v4` alone, ``(nsrc, nwin)`` float64 dB: the same frames,
    silence rule (NaN) and checks, without solving the distortion filters that ISR/SIR/SAR
    need (SDR does not depend on them in images mode). Costs about one pass over the audio."""
    refs = as_stack(references, "references", names, keep_float32=True)
    ests = as_stack(estimates, "estimates", names, keep_float32=True)
    refs, ests = check_pair(refs, ests, names, padding=padding)
    n = refs.shape[-1]
    bounds = frame_bounds(n, win, hop)
    starts = np.array([a for a, _ in bounds], np.int64)
    stops = np.array([b for _, b in bounds], np.int64)
    s_energy, err_energy, silent = _frame_energies(np.ascontiguousarray(refs),
                                                   np.ascontiguousarray(ests), starts, stops)
    sdr = _db(s_energy, err_energy)
    sdr[silent] = np.nan
    return np.ascontiguousarray(sdr.T)


def load_kernels(nsrc: int, channels: int) -> None:
    """Load every compiled kernel that scoring ``nsrc`` sources of ``channels`` channels calls
    (:func:`bss_eval_v4` and the whole-track metrics, on float32 stacks as ``stemforge
    evaluate`` reads them), by scoring a tiny made-up problem (16-tap filters, three 64-sample
    frames): the ahead-of-time build (:mod:`.kernels`; about a millisecond, plus SciPy's BLAS
    table when the block recursion uses BLAS) or numba's kernels (its import and cache loads,
    ~0.7 s; compiles on a new machine). The kernels depend on the block size
    ``nsrc * channels`` (plain loops below :data:`toeplitz.SMALL_BLOCK`), not on lengths."""
    from .whole import whole_track

    rng = np.random.default_rng(0)
    refs = rng.standard_normal((nsrc, channels, 192)).astype(np.float32)
    ests = (refs + 0.1 * rng.standard_normal(refs.shape)).astype(np.float32)
    bss_eval_v4(refs, ests, win=64, hop=64, filters_len=16)
    whole_track(refs, ests, win=64)
