"""MoisesDB: ``<root>/<provider>/<song id>/{data.json, <stem type>/<source id>.<ext>}``.

``data.json`` holds ``song``, ``artist``, ``genre`` and ``stems``: a list of
``{stemName, tracks: [{id, trackType, extension, has_bleed}]}``; each source file lives at
``<song folder>/<stemName>/<id>.<extension>``. Every source file of one stem type is summed into
that stem (``SourceRef.extra_paths``), named and labelled by the stem type (``bass``,
``other_keys``...). There is no mixture file and no official split. Song folders are found up to
three levels below ``<root>`` (so ``<root>`` may be the ``moisesdb_v0.1`` folder, a provider
folder, or their parent). ``meta`` keeps song/artist/genre and each stem's source track types.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import LayoutError
from .base import Layout, SourceRef, TrackEntry, register, subdirs
from .metafiles import existing, field, read_json

MAX_DEPTH = 3


def _song_dirs(root: Path) -> list[Path]:
    out, level = [], [root]
    for _ in range(MAX_DEPTH):
        nxt = []
        for d in level:
            for s in subdirs(d):
                (out if (s / "data.json").is_file() else nxt).append(s)
        level = nxt
    return sorted(out)


def read_song(root: Path, sdir: Path) -> TrackEntry:
    meta_path = sdir / "data.json"
    data = read_json(meta_path)
    stems_meta = field(meta_path, data, "stems", list)
    files: dict[str, list[str]] = {}
    types: dict[str, list[str]] = {}
    for i, stem in enumerate(stems_meta):
        where = f"stems[{i}]"
        if not isinstance(stem, dict):
            raise LayoutError(f"{meta_path}: metadata '{where}' should be an object")
        name = field(meta_path, stem, "stemName", str, where)
        tracks = field(meta_path, stem, "tracks", list, where)
        for j, t in enumerate(tracks):
            tw = f"{where}.tracks[{j}]"
            if not isinstance(t, dict):
                raise LayoutError(f"{meta_path}: metadata '{tw}' should be an object")
            tid = field(meta_path, t, "id", str, tw)
            ext = field(meta_path, t, "extension", str, tw)
            path = existing(meta_path, sdir / name / f"{tid}.{ext}", f"{name} source")
            files.setdefault(name, []).append(str(path))
            types.setdefault(name, []).append(str(t.get("trackType", "")))
    if not files:
        raise LayoutError(f"{meta_path}: metadata lists no source files")
    rel = os.path.relpath(sdir.parent, root)
    return TrackEntry(
        name=sdir.name, split=None,
        stems={n: SourceRef(p[0], label=n, extra_paths=tuple(p[1:])) for n, p in files.items()},
        folder="" if rel == "." else Path(rel).as_posix(),
        meta={**{k: data[k] for k in ("song", "artist", "genre") if k in data},
              "sources": types})


def scan(root: Path) -> list[TrackEntry]:
    return [read_song(root, s) for s in _song_dirs(root)]


def detect(root: Path) -> bool:
    return bool(_song_dirs(root))


LAYOUT = register(Layout(
    name="moisesdb", scan=scan, detect=detect,
    description="MoisesDB: <root>/<provider>/<song id>/{data.json, <stem>/<source id>.wav}",
))
