"""Results of one or several separation methods on disk: per-track scores, the combined
summary (method x target x metric, each with its aggregation named), and museval interop.

What :func:`load_methods` reads:

* a ``stemforge evaluate`` folder: its ``stemforge-eval.json`` names the methods, where each
  one's museval tree lies and where its estimates are (for listening);
* one method's museval tree: ``<path>/<split>/<track>.json`` (museval's ``eval_dir``) or
  ``<path>/<track>.json``, written by stemforge or any other tool;
* a folder of such trees, one per method (``<path>/<method>/test/<track>.json``, the layout of
  SiSEC submissions and of ``museval.MethodStore.add_eval_dir`` inputs);
* a single track JSON file.

Per track and target, frame metrics (BSS Eval SDR/SIR/SAR/ISR) are the median over frames (NaN
skipped, museval's ``agg_frames_scores``); whole-track metrics (SI-SDR, MDX SDR = SDX uSDR,
cSDR; stemforge writes them under each target's ``track_metrics``) are the value itself.
Across tracks each metric is aggregated as its field reports it (:data:`AGGREGATION`): median
of per-track medians for BSS Eval (museval's ``agg_frames_tracks_scores``), median for SI-SDR,
mean for the challenges' SDRs.

Tables are long pandas frames: ``frames`` (method, track, target, metric, time, score) holds
BSS Eval frames, ``tracks`` (method, track, target, metric, score) one value per track.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import StemforgeError
from . import museval_json
from .names import METHOD_NAME, RECORD, RECORD_FORMAT  # noqa: F401  (public here)

FRAME_METRICS = museval_json.METRICS                 # SDR, SIR, SAR, ISR (per frame)
TRACK_METRICS = ("SI-SDR", "MDX-SDR", "cSDR")        # one value per track (track_metrics)
METRIC_ORDER = FRAME_METRICS + TRACK_METRICS
HEADLINE = ("SDR", "SI-SDR", "MDX-SDR", "cSDR")      # the metrics a comparison shows first

# metric -> (aggregation over tracks, how one track's value and the summary are obtained)
AGGREGATION: dict[str, tuple[str, str]] = {
    **{m: ("median", "median over frames, then median over tracks") for m in FRAME_METRICS},
    "SI-SDR": ("median", "whole track, median over tracks"),
    "MDX-SDR": ("mean", "whole track (SDX uSDR), mean over tracks"),
    "cSDR": ("mean", "median over 1 s chunks, mean over tracks"),
}
PER_TRACK = {**{m: "median over frames" for m in FRAME_METRICS}, "SI-SDR": "whole track",
             "MDX-SDR": "whole track", "cSDR": "median over 1 s chunks"}

SKIP_JSON = {RECORD, "spec.json", "stemforge-job.json"}
FRAME_COLUMNS = ["method", "track", "target", "metric", "time", "score"]
TRACK_COLUMNS = ["method", "track", "target", "metric", "score"]


class ResultsError(StemforgeError):
    """A results folder or file cannot be read as museval / stemforge results."""


@dataclass
class MethodResults:
    """One method's scores. ``estimates`` is its audio folder and ``index_file`` the index of
    its references when known (a stemforge evaluate record names both): needed for listening."""

    name: str
    path: Path
    frames: pd.DataFrame
    tracks: pd.DataFrame
    targets: list[str]
    estimates: Path | None = None
    problems: list[str] = field(default_factory=list)
    index_file: Path | None = None
    groups: dict[str, list[str]] = field(default_factory=dict)  # the index's groups then

    @property
    def metrics(self) -> list[str]:
        have = set(self.tracks["metric"])
        return [m for m in METRIC_ORDER if m in have] + sorted(have - set(METRIC_ORDER))

    @property
    def track_names(self) -> list[str]:
        return sorted(self.tracks["track"].unique())

    def wide(self, target: str) -> pd.DataFrame:
        """Per-track values of one target: index track, one column per metric (order kept)."""
        sub = self.tracks[self.tracks["target"] == target]
        w = sub.pivot_table(index="track", columns="metric", values="score", dropna=False)
        return w.reindex(columns=[m for m in self.metrics if m in w.columns])


def _score(v) -> float:
    return float(v) if v is not None else np.nan


def json_tables(method: str, track: str, data: dict) -> tuple[list[tuple], list[tuple]]:
    """Rows of the ``frames`` and ``tracks`` tables for one track's museval dict."""
    frames, tracks = [], []
    for t in data["targets"]:
        name = t["name"]
        per_metric: dict[str, list[float]] = {m: [] for m in FRAME_METRICS}
        for f in t["frames"]:
            for m in FRAME_METRICS:
                v = _score(f["metrics"][m])
                frames.append((method, track, name, m, float(f["time"]), v))
                per_metric[m].append(v)
        for m, vals in per_metric.items():
            a = np.asarray(vals, float)
            a = a[~np.isnan(a)]
            if len(vals):  # museval: median over frames, NaN skipped (all NaN -> NaN)
                tracks.append((method, track, name, m, float(np.median(a)) if a.size else np.nan))
        for m, v in (t.get("track_metrics") or {}).items():
            tracks.append((method, track, name, m, _score(v)))
    return frames, tracks


def method_from_files(name: str, files: Iterable[Path], path: Path,
                      estimates: Path | None = None, strict: bool = False) -> MethodResults:
    """Read track JSON files (the track is the file stem) into one :class:`MethodResults`.
    Unreadable files become ``problems`` (``strict``: :class:`ResultsError`)."""
    frames, tracks, problems, targets, seen = [], [], [], [], {}
    for f in files:
        try:
            data = museval_json.load(f)
        except StemforgeError as e:
            if strict:
                raise ResultsError(str(e)) from None
            problems.append(str(e))
            continue
        if f.stem in seen:
            msg = f"{f}: track {f.stem!r} already read from {seen[f.stem]}; skipped"
            if strict:
                raise ResultsError(msg)
            problems.append(msg)
            continue
        seen[f.stem] = f
        fr, tr = json_tables(name, f.stem, data)
        frames += fr
        tracks += tr
        targets += [t["name"] for t in data["targets"] if t["name"] not in targets]
    return MethodResults(name, Path(path), pd.DataFrame(frames, columns=FRAME_COLUMNS),
                         pd.DataFrame(tracks, columns=TRACK_COLUMNS), targets, estimates,
                         problems)


def json_files(path: Path) -> list[Path]:
    """Track JSON files under ``path`` (or ``path`` itself), hidden folders left out."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.json") if p.name not in SKIP_JSON
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def _is_results_json(f: Path) -> bool:
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("targets"), list)


def read_record(path: Path) -> dict | None:
    """The ``stemforge-eval.json`` of a results folder, or None when there is none."""
    f = Path(path) / RECORD
    if not f.is_file():
        return None
    try:
        rec = json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise ResultsError(f"{f}: not a readable results record ({e})") from None
    if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT \
            or not isinstance(rec.get("methods"), dict):
        raise ResultsError(f"{f}: not a stemforge evaluate record (format {RECORD_FORMAT!r} "
                           "with a 'methods' object expected)")
    return rec


def method_folders(path: Path) -> list[Path]:
    """Child folders of ``path`` that each hold a method's tree, when ``path`` is a folder of
    methods (its own JSONs all sit below such children, none in a split folder)."""
    path = Path(path)
    if not path.is_dir() or any(p.suffix == ".json" and p.name not in SKIP_JSON
                                for p in path.iterdir()):
        return []
    kids = [c for c in sorted(path.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    holders = [c for c in kids if any(_is_results_json(f) for f in json_files(c)[:5])]
    if len(holders) < 2:
        return []
    # a split folder (test/, train/) holds JSONs directly; a method folder holds split folders
    if any(any(p.suffix == ".json" for p in c.iterdir()) for c in holders):
        return []
    return holders


def load_methods(path: str | os.PathLike, name: str | None = None,
                 strict: bool = False) -> dict[str, MethodResults]:
    """Every method at ``path`` (see module doc), in order. ``name`` renames a single method."""
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: does not exist")
    rec = read_record(path) if path.is_dir() else None
    out: dict[str, MethodResults] = {}
    if rec is not None:
        for m, info in rec["methods"].items():
            tree = (path / info.get("results", m)).resolve()
            est = info.get("estimates")
            out[m] = method_from_files(m, json_files(tree), tree,
                                       Path(est) if est else None, strict)
            out[m].index_file = Path(rec["index"]) if rec.get("index") else None
            out[m].groups = dict(rec.get("groups") or {})
    elif method_folders(path):
        for d in method_folders(path):
            out[d.name] = method_from_files(d.name, json_files(d), d, strict=strict)
    else:
        stem = path.stem if path.is_file() else path.name
        out[stem] = method_from_files(stem, json_files(path), path, strict=strict)
    if name is not None:
        if len(out) != 1:
            raise ResultsError(f"{name}={path}: holds {len(out)} methods "
                               f"({', '.join(out)}); a name can only be given to one method")
        m = next(iter(out.values()))
        m.name = name
        m.frames["method"] = name
        m.tracks["method"] = name
        out = {name: m}
    return out


def summary_table(methods: Iterable[MethodResults] | Mapping[str, MethodResults]
                  ) -> pd.DataFrame:
    """method x target x metric: ``score`` aggregated over tracks as :data:`AGGREGATION` says
    (NaN skipped), ``aggregation`` naming it, ``tracks`` = tracks with a finite value."""
    if isinstance(methods, Mapping):
        methods = list(methods.values())
    rows = []
    for m in methods:
        for target in m.targets:
            sub = m.tracks[m.tracks["target"] == target]
            for metric in m.metrics:
                v = sub.loc[sub["metric"] == metric, "score"].to_numpy(float)
                v = v[np.isfinite(v)]
                how, label = AGGREGATION.get(metric, ("median", "median over tracks"))
                score = (float(np.median(v)) if how == "median" else float(np.mean(v))) \
                    if v.size else np.nan
                if len(sub[sub["metric"] == metric]):
                    rows.append((m.name, target, metric, score, label, int(v.size)))
    return pd.DataFrame(rows, columns=["method", "target", "metric", "score", "aggregation",
                                       "tracks"])


def museval_frames(methods: Iterable[MethodResults] | Mapping[str, MethodResults]
                   ) -> pd.DataFrame:
    """Every BSS Eval frame of every method in museval's ``MethodStore.df`` layout (columns
    time, target, metric, score, track, method): ``MethodStore.load`` reads it pickled, and its
    ``agg_frames_tracks_scores()`` gives the BSS Eval rows of :func:`summary_table`."""
    if isinstance(methods, Mapping):
        methods = list(methods.values())
    parts = [m.frames for m in methods if len(m.frames)]
    if not parts:
        return pd.DataFrame(columns=["time", "target", "metric", "score", "track", "method"])
    df = pd.concat(parts, ignore_index=True)
    return df[["time", "target", "metric", "score", "track", "method"]]
