"""What the torch sinks share: :class:`RecipeSource`, a dataset drawn by a ``Mixer`` with an epoch
in shared memory (``MixtureDataset``, ``MixtureStream``)."""
from __future__ import annotations

from ..mixing.activity import target_activity
from ..mixing.mixer import Mixer
from .convert import light_index


class RecipeSource:
    """What a torch sink built on a ``Mixer`` (``self.mixer``) and a :class:`~stemforge.torch.seeding.SharedEpoch`
    (``self._epoch``) says about its items, and how its epoch is set: one definition for
    ``MixtureDataset`` and ``MixtureStream``."""

    @property
    def targets(self) -> list[str]:
        """Target names in the order of the ``S`` axis of ``targets``."""
        return list(self.mixer.recipe.targets)

    @property
    def sample_rate(self) -> int:
        return self.mixer.recipe.sample_rate

    @property
    def channels(self) -> int:
        return self.mixer.recipe.channels

    @property
    def frames(self) -> int:
        return self.mixer.recipe.frames

    @property
    def epoch(self) -> int | None:
        """The epoch set (None before the first ``set_epoch`` when one is required)."""
        return self._epoch.get()

    def activity(self, specs) -> "torch.Tensor":
        """Which targets are active in each of ``specs``: bool ``(len(specs), S)`` in
        ``targets`` order (:mod:`stemforge.mixing.activity`; the recipe's ``balance``
        thresholds when it has one, else the defaults)."""
        import torch

        b = self.mixer.recipe.balance
        kw = {} if b is None else {"threshold_db": b.threshold_db, "min_active": b.min_active}
        rows = [target_activity(sp.sources, self.targets, self.mixer.index, **kw)
                for sp in specs]
        return torch.tensor(rows, dtype=torch.bool).reshape(len(rows), len(self.targets))

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for every following item, in this process and in all workers."""
        self._epoch.set(epoch)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        mixer = state.pop("mixer")
        state["_mixer_args"] = (mixer.recipe, light_index(mixer.index), mixer.seed)
        return state

    def __setstate__(self, state):
        recipe, index, seed = state.pop("_mixer_args")
        self.__dict__.update(state)
        self.mixer = Mixer(recipe, index, seed, warn=False)  # warned in the main process

