"""Tables and figures of the augmentation study (:mod:`stemforge.train.experiment`).

Scores (BSS Eval v4 SDR in dB, median over 1 s frames per track and target) are aggregated as:

* track score = mean over targets; a run's score = mean of its track scores over the split;
* a row's score = mean ± standard deviation over seeds of its runs' scores;
* paired difference to plain, per split: per track, (row's track score averaged over seeds) −
  (plain's, same track); reported as the mean over tracks with a 95 % Student-t interval
  (``mean ± t(0.975, n−1)·sd/√n``; the tracks are the independent units);
* per-target columns: mean over tracks and seeds (test split).

Files in the study folder: ``scores.csv`` (every run's per-track, per-target scores),
``summary.csv`` / ``summary.md`` (the table above), ``curves.png`` (validation and training
loss per step, mean over seeds, min-max band), ``deltas.png`` (paired differences with
intervals on the valid and test splits).
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_bytes_atomic, write_text_atomic

LABELS = {"plain": "1 plain coherent excerpts", "remix": "2 + incoherent remix",
          "gains": "3 + random gains", "swap": "4 + channel swap / polarity",
          "pitch": "5 + pitch/tempo", "effects": "6 + effects (EQ, compressor, reverb)",
          "codec": "7 + codec", "tutorial": "seed tutorial's recipe",
          "recommended": "stemforge recommended"}
#: bounds scored next to the rows: display name -> :func:`.evaluate.oracle_estimator` method
ORACLES = {"oracle IRM1": "irm1", "oracle IRM2": "irm2", "mixture (no separation)": "mix"}
SCORES = "scores.csv"   # per-run (and oracle) score file name


def _t975(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df)) if df > 0 else float("nan")


def load_scores(out: Path, rows, alias: dict, seeds) -> pd.DataFrame:
    """Every finished run's per-track scores plus the oracles', column ``method`` = row name."""
    frames = []
    for row in rows:
        for seed in seeds:
            p = Path(alias[row]) / f"seed{seed}" / SCORES
            if p.is_file():
                s = pd.read_csv(p)
                s["method"] = row
                frames.append(s)
    p = out / "oracles" / SCORES
    if p.is_file():
        frames.append(pd.read_csv(p))
    if not frames:
        return pd.DataFrame(columns=["split", "seed", "method", "track", "target", "SDR",
                                     "SI-SDR", "windows"])
    return pd.concat(frames, ignore_index=True)


def track_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean SDR over targets per (split, method, seed, track)."""
    return (scores.groupby(["split", "method", "seed", "track"], sort=False)["SDR"]
            .mean().reset_index())


def paired_difference(tracks: pd.DataFrame, split: str, method: str, base: str = "plain"
                      ) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)`` of the per-track difference ``method − base`` on ``split``
    (each side averaged over its seeds first), with a 95 % Student-t interval."""
    t = tracks[tracks["split"] == split]
    a = t[t["method"] == method].groupby("track")["SDR"].mean()
    b = t[t["method"] == base].groupby("track")["SDR"].mean()
    common = a.index.intersection(b.index)
    d = (a[common] - b[common]).to_numpy()
    n = len(d)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    m = float(d.mean())
    if n < 2:
        return (m, math.nan, math.nan, n)
    half = _t975(n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    return (m, m - half, m + half, n)


def summarize(scores: pd.DataFrame, rows, targets, seeds) -> pd.DataFrame:
    """One line per row and oracle: see module docstring."""
    tracks = track_scores(scores)
    lines = []
    for method in list(rows) + list(ORACLES):
        line = {"row": method, "label": LABELS.get(method, method)}
        for split in ("valid", "test"):
            t = tracks[(tracks["split"] == split) & (tracks["method"] == method)]
            per_seed = t.groupby("seed")["SDR"].mean()
            line[f"{split}_mean"] = float(per_seed.mean()) if len(per_seed) else math.nan
            line[f"{split}_std"] = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else math.nan
            line[f"{split}_seeds"] = int(len(per_seed))
            if method in ORACLES or method == "plain":
                d = (math.nan, math.nan, math.nan, 0)
            else:
                d = paired_difference(tracks, split, method)
            line.update({f"{split}_delta": d[0], f"{split}_delta_lo": d[1],
                         f"{split}_delta_hi": d[2], f"{split}_tracks": d[3]
                         if d[3] else int(t["track"].nunique())})
        test = scores[(scores["split"] == "test") & (scores["method"] == method)]
        for target in targets:
            line[target] = float(test[test["target"] == target]["SDR"].mean())
        lines.append(line)
    return pd.DataFrame(lines)


def _pm(m, s) -> str:
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return ""
    return f"{m:.2f}" + ("" if s is None or math.isnan(s) else f" ± {s:.2f}")


def _delta(m, lo, hi) -> str:
    if math.isnan(m):
        return ""
    return f"{m:+.2f}" + ("" if math.isnan(lo) else f" [{lo:+.2f}, {hi:+.2f}]")


def markdown(summary: pd.DataFrame, targets, timing: dict, n_seeds: int) -> str:
    head = ["row", "valid SDR", "Δ valid vs plain [95 % CI]", "test SDR",
            "Δ test vs plain [95 % CI]", *targets, "best step", "train CPU s"]
    out = [f"SDR in dB (BSS Eval v4, median over 1 s frames per track; mean over targets and "
           f"tracks); mean ± std over {n_seeds} seed(s); Δ = paired per-track difference to row "
           "1, seeds averaged, mean over tracks with a 95 % t interval. Per-target columns: "
           "test split.", "", "| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for _, r in summary.iterrows():
        tm = timing.get(r["row"], {})
        cells = [r["label"], _pm(r["valid_mean"], r["valid_std"]),
                 _delta(r["valid_delta"], r["valid_delta_lo"], r["valid_delta_hi"]),
                 _pm(r["test_mean"], r["test_std"]),
                 _delta(r["test_delta"], r["test_delta_lo"], r["test_delta_hi"]),
                 *[("" if math.isnan(r[t]) else f"{r[t]:.2f}") for t in targets],
                 str(tm.get("best_step", "")), (f"{tm['train_cpu_s']:.0f}" if "train_cpu_s" in tm
                                                 else "")]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _timing(out: Path, rows, alias, seeds) -> dict:
    res = {}
    for row in rows:
        ts = []
        for seed in seeds:
            p = Path(alias[row]) / f"seed{seed}" / "timing.json"
            if p.is_file():
                ts.append(json.loads(p.read_text()))
        if ts:
            res[row] = {"best_step": "/".join(str(t["best_step"]) for t in ts),
                        "train_cpu_s": float(np.mean([t["train_cpu_s"] for t in ts])),
                        "eval_cpu_s": float(np.mean([t["eval_cpu_s"] for t in ts]))}
    return res


def histories(out: Path, rows, alias, seeds) -> dict[str, list[pd.DataFrame]]:
    res = {}
    for row in rows:
        hs = []
        for seed in seeds:
            p = Path(alias[row]) / f"seed{seed}" / "history.csv"
            if p.is_file():
                h = pd.read_csv(p)
                if len(h):  # a run that has not validated yet has a header only
                    hs.append(h)
        if hs:
            res[row] = hs
    return res


def plot_curves(path: Path, hist: dict[str, list[pd.DataFrame]]) -> Path:
    """Validation (left) and training (right) loss per step: mean over seeds, min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for k, (row, hs) in enumerate(hist.items()):
        color = f"C{k % 10}"
        for ax, col in zip(axes, ("valid_loss", "train_loss"), strict=True):
            frames = [h[["step", col]].dropna().set_index("step")[col] for h in hs]
            m = pd.concat(frames, axis=1)
            ax.plot(m.index, m.mean(axis=1), color=color, lw=1.4, label=LABELS.get(row, row))
            if m.shape[1] > 1:
                ax.fill_between(m.index, m.min(axis=1), m.max(axis=1), color=color, alpha=0.15)
    axes[0].set_title("validation loss (valid split, best checkpoint is kept)")
    axes[1].set_title("training loss (mean since the previous check)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_deltas(path: Path, summary: pd.DataFrame) -> Path:
    """Paired difference to plain with 95 % intervals, valid and test split, per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary[~summary["row"].isin(list(ORACLES)) & (summary["row"] != "plain")]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(s) + 1.4))
    y = np.arange(len(s))[::-1]
    for off, split, color in ((0.15, "valid", "C0"), (-0.15, "test", "C3")):
        m = s[f"{split}_delta"].to_numpy()
        lo, hi = s[f"{split}_delta_lo"].to_numpy(), s[f"{split}_delta_hi"].to_numpy()
        err = np.vstack([m - lo, hi - m])
        ax.errorbar(m, y + off, xerr=np.nan_to_num(err), fmt="o", color=color, ms=4, capsize=3,
                    label=f"{split} split")
    ax.axvline(0, color="k", lw=0.8)
    ax.axvline(0.5, color="k", lw=0.6, ls=":")
    ax.set_yticks(y, s["label"])
    ax.set_xlabel("Δ SDR vs plain coherent excerpts (dB), 95 % interval over tracks")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return write_bytes_atomic(Path(path), buf.getvalue())


def write_results(out: Path, setup, protocol, rows, alias, log=print) -> dict:
    """Write every result file of the study (module docstring); returns ``files``, ``summary``."""
    seeds = list(protocol.seeds)
    scores = load_scores(out, rows, alias, seeds)
    summary = summarize(scores, rows, setup.targets, seeds)
    timing = _timing(out, rows, alias, seeds)
    files = [write_text_atomic(out / "scores.csv", scores.to_csv(index=False, float_format="%.4f")),
             write_text_atomic(out / "summary.csv", summary.to_csv(index=False, float_format="%.4f"))]
    md = markdown(summary, setup.targets, timing, len(seeds))
    files.append(write_text_atomic(out / "summary.md", md))
    hist = histories(out, rows, alias, seeds)
    if hist:
        files.append(plot_curves(out / "curves.png", hist))
    files.append(plot_deltas(out / "deltas.png", summary))
    log(md)
    return {"files": files, "summary": summary}
