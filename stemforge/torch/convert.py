"""Conversions between stemforge's records and what the torch sinks hand out.

* :func:`to_tensors` — a :class:`~stemforge.mixing.mixer.Mixture` as ``(mix (C, T),
  targets (S, C, T))`` float32 tensors (+ :func:`spec_dict`), sharing the rendered arrays;
* :func:`spec_dict` — a spec as a ``default_collate``-friendly dict;
* :func:`light_index` — an index fit for pickling to DataLoader workers.
"""
from __future__ import annotations

import copy

import torch

from ..audio.cache import StemCache
from ..indexset import IndexSet
from ..mixing.mixer import Mixture
from ..mixing.spec import MixSpec


def light_index(index):
    """A shallow copy of ``index`` fit for pickling: no cached analysis memmaps (which would be
    pickled as full arrays) and a fresh StemCache (memmaps reopen lazily in the new process);
    each dataset's for an :class:`~stemforge.indexset.IndexSet`."""
    if isinstance(index, IndexSet):
        return IndexSet({k: light_index(v) for k, v in index.datasets.items()})
    ix = copy.copy(index)
    ix._energies = {}
    ix.cache = StemCache(index.cache.folder)
    return ix


def spec_dict(spec: MixSpec) -> dict:
    """A ``default_collate``-friendly view of a spec: ints, floats and strings only.

    Keys: ``item``, ``epoch``, ``seed`` (int, -1 when absent), ``mode`` (str), ``scale`` (float),
    ``json`` (the full spec; ``MixSpec.from_json(batch["json"][k])`` re-renders item k).
    """
    return {"item": -1 if spec.item is None else int(spec.item),
            "epoch": -1 if spec.epoch is None else int(spec.epoch),
            "seed": -1 if spec.seed is None else int(spec.seed),
            "mode": spec.mode, "scale": float(spec.scale if spec.scale is not None else 1.0),
            "json": spec.to_json(indent=None)}


def to_tensors(m: Mixture, return_spec: bool, unmastered: bool = False):
    """``(mix (C, T), targets (S, C, T))`` float32 tensors (+ the un-mastered sum (C, T) with
    ``unmastered``, + spec dict) over the mixture's arrays (no copy when render made the
    targets one array). The un-mastered sum is ``m.unmastered`` for a non-linear mastering
    bus, else the mix itself (then they are equal)."""
    out = [torch.from_numpy(m.mix), torch.from_numpy(m.stacked())]
    if unmastered:
        out.append(torch.from_numpy(m.mix if m.unmastered is None else m.unmastered))
    if return_spec:
        out.append(spec_dict(m.spec))
    return tuple(out)
