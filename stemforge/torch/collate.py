"""Batch collation into reused shared-memory buffers: ``DataLoader(..., collate_fn=collate)``.

``collate(items)`` returns exactly what ``torch.utils.data.default_collate(items)`` returns
(same structure, same tensor values, dtypes and shapes: e.g. ``[mix (B, C, T),
targets (B, S, C, T)]`` for ``MixtureDataset`` items), but the stacked tensors live in a small
per-process pool of shared-memory buffers that are *reused* once the consumer has dropped a
batch, instead of a fresh allocation per batch.

Why: a batch of 8 x (mix + 4 targets) x 5 s stereo float32 is 70 MB. ``default_collate`` puts
each batch in fresh memory (in a worker: a new shared-memory segment; in the main process: a
fresh ``mmap`` from malloc), whose pages are faulted in, zeroed and returned to the OS again for
every batch. On the benchmark VM those page faults cost more CPU than rendering the mixtures
(docs/benchmarks.md, "Loader"). Reused buffers are already mapped: no faults.

How it stays safe: each buffer (a ``memfd``) starts with two owner words (see ``_Buffer``).
A buffer is reused only when both are 0: the views the filling process wrote through are gone,
and the last tensor (or view) made from the returned batch has been freed in the process that
received it (a ``weakref.finalize`` on the array that owns the storage). A batch the user still
holds is therefore never overwritten; if no pooled buffer is free and the pool is full
(``max_buffers`` per process), the batch gets a one-off buffer, freed with it.

In a DataLoader worker, the batch crosses to the main process as a file descriptor
(``multiprocessing.reduction.DupFd``, like torch's own ``file_descriptor`` sharing strategy)
and is rebuilt there as tensors over the same pages: no copy.

``MixtureDataset.__getitems__`` and ``MixtureStream`` render their batch straight into a
:class:`BatchBuffer` from the default pool, :data:`collate` (so ``collate.max_buffers`` is the
pool size they use); with ``collate_fn=collate`` the DataLoader then returns that buffer as the
batch. A custom sink can do the same::

    buf = BatchBuffer(recipe, len(items))
    mixer.mixtures(items, epoch, out=(buf.mix, buf.targets))
    mix, targets = buf.batch()          # (B, C, T), (B, S, C, T) tensors over the buffer

Memory: each process keeps at most ``max_buffers`` buffers (default 4) of the largest batch it
has made, until it exits or :meth:`PooledCollate.release` is called; with persistent workers,
that is up to ``4 x batch bytes`` of shared memory per worker beyond what ``default_collate``
holds between batches. Linux only (``os.memfd_create``); elsewhere it falls back to
``default_collate``.
"""
from __future__ import annotations

import collections.abc
import mmap
import os
import threading
import weakref
from multiprocessing.reduction import DupFd

import numpy as np
import torch
from torch.utils.data import default_collate

from ..errors import ArgumentError, StemforgeError

HEADER = 64   # bytes before the data: the two int64 owner words, padding to 64
ALIGN = 64    # every tensor field starts on a 64-byte boundary
LOCAL, OUT = 0, 1  # owner words: LOCAL = the process that filled it; OUT = the returned batch


class CollateError(StemforgeError):
    """Items of one batch cannot be stacked (different shapes, dtypes or structure)."""


def _supported() -> bool:
    return hasattr(os, "memfd_create")


class _Buffer:
    """One shared-memory segment: ``HEADER`` bytes of owner words + ``nbytes`` of data.

    Two owner words, each written by one process only, so no cross-process read-modify-write:
    ``LOCAL`` is 1 while the filling process holds views of it (cleared by the finalizer of
    those views), ``OUT`` is 1 while a returned batch exists (set before it is handed out;
    cleared by the finalizer of the batch's storage in whichever process received it). The
    buffer is free when both are 0."""

    def __init__(self, nbytes: int):
        self.fd = os.memfd_create("stemforge-batch", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, HEADER + nbytes)
            self.map = mmap.mmap(self.fd, HEADER + nbytes)
        except BaseException:
            os.close(self.fd)
            raise
        self.nbytes = nbytes
        self.owners = np.frombuffer(self.map, np.int64, 2)

    def free(self) -> bool:
        return not self.owners.any()

    def close(self) -> None:
        """Unmap now (when no array uses the mapping any more) and close the fd."""
        self.owners = None
        try:
            self.map.close()
        except BufferError:  # a view still exists: the mapping goes when it does
            pass
        self._close_fd()

    def _close_fd(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self):  # one-off buffers: the fd goes with the object, the mapping with the
        try:              # last array over it
            self._close_fd()
        except Exception:  # interpreter shutdown: os may already be torn down; the fd dies too
            pass


def _clear(words: np.ndarray, k: int, pid: int) -> None:
    if os.getpid() == pid:  # a forked child dropping its inherited copy frees nothing
        words[k] = 0


def _own(arr: np.ndarray, map_: mmap.mmap, k: int) -> None:
    """Clear owner word ``k`` of ``map_`` when ``arr`` is freed in this process (not at
    interpreter exit, and never from a forked child: the mapping is shared with it)."""
    weakref.finalize(arr, _clear, np.frombuffer(map_, np.int64, 2), k, os.getpid()).atexit = False


def _wrap(map_: mmap.mmap, nbytes: int, layout, rest, owner: int):
    """Tensors of ``layout`` over ``map_`` (owner word ``owner`` cleared when the last of
    them is freed); the batch structure ``rest`` rebuilt around them."""
    arr = np.frombuffer(map_, np.uint8, nbytes, HEADER)
    _own(arr, map_, owner)
    base = torch.from_numpy(arr)
    tensors = [base[off:off + n].view(dtype).view(shape) for off, n, dtype, shape in layout]
    return _fill(rest, iter(tensors))


def _rebuild(dupfd, size: int, nbytes: int, layout, rest):
    """Main-process side of a batch made in a worker (unpickling)."""
    fd = dupfd.detach()
    try:
        map_ = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    return _wrap(map_, nbytes, layout, rest, OUT)


class _Shipped:
    """A batch made in a DataLoader worker, pickled to the main process as an fd + layout."""

    def __init__(self, buf: _Buffer, nbytes: int, layout, rest):
        self.buf, self.nbytes, self.layout, self.rest = buf, nbytes, layout, rest

    def __reduce__(self):
        return (_rebuild, (DupFd(self.buf.fd), HEADER + self.buf.nbytes, self.nbytes,
                           self.layout, self.rest))


class _Slot:
    """Placeholder for a pooled tensor field in the batch structure."""

    __slots__ = ("k",)

    def __init__(self, k: int):
        self.k = k

    def __reduce__(self):
        return (_Slot, (self.k,))


def _fill(rest, tensors):
    if isinstance(rest, _Slot):
        return next(tensors)
    if isinstance(rest, _Struct):
        return rest.build([_fill(x, tensors) for x in rest.fields])
    return rest


class _Struct:
    """A collated container: ``kind`` 'list', 'tuple', 'namedtuple' (type in ``cls``) or
    'dict'."""

    def __init__(self, kind: str, fields: list, keys=None, cls=None):
        self.kind, self.fields, self.keys, self.cls = kind, fields, keys, cls

    def build(self, values: list):
        if self.kind == "dict":
            return dict(zip(self.keys, values))
        if self.kind == "namedtuple":
            return self.cls(*values)
        return tuple(values) if self.kind == "tuple" else values


def layout_of(shapes_dtypes, batch: int):
    """``(layout, nbytes)`` for fields stacked ``batch`` times: ``layout`` is a list of
    ``(byte offset, bytes, dtype, (batch, *shape))`` with 64-byte aligned offsets."""
    layout, off = [], 0
    for shape, dtype in shapes_dtypes:
        itemsize = torch.empty((), dtype=dtype).element_size()
        n = batch * int(np.prod(shape, dtype=np.int64)) * itemsize
        layout.append((off, n, dtype, (batch, *shape)))
        off += -(-n // ALIGN) * ALIGN
    return layout, max(off, ALIGN)


def batch_layout(recipe, batch: int):
    """``(layout, nbytes)`` of a ``(mix (B, C, T), targets (B, S, C, T))`` float32 batch of
    ``recipe``'s mixtures (every mixture is exactly ``recipe.frames`` long)."""
    C, T, S = recipe.channels, recipe.frames, len(recipe.targets)
    return layout_of([((C, T), torch.float32), ((S, C, T), torch.float32)], batch)


class Claimed:
    """A pooled buffer claimed for one batch: ``views`` are the stacked fields ``(B, ...)`` to
    fill in place (they hold the ``LOCAL`` owner word until they and their views are freed);
    :meth:`result` hands the batch out (``OUT`` word) as tensors in ``rest``'s structure, or,
    in a DataLoader worker, as an object that unpickles to them in the main process."""

    def __init__(self, buf: _Buffer, nbytes: int, layout, rest):
        self.buf, self.nbytes, self.layout, self.rest = buf, nbytes, layout, rest
        arr = np.frombuffer(buf.map, np.uint8, nbytes, HEADER)
        _own(arr, buf.map, LOCAL)
        base = torch.from_numpy(arr)
        self.views = [base[o:o + n].view(dtype).view(shape) for o, n, dtype, shape in layout]

    def result(self):
        from torch.utils.data import get_worker_info

        self.buf.owners[OUT] = 1
        if get_worker_info() is not None:
            return _Shipped(self.buf, self.nbytes, self.layout, self.rest)
        return _wrap(self.buf.map, self.nbytes, self.layout, self.rest, OUT)


class BatchBuffer:
    """One batch of mixtures rendered in place: ``mix`` float32 ``(B, C, T)`` and ``targets``
    float32 ``(B, S, C, T)`` numpy arrays over a pooled shared-memory buffer of ``pool``
    (default :data:`collate`), for ``Mixer.mixtures(items, out=(buf.mix, buf.targets))``.

    Then hand the batch out once, without a copy: :meth:`batch` (``[mix, targets]`` tensors,
    ``+ [extra]`` when given, as a list or tuple; from a DataLoader worker it crosses to the
    main process as a file descriptor), or :meth:`items` (per-item views, what
    ``Dataset.__getitems__`` returns; ``collate`` turns them back into the pooled batch).
    The buffer is reused once every tensor over it is freed (see the module docstring).
    ``recipe``: anything with ``targets``, ``channels`` and ``frames``. Where shared-memory
    buffers are not available (no ``os.memfd_create``) the arrays are ordinary memory.
    """

    def __init__(self, recipe, batch: int, pool: "PooledCollate | None" = None):
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"BatchBuffer: batch must be an integer >= 1, got {batch!r}")
        self._claimed = None
        if _supported():
            self._claimed = (pool or collate).claim(*batch_layout(recipe, batch), None)
            bmix, btargets = self._claimed.views
        else:
            C, T, S = recipe.channels, recipe.frames, len(recipe.targets)
            bmix = torch.empty((batch, C, T), dtype=torch.float32)
            btargets = torch.empty((batch, S, C, T), dtype=torch.float32)
        self._tensors = (bmix, btargets)
        self.mix, self.targets = bmix.numpy(), btargets.numpy()

    def _take(self):
        if self._tensors is None:
            raise RuntimeError("BatchBuffer: the batch was already handed out")
        tensors, claimed = self._tensors, self._claimed
        self._tensors = self._claimed = self.mix = self.targets = None
        return tensors, claimed

    def batch(self, extra=None, kind: str = "list", tail=()):
        """The batch: ``[mix (B, C, T), targets (B, S, C, T)]`` (+ ``extra``, e.g. a list of
        spec dicts, + the fields of ``tail``, e.g. a ``(B, S)`` tensor), a ``list`` or
        ``tuple`` as ``kind`` says."""
        (bmix, btargets), claimed = self._take()
        more = ([extra] if extra is not None else []) + list(tail)
        if claimed is None:
            fields = [bmix, btargets] + more
            return tuple(fields) if kind == "tuple" else fields
        del bmix, btargets
        claimed.rest = _Struct(kind, [_Slot(0), _Slot(1)] + more)
        return claimed.result()

    def items(self, extras=None, tail=None) -> list:
        """Per-item ``(mix (C, T), targets (S, C, T)[, extras[k]][, *tail[k]])`` views of the
        batch, as a list that :func:`collate` (any :class:`PooledCollate`) turns back into the
        batch without copying; any other collate function sees ordinary items. ``tail``: per
        item a tuple of further fields (e.g. an ``(S,)`` tensor), collated field by field."""
        (bmix, btargets), claimed = self._take()
        B = bmix.shape[0]
        for name, x in (("extras", extras), ("tail", tail)):
            if x is not None and len(x) != B:
                raise ValueError(f"BatchBuffer.items: {len(x)} {name} for {B} items")
        out = PooledItems() if claimed is not None else []
        for k in range(B):
            out.append((bmix[k], btargets[k]) + ((extras[k],) if extras is not None else ())
                       + (tuple(tail[k]) if tail is not None else ()))
        if claimed is not None:
            fields = [_Slot(0), _Slot(1)]
            if extras is not None:
                fields.append(default_collate(list(extras)))
            if tail is not None:
                fields += [default_collate([t[c] for t in tail]) for c in range(len(tail[0]))]
            claimed.rest = _Struct("list", fields)
            out.claimed = claimed
        return out


class PooledItems(list):
    """What ``MixtureDataset.__getitems__`` returns: the items (tuples of views into one
    claimed batch buffer, already stacked in place). :func:`collate` returns the batch without
    copying; any other collate function sees an ordinary list of items."""

    claimed: Claimed


class PooledCollate:
    """``default_collate`` with tensors stacked into reused shared-memory buffers.

    See the module docstring. ``max_buffers``: pooled buffers per process (>= 1). The instance
    is picklable (DataLoader workers get their own, empty pool).
    """

    def __init__(self, max_buffers: int = 4):
        if isinstance(max_buffers, bool) or not isinstance(max_buffers, int) or max_buffers < 1:
            raise ArgumentError(f"PooledCollate: max_buffers must be an integer >= 1, "
                             f"got {max_buffers!r}")
        self.max_buffers = max_buffers
        self._pid = None
        self._pool: list[_Buffer] = []
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"max_buffers": self.max_buffers}

    def __setstate__(self, state):
        self.__init__(state["max_buffers"])

    # ------------------------------------------------------------------ pool
    def _buffers(self) -> list[_Buffer]:
        if self._pid != os.getpid():  # forked: the parent's buffers are not ours to reuse
            self._pid, self._pool = os.getpid(), []
        return self._pool

    def claim(self, layout, nbytes: int, rest) -> Claimed:
        """A free pooled buffer of at least ``nbytes`` (or a one-off one when every pooled
        buffer is in use) with ``layout``'s fields as views to fill: see :class:`Claimed`."""
        with self._lock:
            pool = self._buffers()
            buf = next((b for b in pool if b.nbytes >= nbytes and b.free()), None)
            if buf is None:
                free = [b for b in pool if b.free()]
                if len(pool) >= self.max_buffers and free:  # too small: replace a free one
                    pool.remove(free[0])
                    free[0].close()
                buf = _Buffer(nbytes)  # a one-off (freed with its batch) if the pool is full
                if len(pool) < self.max_buffers:
                    pool.append(buf)
            buf.owners[LOCAL] = 1
        return Claimed(buf, nbytes, layout, rest)

    def release(self) -> int:
        """Unmap this process's pooled buffers that no batch uses any more; returns how many."""
        with self._lock:
            pool = self._buffers()
            free = [b for b in pool if b.free()]
            for b in free:
                pool.remove(b)
                b.close()
            return len(free)

    def pooled(self) -> tuple[int, int]:
        """``(buffers in this process's pool, of which in use)``: for tests and monitoring."""
        with self._lock:
            pool = self._buffers()
            return len(pool), sum(not b.free() for b in pool)

    # ------------------------------------------------------------------ collate
    def __call__(self, batch):
        if isinstance(batch, PooledItems):  # stacked in place by the dataset: no copy
            return batch.claimed.result()
        if not _supported() or not isinstance(batch, collections.abc.Sequence) or not batch:
            return default_collate(batch)
        fields: list[list[torch.Tensor]] = []
        rest = _plan(batch, fields, "item")
        if not fields:
            return default_collate(batch)
        layout, nbytes = layout_of([(f[0].shape, f[0].dtype) for f in fields], len(batch))
        claimed = self.claim(layout, nbytes, rest)
        for out, samples in zip(claimed.views, fields):
            torch.stack(samples, 0, out=out)
        return claimed.result()


def _plan(batch, fields: list, where: str):
    """Walk the items' common structure: tensors become pooled ``_Slot`` fields (their
    samples appended to ``fields``); anything else is collated by ``default_collate`` now.
    Raises :class:`CollateError` naming the field when items do not match."""
    elem = batch[0]
    if isinstance(elem, torch.Tensor):
        for k, t in enumerate(batch):
            if not isinstance(t, torch.Tensor):
                raise CollateError(f"collate: {where} of item {k} is {type(t).__name__}, "
                                   f"item 0 has a tensor")
            if t.shape != elem.shape or t.dtype != elem.dtype or t.device != elem.device:
                raise CollateError(
                    f"collate: {where} of item {k} is {tuple(t.shape)} {t.dtype} on "
                    f"{t.device}, item 0 has {tuple(elem.shape)} {elem.dtype} on "
                    f"{elem.device}: items of one batch must match")
        if (elem.device.type != "cpu" or elem.is_sparse or elem.is_nested
                or any(t.requires_grad for t in batch)):  # torch's own handling for these
            return default_collate(list(batch))
        fields.append(list(batch))
        return _Slot(len(fields) - 1)
    if isinstance(elem, collections.abc.Mapping):
        keys = list(elem)
        for k, d in enumerate(batch):
            if not isinstance(d, collections.abc.Mapping) or list(d) != keys:
                raise CollateError(f"collate: {where} of item {k} does not have the keys "
                                   f"{keys} of item 0")
        return _Struct("dict", [_plan([d[key] for d in batch], fields, f"{where}[{key!r}]")
                                for key in keys], keys=keys)
    if isinstance(elem, (tuple, list)) and not isinstance(elem, str):
        for k, s in enumerate(batch):
            if not isinstance(s, (tuple, list)) or len(s) != len(elem):
                raise CollateError(f"collate: {where} of item {k} does not have the "
                                   f"{len(elem)} fields of item 0")
        parts = [_plan(list(samples), fields, f"{where}[{j}]")
                 for j, samples in enumerate(zip(*batch))]
        if isinstance(elem, tuple) and hasattr(elem, "_fields"):
            return _Struct("namedtuple", parts, cls=type(elem))
        return _Struct("list", parts)
    return default_collate(list(batch))


collate = PooledCollate()
"""The default :class:`PooledCollate` (4 buffers per process): ``collate_fn=collate``."""
