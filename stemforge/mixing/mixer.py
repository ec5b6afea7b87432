"""The Python API: ``Mixer(recipe, index).mixture(i, epoch=0)``, ``Mixer.mixtures(items)`` and
``render(spec, index)``."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import StemforgeWarning, check_count
from .recipe import Recipe
from .render import Rendered, render as render_spec, render_batch
from .sample import Sampler
from .sources import check_variants
from .spec import MixSpec


@dataclass(frozen=True)
class Mixture:
    """``mix`` float32 ``(C, T)``; ``targets`` name -> float32 ``(C, T)`` in the recipe's target
    order (``mix == sum(targets)``, unless the recipe's bus is ``linear: false``: then
    ``unmastered == sum(targets)``); ``spec`` every drawn value (re-render with ``render``),
    with the clip scale and peak recorded; ``sources`` stem -> post-gain, pre-scale float32
    ``(C, T)`` (only when asked for with ``keep_sources``, else None); ``target_stack`` the
    float32 ``(S, C, T)`` array the targets are rows of, when render made one."""

    mix: np.ndarray
    targets: dict[str, np.ndarray]
    spec: MixSpec
    sources: dict[str, np.ndarray] | None = None
    target_stack: np.ndarray | None = None
    #: the targets' sum when the bus is non-linear (``spec.master_linear`` False; ``mix`` is
    #: then the mastered mix, not that sum), else None
    unmastered: np.ndarray | None = None

    def stacked(self) -> np.ndarray:
        """Targets as one float32 array ``(S, C, T)`` in ``spec.targets`` order (the rendered
        array itself, no copy, when there is one)."""
        if self.target_stack is not None:
            return self.target_stack
        return np.stack([self.targets[t] for t in self.spec.targets])


def _mixture(spec: MixSpec, r: Rendered) -> Mixture:
    return Mixture(r.mix, r.targets, spec.rendered(r.scale, r.peak), r.sources, r.stacked,
                   r.unmastered)


def as_recipe(recipe, overrides=None) -> Recipe:
    """A :class:`Recipe` from a Recipe, a dict, a YAML path or a packaged recipe's name, with
    ``overrides`` applied (see :meth:`Recipe.with_overrides`)."""
    if isinstance(recipe, Recipe):
        return recipe.with_overrides(overrides) if overrides else recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe, overrides=overrides)
    return Recipe.load(recipe, overrides=overrides)


def as_index(index, layout=None):
    """An :class:`~stemforge.index.Index` from an Index, a dataset root or an index file
    (``layout``: see :meth:`Index.open`); for several datasets an
    :class:`~stemforge.indexset.IndexSet` from one or a mapping ``name -> Index | root``
    (``layout``: one for all, or a mapping ``name -> layout``)."""
    from ..index import Index
    from ..indexset import IndexSet

    if isinstance(index, (Index, IndexSet)):
        return index
    if isinstance(index, Mapping):
        layouts = layout if isinstance(layout, Mapping) else {}
        unknown = [k for k in layouts if k not in index]
        if unknown:
            from ..errors import ArgumentError
            raise ArgumentError(f"layout given for {', '.join(unknown)}, which no index is "
                                f"bound to (bound: {', '.join(index)})")
        return IndexSet({str(k): as_index(v, layouts.get(k, None if layouts else layout))
                         for k, v in index.items()})
    return Index.open(Path(index), layout=layout)


def bind(recipe: Recipe, index) -> Recipe:
    """``recipe`` closed over the stems of its split of ``index`` (:meth:`Recipe.bind`; the
    stems of every dataset's split for several datasets)."""
    if not recipe.open:
        return recipe
    from ..errors import IndexError_, RecipeError
    from ..indexset import IndexSet

    parts = index.datasets if isinstance(index, IndexSet) else {"": index}
    names: set[str] = set()
    for k, ix in parts.items():
        p = recipe.datasets.get(k) if recipe.datasets else None
        split = p.split if p is not None and (p.split or p.all_splits) else recipe.split
        try:
            names.update((ix.subset(split) if split else ix).stem_names)
        except IndexError_ as e:
            raise RecipeError(f"datasets.{k}.split" if k else "split", str(e)) from None
    return recipe.bind(sorted(names))


class Mixer:
    """Draws mixtures from ``recipe`` over ``index``. Item ``i`` of epoch ``e`` under ``seed`` is
    a pure function of (recipe, index, seed, e, i).

    :meth:`mixtures` is the batch path: the items' specs are drawn together (one loudness
    look-up for all of them, ``Sampler.draw_many``) and rendered together
    (:func:`~stemforge.mixing.render.render_batch`: the Python side of every item first,
    then the compiled passes), which is what a training loader or a writer of many items
    wants. :meth:`mixture` is the one-item case. Neither keeps state between calls: the
    result of a call depends only on its arguments.

    ``recipe``: Recipe, dict, YAML path or packaged recipe name; ``overrides``: fields to
    replace, validated like the file (``{"split": "test", "stems.vocals.snr": [uniform, -3,
    3]}`` or ``["split=test", ...]``); ``self.recipe`` is the effective recipe (overrides
    applied, ``*``/``rest`` targets bound to the index). ``index``: Index, root or index file
    (``layout``: see ``Index.open``); for a recipe with ``datasets:``, a mapping ``name ->
    Index | root`` (or an :class:`~stemforge.indexset.IndexSet`; ``layout`` then one for all
    or ``name -> layout``). ``warn``: emit a :class:`StemforgeWarning` for stems the
    recipe leaves out and tracks too short to be drawn. ``strict_split=False``: see
    :class:`~stemforge.mixing.sample.Sampler` (for re-opening existing sets only).
    """

    def __init__(self, recipe, index, seed: int = 0, overrides=None, layout=None,
                 warn: bool = True, strict_split: bool = True):
        self.seed = check_count(seed, "seed")
        self.index = as_index(index, layout)
        self.recipe = bind(as_recipe(recipe, overrides), self.index)
        self.sampler = Sampler(self.recipe, self.index, strict_split=strict_split)
        if warn:  # what the recipe silently leaves out of this index (once, not per worker)
            for msg in self.sampler.notices():
                warnings.warn(msg, StemforgeWarning, stacklevel=2)
        # mode cached: every variant the recipe can ask for is prepared (refused now, not mid-job)
        for pool in self.sampler.pools:
            check_variants(self.recipe, pool.index, pool.by_stem)

    def spec(self, i: int, epoch: int = 0) -> MixSpec:
        """Only the drawn values (cheap: no rendering, unless loudness needs processed audio);
        ``scale``/``peak`` are None until a render records them."""
        return self.sampler.draw(self.seed, check_count(epoch, "epoch"), check_count(i, "item"))[0]

    def mixture(self, i: int, epoch: int = 0, keep_sources: bool = False,
                out: tuple[np.ndarray, np.ndarray] | None = None) -> Mixture:
        """Item ``i`` of ``epoch``. ``out``: optional ``(mix (C, T), targets (S, C, T))``
        float32 arrays to render into (no copy; see :func:`stemforge.mixing.render.render`)."""
        spec, processed = self.sampler.draw(self.seed, check_count(epoch, "epoch"),
                                            check_count(i, "item"))
        return _mixture(spec, render_spec(spec, self.index, processed=processed,
                                          keep_sources=keep_sources, out=out))

    def mixtures(self, items, epoch: int = 0,
                 out: tuple[np.ndarray, np.ndarray] | None = None) -> list[Mixture]:
        """Items ``items`` of ``epoch``, in order; the same values as :meth:`mixture` of each.

        ``out``: optional ``(mix (B, C, T), targets (B, S, C, T))`` float32 C-contiguous arrays
        (e.g. a :class:`~stemforge.torch.BatchBuffer`'s): item ``k`` is rendered into row
        ``k`` and the returned arrays are views of them. Without ``out`` every item's arrays are
        new allocations held until the list is dropped (4 stereo targets of 5 s at 44.1 kHz:
        ~9 MB an item, fresh pages each time), so for many items pass ``out`` or call in small
        batches. An item that cannot be drawn raises its error (the first such item in order);
        nothing is rendered then."""
        items = [check_count(i, "item") for i in items]
        epoch = check_count(epoch, "epoch")
        B = len(items)
        rows = [None] * B
        if out is not None:
            try:
                mix, targets = out
            except (TypeError, ValueError):
                raise ValueError("Mixer.mixtures(out=...): expected a pair (mix (B, C, T), "
                                 "targets (B, S, C, T))") from None
            S, C, T = len(self.recipe.targets), self.recipe.channels, self.recipe.frames
            for name, a, shape in (("mix", mix, (B, C, T)), ("targets", targets, (B, S, C, T))):
                if getattr(a, "shape", None) != shape:
                    raise ValueError(f"Mixer.mixtures(out=...): {name} must have shape {shape}, "
                                     f"got {getattr(a, 'shape', type(a).__name__)}")
            rows = [(mix[k], targets[k]) for k in range(B)]
        specs = self.sampler.draw_many(self.seed, epoch, items)
        plain = [k for k, s in enumerate(specs) if s is not None]
        done = dict(zip(plain, render_batch([specs[k] for k in plain], self.index,
                                            [rows[k] for k in plain]), strict=True))
        result = []
        for k, spec in enumerate(specs):
            if spec is None:  # loudness measured on processed audio: drawn with it, rendered
                spec, processed = self.sampler.draw(self.seed, epoch, items[k])
                r = render_spec(spec, self.index, processed=processed, out=rows[k])
            else:
                r = done[k]
            result.append(_mixture(spec, r))
        return result


def render(spec: MixSpec, index) -> Mixture:
    """Re-render a recorded spec: identical bytes to the original mixture."""
    index = as_index(index)
    return _mixture(spec, render_spec(spec, index))
