"""Evaluation job: score separated estimates of one or several methods against an indexed
dataset, track by track, and write museval-compatible results plus a combined summary.

Layout of the estimates (what separation tools write): ``<estimates>/<track name>/<target>.wav``;
a target is a stem or a group of the index (e.g. ``accompaniment``). Results::

    <out>/<method>/<split>/<track name>.json  museval-compatible frames (+ whole-track SI-SDR,
                                              MDX SDR (= SDX uSDR) and cSDR under each target's
                                              ``track_metrics``)
    <out>/<method>/summary_tracks.csv         per track and target: one value per metric
    <out>/<method>/summary_targets.csv        per target: the tracks aggregated (see below)
    <out>/<method>/boxplot_<target>.png       per-track values of every metric (``plots=True``;
                                              ``stemforge report <out>`` draws richer ones)
    <out>/summary.csv                         method x target x metric, with the aggregation
    <out>/methods.pandas                      every BSS Eval frame of every method, pickled in
                                              museval's MethodStore layout (``MethodStore.load``)
    <out>/stemforge-eval.json                 the record: dataset, split, methods, estimates

With a single unnamed estimates folder (``evaluate(index, "est", out)``) the method's files sit
directly in ``<out>`` (``<out>/<split>/<track>.json`` ...), as museval's ``eval_dir`` writes.
Aggregation over tracks (:data:`stemforge.metrics.results.AGGREGATION`): BSS Eval metrics the
median of per-track medians over frames (museval's), SI-SDR the median, MDX SDR and cSDR the
mean (the challenges'). Museval JSON folders written by other tools can join the comparison
(``imports``): their files are checked, restricted to the evaluated tracks and copied into
``<out>/<method>/``.

Tracks are scored in this process (``workers=1``) or on Dask (``workers=K`` starts a local
cluster of K processes, ``scheduler="tcp://host:port"`` uses a running one) through
:func:`stemforge.jobs.dask_runner.run_items`; workers open the index from its file and return
the scores. This process writes every file into a hidden staging folder in ``<out>`` and moves
the finished entries into place once every track of every method succeeded, so a failure — bad
input found up front, or a track failing while scored — leaves ``<out>`` as it was.

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

import dataclasses
import io as _io
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from .. import __version__
from ..audio import io
from ..errors import StemforgeError
from ..metrics import museval_json, scratch
from ..metrics.bsseval import bss_eval_v4_checked
from ..metrics.names import METHOD_NAME, RECORD, RECORD_FORMAT
from ..metrics.whole import whole_track_checked
from ..metrics.validate import MetricsError, as_stack, check_pair, pad_or_trim
from ..atomic import write_bytes_atomic, write_failure, write_text_atomic
from .dask_runner import run_items, seed_state, uses_dask, worker_state

if TYPE_CHECKING:  # pandas and the tables module are imported while the tracks are scored
    import pandas as pd

    from ..metrics import results as mresults

METRICS = ("bsseval", "sisdr", "mdx", "csdr")
ALIASES = {"usdr": "mdx"}  # the SDX name of the MDX challenge SDR
BSS_COLUMNS = ("SDR", "SIR", "SAR", "ISR")
WHOLE_COLUMNS = {"sisdr": "SI-SDR", "mdx": "MDX-SDR", "csdr": "cSDR"}
AUDIO_SUFFIX = ".wav"
SUMMARY = "summary.csv"
MUSEVAL_TABLE = "methods.pandas"
STAGE_PREFIX = ".stemforge-eval-"
NAME_RE = METHOD_NAME


@dataclass(frozen=True)
class TrackJob:
    """One track of one method (plain data, cheap to send to a worker)."""

    method: str
    track_id: str
    name: str
    split: str
    estimates: tuple[tuple[str, str], ...]  # (target, estimate file) in target order
    sets: tuple[tuple[str, ...], ...]       # BSS Eval problems (targets scored jointly)
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
class MethodPlan:
    """One method: its name, estimates folder, targets and where its tree goes (``"."``: the
    results folder itself, the single-method layout)."""

    name: str
    estimates: str | None   # None for imported results
    targets: tuple[str, ...]
    tree: str


@dataclass(frozen=True)
class EvalTask:
    """Everything workers need (small to pickle); ``jobs[i]`` is item ``i``."""

    index: IndexRef
    jobs: tuple[TrackJob, ...]
    metrics: tuple[str, ...]
    win: float  # seconds
    hop: float
    methods: tuple[MethodPlan, ...] = ()
    threads: int = 1  # BSS Eval threads per track (same numbers at any count)


@dataclass
class EvalResult:
    tracks: pd.DataFrame   # per track and target values (wide; first method)
    targets: pd.DataFrame  # per target aggregates (wide; first method)
    files: list[Path]
    adjusted: list[str]    # "track/target: N -> M frames" for padded / trimmed estimates
    summary: pd.DataFrame  # method x target x metric
    methods: list[str] = field(default_factory=list)


def parse_metrics(spec: str | Sequence[str]) -> tuple[str, ...]:
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [ALIASES.get(n, n) for n in names if n]
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise StemforgeError(f"--metrics {','.join(names) or '(empty)'}: unknown "
                             f"{', '.join(bad) or 'selection'}; expected a comma list of "
                             f"{', '.join(METRICS)} (usdr = mdx)")
    return tuple(dict.fromkeys(names))


def parse_named(specs: Sequence[str], option: str) -> dict[str, str]:
    """``NAME=DIR`` (or a bare ``DIR``, named after its folder) -> ``{name: dir}``."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = str(spec).partition("=")
        if not sep or not NAME_RE.match(name):
            name, path = Path(str(spec).rstrip("/")).name, str(spec)
        if not NAME_RE.match(name):
            raise StemforgeError(f"{option} {spec!r}: cannot name a method {name!r}; use "
                                 "NAME=DIR with a name of letters, digits, '.', '_', '+', '-'")
        if name in out:
            raise StemforgeError(f"{option} {spec!r}: method name {name!r} is given twice; "
                                 "name each folder (NAME=DIR)")
        out[name] = path
    return out


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


def score_track(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray],
                sets: Sequence[Sequence[str]], metrics: Sequence[str], sample_rate: int,
                win: float = 1.0, hop: float = 1.0, threads: int = 1) -> dict:
    """Score one track. ``references``/``estimates``: target -> ``(channels, frames)``.

    Returns the museval JSON dict (values rounded to 5 decimals, as museval writes them); the
    whole-track metrics sit under each target's ``track_metrics``. cSDR uses chunks of
    ``win``/``hop`` seconds (1 s, the challenges').
    """
    targets = list(references)
    # every metric computes in float64 on (nsrc, channels, frames) stacks (float32 ones when
    # the inputs are float32: the same scores): stacked once (into this thread's reused
    # buffers inside scratch.reuse())
    refs = as_stack([references[t] for t in targets], "references", targets,
                    buffer="eval.references", keep_float32=True)
    ests = as_stack([estimates[t] for t in targets], "estimates", targets,
                    buffer="eval.estimates", keep_float32=True)
    return score_stacks(refs, ests, targets, sets, metrics, sample_rate, win, hop, threads)


def score_stacks(refs: np.ndarray, ests: np.ndarray, targets: Sequence[str],
                 sets: Sequence[Sequence[str]], metrics: Sequence[str], sample_rate: int,
                 win: float = 1.0, hop: float = 1.0, threads: int = 1) -> dict:
    """:func:`score_track` on float64 or float32 ``(targets, channels, frames)`` stacks (row
    ``k`` is ``targets[k]``)."""
    frames: dict[str, dict[str, np.ndarray]] = {}
    w, h = int(round(win * sample_rate)), int(round(hop * sample_rate))
    # checked once for all metrics (BSS Eval also needs every reference and estimate non-silent)
    refs, ests = check_pair(refs, ests, targets, require_nonsilent="bsseval" in metrics)
    row = {t: i for i, t in enumerate(targets)}
    if "bsseval" in metrics:
        for group in sets:
            pick = [row[t] for t in group]
            whole_set = pick == list(range(len(targets)))
            sc = bss_eval_v4_checked(refs if whole_set else refs[pick],
                                     ests if whole_set else ests[pick],
                                     win=w, hop=h, threads=threads)
            for i, t in enumerate(group):
                frames[t] = {m: sc.metric(m)[i] for m in BSS_COLUMNS}
    empty = {m: np.zeros(0) for m in BSS_COLUMNS}
    data = museval_json.track_dict({t: frames.get(t, empty) for t in targets}, win, hop)
    # SI-SDR, MDX SDR and cSDR from shared sums in one call (their definitions: si_sdr,
    # mdx_sdr, csdr; whole_track equals them up to summation order, tested)
    which = [WHOLE_COLUMNS[m] for m in WHOLE_COLUMNS if m in metrics]
    whole = whole_track_checked(refs, ests, w, h, which) if which else {}
    for i, entry in enumerate(data["targets"]):
        for col, vals in whole.items():
            entry.setdefault("track_metrics", {})[col] = museval_json.quantize(vals[i])
    return data


def score_item(i: int, task: EvalTask) -> tuple[int, dict, list[str]]:
    """Worker (in-process or Dask): read references and estimates of ``task.jobs[i]``, score.

    Returns (i, museval JSON dict, adjusted-length notes); writes nothing (the caller writes
    every file once all tracks succeeded). Each file goes straight into the float32 stacks
    (this thread's reused buffers inside ``scratch.reuse()``): only one file's samples are
    held besides them.
    """
    job = task.jobs[i]
    index = worker_state(task.index.key, task.index.open)
    track = index.track(job.track_id)
    n_t, notes = len(job.estimates), []
    shape = (n_t, track.channels, track.frames)
    # float32 stacks: every reader gives float32 (exact for 16-bit and float32 files), and every
    # metric takes the samples to float64 before its sums (the scores of float64 stacks)
    refs = scratch.empty("eval.references", shape, np.float32)
    ests = scratch.empty("eval.estimates", shape, np.float32)
    who = f"track {job.name!r}" + (f" of {job.method!r}" if len(task.methods) > 1 else "")
    for k, (t, path) in enumerate(job.estimates):
        refs[k] = index.read(job.track_id, t)
        est = io.read(path)
        if est.shape[0] != track.channels:
            raise MetricsError(f"{who}: estimate {path} has {est.shape[0]} channel(s), the "
                               f"reference {t!r} has {track.channels}; expected the same count")
        if est.shape[1] != track.frames:  # each target on its own, as museval pads
            notes.append(f"{job.method}/{job.name}/{t}: {est.shape[1]} -> {track.frames} "
                         "frames")
            est = pad_or_trim(refs[k][None], est[None])[0]
        ests[k] = est
        del est
    targets = [t for t, _ in job.estimates]
    try:
        data = score_stacks(refs, ests, targets, job.sets, task.metrics, track.sample_rate,
                            task.win, task.hop, task.threads)
    except MetricsError as e:
        folder = Path(job.estimates[0][1]).parent
        raise MetricsError(f"{who} (estimates {folder}): {e}") from e
    return i, data, notes


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


def _plan_method(index, name: str, est_root: Path, tree: str, targets: Sequence[str] | None
                 ) -> tuple[MethodPlan, list[TrackJob]]:
    if not est_root.is_dir():
        raise StemforgeError(f"--estimates {est_root}: not a folder; expected "
                             f"<track name>/<target>{AUDIO_SUFFIX} files under it")
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
    prefix = "" if tree == "." else f"{tree}/"
    for t in index.tracks:
        ests = []
        for tg in targets:
            path = est_root / t.name / f"{tg}{AUDIO_SUFFIX}"
            _check_estimate(path, t.name, tg, t)
            ests.append((tg, str(path.resolve())))
        split = t.split or "all"
        jobs.append(TrackJob(name, t.id, t.name, split, tuple(ests), sets,
                             f"{prefix}{split}/{t.name}.json"))
    return MethodPlan(name, str(est_root.resolve()), tuple(targets), tree), jobs


def plan(index, estimates: str | os.PathLike | Mapping[str, str | os.PathLike],
         targets: Sequence[str] | None = None, metrics: Sequence[str] = METRICS,
         win: float = 1.0, hop: float = 1.0) -> EvalTask:
    """Check every input up front (cheap header reads) and describe one item per track and
    method. ``estimates``: one folder (single-method layout) or ``{method: folder}``."""
    if not index.tracks:
        raise StemforgeError(f"no reference tracks to evaluate in {index.root}")
    if not (0 < win < math.inf and 0 < hop < math.inf):
        raise StemforgeError(f"window {win} s / hop {hop} s: expected positive durations")
    if isinstance(estimates, Mapping):
        named = {n: (Path(p), n) for n, p in estimates.items()}
    else:
        p = Path(estimates)
        named = {p.resolve().name or "estimates": (p, ".")}
    plans, jobs = [], []
    for name, (folder, tree) in named.items():
        mp, js = _plan_method(index, name, folder, tree, targets)
        plans.append(mp)
        jobs += js
    return EvalTask(IndexRef.of(index), tuple(jobs), tuple(metrics), float(win), float(hop),
                    tuple(plans))


def run_task(fn: Callable, task, n: int, workers: int = 1, scheduler: str | None = None,
             progress: bool = False, desc: str = "evaluate", unit: str = "track",
             threads: int = 1, meanwhile: Callable[[], None] | None = None) -> list:
    """``[fn(i, task) for i in range(n)]`` in-process or on Dask (see
    :func:`~stemforge.jobs.dask_runner.run_items`), with a progress bar (lines off a terminal);
    results in completion order. The first failure raises (Dask cancels what has not started).
    ``threads`` > 1 (in-process only): items run on that many threads of this process (``fn``
    must be thread-safe; the compiled kernels release the GIL); results and the failure raised
    are then those of item order, as in a plain loop, and items not started are cancelled.
    ``meanwhile``: called in this thread once the items are submitted (in-process, the items
    then run on pool threads, a single one too: e.g. to import what follows the items while
    they read and transform their audio); on Dask, before the items."""
    from ..progress import progress as progress_bar

    if workers is not None and workers < 1:
        raise StemforgeError(f"--workers {workers}: expected 1 or more")
    out = []
    local = not uses_dask(workers, scheduler)
    with progress_bar(n, desc, unit, enabled=progress) as bar:
        if local and n > 0 and ((threads > 1 and n > 1) or meanwhile is not None):
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(min(threads, n))
            try:
                futures = [pool.submit(fn, i, task=task) for i in range(n)]
                if meanwhile is not None:
                    meanwhile()
                for f in futures:
                    out.append(f.result())
                    bar.update()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            return out
        if meanwhile is not None:
            meanwhile()
        for r in run_items(fn, range(n), workers, scheduler, name=desc.replace(" ", "-"),
                           task=task):
            out.append(r)
            bar.update()
    return out


def imported_tracks(name: str, folder: str | os.PathLike, index
                    ) -> list[tuple[str, str, dict]]:
    """Museval JSONs another tool wrote for method ``name``: ``(split, track, dict)`` for every
    track of ``index``, read and checked (a missing track or unreadable file is an error)."""
    root = Path(folder)
    if not root.exists():
        raise StemforgeError(f"--import {name}={root}: does not exist; expected a folder of "
                             "museval JSON files (<split>/<track>.json)")
    from ..metrics.results import json_files

    files: dict[str, list[Path]] = {}
    for f in json_files(root):
        files.setdefault(f.stem, []).append(f)
    out, missing = [], []
    for t in index.tracks:
        split = t.split or "all"
        cands = files.get(t.name, [])
        pick = [f for f in cands if f.parent.name == split] or cands
        if not pick:
            missing.append(t.name)
            continue
        try:
            data = museval_json.load(pick[0])
        except StemforgeError as e:
            raise StemforgeError(f"--import {name}={root}: {e}") from None
        out.append((split, t.name, data))
    if missing:
        raise StemforgeError(f"--import {name}={root}: no results for {len(missing)} of the "
                             f"{len(index.tracks)} evaluated tracks (e.g. "
                             f"{', '.join(repr(m) for m in missing[:3])}); a comparison needs "
                             "every method scored on the same tracks")
    return out


def boxplot_png(tracks: pd.DataFrame, target: str) -> bytes:
    """Boxplot of the per-track values of every metric for one target, as PNG bytes (2x)."""
    from matplotlib.figure import Figure

    sub = tracks[tracks["target"] == target]
    cols = [c for c in tracks.columns if c not in ("split", "track", "target")]
    data = [sub[c].replace([np.inf, -np.inf], np.nan).dropna().values for c in cols]
    fig = Figure(figsize=(1.2 * len(cols) + 2, 4))
    ax = fig.subplots()
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(cols) + 1), cols)
    ax.set_ylabel("dB per track")
    ax.set_title(f"{target} ({len(sub)} tracks; BSS Eval: median over frames)")
    ax.grid(axis="y", alpha=0.3)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    return buf.getvalue()


def method_tables(method: str, tracks_data: Sequence[tuple[str, str, dict]]
                  ) -> tuple[mresults.MethodResults, pd.DataFrame, pd.DataFrame]:
    """One method's scores from its ``(split, track, museval dict)`` list: the
    :class:`~stemforge.metrics.results.MethodResults` and the wide per-track / per-target
    tables (``summary_tracks.csv`` / ``summary_targets.csv``)."""
    import pandas as pd

    from ..metrics import results as mresults

    frames, tracks, targets, split_of = [], [], [], {}
    for split, name, data in tracks_data:
        fr, tr = mresults.json_tables(method, name, data)
        frames += fr
        tracks += tr
        split_of[name] = split
        targets += [t["name"] for t in data["targets"] if t["name"] not in targets]
    m = mresults.MethodResults(method, Path("."), pd.DataFrame(frames, columns=mresults.FRAME_COLUMNS),
                               pd.DataFrame(tracks, columns=mresults.TRACK_COLUMNS), targets)
    rows = []
    for split, name, data in tracks_data:
        sub = m.tracks[m.tracks["track"] == name]
        for t in targets:
            vals = sub[sub["target"] == t].set_index("metric")["score"]
            rows.append({"split": split, "track": name, "target": t,
                         **{k: float(vals[k]) for k in m.metrics if k in vals.index}})
    wide = pd.DataFrame(rows, columns=["split", "track", "target", *m.metrics])
    summ = mresults.summary_table([m])
    per_target = (summ.pivot(index="target", columns="metric", values="score")
                  .reindex(index=targets, columns=m.metrics).reset_index())
    per_target.insert(1, "tracks", [int((wide["target"] == t).sum()) for t in targets])
    per_target.columns.name = None
    return m, wide, per_target


def write_method(stage: Path, tree: str, method: str,
                 tracks_data: Sequence[tuple[str, str, dict]], plots: bool = False
                 ) -> tuple[mresults.MethodResults, pd.DataFrame, pd.DataFrame, list[Path]]:
    """Write one method's tree under ``stage/tree``: JSONs, both CSVs, and with ``plots`` the
    boxplots (matplotlib's import and four renders cost about a second: on request only)."""
    base = stage if tree == "." else stage / tree
    files = [museval_json.save(base / split / f"{name}.json", data)
             for split, name, data in tracks_data]
    m, wide, per_target = method_tables(method, tracks_data)
    files += [write_text_atomic(base / "summary_tracks.csv", wide.to_csv(index=False)),
              write_text_atomic(base / "summary_targets.csv", per_target.to_csv(index=False))]
    for tg in m.targets if plots else ():
        files.append(write_bytes_atomic(base / f"boxplot_{tg}.png", boxplot_png(wide, tg)))
    return m, wide, per_target, files


def _meanwhile(index, task: EvalTask, plots: bool, kernels: bool) -> Callable[[], None]:
    """What this process does while its first tracks are read and Fourier-transformed on the
    pool's threads (reads and FFTs release the GIL): with ``kernels``, load the compiled
    kernels scoring calls (imports hold the GIL — the ahead-of-time build's BLAS table from
    SciPy, or without a build numba's import and cache loads: done here, the workers find them
    loaded), then import the tables' code (pandas; matplotlib with ``plots``).
    Changes no result: the kernels run on a tiny made-up problem of each joint size scored."""
    def prepare() -> None:
        if kernels and "bsseval" in task.metrics and task.jobs:
            from ..metrics.bsseval import load_kernels

            channels = index.track(task.jobs[0].track_id).channels
            for size in sorted({len(s) for j in task.jobs for s in j.sets}):
                load_kernels(size, channels)
        import pandas  # noqa: F401

        from ..metrics import results  # noqa: F401
        if plots:
            import matplotlib.figure  # noqa: F401
    return prepare


def _free_cores(cap: int = 2) -> int:
    """Cores this process may use, at most ``cap`` (BSS Eval's passes gain little beyond 2)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(cap, n))


def record(index, task: EvalTask, imports: Mapping[str, str]) -> dict:
    """The ``stemforge-eval.json`` content: what was scored, on what, and where it lies."""
    splits = sorted({j.split for j in task.jobs}) or sorted({t.split or "all"
                                                            for t in index.tracks})
    methods = {mp.name: {"results": mp.tree, "estimates": mp.estimates,
                         "targets": list(mp.targets)} for mp in task.methods}
    for name, folder in imports.items():
        methods[name] = {"results": name, "estimates": None,
                         "imported_from": str(Path(folder).resolve())}
    return {"format": RECORD_FORMAT, "version": 1, "stemforge": __version__,
            "root": str(Path(index.root).resolve()), "index": str(Path(index.index_file).resolve()),
            "groups": {g: list(m) for g, m in index.groups.items()},
            "splits": splits, "tracks": [t.name for t in index.tracks],
            "metrics": list(task.metrics), "win": task.win, "hop": task.hop,
            "methods": methods}


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise StemforgeError(f"--out {out}: exists and is not a folder; expected a results folder")


def install(stage: Path, out: Path) -> None:
    """Move every entry of the finished ``stage`` into ``out`` (an entry of the same name is
    replaced: a method's tree never mixes with an older run's files), then remove ``stage``."""
    old = out / f"{STAGE_PREFIX}old-{uuid.uuid4().hex[:12]}"
    old.mkdir()
    for entry in sorted(stage.iterdir()):
        dst = out / entry.name
        if dst.exists() or dst.is_symlink():
            dst.rename(old / entry.name)
        entry.rename(dst)
    shutil.rmtree(old)
    stage.rmdir()


def evaluate(index, estimates, out_dir, targets: Sequence[str] | None = None,
             metrics: Sequence[str] = METRICS, workers: int = 1, scheduler: str | None = None,
             progress: bool = False, win: float = 1.0, hop: float = 1.0,
             imports: Mapping[str, str | os.PathLike] | None = None,
             plots: bool = False) -> EvalResult:
    """The whole job: plan (all checks), score every track of every method (in-process or on
    Dask), then write the trees, the combined summary and the record (see module doc).

    ``estimates``: one folder, or ``{method: folder}``; ``imports``: ``{method: folder of museval
    JSONs}`` from other tools, joined to the comparison. ``win``/``hop`` in seconds (museval:
    1 s / 1 s). ``plots``: also a ``boxplot_<target>.png`` per method and target."""
    out = Path(out_dir)
    _check_out(out)
    imports = dict(imports or {})
    if isinstance(estimates, Mapping):
        clash = sorted(set(estimates) & set(imports))
        if clash:
            raise StemforgeError(f"method name {clash[0]!r} is given to --estimates and --import")
        if not estimates and not imports:
            raise StemforgeError("nothing to evaluate: give --estimates (and/or --import)")
    elif imports:
        estimates = {Path(estimates).resolve().name: estimates}
    for name in list(estimates if isinstance(estimates, Mapping) else []) + list(imports):
        if not NAME_RE.match(name):
            raise StemforgeError(f"method name {name!r}: use letters, digits, '.', '_', '+', '-'")
    if not index.tracks:
        raise StemforgeError(f"no reference tracks to evaluate in {index.root}")
    task = plan(index, estimates, targets, metrics, win, hop) if estimates else \
        EvalTask(IndexRef.of(index), (), tuple(metrics), float(win), float(hop), ())
    imported = {name: imported_tracks(name, folder, index) for name, folder in imports.items()}
    pool = 1
    local = not uses_dask(workers, scheduler)
    if local:  # one process: use the free cores (same scores)
        cores = _free_cores()
        if len(task.jobs) > 1:  # tracks side by side, one thread each
            pool = cores
        else:  # one track: BSS Eval's passes split over the cores
            task = dataclasses.replace(task, threads=cores)
    seed_state(task.index.key, index)  # in-process runs reuse the caller's index
    with scratch.reuse():  # each thread's large temporaries allocated once, not per track
        results = run_task(score_item, task, len(task.jobs), workers, scheduler, progress,
                           threads=pool, meanwhile=_meanwhile(index, task, plots, kernels=local))
    results = sorted(results, key=lambda r: r[0])
    created = not out.exists()
    stage = out / f"{STAGE_PREFIX}{uuid.uuid4().hex[:12]}.partial"
    try:
        stage.mkdir(parents=True)
        per_method: dict[str, list] = {mp.name: [] for mp in task.methods}
        for i, data, _ in results:
            j = task.jobs[i]
            per_method[j.method].append((j.split, j.name, data))
        trees = {mp.name: mp.tree for mp in task.methods}
        per_method.update(imported)
        trees.update({name: name for name in imported})
        written, files, first = [], [], None
        for name, tracks_data in per_method.items():
            m, wide, per_target, fs = write_method(stage, trees[name], name, tracks_data,
                                                   plots)
            written.append(m)
            files += fs
            first = first or (wide, per_target)
        from ..metrics import results as mresults

        summary = mresults.summary_table(written)
        files.append(write_text_atomic(stage / SUMMARY,
                                       summary.to_csv(index=False, float_format="%.6f")))
        buf = _io.BytesIO()
        mresults.museval_frames(written).to_pickle(buf, compression=None)
        files.append(write_bytes_atomic(stage / MUSEVAL_TABLE, buf.getvalue()))
        files.append(write_text_atomic(stage / RECORD,
                                       json.dumps(record(index, task, imports), indent=1,
                                                  allow_nan=False)))
        install(stage, out)
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(e, OSError):  # e.g. a full disk: one line, nothing was written
            raise StemforgeError(f"--out {out}: {write_failure(e)} while writing the results "
                                 f"({e.filename or out}); nothing was written, earlier results "
                                 "there are unchanged") from e
        raise
    files = [out / f.relative_to(stage) for f in files]
    notes = [n for r in results for n in r[2]]
    return EvalResult(first[0], first[1], files, notes, summary, list(per_method))
