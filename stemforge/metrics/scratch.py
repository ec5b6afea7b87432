"""Reusable per-thread buffers for the large temporaries of scoring a track.

Fresh memory is not free: the OS zeroes every new page (0.7 CPU-s per GB for one process, up
to 1.5 s for two at once, measured on the 2-core VM of docs/benchmarks.md), and one 22.5 s,
4-source stereo track needs ~0.24 GB of stacks, kept spectra and sums. Inside
``with reuse():`` each thread's named buffers are kept and handed out again (grown when a
longer track needs more), so a job scoring many tracks pays for that memory once per thread.
Outside it, :func:`empty` is ``np.empty``: a library call keeps nothing.

A buffer stays valid until the same thread asks for the same name again, so a caller uses it
within one call and never returns it.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np

_lock = threading.Lock()
_pools: dict[int, dict[str, np.ndarray]] | None = None  # thread id -> name -> buffer
_depth = 0


@contextmanager
def reuse() -> Iterator[None]:
    """Keep the buffers :func:`empty` hands out, per thread and name, until the outermost
    ``reuse`` exits (nesting is allowed; every thread of the process shares the scope)."""
    global _pools, _depth
    with _lock:
        if _depth == 0:
            _pools = {}
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _pools = None


def empty(name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape``: this thread's buffer ``name`` inside
    :func:`reuse`, else a new one."""
    pools = _pools
    dtype = np.dtype(dtype)
    if pools is None:
        return np.empty(shape, dtype)
    mine = pools.setdefault(threading.get_ident(), {})
    count = int(np.prod(shape, dtype=np.int64))
    units = -(-count * dtype.itemsize // 16)  # in complex128 units: aligned for every dtype
    buf = mine.get(name)
    if buf is None or buf.size < units:
        buf = mine[name] = np.empty(units, np.complex128)
    return buf.view(np.uint8)[: count * dtype.itemsize].view(dtype).reshape(shape)
