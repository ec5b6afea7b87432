"""Run independent per-item tasks in-process or on Dask distributed.

``run_items(fn, items, workers=K, scheduler=ADDR, **kwargs)`` yields ``fn(item, **kwargs)``
results in completion order:

* ``workers <= 1`` and no scheduler: a plain loop in this process (Dask is not imported);
* ``workers > 1``: a ``distributed.LocalCluster`` of K worker processes, one thread each;
  items are sent in small chunks (:func:`chunk_size`) to amortise Dask's per-task cost;
* ``scheduler="tcp://host:port"``: an existing cluster via ``distributed.Client(address)``.

``fn`` must be a module-level function (pickled by reference) and ``kwargs`` small plain data:
workers rebuild heavy state themselves through :func:`worker_state` (e.g. open the index from its
file path), once per process. A worker lost mid-task is handled by Dask: the scheduler re-runs
its tasks elsewhere, which is safe because tasks write atomically and deterministically.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Iterator

from .layout import JobError

_STATE: dict[Any, Any] = {}


def worker_state(key, factory: Callable[[], Any]):
    """Per-process cache: ``factory()`` runs once per ``key`` in each process."""
    try:
        return _STATE[key]
    except KeyError:
        value = _STATE[key] = factory()
        return value


def tune_worker_malloc() -> bool:
    """Let glibc reuse freed heap memory for large buffers again in a Dask worker.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``; setting any malloc
    threshold disables glibc's dynamic mmap threshold, so every buffer above 128 KiB (each
    stem, mix and encoded file) becomes a fresh ``mmap``: page-faulted in, unmapped on free
    (costly per item, see docs/benchmarks.md "Generation"). Raising the mmap threshold
    to 32 MiB and the trim threshold to 64 MiB keeps such buffers on the heap (at most 64 MiB
    of freed memory stays with the process). Only acts where that variable is set, on glibc;
    returns whether it changed anything."""
    import ctypes
    import os

    if not os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)
                    and libc.mallopt(m_trim_threshold, 64 << 20))
    except (OSError, AttributeError):  # not glibc
        return False


def seed_state(key, value) -> None:
    """Pre-populate the cache of *this* process (in-process runs reuse the caller's objects)."""
    _STATE[key] = value


def uses_dask(workers: int | None, scheduler: str | None) -> bool:
    return bool(scheduler) or (workers or 1) > 1


def run_items(fn: Callable, items: Iterable[int], workers: int | None = 1,
              scheduler: str | None = None, name: str = "stemforge", **kwargs) -> Iterator:
    items = list(items)
    if not uses_dask(workers, scheduler):
        for i in items:
            yield fn(i, **kwargs)
        return
    if not items:
        return
    yield from _run_dask(fn, items, workers or 1, scheduler, name, kwargs)


def check_scheduler(address: str, timeout: float = 10.0) -> None:
    """Fail fast (before any output is created) when ``address`` (``tcp://host:port``) does not
    accept connections."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(address if "://" in address else f"tcp://{address}")
    if u.scheme not in ("tcp", "tls") or not u.hostname or not u.port:
        raise JobError(f"--scheduler {address!r}: expected tcp://HOST:PORT")
    try:
        socket.create_connection((u.hostname, u.port), timeout=timeout).close()
    except OSError as e:
        raise JobError(f"cannot reach the Dask scheduler at {address}: {e.strerror or e}; is "
                       "`dask scheduler` running there?") from None


def _client(workers: int, scheduler: str | None):
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:  # pragma: no cover - dask is a declared extra
        raise JobError("--workers > 1 and --scheduler need Dask: pip install "
                       "'dask[distributed]'") from e
    if scheduler:
        try:
            return Client(scheduler, timeout="15s"), None
        except (OSError, TimeoutError) as e:
            raise JobError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from e
    # loopback only; no dashboard, and the scheduler's small HTTP server on a free port (the
    # default 8787 may be taken by another cluster on a shared machine)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None,
                           scheduler_kwargs={"dashboard": False,
                                             "dashboard_address": "127.0.0.1:0"},
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _run_chunk(group: list, _fn: Callable, **kwargs) -> list:
    """One Dask task: ``_fn(item, **kwargs)`` for each item of ``group``, in order."""
    return [_fn(i, **kwargs) for i in group]


def chunk_size(n_items: int, threads: int, per_thread: int = 4, cap: int = 8) -> int:
    """Items per Dask task: at least ``per_thread`` tasks per worker thread (balance, and little
    work redone when a worker dies), at most ``cap`` items (progress granularity); more than one
    item per task when there are many items, since each task costs the client, scheduler and
    worker some milliseconds."""
    return max(1, min(cap, n_items // max(1, per_thread * threads)))


def _run_dask(fn, items, workers, scheduler, name, kwargs) -> Iterator:
    import uuid

    from distributed import as_completed

    client, cluster = _client(workers, scheduler)
    futures = []
    try:
        threads = sum(client.nthreads().values()) or workers
        size = chunk_size(len(items), threads)
        groups = [items[k:k + size] for k in range(0, len(items), size)]
        # a fresh token per run: a shared scheduler never confuses two runs (or two folders)
        token = uuid.uuid4().hex[:12]
        keys = [f"{name}-{token}-{g[0]}" for g in groups]
        futures = client.map(_run_chunk, groups, key=keys, pure=False, _fn=fn, **kwargs)
        group_of = {f.key: g for f, g in zip(futures, groups)}
        for fut in as_completed(futures):
            try:
                results = fut.result()  # re-raises the task's exception here
            except Exception as e:
                g = group_of.get(fut.key) or [None]
                _reraise(e, g[0] if len(g) == 1 else f"{g[0]}..{g[-1]}", scheduler)
            yield from results
    finally:
        for f in futures:
            if not f.done():
                f.cancel()
        client.close()
        if cluster is not None:
            cluster.close()


def _reraise(e: Exception, item, scheduler) -> None:
    """Task errors pass through (StemforgeError, OSError keep their meaning); Dask's own
    failures become a JobError naming the item."""
    from distributed.scheduler import KilledWorker

    from ..errors import StemforgeError

    if isinstance(e, (StemforgeError, OSError)) and not _is_comm_error(e):
        raise e
    if isinstance(e, KilledWorker):
        raise JobError(f"item(s) {item}: their Dask worker died on every attempt (the scheduler "
                       f"gave up: {e}); items already written are intact, rerun to resume") from e
    where = f"the Dask scheduler at {scheduler}" if scheduler else "the local Dask cluster"
    raise JobError(f"item(s) {item}: {where} failed ({type(e).__name__}: {e}); items already "
                   "written are intact, rerun to resume") from e


def _is_comm_error(e: Exception) -> bool:
    try:
        from distributed.comm.core import CommClosedError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(e, CommClosedError)
