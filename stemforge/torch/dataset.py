"""Map-style training data: ``MixtureDataset`` draws a fresh mixture per (seed, epoch, item).

Item ``i`` of epoch ``e`` is ``Mixer(recipe, index, seed).mixture(i, e)`` turned into tensors:

* ``mix``      float32 ``(C, T)``
* ``targets``  float32 ``(S, C, T)`` in the recipe's target order (``dataset.targets``), with
  ``mix == targets.sum(0)`` up to float32 rounding;
* ``unmastered`` (only with ``return_unmastered=True``) float32 ``(C, T)``: the targets' sum
  before a non-linear mastering bus (recipe ``master: {linear: false}``, where ``mix`` is the
  bus's output); for other recipes the mix itself;
* ``spec``     (only with ``return_spec=True``) a collate-friendly dict — see :func:`spec_dict`;
* ``active``   (only with ``active=True``, last) bool ``(S,)``: which targets are active in
  the item (:mod:`stemforge.mixing.activity`), ``(B, S)`` once collated.

It is a pure function of ``(recipe, index, seed, e, i)``: no global RNG, nothing depends on the
worker that renders it, so batches are identical at any ``num_workers`` and across runs.
``set_epoch(e)`` writes the epoch into shared memory (``SharedEpoch``), so persistent workers see
it; call it before iterating the DataLoader for epoch ``e``. With ``require_set_epoch=True``
reading an item before the first ``set_epoch`` raises :class:`EpochError` (use this to make a
forgotten ``set_epoch`` — every epoch silently identical — impossible).

Workers: the dataset pickles small (recipe + track metadata; no audio, no analysis arrays) and
rebuilds its Mixer on unpickling; StemCache memmaps are (re)opened lazily per process, so items
are read from prepared ``.npy`` memmaps with no per-item file opens when ``stemforge prepare``
has run (partial file reads otherwise).
"""
from __future__ import annotations

from torch.utils.data import Dataset

from ..errors import ArgumentError
from ..mixing.mixer import Mixer
from .collate import BatchBuffer
from .convert import spec_dict, to_tensors
from .seeding import EpochError, SharedEpoch, check_epoch
from .source import RecipeSource


class MixtureDataset(RecipeSource, Dataset):
    """Fresh mixtures from a recipe. See the module docstring.

    ``recipe``: Recipe, dict, YAML path or packaged recipe name; ``overrides``: recipe fields
    to replace (``{"split": "train", "duration": 3}`` or ``["split=train", ...]``, validated
    like the file; ``dataset.recipe`` is the effective recipe). ``index``: Index, dataset root,
    or ``index.jsonl`` (``layout``: see ``Index.open``; by default the one remembered from the
    last indexing of the root). ``length``: items per epoch. Errors in the recipe/index pairing
    (a target missing from the index, a sample-rate mismatch without ``resample: true``, no
    ``split`` on an index with several, ...) raise ``RecipeError`` here, in the main process,
    not later inside a worker; what the recipe silently leaves out (stems in no target, tracks
    too short) is a :class:`~stemforge.errors.StemforgeWarning`. ``return_unmastered``: items
    are ``(mix, targets, unmastered[, spec][, active])`` (see the module docstring); batches
    are then rendered item by item, not into a pooled buffer.
    """

    def __init__(self, recipe, index, length: int, seed: int = 0, epoch: int = 0,
                 return_spec: bool = False, require_set_epoch: bool = False, overrides=None,
                 layout: str | None = None, return_unmastered: bool = False,
                 active: bool = False):
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ArgumentError(f"MixtureDataset: length must be an integer >= 1, got {length!r}")
        self.mixer = Mixer(recipe, index, seed, overrides=overrides, layout=layout)
        self.length = length
        self.return_spec = bool(return_spec)
        self.return_unmastered = bool(return_unmastered)
        self.active = bool(active)
        self.require_set_epoch = bool(require_set_epoch)
        self._epoch = SharedEpoch(None if require_set_epoch else check_epoch(epoch))

    # ------------------------------------------------------------------ facts
    @property
    def recipe(self):
        return self.mixer.recipe

    @property
    def index(self):
        return self.mixer.index

    @property
    def seed(self) -> int:
        return self.mixer.seed

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return self.length

    def current_epoch(self) -> int:
        e = self._epoch.get()
        if e is None:
            raise EpochError(f"{type(self).__name__}: created with require_set_epoch=True but "
                             "set_epoch(e) was never called; call it before each epoch")
        return e

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(f"item {i} out of range for a dataset of length {self.length}")
        return self._item(self.mixer.mixture(int(i), self.current_epoch()))

    def _item(self, m):
        out = to_tensors(m, self.return_spec, self.return_unmastered)
        return out + (self.activity([m.spec])[0],) if self.active else out

    def __getitems__(self, indices):
        """Items ``indices`` of the current epoch for one DataLoader batch (torch >= 2.1 calls
        this instead of ``__getitem__`` per index): ``Mixer.mixtures`` of exactly these items,
        rendered straight into one pooled :class:`~stemforge.torch.collate.BatchBuffer` (no
        per-item buffer, no copy).

        Returns a list of the same items ``__getitem__`` gives (views into that buffer): with
        ``collate_fn=stemforge.torch.collate`` the DataLoader returns the buffer as the batch
        with no further copy; any other collate function sees a plain list of items."""
        epoch = self.current_epoch()
        indices = [int(i) for i in indices]
        for i in indices:
            if not 0 <= i < self.length:
                raise IndexError(f"item {i} out of range for a dataset of length {self.length}")
        if not indices:
            return []
        if self.return_unmastered:  # a third array per item: no pooled buffer for it
            return [self._item(m) for m in self.mixer.mixtures(indices, epoch)]
        buf = BatchBuffer(self.mixer.recipe, len(indices))
        ms = self.mixer.mixtures(indices, epoch, out=(buf.mix, buf.targets))
        specs = [spec_dict(m.spec) for m in ms] if self.return_spec else None
        tail = [(a,) for a in self.activity([m.spec for m in ms])] if self.active else None
        del ms
        return buf.items(specs, tail)

    def item(self, i: int, epoch: int):
        """Item ``i`` of an explicit ``epoch`` (ignores the current epoch)."""
        return self._item(self.mixer.mixture(int(i), check_epoch(epoch)))

    @classmethod
    def validation(cls, index, recipe_or_targets, duration=None, **kw):
        """Fixed coherent excerpts tiled over whole tracks: see :class:`ValidationDataset`."""
        from .validation import ValidationDataset

        return ValidationDataset(index, recipe_or_targets, duration, **kw)
