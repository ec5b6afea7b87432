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

SPEC_NFFT = 2048        # 21.5 Hz bins at 44.1 kHz: enough detail for a log-frequency axis
SPEC_HOP = 512
SPEC_FLOOR_DB: Decibels = -100.0
SPEC_FMIN: Hz = 30       # bottom of the log-frequency axis
SPEC_ROWS = 240          # image rows of the log-frequency axis
SPEC_INTERP = "bilinear"  # smooth up-sampling of the log-frequency rows (and ~25 % smaller files)
FREQ_TICKS = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
TITLE_SIZE, LABEL_SIZE, TICK_SIZE = 10, 9, 8   # points; figures show at 80 CSS px per inch
METHOD_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860",
                 "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd")


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


def log_frequency_rows(db: np.ndarray, freqs: np.ndarray, fmin: float, fmax: float,
                       rows: int = SPEC_ROWS) -> np.ndarray:
    """Resample a linear-frequency spectrogram ``db (bins, steps)`` onto ``rows`` log-spaced
    frequencies from ``fmin`` to ``fmax`` (linear interpolation between bins) -> ``(rows,
    steps)``."""
    grid = np.geomspace(fmin, fmax, rows)
    pos = np.interp(grid, freqs, np.arange(len(freqs), dtype=float))
    lo = np.minimum(np.floor(pos).astype(int), len(freqs) - 2)
    w = (pos - lo)[:, None].astype(np.float32)
    return db[lo] * (1 - w) + db[lo + 1] * w


def _freq_label(f: float) -> str:
    return f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"


def spectrogram_figure(signals: Mapping[str, np.ndarray], sample_rate: Hz,
                       title: str = "", width: float = 9.0, row_height: float = 1.3,
                       max_freq: float = 16000.0) -> Figure:
    """One spectrogram row per named ``(channels, frames)`` signal (e.g. mix, then targets),
    sharing one colour scale (dB FS), on a log-frequency axis (30 Hz to ``max_freq``).

    Laid out with fixed margins (inches), not constrained layout: a report draws one of these
    per mixture and constrained layout would double the drawing time.
    """
    names = list(signals)
    rows = max(1, len(names))
    top_in = 0.4 if title else 0.15
    left_in, right_in, bottom_in = 0.95, 1.0, 0.5
    height = top_in + bottom_in + row_height * rows
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left_in / width, right=1 - right_in / width,
                        top=1 - top_in / height, bottom=bottom_in / height, hspace=0.15)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    im = None
    top = min(max_freq, sample_rate / 2)
    ticks = [f for f in FREQ_TICKS if SPEC_FMIN <= f <= top]
    span = np.log(top / SPEC_FMIN)
    for ax, name in zip(axes, names):
        db, f, t = spectrogram_db(signals[name], sample_rate)
        img = log_frequency_rows(db, f, SPEC_FMIN, top)
        im = ax.imshow(img, origin="lower", aspect="auto", cmap="magma",
                       vmin=SPEC_FLOOR_DB + 20, vmax=0.0, interpolation=SPEC_INTERP,
                       extent=(0.0, float(t[-1]) if len(t) else 0.0, 0.0, 1.0))
        ax.set_yticks([np.log(x / SPEC_FMIN) / span for x in ticks],
                      [_freq_label(x) for x in ticks])
        ax.set_ylabel(f"{name}\nHz", fontsize=LABEL_SIZE)
        ax.tick_params(labelsize=TICK_SIZE)
    if not names:
        axes[0].text(0.5, 0.5, "no audio", ha="center", va="center")
    axes[-1].set_xlabel("time (s)", fontsize=LABEL_SIZE)
    if im is not None:
        cax = fig.add_axes((1 - (right_in - 0.12) / width, bottom_in / height, 0.12 / width,
                            1 - (top_in + bottom_in) / height))
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("dB FS", fontsize=LABEL_SIZE)
        cax.tick_params(labelsize=TICK_SIZE)
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE, y=1 - 0.08 / height, va="top")
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
        ax.legend(fontsize=TICK_SIZE)
    else:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    ax.set_ylabel("count", fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)
    return fig


def bar_figure(counts: Mapping[str, int], title: str, ylabel: str = "count") -> Figure:
    """Bars of named counts (e.g. mixtures per mode)."""
    fig = Figure(figsize=(3.6, 2.8), layout="constrained")
    ax = fig.subplots()
    names = list(counts)
    ax.bar(names, [counts[n] for n in names], color="#4c72b0")
    for i, n in enumerate(names):
        ax.annotate(str(counts[n]), (i, counts[n]), ha="center", va="bottom", fontsize=LABEL_SIZE)
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)
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
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)
    return fig


def method_boxplot_figure(values: Mapping[str, Mapping[str, Sequence[float]]], title: str,
                          ylabel: str = "dB per track") -> Figure:
    """Methods side by side: one panel per metric (``values`` metric -> method -> per-track
    values), a box per method with the tracks drawn on top (non-finite values left out)."""
    metrics = list(values)
    methods = list(dict.fromkeys(m for per in values.values() for m in per))
    n = max(1, len(metrics))
    panel = max(1.7, 0.55 * len(methods) + 0.9)
    fig = Figure(figsize=(min(10.5, panel * n + 0.6), 3.0), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    rng = np.random.default_rng(0)  # jitter only: fixed so the picture is reproducible
    for ax, metric in zip(axes, metrics):
        data = [_finite(values[metric].get(m, [])) for m in methods]
        shown = [(i, d) for i, d in enumerate(data) if len(d)]
        if shown:
            bp = ax.boxplot([d for _, d in shown], positions=[i + 1 for i, _ in shown],
                            widths=0.55, showfliers=False, patch_artist=True)
            for patch, (i, _) in zip(bp["boxes"], shown):
                patch.set_facecolor(METHOD_COLORS[i % len(METHOD_COLORS)])
                patch.set_alpha(0.35)
            for i, d in shown:
                ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, len(d)), d, s=8, alpha=0.7,
                           color=METHOD_COLORS[i % len(METHOD_COLORS)], zorder=3)
        else:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xticks(range(1, len(methods) + 1), methods,
                      rotation=30 if len(methods) > 3 else 0)
        ax.set_title(metric, fontsize=LABEL_SIZE)
        ax.tick_params(labelsize=TICK_SIZE)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(ylabel, fontsize=LABEL_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def scatter_figure(pairs: Sequence[tuple[str, str, Sequence[float], Sequence[float]]],
                   metric: str, title: str) -> Figure:
    """Per-track method-vs-method scatter, one panel per ``(method_x, method_y, xs, ys)`` pair
    (the same tracks in the same order), with the diagonal: points above it are tracks where
    ``method_y`` scores higher."""
    n = max(1, len(pairs))
    cols = min(3, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(3.0 * cols + 0.3, 2.9 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (a, b, xs, ys) in zip(axes, pairs):
        x, y = np.asarray(xs, float), np.asarray(ys, float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            lo = float(min(x[ok].min(), y[ok].min()))
            hi = float(max(x[ok].max(), y[ok].max()))
            pad = 0.05 * (hi - lo) + 0.5
            lims = (lo - pad, hi + pad)
            ax.plot(lims, lims, color="#999", lw=1, zorder=1)
            ax.scatter(x[ok], y[ok], s=14, alpha=0.8, color="#4c72b0", zorder=2)
            ax.set_xlim(lims)
            ax.set_ylim(lims)
            above = int((y[ok] > x[ok]).sum())
            ax.text(0.03, 0.97, f"{b} higher: {above} of {int(ok.sum())}", va="top",
                    transform=ax.transAxes, fontsize=TICK_SIZE)
        else:
            ax.text(0.5, 0.5, "no finite pairs", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(f"{a} {metric} (dB)", fontsize=LABEL_SIZE)
        ax.set_ylabel(f"{b} {metric} (dB)", fontsize=LABEL_SIZE)
        ax.tick_params(labelsize=TICK_SIZE)
        ax.grid(alpha=0.3)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=TITLE_SIZE)
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
    ax.set_xlabel("time (s)", fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)
    if title:
        ax.set_title(title, fontsize=TITLE_SIZE)
    return fig


def image_bytes(fig: Figure, fmt: str = "png", dpi: int = 80, quality: int = 70) -> bytes:
    """Render ``fig`` to PNG, JPEG or WebP bytes (Agg canvas). Lossy WebP (``quality``) suits
    spectrograms: smaller than JPEG at the same visual quality (sizes in docs/report.md);
    Chromium, Firefox and Safari show it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    kw = {"pil_kwargs": {"quality": quality}} if fmt in ("jpg", "jpeg", "webp") else {}
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
