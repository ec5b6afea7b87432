"""Slakh2100 (flac redux, also the original and BabySlakh):
``<root>/{train,validation,test,omitted}/TrackNNNNN/{mix.flac, stems/SNN.flac, metadata.yaml}``.

``metadata.yaml`` lists every stem (``stems: {S00: {inst_class, program_num, is_drum,
audio_rendered, ...}}``) and the stem folder (``audio_dir``). A stem listed with
``audio_rendered: false`` has no audio: it is skipped and a note says so. Each stem is named
after its ``inst_class`` (e.g. ``Bass``, also its label); stems of one class are summed.
Audio is mono. Split: folder name, with ``validation`` -> ``valid``; a root holding track
folders directly (BabySlakh) has no split. ``meta["stems"]`` keeps each rendered stem's
program number and drum flag.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LayoutError
from .base import Layout, SourceRef, TrackEntry, register, subdirs
from .metafiles import existing, field, read_yaml

SPLITS = {"train": "train", "validation": "valid", "test": "test", "omitted": "omitted"}
SUFFIXES = (".flac", ".wav")


def _is_track(d: Path) -> bool:
    return (d / "metadata.yaml").is_file() and (
        (d / "stems").is_dir() or any((d / f"mix{s}").is_file() for s in SUFFIXES))


def _track_dirs(root: Path) -> list[tuple[str | None, Path]]:
    out = [(None, t) for t in subdirs(root) if _is_track(t)]
    for folder in SPLITS:
        if (root / folder).is_dir():
            out += [(folder, t) for t in subdirs(root / folder) if _is_track(t)]
    return out


def _audio(meta: Path, folder: Path, stem_id: str) -> Path:
    for s in SUFFIXES:
        if (folder / f"{stem_id}{s}").is_file():
            return folder / f"{stem_id}{s}"
    return existing(meta, folder / f"{stem_id}.flac", f"rendered stem {stem_id}")


def read_track(folder: str | None, tdir: Path) -> TrackEntry:
    meta_path = tdir / "metadata.yaml"
    meta = read_yaml(meta_path)
    stems_meta = field(meta_path, meta, "stems", dict)
    audio_dir = tdir / str(meta.get("audio_dir") or "stems")
    files: dict[str, list[str]] = {}
    info: dict[str, dict] = {}
    notes = []
    for sid in sorted(stems_meta):
        s = stems_meta[sid]
        if not isinstance(s, dict):
            raise LayoutError(f"{meta_path}: metadata 'stems.{sid}' should be a mapping")
        label = field(meta_path, s, "inst_class", str, f"stems.{sid}")
        rendered = s.get("audio_rendered", True)
        if not isinstance(rendered, bool):
            raise LayoutError(f"{meta_path}: metadata 'stems.{sid}.audio_rendered' should be "
                              f"true or false, got {rendered!r}")
        if not rendered:
            notes.append(f"stem {sid} ({label}) skipped: audio_rendered is false in metadata.yaml")
            continue
        files.setdefault(label, []).append(str(_audio(meta_path, audio_dir, str(sid))))
        info[str(sid)] = {"inst_class": label, "program_num": s.get("program_num"),
                          "is_drum": s.get("is_drum")}
    if not files:
        raise LayoutError(f"{meta_path}: no stem has rendered audio")
    mix = next((tdir / f"mix{s}" for s in SUFFIXES if (tdir / f"mix{s}").is_file()), None)
    return TrackEntry(
        name=tdir.name, split=SPLITS.get(folder) if folder else None,
        stems={lb: SourceRef(p[0], label=lb, extra_paths=tuple(p[1:])) for lb, p in files.items()},
        mixture=SourceRef(str(mix)) if mix else None, folder=folder or "",
        meta={"stems": info}, notes=notes)


def scan(root: Path) -> list[TrackEntry]:
    return [read_track(folder, t) for folder, t in _track_dirs(root)]


def detect(root: Path) -> bool:
    return bool(_track_dirs(root))


LAYOUT = register(Layout(
    name="slakh", scan=scan, detect=detect,
    description="Slakh2100: <root>/{train,validation,test}/TrackNNNNN/{mix.flac, stems/SNN.flac, "
                "metadata.yaml}",
))
