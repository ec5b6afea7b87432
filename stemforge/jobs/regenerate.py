"""``regenerate``: re-render a generated set from its specs — verify it byte for byte, or repair it.

* ``verify(out)``: for every item ``0..n-1`` of the job file, re-render the audio from the item's
  ``spec.json`` alone plus the index named in the job file, encode it exactly as ``generate``
  does, and compare the bytes with the files on disk. The spec itself is checked against a fresh
  draw of (recipe, seed, epoch, item), and ``manifest.csv`` against one rebuilt from the specs.
  Every difference is reported as a :class:`Mismatch` ``(item, file, reason)``; nothing is
  written (the folder may be read-only).
* ``repair(out)``: under the job lock, rewrite every audio file that is missing or differs from
  its spec's rendering (atomically), regenerate items that have no valid spec from the job's
  recipe (as ``generate`` would), then rewrite the manifest.

Both run in-process or on Dask (``workers``/``scheduler`` as in ``generate``); item results do
not depend on where they run.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import StemforgeError
from ..mixing.render import render as _render
from ..mixing.spec import MixSpec
from ..atomic import write_bytes_atomic
from .dask_runner import check_scheduler, run_items, seed_state, worker_state
from .generate import (Task, index_locations, io_error, job_lock, make_task, open_mixer,
                       write_item)
from .layout import (JOB_FILE, MANIFEST_FILE, SPEC_FILE, JobError, clean_temp, encode,
                     item_arrays, item_audio_names, item_dir, item_id)
from .manifest import (Job, check_same_audio, manifest_header, manifest_row, other_audio,
                       write_manifest)


@dataclass(frozen=True, order=True)
class Mismatch:
    """One difference between a generated set on disk and its re-rendering."""

    item: str     # "000003", or "" for set-level files (manifest.csv)
    file: str     # file name inside the item folder (or DIR for set-level files)
    reason: str

    def __str__(self) -> str:
        where = f"{self.item}/{self.file}" if self.item else self.file
        return f"{where}: {self.reason}"


@dataclass
class RegenerateResult:
    out: Path
    n: int
    mismatches: list[Mismatch] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)  # "<id>/<file>" rewritten by repair
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _load_spec(out: Path, i: int, task: Task) -> tuple[MixSpec | None, str | None]:
    """The item's spec, or ``(None, why)`` when it is missing, unreadable or someone else's."""
    p = item_dir(out, i) / SPEC_FILE
    if not p.is_file():
        return None, "missing: the item is incomplete (no spec.json)"
    try:
        spec = MixSpec.load(p)
    except StemforgeError as e:
        return None, f"unreadable spec ({e})"
    if spec.item != i or spec.recipe_hash != task.recipe_hash or spec.seed != task.seed \
            or spec.epoch != task.epoch:
        return None, (f"spec belongs to another item or job (item {spec.item}, recipe hash "
                      f"{spec.recipe_hash}, seed {spec.seed}, epoch {spec.epoch})")
    return spec, None


def _arrays(spec: MixSpec, index) -> list[np.ndarray]:
    return item_arrays(spec, _render(spec, index))


def _describe(disk: bytes, want: bytes, fmt: str) -> str:
    """Why two encodings differ: the largest sample difference when both decode to the same
    shape, else the sizes."""
    import soundfile as sf

    try:
        a, _ = sf.read(io.BytesIO(disk), dtype="float32", always_2d=True)
        b, _ = sf.read(io.BytesIO(want), dtype="float32", always_2d=True)
    except Exception:  # noqa: BLE001 - undecodable file on disk: say so below
        a = b = None
    if a is not None and a.shape == b.shape:
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        n = int(np.count_nonzero(np.any(a != b, axis=1)))
        if diff or n:
            return f"differs: {n} of {len(a)} frames differ, max |difference| {diff:.3g}"
        return f"differs: same samples but different file bytes ({len(disk)} vs {len(want)})"
    if a is None:
        return f"differs: not a decodable {fmt} file ({len(disk)} bytes, expected {len(want)})"
    return f"differs: shape {a.shape[::-1]} on disk, expected {b.shape[::-1]}"


def verify_item(i: int, task: Task) -> list[Mismatch]:
    """Re-render item ``i`` from its spec and compare every file's bytes with the disk."""
    out, iid = Path(task.out), item_id(i)
    spec, why = _load_spec(out, i, task)
    if spec is None:
        return [Mismatch(iid, SPEC_FILE, why)]
    mixer = worker_state(task.key, lambda: open_mixer(task))
    found = []
    drawn = mixer.spec(i, epoch=task.epoch)
    # the clip scale and peak are measured by the first render and recorded; re-renders apply
    # the recorded scale (a tampered scale shows up as audio mismatches below)
    drawn = replace(drawn, scale=spec.scale, peak=spec.peak)
    if drawn.to_json() + "\n" != (item_dir(out, i) / SPEC_FILE).read_text():
        found.append(Mismatch(iid, SPEC_FILE, "differs from a fresh draw of (recipe, seed, "
                              "epoch, item): the spec was edited or comes from another "
                              "stemforge version"))
    d = item_dir(out, i)
    for name, audio in zip(item_audio_names(spec, task.fmt), _arrays(spec, mixer.index),
                           strict=True):
        want = encode(audio, spec.sample_rate, task.fmt)
        try:
            disk = (d / name).read_bytes()
        except FileNotFoundError:
            found.append(Mismatch(iid, name, "missing"))
            continue
        if disk != want:
            found.append(Mismatch(iid, name, _describe(disk, want, task.fmt)))
    return found


def repair_item(i: int, task: Task) -> list[str]:
    """Make item ``i`` complete and correct; returns the ``<id>/<file>`` paths rewritten."""
    out, iid = Path(task.out), item_id(i)
    mixer = worker_state(task.key, lambda: open_mixer(task))
    spec, _ = _load_spec(out, i, task)
    if spec is None:  # no usable spec: draw the item again, exactly as generate does
        m = mixer.mixture(i, epoch=task.epoch)
        write_item(out, i, m.spec, item_arrays(m.spec, m), task.fmt)
        return [f"{iid}/{n}" for n in [*item_audio_names(m.spec, task.fmt), SPEC_FILE]]
    d, done = item_dir(out, i), []
    for name, audio in zip(item_audio_names(spec, task.fmt), _arrays(spec, mixer.index),
                           strict=True):
        want = encode(audio, spec.sample_rate, task.fmt)
        p = d / name
        if not p.is_file() or p.read_bytes() != want:
            write_bytes_atomic(p, want)
            done.append(f"{iid}/{name}")
    return done


def _open(out: Path, index, scheduler: str | None = None, layout: str | None = None,
          same_audio: bool = True) -> tuple[Job, Task, object, str | None]:
    """Load the job file; open the index (the job's, or ``index`` to override a moved one);
    return the job, its task and a Mixer seeded into this process's cache."""
    from ..index import Index
    from ..indexset import IndexSet, fingerprint_of
    from ..mixing.mixer import Mixer, as_index
    from ..mixing.recipe import Recipe

    out = Path(out)
    if not out.is_dir():
        raise JobError(f"{out}: no such folder (expected a folder written by `stemforge generate`)")
    job = Job.load(out)
    if scheduler:
        check_scheduler(scheduler)
    if index is None:
        loaded = {}
        for k, f in job.index_files().items():
            if not Path(f).is_file():
                hint = (f"--index {k}=ROOT for dataset {k!r}" if k else
                        "--index with the dataset root or index file")
                raise JobError(f"{out}: the index named in its job file is missing "
                               f"({f}); pass {hint}")
            loaded[k] = Index.load(f)
        index = loaded[""] if "" in loaded else IndexSet(loaded)
    else:
        index = as_index(index, layout)
    several = isinstance(index, IndexSet)
    if bool(job.datasets) != several or (several and set(job.datasets) != set(index.datasets)):
        want = ", ".join(f"--index {k}=ROOT" for k in job.datasets) if job.datasets else \
            "one --index ROOT"
        raise JobError(f"{out}: the set was drawn from "
                       + (f"datasets {', '.join(job.datasets)}" if job.datasets else
                          "one dataset") + f"; pass {want}")
    index_root, index_file, datasets = index_locations(index)
    job = replace(job, index_file=index_file, datasets=datasets)
    try:
        recipe = Recipe.from_dict(job.recipe)
    except StemforgeError as e:
        raise JobError(f"{out}: the recipe in its job file is not valid any more ({e})") from e
    recipe.name = job.recipe_name or recipe.name
    if recipe.hash() != job.recipe_hash:
        raise JobError(f"{out}: job file recipe hashes to {recipe.hash()}, but the file records "
                       f"{job.recipe_hash}; the job file was edited")
    task = make_task(job, out)
    mixer = Mixer(recipe, index, seed=job.seed, warn=False, strict_split=False)
    fp = fingerprint_of(mixer.sampler.index)
    if same_audio:
        check_same_audio(job, *fp, out / JOB_FILE,
                         "re-rendering it from this index cannot give its bytes")
    seed_state(task.key, mixer)
    return job, task, recipe, other_audio(job, *fp)


def manifest_text(out: Path, n: int, fmt: str, targets, sources,
                  unmastered: bool = False) -> str:
    """The manifest ``generate`` writes, rebuilt in memory from the specs."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(manifest_header(targets, sources, unmastered))
    for i in range(n):
        w.writerow(manifest_row(i, MixSpec.load(item_dir(out, i) / SPEC_FILE), fmt, sources))
    return buf.getvalue()


def verify(out, *, index=None, workers: int = 1, scheduler: str | None = None,
           progress: bool = True, layout: str | None = None) -> RegenerateResult:
    """Compare every file of the set in ``out`` with its re-rendering; see module docs.
    ``index`` (root, index file or Index; ``layout`` as in ``Index.open``) replaces the job
    file's; an index holding other audio than the set was made from is refused."""
    from ..progress import progress as progress_bar

    out = Path(out)
    t0 = time.perf_counter()
    job, task, recipe, audio = _open(out, index, scheduler, layout, same_audio=False)
    res = RegenerateResult(out, job.n)
    if audio:  # a finding, with the reason (every item is still compared)
        res.mismatches.append(Mismatch("", JOB_FILE, audio))
    with progress_bar(job.n, "verify", "mix", enabled=progress) as bar:
        for found in run_items(verify_item, range(job.n), workers, scheduler, name="verify",
                               task=task):
            res.mismatches += found
            bar.update(1)
    try:
        want = manifest_text(out, job.n, job.format, recipe.targets, recipe.sources,
                             not recipe.master_linear)
    except StemforgeError:
        want = None  # some spec is missing or unreadable: already reported per item
    if want is not None:
        p = out / MANIFEST_FILE
        if not p.is_file():
            res.mismatches.append(Mismatch("", MANIFEST_FILE, "missing"))
        elif p.read_text() != want:
            res.mismatches.append(Mismatch("", MANIFEST_FILE, "differs from the specs"))
    res.mismatches.sort()
    res.seconds = time.perf_counter() - t0
    return res


def repair(out, *, index=None, workers: int = 1, scheduler: str | None = None,
           progress: bool = True, layout: str | None = None) -> RegenerateResult:
    """Rewrite missing or wrong files of the set in ``out`` from their specs; see module docs."""
    from ..progress import progress as progress_bar

    out = Path(out)
    t0 = time.perf_counter()
    job, task, recipe, _ = _open(out, index, scheduler, layout)
    res = RegenerateResult(out, job.n)
    with job_lock(out):
        try:
            clean_temp(out)
            with progress_bar(job.n, "regenerate", "mix", enabled=progress) as bar:
                for done in run_items(repair_item, range(job.n), workers, scheduler,
                                      name="regenerate", task=task):
                    res.rewritten += done
                    bar.update(1)
            clean_temp(out)  # temp files of writers that died mid-write (e.g. a lost worker)
            want = manifest_text(out, job.n, job.format, recipe.targets, recipe.sources,
                                 not recipe.master_linear)
            p = out / MANIFEST_FILE
            if not p.is_file() or p.read_text() != want:
                write_manifest(out, job.n, job.format, recipe.targets, recipe.sources,
                               unmastered=not recipe.master_linear)
                res.rewritten.append(MANIFEST_FILE)
        except OSError as e:
            raise io_error(e, out) from e
    res.rewritten.sort()
    res.seconds = time.perf_counter() - t0
    return res
