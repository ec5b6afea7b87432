"""Report section for evaluation results: museval-compatible per-track JSON files
(``{targets: [{name, frames: [{time, duration, metrics: {SDR, SIR, SAR, ISR}}]}]}``, plus
stemforge's whole-track ``track_metrics``: SI-SDR, MDX SDR, cSDR) of one or several methods, and
any CSV summaries beside them (see :mod:`stemforge.metrics.results` for the layouts read).

One method: its aggregates per target and metric (each aggregation named), a sortable per-track
table and boxplots per metric. Several methods: the comparison of :mod:`.compare`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..metrics import results as mresults
from . import plots
from .compare import comparison_html, legend
from .html import Assets, esc, slug, sortable_table, table
from .section import Section


def looks_like_results(path: Path) -> bool:
    """A museval JSON file, or a folder holding at least one (checked by content) or a
    stemforge evaluate record."""
    path = Path(path)
    if path.is_file() and path.suffix != ".json":
        return False
    if path.is_dir() and (path / mresults.RECORD).is_file():
        return True
    files = mresults.json_files(path)[:20]
    return any(_is_results(f) for f in files)


def _is_results(f: Path) -> bool:
    import json

    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("targets"), list)


def load_frames(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Long table of every BSS Eval frame score (method, track, target, metric, time, score)
    at ``path`` (all methods), plus one problem message per file that could not be read."""
    methods = mresults.load_methods(path)
    frames = [m.frames for m in methods.values() if len(m.frames)]
    df = (pd.concat(frames, ignore_index=True) if frames
          else pd.DataFrame(columns=mresults.FRAME_COLUMNS))
    return df, [p for m in methods.values() for p in m.problems]


def results_figures(results) -> dict[str, Figure]:
    """Boxplots per target for one method: ``<METRIC>_frames`` (every frame of every track,
    BSS Eval metrics) and ``<METRIC>_tracks`` (one value per track: the median over frames, or
    the whole-track value) for each metric. ``results`` is a :class:`MethodResults`, a results
    path holding one method, or a long frames table (:func:`load_frames`)."""
    if isinstance(results, pd.DataFrame):
        frames = results
        tr = [(r.method, r.track, r.target, r.metric, r.score) for r in
              frames.groupby(["method", "track", "target", "metric"], sort=False)["score"]
              .median().reset_index().itertuples(index=False)]
        targets = list(dict.fromkeys(frames["target"]))
        tracks = pd.DataFrame(tr, columns=mresults.TRACK_COLUMNS)
    else:
        m = results if isinstance(results, mresults.MethodResults) else \
            next(iter(mresults.load_methods(Path(results)).values()))
        frames, tracks, targets = m.frames, m.tracks, m.targets
    figs = {}
    metrics = [x for x in mresults.METRIC_ORDER if x in set(tracks["metric"])]
    for metric in metrics:
        if metric in mresults.FRAME_METRICS:
            sub = frames[frames.metric == metric]
            figs[f"{metric}_frames"] = plots.boxplot_figure(
                {t: sub[sub.target == t].score.tolist() for t in targets},
                f"{metric} per frame", f"{metric} (dB)")
        tm = tracks[tracks.metric == metric]
        figs[f"{metric}_tracks"] = plots.boxplot_figure(
            {t: tm[tm.target == t].score.tolist() for t in targets},
            f"{metric} per track ({mresults.PER_TRACK.get(metric, 'per track')})",
            f"{metric} (dB)")
    return figs


def _method_html(m: mresults.MethodResults, assets: Assets, max_items: int, key: str) -> str:
    summ = mresults.summary_table([m])
    metrics = m.metrics
    rows = []
    for t in m.targets:
        s = summ[summ["target"] == t].set_index("metric")
        rows.append([t, int(s["tracks"].max()) if len(s) else 0]
                    + [float(s.loc[x, "score"]) if x in s.index else np.nan for x in metrics])
    parts = [f"<p>{len(m.track_names)} tracks, targets {esc(', '.join(m.targets))}</p>",
             "<h3>per target</h3>", sortable_table(["target", "tracks", *metrics], rows),
             legend(metrics)]
    wide_rows = []
    for t in m.targets:
        w = m.wide(t)
        for track, r in w.iterrows():
            wide_rows.append([track, t] + [float(r.get(x, np.nan)) for x in metrics])
    n = len(m.track_names)
    keep = set(m.track_names[:max_items])
    parts.append(f"<h3>per track ({min(n, max_items)} of {n}; one value per track: "
                 f"BSS Eval the median over frames, the others whole-track)</h3>")
    parts.append(sortable_table(["track", "target", *metrics],
                                [r for r in wide_rows if r[0] in keep], left=2))
    parts.append('<div class="figs">' + "".join(
        assets.figure(f, f"res-{key}-{k}", k, prefix="res")
        for k, f in results_figures(m).items()) + "</div>")
    return "".join(parts)


def results_section(path: Path, assets: Assets, max_items: int = 100,
                    name: str | None = None) -> Section:
    """Build the report section of the results at ``path`` (folder or one JSON file);
    ``name`` names a single method (default: its folder's name)."""
    path = Path(path)
    sec = Section("results", path, f"Results {name or path.name}")
    try:
        methods = mresults.load_methods(path, name)
    except mresults.ResultsError as e:
        sec.problems.append(str(e))
        return sec
    sec.methods = methods
    for m in methods.values():
        sec.problems += m.problems
    methods = {k: m for k, m in methods.items() if len(m.tracks)}
    parts = []
    if not methods:
        sec.problems.append(f"{path}: no readable museval JSON results")
    elif len(methods) == 1:
        m = next(iter(methods.values()))
        parts.append(_method_html(m, assets, max_items, slug(path.name)))
        sec.rendered = len(m.track_names)
    else:
        html, probs = comparison_html(methods, assets, max_items, key=f"res-{slug(path.name)}")
        parts.append(html)
        sec.problems += probs
        sec.rendered = len({t for m in methods.values() for t in m.track_names})
    csvs = ([path] if path.suffix == ".csv"
            else sorted(path.glob("*.csv")) if path.is_dir() and len(methods) > 1
            else sorted(path.rglob("*.csv")) if path.is_dir() else [])
    for c in csvs:
        try:
            df = pd.read_csv(c)
        except (OSError, ValueError) as e:
            sec.problems.append(f"{c}: not a readable CSV ({e})")
            continue
        rows = [[plots.fmt(v, 2) if isinstance(v, float) else v for v in r]
                for r in df.head(200).itertuples(index=False)]
        parts.append(f"<details><summary>CSV summary {esc(c.name)} ({len(df)} rows)</summary>"
                     + table([str(x) for x in df.columns], rows) + "</details>")
    sec.body = "".join(parts)
    return sec
