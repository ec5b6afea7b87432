"""Which datasets the doctor checks, and how it lists their tracks.

A :class:`DatasetRef` is small plain data (name, root, layout, taxonomy mapping) that Dask
workers receive and re-scan themselves. :func:`resolve` turns what the user gave (a dataset
root or an ``index.jsonl``, with an optional name) into one: an index file, or the cached index
of a root (``$STEMFORGE_CACHE_DIR``/default cache location), supplies the layout and taxonomy
the dataset was indexed with, so the doctor sees the same track ids and stem names as the
index (and its exclusion list applies to it); otherwise the layout is detected.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .. import layouts
from ..layouts.base import TrackEntry
from .findings import DoctorError

log = logging.getLogger("stemforge")


@dataclass(frozen=True)
class DatasetRef:
    """One dataset to check: ``name`` (unique in a run), absolute ``root``, layout name, and
    the taxonomy mapping its index applies (or None)."""

    name: str
    root: str
    layout: str
    taxonomy: tuple | None = None   # the mapping as a tuple of (target, labels) pairs

    def taxonomy_mapping(self) -> dict | None:
        if self.taxonomy is None:
            return None
        return {t: (labels if isinstance(labels, str) else list(labels))
                for t, labels in self.taxonomy}

    def scan(self) -> list[TrackEntry]:
        """The dataset's tracks as its layout lists them (after the taxonomy), sorted by id."""
        from ..taxonomy import Taxonomy

        entries = layouts.get(self.layout).scan(Path(self.root))
        tax = Taxonomy.coerce(self.taxonomy_mapping())
        if tax is not None:
            entries, _ = tax.apply_all(entries)
        return sorted(entries, key=lambda e: e.id)

    def to_dict(self) -> dict:
        return {"name": self.name, "root": self.root, "layout": self.layout,
                "taxonomy": self.taxonomy_mapping()}


def _frozen(mapping: dict | None) -> tuple | None:
    if not mapping:
        return None
    return tuple((t, v if isinstance(v, str) else tuple(v)) for t, v in mapping.items())


def _index_header(path: Path) -> dict:
    try:
        with open(path) as fh:
            header = json.loads(fh.readline())
    except (OSError, ValueError) as e:
        raise DoctorError(f"{path}: not a readable stemforge index ({e})") from e
    if not isinstance(header, dict) or header.get("format") != "stemforge-index/1":
        raise DoctorError(f"{path}: not a stemforge index (bad or missing header line)")
    return header


def resolve(path: str | os.PathLike, name: str | None = None, layout: str | None = None,
            taxonomy=None, cache: str | os.PathLike | None = None) -> DatasetRef:
    """A :class:`DatasetRef` for a dataset root or an ``index.jsonl`` (see the module doc).
    ``layout``/``taxonomy`` override what an index recorded; ``cache``: the root's index cache
    directory (default: the one remembered for the root, else the default one)."""
    from ..cachedirs import INDEX_FILE, resolve_cache_dir
    from ..taxonomy import Taxonomy

    p = Path(path)
    header = None
    if p.is_file() or p.name == INDEX_FILE:
        if not p.is_file():
            raise DoctorError(f"{p}: index file not found")
        header = _index_header(p)
        root = Path(header["root"])
    else:
        root = layouts.check_root(p).resolve()
        cached = resolve_cache_dir(root, cache)[0] / INDEX_FILE
        if cached.is_file():
            try:
                header = _index_header(cached)
            except DoctorError as e:  # said, then the dataset is read as if never indexed
                log.info("%s; its layout is not used", e)
    if layout is None and header:
        layout = header["layout"]
    elif layout is None:
        layout = layouts.detect(root).name
        log.info("layout: %s (detected; --layout to override)", layout)
    else:
        layouts.get(layout)
    tax = taxonomy
    if tax is None and header and header.get("taxonomy"):
        tax = header["taxonomy"].get("targets")
    mapping = Taxonomy.coerce(tax).to_mapping() if tax is not None else None
    return DatasetRef(name or root.name, str(root), layout, _frozen(mapping))
