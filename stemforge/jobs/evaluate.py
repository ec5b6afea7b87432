"""Evaluation job: score separated estimates against an indexed dataset, track by track.

Layout of the estimates (what separation tools write): ``<estimates>/<track name>/<target>.wav``;
a target is a stem or a group of the index (e.g. ``accompaniment``). Results::

    <out>/<split>/<track name>.json   museval-compatible frames (+ whole-track SI-SDR / MDX SDR)
    <out>/summary_tracks.csv          per track and target: median over frames of every metric
    <out>/summary_targets.csv         per target: median over tracks of those medians
    <out>/boxplot_<target>.png        per-track medians of every metric, one box per metric

Every file is written atomically (temp file + rename): a failure never leaves a partial file
under a final name; the CSVs and plots are written only after every track succeeded.

Rules (museval's, where it has one):

* estimates longer than the reference are trimmed, shorter ones zero-padded at the end
  (``museval.evaluate(..., padding=True)``); the job reports which were adjusted;
* BSS Eval scores targets of one track jointly. A group target that overlaps another target
  (``accompaniment`` next to ``drums``) cannot join that joint problem (its Gram matrix would be
  singular), so — as museval does for vocals/accompaniment — it is scored in a second problem
  together with the targets disjoint from it, and those partners report the scores of that
  second problem (museval reports vocals from the vocals/accompaniment pair);
* a reference silent over the whole track, a wrong channel count or sample rate, a missing
  folder or file, an unknown target: :class:`~stemforge.errors.StemforgeError` naming the track
  and the file.
"""
from __future__ import annotations

import io as _io
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..audio import io
from ..errors import StemforgeError
from ..metrics import bss_eval_v4, mdx_sdr, museval_json, si_sdr
from ..metrics.validate import MetricsError
from .atomic import write_bytes_atomic, write_text_atomic

METRICS = ("bsseval", "sisdr", "mdx")
BSS_COLUMNS = ("SDR", "SIR", "SAR", "ISR")
WHOLE_COLUMNS = {"sisdr": "SI-SDR", "mdx": "MDX-SDR"}
AUDIO_SUFFIX = ".wav"


@dataclass(frozen=True)
class TrackJob:
    """One track's work: everything a worker process needs (small to pickle)."""

    index: object  # a one-track Index view
    track_id: str
    name: str
    split: str
    estimates: dict[str, str]  # target -> estimate file
    sets: tuple[tuple[str, ...], ...]  # BSS Eval problems (targets scored jointly)
    metrics: tuple[str, ...]
    out_json: str
    win: float  # seconds
    hop: float


@dataclass
class EvalResult:
    tracks: pd.DataFrame  # per track and target medians
    targets: pd.DataFrame  # per target medians over tracks
    files: list[Path]
    adjusted: list[str]  # "track/target: N -> M frames" for padded / trimmed estimates


def parse_metrics(spec: str | Sequence[str]) -> tuple[str, ...]:
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [n for n in names if n]
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise StemforgeError(f"--metrics {','.join(names) or '(empty)'}: unknown "
                             f"{', '.join(bad) or 'selection'}; expected a comma list of "
                             f"{', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))


def evaluation_sets(targets: Sequence[str], members: dict[str, set[str]]) -> list[list[str]]:
    """Split targets into joint BSS Eval problems (see module doc). ``members``: target -> stems."""
    def overlaps(a, b):
        return bool(members[a] & members[b])

    groups_out = [t for t in targets
                  if len(members[t]) > 1 and any(overlaps(t, u) for u in targets if u != t)]
    main = [t for t in targets if t not in groups_out]
    sets = [main] if main else []
    for g in groups_out:
        sets.append([g] + [u for u in main if not overlaps(g, u)])
    return sets


def _median(a) -> float:
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]  # museval: NaN skipped (+inf frames are written as NaN too)
    return float(np.median(a)) if a.size else math.nan


def score_track(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray],
                sets: Sequence[Sequence[str]], metrics: Sequence[str], sample_rate: int,
                win: float = 1.0, hop: float = 1.0) -> tuple[dict, dict[str, dict[str, float]]]:
    """Score one track. ``references``/``estimates``: target -> ``(channels, frames)``.

    Returns the museval JSON dict and ``{target: {metric: median value}}``.
    """
    targets = list(references)
    frames: dict[str, dict[str, np.ndarray]] = {}
    if "bsseval" in metrics:
        w, h = int(round(win * sample_rate)), int(round(hop * sample_rate))
        for group in sets:
            sc = bss_eval_v4([references[t] for t in group], [estimates[t] for t in group],
                             win=w, hop=h, names=list(group))
            for i, t in enumerate(group):
                frames[t] = {m: sc.metric(m)[i] for m in BSS_COLUMNS}
    empty = {m: np.zeros(0) for m in BSS_COLUMNS}
    data = museval_json.track_dict({t: frames.get(t, empty) for t in targets}, win, hop)
    whole: dict[str, np.ndarray] = {}
    refs = [references[t] for t in targets]
    ests = [estimates[t] for t in targets]
    if "sisdr" in metrics:
        whole["SI-SDR"] = si_sdr(refs, ests, names=targets)
    if "mdx" in metrics:
        whole["MDX-SDR"] = mdx_sdr(refs, ests, names=targets)
    summary = {}
    for i, (t, entry) in enumerate(zip(targets, data["targets"])):
        row = {m: _median(frames[t][m]) for m in BSS_COLUMNS} if t in frames else {}
        for col, vals in whole.items():
            row[col] = float(vals[i])
            entry.setdefault("track_metrics", {})[col] = museval_json._q(vals[i])
        summary[t] = row
    return data, summary


def run_track(job: TrackJob) -> tuple[str, str, dict[str, dict[str, float]], list[str]]:
    """Worker: read references and estimates, score, write the JSON atomically.

    Returns (split, name, {target: {metric: median}}, adjusted-length notes).
    """
    index = job.index
    track = index.track(job.track_id)
    refs = {t: index.read(job.track_id, t) for t in job.estimates}
    ests, notes = {}, []
    for t, path in job.estimates.items():
        est = io.read(path)
        if est.shape[1] != track.frames:
            notes.append(f"{job.name}/{t}: {est.shape[1]} -> {track.frames} frames")
        ests[t] = est
    try:
        data, summary = score_track(refs, ests, job.sets, job.metrics, track.sample_rate,
                                    job.win, job.hop)
    except MetricsError as e:
        folder = Path(next(iter(job.estimates.values()))).parent
        raise MetricsError(f"track {job.name!r} (estimates {folder}): {e}") from e
    museval_json.save(job.out_json, data)
    return job.split, job.name, summary, notes


def _check_estimate(path: Path, name: str, target: str, track) -> None:
    if not path.is_file():
        raise StemforgeError(f"track {name!r}: estimate file {path} is missing; expected "
                             f"<estimates>/<track name>/<target>{AUDIO_SUFFIX} for target "
                             f"{target!r}")
    info = io.info(path)
    if info.channels != track.channels:
        raise MetricsError(f"track {name!r}: estimate {path} has {info.channels} channel(s), the "
                           f"reference {target!r} has {track.channels}; expected the same count")
    if info.sample_rate != track.sample_rate:
        raise MetricsError(f"track {name!r}: estimate {path} is {info.sample_rate} Hz, the "
                           f"reference is {track.sample_rate} Hz; resample the estimate first")


def default_targets(index, folder: Path) -> list[str]:
    """Targets = the ``*.wav`` names in one track's estimate folder (each a stem or group)."""
    names = sorted(p.stem for p in folder.glob(f"*{AUDIO_SUFFIX}") if not p.name.startswith("."))
    if not names:
        raise StemforgeError(f"{folder}: no {AUDIO_SUFFIX} estimates; expected "
                             f"<track name>/<target>{AUDIO_SUFFIX} files (or pass --targets)")
    known = set(index.stem_names) | set(index.groups)
    bad = [n for n in names if n not in known]
    if bad:
        raise StemforgeError(f"{folder}: {', '.join(f + AUDIO_SUFFIX for f in bad)} is not a stem "
                             f"or group of the references (stems: {', '.join(index.stem_names)}; "
                             f"groups: {', '.join(sorted(index.groups)) or '-'}); pass --targets")
    return names


def plan(index, estimates_dir: str | os.PathLike, out_dir: str | os.PathLike,
         targets: Sequence[str] | None = None, metrics: Sequence[str] = METRICS,
         win: float = 1.0, hop: float = 1.0) -> list[TrackJob]:
    """Check every input up front (cheap header reads) and list one job per track."""
    from ..index import Index

    est_root, out_root = Path(estimates_dir), Path(out_dir)
    if not est_root.is_dir():
        raise StemforgeError(f"--estimates {est_root}: not a folder; expected "
                             f"<track name>/<target>{AUDIO_SUFFIX} files under it")
    if not index.tracks:
        raise StemforgeError(f"no reference tracks to evaluate in {index.root}")
    for t in index.tracks:
        if not (est_root / t.name).is_dir():
            raise StemforgeError(f"track {t.name!r}: estimate folder {est_root / t.name} is "
                                 f"missing; expected <estimates>/<track name>/<target>"
                                 f"{AUDIO_SUFFIX}")
    if not targets:
        targets = default_targets(index, est_root / index.tracks[0].name)
    targets = list(dict.fromkeys(targets))
    members = {}
    for tg in targets:
        try:
            members[tg] = set(index.members(tg))
        except StemforgeError as e:
            raise StemforgeError(f"unknown target {tg!r}: {e}") from None
    sets = tuple(tuple(s) for s in evaluation_sets(targets, members))
    jobs = []
    for t in index.tracks:
        ests = {}
        for tg in targets:
            path = est_root / t.name / f"{tg}{AUDIO_SUFFIX}"
            _check_estimate(path, t.name, tg, t)
            ests[tg] = str(path)
        view = Index(index.root, index.layout, index.cache_dir, [t], index.groups)
        view.cache = index.cache
        split = t.split or "all"
        jobs.append(TrackJob(view, t.id, t.name, split, ests, sets, tuple(metrics),
                             str(out_root / split / f"{t.name}.json"), win, hop))
    return jobs


def run_jobs_generic(fn: Callable, jobs: Sequence, workers: int = 1, progress: bool = False,
                     desc: str = "evaluate") -> list:
    """``[fn(job) for job in jobs]`` in a process pool (``workers`` > 1) or in-process, with a
    tqdm bar; results in job order. The first failure cancels what has not started and raises."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="track", disable=not progress)
    out: dict[int, object] = {}
    try:
        if workers <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                out[i] = fn(job)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                futs = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
                try:
                    for fut in as_completed(futs):
                        out[futs[fut]] = fut.result()
                        bar.update()
                except BaseException:
                    for f in futs:
                        f.cancel()
                    raise
    finally:
        bar.close()
    return [out[i] for i in range(len(jobs))]


def run_jobs(jobs: Sequence[TrackJob], workers: int = 1,
             progress: bool = False) -> list[tuple[str, str, dict, list[str]]]:
    """Score every track job (see :func:`run_jobs_generic`)."""
    return run_jobs_generic(run_track, jobs, workers, progress)


def _tables(results) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [{"split": split, "track": name, "target": tg, **vals}
            for split, name, summary, _ in results for tg, vals in summary.items()]
    tracks = pd.DataFrame(rows)
    cols = [c for c in tracks.columns if c not in ("split", "track", "target")]
    order = list(dict.fromkeys(tracks["target"]))
    targets = (tracks.groupby("target", sort=False)[cols].median()  # NaN skipped
               .reindex(order).reset_index())
    targets.insert(1, "tracks", tracks.groupby("target", sort=False).size().reindex(order).values)
    return tracks, targets


def boxplot_png(tracks: pd.DataFrame, target: str) -> bytes:
    """Boxplot of the per-track medians of every metric for one target, as PNG bytes."""
    from matplotlib.figure import Figure

    sub = tracks[tracks["target"] == target]
    cols = [c for c in tracks.columns if c not in ("split", "track", "target")]
    data = [sub[c].replace([np.inf, -np.inf], np.nan).dropna().values for c in cols]
    fig = Figure(figsize=(1.2 * len(cols) + 2, 4))
    ax = fig.subplots()
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(cols) + 1), cols)
    ax.set_ylabel("dB (median over frames per track)")
    ax.set_title(f"{target} ({len(sub)} tracks)")
    ax.grid(axis="y", alpha=0.3)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def write_summary(results, out_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    out = Path(out_dir)
    tracks, targets = _tables(results)
    files = [write_text_atomic(out / "summary_tracks.csv", tracks.to_csv(index=False)),
             write_text_atomic(out / "summary_targets.csv", targets.to_csv(index=False))]
    for tg in targets["target"]:
        files.append(write_bytes_atomic(out / f"boxplot_{tg}.png", boxplot_png(tracks, tg)))
    return tracks, targets, files


def evaluate(index, estimates_dir, out_dir, targets: Sequence[str] | None = None,
             metrics: Sequence[str] = METRICS, workers: int = 1, progress: bool = False,
             runner: Callable | None = None) -> EvalResult:
    """The whole job: plan (all checks), score every track, write JSONs, CSVs and boxplots.

    ``runner(jobs, workers, progress)`` replaces the process-pool runner (e.g. a Dask one).
    """
    jobs = plan(index, estimates_dir, out_dir, targets, metrics)
    results = (runner or run_jobs)(jobs, workers, progress)
    tracks, tgt, files = write_summary(results, out_dir)
    files = [Path(j.out_json) for j in jobs] + files
    return EvalResult(tracks, tgt, files, [n for r in results for n in r[3]])
