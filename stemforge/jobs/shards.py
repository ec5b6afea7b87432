"""``export-shards``: pack a generated set into WebDataset-style tar shards for streaming.

``DIR/shards/shard-000000.tar``, ``shard-000001.tar``, ... each hold ``per_shard`` consecutive
items; an item's members share its id as key, the WebDataset convention (key = name up to the
first dot), in a fixed order::

    000000.spec.json  000000.mixture.wav  000000.vocals.wav  000000.accompaniment.wav
    000001.spec.json  ...

The tar bytes are a function of the set alone (member order fixed, mtime 0, uid/gid 0, no user
names, ustar format), so two exports of one set are byte-identical. Each shard is written to a
hidden temp file and renamed (never a partial shard under a final name); ``shards.json`` (shard
names, item ranges, sizes, sha256) is written last. Shards left over from an export with another
``per_shard`` are removed.
"""
from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from ..atomic import atomic_file, write_text_atomic
from ..mixing.spec import MixSpec
from .generate import io_error
from .layout import SPEC_FILE, JobError, item_audio_names, item_dir, item_id
from .manifest import load_complete

SHARDS_DIR = "shards"
SHARDS_INDEX = "shards.json"


def shard_name(k: int) -> str:
    return f"shard-{k:06d}.tar"


def _members(out: Path, i: int, fmt: str) -> list[tuple[str, Path]]:
    """(name in the tar, file on disk) for item ``i``: spec first, then mixture and targets."""
    d, iid = item_dir(out, i), item_id(i)
    spec = MixSpec.load(d / SPEC_FILE)
    files = [SPEC_FILE, *item_audio_names(spec, fmt)]
    return [(f"{iid}.{name}", d / name) for name in files]


class _HashWriter:
    """File wrapper that hashes what tarfile writes through it."""

    def __init__(self, fh):
        self.fh, self.sha = fh, hashlib.sha256()

    def write(self, b) -> int:
        self.sha.update(b)
        return self.fh.write(b)

    def tell(self) -> int:
        return self.fh.tell()


def _write_shard(path: Path, members: list[tuple[str, Path]]) -> dict:
    with atomic_file(path, "wb") as fh:
        hw = _HashWriter(fh)
        with tarfile.open(fileobj=hw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, src in members:
                info = tarfile.TarInfo(name)
                info.size = src.stat().st_size
                info.mtime, info.mode, info.uid, info.gid = 0, 0o644, 0, 0
                info.uname = info.gname = ""
                with open(src, "rb") as f:
                    tar.addfile(info, f)
        size = fh.tell()
    return {"name": path.name, "bytes": size, "sha256": hw.sha.hexdigest()}


def export_shards(out, *, per_shard: int = 1000, dest=None, progress: bool = False) -> list[Path]:
    """Write the shards of the set in ``out`` to ``dest`` (default ``out/shards``); every item
    must be complete (checked before anything is written). Returns the shard paths.
    ``progress``: progress bar or lines on stderr."""
    from ..progress import progress as progress_bar

    out = Path(out)
    if not isinstance(per_shard, int) or per_shard < 1:
        raise JobError(f"--per-shard {per_shard!r}: expected a positive number of items")
    job = load_complete(out)
    items = []
    with progress_bar(job.n, "export-shards (read specs)", "item", enabled=progress) as bar:
        for i in range(job.n):
            items.append(_members(out, i, job.format))
            bar.update(1)
    for i, members in enumerate(items):
        for name, src in members:
            if not src.is_file():
                raise JobError(f"{out}: item {item_id(i)} lacks {src.name}; repair it with "
                               "`stemforge regenerate` first. Nothing was written")
    dest = Path(dest) if dest is not None else out / SHARDS_DIR
    shards, paths = [], []
    try:
        dest.mkdir(parents=True, exist_ok=True)
        bar = progress_bar(job.n, "export-shards", "item", enabled=progress)
        for k, start in enumerate(range(0, job.n, per_shard)):
            group = items[start:start + per_shard]
            path = dest / shard_name(k)
            meta = _write_shard(path, [m for members in group for m in members])
            shards.append({**meta, "first": start, "count": len(group)})
            paths.append(path)
            bar.update(len(group))
        bar.close()
        keep = {p.name for p in paths}
        for p in dest.glob("shard-*.tar"):
            if p.name not in keep:
                p.unlink()
        index = {"kind": "stemforge-shards/1", "items": job.n, "per_shard": per_shard,
                 "format": job.format, "recipe_hash": job.recipe_hash, "seed": job.seed,
                 "epoch": job.epoch, "shards": shards}
        write_text_atomic(dest / SHARDS_INDEX, json.dumps(index, indent=1, allow_nan=False) + "\n")
    except OSError as e:
        raise io_error(e, dest) from e
    return paths
