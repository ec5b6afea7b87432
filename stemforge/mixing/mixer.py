"""The Python API: ``Mixer(recipe, index).mixture(i, epoch=0)`` and ``render(spec, index)``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .recipe import Recipe
from .render import finish as _finish, prepare as _prepare, render as _render
from .sample import Sampler
from .sources import check_variants
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
    a pure function of (recipe, index, seed, e, i).

    Read-ahead: when items are asked for in order (``i`` right after ``i - 1`` of the same
    epoch), the specs of the next ``READ_AHEAD - 1`` items are drawn together with item ``i``
    (``Sampler.draw_many``: one loudness look-up for the run) and their renders' first step
    is made (``render.prepare``: the sources' memmap views, gains and peak envelopes); both
    are kept for those calls, which then only run the compiled passes (``render.finish``).
    Drawing is a pure function of the item and preparing reads nothing, so this changes no
    value; it runs the Python side of 64 items back to back while it is cache-warm, instead of
    after each render has streamed ~16 MB through the caches (which made the same code about
    twice as slow). Not used for random access, and only for recipes whose draw measures no
    processed audio; items whose sources need processing are prepared when asked for (nothing
    large is held ahead).
    """

    READ_AHEAD = 64

    def __init__(self, recipe, index, seed: int = 0):
        self.recipe = _as_recipe(recipe)
        self.index = _as_index(index)
        self.seed = int(seed)
        self.sampler = Sampler(self.recipe, self.index)
        # mode cached: every variant the recipe can ask for is prepared (refused now, not mid-job)
        check_variants(self.recipe, self.sampler.index, self.sampler.by_stem)
        self._ahead: dict[tuple[int, int], MixSpec] = {}
        self._last: tuple[int, int] | None = None

    def _draw(self, i: int, epoch: int):
        """``(spec, processed, prepared)`` of item ``i``: ``sampler.draw``'s pair, from / filling
        the read-ahead (see the class doc); ``prepared`` is the render's first step
        (``render.prepare``) when the read-ahead made it, else None."""
        key = (epoch, i)
        got = self._ahead.pop(key, None)
        sequential = self._last == (epoch, i - 1)
        self._last = key
        if got is not None:
            return got[0], {}, got[1]
        self._ahead.clear()  # out of order: drop what was drawn for another run of items
        spec, processed = self.sampler.draw(self.seed, epoch, i)
        if sequential and not processed and self.READ_AHEAD > 1:
            # one batched loudness look-up for the run; it stops before the first item that
            # failed (raised again when that item is asked for) or would measure processed
            # audio (drawn, with its audio, when it is asked for)
            ahead = range(i + 1, i + self.READ_AHEAD)
            for j, nxt in zip(ahead, self.sampler.draw_many(self.seed, epoch, ahead)):
                if nxt is None or isinstance(nxt, Exception):
                    break
                self._ahead[(epoch, j)] = (nxt, self._prepare(nxt))
        return spec, processed, None

    def _prepare(self, spec: MixSpec):
        """``render.prepare`` of a read-ahead spec whose sources are all stored stems (views
        only), or None (then :meth:`mixture` renders it whole, raising any error there)."""
        try:
            return _prepare(spec, self.index, stored_only=True)
        except Exception:  # noqa: BLE001 - reported by the full render when the item is asked for
            return None

    def spec(self, i: int, epoch: int = 0) -> MixSpec:
        """Only the drawn values (cheap: no rendering, unless loudness needs processed audio)."""
        return self.sampler.draw(self.seed, epoch, i)[0]

    def mixture(self, i: int, epoch: int = 0, keep_sources: bool = False,
                out: tuple[np.ndarray, np.ndarray] | None = None) -> Mixture:
        """Item ``i`` of ``epoch``. ``out``: optional ``(mix (C, T), targets (S, C, T))`` float32
        arrays to render into (no copy; see :func:`stemforge.mixing.render.render`)."""
        spec, processed, prepared = self._draw(int(i), int(epoch))
        if prepared is not None and not keep_sources:
            out = _finish(prepared, out)
        else:
            out = _render(spec, self.index, processed=processed, keep_sources=keep_sources,
                          out=out)
        m = Mixture(out.mix, out.targets, spec)
        if keep_sources:
            m.sources = out.sources  # type: ignore[attr-defined]
        return m


def render(spec: MixSpec, index) -> Mixture:
    """Re-render a recorded spec: identical bytes to the original mixture."""
    index = _as_index(index)
    out = _render(spec, index)
    return Mixture(out.mix, out.targets, spec)
