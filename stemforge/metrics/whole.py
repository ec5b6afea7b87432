"""SI-SDR, MDX SDR (= SDX uSDR) and SDX cSDR of one track from shared sums: the fast path.

The definitions are :func:`~stemforge.metrics.sisdr.si_sdr`, :func:`~stemforge.metrics.sisdr.mdx_sdr`
and :func:`~stemforge.metrics.sdx.csdr` (the readable references; their docstrings give the
formulas, silence and padding rules). Computed one by one they check their inputs and make
several full-length temporaries each (~0.3 CPU-s for a 22 s stereo 4-source track); here the
inputs are checked once and BSS Eval's compiled frame-energy pass
(:func:`~stemforge.metrics._kernels.frame_energies`: ``sum s^2`` and ``sum (ŝ - s)^2`` per frame
and source) gives the sums: over the chunks and the whole track in one call (cSDR, MDX SDR), and
:func:`~stemforge.metrics._kernels.dot_sums` SI-SDR's ``|s|^2`` and ``<ŝ, s>`` (``a = <ŝ, s> /
|s|^2``) in one pass, :func:`~stemforge.metrics._kernels.scaled_error_sums` its target's and
error's energies (``|a s|^2``, ``|ŝ - a s|^2``) in another. The stacks may be float32 (``stemforge evaluate`` reads files into
float32 stacks: exact for its float32 and 16-bit sources); every sum is formed in float64. The
results equal the references' up to summation order (~1e-12 dB; tested in
``tests/test_metrics_whole.py``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .sdx import chunk_db, chunk_median, chunk_starts
from .sisdr import mdx_db, si_sdr_db
from .validate import as_stack, check_pair

#: the names of :func:`whole_track`'s results, as ``stemforge evaluate`` reports them
NAMES = ("SI-SDR", "MDX-SDR", "cSDR")


def _known(which: Sequence[str]) -> None:
    bad = [w for w in which if w not in NAMES]
    if bad:
        raise ValueError(f"unknown whole-track metric(s) {bad}; expected some of {NAMES}")


def whole_track(references, estimates, win: int = 44100, hop: int | None = None,
                names: Sequence[str] | None = None, padding: bool = True,
                which: Sequence[str] = NAMES) -> dict[str, np.ndarray]:
    """``{name: (nsrc,) dB}`` for the metrics of ``which`` (a subset of :data:`NAMES`).

    ``references``/``estimates``: ``(nsrc, channels, frames)`` (estimates zero-padded / trimmed
    as the references do); ``win``/``hop``: cSDR chunk length and hop in frames (``hop``
    defaults to ``win``).
    """
    _known(which)
    refs, ests = check_pair(as_stack(references, "references", names, keep_float32=True),
                            as_stack(estimates, "estimates", names, keep_float32=True), names,
                            padding=padding,
                            require_nonsilent=False)
    return whole_track_checked(refs, ests, win, hop, which)


def whole_track_checked(refs: np.ndarray, ests: np.ndarray, win: int = 44100,
                        hop: int | None = None, which: Sequence[str] = NAMES
                        ) -> dict[str, np.ndarray]:
    """:func:`whole_track` on float64 ``(nsrc, channels, frames)`` stacks that
    :func:`~stemforge.metrics.validate.check_pair` already passed (same length, finite)."""
    from .kernels import kernels

    _known(which)
    refs, ests = np.ascontiguousarray(refs), np.ascontiguousarray(ests)
    nsrc, _, n = refs.shape
    out: dict[str, np.ndarray] = {}

    def energies(x, starts, stops, y=ests):  # (frames, sources) sum x^2 and sum (y - x)^2
        s_e = np.empty((len(starts), x.shape[0]))
        d_e = np.empty_like(s_e)
        kernels().frame_energies(x, y, np.asarray(starts, np.int64),
                                np.asarray(stops, np.int64), s_e, d_e,
                                np.empty(len(starts), np.bool_))
        return s_e, d_e

    starts = np.zeros(0, np.int64)
    if "cSDR" in which:
        starts = chunk_starts(n, win, win if hop is None else hop)
    stops = np.minimum(starts + win, n)
    num, den = energies(refs, np.append(starts, 0), np.append(stops, n))  # chunks, whole
    if "MDX-SDR" in which:
        out["MDX-SDR"] = mdx_db(num[-1], den[-1])
    if "cSDR" in which:
        out["cSDR"] = chunk_median(chunk_db(num[:-1].T, den[:-1].T))
    if "SI-SDR" in which:
        # |s|^2 and <ŝ, s> in the same order (a perfect estimate gets exactly alpha = 1, so
        # zero error and +inf)
        ss, es = np.empty(nsrc), np.empty(nsrc)
        kernels().dot_sums(refs, ests, ss, es)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = es / ss
        tt, ee = np.empty(nsrc), np.empty(nsrc)
        # |alpha s|^2 and |ŝ - alpha s|^2 in one pass (a silent reference: alpha is NaN -> NaN)
        kernels().scaled_error_sums(refs, ests, alpha, tt, ee)
        out["SI-SDR"] = si_sdr_db(ss, tt, ee)
    return {k: out[k] for k in which}
