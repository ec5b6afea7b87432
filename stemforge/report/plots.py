"""matplotlib figures of the report. Each function is pure: data in, a new ``Figure`` out.

The HTML report saves these very figures as PNG; notebooks get them from the same functions
(see :mod:`stemforge.report` for the high-level ``*_figures`` helpers). Figures are built with
the object API (``matplotlib.figure.Figure``), never pyplot state, so they work under Agg and
in threads; in a notebook, display a returned figure by leaving it as the cell's last value.
"""
from __future__ import annotations

import io
import math
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..types import Decibels, Hz

SPEC_NFFT = 1024
SPEC_HOP = 512
SPEC_FLOOR_DB: Decibels = -100.0


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    return a[np.isfinite(a)]


def spectrogram_db(audio: np.ndarray, sample_rate: Hz, nfft: int = SPEC_NFFT,
                   hop: int = SPEC_HOP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram of the channel mean of float32 ``(channels, frames)`` audio.

    Returns ``(db (bins, steps), freqs (bins,), times (steps,))``; dB re full scale, floored at
    ``SPEC_FLOOR_DB``.
    """
    from scipy.signal import stft

    x = np.asarray(audio, dtype=np.float32)
    x = x.mean(axis=0) if x.ndim == 2 else x
    if x.shape[-1] < nfft:
        x = np.pad(x, (0, nfft - x.shape[-1]))
    f, t, z = stft(x, fs=sample_rate, window="hann", nperseg=nfft, noverlap=nfft - hop,
                   boundary=None, padded=False)
    p = (np.abs(z) ** 2) * 4.0  # one-sided, hann window scaled by scipy: back to ~full scale
    db = 10.0 * np.log10(np.maximum(p, 10 ** (SPEC_FLOOR_DB / 10)))
    return db.astype(np.float32), f, t


def spectrogram_figure(signals: Mapping[str, np.ndarray], sample_rate: Hz,
                       title: str = "", width: float = 7.0, row_height: float = 1.25,
                       max_freq: float = 16000.0) -> Figure:
    """One spectrogram row per named ``(channels, frames)`` signal (e.g. mix, then targets),
    sharing one colour scale (dB FS).

    Laid out with fixed margins (inches), not constrained layout: a report draws one of these
    per mixture and constrained layout would double the drawing time.
    """
    names = list(signals)
    rows = max(1, len(names))
    top_in = 0.4 if title else 0.15
    left_in, right_in, bottom_in = 0.75, 0.95, 0.45
    height = top_in + bottom_in + row_height * rows
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left_in / width, right=1 - right_in / width,
                        top=1 - top_in / height, bottom=bottom_in / height, hspace=0.12)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    im = None
    for ax, name in zip(axes, names):
        db, f, t = spectrogram_db(signals[name], sample_rate)
        top = min(max_freq, sample_rate / 2)
        keep = f <= top
        im = ax.imshow(db[keep], origin="lower", aspect="auto", cmap="magma",
                       vmin=SPEC_FLOOR_DB + 20, vmax=0.0,
                       extent=(0.0, float(t[-1]) if len(t) else 0.0, 0.0, top / 1000))
        ax.set_ylabel(f"{name}\nkHz", fontsize=8)
        ax.tick_params(labelsize=7)
    if not names:
        axes[0].text(0.5, 0.5, "no audio", ha="center", va="center")
    axes[-1].set_xlabel("time (s)", fontsize=8)
    if im is not None:
        cax = fig.add_axes((1 - (right_in - 0.12) / width, bottom_in / height, 0.12 / width,
                            1 - (top_in + bottom_in) / height))
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("dB FS", fontsize=8)
        cax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.08 / height, va="top")
    return fig


def histogram_figure(groups: Mapping[str, Sequence[float]], title: str, xlabel: str,
                     bins: int = 20) -> Figure:
    """Overlaid histograms of several named value lists (non-finite values are left out and
    counted in the legend)."""
    fig = Figure(figsize=(4.6, 2.8), layout="constrained")
    ax = fig.subplots()
    data = {k: _finite(v) for k, v in groups.items()}
    allv = np.concatenate([v for v in data.values() if len(v)] or [np.zeros(0)])
    if len(allv):
        lo, hi = float(allv.min()), float(allv.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        for name, v in data.items():
            dropped = len(groups[name]) - len(v)
            label = f"{name} (n={len(v)}" + (f", {dropped} not finite)" if dropped else ")")
            ax.hist(v, bins=edges, alpha=0.6, label=label)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("count", fontsize=8)
    ax.tick_params(labelsize=7)
    return fig


def bar_figure(counts: Mapping[str, int], title: str, ylabel: str = "count") -> Figure:
    """Bars of named counts (e.g. mixtures per mode)."""
    fig = Figure(figsize=(3.6, 2.8), layout="constrained")
    ax = fig.subplots()
    names = list(counts)
    ax.bar(names, [counts[n] for n in names], color="#4c72b0")
    for i, n in enumerate(names):
        ax.annotate(str(counts[n]), (i, counts[n]), ha="center", va="bottom", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    return fig


def boxplot_figure(groups: Mapping[str, Sequence[float]], title: str, ylabel: str) -> Figure:
    """Boxplots of named value lists, one box per name (non-finite values left out), with the
    individual values drawn on top so a box of 1-3 values still shows them."""
    names = list(groups)
    fig = Figure(figsize=(max(3.6, 0.9 * len(names) + 1.5), 3.0), layout="constrained")
    ax = fig.subplots()
    data = [_finite(groups[n]) for n in names]
    shown = [(i, d) for i, d in enumerate(data) if len(d)]
    if shown:
        ax.boxplot([d for _, d in shown], positions=[i + 1 for i, _ in shown], widths=0.55,
                   showfliers=False)
        rng = np.random.default_rng(0)  # jitter only: fixed so the picture is reproducible
        for i, d in shown:
            ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, len(d)), d, s=6, alpha=0.5,
                       color="#4c72b0")
    else:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30 if len(names) > 4 else 0)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    return fig


def activity_figure(masks: Mapping[str, np.ndarray], window: float, title: str = "") -> Figure:
    """Stem activity over time: one row per stem, dark where the stem is active.

    ``masks`` name -> boolean ``(windows,)``; ``window`` seconds per entry.
    """
    names = list(masks)
    fig = Figure(figsize=(7.0, 0.5 + 0.28 * max(1, len(names))), layout="constrained")
    ax = fig.subplots()
    n = max((len(m) for m in masks.values()), default=0)
    grid = np.zeros((max(1, len(names)), max(1, n)))
    for i, name in enumerate(names):
        m = np.asarray(masks[name], dtype=float)
        grid[i, :len(m)] = m
    ax.imshow(grid, aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="nearest",
              extent=(0, n * window, len(names) - 0.5, -0.5))
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def image_bytes(fig: Figure, fmt: str = "png", dpi: int = 80, quality: int = 70) -> bytes:
    """Render ``fig`` to PNG or JPEG bytes (Agg canvas). JPEG (``quality``) suits
    spectrograms: about 8x smaller than PNG for the same picture."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    kw = {"pil_kwargs": {"quality": quality}} if fmt in ("jpg", "jpeg") else {}
    fig.savefig(buf, format=fmt, dpi=dpi, **kw)
    return buf.getvalue()


def fmt(x, digits: int = 1, unit: str = "") -> str:
    """Number for a table cell: '-inf', '–' for None/NaN, else fixed digits."""
    if x is None:
        return "–"
    x = float(x)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    return f"{x:.{digits}f}{unit}"
