"""Worker-safe seeding: the epoch shared with DataLoader workers, and per-batch generators.

Every random draw in :mod:`stemforge.torch` comes from a ``numpy.random.Generator`` built from a
``SeedSequence`` of integers that name *what* is drawn, never *who* draws it (worker id, process
id, call order). So a batch is the same at ``num_workers=0, 1, 4`` and in every run.

* items: ``SeedSequence([seed, epoch, item])`` (built by :func:`stemforge.mixing.sample.item_rng`)
* batch augmentation: ``SeedSequence([seed, epoch, batch], spawn_key=(BATCH_DOMAIN,))`` — a
  different domain, so batch ``b`` never reuses the stream of item ``b``;
* a stream's excerpt length per batch: the same with ``spawn_key=(LENGTH_DOMAIN,)``.

``SharedEpoch`` holds the epoch in shared memory created before the workers start, so
``dataset.set_epoch(e)`` in the main process is seen by *persistent* workers too (a plain
attribute would stay frozen in each worker's copy of the dataset).
"""
from __future__ import annotations

import multiprocessing as mp
from multiprocessing import context as mp_context

import numpy as np

from ..errors import StemforgeError

BATCH_DOMAIN = 0x62617463  # "batc": separates batch-augmentation streams from item streams
LENGTH_DOMAIN = 0x6c656e67  # "leng": a stream's per-batch excerpt length (MixtureStream)
UNSET = -(2 ** 62)         # the shared value before ``set_epoch`` when one is required


class EpochError(StemforgeError):
    """The epoch is missing or invalid (e.g. ``set_epoch`` was required but never called)."""


def batch_rng(seed: int, epoch: int, batch: int) -> np.random.Generator:
    """The generator for batch augmentation of batch ``batch`` in ``epoch``."""
    for name, v in (("seed", seed), ("epoch", epoch), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise EpochError(f"batch_rng: {name} must be an integer >= 0, got {v!r}")
    ss = np.random.SeedSequence([int(seed), int(epoch), int(batch)], spawn_key=(BATCH_DOMAIN,))
    return np.random.default_rng(ss)


def batch_duration(durations, seed: int, epoch: int, batch: int) -> float:
    """The excerpt length (seconds) of batch ``batch`` of ``epoch``: one uniform choice among
    ``durations`` from ``SeedSequence([seed, epoch, batch], spawn_key=(LENGTH_DOMAIN,))``."""
    ss = np.random.SeedSequence([int(seed), int(epoch), int(batch)], spawn_key=(LENGTH_DOMAIN,))
    return durations[int(np.random.default_rng(ss).integers(len(durations)))]


def check_epoch(epoch) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise EpochError(f"set_epoch: expected an integer epoch >= 0, got {epoch!r}")
    return int(epoch)


class SharedEpoch:
    """An epoch number visible to every process that inherits it (fork or spawn start).

    ``get()`` returns None until ``set()`` was called when created with ``epoch=None``.
    Pickling outside process start-up (e.g. ``pickle.dumps(dataset)``) stores the current value
    as a plain int; the copy is then independent of the original.
    """

    def __init__(self, epoch: int | None = 0):
        self._value = mp.RawValue("q", UNSET if epoch is None else check_epoch(epoch))

    def get(self) -> int | None:
        v = self._value.value
        return None if v == UNSET else int(v)

    def set(self, epoch: int) -> None:
        self._value.value = check_epoch(epoch)

    def __getstate__(self):
        if mp_context.get_spawning_popen() is not None:  # starting a worker: share the memory
            return {"shared": self._value}
        return {"value": self._value.value}

    def __setstate__(self, state):
        if "shared" in state:
            self._value = state["shared"]
        else:
            self._value = mp.RawValue("q", state["value"])


def worker_info() -> tuple[int, int]:
    """``(worker id, number of workers)`` of the current DataLoader worker; ``(0, 1)`` outside."""
    import torch.utils.data as tud

    info = tud.get_worker_info()
    return (0, 1) if info is None else (int(info.id), int(info.num_workers))
