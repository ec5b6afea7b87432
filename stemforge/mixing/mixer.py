"""The Python API: ``Mixer(recipe, index).mixture(i, epoch=0)`` and ``render(spec, index)``."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..augment.variants import check_variants
from ..errors import StemforgeWarning
from .recipe import Recipe
from .render import finish as _finish, prepare as _prepare, render as _render
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


def as_recipe(recipe, overrides=None) -> Recipe:
    """A :class:`Recipe` from a Recipe, a dict, a YAML path or a packaged recipe's name, with
    ``overrides`` applied (see :meth:`Recipe.with_overrides`)."""
    if isinstance(recipe, Recipe):
        return recipe.with_overrides(overrides) if overrides else recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe, overrides=overrides)
    return Recipe.load(recipe, overrides=overrides)


def as_index(index, layout: str | None = None):
    """An :class:`~stemforge.index.Index` from an Index, a dataset root or an index file
    (``layout``: see :meth:`Index.open`)."""
    from ..index import Index

    return index if isinstance(index, Index) else Index.open(Path(index), layout=layout)


def bind(recipe: Recipe, index) -> Recipe:
    """``recipe`` closed over the stems of its split of ``index`` (:meth:`Recipe.bind`)."""
    if not recipe.open:
        return recipe
    from ..errors import IndexError_, RecipeError

    try:
        sub = index.subset(recipe.split) if recipe.split else index
    except IndexError_ as e:
        raise RecipeError("split", str(e)) from None
    return recipe.bind(sub.stem_names)


class Mixer:
    """Draws mixtures from ``recipe`` over ``index``. Item ``i`` of epoch ``e`` under ``seed`` is
    a pure function of (recipe, index, seed, e, i).

    ``recipe``: Recipe, dict, YAML path or packaged recipe name; ``overrides``: fields to
    replace, validated like the file (``{"split": "test", "stems.vocals.snr": [uniform, -3,
    3]}`` or ``["split=test", ...]``); ``self.recipe`` is the effective recipe (overrides
    applied, ``*``/``rest`` targets bound to the index). ``index``: Index, root or index file
    (``layout``: see ``Index.open``). ``warn``: emit a :class:`StemforgeWarning` for stems the
    recipe leaves out and tracks too short to be drawn. ``strict_split=False``: see
    :class:`~stemforge.mixing.sample.Sampler` (for re-opening existing sets only).

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

    def __init__(self, recipe, index, seed: int = 0, overrides=None, layout: str | None = None,
                 warn: bool = True, strict_split: bool = True):
        self.index = as_index(index, layout)
        self.recipe = bind(as_recipe(recipe, overrides), self.index)
        self.seed = int(seed)
        self.sampler = Sampler(self.recipe, self.index, strict_split=strict_split)
        if warn:  # what the recipe silently leaves out of this index (once, not per worker)
            for msg in self.sampler.notices():
                warnings.warn(msg, StemforgeWarning, stacklevel=2)
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
    index = as_index(index)
    out = _render(spec, index)
    return Mixture(out.mix, out.targets, spec)
