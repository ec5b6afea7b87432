"""Run independent per-item tasks in-process or on Dask distributed.

``run_items(fn, items, workers=K, scheduler=ADDR, **kwargs)`` yields ``fn(item, **kwargs)``
results in completion order:

* ``workers <= 1`` and no scheduler: a plain loop in this process (Dask is not imported);
* ``workers > 1``: a ``distributed.LocalCluster`` of K worker processes, one thread each;
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


def _run_dask(fn, items, workers, scheduler, name, kwargs) -> Iterator:
    import uuid

    from distributed import as_completed

    client, cluster = _client(workers, scheduler)
    futures = []
    try:
        # a fresh token per run: a shared scheduler never confuses two runs (or two folders)
        token = uuid.uuid4().hex[:12]
        keys = [f"{name}-{token}-{i}" for i in items]
        futures = client.map(fn, items, key=keys, pure=False, **kwargs)
        item_of = {f.key: i for f, i in zip(futures, items)}
        for fut in as_completed(futures):
            try:
                result = fut.result()  # re-raises the task's exception here
            except Exception as e:
                _reraise(e, item_of.get(fut.key), scheduler)
            yield result
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
        raise JobError(f"item {item}: its Dask worker died on every attempt (the scheduler "
                       f"gave up: {e}); items already written are intact, rerun to resume") from e
    where = f"the Dask scheduler at {scheduler}" if scheduler else "the local Dask cluster"
    raise JobError(f"item {item}: {where} failed ({type(e).__name__}: {e}); items already "
                   "written are intact, rerun to resume") from e


def _is_comm_error(e: Exception) -> bool:
    try:
        from distributed.comm.core import CommClosedError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(e, CommClosedError)
