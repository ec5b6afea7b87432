"""Aggregation: frames -> track (median, NaN skipped) -> target (median over tracks).

Long table columns (as museval's ``json2df``): ``method, track, target, metric, time, score``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from . import museval_json
from .validate import MetricsError


def frames_table(track: str, data: dict, method: str = "") -> pd.DataFrame:
    """One track's museval dict as a long table (one row per target, metric and frame)."""
    rows = [
        (method, track, t["name"], m, f["time"], float(f["metrics"][m]) if f["metrics"][m] is not None else np.nan)
        for t in data["targets"]
        for f in t["frames"]
        for m in museval_json.METRICS
    ]
    return pd.DataFrame(rows, columns=["method", "track", "target", "metric", "time", "score"])


def load_dir(path: str | os.PathLike, method: str = "") -> pd.DataFrame:
    """All ``*.json`` track files under ``path`` (recursively); the track is the file stem."""
    path = Path(path)
    files = sorted(path.rglob("*.json"))
    if not files:
        raise MetricsError(f"{path}: no museval JSON files found")
    return pd.concat([frames_table(f.stem, museval_json.load(f), method) for f in files], ignore_index=True)


def track_scores(frames: pd.DataFrame) -> pd.DataFrame:
    """Median over frames (NaN skipped) per method, track, target, metric."""
    return frames.groupby(["method", "track", "target", "metric"], sort=True)["score"].median().reset_index()


def target_scores(frames: pd.DataFrame) -> pd.DataFrame:
    """Median over tracks of the per-track medians: wide table (method, target) x metric."""
    tr = track_scores(frames)
    agg = tr.groupby(["method", "target", "metric"])["score"].median()
    return agg.unstack("metric").reset_index()


def compare(methods: Mapping[str, pd.DataFrame], metric: str = "SDR") -> pd.DataFrame:
    """Several methods side by side: rows = target, columns = method, values = median-of-medians."""
    parts = [df.assign(method=name) for name, df in methods.items()]
    agg = target_scores(pd.concat(parts, ignore_index=True))
    return agg.pivot(index="target", columns="method", values=metric)


def median_skipna(values: Iterable[float]) -> float:
    arr = np.asarray(list(values), float)
    return float(np.nanmedian(arr)) if np.isfinite(arr).any() else float("nan")
