"""Iterable training data: ``MixtureStream`` yields whole batches, endless or per epoch.

Batch ``b`` of epoch ``e`` holds items ``b*B .. b*B+B-1`` of epoch ``e`` — exactly the items a
:class:`MixtureDataset` with the same recipe, index and seed gives for those indices — stacked:
``mix (B, C, T)``, ``targets (B, S, C, T)`` (+ a list of spec dicts with ``return_spec``).
Use it with ``DataLoader(stream, batch_size=None, num_workers=W)``.

Worker sharding: worker ``w`` of ``W`` renders batches ``b ≡ w (mod W)``. The DataLoader asks
its workers for batches in round-robin order ``0, 1, .., W-1, 0, ..``, so it returns batches
``start, start+1, ..`` in order: the stream is identical at any ``num_workers``.

``durations=[3.0, 4.0, 6.0]`` (MSST's ``chunk_size_augm``): each batch draws its excerpt
length uniformly among these seconds, from ``(seed, epoch, batch)`` alone
(:func:`~stemforge.torch.seeding.batch_duration`), so the stream stays identical at any
``num_workers``; batch ``b`` then holds items ``b*B ..`` of the recipe with that ``duration``
(``recipe.with_overrides({"duration": d})``: each item a proper one, reproducible from its
spec), ``mix (B, C, T_b)``.

``active=True`` appends a bool ``(B, S)`` tensor: which targets are active in each item
(:mod:`stemforge.mixing.activity`).

``return_unmastered=True`` puts a float32 ``(B, C, T)`` tensor after ``targets``: each item's
targets' sum before a non-linear mastering bus (recipe ``master: {linear: false}``, where
``mix`` is the bus's output; for other recipes the mix itself), as
:class:`~stemforge.torch.MixtureDataset` gives per item. Batches are then
``(mix, targets, unmastered[, specs][, active])``; the third tensor is a copy, not pooled.

Epochs: an endless stream (``batches=None``) never repeats, so it needs no epoch (it uses
``epoch``, default 0; ``start`` resumes at a batch number). A finite stream (``batches=N``
per epoch) must be told its epoch: iterating it before ``set_epoch(e)`` raises
:class:`EpochError` (otherwise every epoch would silently be the same data).
"""
from __future__ import annotations

import itertools

import numpy as np
import torch
from torch.utils.data import IterableDataset

from ..errors import ArgumentError
from ..mixing.mixer import Mixer
from .collate import BatchBuffer
from .convert import spec_dict
from .seeding import EpochError, SharedEpoch, batch_duration, check_epoch, worker_info
from .source import RecipeSource


class MixtureStream(RecipeSource, IterableDataset):
    """See the module docstring. ``recipe``/``index``/``overrides``/``layout`` as for
    :class:`MixtureDataset`."""

    def __init__(self, recipe, index, batch_size: int, seed: int = 0, batches: int | None = None,
                 epoch: int | None = None, start: int = 0, return_spec: bool = False,
                 overrides=None, layout: str | None = None, active: bool = False,
                 durations=None, return_unmastered: bool = False):
        for name, v, low in (("batch_size", batch_size, 1), ("start", start, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ArgumentError(f"MixtureStream: {name} must be an integer >= {low}, got {v!r}")
        if batches is not None and (isinstance(batches, bool) or not isinstance(batches, int)
                                    or batches < 1):
            raise ArgumentError(f"MixtureStream: batches must be None (endless) or an integer >= 1, "
                             f"got {batches!r}")
        self.mixer = Mixer(recipe, index, seed, overrides=overrides, layout=layout)
        self.batch_size = batch_size
        self.batches = batches
        self.start = start
        self.return_spec = bool(return_spec)
        self.return_unmastered = bool(return_unmastered)
        self.active = bool(active)
        self.durations = None
        self._mixers: dict = {}
        if durations is not None:
            if isinstance(durations, (str, bytes)) or not hasattr(durations, "__len__") or \
                    not len(durations) or not all(
                        isinstance(d, (int, float)) and not isinstance(d, bool) and d > 0
                        for d in durations):
                raise ArgumentError(f"MixtureStream: durations must be a non-empty list of "
                                    f"seconds > 0, got {durations!r}")
            self.durations = [float(d) for d in durations]
            for d in self.durations:  # a recipe/index pairing error surfaces here, not later
                self._mixer_for(d, warn=True)
        if epoch is None and batches is None:
            epoch = 0
        self._epoch = SharedEpoch(None if epoch is None else check_epoch(epoch))

    def __len__(self) -> int:
        if self.batches is None:
            raise TypeError("an endless MixtureStream has no length")
        return self.batches - self.start if self.start < self.batches else 0

    def batch(self, b: int, epoch: int):
        """Batch ``b`` of ``epoch``: ``mix (B, C, T)``, ``targets (B, S, C, T)``
        [, unmastered (B, C, T)] [, specs] [, active (B, S)]."""
        B = self.batch_size
        mixer = self.mixer if self.durations is None else \
            self._mixer_for(batch_duration(self.durations, self.mixer.seed, epoch, b))
        # rendered straight into a pooled batch buffer (reused once the consumer drops the
        # batch; shipped to the main process as a file descriptor from a DataLoader worker)
        buf = BatchBuffer(mixer.recipe, B)
        ms = mixer.mixtures(range(b * B, b * B + B), epoch, out=(buf.mix, buf.targets))
        specs = [spec_dict(m.spec) for m in ms] if self.return_spec else None
        tail = (self.activity([m.spec for m in ms]),) if self.active else ()
        if self.return_unmastered:  # the mix itself where the bus is linear (or absent)
            unm = torch.from_numpy(np.stack([m.mix if m.unmastered is None else m.unmastered
                                             for m in ms]))
            del ms
            return buf.batch(None, kind="tuple",
                             tail=(unm,) + ((specs,) if specs is not None else ()) + tail)
        del ms
        return buf.batch(specs, kind="tuple", tail=tail)

    def _mixer_for(self, duration: float, warn: bool = False) -> Mixer:
        """The Mixer of the recipe with ``duration`` (made once per process)."""
        got = self._mixers.get(duration)
        if got is None:
            m = self.mixer
            recipe = m.recipe.with_overrides({"duration": duration})
            got = self._mixers[duration] = Mixer(recipe, m.index, m.seed, warn=warn)
        return got

    def __getstate__(self):
        state = super().__getstate__()
        state["_mixers"] = {}  # rebuilt lazily in each worker (small pickles)
        return state

    def __iter__(self):
        epoch = self._epoch.get()
        if epoch is None:
            raise EpochError("MixtureStream: a finite stream (batches per epoch given) needs "
                             "set_epoch(e) before it is iterated")
        wid, nw = worker_info()
        stop = self.batches
        numbers = itertools.count(self.start + wid, nw) if stop is None else \
            range(self.start + wid, stop, nw)
        for b in numbers:
            yield self.batch(b, epoch)

