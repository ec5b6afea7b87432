"""MedleyDB: ``<root>/Audio/<Track>/{<Track>_MIX.wav, <Track>_STEMS/<Track>_STEM_NN.wav,
<Track>_METADATA.yaml}``.

The metadata YAML lists the stems (``stems: {S01: {filename, instrument, component}, ...}``),
the stem folder (``stem_dir``) and the mix (``mix_filename``). Each stem is named after its
instrument label (e.g. ``electric bass``), which is also its ``SourceRef.label`` so a taxonomy
can map labels to targets; two stems of one track with the same label are summed into one.
The metadata may also live in ``<root>/Metadata/<Track>_METADATA.yaml`` (as in the ``medleydb``
package), and ``<root>`` may be the ``Audio`` folder itself. There is no official split.
``meta`` keeps the stem ids per label, their components, and artist/title/genre/has_bleed.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LayoutError
from .base import Layout, SourceRef, TrackEntry, register, subdirs
from .metafiles import existing, field, read_yaml


def _base(root: Path) -> Path:
    return root / "Audio" if (root / "Audio").is_dir() else root


def _track_dirs(root: Path) -> list[Path]:
    return [t for t in subdirs(_base(root))
            if (t / f"{t.name}_STEMS").is_dir() or (t / f"{t.name}_METADATA.yaml").is_file()]


def _metadata_file(root: Path, tdir: Path) -> Path:
    for p in (tdir / f"{tdir.name}_METADATA.yaml", root / "Metadata" / f"{tdir.name}_METADATA.yaml"):
        if p.is_file():
            return p
    raise LayoutError(f"{tdir}: MedleyDB track has no {tdir.name}_METADATA.yaml "
                      f"(looked in the track folder and in {root / 'Metadata'})")


def _label(meta: Path, sid: str, instrument) -> tuple[str, list[str]]:
    if isinstance(instrument, str) and instrument.strip():
        return instrument.strip(), [instrument.strip()]
    if isinstance(instrument, list) and instrument and all(isinstance(x, str) for x in instrument):
        return instrument[0].strip(), [x.strip() for x in instrument]
    raise LayoutError(f"{meta}: metadata 'stems.{sid}.instrument' should be a label string")


def read_track(root: Path, tdir: Path) -> TrackEntry:
    meta_path = _metadata_file(root, tdir)
    meta = read_yaml(meta_path)
    stems_meta = field(meta_path, meta, "stems", dict)
    if not stems_meta:
        raise LayoutError(f"{meta_path}: metadata 'stems' is empty")
    stem_dir = tdir / str(meta.get("stem_dir") or f"{tdir.name}_STEMS")
    files: dict[str, list[str]] = {}
    ids: dict[str, list[str]] = {}
    components: dict[str, str] = {}
    instruments: dict[str, list[str]] = {}
    for sid in sorted(stems_meta):
        s = stems_meta[sid]
        if not isinstance(s, dict):
            raise LayoutError(f"{meta_path}: metadata 'stems.{sid}' should be a mapping")
        fname = field(meta_path, s, "filename", str, f"stems.{sid}")
        label, all_labels = _label(meta_path, sid, s.get("instrument"))
        path = existing(meta_path, stem_dir / fname, f"stem {sid}")
        files.setdefault(label, []).append(str(path))
        ids.setdefault(label, []).append(str(sid))
        instruments[str(sid)] = all_labels
        if s.get("component"):
            components[str(sid)] = str(s["component"])
    stems = {label: SourceRef(paths[0], label=label, extra_paths=tuple(paths[1:]))
             for label, paths in files.items()}
    mix_name = meta.get("mix_filename") or f"{tdir.name}_MIX.wav"
    mix = tdir / str(mix_name)
    if meta.get("mix_filename") and not mix.is_file():
        existing(meta_path, mix, "mix")
    info = {k: meta[k] for k in ("artist", "title", "genre", "has_bleed", "instrumental")
            if k in meta}
    return TrackEntry(
        name=tdir.name, split=None, stems=stems,
        mixture=SourceRef(str(mix)) if mix.is_file() else None,
        meta={**info, "stem_ids": ids, "components": components, "instruments": instruments})


def scan(root: Path) -> list[TrackEntry]:
    return [read_track(root, t) for t in _track_dirs(root)]


def detect(root: Path) -> bool:
    return bool(_track_dirs(root))


LAYOUT = register(Layout(
    name="medleydb", scan=scan, detect=detect,
    description="MedleyDB: <root>/Audio/<Track>/{<Track>_MIX.wav, <Track>_STEMS/, "
                "<Track>_METADATA.yaml}",
))
