"""The manifest of a dataset: its tracks and their stems as ``index.jsonl`` stores them, the
header facts (root, layout, groups, taxonomy), the file's writer, and content digests of tracks.

A leaf under the index: :mod:`stemforge.indexing` builds a :class:`Manifest` (scan, analyse,
save) and :class:`stemforge.index.Index` is a manifest opened for queries and reads."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import atomic_file
from .cachedirs import INDEX_FILE
from .layouts.base import SourceRef
from .types import LUFS, Frames

FORMAT = "stemforge-index/1"


@dataclass
class Stem:
    """One stem of a track: where it lives and what analysis found."""

    name: str
    path: str
    stream: int | None
    key: str
    sample_rate: int
    channels: int
    frames: Frames
    loudness: LUFS
    silent_fraction: float
    peak: float
    label: str | None = None
    extra_paths: tuple[str, ...] = ()
    channel: int | None = None
    #: per file of ``ref.paths``: its stamp when indexed and the sha256 of its bytes then
    #: (:mod:`stemforge.stamps`); ``key`` is made from the digests
    stamps: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()

    @property
    def ref(self) -> SourceRef:
        return SourceRef(self.path, self.stream, self.label, tuple(self.extra_paths),
                         self.channel)


@dataclass
class Track:
    """One track: aligned stems sharing sample rate and channels; ``frames`` = usable length."""

    id: str
    name: str
    split: str | None
    sample_rate: int
    channels: int
    frames: Frames
    stems: dict[str, Stem]
    mixture: Stem | None = None
    residual_db: float | None = None
    residual_key: str | None = None
    notes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def to_dict(self) -> dict:
        """JSON-ready (finite numbers and nulls only): a silent stem's loudness (-inf) is
        null; an exact mixture's residual (-inf dB) is null with ``residual_exact: true``."""
        d = asdict(self)
        for s in [*d["stems"].values(), *([d["mixture"]] if d["mixture"] else [])]:
            if not math.isfinite(s["loudness"]):
                s["loudness"] = None
        if d["residual_db"] == -math.inf:
            d["residual_db"], d["residual_exact"] = None, True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Track":
        d = dict(d)
        d["residual_db"] = residual_from_json(d)
        d.pop("residual_exact", None)
        d["stems"] = {k: stem_from_dict(v) for k, v in d["stems"].items()}
        if d.get("mixture"):
            d["mixture"] = stem_from_dict(d["mixture"])
        return cls(**d)


def residual_from_json(row: dict) -> float | None:
    """A track row's residual in dB: -inf for an exact mixture (see :meth:`Track.to_dict`)."""
    return -math.inf if row.get("residual_exact") else row.get("residual_db")


def stem_from_dict(v: dict) -> Stem:
    """A Stem from its JSON form (null loudness = silent = -inf LUFS)."""
    v = {**v, **{k: tuple(v.get(k, ())) for k in ("extra_paths", "stamps", "digests")}}
    if v.get("loudness") is None:
        v["loudness"] = -math.inf
    return Stem(**v)


def _digest(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def track_digest(t: "Track") -> str:
    """A content digest of one track: its id, split, format and each stem's analysed facts
    (frames, loudness, peak, silent fraction; rounded so that a re-analysis on another
    machine agrees). Independent of where the files live, so a moved dataset keeps it; another
    encoding of the same songs (HQ WAVs vs stem.mp4) does not."""
    def facts(s: "Stem") -> list:
        return [s.name, s.sample_rate, s.channels, s.frames, round(float(s.loudness), 4)
                if np.isfinite(s.loudness) else str(s.loudness), round(float(s.peak), 6),
                round(float(s.silent_fraction), 4), s.label, s.channel]

    return _digest([t.id, t.split, t.sample_rate, t.channels, t.frames,
                    [facts(t.stems[n]) for n in sorted(t.stems)]])


def fingerprint(tracks) -> tuple[str, dict[str, str]]:
    """``(fingerprint, {track id: digest})`` of ``tracks``: see :func:`track_digest`."""
    return keyed_fingerprint({t.id: t for t in tracks})


def keyed_fingerprint(tracks: dict[str, "Track"]) -> tuple[str, dict[str, str]]:
    """:func:`fingerprint` of tracks under given keys (``dataset/track`` for several datasets,
    :class:`~stemforge.indexset.IndexSet`)."""
    per = {k: track_digest(t) for k, t in tracks.items()}
    return _digest(sorted(per.items())), per


@dataclass
class Manifest:
    """What one ``index.jsonl`` holds (tracks sorted by id), and how it was arrived at.

    ``taxonomy``: ``{"targets": mapping, "unclaimed": {label: n}}`` when the index maps labels;
    ``layout_source`` / ``cache_source``: how the layout and cache directory were chosen
    (``given``, ``detected`` / ``remembered``, ``default``, ``loaded``); ``content_changed``: files
    whose bytes differ from the previous index of this cache (set by a build)."""

    root: Path
    layout: str
    cache_dir: Path
    tracks: list[Track]
    groups: dict[str, list[str]]
    taxonomy: dict | None = None
    layout_source: str = "given"
    cache_source: str = "given"
    content_changed: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.root, self.cache_dir = Path(self.root), Path(self.cache_dir)
        self.tracks = sorted(self.tracks, key=lambda t: t.id)
        self.groups = dict(self.groups)

    @property
    def index_file(self) -> Path:
        return self.cache_dir / INDEX_FILE

    def header(self) -> dict:
        """The first line of ``index.jsonl``."""
        return header_of(self.root, self.layout, self.groups, len(self.tracks), self.taxonomy)

    def save(self) -> Path:
        """Write ``index.jsonl`` (see :func:`write_index_file`)."""
        return write_index_file(self.index_file, self.header(), self.tracks)


def header_of(root: Path, layout: str, groups: dict, n_tracks: int, taxonomy: dict | None) -> dict:
    """The header line of an index of ``root``."""
    return {"format": FORMAT, "version": __version__, "root": str(Path(root).resolve()),
            "layout": layout, "groups": groups, "tracks": n_tracks,
            **({"taxonomy": taxonomy} if taxonomy is not None else {})}


def write_index_file(path: Path, header: dict, tracks: list[Track]) -> Path:
    """Write ``path`` atomically (temp file + rename): the header line, then one JSON line per
    track (finite numbers and nulls only). An unchanged file is not rewritten, so a read-only
    cache stays usable."""
    # no fsync: the index is a cache whose stamps are re-checked on load
    lines = [json.dumps(header, allow_nan=False)]
    lines += [json.dumps(t.to_dict(), allow_nan=False) for t in tracks]
    text = "\n".join(lines) + "\n"
    try:
        if path.read_text() == text:
            return path
    except (OSError, UnicodeDecodeError):
        pass
    with atomic_file(path, "w", fsync=False) as fh:
        fh.write(text)
    return path
