"""``run_doctor``: check every track of one or several datasets, match fingerprints, write
``doctor.json``.

Per-track checks (:func:`stemforge.doctor.track.check_track`) are independent items run through
:func:`stemforge.jobs.dask_runner.run_items`: in this process, on a local Dask cluster
(``workers > 1``) or on a running scheduler. Workers receive only the dataset references and
the options, re-list the datasets themselves (once per process) and send back each track's
findings, facts and fingerprints (a few kB per track). Duplicates are then found here, over
all tracks at once, through the fingerprints' inverted index
(:func:`stemforge.doctor.fingerprint.match`).

For each pair of tracks sharing audio, the finding goes to the copy that should be dropped:
the one in the less precious split (a test split is kept over a validation split over a
training split), else the later one (dataset order, then track id). It is *leakage* when the
two copies sit in different splits of one dataset, or in two datasets with exactly one of them
in a test split.
"""
from __future__ import annotations

import csv
import io as _io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import write_text_atomic
from ..jobs.dask_runner import run_items, seed_state, uses_dask, worker_state
from .datasets import DatasetRef
from .findings import KINDS, SEVERITIES, DoctorError, DoctorReport, Finding
from .fingerprint import match
from .options import Options
from .track import MIXTURE, TrackResult, check_track

TEST_SPLITS = ("test", "eval", "evaluation")
VALID_SPLITS = ("valid", "validation", "val", "dev", "development")


@dataclass(frozen=True)
class DoctorTask:
    """What a worker needs (small to pickle): the datasets and the options."""

    datasets: tuple[DatasetRef, ...]
    options: tuple

    @property
    def key(self) -> tuple:
        return ("doctor-entries", self.datasets)

    def entries(self) -> list:
        """``(dataset name, entry)`` of every track, in item order."""
        return [(d.name, e) for d in self.datasets for e in d.scan()]


def _check_item(i: int, task: DoctorTask) -> TrackResult:
    entries = worker_state(task.key, task.entries)
    name, entry = entries[i]
    return check_track(entry, name, Options(**dict(task.options)))


def split_rank(split: str | None) -> int:
    """0 for a test split (kept first), 1 validation, 2 training or unknown."""
    s = (split or "").lower()
    if s in TEST_SPLITS:
        return 0
    if s in VALID_SPLITS:
        return 1
    return 2


def _duplicates(results: list[TrackResult], order: dict[str, int], opts: Options
                ) -> list[Finding]:
    prints, owner, groups = [], [], []
    for ti, r in enumerate(results):
        for src, fp in r.prints.items():
            prints.append(fp)
            owner.append((ti, src))
            groups.append(0 if src == MIXTURE else 1)
    groups = np.array(groups)
    matches = []
    for g, votes in ((0, opts.min_votes), (1, opts.min_votes_stems)):
        # stems (a sustained pad, a bass line) repeat more than mixtures: chance agreements
        # between two songs in one key need a higher bar
        matches += match(prints, np.where(groups == g, 0, -1), min_votes=votes,
                         min_span=opts.min_overlap, min_coverage=opts.min_coverage)
    by_pair: dict[tuple[int, int], list] = {}
    for m in matches:
        (ta, sa), (tb, sb) = owner[m.a], owner[m.b]
        if ta == tb:
            continue
        if ta > tb:
            ta, tb, sa, sb = tb, ta, sb, sa
            m = type(m)(m.b, m.a, -m.offset, m.span_b, m.span_a, m.votes, m.similarity,
                        m.coverage)
        by_pair.setdefault((ta, tb), []).append((sa, sb, m))
    out = []
    for (ta, tb), items in sorted(by_pair.items()):
        A, B = results[ta], results[tb]
        mixes = [x for x in items if x[0] == MIXTURE]
        chosen = mixes if mixes else items
        ka = (split_rank(A.split), order[A.dataset], A.track)
        kb = (split_rank(B.split), order[B.dataset], B.track)
        # drop the copy with the larger key: less precious split, later dataset / id
        victim_is_a = ka > kb
        V, O = (A, B) if victim_is_a else (B, A)
        same_ds = A.dataset == B.dataset
        if same_ds:
            scope = "same split" if A.split == B.split else "across splits"
            leakage = A.split != B.split
        else:
            scope = "across datasets"
            leakage = (split_rank(A.split) == 0) != (split_rank(B.split) == 0)
        best = max(chosen, key=lambda x: x[2].votes)
        m = best[2]
        v_span, o_span = (m.span_a, m.span_b) if victim_is_a else (m.span_b, m.span_a)
        offset = m.offset if victim_is_a else -m.offset   # time in other - time in victim
        stems = sorted({(x[0] if victim_is_a else x[1]) for x in chosen} - {MIXTURE})
        whole = (v_span[1] - v_span[0]) >= 0.8 * V.seconds
        what = "audio" if mixes else f"stem(s) {', '.join(stems)}"
        stem = None if mixes else (stems[0] if len(stems) == 1 else None)
        if whole:
            action = "exclude_track" if mixes else ("exclude_stem" if stem else "exclude_track")
        else:
            action = "exclude_span"
        where = (f"{O.dataset}:{O.track}" if not same_ds else O.track)
        msg = (f"{'leakage: ' if leakage else ''}shares {what} with {where} "
               f"({O.split or '-'}) over {v_span[1] - v_span[0]:.1f} s, offset {offset:+.2f} s, "
               f"similarity {m.similarity:.2f}")
        out.append(Finding(
            "duplicate", "error" if leakage else "warning", V.dataset, V.track, stem, msg,
            action, [[round(v_span[0], 2), round(v_span[1], 2)]],
            {"other": {"dataset": O.dataset, "track": O.track, "split": O.split,
                       "span": [round(o_span[0], 2), round(o_span[1], 2)]},
             "split": V.split, "offset_s": round(offset, 3), "similarity": round(m.similarity, 4),
             "votes": m.votes, "coverage": m.coverage, "scope": scope, "leakage": leakage, "stems": stems,
             "by": "mixture" if mixes else "stems"}))
    return out


def run_doctor(datasets: list[DatasetRef], out: str | Path | None = None,
               options: Options | None = None, workers: int | None = 1,
               scheduler: str | None = None, progress: bool = False) -> DoctorReport:
    """Check ``datasets`` (see the module docstring); write ``out/doctor.json`` and
    ``out/findings.csv`` when ``out`` is given. Returns the report."""
    from tqdm import tqdm

    if not datasets:
        raise DoctorError("no dataset to check")
    opts = options or Options()
    task = DoctorTask(tuple(datasets), tuple(sorted(opts.to_dict().items())))
    entries = task.entries()
    if not entries:
        raise DoctorError("the datasets hold no tracks: " + ", ".join(d.root for d in datasets))
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise DoctorError(f"{out}: exists and is not a folder; choose a folder for --out")
    if not uses_dask(workers, scheduler):
        seed_state(task.key, entries)
    results: list[TrackResult | None] = [None] * len(entries)
    ids = {(n, e.id): i for i, (n, e) in enumerate(entries)}
    bar = tqdm(total=len(entries), desc="doctor", unit="track", disable=None if progress else True)
    for r in run_items(_check_item, range(len(entries)), workers=workers, scheduler=scheduler,
                       name="stemforge-doctor", task=task):
        results[ids[(r.dataset, r.track)]] = r
        bar.update(1)
    bar.close()
    done = [r for r in results if r is not None]
    order = {d.name: i for i, d in enumerate(datasets)}
    findings = [f for r in done for f in r.findings]
    findings += _duplicates(done, order, opts)
    kinds = list(KINDS)
    findings.sort(key=lambda f: (-f.rank, kinds.index(f.kind), order[f.dataset], f.track,
                                 f.stem or ""))
    tracks = [{"dataset": r.dataset, "track": r.track, "split": r.split,
               "seconds": round(r.seconds, 3), **r.facts} for r in done]
    info = []
    for d in datasets:
        rs = [r for r in done if r.dataset == d.name]
        splits: dict[str, int] = {}
        for r in rs:
            splits[str(r.split)] = splits.get(str(r.split), 0) + 1
        info.append({**d.to_dict(), "tracks": len(rs), "splits": splits,
                     "seconds": round(sum(r.seconds for r in rs), 2)})
    report = DoctorReport(info, opts.to_dict(), findings, tracks, version=__version__)
    if out is not None:
        write_outputs(report, out)
    return report


def write_outputs(report: DoctorReport, out: Path) -> None:
    """``out/doctor.json`` and ``out/findings.csv`` (each written atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    buf = _io.StringIO()
    w = csv.writer(buf)
    w.writerow(["severity", "kind", "dataset", "track", "stem", "spans", "action", "message"])
    for f in report.findings:
        w.writerow([f.severity, f.kind, f.dataset, f.track, f.stem or "",
                    " ".join(f"{a:g}-{b:g}" for a, b in f.spans), f.action, f.message])
    write_text_atomic(out / "findings.csv", buf.getvalue())
    report.save(out / "doctor.json")


def summary_table(report: DoctorReport) -> str:
    """Plain-text table: findings per kind and severity."""
    s = report.summary()
    rows = [("kind", *SEVERITIES)] + [(k, *(str(s[k][v]) for v in SEVERITIES)) for k in s]
    if len(rows) == 1:
        return "no findings"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def findings_table(report: DoctorReport, limit: int = 25, min_severity: str = "warning") -> str:
    """Plain-text table of the worst findings (at least ``min_severity``), at most ``limit``."""
    floor = SEVERITIES.index(min_severity)
    fs = [f for f in report.findings if f.rank >= floor]
    rows = [("severity", "kind", "track", "stem", "spans", "action", "message")]
    for f in fs[:limit]:
        spans = " ".join(f"{a:.1f}-{b:.1f}" for a, b in f.spans[:3]) + (
            " ..." if len(f.spans) > 3 else "")
        track = f.track if len(report.datasets) == 1 else f"{f.dataset}:{f.track}"
        rows.append((f.severity, f.kind, track, f.stem or "-", spans or "all", f.action,
                     f.message))
    if len(rows) == 1:
        return f"no findings at {min_severity} or above"
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join([c.ljust(w) for c, w in zip(r[:6], widths, strict=True)] + [r[6]])
             for r in rows]
    if len(fs) > limit:
        lines.append(f"... and {len(fs) - limit} more")
    return "\n".join(lines)
