"""``stemforge prepare``: decode every stem exactly once into the StemCache.

Parallel over tracks (a process pool); a stem.mp4 is demuxed once for all its streams. Stems
already in the cache (same source key) are skipped, so an interrupted prepare resumes.
Each ``.npy`` is written atomically, so a crash never leaves a truncated cache entry.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from .analyze import decode_source
from .audio.cache import StemCache
from .errors import StemforgeError


@dataclass
class PrepareStats:
    tracks: int
    stems_written: int
    stems_skipped: int
    bytes_written: int


def _prepare_track(folder: str, stems: list[tuple[str, object]]) -> tuple[int, int]:
    cache = StemCache(folder)
    mp4: dict = {}
    written = nbytes = 0
    for key, ref in stems:
        if cache.has(key):
            continue
        audio, _ = decode_source(ref, mp4)
        nbytes += cache.put(key, audio).stat().st_size
        written += 1
    return written, nbytes


def prepare(index, workers: int | None = None, progress: bool = False) -> PrepareStats:
    """Decode all stems (and real mixtures) of ``index`` into ``index.cache``."""
    from tqdm import tqdm

    jobs, skipped = [], 0
    for t in index.tracks:
        stems = list(t.stems.values()) + ([t.mixture] if t.mixture else [])
        todo = [(s.key, s.ref) for s in stems if not index.cache.has(s.key)]
        skipped += len(stems) - len(todo)
        if todo:
            jobs.append((t, todo))
    written = nbytes = 0
    folder = str(index.cache.folder)
    bar = tqdm(total=len(jobs), desc="preparing", unit="track", disable=None if progress else True)
    workers = workers or min(os.cpu_count() or 1, max(len(jobs), 1))
    try:
        if workers <= 1 or len(jobs) <= 1:
            for _, todo in jobs:
                w, b = _prepare_track(folder, todo)
                written, nbytes = written + w, nbytes + b
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = [pool.submit(_prepare_track, folder, todo) for _, todo in jobs]
                for (t, _), f in zip(jobs, futs):
                    try:
                        w, b = f.result()
                    except StemforgeError as e:
                        raise type(e)(f"track '{t.id}': {e}") from e
                    written, nbytes = written + w, nbytes + b
                    bar.update(1)
    finally:
        bar.close()
    index.cache.forget()
    return PrepareStats(len(index.tracks), written, skipped, nbytes)
