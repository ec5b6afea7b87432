"""The augmentation study: what is each ingredient of a training recipe worth when data is scarce?

Protocol (:class:`Protocol`; docs/experiments.md gives the reasons):

* **Data-limited.** The separator trains on ``train_songs`` songs of the index's ``train`` split
  (the first ones by track id), selects its checkpoint on (at most ``valid_songs`` songs of) the
  ``valid`` split (lowest validation loss; coherent full-track excerpts, original levels) and is
  scored on the ``test`` split. An
  index without a ``valid`` split gives up the last ``valid_songs`` of its training songs; an
  index without ``train``/``test`` splits is partitioned by track id (train, then valid, then
  test). The partition is written to ``protocol.json``.
* **Rows.** Ablation rows add one ingredient each to the previous row (:data:`ABLATION`):
  plain coherent excerpts; + incoherent remix; + random gains; + channel swap / polarity;
  + pitch/tempo; + effects (EQ, compressor, reverb); + codec. Comparison rows: the seed
  tutorial's recipe and stemforge's recommended recipe, next to the oracle IRM1/IRM2 and the
  mixture as an estimate. Every row trains the same model for the same steps with the same
  seeds; only the training recipe differs (its targets, rate, channels and excerpt length are
  the experiment's). Rows whose fitted recipes are identical share their runs.
* **Seeds.** Every row trains once per seed (model initialisation and data order).
* **Targets** default to the index's stems; a single target is refused (the mixture would be
  the target itself); stems left out of the targets are left out of every mixture, with a
  warning.

Runs are independent jobs (``<out>/runs/<row>-<recipe hash>/seed<k>/``: a training run, then
``scores.csv`` of its best checkpoint on the valid and test tracks; the row's ``recipe.yaml``
beside them), run ``jobs`` at a time in worker processes with one torch thread each; an
interrupted study resumes: finished jobs are kept, unfinished training runs continue from their
checkpoint (bit-exact on CPU). The results (:mod:`stemforge.train.results`) are rewritten after
every finished job, so a running study always has its tables so far.
"""
from __future__ import annotations

import copy
import json
import os
import queue as queue_mod
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from ..atomic import write_text_atomic
from ..errors import StemforgeError
from ..mixing.recipe import Recipe
from . import results
from .results import ORACLES, SCORES

ABLATION = ("plain", "remix", "gains", "swap", "pitch", "effects", "codec")
COMPARISON = ("tutorial", "recommended")
ROWS = ABLATION + COMPARISON
RECIPE_FILES = {"tutorial": "musdb_vocals_augmented.yaml", "recommended": "stemforge_recommended.yaml"}
#: CPU of a row's run relative to plain's (idle 2-core machine, 16 kHz corpus, default protocol;
#: docs/experiments.md "Runtime"): only the order jobs start in, never what they compute
RELATIVE_COST = {"plain": 1.0, "remix": 0.95, "gains": 0.99, "swap": 1.02, "pitch": 1.43,
                 "effects": 1.56, "codec": 2.38, "tutorial": 1.99, "recommended": 0.92}
RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


@dataclass
class Protocol:
    """Everything that defines the study (written to ``protocol.json``; a study folder refuses
    another protocol). Durations in seconds."""

    train_songs: int = 8
    valid_songs: int = 8          # at most; taken from train when the index has no 'valid' split
    test_songs: int | None = None  # None: every track of the test split
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 1500
    batch_size: int = 8
    batches_per_epoch: int = 64
    duration: float = 2.0
    lr: float = 1e-3
    valid_every: int = 100
    valid_duration: float | None = 4.0
    hidden: int = 64
    n_fft: int = 1024
    hop: int = 256
    max_bin: int | None = 256
    eval_seconds: float | None = None   # score only the first seconds of each track
    pitch_mode: str = "fast"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d


#: ``--quick``: the whole pipeline in a few minutes (tiny model, few steps, one seed, short
#: evaluation); it says nothing about which recipe is better.
QUICK = Protocol(train_songs=3, valid_songs=2, test_songs=2, seeds=(0,), steps=24, batch_size=4,
                 batches_per_epoch=8, duration=1.0, valid_every=8, valid_duration=2.0,
                 hidden=16, n_fft=512, hop=128, max_bin=128, eval_seconds=8.0)


# ---------------------------------------------------------------------- recipes
def ablation_recipe(row: str, channels: int, sample_rate: int) -> dict:
    """The raw recipe of ablation row ``row``: every ingredient up to and including it."""
    if row not in ABLATION:
        raise StemforgeError(f"unknown ablation row {row!r}; known: {', '.join(ABLATION)}")
    have = set(ABLATION[: ABLATION.index(row) + 1])
    raw: dict = {"name": f"ablation-{row}", "modes": {"coherent": 1.0}, "clipping": "none"}
    augment: list[dict] = []
    if "remix" in have:
        raw["modes"] = {"coherent": 0.5, "incoherent": 0.5}
    if "gains" in have:
        raw["stems"] = {"default": {"gain_db": ["uniform", -6, 6]}}
        raw["clipping"] = "fix_clipping"
    if "swap" in have:
        if channels >= 2:
            augment.append({"step": "channel_swap", "p": 0.5, "shared": False})
        augment.append({"step": "polarity", "p": 0.5, "shared": False})
    if "pitch" in have:
        augment.append({"step": "pitch_tempo", "p": 0.3, "mode": "fast",
                        "semitones": ["uniform", -2, 2], "tempo": ["uniform", 0.9, 1.1]})
    if "effects" in have:
        top = min(8000.0, 0.4 * sample_rate)
        augment += [
            {"step": "peak_eq", "p": 0.3, "freq_hz": ["uniform", 100.0, top],
             "gain_db": ["uniform", -6, 6], "q": ["uniform", 0.5, 2.0]},
            {"step": "compressor", "p": 0.3, "threshold_db": ["uniform", -30, -10],
             "ratio": ["uniform", 2, 6]},
            {"step": "reverb", "p": 0.3, "room_size": ["uniform", 0.1, 0.8],
             "wet_level": ["uniform", 0.05, 0.3], "dry_level": 1.0},
        ]
    if "codec" in have:  # p 0.15 per stem: about half the mixtures hold a coded stem
        if sample_rate in (32000, 44100, 48000):
            augment.append({"step": "mp3", "p": 0.15, "vbr_quality": ["uniform", 2, 7]})
        else:
            augment.append({"step": "aac", "p": 0.15, "bitrate_kbps": ["choose", [64, 96, 128]]})
    if augment:
        raw["augment"] = augment
    return raw


def condition_recipe(row: str, targets: list[str], sample_rate: int, channels: int,
                     duration: float, split: str = "train", pitch_mode: str | None = None,
                     groups: dict[str, list[str]] | None = None) -> Recipe:
    """The training recipe of one row, fitted to the experiment's targets and format.
    ``pitch_mode`` (``hq`` / ``fast``) overrides the mode of every ``pitch_tempo`` step;
    ``groups``: the index's groups used as targets (e.g. ``accompaniment``)."""
    if row in ABLATION:
        raw = ablation_recipe(row, channels, sample_rate)
    elif row in RECIPE_FILES:
        raw = yaml.safe_load((RECIPES_DIR / RECIPE_FILES[row]).read_text())
    else:
        raise StemforgeError(f"unknown row {row!r}; known: {', '.join(ROWS)}")
    raw.pop("groups", None)
    # per-stem settings of stems the experiment does not have are dropped (any index)
    stems = {k: v for k, v in (raw.get("stems") or {}).items() if k == "default" or k in targets}
    if stems:
        raw["stems"] = stems
    else:
        raw.pop("stems", None)
    raw.update(targets=list(targets), sample_rate=int(sample_rate), channels=int(channels),
               duration=float(duration), split=[split])
    used = {t: list(groups[t]) for t in targets if groups and t in groups}
    if used:
        raw["groups"] = used
    for step in raw.get("augment", []):
        if channels < 2 and step.get("step") == "channel_swap":
            step["p"] = 0.0
        if pitch_mode is not None and step.get("step") == "pitch_tempo":
            step["mode"] = pitch_mode
    raw["augment"] = [s for s in raw.get("augment", []) if s.get("p", 1.0) > 0]
    if not raw["augment"]:
        raw.pop("augment")
    return Recipe.from_dict(raw)


# ---------------------------------------------------------------------- splits and targets
@dataclass
class Setup:
    """The resolved study: track id -> split, targets, format, warnings."""

    splits: dict[str, str]
    targets: list[str]
    sample_rate: int
    channels: int
    warnings: list[str] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)  # targets that are index groups

    def tracks(self, split: str) -> list[str]:
        return sorted(t for t, s in self.splits.items() if s == split)


def resolve_setup(index, protocol: Protocol, targets=None) -> Setup:
    """Partition ``index`` into train/valid/test (module docstring) and check the targets."""
    if not index.tracks:
        raise StemforgeError(f"{index.root}: the index holds no tracks")
    stems = list(index.stem_names)
    targets = list(targets) if targets else stems
    unknown = [t for t in targets if t not in stems and t not in index.groups]
    if unknown:
        raise StemforgeError(f"--targets: {', '.join(unknown)} not in the index of {index.root} "
                             f"(stems: {', '.join(stems)}; groups: {', '.join(index.groups) or '-'})")
    if len(set(targets)) != len(targets):
        raise StemforgeError(f"--targets: a target is named twice ({' '.join(targets)})")
    if len(targets) < 2:
        raise StemforgeError(f"--targets: a single target ({targets[0]}) would make every mixture "
                             "equal to that target (training and evaluation mixtures are the sum "
                             "of the targets); name at least two targets")
    covered = [s for t in targets for s in index.members(t)]
    warn = []
    left = [s for s in stems if s not in covered]
    if left:
        warn.append(f"stems {', '.join(left)} are not in the targets and are left out of every "
                    "mixture (training and evaluation mixtures are the sum of the targets)")
    by_split = {}
    for t in index.tracks:
        by_split.setdefault(t.split, []).append(t.id)
    ids = sorted(t.id for t in index.tracks)
    n_tr, n_va = int(protocol.train_songs), int(protocol.valid_songs)
    if "train" in by_split and "test" in by_split:
        pool = sorted(by_split["train"])
        valid = sorted(by_split.get("valid", []))
        if not valid:
            valid, pool = pool[-n_va:], pool[:-n_va]
        test = sorted(by_split["test"])
    else:
        if "train" in by_split or "test" in by_split:
            warn.append(f"{index.root}: splits {sorted(map(str, by_split))} lack train or test; "
                        "partitioning every track by id instead")
        need = n_tr + n_va + (protocol.test_songs or 1)
        if len(ids) < need:
            raise StemforgeError(f"{index.root}: {len(ids)} tracks, the protocol needs {need} "
                                 f"({n_tr} train + {n_va} valid + test)")
        pool, valid, test = ids[:n_tr], ids[n_tr:n_tr + n_va], ids[n_tr + n_va:]
    if protocol.test_songs is not None:
        test = test[: protocol.test_songs]
    valid = valid[:n_va]
    train = pool[:n_tr]
    if len(train) < n_tr:
        raise StemforgeError(f"{index.root}: {len(train)} training songs, the protocol trains on "
                             f"{n_tr} (--train-songs)")
    if not valid or not test:
        raise StemforgeError(f"{index.root}: no validation or test songs left for the protocol")
    splits = {**{t: "train" for t in train}, **{t: "valid" for t in valid},
              **{t: "test" for t in test}}
    chosen = [index.track(t) for t in splits]
    rates = {t.sample_rate for t in chosen}
    if len(rates) > 1:
        raise StemforgeError(f"{index.root}: tracks at several sample rates {sorted(rates)}; the "
                             "experiment trains at one rate")
    groups = {t: list(index.groups[t]) for t in targets if t in index.groups}
    return Setup(splits, targets, rates.pop(), max(t.channels for t in chosen), warn, groups)


# ---------------------------------------------------------------------- jobs
@dataclass
class Job:
    row: str
    seed: int
    run_dir: str
    recipe: dict          # Recipe.raw
    recipe_hash: str


def plan_jobs(out: Path, setup: Setup, protocol: Protocol, rows) -> tuple[list[Job], dict]:
    """One job per (row, seed), seed-major (every row's first seed first; within a seed the
    costliest rows first, by :data:`RELATIVE_COST`, so that the study's last jobs are short
    ones and both workers stay busy to the end), in ``<out>/runs/<row>-<recipe hash>/seed<k>``
    (a changed recipe gets a new folder). Rows with the same fitted recipe (every field but
    ``name``, which draws nothing) share their runs: returns ``(jobs, {row: its runs'
    folder})``."""
    recipes, alias = {}, {}
    for row in rows:
        r = condition_recipe(row, setup.targets, setup.sample_rate, setup.channels,
                             protocol.duration, pitch_mode=protocol.pitch_mode,
                             groups=setup.groups)
        same = [k for k, v in recipes.items() if _drawn(v) == _drawn(r)]
        alias[row] = same[0] if same else row
        if not same:
            recipes[row] = r
    dirs = {row: out / "runs" / f"{row}-{r.hash()[:8]}" for row, r in recipes.items()}
    order = sorted(recipes, key=lambda row: -RELATIVE_COST.get(row, 1.0))  # stable: ties keep
    jobs = [Job(row, seed, str(dirs[row] / f"seed{seed}"), recipes[row].raw, recipes[row].hash())
            for seed in protocol.seeds for row in order]
    return jobs, {row: dirs[src] for row, src in alias.items()}


def _drawn(recipe: Recipe) -> dict:
    """What a recipe draws from: its fields without ``name``."""
    return {k: v for k, v in recipe.raw.items() if k != "name"}


def job_done(job: Job) -> bool:
    p = Path(job.run_dir) / "done.json"
    if not p.is_file():
        return False
    return json.loads(p.read_text()).get("recipe_hash") == job.recipe_hash


def run_job(job: Job, index_file: str, setup: dict, protocol: dict, device=None,
            threads: int | None = 1, progress_queue=None) -> dict:
    """Train one (row, seed), score its best checkpoint on the valid and test tracks; write
    ``scores.csv``, ``timing.json`` and ``done.json`` in the run folder. Runs in a worker."""
    import torch

    from ..index import Index
    from .checkpoint import load_checkpoint, model_from_checkpoint
    from .evaluate import model_estimator, score_tracks
    from .loop import BEST, CHECKPOINT, TrainConfig, train
    from .model import ModelConfig

    if threads:
        torch.set_num_threads(int(threads))
    p = Protocol(**{**protocol, "seeds": tuple(protocol["seeds"])})
    index = Index.open(index_file).with_splits(setup["splits"])
    run = Path(job.run_dir)
    recipe = Recipe.from_dict(copy.deepcopy(job.recipe))
    cfg = TrainConfig(steps=p.steps, batch_size=p.batch_size,
                      batches_per_epoch=p.batches_per_epoch, lr=p.lr, seed=job.seed,
                      valid_every=p.valid_every, checkpoint_every=p.valid_every,
                      valid_split="valid", valid_duration=p.valid_duration)
    mcfg = ModelConfig(targets=list(setup["targets"]), channels=setup["channels"],
                       sample_rate=setup["sample_rate"], n_fft=p.n_fft, hop=p.hop,
                       hidden=p.hidden, max_bin=p.max_bin)
    t0, w0 = _cpu_seconds(), time.perf_counter()
    ckpt = run / CHECKPOINT
    at = int(load_checkpoint(ckpt)["step"]) if ckpt.exists() else 0
    resumed = 0 < at < p.steps
    if at < p.steps:
        def report(step):
            if progress_queue is not None and step % 4 == 0:
                progress_queue.put((job.row, job.seed, step))
        train(recipe, index, run, cfg, mcfg, resume=at > 0, device=device, progress=False,
              on_step=report)
    train_cpu, train_wall = _cpu_seconds() - t0, time.perf_counter() - w0
    best = load_checkpoint(run / BEST)
    model = model_from_checkpoint(best, run / BEST)
    scores = []
    for split in ("valid", "test"):
        sub = index.subset(split)
        s = score_tracks(sub, setup["targets"], {job.row: model_estimator(model)},
                         setup["sample_rate"], setup["channels"], seconds=p.eval_seconds)
        s.insert(0, "split", split)
        s.insert(1, "seed", job.seed)
        scores.append(s)
    import pandas as pd

    table = pd.concat(scores, ignore_index=True)
    write_text_atomic(run / SCORES, table.to_csv(index=False, float_format="%.4f"))
    timing = {"train_cpu_s": train_cpu, "train_wall_s": train_wall,
              "eval_cpu_s": _cpu_seconds() - t0 - train_cpu, "resumed": bool(resumed),
              "best_step": int(best["step"]), "steps": p.steps}
    write_text_atomic(run / "timing.json", json.dumps(timing))
    write_text_atomic(run / "done.json", json.dumps({"recipe_hash": job.recipe_hash,
                                                      "row": job.row, "seed": job.seed}))
    if progress_queue is not None:
        progress_queue.put((job.row, job.seed, p.steps))
    return timing


def run_oracles(index_file: str, setup: dict, protocol: dict, out: Path) -> None:
    """Score the oracles and the mixture on the valid and test tracks (``<out>/oracles``)."""
    import pandas as pd

    from ..index import Index
    from .evaluate import oracle_estimator, score_tracks

    p = Protocol(**{**protocol, "seeds": tuple(protocol["seeds"])})
    index = Index.open(index_file).with_splits(setup["splits"])
    frames = []
    for split in ("valid", "test"):
        s = score_tracks(index.subset(split), setup["targets"],
                         {name: oracle_estimator(m) for name, m in ORACLES.items()},
                         setup["sample_rate"], setup["channels"], seconds=p.eval_seconds)
        s.insert(0, "split", split)
        s.insert(1, "seed", -1)
        frames.append(s)
    write_text_atomic(out / "oracles" / SCORES,
                      pd.concat(frames, ignore_index=True).to_csv(index=False, float_format="%.4f"))


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# ---------------------------------------------------------------------- the study
@dataclass
class StudyResult:
    out: Path
    files: list[Path]
    summary: "object"   # pandas DataFrame of the rows


def run_study(index, out, protocol: Protocol | None = None, rows=ROWS, targets=None,
              device=None, jobs: int = 2, progress: bool = True, log=print) -> StudyResult:
    """Run (or resume) the study in ``out`` and write its tables and figures (see
    :mod:`stemforge.train.results`). ``index``: an :class:`~stemforge.index.Index`."""
    protocol = protocol or Protocol()
    rows = list(rows)
    bad = [r for r in rows if r not in ROWS]
    if bad:
        raise StemforgeError(f"--rows: unknown {', '.join(bad)}; known: {', '.join(ROWS)}")
    if not protocol.seeds:
        raise StemforgeError("--seeds: at least one seed")
    for name in ("train_songs", "valid_songs", "test_songs", "steps", "batch_size", "valid_every"):
        v = getattr(protocol, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise StemforgeError(f"--{name.replace('_', '-')}: expected an integer >= 1, got {v!r}")
    if "plain" not in rows:
        rows = ["plain"] + rows  # every difference is paired against plain
    out = Path(out)
    setup = resolve_setup(index, protocol, targets)
    for w in setup.warnings:
        log(f"warning: {w}")
    out.mkdir(parents=True, exist_ok=True)
    from ..jobs.generate import job_lock

    with job_lock(out):  # one study process per folder (released when the process ends)
        return _study(index, out, protocol, rows, setup, device, jobs, progress, log)


def _study(index, out: Path, protocol: Protocol, rows, setup: Setup, device, jobs, progress,
           log) -> StudyResult:
    meta = {"protocol": protocol.to_dict(), "splits": setup.splits, "targets": setup.targets,
            "sample_rate": setup.sample_rate, "channels": setup.channels,
            "index": str(index.index_file)}
    pfile = out / "protocol.json"
    if pfile.is_file():
        old = json.loads(pfile.read_text())
        if {k: old.get(k) for k in meta if k != "index"} != {k: v for k, v in meta.items()
                                                            if k != "index"}:
            raise StemforgeError(f"{pfile}: this folder holds a study with another protocol, "
                                 "split or targets; use another --out")
    write_text_atomic(pfile, json.dumps(meta, indent=1, sort_keys=True))
    if not index.index_file.is_file():
        index.save()
    job_list, alias = plan_jobs(out, setup, protocol, rows)
    for job in job_list:  # the exact recipe every row trains with, beside its runs
        p = Path(job.run_dir).parent / "recipe.yaml"
        if not p.is_file():
            write_text_atomic(p, yaml.safe_dump(job.recipe, sort_keys=False))
    todo = [j for j in job_list if not job_done(j)]
    log(f"study: {len(rows)} rows x {len(protocol.seeds)} seeds = {len(job_list)} runs "
        f"({len(job_list) - len(todo)} done); train {len(setup.tracks('train'))}, valid "
        f"{len(setup.tracks('valid'))}, test {len(setup.tracks('test'))} songs; targets "
        f"{', '.join(setup.targets)}")
    sdict = {"splits": setup.splits, "targets": setup.targets,
             "sample_rate": setup.sample_rate, "channels": setup.channels}
    pdict = protocol.to_dict()
    ifile = str(index.index_file)
    t0 = time.perf_counter()
    if not (out / "oracles" / SCORES).is_file():
        log("scoring oracles and the mixture ...")
        run_oracles(ifile, sdict, pdict, out)

    def partial():
        results.write_results(out, setup, protocol, rows, alias, log=lambda *a: None)

    _run_jobs(todo, ifile, sdict, pdict, device, jobs, progress, protocol.steps, partial)
    res = results.write_results(out, setup, protocol, rows, alias, log=log)
    log(f"study finished in {time.perf_counter() - t0:.0f} s wall")
    return StudyResult(out, res["files"], res["summary"])


def _run_jobs(todo: list[Job], index_file, setup, protocol, device, jobs, progress, steps,
              on_done):
    """Run ``todo`` (in-process when ``jobs`` is 1, else in spawned workers); one progress bar
    over all their steps; ``on_done()`` after every finished job."""
    from tqdm.auto import tqdm

    if not todo:
        return
    bar = tqdm(total=len(todo) * steps, desc="study", unit="step", disable=not progress,
               dynamic_ncols=True)
    seen: dict[tuple, int] = {}

    def update(row, seed, step):
        prev = seen.get((row, seed), 0)
        if step > prev:
            bar.update(step - prev)
            seen[(row, seed)] = step
            bar.set_postfix_str(f"{row}/seed{seed}", refresh=False)

    try:
        if jobs <= 1:
            class _Q:
                def put(self, item):
                    update(*item)
            for job in todo:
                run_job(job, index_file, setup, protocol, device, None, _Q())
                on_done()
            return
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from multiprocessing import get_context

        ctx = get_context("spawn")
        with ctx.Manager() as manager:
            q = manager.Queue()
            with ProcessPoolExecutor(jobs, mp_context=ctx) as ex:
                pending = {ex.submit(run_job, job, index_file, setup, protocol, device, 1, q)
                           for job in todo}
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    while True:
                        try:
                            update(*q.get_nowait())
                        except queue_mod.Empty:
                            break
                    for f in done:
                        f.result()  # re-raise a worker's error
                        on_done()
    finally:
        bar.close()


def protocol_replace(protocol: Protocol, **kw) -> Protocol:
    """``protocol`` with the fields in ``kw`` that are not None replaced."""
    return replace(protocol, **{k: v for k, v in kw.items() if v is not None})
