"""Separation job: run any separator over every track of an indexed dataset (split) and write
``<out>/<track name>/<target>.wav`` (float32 WAV at the track's rate and channel count), the
layout ``stemforge evaluate`` reads.

The separator (:class:`SeparatorSpec`, plain data: Dask workers rebuild it once per process):

* ``checkpoint`` — a ``stemforge train`` checkpoint (``run/best.pt``), applied as
  :func:`stemforge.train.separate.separate_audio` does (any rate and channel count);
* ``callable`` — ``pkg.module:factory`` or ``path/to/file.py:factory``; ``factory()`` returns
  ``f(mix, sample_rate) -> {target: array}`` with ``mix`` float32 ``(C, T)`` and every returned
  array ``(C, T')`` (``T'`` other than ``T`` is padded / trimmed by ``evaluate``, with a note);
* ``command`` — a shell command template run once per track in a scratch folder, e.g.
  ``umx {input} --outdir {outdir}``. ``{input}`` is the track's mixture as a float32 WAV
  (``mixture.wav``), ``{outdir}`` an empty folder for the tool's output, ``{track}`` the track
  name, ``{sr}`` its sample rate (values shell-quoted; write ``{{`` / ``}}`` for literal
  braces). ``pattern`` says where the tool writes each target (default
  ``{outdir}/{target}.wav``; also ``{stem}`` = ``mixture``, ``{track}``); files at another
  sample rate are resampled (soxr).

The input is the track's real mixture when the dataset has one (``mixture="real"``), else the
sum of its stems (``"sum"`` forces the sum, which equals the references' sum).

Outputs are canonical float32 WAV files (:func:`stemforge.jobs.layout.wav_float32`: no
clock in the header), so the same separator writes the same bytes on any worker or rerun.
Resumable and atomic per track: a track is written into a hidden staging folder
``<out>/.sep-<token>.partial`` that is renamed to ``<out>/<track name>`` once every target is
there, so a track folder is always complete; a rerun skips tracks whose folder exists. The job
file ``<out>/stemforge-separate.json`` records the separator, targets and mixture: a rerun with
different ones is refused (its estimates would mix with the old ones). A failing track (the
separator raises, returns the wrong targets or shapes, the command exits non-zero or writes no
file for a target) raises a :class:`SeparateError` naming the track — for a command with the
tail of its stderr — and leaves nothing of that track behind; tracks finished before stay.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..atomic import write_bytes_atomic, write_text_atomic
from ..audio import dsp, io
from ..errors import StemforgeError
from .dask_runner import seed_state, worker_state
from .evaluate import AUDIO_SUFFIX, IndexRef, run_task
from .layout import wav_float32

JOB_FILE = "stemforge-separate.json"
JOB_FORMAT = "stemforge.separate"
STAGE_PREFIX = ".sep-"
KINDS = ("checkpoint", "callable", "command")
DEFAULT_PATTERN = "{outdir}/{target}.wav"
INPUT_NAME = "mixture.wav"
STDERR_LINES = 8      # lines of a failing command's stderr in the error message
STDERR_CHARS = 800


class SeparateError(StemforgeError):
    """A separator failed on a track, or the job's inputs are inconsistent."""


@dataclass(frozen=True)
class SeparatorSpec:
    """What separates: ``kind`` in :data:`KINDS`, ``value`` the checkpoint path, the
    ``module:factory`` reference or the command template; options for each kind."""

    kind: str
    value: str
    pattern: str = DEFAULT_PATTERN   # command: where each target is written
    device: str | None = None        # checkpoint: torch device
    chunk: float = 30.0              # checkpoint: seconds processed at once
    timeout: float | None = None     # command: seconds per track

    def describe(self) -> dict:
        """What the job file records (and a rerun must match)."""
        d = {"kind": self.kind, "value": self.value}
        if self.kind == "command":
            d["pattern"] = self.pattern
        return d


@dataclass(frozen=True)
class SeparateTask:
    """Plain data for workers: track ``i`` is ``(track_ids[i], names[i])``."""

    index: IndexRef
    track_ids: tuple[str, ...]
    names: tuple[str, ...]
    targets: tuple[str, ...]
    separator: SeparatorSpec
    mixture: str   # "real" (when the track has one) or "sum"
    out: str


# ---------------------------------------------------------------------------- separators
def load_callable(ref: str) -> Callable:
    """``pkg.module:factory`` or ``path/to/file.py:factory`` -> ``factory()``, checked callable."""
    mod_name, sep, attr = ref.rpartition(":")
    if not sep or not mod_name or not attr:
        raise SeparateError(f"--model {ref!r}: expected MODULE:FACTORY (pkg.module:make or "
                            "path/to/file.py:make)")
    try:
        if _is_file_ref(mod_name):
            path = Path(mod_name).resolve()
            if not path.is_file():
                raise SeparateError(f"--model {ref!r}: {path} is not a file")
            key = "stemforge_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
            module = sys.modules.get(key)
            if module is None:
                spec = importlib.util.spec_from_file_location(key, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[key] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except SeparateError:
        raise
    except Exception as e:  # the user's module failed to import: say which and why
        raise SeparateError(f"--model {ref!r}: cannot import {mod_name} "
                            f"({type(e).__name__}: {e})") from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise SeparateError(f"--model {ref!r}: {mod_name} has no callable {attr!r}")
    try:
        fn = factory()
    except Exception as e:
        raise SeparateError(f"--model {ref!r}: {attr}() raised {type(e).__name__}: {e}") from e
    if not callable(fn):
        raise SeparateError(f"--model {ref!r}: {attr}() returned {type(fn).__name__}, not a "
                            "callable f(mix, sample_rate) -> {target: (C, T) array}")
    return fn


def build(spec: SeparatorSpec) -> Callable:
    """The per-process separator: ``sep(mix (C, T), sr, track, scratch, targets) -> {target:
    array}`` (``scratch``: an empty folder of this track; ``targets``: the ones to produce)."""
    if spec.kind == "checkpoint":
        from ..train.checkpoint import load_model
        from ..train.separate import separate_audio

        model, _ = load_model(spec.value, spec.device)
        return lambda mix, sr, track, scratch, targets: separate_audio(
            model, mix, sr, chunk=spec.chunk, device=spec.device, where=f"track {track!r}")
    if spec.kind == "callable":
        fn = load_callable(spec.value)
        return lambda mix, sr, track, scratch, targets: fn(mix, sr)
    if spec.kind == "command":
        return lambda mix, sr, track, scratch, targets: run_command(spec, mix, sr, track,
                                                                    scratch, targets)
    raise SeparateError(f"separator kind {spec.kind!r}: expected one of {', '.join(KINDS)}")


def _stderr_tail(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    tail = " | ".join(lines[-STDERR_LINES:])
    return ("..." + tail[-STDERR_CHARS:]) if len(tail) > STDERR_CHARS else (tail or "(empty)")


def _listing(folder: Path, limit: int = 8) -> str:
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    if not files:
        return "nothing"
    return ", ".join(files[:limit]) + (f" and {len(files) - limit} more" if len(files) > limit
                                       else "")


def run_command(spec: SeparatorSpec, mix: np.ndarray, sr: int, track: str, scratch: Path,
                targets: Sequence[str]) -> dict[str, np.ndarray]:
    """Run the command template on one track in ``scratch``; read the file ``spec.pattern``
    names for each of ``targets`` (resampled to ``sr`` when the tool wrote another rate)."""
    inp, outdir = scratch / INPUT_NAME, scratch / "out"
    outdir.mkdir(parents=True)
    io.write(inp, mix, sr)
    values = {"input": str(inp), "outdir": str(outdir), "track": track, "sr": str(sr)}
    try:
        cmd = spec.value.format(**{k: shlex.quote(v) for k, v in values.items()})
    except (KeyError, IndexError, ValueError) as e:
        raise SeparateError(f"--command {spec.value!r}: bad placeholder {e}; use {{input}}, "
                            "{outdir}, {track}, {sr} ({{ and }} for literal braces)") from None
    proc = subprocess.Popen(cmd, shell=True, cwd=scratch, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=spec.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        raise SeparateError(f"track {track!r}: command timed out after {spec.timeout:g} s: "
                            f"{cmd}; stderr: {_stderr_tail(err)}") from None
    finally:
        if proc.poll() is None:  # interrupted: leave no orphan separator running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        raise SeparateError(f"track {track!r}: command exited with status {proc.returncode}: "
                            f"{cmd}; stderr: {_stderr_tail(err)}")
    out = {}
    for t in targets:
        try:
            path = scratch / spec.pattern.format(outdir=outdir, target=t,
                                                 stem=Path(INPUT_NAME).stem, track=track)
        except (KeyError, IndexError, ValueError) as e:
            raise SeparateError(f"--pattern {spec.pattern!r}: bad placeholder {e}; use "
                                "{outdir}, {target}, {stem}, {track}") from None
        if not path.is_file():
            shown = (f"{{outdir}}/{path.relative_to(outdir)}" if path.is_relative_to(outdir)
                     else str(path))
            raise SeparateError(f"track {track!r}: the command wrote no {path.name} for target "
                                f"{t!r} (expected {shown} from --pattern {spec.pattern!r}; in "
                                f"{{outdir}} it wrote {_listing(outdir)})")
        a, file_sr = io.read(path), io.info(path).sample_rate
        out[t] = dsp.resample(a, file_sr, sr) if file_sr != sr else a
    return out


def _is_file_ref(module: str) -> bool:
    return module.endswith(".py") or os.sep in module


def resolved(spec: SeparatorSpec) -> SeparatorSpec:
    """File paths in the spec made absolute (Dask workers may run elsewhere; a rerun from
    another folder records the same separator)."""
    if spec.kind == "checkpoint":
        return replace(spec, value=str(Path(spec.value).resolve()))
    if spec.kind == "callable":
        module, sep, attr = spec.value.rpartition(":")
        if sep and _is_file_ref(module):
            return replace(spec, value=f"{Path(module).resolve()}:{attr}")
    return spec


def check_templates(spec: SeparatorSpec) -> None:
    """Refuse a command template or pattern with unknown placeholders before any track runs."""
    try:
        spec.value.format(input="x", outdir="x", track="x", sr="1")
    except (KeyError, IndexError, ValueError) as e:
        raise SeparateError(f"--command {spec.value!r}: bad placeholder {e}; use {{input}}, "
                            "{outdir}, {track}, {sr} ({{ and }} for literal braces)") from None
    try:
        spec.pattern.format(outdir="x", target="x", stem="x", track="x")
    except (KeyError, IndexError, ValueError) as e:
        raise SeparateError(f"--pattern {spec.pattern!r}: bad placeholder {e}; use "
                            "{outdir}, {target}, {stem}, {track}") from None


# ---------------------------------------------------------------------------- per track
def _checked(result, targets: Sequence[str], channels: int, track: str) -> dict[str, np.ndarray]:
    if not isinstance(result, Mapping):
        raise SeparateError(f"track {track!r}: the separator returned {type(result).__name__}; "
                            "expected a dict {target: (channels, frames) array}")
    missing = [t for t in targets if t not in result]
    if missing:
        raise SeparateError(f"track {track!r}: the separator returned no "
                            f"{', '.join(map(repr, missing))} (it returned "
                            f"{', '.join(map(repr, result)) or 'nothing'}); pass --targets")
    out = {}
    for t in targets:
        a = np.asarray(result[t], dtype=np.float32)
        if a.ndim != 2 or a.shape[0] != channels or a.shape[1] == 0:
            raise SeparateError(f"track {track!r}: estimate {t!r} has shape {a.shape}; expected "
                                f"({channels}, frames) like the mixture")
        if not np.isfinite(a).all():
            raise SeparateError(f"track {track!r}: estimate {t!r} holds NaN or inf samples")
        out[t] = a
    return out


def separate_item(i: int, task: SeparateTask) -> str:
    """Worker: separate track ``i`` and move its complete folder into place. Returns its name."""
    index = worker_state(task.index.key, task.index.open)
    sep = worker_state(("separator", task.separator), lambda: build(task.separator))
    tid, name = task.track_ids[i], task.names[i]
    track = index.track(tid)
    out = Path(task.out)
    stage = out / f"{STAGE_PREFIX}{uuid.uuid4().hex[:12]}.partial"
    try:
        stage.mkdir(parents=True)
        mix = index.read_input(tid, real=task.mixture == "real")
        try:
            result = sep(mix, track.sample_rate, name, stage / "work", task.targets)
        except StemforgeError:
            raise
        except Exception as e:  # the user's separator failed: name the track, keep the cause
            raise SeparateError(f"track {name!r}: the separator raised {type(e).__name__}: "
                                f"{e}") from e
        est = _checked(result, task.targets, mix.shape[0], name)
        folder = stage / "track"
        for t in task.targets:  # deterministic bytes: a rerun or another worker writes the same
            write_bytes_atomic(folder / f"{t}{AUDIO_SUFFIX}",
                               wav_float32(est[t], track.sample_rate))
        dst = out / name
        if not dst.exists():  # another run may have finished it meanwhile: keep theirs
            folder.rename(dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return name


# ---------------------------------------------------------------------------- the job
def job_record(spec: SeparatorSpec, targets: Sequence[str], mixture: str, index) -> dict:
    return {"format": JOB_FORMAT, "version": 1, "separator": spec.describe(),
            "targets": list(targets), "mixture": mixture,
            "root": str(Path(index.root).resolve())}


def _check_job(out: Path, rec: dict, done: Sequence[str]) -> None:
    """Refuse to add to estimates of another separator, targets or mixture (a folder whose
    job file exists but holds no finished track is simply taken over)."""
    f = out / JOB_FILE
    if not f.is_file() or not done:
        return
    try:
        old = json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise SeparateError(f"{f}: unreadable job file ({e}); remove it to start over") from None
    for key in ("separator", "targets", "mixture"):
        if old.get(key) != rec[key]:
            raise SeparateError(f"--out {out}: holds estimates of another run ({key} "
                                f"{json.dumps(old.get(key))}, now {json.dumps(rec[key])}); "
                                "choose another --out or remove that folder")


def plan(index, out_dir, spec: SeparatorSpec, targets: Sequence[str] | None = None,
         mixture: str = "real") -> tuple[SeparateTask, list[str]]:
    """Check everything that can be checked up front; returns the task of the tracks still to
    separate and the names of those already done."""
    if spec.kind not in KINDS:
        raise SeparateError(f"separator kind {spec.kind!r}: expected one of {', '.join(KINDS)}")
    spec = resolved(spec)
    if mixture not in ("real", "sum"):
        raise SeparateError(f"--mixture {mixture!r}: expected 'real' or 'sum'")
    if not index.tracks:
        raise SeparateError(f"no tracks to separate in {index.root}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SeparateError(f"--out {out}: exists and is not a folder; expected an output folder")
    if spec.kind == "checkpoint":
        from ..train.checkpoint import load_checkpoint

        model_targets = list(load_checkpoint(spec.value)["model_config"]["targets"])
        targets = list(targets or model_targets)
        bad = [t for t in targets if t not in model_targets]
        if bad:
            raise SeparateError(f"--targets {' '.join(bad)}: the checkpoint {spec.value} "
                                f"separates {', '.join(model_targets)}")
    else:
        targets = list(targets or index.stem_names)
    if spec.kind == "command":
        check_templates(spec)
    if spec.kind == "command" and "{target}" not in spec.pattern and len(targets) > 1:
        raise SeparateError(f"--pattern {spec.pattern!r}: has no {{target}}, so every target "
                            "would read the same file")
    targets = list(dict.fromkeys(targets))
    for t in targets:
        if any(c in t for c in "/\\") or t.startswith("."):
            raise SeparateError(f"target {t!r}: not usable as a file name")
    done = [t.name for t in index.tracks if (out / t.name).is_dir()]
    todo = [t for t in index.tracks if t.name not in set(done)]
    task = SeparateTask(IndexRef.of(index), tuple(t.id for t in todo),
                        tuple(t.name for t in todo), tuple(targets), spec, mixture,
                        str(out.resolve()))
    return task, done


@dataclass
class SeparateResult:
    written: list[str]   # track names separated by this run
    skipped: list[str]   # already complete before it
    targets: list[str]
    out: Path


def run(index, out_dir, spec: SeparatorSpec, targets: Sequence[str] | None = None,
        mixture: str = "real", workers: int = 1, scheduler: str | None = None,
        progress: bool = False) -> SeparateResult:
    """Separate every track of ``index`` not yet in ``out_dir`` (see module doc)."""
    task, done = plan(index, out_dir, spec, targets, mixture)
    out = Path(out_dir)
    rec = job_record(task.separator, task.targets, mixture, index)
    _check_job(out, rec, done)
    out.mkdir(parents=True, exist_ok=True)
    for left in out.glob(f"{STAGE_PREFIX}*.partial"):  # a killed run's unfinished tracks
        shutil.rmtree(left, ignore_errors=True)
    write_text_atomic(out / JOB_FILE, json.dumps(rec, indent=1, allow_nan=False))
    seed_state(task.index.key, index)
    names = run_task(separate_item, task, len(task.track_ids), workers, scheduler, progress,
                     desc="separate") if task.track_ids else []
    return SeparateResult(sorted(names), done, list(task.targets), out)
