"""The Index: a cached manifest of a dataset's tracks, stems and per-stem analysis.

``Index.open(root_or_index_file)`` is the one entry point most code needs: it scans the dataset
with its layout reader, re-analyses only stems whose content changed (files are stamped by size,
mtime, ctime, inode and their first and last 64 KiB, and keyed by their sha256:
:mod:`stemforge.stamps`), and stores the result in a cache directory::

    <cache_dir>/index.jsonl        header line + one line per track (atomic rewrite)
    <cache_dir>/analysis/<key>.npy K-weighted 10 ms sub-block energies per stem
    <cache_dir>/analysis/<key>.zs1.npy  their zero-state corrections (loudness look-ups)
    <cache_dir>/audio/<key>.npy    decoded stems (StemCache, written by ``stemforge prepare``)
    <cache_dir>/variants/<vkey>.npy  pitch/tempo variants (``stemforge prepare --variants``)
    <cache_dir>/.stemforge.lock    held while a build writes the cache (one build at a time)

The default cache directory is ``$STEMFORGE_CACHE_DIR`` (or ``~/.cache/stemforge``) /
``<root name>-<hash of the absolute root>``. A root indexed with another cache directory
(``--cache DIR``) has it remembered (``$STEMFORGE_CACHE_DIR/roots/<root name>-<hash>.json``), so
one dataset root maps to one cache: every later use of the root without ``cache_dir`` opens that
one. The index header remembers the layout and options (groups, taxonomy) it was built with,
and a later build of the same root without them reuses them. Opening an ``index.jsonl`` rescans
the root it records with the layout, groups and taxonomy it records, exactly as building does,
so an index is never silently stale (with ``refresh=False`` it is read as recorded and any
changed file is an error naming it).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import atomic_file
from .audio import io, loudness
from .audio.cache import StemCache, VariantCache
from .errors import IndexError_
from .layouts.base import SourceRef
from .types import LUFS, Frames

INDEX_FILE = "index.jsonl"
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
        d["stems"] = {k: _stem_from_dict(v) for k, v in d["stems"].items()}
        if d.get("mixture"):
            d["mixture"] = _stem_from_dict(d["mixture"])
        return cls(**d)


def residual_from_json(row: dict) -> float | None:
    """A track row's residual in dB: -inf for an exact mixture (see :meth:`Track.to_dict`)."""
    return -math.inf if row.get("residual_exact") else row.get("residual_db")


def _stem_from_dict(v: dict) -> Stem:
    """A Stem from its JSON form (null loudness = silent = -inf LUFS)."""
    v = {**v, **{k: tuple(v.get(k, ())) for k in ("extra_paths", "stamps", "digests")}}
    if v.get("loudness") is None:
        v["loudness"] = -math.inf
    return Stem(**v)


def cache_base() -> Path:
    return Path(os.environ.get("STEMFORGE_CACHE_DIR") or Path.home() / ".cache" / "stemforge")


def _root_slug(root: Path) -> str:
    h = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:10]
    return f"{Path(root).resolve().name}-{h}"


def default_cache_dir(root: Path) -> Path:
    return cache_base() / _root_slug(root)


def _cache_pointer(root: Path) -> Path:
    return cache_base() / "roots" / f"{_root_slug(root)}.json"


def remembered_cache_dir(root: Path) -> Path | None:
    """The cache directory remembered for ``root`` (set by building it with ``cache_dir``), or
    None when the root uses its default one."""
    try:
        d = json.loads(_cache_pointer(root).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("root") != str(Path(root).resolve()) \
            or not isinstance(d.get("cache_dir"), str):
        return None
    return Path(d["cache_dir"])


def remember_cache_dir(root: Path, cache_dir: Path) -> None:
    """Make ``cache_dir`` the one every later use of ``root`` opens (the default: forget)."""
    pointer = _cache_pointer(root)
    cache_dir = Path(cache_dir).resolve()
    if cache_dir == default_cache_dir(root).resolve():
        pointer.unlink(missing_ok=True)
        return
    pointer.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(pointer, "w", fsync=False) as fh:
        fh.write(json.dumps({"root": str(Path(root).resolve()), "cache_dir": str(cache_dir)}) + "\n")


def resolve_cache_dir(root: Path, cache_dir=None) -> tuple[Path, str]:
    """``(cache directory, how it was chosen)`` for ``root``: ``given`` (``cache_dir``),
    ``remembered`` (an earlier build with ``cache_dir``) or ``default``."""
    if cache_dir is not None:
        return Path(cache_dir), "given"
    remembered = remembered_cache_dir(root)
    if remembered is not None and (remembered / INDEX_FILE).is_file():
        return remembered, "remembered"
    return default_cache_dir(root), "default"


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
    per = {t.id: track_digest(t) for t in tracks}
    return _digest(sorted(per.items())), per


class Index:
    """Tracks of one dataset root plus groups and cached analysis. See module docstring."""

    def __init__(self, root: Path, layout: str, cache_dir: Path, tracks: list[Track],
                 groups: dict[str, list[str]]):
        self.root = Path(root)
        self.layout = layout
        self.cache_dir = Path(cache_dir)
        self.tracks = sorted(tracks, key=lambda t: t.id)
        self.groups = dict(groups)
        self._by_id = {t.id: t for t in self.tracks}
        self._energies: dict[str, np.ndarray] = {}
        self.cache = StemCache(self.cache_dir / "audio")
        self.variants = VariantCache(self.cache_dir / "variants")  # pitch/tempo (prepare --variants)
        self.taxonomy: dict | None = None  # {"targets": mapping, "unclaimed": {label: n}}
        # how the layout and the cache directory were chosen: "given", "detected" /
        # "remembered" (from an earlier build of the root), "default" (cache) or "loaded"
        self.layout_source = "given"
        self.cache_source = "given"
        #: files whose bytes differ from the previous index of this cache (set by a build)
        self.content_changed: list[str] = []

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, path: str | os.PathLike, layout: str | None = None, **kw) -> "Index":
        """Open a dataset root (build or reuse its cached index) or an ``index.jsonl`` file.

        ``layout``: the dataset layout; by default the one remembered from an earlier build of
        the root, else detected. Other keywords as :meth:`build`."""
        p = Path(path)
        if p.is_file() or p.name == INDEX_FILE:
            index = cls.load(p, **{k: v for k, v in kw.items()
                                    if k in ("refresh", "progress", "verify_content")})
            if layout is not None and layout != index.layout:
                raise IndexError_(f"{p}: this index was built with layout {index.layout!r}, not "
                                  f"{layout!r}; re-index the dataset root with --layout {layout}")
            return index
        return cls.build(p, layout=layout, **kw)

    @property
    def fingerprint(self) -> str:
        """Content fingerprint of the tracks (see :func:`fingerprint`): equal for the same
        songs wherever they live, different for other content or another encoding."""
        return fingerprint(self.tracks)[0]

    @classmethod
    def build(
        cls,
        root: str | os.PathLike,
        layout: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        groups: dict[str, list[str]] | None = None,
        workers: int | None = None,
        progress: bool = False,
        taxonomy=None,
        verify_content: bool = False,
    ) -> "Index":
        """Scan ``root``, analyse new/changed files, write the index; return it.

        ``taxonomy`` (a :class:`~stemforge.taxonomy.Taxonomy`, mapping or YAML path) renames and
        sums stems into targets. Nothing is written unless the whole dataset indexes cleanly.
        ``layout``, ``taxonomy`` and ``cache_dir`` default to what an earlier build of the same
        root used (then ``layout_source``/``cache_source`` say ``remembered``); a root never
        built before has its layout detected (``detected``) and the default cache directory.
        ``verify_content``: hash every file in full instead of trusting unchanged stamps
        (``stemforge index --verify-content``); ``index.content_changed`` lists the files whose
        bytes differ from the previous index.
        """
        from .indexing import build_index

        return build_index(cls, Path(root), layout, cache_dir, groups, workers, progress,
                           taxonomy, verify_content)

    @classmethod
    def load(cls, index_file: str | os.PathLike, refresh: bool = True,
             progress: bool = False, verify_content: bool = False) -> "Index":
        """Load ``index.jsonl``: rescan its root as :meth:`build` does (with its recorded layout,
        groups and taxonomy), or with ``refresh=False`` read it as recorded, raising if any
        file's stamp changed."""
        from .indexing import load_index

        return load_index(cls, Path(index_file), refresh, progress, verify_content)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.tracks)

    def __iter__(self):
        return iter(self.tracks)

    def __repr__(self) -> str:
        return (f"Index({self.root}, layout={self.layout}, tracks={len(self.tracks)}, "
                f"stems={self.stem_names})")

    @property
    def index_file(self) -> Path:
        return self.cache_dir / INDEX_FILE

    @property
    def stem_names(self) -> list[str]:
        return sorted({s for t in self.tracks for s in t.stems})

    def track(self, track_id: str) -> Track:
        try:
            return self._by_id[track_id]
        except KeyError:
            raise IndexError_(f"track {track_id!r} is not in the index of {self.root}") from None

    def splits(self) -> dict[str | None, list[Track]]:
        out: dict[str | None, list[Track]] = {}
        for t in self.tracks:
            out.setdefault(t.split, []).append(t)
        return out

    def subset(self, split: str | list[str] | None) -> "Index":
        """A view holding only tracks of the given split(s); None = all."""
        if split is None:
            return self
        want = {split} if isinstance(split, str) else set(split)
        unknown = want - {t.split for t in self.tracks}
        if unknown:
            have = sorted({str(t.split) for t in self.tracks})
            raise IndexError_(f"split(s) {sorted(unknown)} not in the index; it has {have}")
        sub = Index(self.root, self.layout, self.cache_dir,
                    [t for t in self.tracks if t.split in want], self.groups)
        sub._energies = self._energies
        sub.taxonomy = self.taxonomy
        sub.layout_source, sub.cache_source = self.layout_source, self.cache_source
        sub.cache = self.cache
        sub.variants = self.variants
        return sub

    def with_splits(self, splits: dict[str, str]) -> "Index":
        """A view holding only the tracks named in ``splits`` (track id -> split), relabelled
        with those splits (e.g. an experiment's train/valid/test partition). Shares the cache."""
        unknown = sorted(set(splits) - set(self._by_id))
        if unknown:
            raise IndexError_(f"track(s) {unknown[:3]} not in the index of {self.root}")
        tracks = [replace(t, split=splits[t.id]) for t in self.tracks if t.id in splits]
        sub = Index(self.root, self.layout, self.cache_dir, tracks, self.groups)
        sub._energies = self._energies
        sub.taxonomy = self.taxonomy
        sub.cache = self.cache
        sub.variants = self.variants
        return sub

    def members(self, name: str) -> list[str]:
        """Stems that make up ``name``: a group's members, or ``[name]`` for a stem."""
        if name in self.groups:
            return list(self.groups[name])
        if name in self.stem_names:
            return [name]
        raise IndexError_(
            f"{name!r} is neither a stem nor a group of this index "
            f"(stems: {', '.join(self.stem_names)}; groups: {', '.join(sorted(self.groups)) or '-'})"
        )

    def tracks_with(self, stem: str) -> list[Track]:
        return [t for t in self.tracks if stem in t.stems]

    # ------------------------------------------------------------------ audio
    def _stem(self, track_id: str, stem: str) -> tuple[Track, Stem]:
        t = self.track(track_id)
        if stem == "mixture" and t.mixture is not None and "mixture" not in t.stems:
            return t, t.mixture
        if stem not in t.stems:
            raise IndexError_(f"track {track_id!r} has no stem {stem!r} "
                              f"(it has {', '.join(t.stems)})")
        return t, t.stems[stem]

    def read(self, track_id: str, stem: str, start: Frames = 0,
             frames: Frames | None = None) -> np.ndarray:
        """Audio of a stem or group (members summed): float32 ``(channels, frames)``.

        Uses the StemCache memmap when the stem has been prepared, a partial file read otherwise.
        """
        t = self.track(track_id)
        if frames is None:
            frames = t.frames - start
        if start < 0 or frames < 0 or start + frames > t.frames:
            raise IndexError_(
                f"track {track_id!r}: window {start}..{start + frames} is outside 0..{t.frames}")
        names = [stem] if (stem in t.stems or stem == "mixture") else self.members(stem)
        out = None
        for name in names:
            if name not in t.stems and name != "mixture":
                continue  # group member this track lacks
            _, s = self._stem(track_id, name)
            a = self.read_stem(s, start, frames)
            out = a.copy() if out is None else out + a
        if out is None:
            raise IndexError_(f"track {track_id!r} has none of {names}")
        return out

    def read_stem(self, s: Stem, start: Frames, frames: Frames) -> np.ndarray:
        cached = self.cache.get(s.key)
        if cached is not None:
            return np.array(cached[:, start:start + frames], dtype=np.float32)
        if not s.extra_paths and s.channel is None:
            return io.read(s.path, start, frames, s.stream)
        parts = [io.read(p, start, frames, s.stream) for p in s.ref.paths]
        if s.channel is not None:
            parts = [p[s.channel:s.channel + 1] for p in parts]
        c = max(p.shape[0] for p in parts)
        total = np.zeros((c, frames), np.float32)
        for p in parts:
            total += p
        return total

    def read_mixture(self, track_id: str, start: Frames = 0, frames: Frames | None = None):
        """The real (mastered) mixture, which need not equal the stem sum."""
        t = self.track(track_id)
        if t.mixture is None:
            raise IndexError_(f"track {track_id!r} has no real mixture")
        frames = t.frames - start if frames is None else frames
        return self.read_stem(t.mixture, start, frames)

    def read_input(self, track_id: str, real: bool = True, start: Frames = 0,
                   frames: Frames | None = None) -> np.ndarray:
        """What a separator gets: the real mixture when the track has one (and ``real``), else
        the sum of all its stems (float64 sum, float32 result) ``(channels, frames)``."""
        t = self.track(track_id)
        if real and t.mixture is not None:
            return self.read_mixture(track_id, start, frames)
        frames = t.frames - start if frames is None else frames
        stems = [self.read(track_id, s, start, frames) for s in t.stems]
        return np.sum(stems, axis=0, dtype=np.float64).astype(np.float32)

    # ------------------------------------------------------------------ analysis
    def energies(self, track_id: str, stem: str) -> np.ndarray:
        """K-weighted sub-block energies, float64 ``(n_sub,)`` (see audio.loudness)."""
        _, s = self._stem(track_id, stem)
        return self._analysis(s.key, ".npy")

    def corrections(self, track_id: str, stem: str) -> np.ndarray:
        """Zero-state corrections, float64 ``(n_sub,)`` (``loudness.zero_state_corrections``)."""
        from .analyze import CORRECTIONS_SUFFIX

        _, s = self._stem(track_id, stem)
        return self._analysis(s.key, CORRECTIONS_SUFFIX)

    def _analysis(self, key: str, suffix: str) -> np.ndarray:
        """``analysis/<key><suffix>``, loaded once: a read-only plain-ndarray view of the memmap
        (the same buffer without the memmap subclass's per-slice hooks, and the type the
        loudness kernel takes)."""
        name = key + suffix
        a = self._energies.get(name)
        if a is None:
            path = self.cache_dir / "analysis" / name
            try:
                a = np.load(path, mmap_mode="r").view(np.ndarray)
            except FileNotFoundError:
                raise IndexError_(f"{path}: analysis missing; re-run `stemforge index "
                                  f"{self.root}`") from None
            self._energies[name] = a
        return a

    def loudness(self, track_id: str, stem: str, start: Frames, frames: Frames) -> LUFS:
        """Integrated loudness (LUFS) of an excerpt, from precomputed energies (-inf if silent)."""
        t, s = self._stem(track_id, stem)
        return loudness.excerpt_loudness(self.energies(track_id, stem), s.sample_rate, start,
                                         frames, self.corrections(track_id, stem))

    def active_fraction(self, track_id: str, stem: str, start: Frames, frames: Frames,
                        threshold_db: float = -60.0) -> float:
        t, s = self._stem(track_id, stem)
        return loudness.active_fraction(self.energies(track_id, stem), s.sample_rate, start,
                                        frames, threshold_db=threshold_db)

    def activity(self, track_id: str, stem: str, threshold_db: float = -60.0) -> np.ndarray:
        """Boolean activity mask of a stem, one entry per 100 ms window."""
        t, s = self._stem(track_id, stem)
        return loudness.activity_mask(self.energies(track_id, stem), s.sample_rate,
                                      threshold_db=threshold_db)

    # ------------------------------------------------------------------ serialisation
    def header(self) -> dict:
        return {"format": FORMAT, "version": __version__, "root": str(self.root.resolve()),
                "layout": self.layout, "groups": self.groups, "tracks": len(self.tracks),
                **({"taxonomy": self.taxonomy} if self.taxonomy is not None else {})}

    def save(self) -> Path:
        """Write ``index.jsonl`` atomically (temp file + rename)."""
        # no fsync: the index is a cache whose stamps are re-checked on load
        lines = [json.dumps(self.header(), allow_nan=False)]
        lines += [json.dumps(t.to_dict(), allow_nan=False) for t in self.tracks]
        text = "\n".join(lines) + "\n"
        try:
            if self.index_file.read_text() == text:
                return self.index_file  # unchanged: no write (a read-only cache stays usable)
        except (OSError, UnicodeDecodeError):
            pass
        with atomic_file(self.index_file, "w", fsync=False) as fh:
            fh.write(text)
        return self.index_file
