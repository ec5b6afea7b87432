"""museval-compatible per-track JSON: ``{targets: [{name, frames: [{time, duration, metrics}]}]}``.

Values are rounded to 5 decimals like museval's ``TrackStore``; ``inf`` becomes NaN (as museval
does). A NaN is written as JSON ``null`` (museval writes the non-standard literal ``NaN``, which
strict JSON readers refuse; museval's own reader turns null back into NaN) and read back as NaN.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..atomic import atomic_file
from .bsseval import BSSEvalScores
from .validate import MetricsError

METRICS = ("SDR", "SIR", "SAR", "ISR")
VERSION = "0.4.1"  # the museval JSON schema version we write


def quantize(v: float) -> float:
    """museval's rounding: 5 decimals; inf and NaN become NaN."""
    v = float(v)
    return math.nan if not math.isfinite(v) else round(v, 5)


def track_dict(scores: Mapping[str, BSSEvalScores | Mapping[str, np.ndarray]], win_s: float, hop_s: float) -> dict:
    """Build the JSON dict from ``{target: scores}``; scores hold per-frame SDR/SIR/SAR/ISR arrays."""
    targets = []
    for name, sc in scores.items():
        vals = {m: np.asarray(sc.metric(m) if isinstance(sc, BSSEvalScores) else sc[m]) for m in METRICS}
        n = len(vals["SDR"])
        frames = [
            {"time": i * hop_s, "duration": win_s, "metrics": {m: quantize(vals[m][i]) for m in METRICS}}
            for i in range(n)
        ]
        targets.append({"name": name, "frames": frames})
    return {"targets": targets, "museval_version": VERSION}


def save(path: str | os.PathLike, data: dict) -> Path:
    """Write atomically (temp file + rename)."""
    path = Path(path)
    with atomic_file(path, "w") as fh:
        json.dump(_nulls(data), fh, indent=2, allow_nan=False)
    return path


def _nulls(obj):
    """A copy of ``obj`` with every non-finite float replaced by None (JSON null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _nulls(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nulls(v) for v in obj]
    return obj


def load(path: str | os.PathLike) -> dict:
    """Read a museval-style track JSON (ours or museval's) and check its shape."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MetricsError(f"{path}: not a readable museval JSON ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        raise MetricsError(f"{path}: expected an object with a 'targets' list (museval format)")
    for t in data["targets"]:
        if "name" not in t or not isinstance(t.get("frames"), list):
            raise MetricsError(f"{path}: each target needs 'name' and a 'frames' list")
        for f in t["frames"]:
            if not all(m in f.get("metrics", {}) for m in METRICS):
                raise MetricsError(f"{path}: target '{t['name']}' has a frame without {'/'.join(METRICS)}")
            for m in METRICS:  # null (ours) and NaN (museval's) both mean "undefined"
                if f["metrics"][m] is None:
                    f["metrics"][m] = math.nan
        for m, v in (t.get("track_metrics") or {}).items():
            if v is None:
                t["track_metrics"][m] = math.nan
    return data
