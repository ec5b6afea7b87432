"""``stemforge prepare``: decode every stem exactly once into the StemCache.

Parallel over tracks (a process pool); a stem.mp4 is demuxed once for all its streams. Stems
already in the cache (same source key) are skipped, so an interrupted prepare resumes.
Each ``.npy`` is written atomically, so a crash never leaves a truncated cache entry.

With ``variants`` (``stemforge prepare --variants "semitones=-2,-1,0,1,2 tempo=0.9,1,1.1"``) it
then renders every stem at every non-identity grid point through Rubber Band R3 (the ``hq``
engine) into ``<cache>/variants/`` with the variant's K-weighted energies, for recipes whose
pitch/tempo steps use ``mode: cached`` (grids and keys: :mod:`stemforge.augment.grid`; reads at
render time: :mod:`stemforge.mixing.sources`). Parallel over
stems; present variants (same stem content key, point and engine) are skipped.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from .analyze import decode_source
from .atomic import write_failure
from .audio.cache import StemCache, VariantCache
from .errors import StemforgeError


@dataclass
class PrepareStats:
    tracks: int
    stems_written: int
    stems_skipped: int
    bytes_written: int
    variants_written: int = 0
    variants_skipped: int = 0
    variant_bytes: int = 0


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


def _prepare_variants(folder: str, vfolder: str, key: str, ref, sr: int,
                      todo: list[tuple[str, float, float]]) -> tuple[int, int]:
    """Render one stem's missing variants ``todo`` = [(vkey, semitones, tempo), ...]."""
    audio = StemCache(folder).get(key)
    if audio is None:
        audio, _ = decode_source(ref, {})
    vc = VariantCache(vfolder)
    nbytes = 0
    for vkey, s, t in todo:
        y, e = render_variant(audio, sr, s, t)
        nbytes += vc.put_variant(vkey, y, e)
    return len(todo), nbytes


def render_variant(audio: np.ndarray, sample_rate: int, semitones: float, tempo: float):
    """A whole stem's variant: float32 ``(C, round(T / tempo))`` through Rubber Band R3
    (exactly the ``hq`` pitch/tempo mode's call) and its K-weighted sub-block energies float64."""
    from .audio import dsp, loudness

    y = np.ascontiguousarray(dsp.rubberband(np.ascontiguousarray(audio, np.float32), sample_rate,
                                            tempo, semitones, True), dtype=np.float32)
    return y, loudness.block_energies(y, sample_rate)


def prepare(index, workers: int | None = None, progress: bool = False,
            variants=None) -> PrepareStats:
    """Decode all stems (and real mixtures) of ``index`` into ``index.cache``; with
    ``variants`` (a SPEC string, mapping or :class:`~stemforge.augment.grid.VariantGrid`)
    also render the stems' pitch/tempo variants into ``index.variants``. A bad ``variants``
    raises VariantError before anything is written. A failed write (a full disk, a read-only
    cache) raises StemforgeError naming the folder; every entry written before is complete
    (atomic writes), so a rerun resumes."""
    made = [f for f in (index.cache.folder, index.variants.folder) if not f.exists()]
    try:
        return _prepare(index, workers, progress, variants)
    except OSError as e:
        for folder in made:  # folders this call made and left empty
            try:
                folder.rmdir()
            except OSError:
                pass
        what = f" while writing {e.filename}" if e.filename else ""
        raise StemforgeError(f"{index.cache.folder.parent}: stem cache {write_failure(e)}{what}; "
                             "the entries written before are complete and kept, so fix it and "
                             "rerun to resume") from e


def _prepare(index, workers, progress, variants) -> PrepareStats:
    from .progress import progress as progress_bar

    grid = None
    if variants is not None:
        from .augment.grid import VariantGrid, parse_grid

        grid = variants if isinstance(variants, VariantGrid) else parse_grid(variants)

    jobs, skipped = [], 0
    for t in index.tracks:
        stems = list(t.stems.values()) + ([t.mixture] if t.mixture else [])
        todo = [(s.key, s.ref) for s in stems if not index.cache.has(s.key)]
        skipped += len(stems) - len(todo)
        if todo:
            jobs.append((t, todo))
    written = nbytes = 0
    folder = str(index.cache.folder)
    bar = progress_bar(len(jobs), "prepare", "track", enabled=progress)
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
    stats = PrepareStats(len(index.tracks), written, skipped, nbytes)
    if grid is not None:
        _variants(index, grid, workers, progress, stats)
    return stats


def _variants(index, grid, workers, progress: bool, stats: PrepareStats) -> None:
    from .augment.grid import variant_key
    from .progress import progress as progress_bar

    jobs, total = [], 0
    for t in index.tracks:
        for name, s in t.stems.items():
            todo = [(k, a, b) for a, b in grid.points()
                    if not index.variants.has(k := variant_key(s.key, a, b))]
            stats.variants_skipped += len(grid.points()) - len(todo)
            if todo:
                jobs.append((t, name, s, todo))
                total += len(todo)
    folder, vfolder = str(index.cache.folder), str(index.variants.folder)
    bar = progress_bar(total, "prepare --variants", "variant", enabled=progress)
    workers = workers or min(os.cpu_count() or 1, max(len(jobs), 1))
    args = [(folder, vfolder, s.key, s.ref, s.sample_rate, todo) for _, _, s, todo in jobs]

    def done(job, w: int, b: int) -> None:
        stats.variants_written += w
        stats.variant_bytes += b
        bar.update(w)

    try:
        if workers <= 1 or len(jobs) <= 1:
            for job, a in zip(jobs, args):
                try:
                    done(job, *_prepare_variants(*a))
                except StemforgeError as e:
                    raise type(e)(f"track '{job[0].id}' stem '{job[1]}': {e}") from e
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = [pool.submit(_prepare_variants, *a) for a in args]
                for job, f in zip(jobs, futs):
                    try:
                        done(job, *f.result())
                    except StemforgeError as e:
                        raise type(e)(f"track '{job[0].id}' stem '{job[1]}': {e}") from e
    finally:
        bar.close()
    index.variants.forget()
