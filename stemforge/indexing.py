"""Building and loading the Index (incremental, atomic, one run per cache at a time). Used by
``Index.build``/``Index.load``.

Incremental rule: every file of every stem is stamped (:func:`stemforge.stamps.file_stamp`:
size, mtime, ctime, inode, first and last 64 KiB). A file whose stamp equals the one recorded in
the previous index of the same cache keeps its recorded sha256; any other file is hashed in full.
A stem is re-analysed only when its key (made from its files' digests) has no analysis in the
cache. So re-indexing an unchanged dataset stats and reads the edges of each file, a metadata
change (``touch``, ``chmod``) costs one read of the file, and only a content change costs an
analysis. ``verify_content`` hashes every file in full.

Concurrency: a build holds an exclusive lock on ``<cache>/.stemforge.lock`` (another build of the
same cache waits for it; the file is removed when the build ends, see :mod:`stemforge.locking`);
every file is written under a unique temp name and renamed. A build
that fails or is interrupted removes only what it created, and the cache folder itself only if
it created it and nothing else is in it.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from . import layouts
from .analyze import StemFacts, analyse_track, analysis_done, residual_key
from .atomic import write_failure
from .errors import AudioError, IndexError_, LayoutError, StemforgeError
from .layouts.base import TrackEntry
from .locking import acquire, release
from .stamps import file_stamp, source_key

LOCK_FILE = ".stemforge.lock"
log = logging.getLogger("stemforge")


def _previous(index_file: Path) -> tuple[dict, list[dict]]:
    if not index_file.exists():
        return {}, []
    try:
        with open(index_file) as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
    except (OSError, ValueError):
        return {}, []  # unreadable previous index: rebuild from scratch
    return (lines[0], lines[1:]) if lines else ({}, [])


def _known_facts(tracks: list[dict]) -> tuple[dict[str, StemFacts], dict[str, float | None],
                                             dict[tuple[str, str], str]]:
    """From a previous index's track rows: facts by key, residuals by residual key, and the
    recorded digest of each (absolute path, stamp)."""
    from .index import residual_from_json

    known, residual, digests = {}, {}, {}
    for t in tracks:
        stems = list(t["stems"].values()) + ([t["mixture"]] if t.get("mixture") else [])
        for s in stems:
            loud = s["loudness"]
            known[s["key"]] = StemFacts(s["key"], s["sample_rate"], s["channels"], s["frames"],
                                        float("-inf") if loud is None else loud,
                                        s["silent_fraction"], s["peak"])
            paths = [s["path"], *s.get("extra_paths", ())]
            for p, st, d in zip(paths, s.get("stamps", ()), s.get("digests", ())):
                digests[(os.path.abspath(p), st)] = d
        res = residual_from_json(t)
        # an index from before exact mixtures were recorded as -inf stored None for them: such
        # a track's residual is measured again
        if t.get("residual_key") and not (t.get("mixture") and res is None):
            residual[t["residual_key"]] = res
    return known, residual, digests


def _make_track(cls_track, cls_stem, entry: TrackEntry, result: dict, stamps: dict):
    facts = result["facts"]

    def stem(name, ref):
        f = facts[name]
        return cls_stem(name=name if name != "__mixture__" else "mixture", path=ref.path,
                        stream=ref.stream, key=f.key, sample_rate=f.sample_rate,
                        channels=f.channels, frames=f.frames, loudness=f.loudness,
                        silent_fraction=f.silent_fraction, peak=f.peak, label=ref.label,
                        extra_paths=tuple(ref.extra_paths), channel=ref.channel,
                        stamps=stamps[name], digests=result["digests"][name])

    stems = {n: stem(n, r) for n, r in entry.stems.items()}
    mix = stem("__mixture__", entry.mixture) if entry.mixture is not None else None
    first = next(iter(facts.values()))
    return cls_track(
        id=entry.id, name=entry.name, split=entry.split, sample_rate=first.sample_rate,
        channels=first.channels, frames=min(f.frames for f in facts.values()), stems=stems,
        mixture=mix, residual_db=result["residual_db"], residual_key=result["residual_key"],
        notes=[*entry.notes, *result["notes"]], meta=entry.meta,
    )


def _sources(entry: TrackEntry) -> dict:
    """Stem name -> SourceRef of a track, its real mixture as ``"__mixture__"``."""
    out = dict(entry.stems)
    if entry.mixture is not None:
        out["__mixture__"] = entry.mixture
    return out


def _cache_error(e: OSError, cache_dir: Path) -> IndexError_:
    """One line for a failed write in the index cache (the build changed nothing in it)."""
    why = write_failure(e)
    what = f" while writing {e.filename}" if e.filename else ""
    hint = ("choose another folder with --cache or STEMFORGE_CACHE_DIR"
            if why.startswith("not writable") else "free some space and run again")
    return IndexError_(f"{cache_dir}: index cache {why}{what}; left as it was, {hint}")


def open_cache(cache_dir: Path, progress: bool = False) -> tuple[bool, int | None]:
    """Create ``cache_dir`` if needed and take its lock, waiting for another build holding it.
    Returns ``(created, fd)``: whether this call created the folder, and the lock's descriptor,
    None when the cache is read-only (usable as long as nothing needs writing)."""
    lock = cache_dir / LOCK_FILE
    while True:
        if cache_dir.exists() and not cache_dir.is_dir():
            raise IndexError_(f"{cache_dir}: the index cache path exists and is not a folder; "
                              "choose a folder with --cache or STEMFORGE_CACHE_DIR")
        created = False
        try:
            cache_dir.mkdir(parents=True)
            created = True
        except FileExistsError:
            if not cache_dir.is_dir():
                continue  # made a file meanwhile: refused above
        except OSError as e:
            raise IndexError_(f"{cache_dir}: cannot create the index cache folder "
                              f"({e.strerror}); choose another one with --cache or "
                              "STEMFORGE_CACHE_DIR") from e
        try:
            fd = acquire(lock, block=False)
            if fd is None:
                if progress:
                    print(f"waiting for another stemforge run that is building {cache_dir}",
                          file=sys.stderr)
                fd = acquire(lock, block=True)
        except FileNotFoundError:
            continue  # the folder was removed by the failed run we waited for: make it again
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and not created:
                return False, None  # read-only cache: reuse it as it is
            raise _cache_error(e, cache_dir) from e
        return created, fd


def _scan(lay, root: Path) -> list[TrackEntry]:
    try:
        return lay.scan(root)
    except OSError as e:
        raise LayoutError(f"{e.filename or root}: cannot read this part of the dataset "
                          f"({e.strerror or e})") from e


def _remembered(root: Path, cache_dir: Path, layout: str | None, taxonomy):
    """``(layout, taxonomy, how the layout was chosen)``: the given ones, else what the index
    of ``root`` in ``cache_dir`` recorded (``remembered``), else ``detected`` (layout None)."""
    header, _ = _previous(cache_dir / "index.jsonl")
    earlier = header if header.get("root") == str(root.resolve()) else {}  # another root's
    if taxonomy is None and earlier.get("taxonomy"):
        taxonomy = earlier["taxonomy"]["targets"]
    if layout:
        return layout, taxonomy, "given"
    if earlier.get("layout") in layouts.REGISTRY:
        return earlier["layout"], taxonomy, "remembered"
    return None, taxonomy, "detected"


def _entries(root: Path, layout: str | None, taxonomy, source: str = "given"):
    """``(layout, track entries, taxonomy, unclaimed labels)`` of ``root`` (files listed only).
    ``source``: how ``layout`` was chosen (see :func:`_remembered`); an error that follows from
    a layout that was not given says so and names another candidate."""
    from .taxonomy import Taxonomy

    try:
        lay = layouts.get(layout) if layout else layouts.detect(root)
        if layout:
            layouts.check_root(root)
    except OSError as e:
        raise LayoutError(f"{e.filename or root}: cannot read it while detecting the dataset's "
                          f"layout ({e.strerror or e})") from e
    try:
        entries = _scan(lay, root)
        if not entries:
            raise IndexError_(f"{root}: no tracks found for layout '{lay.name}' "
                              f"(expected {lay.description})")
    except (LayoutError, IndexError_) as e:
        if source == "given":
            raise
        others = [n for n, sc in layouts.scores(root).items() if sc > 0 and n != lay.name]
        hint = f", e.g. --layout {others[0]}" if others else ""
        raise type(e)(f"{e} (layout {lay.name} was {source}; pass --layout to choose "
                      f"another{hint})") from e
    if source == "detected":  # every guess is said (the CLI prints stemforge's log)
        log.info("layout: %s (detected; --layout to override)", lay.name)
    taxonomy, unclaimed = Taxonomy.coerce(taxonomy), None
    if taxonomy is not None:
        entries, unclaimed = taxonomy.apply_all(entries)
        if not entries:
            raise IndexError_(f"{root}: the taxonomy claims no stem of any track (unclaimed "
                              f"labels: {', '.join(unclaimed)})")
    return lay, entries, taxonomy, unclaimed


def _stamps(entries: list[TrackEntry]) -> dict[str, dict[str, tuple[str, ...]]]:
    """Track id -> stem name -> the stamps of its files (a stem.mp4 shared by every stem of
    its track is stamped once)."""
    memo: dict[str, str] = {}

    def stamp(p: str) -> str:
        if p not in memo:
            memo[p] = file_stamp(p)
        return memo[p]

    return {e.id: {n: tuple(stamp(p) for p in r.paths) for n, r in _sources(e).items()}
            for e in entries}


def build_index(cls, root: Path, layout: str | None, cache_dir, groups, workers, progress,
                taxonomy=None, verify_content: bool = False, remember: bool = True):
    """See ``Index.build``. The cache folder is ``cache_dir``, else the one remembered for
    ``root``, else its default; the layout and taxonomy are the given ones, else what that
    cache's index of ``root`` recorded, else detected. ``remember``: a given ``cache_dir``
    becomes the one remembered for ``root`` (not when re-opening an index file)."""
    from .index import remember_cache_dir, resolve_cache_dir

    cache_dir, cache_source = resolve_cache_dir(root, cache_dir)
    layout, taxonomy, layout_source = _remembered(root, cache_dir, layout, taxonomy)
    lay, entries, taxonomy, unclaimed = _entries(root, layout, taxonomy, layout_source)
    # every file stamped before anything is created: a missing, unreadable or looping file is
    # an error naming it, and leaves no cache folder behind
    stamps = _stamps(entries)
    created_dir, fd = open_cache(cache_dir, progress)
    made: dict[str, list] = {"files": [], "dirs": []}  # what this build wrote, for an undo
    try:
        try:
            index = _build_locked(cls, root, lay, entries, stamps, cache_dir, groups, workers,
                                  progress, taxonomy, unclaimed, verify_content, made)
        except OSError as e:
            raise _cache_error(e, cache_dir) from e
    except BaseException:
        for p in made["files"]:
            Path(p).unlink(missing_ok=True)
        for d in made["dirs"]:
            _rmdir(d)
        if fd is not None:
            release(fd, cache_dir / LOCK_FILE)
            fd = None
        if created_dir:
            _rmdir(cache_dir)
        raise
    finally:
        if fd is not None:
            release(fd, cache_dir / LOCK_FILE)  # removed while held: a waiter retries on a new one
    index.layout_source, index.cache_source = layout_source, cache_source
    if cache_source == "given" and remember:
        try:
            remember_cache_dir(root, cache_dir)
        except OSError as e:  # the index is fine; only later commands must name --cache
            log.info("cache: %s is not remembered for %s (%s); pass --cache again", cache_dir,
                     root, e.strerror or e)
    return index


def _build_locked(cls, root, lay, entries, stamps, cache_dir: Path, groups, workers, progress,
                  taxonomy, unclaimed, verify_content: bool, made: dict):
    """The build proper, holding the cache's lock: reuse what the previous index recorded,
    hash and analyse the rest, save the index. Files and folders it writes go to ``made``."""
    from .index import Stem, Track

    index_file = cache_dir / "index.jsonl"
    adir = cache_dir / "analysis"
    header, old = _previous(index_file)
    if header and header.get("layout") != lay.name:
        old = []  # another layout's index in this cache dir: analysis files are still reused
    known, residual_known, recorded = _known_facts(old)
    jobs = []
    for e in entries:
        digests = {n: tuple(None if verify_content else recorded.get((os.path.abspath(p), st))
                            for p, st in zip(r.paths, stamps[e.id][n]))
                   for n, r in _sources(e).items()}
        jobs.append((e, digests))

    def needs_work(e, digests):
        if any(d is None for ds in digests.values() for d in ds):
            return True  # hashed (and perhaps analysed) by a worker
        keys = {n: source_key(r, digests[n]) for n, r in _sources(e).items()}
        stale = any(k not in known or not analysis_done(adir, k) for k in keys.values())
        return stale or (e.mixture is not None and residual_key(keys) not in residual_known)

    results: dict[str, dict] = {}
    errors: list[str] = []
    todo = [(e, d) for e, d in jobs if needs_work(e, d)]
    if todo and not adir.is_dir():
        adir.mkdir()
        made["dirs"].append(adir)
    todo_ids = {e.id for e, _ in todo}
    for e, digests in jobs:
        if e.id not in todo_ids:
            results[e.id] = analyse_track(e, digests, known, str(adir), residual_known)
    _run_jobs(todo, known, adir, residual_known, workers, progress, results, errors,
              made["files"])
    if errors:
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise AudioError(errors[0] + more)
    tracks = [_make_track(Track, Stem, e, results[e.id], stamps[e.id]) for e, _ in jobs]
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
    index.content_changed = _content_changed(old, tracks)
    index.save()
    return index


def _rmdir(path: Path) -> None:
    """Remove ``path`` if it is an empty folder (never anything someone else put there)."""
    try:
        path.rmdir()
    except OSError:
        pass


def _content_changed(old_rows: list[dict], tracks) -> list[str]:
    """Files whose bytes differ from those recorded at the same path in the previous index."""
    before = {}
    for t in old_rows:
        for s in list(t["stems"].values()) + ([t["mixture"]] if t.get("mixture") else []):
            for p, d in zip([s["path"], *s.get("extra_paths", ())], s.get("digests", ())):
                before[os.path.abspath(p)] = d
    changed = set()
    for t in tracks:
        for s in list(t.stems.values()) + ([t.mixture] if t.mixture else []):
            for p, d in zip(s.ref.paths, s.digests):
                if before.get(os.path.abspath(p), d) != d:
                    changed.add(p)
    return sorted(changed)


def _run_jobs(todo, known, adir, residual_known, workers, progress, results, errors, created):
    """Analyse ``todo`` (in-process or a process pool). Data problems (StemforgeError) are
    collected in ``errors``; any other failure (e.g. a full disk) is raised once every started
    track has finished, so ``created`` lists every file the build wrote."""
    if not todo:
        return
    from .progress import progress as progress_bar

    workers = workers or min(os.cpu_count() or 1, len(todo))
    bar = progress_bar(len(todo), "index", "track", enabled=progress)
    failure: list[BaseException] = []

    def take(e, res_or_exc):
        if isinstance(res_or_exc, StemforgeError):
            errors.append(str(res_or_exc))
        elif isinstance(res_or_exc, BaseException):
            failure.append(res_or_exc)
        else:
            results[e.id] = res_or_exc
            created.extend(res_or_exc["created"])
        bar.update(1)

    try:
        if workers <= 1 or len(todo) == 1:
            for e, digests in todo:
                try:
                    take(e, analyse_track(e, digests, known, str(adir), residual_known))
                except StemforgeError as exc:
                    take(e, exc)
                except OSError as exc:  # the cache's disk: no point in going on
                    take(e, exc)
                    break
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = [(e, pool.submit(analyse_track, e, d, known, str(adir), residual_known))
                        for e, d in todo]
                for e, f in futs:
                    try:
                        take(e, f.result())
                    except (StemforgeError, OSError) as exc:
                        take(e, exc)
    finally:
        bar.close()
    if failure:
        raise failure[0]


def load_index(cls, index_file: Path, refresh: bool, progress: bool,
               verify_content: bool = False):
    """``refresh``: rescan the index's root with its recorded layout, groups and taxonomy, as
    :func:`build_index` does (new, removed and edited tracks are seen). Without it (workers
    re-opening an index the caller just built), the index is read as recorded and any file whose
    stamp changed since is an error."""
    from .index import Track

    if not index_file.exists():
        raise IndexError_(f"{index_file}: index file not found")
    header, rows = _previous(index_file)
    if not header or header.get("format") != "stemforge-index/1":
        raise IndexError_(f"{index_file}: not a stemforge index (bad or missing header line)")
    root = Path(header["root"])
    if refresh:
        tax = header.get("taxonomy")
        index = build_index(cls, root, header["layout"], index_file.parent,
                            header.get("groups"), None, progress, tax and tax["targets"],
                            verify_content, remember=False)
        index.layout_source = index.cache_source = "loaded"
        return index
    tracks = [Track.from_dict(r) for r in rows]
    stale = []
    for t in tracks:
        for s in list(t.stems.values()) + ([t.mixture] if t.mixture else []):
            try:
                if len(s.stamps) != len(s.ref.paths) or \
                        any(file_stamp(p) != st for p, st in zip(s.ref.paths, s.stamps)):
                    stale.append(s.path)
            except AudioError:
                stale.append(s.path)
    if stale:
        raise IndexError_(f"{index_file}: stale, {len(stale)} file(s) changed since indexing, "
                          f"e.g. {stale[0]}; re-run `stemforge index {root}`")
    index = cls(root, header["layout"], index_file.parent, tracks, header.get("groups", {}))
    index.taxonomy = header.get("taxonomy")
    index.layout_source = index.cache_source = "loaded"
    return index
