"""When a target is *active* in an item, and when a stem is *present* in a track.

One definition, used by the sampler's class balance (recipe ``balance:``) and by the torch
sinks' ``active`` flags, from the index's stored 10 ms K-weighted energies (no audio is read):

* a source's **active fraction** is the share of the 100 ms windows of its excerpt (the frames
  the spec reads, from its start, at the track's rate) whose K-weighted loudness exceeds
  ``threshold_db`` (:func:`stemforge.audio.loudness.active_fraction`, as the silence policy
  measures it); zeros appended by ``pad: true`` count as inactive; a dropped source is 0. It
  is measured before gain and augmentation (a pitch/tempo step's timing is approximated by
  the span read);
* a **target is active** in an item when one of its sources (mixup extras included) has an
  active fraction of at least ``min_active`` (and above 0);
* a **stem is present in a track** when some excerpt of the recipe's length on the 100 ms
  grid would make it active: at least ``max(1, min_active * W)`` of some ``W`` consecutive
  windows are active (``W`` = the excerpt's windows; a track shorter than the excerpt: of all
  its windows); a target is present when one of its member stems is.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ..indexset import source_index
from ..types import Decibels, Frames

THRESHOLD_DB: Decibels = -60.0   # dBFS (K-weighted) a 100 ms window must exceed to be active
MIN_ACTIVE = 0.1                 # share of an excerpt's windows a target needs to be active
WINDOW = 0.1                     # seconds per activity window


def source_active(index, src, threshold_db: Decibels = THRESHOLD_DB) -> float:
    """Active fraction in [0, 1] of a spec's (or a sampler draft's) source; see the module
    docstring."""
    have = src.source_frames
    if src.dropped or have <= 0:
        return 0.0
    ix = source_index(index, src)
    a = ix.active_fraction(src.track, src.stem, src.start, have, threshold_db)
    return a * have / (have + src.pad_frames)


def target_activity(sources: Iterable, targets: list[str], index,
                    threshold_db: Decibels = THRESHOLD_DB,
                    min_active: float = MIN_ACTIVE) -> list[bool]:
    """Per target (in ``targets`` order) whether it is active among ``sources`` (a spec's or
    a draft's)."""
    best = dict.fromkeys(targets, 0.0)
    for src in sources:
        if not src.dropped:
            best[src.target] = max(best[src.target], source_active(index, src, threshold_db))
    return [best[t] > 0 and best[t] >= min_active for t in targets]


def stem_present(index, track, stem: str, frames: Frames, threshold_db: Decibels = THRESHOLD_DB,
                 min_active: float = MIN_ACTIVE) -> bool:
    """Whether ``stem`` is present in ``track`` (an index Track) for excerpts of ``frames``
    frames at the track's rate; see the module docstring."""
    mask = index.activity(track.id, stem, threshold_db).astype(np.int64)
    w = max(1, math.ceil(frames / round(WINDOW * track.stems[stem].sample_rate)))
    need = max(1.0, min_active * w)
    if mask.shape[0] <= w:
        return bool(mask.sum() >= need)
    c = np.concatenate([[0], np.cumsum(mask)])
    return bool((c[w:] - c[:-w]).max() >= need)
