"""The Index: a cached manifest of a dataset's tracks, stems and per-stem analysis.

``Index.open(root_or_index_file)`` is the one entry point most code needs: it scans the dataset
with its layout reader, re-analyses only files whose (path, size, mtime) changed, and stores the
result in a cache directory::

    <cache_dir>/index.jsonl        header line + one line per track (atomic rewrite)
    <cache_dir>/analysis/<key>.npy K-weighted 10 ms sub-block energies per stem
    <cache_dir>/analysis/<key>.zs1.npy  their zero-state corrections (loudness look-ups)
    <cache_dir>/audio/<key>.npy    decoded stems (StemCache, written by ``stemforge prepare``)
    <cache_dir>/variants/<vkey>.npy  pitch/tempo variants (``stemforge prepare --variants``)

The default cache directory is ``$STEMFORGE_CACHE_DIR`` (or ``~/.cache/stemforge``) /
``<root name>-<hash of the absolute root>``. Loading an index file re-checks every file's stamp,
so an index is never silently stale: changed files are re-analysed (or, with
``refresh=False``, an error names them).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
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
        d = asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Track":
        d = dict(d)
        d["stems"] = {k: Stem(**{**v, "extra_paths": tuple(v.get("extra_paths", ()))})
                      for k, v in d["stems"].items()}
        if d.get("mixture"):
            m = d["mixture"]
            d["mixture"] = Stem(**{**m, "extra_paths": tuple(m.get("extra_paths", ()))})
        return cls(**d)


def default_cache_dir(root: Path) -> Path:
    base = Path(os.environ.get("STEMFORGE_CACHE_DIR") or Path.home() / ".cache" / "stemforge")
    h = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:10]
    return base / f"{Path(root).resolve().name}-{h}"


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

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, path: str | os.PathLike, **kw) -> "Index":
        """Open a dataset root (build or reuse its cached index) or an ``index.jsonl`` file."""
        p = Path(path)
        if p.is_file() or p.name == INDEX_FILE:
            return cls.load(p, **{k: v for k, v in kw.items() if k in ("refresh", "progress")})
        return cls.build(p, **kw)

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
    ) -> "Index":
        """Scan ``root``, analyse new/changed files, write the index; return it.

        ``taxonomy`` (a :class:`~stemforge.taxonomy.Taxonomy`, mapping or YAML path) renames and
        sums stems into targets. Nothing is written unless the whole dataset indexes cleanly.
        """
        from .indexing import build_index

        return build_index(cls, Path(root), layout, cache_dir, groups, workers, progress,
                           taxonomy)

    @classmethod
    def load(cls, index_file: str | os.PathLike, refresh: bool = True,
             progress: bool = False) -> "Index":
        """Load ``index.jsonl``; re-check file stamps (rebuild changed parts, or raise)."""
        from .indexing import load_index

        return load_index(cls, Path(index_file), refresh, progress)

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
        with atomic_file(self.index_file, "w", fsync=False) as fh:
            fh.write(json.dumps(self.header()) + "\n")
            for t in self.tracks:
                fh.write(json.dumps(t.to_dict()) + "\n")
        return self.index_file
