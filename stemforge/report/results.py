"""Report section for evaluation results: museval-compatible per-track JSON files
(``{targets: [{name, frames: [{time, duration, metrics: {SDR, SIR, SAR, ISR}}]}]}``) and any
CSV summaries beside them. Tables of medians and boxplots per target."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..errors import StemforgeError
from ..metrics import aggregate, museval_json
from . import plots
from .html import Assets, esc, slug, table
from .section import Section

SKIP_JSON = {"spec.json", "stemforge-job.json"}


def _json_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.json") if p.name not in SKIP_JSON
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def looks_like_results(path: Path) -> bool:
    """A museval JSON file, or a folder holding at least one (checked by content)."""
    path = Path(path)
    if path.is_file() and path.suffix != ".json":
        return False
    for f in _json_files(path)[:20]:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("targets"), list):
            return True
    return False


def load_frames(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Long table of every frame score (see :mod:`stemforge.metrics.aggregate`) from the JSON
    files at ``path``, plus one problem message per file that could not be read."""
    frames, problems = [], []
    for f in _json_files(Path(path)):
        try:
            frames.append(aggregate.frames_table(f.stem, museval_json.load(f)))
        except StemforgeError as e:
            problems.append(str(e))
    cols = ["method", "track", "target", "metric", "time", "score"]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    return df, problems


def results_figures(frames) -> dict[str, Figure]:
    """Boxplots per target: ``<METRIC>_frames`` (every frame of every track) and
    ``<METRIC>_tracks`` (per-track medians) for each metric. ``frames`` is the long table of
    :func:`load_frames` or a results path."""
    if not isinstance(frames, pd.DataFrame):
        frames, _ = load_frames(Path(frames))
    figs = {}
    tracks = aggregate.track_scores(frames) if len(frames) else frames
    for m in museval_json.METRICS:
        sub = frames[frames.metric == m]
        if not len(sub):
            continue
        targets = sorted(sub.target.unique())
        figs[f"{m}_frames"] = plots.boxplot_figure(
            {t: sub[sub.target == t].score.tolist() for t in targets},
            f"{m} per frame", f"{m} (dB)")
        tm = tracks[tracks.metric == m]
        figs[f"{m}_tracks"] = plots.boxplot_figure(
            {t: tm[tm.target == t].score.tolist() for t in targets},
            f"{m} per track (median over frames)", f"{m} (dB)")
    return figs


def _df_table(df: pd.DataFrame, left: int, digits: int = 2) -> str:
    rows = [[plots.fmt(v, digits) if isinstance(v, float) else v for v in r]
            for r in df.itertuples(index=False)]
    return table([str(c) for c in df.columns], rows, left=left)


def results_section(path: Path, assets: Assets, max_items: int = 100) -> Section:
    """Build the report section of the results at ``path`` (folder or one JSON file)."""
    path = Path(path)
    sec = Section("results", path, f"Results {path.name}")
    frames, sec.problems = load_frames(path)
    parts = []
    if not len(frames):
        sec.problems.append(f"{path}: no readable museval JSON results")
    else:
        n_tracks = frames.track.nunique()
        parts.append(f"<p>{n_tracks} tracks, targets "
                     f"{esc(', '.join(sorted(frames.target.unique())))}; medians over frames "
                     f"(NaN skipped), then over tracks</p>")
        summary = aggregate.target_scores(frames).drop(columns=["method"])
        parts.append("<h3>median of per-track medians</h3>" + _df_table(summary, left=1))
        tr = aggregate.track_scores(frames)
        wide = tr.pivot_table(index=["track", "target"], columns="metric", values="score",
                              dropna=False).reset_index()
        parts.append(f"<h3>per track ({min(n_tracks, max_items)} of {n_tracks})</h3>")
        keep = sorted(wide.track.unique())[:max_items]
        parts.append(_df_table(wide[wide.track.isin(keep)], left=2))
        parts.append('<div class="figs">' + "".join(
            assets.figure(f, f"res-{slug(path.name)}-{k}", k, prefix="res")
            for k, f in results_figures(frames).items()) + "</div>")
        sec.rendered = n_tracks
    csvs = ([path] if path.suffix == ".csv"
            else sorted(path.rglob("*.csv")) if path.is_dir() else [])
    for c in csvs:
        try:
            df = pd.read_csv(c)
        except (OSError, ValueError) as e:
            sec.problems.append(f"{c}: not a readable CSV ({e})")
            continue
        parts.append(f"<details><summary>CSV summary {esc(c.name)} ({len(df)} rows)</summary>"
                     + _df_table(df.head(200), left=1) + "</details>")
    sec.body = "".join(parts)
    return sec
