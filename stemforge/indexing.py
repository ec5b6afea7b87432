"""Building and loading the Index (incremental, atomic). Used by ``Index.build``/``Index.load``.

Incremental rule: a stem is re-analysed only when its source key (every file's absolute path,
size and mtime, plus the stream index) is not in the previous index of the same cache
directory. Re-indexing an unchanged dataset therefore only lists folders and stats files.
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from . import layouts
from .analyze import StemFacts, analyse_track, analysis_done, residual_key, source_key
from .errors import AudioError, IndexError_, StemforgeError
from .layouts.base import TrackEntry


def _previous(index_file: Path) -> tuple[dict, list[dict]]:
    if not index_file.exists():
        return {}, []
    try:
        with open(index_file) as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
    except (OSError, ValueError):
        return {}, []  # unreadable previous index: rebuild from scratch
    return (lines[0], lines[1:]) if lines else ({}, [])


def _known_facts(tracks: list[dict]) -> tuple[dict[str, StemFacts], dict[str, float | None]]:
    known, residual = {}, {}
    for t in tracks:
        stems = list(t["stems"].values()) + ([t["mixture"]] if t.get("mixture") else [])
        for s in stems:
            known[s["key"]] = StemFacts(s["key"], s["sample_rate"], s["channels"], s["frames"],
                                        s["loudness"], s["silent_fraction"], s["peak"])
        # an index from before exact mixtures were recorded as -inf stored None for them: such
        # a track's residual is measured again
        if t.get("residual_key") and not (t.get("mixture") and t.get("residual_db") is None):
            residual[t["residual_key"]] = t.get("residual_db")
    return known, residual


def _make_track(cls_track, cls_stem, entry: TrackEntry, result: dict):
    facts = result["facts"]

    def stem(name, ref):
        f = facts[name]
        return cls_stem(name=name if name != "__mixture__" else "mixture", path=ref.path,
                        stream=ref.stream, key=f.key, sample_rate=f.sample_rate,
                        channels=f.channels, frames=f.frames, loudness=f.loudness,
                        silent_fraction=f.silent_fraction, peak=f.peak, label=ref.label,
                        extra_paths=tuple(ref.extra_paths), channel=ref.channel)

    stems = {n: stem(n, r) for n, r in entry.stems.items()}
    mix = stem("__mixture__", entry.mixture) if entry.mixture is not None else None
    first = next(iter(facts.values()))
    return cls_track(
        id=entry.id, name=entry.name, split=entry.split, sample_rate=first.sample_rate,
        channels=first.channels, frames=min(f.frames for f in facts.values()), stems=stems,
        mixture=mix, residual_db=result["residual_db"], residual_key=result["residual_key"],
        notes=[*entry.notes, *result["notes"]], meta=entry.meta,
    )


def build_index(cls, root: Path, layout: str | None, cache_dir, groups, workers, progress,
                taxonomy=None):
    from .index import Stem, Track, default_cache_dir
    from .taxonomy import Taxonomy

    lay = layouts.get(layout) if layout else layouts.detect(root)
    if layout:
        layouts.check_root(root)
    entries = lay.scan(root)
    if not entries:
        raise IndexError_(f"{root}: no tracks found for layout '{lay.name}' "
                          f"(expected {lay.description})")
    taxonomy = Taxonomy.coerce(taxonomy)
    if taxonomy is not None:
        entries, unclaimed = taxonomy.apply_all(entries)
        if not entries:
            raise IndexError_(f"{root}: the taxonomy claims no stem of any track (unclaimed "
                              f"labels: {', '.join(unclaimed)})")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(root)
    index_file = cache_dir / "index.jsonl"
    header, old = _previous(index_file)
    if header and header.get("layout") != lay.name:
        old = []  # another layout's index in this cache dir: analysis files are still reused
    known, residual_known = _known_facts(old)

    created_dir = not cache_dir.exists()
    adir = cache_dir / "analysis"
    jobs = []
    for e in entries:
        keys = {n: source_key(r) for n, r in e.stems.items()}
        if e.mixture is not None:
            keys["__mixture__"] = source_key(e.mixture)
        jobs.append((e, keys))

    def needs_work(e, keys):
        stale = any(k not in known or not analysis_done(adir, k) for k in keys.values())
        return stale or (e.mixture is not None and residual_key(keys) not in residual_known)

    created: list[str] = []
    results: dict[str, dict] = {}
    errors: list[str] = []
    todo = [(e, k) for e, k in jobs if needs_work(e, k)]
    try:
        adir.mkdir(parents=True, exist_ok=True)
        todo_ids = {e.id for e, _ in todo}
        for e, keys in jobs:
            if e.id not in todo_ids:
                results[e.id] = analyse_track(e, keys, known, str(adir), residual_known)
        _run_jobs(todo, known, adir, residual_known, workers, progress, results, errors, created)
        if errors:
            more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
            raise AudioError(errors[0] + more)
        tracks = [_make_track(Track, Stem, e, results[e.id]) for e, _ in jobs]
        stem_names = {s for t in tracks for s in t.stems}
        lay_groups = {g: m for g, m in lay.groups.items() if set(m) <= stem_names}
        all_groups = {**lay_groups, **(header.get("groups", {}) if old else {}), **(groups or {})}
        for g, members in (groups or {}).items():
            missing = [m for m in members if m not in stem_names]
            if missing:
                raise IndexError_(f"group {g!r}: stems {missing} are not in {root}")
        index = cls(root, lay.name, cache_dir, tracks, all_groups)
        if taxonomy is not None:
            index.taxonomy = {"targets": taxonomy.to_mapping(), "unclaimed": unclaimed}
        index.save()
        return index
    except BaseException:
        for p in created:
            if os.path.exists(p):
                os.unlink(p)
        if created_dir and cache_dir.exists():
            shutil.rmtree(cache_dir, ignore_errors=True)
        raise


def _run_jobs(todo, known, adir, residual_known, workers, progress, results, errors, created):
    if not todo:
        return
    from tqdm import tqdm

    workers = workers or min(os.cpu_count() or 1, len(todo))
    bar = tqdm(total=len(todo), desc="indexing", unit="track", disable=None if progress else True)

    def take(e, res_or_exc):
        if isinstance(res_or_exc, StemforgeError):
            errors.append(str(res_or_exc))
        else:
            results[e.id] = res_or_exc
            created.extend(res_or_exc["created"])
        bar.update(1)

    if workers <= 1 or len(todo) == 1:
        for e, keys in todo:
            try:
                take(e, analyse_track(e, keys, known, str(adir), residual_known))
            except StemforgeError as exc:
                take(e, exc)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futs = [(e, pool.submit(_safe_analyse, e, keys, known, str(adir), residual_known))
                    for e, keys in todo]
            for e, f in futs:
                take(e, f.result())
    bar.close()


def _safe_analyse(e, keys, known, adir, residual_known):
    try:
        return analyse_track(e, keys, known, adir, residual_known)
    except StemforgeError as exc:
        return AudioError(str(exc))


def load_index(cls, index_file: Path, refresh: bool, progress: bool):
    from .analyze import source_key as key_of
    from .index import Track

    if not index_file.exists():
        raise IndexError_(f"{index_file}: index file not found")
    header, rows = _previous(index_file)
    if not header or header.get("format") != "stemforge-index/1":
        raise IndexError_(f"{index_file}: not a stemforge index (bad or missing header line)")
    tracks = [Track.from_dict(r) for r in rows]
    stale = []
    for t in tracks:
        for s in list(t.stems.values()) + ([t.mixture] if t.mixture else []):
            try:
                if key_of(s.ref) != s.key:
                    stale.append(s.path)
            except AudioError:
                stale.append(s.path)
    root = Path(header["root"])
    if stale:
        if not refresh:
            raise IndexError_(f"{index_file}: stale, {len(stale)} file(s) changed since indexing, "
                              f"e.g. {stale[0]}; re-run `stemforge index {root}`")
        tax = header.get("taxonomy")
        return build_index(cls, root, header["layout"], index_file.parent,
                           header.get("groups"), None, progress, tax and tax["targets"])
    index = cls(root, header["layout"], index_file.parent, tracks, header.get("groups", {}))
    index.taxonomy = header.get("taxonomy")
    return index
