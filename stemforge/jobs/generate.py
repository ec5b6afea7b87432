"""``generate``: write N mixtures of a recipe to a folder — atomic, resumable, optionally on Dask.

Layout and file formats: :mod:`stemforge.jobs.layout` and :mod:`stemforge.jobs.manifest`.

Guarantees:

* every file is written atomically; an item is complete once its ``spec.json`` exists (written
  after its audio); a rerun skips complete items and rewrites the rest, so a run killed at any
  point and rerun ends byte-identical to an uninterrupted one;
* item ``i`` is a pure function of (recipe, index, seed, epoch, i), so the bytes are the same
  whatever the number of workers, in-process or on a Dask cluster;
* the recipe, the index and a ``scheduler`` address are checked before anything is created;
  a folder holding another job's output is refused (:func:`~stemforge.jobs.manifest.
  check_compatible`: another recipe, seed, epoch or format always — two sets never share a
  folder —, another index location or stemforge version unless ``allow_continue``); a set can
  grow (a larger ``n`` adds items) but not shrink; one run at a time per folder (an advisory
  lock); I/O failures (disk full, read-only, permissions) raise
  :class:`~stemforge.jobs.layout.JobError` saying how many items are complete and intact; the
  item being written when it failed is removed again (no half items).
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..mixing.mixer import Mixer
from ..mixing.recipe import Recipe
from ..atomic import fsync_dir, write_bytes_atomic, write_text_atomic
from .dask_runner import (check_scheduler, run_items, seed_state, tune_worker_malloc,
                          worker_state)
from .layout import (FORMATS, JOB_FILE, LOCK_FILE, SPEC_FILE, JobError, audio_names,
                     clean_temp, encode, is_complete, item_dir)
from .manifest import Job, check_compatible, write_manifest


@dataclass(frozen=True)
class Task:
    """What a worker needs to produce items (plain data, cheap to send)."""

    out: str
    recipe: dict
    recipe_name: str
    recipe_hash: str
    index_file: str
    index_stamp: tuple  # (size, mtime_ns) of index_file: a changed index is reopened
    seed: int
    epoch: int
    fmt: str
    fsync: bool = True  # False: atomic against process death only (not power loss)

    @property
    def key(self) -> tuple:
        return ("mixer", self.index_file, self.index_stamp, self.recipe_hash, self.recipe_name,
                self.seed)


@dataclass
class GenerateResult:
    out: Path
    n: int
    written: int
    skipped: int
    seconds: float
    warnings: int


def open_mixer(task: Task) -> Mixer:
    from ..index import Index

    tune_worker_malloc()  # once per worker process (see its docstring)
    recipe = Recipe.from_dict(task.recipe)
    recipe.name = task.recipe_name
    index = Index.load(task.index_file, refresh=False)
    return Mixer(recipe, index, seed=task.seed)


def generate_item(i: int, task: Task) -> int:
    """Render item ``i`` and write it (audio first, spec last). Returns the number of spec
    warnings (0 when the item was already complete). Runs in-process or on a Dask worker."""
    out = Path(task.out)
    if is_complete(out, i):
        return 0
    mixer = worker_state(task.key, lambda: open_mixer(task))
    m = mixer.mixture(i, epoch=task.epoch)
    write_item(out, i, m.spec, [m.mix, *(m.targets[t] for t in m.spec.targets)], task.fmt,
               fsync=task.fsync)
    return len(m.spec.warnings)


def write_item(out: Path, i: int, spec, arrays: list, fmt: str, fsync: bool = True) -> None:
    """Write item ``i``: ``arrays`` = mixture then targets in ``spec.targets`` order, each
    ``(C, T)`` float32, then ``spec.json`` last (it marks the item complete). On any failure
    before the spec is written, the audio written by this call is removed again."""
    d = item_dir(out, i)
    d.mkdir(exist_ok=True)
    written = []
    try:
        for name, audio in zip(audio_names(spec.targets, fmt), arrays):
            written.append(write_bytes_atomic(d / name, encode(audio, spec.sample_rate, fmt),
                                              fsync=fsync))
        if fsync:
            fsync_dir(d)  # the audio renames are durable before the spec marks it complete
        write_text_atomic(d / SPEC_FILE, spec.to_json() + "\n", fsync=fsync)  # = spec.save
    except BaseException:
        if not (d / SPEC_FILE).exists():  # leave no half item behind under final names
            for p in written:
                p.unlink(missing_ok=True)
        raise


@contextmanager
def job_lock(out: Path):
    """Advisory exclusive lock on ``DIR/.stemforge.lock`` (released on exit or process death)."""
    path = Path(out) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise io_error(e, out) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobError(f"{out}: another stemforge job is writing to this folder (lock "
                           f"{path} is held); wait for it to finish or use another folder") from None
        yield
    finally:
        os.close(fd)


def io_error(e: OSError, out: Path, done: int | None = None, n: int | None = None) -> JobError:
    """A clear message for an I/O failure while writing ``out``."""
    what = e.filename or out
    state = "" if done is None else (
        f"; {done} of {n} items are complete and intact and no partial file was left under a "
        "final name")
    if e.errno == errno.ENOSPC:
        return JobError(f"{out}: disk full (no space left on device) while writing {what}{state}. "
                        "Free some space and rerun the same command to resume")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return JobError(f"{out}: output folder is not writable ({e.strerror}: {what}){state}")
    return JobError(f"{out}: cannot write {what} ({e.strerror or e}){state}")


def prepare_out(out: Path) -> None:
    """Create ``out`` or check it can hold a generated set (an existing set or empty folder)."""
    if out.exists() and not out.is_dir():
        raise JobError(f"{out}: exists and is not a folder; choose a folder for --out")
    if out.is_dir() and not (out / JOB_FILE).exists():
        other = [p.name for p in out.iterdir() if not p.name.startswith(".")]
        if other:
            raise JobError(f"{out}: folder is not empty ({', '.join(sorted(other)[:3])}...) and "
                           f"holds no {JOB_FILE}; refusing to write into it, choose a new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise JobError(f"{out}: cannot create the output folder ({e.strerror})") from e


def make_task(job: Job, out: Path, fsync: bool = True) -> Task:
    """The plain-data task workers need to produce items of ``job`` into ``out``."""
    st = Path(job.index_file).stat()
    return Task(out=str(Path(out).resolve()), recipe=job.recipe, recipe_name=job.recipe_name,
                recipe_hash=job.recipe_hash, index_file=job.index_file,
                index_stamp=(st.st_size, st.st_mtime_ns), seed=job.seed, epoch=job.epoch,
                fmt=job.format, fsync=fsync)


def generate(recipe: Recipe, index, n: int, out, *, seed: int = 0, epoch: int = 0,
             fmt: str = "wav", workers: int = 1, scheduler: str | None = None,
             allow_continue: bool = False, progress: bool = True,
             fsync: bool = True) -> GenerateResult:
    """Write items ``0..n-1`` of (recipe, index, seed, epoch) to ``out``; see module docs.

    ``fsync=False`` (``--no-fsync``) skips flushing each file to the device: writes stay atomic
    if the process is killed, but a power loss may lose or truncate recent files; faster on
    slow-fsync storage (see docs/benchmarks.md)."""
    out = Path(out)
    if fmt not in FORMATS:
        raise JobError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if not isinstance(n, int) or n < 1:
        raise JobError(f"--n {n!r}: expected a positive number of mixtures")
    if workers is not None and workers < 1:
        raise JobError(f"--workers {workers}: expected 1 or more")
    mixer = Mixer(recipe, index, seed=seed)  # validates the recipe against the index
    index_file = Path(index.index_file).resolve()
    if not index_file.is_file():
        raise JobError(f"{index_file}: index file missing; workers open the index from it")
    job = Job(recipe=recipe.to_dict(), recipe_hash=recipe.hash(), seed=int(seed),
              epoch=int(epoch), n=n, format=fmt, index_root=str(Path(index.root).resolve()),
              index_file=str(index_file), recipe_name=recipe.name)
    check_compatible(job, out, allow_continue)
    if scheduler:
        check_scheduler(scheduler)
    prepare_out(out)
    task = make_task(job, out, fsync=fsync)
    t0 = time.perf_counter()
    with job_lock(out):
        done = 0
        try:
            clean_temp(out)
            job.save(out)
            todo = [i for i in range(n) if not is_complete(out, i)]
            done = n - len(todo)
            seed_state(task.key, mixer)
            warnings = 0
            from tqdm import tqdm

            with tqdm(total=n, initial=done, unit="mix", desc="generate", disable=not progress,
                      dynamic_ncols=True) as bar:
                for w in run_items(generate_item, todo, workers, scheduler, name="generate",
                                   task=task):
                    warnings += w
                    done += 1
                    bar.update(1)
            clean_temp(out)  # temp files of writers that died mid-write (e.g. a lost worker)
            write_manifest(out, n, fmt, recipe.targets, recipe.sources)
        except OSError as e:
            done = sum(is_complete(out, i) for i in range(n))
            raise io_error(e, out, done, n) from e
    return GenerateResult(out, n, len(todo), n - len(todo), time.perf_counter() - t0, warnings)
