"""The job file (``stemforge-job.json``) and the manifest (``manifest.csv``) of a generated set.

Both are deterministic functions of the job's inputs and the items' specs (no timestamps), so an
interrupted and resumed run ends byte-identical to an uninterrupted one.

Manifest columns: ``id, mixture, <target>...`` (then ``unmastered`` for a non-linear mastering
bus), ``duration, mode``, then for each source stem
``gain_db_<stem>, loudness_<stem>`` (the spec's gain in dB and the stem's integrated loudness in
LUFS measured *before* the gain; empty when the stem was not loudness-normalised), then ``scale``
(clip scaling applied to mix and targets). Paths are relative to DIR. Floats use Python's
shortest round-trip repr.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..mixing.spec import MixSpec
from ..atomic import write_text_atomic
from .layout import (JOB_FILE, MANIFEST_FILE, SPEC_FILE, JobError, is_complete,
                     item_audio_names, item_id)

JOB_KIND = "stemforge-generate/1"
# fields that decide every output byte: a mismatch is always refused
STRICT = ("recipe_hash", "seed", "epoch", "format")
# fields that name where the data came from: a mismatch is refused unless --continue
LOOSE = ("index_root", "index_file", "datasets", "version")


@dataclass(frozen=True)
class Job:
    """What produced a generated set."""

    recipe: dict
    recipe_hash: str
    seed: int
    epoch: int
    n: int
    format: str
    index_root: str
    index_file: str
    recipe_name: str = ""
    version: str = __version__
    # content fingerprint of the tracks the recipe draws from, and each track's digest
    # (stemforge.index.fingerprint): a set is only ever continued from the same audio
    index_fingerprint: str = ""
    index_tracks: dict = field(default_factory=dict)
    # several datasets (recipe ``datasets:``): name -> {"root", "index_file"}; index_root and
    # index_file are then "" and index_tracks is keyed ``dataset/track``
    datasets: dict = field(default_factory=dict)

    def index_files(self) -> dict[str, str]:
        """``{dataset name: index file}`` (``{"": index_file}`` for one dataset)."""
        if self.datasets:
            return {k: v["index_file"] for k, v in self.datasets.items()}
        return {"": self.index_file}

    def to_dict(self) -> dict:
        index = {"datasets": self.datasets} if self.datasets else \
            {"root": self.index_root, "index_file": self.index_file}
        if self.index_fingerprint:
            index.update(fingerprint=self.index_fingerprint, tracks=self.index_tracks)
        return {"kind": JOB_KIND, "recipe": self.recipe, "recipe_name": self.recipe_name,
                "recipe_hash": self.recipe_hash, "seed": self.seed, "epoch": self.epoch,
                "n": self.n, "format": self.format, "index": index, "version": self.version}

    @classmethod
    def from_dict(cls, d: dict, where: Path) -> "Job":
        if not isinstance(d, dict) or d.get("kind") != JOB_KIND:
            raise JobError(f"{where}: not a stemforge generate job file (kind "
                           f"{d.get('kind') if isinstance(d, dict) else None!r}, expected {JOB_KIND!r})")
        try:
            return cls(recipe=d["recipe"], recipe_hash=d["recipe_hash"], seed=int(d["seed"]),
                       epoch=int(d["epoch"]), n=int(d["n"]), format=d["format"],
                       index_root=d["index"].get("root", "") if "datasets" in d["index"]
                       else d["index"]["root"],
                       index_file=d["index"].get("index_file", "") if "datasets" in d["index"]
                       else d["index"]["index_file"],
                       datasets=_datasets(d["index"].get("datasets")),
                       recipe_name=d.get("recipe_name", ""), version=d.get("version", ""),
                       index_fingerprint=d["index"].get("fingerprint", ""),
                       index_tracks=dict(d["index"].get("tracks") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise JobError(f"{where}: job file is missing or has a bad field ({e!r})") from e

    def where(self) -> str:
        """Where the set's audio came from (for messages)."""
        if self.datasets:
            return ", ".join(f"{k}={v['root']}" for k, v in self.datasets.items())
        return self.index_root

    def save(self, out: Path) -> Path:
        return write_text_atomic(Path(out) / JOB_FILE,
                                 json.dumps(self.to_dict(), indent=1, sort_keys=True,
                                            allow_nan=False) + "\n")

    @classmethod
    def load(cls, out: Path) -> "Job":
        p = Path(out) / JOB_FILE
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise JobError(f"{p}: job file not found; is {out} a folder written by "
                           "`stemforge generate`?") from None
        except ValueError as e:
            raise JobError(f"{p}: not valid JSON ({e})") from e
        return cls.from_dict(d, p)

    def differences(self, other: "Job", fields) -> list[str]:
        """Human-readable ``field: theirs (this run: ours)`` for each differing field."""
        out = []
        for f in fields:
            a, b = getattr(other, f), getattr(self, f)
            if a != b:
                if f == "recipe_hash":
                    out.append(f"recipe {other.recipe_name!r} hash {a} (this run: recipe "
                               f"{self.recipe_name!r} hash {b})")
                else:
                    out.append(f"{f} {a!r} (this run: {b!r})")
        return out


def _datasets(d) -> dict:
    """A job file's ``index.datasets`` (name -> {root, index_file}), checked."""
    if d is None:
        return {}
    if not isinstance(d, dict) or not d or not all(
            isinstance(v, dict) and isinstance(v.get("root"), str)
            and isinstance(v.get("index_file"), str) for v in d.values()):
        raise ValueError(f"index.datasets {d!r}")
    return {str(k): {"root": v["root"], "index_file": v["index_file"]} for k, v in d.items()}


def load_complete(out: Path) -> Job:
    """The job of the generated set in ``out``, after checking that every item ``0..n-1`` is
    complete (exporters read whole sets; they refuse before writing anything)."""
    out = Path(out)
    if not out.is_dir():
        raise JobError(f"{out}: no such folder (expected a folder written by `stemforge generate`)")
    job = Job.load(out)
    missing = [item_id(i) for i in range(job.n) if not is_complete(out, i)]
    if missing:
        raise JobError(f"{out}: {len(missing)} of {job.n} items are incomplete (first: "
                       f"{missing[0]}); finish them with `stemforge generate` or "
                       "`stemforge regenerate` first. Nothing was written")
    return job


def check_compatible(job: Job, out: Path, allow_loose: bool) -> None:
    """Refuse to write ``job`` into ``out`` when it holds another job's output.

    Recipe, seed, epoch and format must always match (mixing two sets in one folder would make
    the job file and manifest false). Index location and stemforge version may differ only with
    ``allow_loose`` (``--continue``): e.g. the dataset moved but holds the same files.
    """
    p = Path(out) / JOB_FILE
    if not p.exists():
        return
    old = Job.load(out)
    strict = job.differences(old, STRICT)
    if strict:
        raise JobError(f"{p}: {out} holds the output of another job: " + "; ".join(strict) +
                       ". Refusing to mix two sets in one folder (even with --continue); "
                       "choose a new --out folder")
    if job.n < old.n:
        raise JobError(f"{p}: {out} holds a set of {old.n} mixtures and this run asks for "
                       f"--n {job.n}; a set can grow but not shrink: rerun with --n {old.n} or "
                       "more, or choose a new --out folder")
    check_same_audio(old, job.index_fingerprint, job.index_tracks, p,
                     "continuing it would mix items drawn from two datasets")
    loose = job.differences(old, LOOSE)
    if loose and not allow_loose:
        raise JobError(f"{p}: {out} was generated from another index or stemforge version: " +
                       "; ".join(loose) + ". Same recipe and seed, so rerun with --continue to "
                       "resume anyway (items already written are kept as they are), or choose "
                       "a new --out folder")


def index_difference(old: dict[str, str], new: dict[str, str]) -> str:
    """What differs between two ``{track id: digest}`` maps, in words."""
    changed = sorted(t for t in old if t in new and old[t] != new[t])
    gone = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    parts = []
    if changed:
        parts.append(f"{len(changed)} of {len(old)} tracks differ in content (length, loudness "
                     f"or peaks; e.g. '{changed[0]}')")
    if gone:
        parts.append(f"{len(gone)} of its tracks are not in this index (e.g. '{gone[0]}')")
    if added:
        parts.append(f"{len(added)} tracks are new in this index (e.g. '{added[0]}')")
    return "; ".join(parts) or "the track lists differ"


def other_audio(job: Job, fingerprint: str, tracks: dict[str, str]) -> str | None:
    """Why an index with this content ``fingerprint`` (and per-track digests) holds other audio
    than ``job`` was generated from, or None when it is the same (or the job file predates
    fingerprints)."""
    if not job.index_fingerprint or not fingerprint or fingerprint == job.index_fingerprint:
        return None
    return (f"the set was generated from other audio than this index holds "
            f"({index_difference(job.index_tracks, tracks)})")


def check_same_audio(job: Job, fingerprint: str, tracks: dict[str, str], where: Path,
                     why: str) -> None:
    """Refuse (JobError with the reason) an index whose content fingerprint is not the one
    ``job`` was generated from. Job files written before fingerprints existed pass."""
    problem = other_audio(job, fingerprint, tracks)
    if problem:
        raise JobError(f"{where}: {problem}; {why}. Use the dataset it was made from (indexed "
                       f"at {job.where()}), or choose a new --out folder")


def _num(x) -> str:
    return "" if x is None else repr(float(x))


def manifest_header(targets: list[str], sources: list[str],
                    unmastered: bool = False) -> list[str]:
    cols = ["id", "mixture", *targets, *(["unmastered"] if unmastered else []), "duration",
            "mode"]
    for s in sources:
        cols += [f"gain_db_{s}", f"loudness_{s}"]
    return cols + ["scale"]


def manifest_row(i: int, spec: MixSpec, fmt: str, sources: list[str]) -> list[str]:
    iid = item_id(i)
    files = [f"{iid}/{name}" for name in item_audio_names(spec, fmt)]
    by = {s.stem: s for s in spec.sources if not s.mixup}  # a slot's own source, not extras
    row = [iid, *files, repr(spec.duration), spec.mode]
    for s in sources:
        src = by.get(s)
        row += [_num(src.gain_db if src else None), _num(src.loudness if src else None)]
    return row + [_num(spec.scale)]


def write_manifest(out: Path, n: int, fmt: str, targets: list[str], sources: list[str],
                   unmastered: bool = False) -> Path:
    """Build ``manifest.csv`` from the spec.json of items ``0..n-1`` (all must be complete);
    ``unmastered``: the recipe's bus is non-linear (an ``unmastered`` column after the
    targets)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(manifest_header(targets, sources, unmastered))
    for i in range(n):
        spec = MixSpec.load(Path(out) / item_id(i) / SPEC_FILE)
        w.writerow(manifest_row(i, spec, fmt, sources))
    return write_text_atomic(Path(out) / MANIFEST_FILE, buf.getvalue())
