"""The doctor's findings as an exclusion list that recipes apply.

A recipe field ``exclude_flagged: doctor.json`` (a path relative to the recipe file, a doctor
output folder, or a list of them; ``exclude: doctor.json``, a path rather than a list of stem
names, says the same; ``stemforge generate ... --exclude doctor.json`` sets it), takes every
finding whose action is ``exclude_track``, ``exclude_stem`` or ``exclude_span`` and applies
those of the recipe's dataset (matched by the dataset root the doctor checked) when sampling.
With several datasets (``datasets:``), each dataset gets the entries of its own root: one
doctor run over all of them (``stemforge doctor ROOT1 ROOT2 ...``) or a list of reports, one
per dataset; every bound dataset must be covered. Per dataset:

* an excluded track leaves the index the sampler sees, so it is in no split and no mixture;
* an excluded stem leaves its track (the track can still give its other stems to incoherent
  mixtures; coherent mixtures need every source, so they skip it);
* an excluded span is never inside a drawn excerpt: the start distribution is mapped onto the
  starts whose excerpt avoids every excluded span of the sources placed there (tracks without
  spans draw exactly as before, so specs of other tracks do not change).

When loaded, the list is embedded in the recipe (its ``raw`` form holds the entries and the
files' sha256), so the recipe hash changes with the list and Dask workers need no file; every
spec drawn with it records ``exclusions`` (files, hashes, and how many tracks, stems and spans
were excluded from its index; per dataset name under ``datasets`` for several datasets, see
:func:`record_of`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import RecipeError
from .findings import EXCLUDING, DoctorError, DoctorReport


@dataclass(frozen=True)
class Exclusion:
    """One entry: a whole track (``stem`` None, no spans), a stem (no spans), or spans
    (seconds) of one stem or of every stem (``stem`` None)."""

    root: str
    track: str
    stem: str | None
    spans: tuple[tuple[float, float], ...]
    kind: str

    def to_raw(self) -> dict:
        return {"root": self.root, "track": self.track, "stem": self.stem,
                "spans": [list(s) for s in self.spans], "kind": self.kind}


@dataclass(frozen=True)
class ExclusionList:
    """Entries from one or several ``doctor.json`` files (see the module docstring)."""

    files: tuple[str, ...]
    sha256: tuple[str, ...]
    roots: tuple[str, ...]
    items: tuple[Exclusion, ...]

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | os.PathLike, base: str | os.PathLike | None = None
             ) -> "ExclusionList":
        p = Path(path)
        if not p.is_absolute() and base is not None:
            p = Path(base) / p
        if p.is_dir():
            p = p / "doctor.json"
        report = DoctorReport.load(p)
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        root_of = {d["name"]: str(Path(d["root"]).resolve()) for d in report.datasets}
        items = []
        for f in report.findings:
            if f.action not in EXCLUDING:
                continue
            if f.dataset not in root_of:
                raise DoctorError(f"{p}: finding on dataset {f.dataset!r}, which the report "
                                  "does not list")
            stem = None if f.action == "exclude_track" else f.stem
            if stem == "mixture":   # the mixture is not sampled: the track is what is wrong
                stem = None
            spans = tuple((float(a), float(b)) for a, b in f.spans) \
                if f.action == "exclude_span" else ()
            if f.action == "exclude_track":
                spans = ()
            items.append(Exclusion(root_of[f.dataset], f.track, stem, spans, f.kind))
        return cls((str(path),), (digest,), tuple(sorted(set(root_of.values()))), tuple(items))

    @classmethod
    def from_raw(cls, raw: dict, field: str = "exclude_flagged") -> "ExclusionList":
        """The embedded form (:meth:`to_raw`), validated; errors name ``field``."""
        try:
            items = tuple(Exclusion(str(i["root"]), str(i["track"]),
                                    None if i.get("stem") is None else str(i["stem"]),
                                    tuple((float(a), float(b)) for a, b in i.get("spans", [])),
                                    str(i.get("kind", "")))
                          for i in raw["items"])
            return cls(tuple(map(str, raw["files"])), tuple(map(str, raw["sha256"])),
                       tuple(map(str, raw["roots"])), items)
        except (KeyError, TypeError, ValueError) as e:
            raise RecipeError(field, f"not a valid embedded exclusion list ({e}); give the path "
                              "of a doctor.json") from None

    @classmethod
    def coerce(cls, value, field: str = "exclude_flagged", base: str | os.PathLike | None = None
               ) -> "ExclusionList":
        """A path, a list of paths, or the embedded mapping; errors are RecipeErrors naming
        ``field``."""
        if isinstance(value, dict):
            return cls.from_raw(value, field)
        paths = value if isinstance(value, list) else [value]
        if not paths or not all(isinstance(v, (str, os.PathLike)) for v in paths):
            raise RecipeError(field, f"expected the path of a doctor.json (or a list of them), "
                              f"got {value!r}")
        try:
            lists = [cls.load(v, base) for v in paths]
        except DoctorError as e:
            raise RecipeError(field, str(e)) from None
        return cls(tuple(f for x in lists for f in x.files),
                   tuple(h for x in lists for h in x.sha256),
                   tuple(sorted({r for x in lists for r in x.roots})),
                   tuple(i for x in lists for i in x.items))

    def to_raw(self) -> dict:
        return {"files": list(self.files), "sha256": list(self.sha256),
                "roots": list(self.roots), "items": [i.to_raw() for i in self.items]}

    # ------------------------------------------------------------------ application
    def apply(self, index, field: str = "exclude_flagged",
              dataset: str = "") -> "AppliedExclusions":
        """The exclusions of ``index``'s dataset applied to it (a new Index view);
        ``dataset``: the recipe's name for it (several datasets), for the error message."""
        root = str(Path(index.root).resolve())
        if root not in self.roots:
            which = f"dataset {dataset!r} ({root})" if dataset else f"the index's dataset {root}"
            raise RecipeError(field, f"the exclusion list ({', '.join(self.files)}) covers "
                              f"{', '.join(self.roots)}, not {which}; run stemforge doctor on "
                              "every dataset of the recipe")
        mine = [i for i in self.items if i.root == root]
        return AppliedExclusions(self, index, mine)


def record_of(applied: dict) -> dict | None:
    """What specs record of the exclusions applied: ``applied`` is ``{dataset name:
    AppliedExclusions}`` ("" for a one-index recipe). One index: its ``record`` (files,
    sha256, tracks, stems, spans, unmatched); several: the files and sha256 once, and
    ``datasets: {name: {tracks, stems, spans, unmatched}}``. None when nothing is applied."""
    applied = {k: v for k, v in applied.items() if v is not None}
    if not applied:
        return None
    if list(applied) == [""]:
        return applied[""].record
    first = next(iter(applied.values())).record
    return {"files": first["files"], "sha256": first["sha256"],
            "datasets": {k: {f: a.record[f] for f in ("tracks", "stems", "spans", "unmatched")}
                         for k, a in applied.items()}}


def _interval_starts(length: int, need: int, spans: list[tuple[int, int]]
                     ) -> list[tuple[int, int]]:
    """Allowed start frames ``[lo, hi]`` (inclusive) of a ``need``-frame excerpt in a track of
    ``length`` frames avoiding every ``[a, b)`` span."""
    free = [(0, length - need)] if length >= need else []
    for a, b in sorted(spans):
        blocked = (a - need + 1, b - 1)   # starts whose excerpt overlaps [a, b)
        nxt = []
        for lo, hi in free:
            if blocked[1] < lo or blocked[0] > hi:
                nxt.append((lo, hi))
                continue
            if lo < blocked[0]:
                nxt.append((lo, blocked[0] - 1))
            if blocked[1] < hi:
                nxt.append((blocked[1] + 1, hi))
        free = nxt
    return free


class AppliedExclusions:
    """An index with tracks and stems removed, and the spans sampling must avoid."""

    def __init__(self, source: ExclusionList, index, items: list[Exclusion]):
        from ..index import Index

        self.source = source
        drop_tracks = {i.track for i in items if i.stem is None and not i.spans}
        drop_stems: dict[str, set[str]] = {}
        spans: dict[str, list[tuple[str | None, float, float]]] = {}
        for i in items:
            if i.stem is not None and not i.spans:
                drop_stems.setdefault(i.track, set()).add(i.stem)
            elif i.spans:
                spans.setdefault(i.track, []).extend((i.stem, a, b) for a, b in i.spans)
        known = {t.id for t in index.tracks}
        tracks = []
        n_stems = 0
        for t in index.tracks:
            if t.id in drop_tracks:
                continue
            gone = drop_stems.get(t.id, set()) & set(t.stems)
            if gone:
                n_stems += len(gone)
                t = dataclasses.replace(t, stems={k: v for k, v in t.stems.items()
                                                  if k not in gone})
                if not t.stems:
                    continue
            tracks.append(t)
        view = Index(index.root, index.layout, index.cache_dir, tracks, index.groups)
        view._energies = index._energies
        view.taxonomy = index.taxonomy
        view.cache = index.cache
        view.variants = index.variants
        self.index = view
        self.spans = {k: v for k, v in spans.items() if k in known}
        self.record = {
            "files": list(source.files), "sha256": list(source.sha256),
            "tracks": len(drop_tracks & known), "stems": n_stems,
            "spans": sum(len(v) for v in self.spans.values()),
            "unmatched": len({i.track for i in items} - known),
        }

    def has_spans(self, track_id: str) -> bool:
        return track_id in self.spans

    def _blocked(self, track, stems) -> list[tuple[int, int]]:
        sr = track.sample_rate
        return [(int(a * sr), int(-(-b * sr // 1))) for s, a, b in self.spans.get(track.id, ())
                if s is None or s in stems]

    def starts(self, track, stems, frames: int) -> list[tuple[int, int]]:
        """Allowed start ranges (inclusive, track frames) of a ``frames``-long excerpt of
        ``stems`` of ``track``."""
        return _interval_starts(track.frames, frames, self._blocked(track, stems))

    def fits(self, track, stems, frames: int) -> bool:
        return not self.has_spans(track.id) or bool(self.starts(track, stems, frames))

    def place(self, track, stems, frames: int, frac: float) -> int:
        """The start at fraction ``frac`` of the allowed starts (in order)."""
        free = self.starts(track, stems, frames)
        total = sum(hi - lo + 1 for lo, hi in free)
        pos = int(round(frac * (total - 1)))
        for lo, hi in free:
            if pos <= hi - lo:
                return lo + pos
            pos -= hi - lo + 1
        return free[-1][1]
