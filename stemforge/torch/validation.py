"""Validation data: fixed coherent excerpts tiled over whole tracks, original gains.

Like the seed tutorial's validation set: every excerpt takes all stems of one track at the same
start, with no augmentation, no loudness normalisation (gain 1 for every stem) and no clipping
fix, so ``mix`` is exactly the sum of the track's stems there. Windows of ``duration`` seconds
step by ``hop`` seconds (default: ``duration``) from the start of each track; when the last
window does not reach the end, one more window aligned to the track's end is added, so every
frame of every track is covered (``tail="cover"``; ``tail="drop"`` skips the remainder). Tracks
shorter than one window are skipped, listed in ``skipped`` and counted in a warning.

Which tracks: the ``split`` argument, never the training recipe's split (validating on the
training data says nothing). By default the index's ``valid`` (or ``validation``) split; an
index without one needs an explicit ``split=`` (a held-out split name, or ``"all"``).

Item ``i`` (see ``windows[i] = (track_id, start_frame)``) returns ``mix (C, T)`` and
``targets (S, C, T)`` float32 tensors in the target order ``targets`` (+ a spec dict with
``return_spec=True``). No randomness at all: no seed, no epoch.
"""
from __future__ import annotations

import warnings

from torch.utils.data import Dataset

from .. import __version__
from ..errors import ArgumentError, RecipeError, StemforgeWarning
from ..mixing.mixer import as_index, as_recipe, bind, render
from ..mixing.recipe import Recipe
from ..mixing.sample import Sampler
from ..mixing.sources import track_frames
from ..mixing.spec import MixSpec, SourceSpec
from .convert import light_index, to_tensors

TAILS = ("cover", "drop")
VALID_SPLITS = ("valid", "validation")   # MUSDB18's and Slakh's names for the validation split


def validation_split(index, split: str | None = None) -> str:
    """``split`` when given (a split name or ``"all"``), else the index's validation split;
    an index without one is refused (RecipeError naming its splits): validation needs an
    explicit choice there, not the training split by default."""
    if split is not None:
        return split
    have = sorted({str(t.split) for t in index.tracks})
    for name in VALID_SPLITS:
        if name in have:
            return name
    raise RecipeError("split", f"the index of {index.root} has no validation split ('valid'; "
                      f"its splits: {', '.join(have)}): choose the tracks to validate on "
                      "explicitly, split=NAME (a held-out split; models picked on 'test' are "
                      "not tested any more) or split='all'")


def validation_recipe(index, recipe_or_targets, duration=None, split=None) -> Recipe:
    """The recipe a validation set renders: targets, groups, rate and channels of the given
    recipe (or target names + the index's groups and format), coherent, unit gains, no
    augmentation, no clipping fix; on ``split`` (see :func:`validation_split`)."""
    if isinstance(recipe_or_targets, (list, tuple)) or (
            isinstance(recipe_or_targets, str) and not recipe_or_targets.endswith((".yaml", ".yml"))):
        targets = [recipe_or_targets] if isinstance(recipe_or_targets, str) else list(recipe_or_targets)
        if not index.tracks:
            raise RecipeError("targets", f"the index of {index.root} holds no tracks")
        first = index.tracks[0]
        raw = {"name": "validation", "targets": targets,
               "groups": {t: index.groups[t] for t in targets if t in index.groups},
               "sample_rate": first.sample_rate,
               "channels": max(t.channels for t in index.tracks),
               "duration": 10.0}
    else:
        base = bind(as_recipe(recipe_or_targets), index).to_dict()
        raw = {k: base[k] for k in ("name", "targets", "groups", "sample_rate", "channels",
                                    "resample", "sources", "duration", "exclude",
                                    "exclude_flagged") if k in base}
        raw["name"] = f"{raw.get('name', 'recipe')}-validation"
    if duration is not None:
        raw["duration"] = duration
    raw["split"] = validation_split(index, split)
    raw.update(modes={"coherent": 1.0}, clipping="none")
    return Recipe.from_dict(raw)


class ValidationDataset(Dataset):
    """See the module docstring. ``index``: Index, root or ``index.jsonl``;
    ``recipe_or_targets``: Recipe / YAML path / dict, or a list of target names (stems or index
    groups such as ``accompaniment``); ``duration``/``hop`` in seconds; ``split``: the tracks
    to validate on (default: the index's ``valid`` split, see :func:`validation_split`)."""

    def __init__(self, index, recipe_or_targets, duration=None, hop=None, split=None,
                 tail: str = "cover", return_spec: bool = False):
        index = as_index(index)
        if tail not in TAILS:
            raise ArgumentError(f"ValidationDataset: tail must be one of {TAILS}, got {tail!r}")
        self.recipe = validation_recipe(index, recipe_or_targets, duration, split)
        self.sampler = Sampler(self.recipe, index)  # validates stems, rates, channels, duration
        self.index = index
        self.return_spec = bool(return_spec)
        hop = self.recipe.duration if hop is None else hop
        if isinstance(hop, bool) or not isinstance(hop, (int, float)) or hop <= 0:
            raise RecipeError("hop", f"expected a positive number of seconds, got {hop!r}")
        self.hop = float(hop)
        self.windows: list[tuple[str, int]] = []
        self.skipped: list[str] = []
        T = self.recipe.frames
        for t in self.sampler.coherent:
            need = self.sampler._src_frames(t, T)
            if need > t.frames:
                self.skipped.append(t.id)
                continue
            step = max(1, int(round(self.hop * t.sample_rate)))
            starts = list(range(0, t.frames - need + 1, step))
            if tail == "cover" and starts[-1] + need < t.frames:
                starts.append(t.frames - need)
            excl = self.sampler.exclusions
            if excl is not None and excl.has_spans(t.id):  # windows over excluded spans go
                free = excl.starts(t, self.recipe.sources, need)
                starts = [s for s in starts if any(lo <= s <= hi for lo, hi in free)]
            self.windows += [(t.id, s) for s in starts]
        if self.skipped:
            warnings.warn(f"ValidationDataset: {len(self.skipped)} of {len(self.sampler.coherent)}"
                          f" tracks are shorter than one {self.recipe.duration:g} s window and "
                          f"are skipped (e.g. '{self.skipped[0]}')", StemforgeWarning,
                          stacklevel=2)
        self._hash = self.recipe.hash()

    @property
    def targets(self) -> list[str]:
        return list(self.recipe.targets)

    @property
    def sample_rate(self) -> int:
        return self.recipe.sample_rate

    @property
    def frames(self) -> int:
        return self.recipe.frames

    def __len__(self) -> int:
        return len(self.windows)

    def spec(self, i: int) -> MixSpec:
        """The spec of window ``i``: every stem of one track at one start, gain 1."""
        r = self.recipe
        tid, start = self.windows[i]
        track = self.index.track(tid)
        need = track_frames(track.sample_rate, r.sample_rate, r.frames)
        sources = [SourceSpec(stem=s, target=r.target_of(s), track=tid, start=start,
                              source_frames=need, gain_db=0.0, gain=1.0,
                              track_sample_rate=track.sample_rate) for s in r.sources]
        return MixSpec(sample_rate=r.sample_rate, channels=r.channels, frames=r.frames,
                       mode="coherent", targets=list(r.targets), sources=sources, ref_db=None,
                       clipping="none", scale=None, item=int(i), recipe_name=r.name,
                       recipe_hash=self._hash, version=__version__,
                       exclusions=self.sampler.exclusions.record if self.sampler.exclusions
                       else None)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self.windows):
            raise IndexError(f"window {i} out of range for {len(self.windows)} windows")
        return to_tensors(render(self.spec(i), self.index), self.return_spec)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("sampler")
        state["index"] = light_index(self.index)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.sampler = Sampler(self.recipe, self.index)
