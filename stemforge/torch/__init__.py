"""PyTorch sinks: datasets that draw mixtures on the fly, worker-safe seeding, batch augmentation.

This is the only part of stemforge that imports torch; ``import stemforge`` never does.

* :class:`MixtureDataset` — map-style; item ``i`` of epoch ``e`` is a pure function of
  ``(seed, e, i)``; returns ``mix (C, T)``, ``targets (S, C, T)`` in ``dataset.targets`` order.
* :class:`ValidationDataset` (also ``MixtureDataset.validation``) — fixed coherent excerpts
  tiled over whole tracks, original gains, no augmentation.
* :class:`MixtureStream` — iterable, endless or per epoch, yields whole batches; identical at
  any ``num_workers``.
* :func:`collate` (a :class:`PooledCollate`) — ``DataLoader(..., collate_fn=collate)``: the
  same batches as ``default_collate``, in reused shared-memory buffers (no page faults per
  batch, no copy from workers); with ``MixtureDataset`` items are rendered straight into them
  (:class:`BatchBuffer`, also for custom sinks).
* :class:`BatchAugment` and its ops (:mod:`stemforge.torch.batch_augment`) — Demucs-style
  augmentation of ``(B, S, C, T)`` tensors on any device, seeded per ``(seed, epoch, batch)``.
"""
from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised by the no-torch subprocess test
    raise ImportError("stemforge.torch needs PyTorch (pip install torch); the rest of "
                      "stemforge works without it") from e

from .batch_augment import (AugmentError, BatchAugment, BatchOp, ChannelSwap, Gain, Polarity,
                            Remix, Shift)
from .collate import BatchBuffer, CollateError, PooledCollate, collate
from .convert import spec_dict, to_tensors
from .dataset import MixtureDataset
from .seeding import EpochError, SharedEpoch, batch_rng
from .stream import MixtureStream
from .validation import ValidationDataset

__all__ = ["MixtureDataset", "ValidationDataset", "MixtureStream", "BatchAugment", "BatchOp",
           "Gain", "Polarity", "ChannelSwap", "Shift", "Remix", "AugmentError", "EpochError",
           "SharedEpoch", "batch_rng", "spec_dict", "to_tensors", "collate", "PooledCollate",
           "CollateError", "BatchBuffer"]
