"""The Python API: ``Mixer(recipe, index).mixture(i, epoch=0)`` and ``render(spec, index)``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .recipe import Recipe
from .render import render as _render
from .sample import Sampler
from .spec import MixSpec


@dataclass
class Mixture:
    """``mix`` float32 ``(C, T)``; ``targets`` name -> float32 ``(C, T)`` in the recipe's target
    order (``mix == sum(targets)``); ``spec`` every drawn value (re-render with ``render``)."""

    mix: np.ndarray
    targets: dict[str, np.ndarray]
    spec: MixSpec

    def stacked(self) -> np.ndarray:
        """Targets as one float32 array ``(S, C, T)`` in ``spec.targets`` order."""
        return np.stack([self.targets[t] for t in self.spec.targets])


def _as_recipe(recipe) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    return Recipe.load(recipe)


def _as_index(index):
    from ..index import Index

    return index if isinstance(index, Index) else Index.open(Path(index))


class Mixer:
    """Draws mixtures from ``recipe`` over ``index``. Item ``i`` of epoch ``e`` under ``seed`` is
    a pure function of (recipe, index, seed, e, i)."""

    def __init__(self, recipe, index, seed: int = 0):
        self.recipe = _as_recipe(recipe)
        self.index = _as_index(index)
        self.seed = int(seed)
        self.sampler = Sampler(self.recipe, self.index)

    def spec(self, i: int, epoch: int = 0) -> MixSpec:
        """Only the drawn values (cheap: no rendering, unless loudness needs processed audio)."""
        return self.sampler.draw(self.seed, epoch, i)[0]

    def mixture(self, i: int, epoch: int = 0, keep_sources: bool = False) -> Mixture:
        spec, processed = self.sampler.draw(self.seed, epoch, i)
        out = _render(spec, self.index, processed=processed, keep_sources=keep_sources)
        m = Mixture(out.mix, out.targets, spec)
        if keep_sources:
            m.sources = out.sources  # type: ignore[attr-defined]
        return m


def render(spec: MixSpec, index) -> Mixture:
    """Re-render a recorded spec: identical bytes to the original mixture."""
    index = _as_index(index)
    out = _render(spec, index)
    return Mixture(out.mix, out.targets, spec)
