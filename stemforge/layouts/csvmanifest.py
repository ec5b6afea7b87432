"""A CSV manifest for any other dataset: ``<root>/<name>.csv`` with a header row
``track,stem,path[,split][,label][,channel]``.

One row per stem file. ``path`` is relative to the CSV's folder (or absolute). A stem named
``mixture`` is the track's real mixture. Several rows with the same track and stem are summed
into that stem. ``split`` (optional) must be the same on every row of a track; ``label`` is the
instrument label a taxonomy matches (default: the stem name); ``channel`` takes one channel of
the file as a mono stem. Exactly one CSV with that header may sit at the top of ``<root>``.
Track ids are ``<split>/<track>`` (or ``<track>`` without a split).
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..errors import LayoutError
from .base import Layout, SourceRef, TrackEntry, register

REQUIRED = ("track", "stem", "path")
OPTIONAL = ("split", "label", "channel")


def _header(path: Path) -> list[str] | None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            first = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return [c.strip().lower() for c in first] if first else None


def manifests(root: Path) -> list[Path]:
    """Top-level CSV files of ``root`` whose header has track, stem and path columns."""
    return sorted(p for p in root.glob("*.csv")
                  if p.is_file() and set(REQUIRED) <= set(_header(p) or []))


def _rows(path: Path):
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [c.strip().lower() for c in next(reader)]
            unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
            if unknown:
                raise LayoutError(f"{path}: unknown column(s) {', '.join(unknown)}; expected "
                                  f"{','.join(REQUIRED)}[,{'][,'.join(OPTIONAL)}]")
            for line, row in enumerate(reader, start=2):
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise LayoutError(f"{path}:{line}: {len(row)} fields, the header has "
                                      f"{len(header)}")
                yield line, {k: v.strip() for k, v in zip(header, row)}
    except (UnicodeDecodeError, csv.Error) as e:
        raise LayoutError(f"{path}: malformed CSV ({e})") from e


def read_manifest(path: Path) -> list[TrackEntry]:
    tracks: dict[str, dict] = {}
    for line, row in _rows(path):
        where = f"{path}:{line}"
        empty = [k for k in REQUIRED if not row[k]]
        if empty:
            raise LayoutError(f"{where}: empty {', '.join(empty)}")
        split = row.get("split") or None
        channel = None
        if row.get("channel"):
            if not row["channel"].isdigit():
                raise LayoutError(f"{where}: channel should be a channel number (0 = left), "
                                  f"got {row['channel']!r}")
            channel = int(row["channel"])
        audio = Path(row["path"])
        audio = audio if audio.is_absolute() else path.parent / audio
        if not audio.is_file():
            raise LayoutError(f"{where}: lists {audio}, which does not exist")
        t = tracks.setdefault(row["track"], {"split": split, "stems": {}, "line": line})
        if t["split"] != split:
            raise LayoutError(f"{where}: track {row['track']!r} has split {split!r} here but "
                              f"{t['split']!r} on line {t['line']}")
        prev = t["stems"].get(row["stem"])
        if prev is not None and prev.channel != channel:
            raise LayoutError(f"{where}: stem {row['stem']!r} of track {row['track']!r} mixes "
                              "channel selections; summed rows must use the same channel")
        paths = (*prev.paths, str(audio)) if prev else (str(audio),)
        t["stems"][row["stem"]] = SourceRef(paths[0], label=row.get("label") or None,
                                            extra_paths=paths[1:], channel=channel)
    out = []
    for name, t in tracks.items():
        stems = dict(t["stems"])
        mixture = stems.pop("mixture", None)
        if not stems:
            raise LayoutError(f"{path}: track {name!r} lists only a mixture, no stems")
        out.append(TrackEntry(name=name, split=t["split"], stems=stems, mixture=mixture,
                              folder=t["split"] or ""))
    return out


def scan(root: Path) -> list[TrackEntry]:
    found = manifests(root)
    if not found:
        raise LayoutError(f"{root}: no CSV manifest with a {','.join(REQUIRED)} header")
    if len(found) > 1:
        raise LayoutError(f"{root}: several CSV manifests ({', '.join(p.name for p in found)}); "
                          "keep one")
    return read_manifest(found[0])


def detect(root: Path) -> bool:
    return bool(manifests(root))


LAYOUT = register(Layout(
    name="csv", scan=scan, detect=detect,
    description="CSV manifest: <root>/<name>.csv with columns track,stem,path[,split]"
                "[,label][,channel]",
))
