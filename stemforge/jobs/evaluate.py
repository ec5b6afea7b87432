"""Evaluation job: score separated estimates against an indexed dataset, track by track.

Layout of the estimates (what separation tools write): ``<estimates>/<track name>/<target>.wav``;
a target is a stem or a group of the index (e.g. ``accompaniment``). Results::

    <out>/<split>/<track name>.json   museval-compatible frames (+ whole-track SI-SDR / MDX SDR
                                      under each target's ``track_metrics``)
    <out>/summary_tracks.csv          per track and target: median over frames of every metric
    <out>/summary_targets.csv         per target: median over tracks of those medians
    <out>/boxplot_<target>.png        per-track medians of every metric, one box per metric

Tracks are scored in this process (``workers=1``) or on Dask (``workers=K`` starts a local
cluster of K processes, ``scheduler="tcp://host:port"`` uses a running one) through
:func:`stemforge.jobs.dask_runner.run_items`; workers open the index from its file and return
the scores, and this process writes every file once all tracks succeeded. Every file is written
atomically (temp file + rename), so a failure — bad input found up front, or a track failing
while scored — leaves no result file behind.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..audio import io
from ..errors import StemforgeError
from ..metrics import bss_eval_v4, mdx_sdr, museval_json, si_sdr
from ..metrics.validate import MetricsError, pad_or_trim
from ..atomic import write_bytes_atomic, write_text_atomic
from .dask_runner import run_items, seed_state, worker_state

METRICS = ("bsseval", "sisdr", "mdx")
BSS_COLUMNS = ("SDR", "SIR", "SAR", "ISR")
WHOLE_COLUMNS = {"sisdr": "SI-SDR", "mdx": "MDX-SDR"}
AUDIO_SUFFIX = ".wav"


@dataclass(frozen=True)
class TrackJob:
    """One track's work (plain data, cheap to send to a worker)."""

    track_id: str
    name: str
    split: str
    estimates: tuple[tuple[str, str], ...]  # (target, estimate file) in target order
    out_json: str  # relative to the results folder


@dataclass(frozen=True)
class IndexRef:
    """How a worker re-opens the index: its file, stamp (a changed file is re-opened) and groups."""

    index_file: str
    stamp: tuple
    groups: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def key(self) -> tuple:
        return ("index", self.index_file, self.stamp, self.groups)

    @classmethod
    def of(cls, index) -> "IndexRef":
        f = Path(index.index_file).resolve()
        st = f.stat() if f.is_file() else None  # in-process runs never re-open it
        groups = tuple(sorted((g, tuple(m)) for g, m in index.groups.items()))
        return cls(str(f), (st.st_size, st.st_mtime_ns) if st else None, groups)

    def open(self):
        from ..index import Index

        if self.stamp is None or not Path(self.index_file).is_file():
            raise StemforgeError(f"{self.index_file}: index file missing; Dask workers open the "
                                 "index from it (build it with `stemforge index ROOT`)")
        index = Index.load(self.index_file, refresh=False)
        index.groups.update({g: list(m) for g, m in self.groups})
        return index


@dataclass(frozen=True)
class EvalTask:
    """Everything workers need (small to pickle); ``jobs[i]`` is item ``i``."""

    index: IndexRef
    jobs: tuple[TrackJob, ...]
    sets: tuple[tuple[str, ...], ...]  # BSS Eval problems (targets scored jointly)
    metrics: tuple[str, ...]
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


def score_item(i: int, task: EvalTask) -> tuple[int, dict, dict[str, dict[str, float]], list[str]]:
    """Worker (in-process or Dask): read references and estimates of ``task.jobs[i]``, score.

    Returns (i, museval JSON dict, {target: {metric: median}}, adjusted-length notes); writes
    nothing (the caller writes every file once all tracks succeeded).
    """
    job = task.jobs[i]
    index = worker_state(task.index.key, task.index.open)
    track = index.track(job.track_id)
    refs, ests, notes = {}, {}, []
    for t, path in job.estimates:
        refs[t] = index.read(job.track_id, t)
        est = io.read(path)
        if est.shape[0] != refs[t].shape[0]:
            raise MetricsError(f"track {job.name!r}: estimate {path} has {est.shape[0]} "
                               f"channel(s), the reference {t!r} has {refs[t].shape[0]}; "
                               "expected the same count")
        if est.shape[1] != refs[t].shape[1]:  # each target on its own, as museval pads
            notes.append(f"{job.name}/{t}: {est.shape[1]} -> {refs[t].shape[1]} frames")
            est = pad_or_trim(refs[t][None], est[None])[0]
        ests[t] = est
    try:
        data, summary = score_track(refs, ests, task.sets, task.metrics, track.sample_rate,
                                    task.win, task.hop)
    except MetricsError as e:
        folder = Path(job.estimates[0][1]).parent
        raise MetricsError(f"track {job.name!r} (estimates {folder}): {e}") from e
    return i, data, summary, notes


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


def plan(index, estimates_dir: str | os.PathLike, targets: Sequence[str] | None = None,
         metrics: Sequence[str] = METRICS, win: float = 1.0, hop: float = 1.0) -> EvalTask:
    """Check every input up front (cheap header reads) and describe one item per track."""
    est_root = Path(estimates_dir)
    if not est_root.is_dir():
        raise StemforgeError(f"--estimates {est_root}: not a folder; expected "
                             f"<track name>/<target>{AUDIO_SUFFIX} files under it")
    if not index.tracks:
        raise StemforgeError(f"no reference tracks to evaluate in {index.root}")
    if not (win > 0 and hop > 0):
        raise StemforgeError(f"window {win} s / hop {hop} s: expected positive durations")
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
        ests = []
        for tg in targets:
            path = est_root / t.name / f"{tg}{AUDIO_SUFFIX}"
            _check_estimate(path, t.name, tg, t)
            ests.append((tg, str(path.resolve())))
        split = t.split or "all"
        jobs.append(TrackJob(t.id, t.name, split, tuple(ests), f"{split}/{t.name}.json"))
    return EvalTask(IndexRef.of(index), tuple(jobs), sets, tuple(metrics), float(win), float(hop))


def run_task(fn: Callable, task, n: int, workers: int = 1, scheduler: str | None = None,
             progress: bool = False, desc: str = "evaluate", unit: str = "track") -> list:
    """``[fn(i, task) for i in range(n)]`` in-process or on Dask (see
    :func:`~stemforge.jobs.dask_runner.run_items`), with a progress bar (lines off a terminal);
    results in completion order. The first failure raises (Dask cancels what has not started)."""
    from ..progress import progress as progress_bar

    if workers is not None and workers < 1:
        raise StemforgeError(f"--workers {workers}: expected 1 or more")
    out = []
    with progress_bar(n, desc, unit, enabled=progress) as bar:
        for r in run_items(fn, range(n), workers, scheduler, name=desc.replace(" ", "-"),
                           task=task):
            out.append(r)
            bar.update()
    return out


def _tables(results) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [{"split": split, "track": name, "target": tg, **vals}
            for split, name, summary in results for tg, vals in summary.items()]
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


def write_results(task: EvalTask, results, out_dir: str | os.PathLike
                  ) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    """Write the per-track JSONs, both CSVs and the boxplots; ``results`` from :func:`score_item`."""
    out = Path(out_dir)
    results = sorted(results, key=lambda r: r[0])
    files = [museval_json.save(out / task.jobs[i].out_json, data) for i, data, _, _ in results]
    tracks, targets = _tables([(task.jobs[i].split, task.jobs[i].name, summary)
                               for i, _, summary, _ in results])
    files += [write_text_atomic(out / "summary_tracks.csv", tracks.to_csv(index=False)),
              write_text_atomic(out / "summary_targets.csv", targets.to_csv(index=False))]
    for tg in targets["target"]:
        files.append(write_bytes_atomic(out / f"boxplot_{tg}.png", boxplot_png(tracks, tg)))
    return tracks, targets, files


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise StemforgeError(f"--out {out}: exists and is not a folder; expected a results folder")


def evaluate(index, estimates_dir, out_dir, targets: Sequence[str] | None = None,
             metrics: Sequence[str] = METRICS, workers: int = 1, scheduler: str | None = None,
             progress: bool = False, win: float = 1.0, hop: float = 1.0) -> EvalResult:
    """The whole job: plan (all checks), score every track (in-process or on Dask), then write
    the JSONs, CSVs and boxplots. ``win``/``hop`` in seconds (museval: 1 s / 1 s)."""
    out = Path(out_dir)
    _check_out(out)
    task = plan(index, estimates_dir, targets, metrics, win, hop)
    seed_state(task.index.key, index)  # in-process runs reuse the caller's index
    results = run_task(score_item, task, len(task.jobs), workers, scheduler, progress)
    tracks, tgt, files = write_results(task, results, out)
    notes = [n for r in sorted(results, key=lambda r: r[0]) for n in r[3]]
    return EvalResult(tracks, tgt, files, notes)
