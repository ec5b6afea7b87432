"""Oracle job: write oracle separations of an indexed dataset in the estimates layout.

Output: ``<out>/<track name>/<target>.wav`` (float32 WAV, the reference's rate and channels) —
the layout ``stemforge evaluate`` reads. Methods: ``ibm``, ``irm1``, ``irm2``, ``mwf`` (see
:mod:`stemforge.metrics.oracles`) and ``mix`` (mixture-as-estimate, the floor).

The oracle masks the track's real mixture when the dataset has one (MUSDB18's mastered mix, as
sigsep-mus-oracle uses ``track.audio``), else the sum of the stems (``mixture="sum"`` forces the
sum). Sources are all stems of the track; a group target's estimate is the sum of its members'
estimates (sigsep-mus-oracle's accompaniment). Every file is written atomically.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..audio import io
from ..errors import StemforgeError
from ..metrics.oracles import METHODS, oracle
from .evaluate import AUDIO_SUFFIX

ALL_METHODS = METHODS + ("mix",)


@dataclass(frozen=True)
class OracleJob:
    index: object  # a one-track Index view
    track_id: str
    name: str
    targets: tuple[str, ...]
    method: str
    mixture: str  # "real" (when present) or "sum"
    out_dir: str


def separate(method: str, mixture: np.ndarray, sources: dict[str, np.ndarray],
             targets: Sequence[str], members: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Oracle estimates for ``targets``: ``{target: (channels, frames) float32}``.

    ``sources``: every stem ``{name: (channels, frames)}``; ``members``: target -> stems.
    """
    if method == "mix":
        return {t: mixture.astype(np.float32, copy=True) for t in targets}
    est = oracle(method, mixture, sources)
    out = {}
    for t in targets:
        parts = [est[s] for s in members[t] if s in est]
        out[t] = np.sum(parts, axis=0, dtype=np.float64).astype(np.float32)
    return out


def run_track(job: OracleJob) -> list[Path]:
    index = job.index
    track = index.track(job.track_id)
    sources = {s: index.read(job.track_id, s) for s in track.stems}
    if job.mixture == "real" and track.mixture is not None:
        mix = index.read_mixture(job.track_id)
    else:
        mix = np.sum(list(sources.values()), axis=0, dtype=np.float64).astype(np.float32)
    members = {t: index.members(t) for t in job.targets}
    est = separate(job.method, mix, sources, job.targets, members)
    folder = Path(job.out_dir) / job.name
    return [io.write(folder / f"{t}{AUDIO_SUFFIX}", a, track.sample_rate) for t, a in est.items()]


def plan(index, out_dir: str | os.PathLike, method: str, targets: Sequence[str] | None = None,
         mixture: str = "real") -> list[OracleJob]:
    from ..index import Index

    method = method.lower()
    if method not in ALL_METHODS:
        raise StemforgeError(f"--method {method!r}: expected one of {', '.join(ALL_METHODS)}")
    if mixture not in ("real", "sum"):
        raise StemforgeError(f"--mixture {mixture!r}: expected 'real' or 'sum'")
    if not index.tracks:
        raise StemforgeError(f"no tracks to separate in {index.root}")
    targets = list(dict.fromkeys(targets or index.stem_names))
    for t in targets:
        try:
            index.members(t)
        except StemforgeError as e:
            raise StemforgeError(f"unknown target {t!r}: {e}") from None
    jobs = []
    for t in index.tracks:
        view = Index(index.root, index.layout, index.cache_dir, [t], index.groups)
        view.cache = index.cache
        jobs.append(OracleJob(view, t.id, t.name, tuple(targets), method, mixture, str(out_dir)))
    return jobs


def run(index, out_dir, method: str, targets: Sequence[str] | None = None,
        mixture: str = "real", workers: int = 1, progress: bool = False) -> list[Path]:
    """Write oracle estimates for every track of ``index``; returns the files written."""
    from .evaluate import run_jobs_generic

    jobs = plan(index, out_dir, method, targets, mixture)
    results = run_jobs_generic(run_track, jobs, workers, progress, desc=f"oracle {method}")
    return [p for r in results for p in r]
