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
  check_compatible`: another recipe, seed, epoch or format, or other audio (the index's content
  fingerprint) always — two sets never share a folder —, another index location or stemforge
  version unless ``allow_continue``); a set can
  grow (a larger ``n`` adds items) but not shrink; one run at a time per folder (an advisory
  lock, taken before the folder is checked, so the check and the writes see the same folder);
  I/O failures (disk full, read-only, permissions) raise
  :class:`~stemforge.jobs.layout.JobError` saying how many items are complete and intact; the
  item being written when it failed is removed again (no half items);
* a first run (the folder held no job file) that fails on its data or recipe (e.g. a silence
  policy with ``on_exhausted: error`` that an item cannot meet), or fails in any way before an
  item is complete, removes everything it wrote: items, job file, lock file, and the folder if
  it made it. A corrected rerun starts clean.
"""
from __future__ import annotations

import errno
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..atomic import fsync_dir, write_bytes_atomic, write_text_atomic
from ..errors import StemforgeError, check_count
from ..indexset import fingerprint_of
from ..locking import acquire, release
from ..mixing.mixer import Mixer
from ..mixing.recipe import Recipe
from .dask_runner import (check_scheduler, run_items, seed_state, tune_worker_malloc,
                          worker_state)
from .layout import (FORMATS, JOB_FILE, LOCK_FILE, MANIFEST_FILE, SPEC_FILE, JobError,
                     clean_temp, encode, is_complete, item_arrays, item_audio_names,
                     item_dir)
from .manifest import Job, check_compatible, write_manifest


@dataclass(frozen=True)
class Task:
    """What a worker needs to produce items (plain data, cheap to send)."""

    out: str
    recipe: dict
    recipe_name: str
    recipe_hash: str
    index_files: tuple  # ((dataset name, index file), ...); one ("", file) for one dataset
    index_stamp: tuple  # (size, mtime_ns) of each index file: a changed index is reopened
    seed: int
    epoch: int
    fmt: str
    fsync: bool = True  # False: atomic against process death only (not power loss)

    @property
    def key(self) -> tuple:
        return ("mixer", self.index_files, self.index_stamp, self.recipe_hash, self.recipe_name,
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
    from ..indexset import IndexSet

    tune_worker_malloc()  # once per worker process (see its docstring)
    recipe = Recipe.from_dict(task.recipe)
    recipe.name = task.recipe_name
    loaded = {k: Index.load(f, refresh=False) for k, f in task.index_files}
    index = loaded[""] if "" in loaded else IndexSet(loaded)
    # checked and warned by the starting process; a set made before recipes had to name their
    # split is re-rendered as it was drawn
    return Mixer(recipe, index, seed=task.seed, warn=False, strict_split=False)


def generate_item(i: int, task: Task) -> int:
    """Render item ``i`` and write it (audio first, spec last). Returns the number of spec
    warnings (0 when the item was already complete). Runs in-process or on a Dask worker."""
    out = Path(task.out)
    if is_complete(out, i):
        return 0
    mixer = worker_state(task.key, lambda: open_mixer(task))
    m = mixer.mixture(i, epoch=task.epoch)
    write_item(out, i, m.spec, item_arrays(m.spec, m), task.fmt,
               fsync=task.fsync)
    return len(m.spec.warnings)


def write_item(out: Path, i: int, spec, arrays: list, fmt: str, fsync: bool = True) -> None:
    """Write item ``i``: ``arrays`` = mixture then targets in ``spec.targets`` order (then the
    un-mastered sum for a non-linear bus: :func:`~.layout.item_arrays`), each ``(C, T)`` float32, then ``spec.json`` last (it marks the item complete). On any failure
    before the spec is written, the audio written by this call is removed again."""
    d = item_dir(out, i)
    d.mkdir(exist_ok=True)
    written = []
    try:
        for name, audio in zip(item_audio_names(spec, fmt), arrays, strict=True):
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


class LockHold:
    """What :func:`job_lock` yields: set ``remove`` to delete the lock file on release (a failed
    first run removes everything it created)."""

    remove = False


@contextmanager
def job_lock(out: Path):
    """Advisory exclusive lock on ``DIR/.stemforge.lock`` (released on exit or process death);
    yields a :class:`LockHold`."""
    path = Path(out) / LOCK_FILE
    try:
        fd = acquire(path, block=False)
    except OSError as e:
        raise io_error(e, out) from e
    if fd is None:
        raise JobError(f"{out}: another stemforge job is writing to this folder (lock "
                       f"{path} is held); wait for it to finish or use another folder")
    hold = LockHold()
    try:
        yield hold
    finally:
        release(fd, path if hold.remove else None)


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


def make_out(out: Path) -> list[Path]:
    """Create the output folder ``out`` and its missing parents; return the folders this call
    created, outermost first (a failed first run removes them again). Refuses a path that is
    not a folder."""
    if out.exists() and not out.is_dir():
        raise JobError(f"{out}: exists and is not a folder; choose a folder for --out")
    missing = []
    p = out
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    made = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
    except FileExistsError:
        if not out.is_dir():
            raise JobError(f"{out}: exists and is not a folder; choose a folder for --out") from None
    except OSError as e:
        _remove_empty(made)
        raise JobError(f"{out}: cannot create the output folder ({e.strerror})") from e
    return made


def _remove_empty(folders: list[Path]) -> None:
    """rmdir ``folders`` innermost first, each only if empty (never what someone else put)."""
    for d in reversed(folders):
        try:
            d.rmdir()
        except OSError:
            pass


def check_out(out: Path) -> None:
    """``out`` can hold a generated set: it holds one already, or nothing (hidden files aside).
    Called under the job lock."""
    if not (out / JOB_FILE).exists():
        other = [p.name for p in out.iterdir() if not p.name.startswith(".")]
        if other:
            raise JobError(f"{out}: folder is not empty ({', '.join(sorted(other)[:3])}...) and "
                           f"holds no {JOB_FILE}; refusing to write into it, choose a new folder")


def _undo(out: Path, n: int) -> None:
    """Remove what a first run wrote into ``out`` (called under its lock, when the folder held
    no job file before the run): item folders, job file, manifest, temp files."""
    import shutil

    for i in range(n):
        shutil.rmtree(item_dir(out, i), ignore_errors=True)
    for name in (JOB_FILE, MANIFEST_FILE):
        (out / name).unlink(missing_ok=True)
    clean_temp(out)


def make_task(job: Job, out: Path, fsync: bool = True) -> Task:
    """The plain-data task workers need to produce items of ``job`` into ``out``."""
    files = tuple(job.index_files().items())
    stamps = tuple((st.st_size, st.st_mtime_ns) for st in (Path(f).stat() for _, f in files))
    return Task(out=str(Path(out).resolve()), recipe=job.recipe, recipe_name=job.recipe_name,
                recipe_hash=job.recipe_hash, index_files=files,
                index_stamp=stamps[0] if len(stamps) == 1 else stamps, seed=job.seed,
                epoch=job.epoch, fmt=job.format, fsync=fsync)


def index_locations(index) -> tuple[str, str, dict]:
    """``(index_root, index_file, datasets)`` a job file records for an Index (datasets
    ``{}``) or an IndexSet (root and file ``""``, datasets ``name -> {root, index_file}``).
    Refuses a missing index file: workers open the indexes from them."""
    from ..indexset import IndexSet

    parts = index.datasets if isinstance(index, IndexSet) else {"": index}
    found = {}
    for k, ix in parts.items():
        f = Path(ix.index_file).resolve()
        if not f.is_file():
            raise JobError(f"{f}: index file missing; workers open the index from it")
        found[k] = {"root": str(Path(ix.root).resolve()), "index_file": str(f)}
    if "" in found:
        return found[""]["root"], found[""]["index_file"], {}
    return "", "", found


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
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise JobError(f"--n {n!r}: expected a positive number of mixtures")
    if workers is not None and workers < 1:
        raise JobError(f"--workers {workers}: expected 1 or more")
    check_count(seed, "--seed")
    check_count(epoch, "--epoch")
    mixer = Mixer(recipe, index, seed=seed)  # validates the recipe against the index
    recipe = mixer.recipe  # the effective recipe (``*``/``rest`` bound to the index)
    index_root, index_file, datasets = index_locations(mixer.index)
    fp, per_track = fingerprint_of(mixer.sampler.index)
    job = Job(recipe=recipe.to_dict(), recipe_hash=recipe.hash(), seed=int(seed),
              epoch=int(epoch), n=n, format=fmt, index_root=index_root,
              index_file=index_file, recipe_name=recipe.name, index_fingerprint=fp,
              index_tracks=per_track, datasets=datasets)
    if scheduler:
        check_scheduler(scheduler)
    task = make_task(job, out, fsync=fsync)
    t0 = time.perf_counter()
    made = make_out(out)
    fresh = False
    try:
        with job_lock(out) as hold:
            # checked under the lock: another run cannot write the folder between check and use
            try:
                check_out(out)
                check_compatible(job, out, allow_continue)
            except BaseException:
                hold.remove = not (out / JOB_FILE).exists()  # not a set: leave no lock file
                raise
            fresh = not (out / JOB_FILE).exists()
            done = 0
            try:
                clean_temp(out)
                job.save(out)
                todo = [i for i in range(n) if not is_complete(out, i)]
                done = n - len(todo)
                seed_state(task.key, mixer)
                warnings = 0
                from ..progress import progress as progress_bar

                with progress_bar(n, "generate", "mix", enabled=progress, initial=done) as bar:
                    for w in run_items(generate_item, todo, workers, scheduler, name="generate",
                                       task=task):
                        warnings += w
                        done += 1
                        bar.update(1)
                clean_temp(out)  # temp files of writers that died mid-write (e.g. a lost worker)
                write_manifest(out, n, fmt, recipe.targets, recipe.sources,
                               unmastered=not recipe.master_linear)
            except BaseException as e:
                done = sum(is_complete(out, i) for i in range(n))
                # a first run that failed on its data or recipe (the rerun would fail the same
                # way), or before any item was complete, leaves nothing behind
                data_error = isinstance(e, StemforgeError) and not isinstance(e, JobError)
                if fresh and (data_error or done == 0):
                    _undo(out, n)
                    hold.remove = True
                if isinstance(e, OSError):
                    raise io_error(e, out, None if hold.remove else done, n) from e
                raise
    except BaseException:
        if not (out / JOB_FILE).exists():
            _remove_empty(made)  # the folders this run made, if it left them empty
        raise
    return GenerateResult(out, n, len(todo), n - len(todo), time.perf_counter() - t0, warnings)
