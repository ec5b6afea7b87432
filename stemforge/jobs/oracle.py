"""Oracle job: write oracle separations of an indexed dataset in the estimates layout.

Output: ``<out>/<track name>/<target>.wav`` (float32 WAV, the reference's rate and channels) —
the layout ``stemforge evaluate`` reads. Methods: ``ibm``, ``irm1``, ``irm2``, ``mwf`` (see
:mod:`stemforge.metrics.oracles`) and ``mix`` (mixture-as-estimate, the floor).

The oracle masks the track's real mixture when the dataset has one (MUSDB18's mastered mix, as
sigsep-mus-oracle uses ``track.audio``), else the sum of the stems (``mixture="sum"`` forces the
sum). Sources are all stems of the track; a group target's estimate is the sum of its members'
estimates (sigsep-mus-oracle's accompaniment).

Tracks run in-process or on Dask (:func:`stemforge.jobs.dask_runner.run_items`). Workers write
into a hidden staging folder ``<out>/.oracle-<token>.partial``; once every track succeeded its
files are renamed into place, so a failing run leaves nothing under ``<out>`` (the staging
folder is removed, and ``<out>`` too when this run created it).
"""
from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..audio import io
from ..errors import StemforgeError
from ..metrics.oracles import METHODS, oracle
from .dask_runner import seed_state, worker_state
from .evaluate import AUDIO_SUFFIX, IndexRef, run_task

ALL_METHODS = METHODS + ("mix",)


@dataclass(frozen=True)
class OracleTask:
    """Plain data for workers: track ``i`` is ``(track_ids[i], names[i])``."""

    index: IndexRef
    track_ids: tuple[str, ...]
    names: tuple[str, ...]
    targets: tuple[str, ...]
    method: str
    mixture: str  # "real" (when present) or "sum"
    stage: str  # staging folder


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


def oracle_item(i: int, task: OracleTask) -> list[str]:
    """Worker: separate track ``i`` and write its estimates under the staging folder.
    Returns the written paths relative to the staging folder."""
    index = worker_state(task.index.key, task.index.open)
    tid, name = task.track_ids[i], task.names[i]
    track = index.track(tid)
    sources = {s: index.read(tid, s) for s in track.stems}
    if task.mixture == "real" and track.mixture is not None:
        mix = index.read_mixture(tid)
    else:
        mix = np.sum(list(sources.values()), axis=0, dtype=np.float64).astype(np.float32)
    members = {t: index.members(t) for t in task.targets}
    try:
        est = separate(task.method, mix, sources, task.targets, members)
    except StemforgeError as e:
        raise type(e)(f"track {name!r}: {e}") from e
    folder = Path(task.stage) / name
    return [str(io.write(folder / f"{t}{AUDIO_SUFFIX}", a, track.sample_rate)
                .relative_to(task.stage)) for t, a in est.items()]


def plan(index, out_dir: str | os.PathLike, method: str, targets: Sequence[str] | None = None,
         mixture: str = "real") -> OracleTask:
    """Check the arguments against the index (nothing is read or written)."""
    method = method.lower()
    if method not in ALL_METHODS:
        raise StemforgeError(f"--method {method!r}: expected one of {', '.join(ALL_METHODS)}")
    if mixture not in ("real", "sum"):
        raise StemforgeError(f"--mixture {mixture!r}: expected 'real' or 'sum'")
    if not index.tracks:
        raise StemforgeError(f"no tracks to separate in {index.root}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise StemforgeError(f"--out {out}: exists and is not a folder; expected an output folder")
    targets = list(dict.fromkeys(targets or index.stem_names))
    for t in targets:
        try:
            index.members(t)
        except StemforgeError as e:
            raise StemforgeError(f"unknown target {t!r}: {e}") from None
    if method == "mwf":
        bad = [t for t in index.tracks if t.channels > 2]
        if bad:
            raise StemforgeError(f"--method mwf supports mono or stereo; track {bad[0].name!r} "
                                 f"has {bad[0].channels} channels")
    stage = out / f".oracle-{uuid.uuid4().hex[:12]}.partial"
    return OracleTask(IndexRef.of(index), tuple(t.id for t in index.tracks),
                      tuple(t.name for t in index.tracks), tuple(targets), method, mixture,
                      str(stage.resolve()))


def run(index, out_dir, method: str, targets: Sequence[str] | None = None,
        mixture: str = "real", workers: int = 1, scheduler: str | None = None,
        progress: bool = False) -> list[Path]:
    """Write oracle estimates for every track of ``index``; returns the files written."""
    task = plan(index, out_dir, method, targets, mixture)
    out, stage = Path(out_dir), Path(task.stage)
    created = not out.exists()
    seed_state(task.index.key, index)
    try:
        stage.mkdir(parents=True)
        results = run_task(oracle_item, task, len(task.track_ids), workers, scheduler, progress,
                           desc=f"oracle {task.method}")
        files = []
        for rel in sorted(p for r in results for p in r):
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, dst)
            files.append(dst)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)
    return files
