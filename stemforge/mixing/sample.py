"""Sampling: (recipe, index, seed, epoch, item) -> MixSpec. A pure function.

Randomness: one ``numpy.random.Generator`` per item, built from
``SeedSequence([seed, epoch, item])``; nothing else is random and no global RNG is touched, so
items are identical whatever order, process or machine draws them.

Draw order for one item (fixed, documented so specs can be audited):
1. mode (coherent/incoherent by the recipe's probabilities), then ``ref_db``;
2. for each source stem in recipe order: its augmentation steps (``Chain.draw``; shared steps
   once per mixture in coherent mode), level (snr or gain_db), boost, and drop (one uniform draw
   when the stem's drop probability is > 0);
3. placement: coherent — one track (from the first source's ``track`` distribution among tracks
   holding every source and long enough) and one start (the first source's ``start`` fraction of
   the valid range) for all stems; incoherent — per stem, a track holding it and a start;
4. silence policy: a target whose most active (non-dropped) member is active less than
   ``min_active`` of the excerpt triggers a re-draw of step 3 (coherent: everything; incoherent:
   that target's members), at most ``max_retries`` times; then ``on_exhausted`` decides
   (``keep``: the last draw is kept and a warning recorded in the spec; ``error``: SamplingError);
5. mixup (recipe ``mixup:``): per source stem, its extras (:meth:`Sampler._draw_mixup`);
6. the mastering bus's parameters (recipe ``master:``).

Gains: an ``snr`` source gets ``ref_db + snr + boost - max(loudness, -70)`` dB (Scaper). A source
whose excerpt is silent (loudness -inf: no block above the absolute gate) is not normalised: gain
``SILENT_GAIN_DB`` (0 dB), ``loudness: null`` in the spec. Specs hold only finite numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from ..audio import loudness as lufs
from ..augment.chain import loudness_span, source_frames
from ..augment.grid import entry_points
from ..errors import IndexError_, RecipeError, SamplingError
from ._seeding import ItemGenerators, pcg64_states
from ..indexset import IndexSet, source_index
from .master import draw_master
from .recipe import Recipe
from .activity import stem_present, target_activity
from .sources import event_audio, place_event, process_stem, track_frames, variant_energies
from .spec import EventPlacement, MixSpec, SourceSpec

LOUDNESS_FLOOR = -70.0  # Scaper floors measured loudness at -70 LUFS
#: gain of an ``snr`` source whose excerpt is silent: no 400 ms block reaches the -70 LUFS
#: absolute gate, so its loudness is -inf and there is nothing to normalise. It is added as it
#: is (0 dB; digital silence stays zeros, a sub-gate noise floor is not raised by up to ~100 dB
#: to the target level) and its spec records ``loudness: null`` (docs/mixing.md, "Silent sources")
SILENT_GAIN_DB = 0.0
ENERGY_PRESERVING = {"polarity", "channel_swap"}  # K-weighted energy unchanged by these steps
MIXUP_TRIES = 100  # draws of a mixup extra's track until it is one its slot does not use yet


_U32 = 1 << 32


def item_rng(seed: int, epoch: int, item: int) -> np.random.Generator:
    """The generator for one item: ``default_rng(SeedSequence([seed, epoch, item]))``.

    When all three fit in 32 bits the entropy is handed over as a uint32 array: SeedSequence
    reads it as the same words it makes of the list (same state, same draws; tested), without
    its per-int conversion (a quarter of this call's cost)."""
    seed, epoch, item = int(seed), int(epoch), int(item)
    if 0 <= seed < _U32 and 0 <= epoch < _U32 and 0 <= item < _U32:
        entropy = np.array((seed, epoch, item), np.uint32)
    else:
        entropy = [seed, epoch, item]
    return np.random.default_rng(np.random.SeedSequence(entropy))


class Sampler:
    """Pre-computed candidate lists for one (recipe, index); ``draw(seed, epoch, item)``.
    ``strict_split=False`` skips :func:`check_split` (re-opening a set generated before
    recipes had to name their split)."""

    def __init__(self, recipe: Recipe, index, strict_split: bool = True):
        self.recipe = recipe
        if recipe.open:
            raise RecipeError("targets", f"{recipe.targets} must be bound to the index's stems "
                              "first (Recipe.bind; Mixer does it)")
        self.exclusions = None   # stemforge doctor's exclusion list, applied in _pool
        if recipe.pad and any(entry_points(e) is not None for e in recipe.augment.entries):
            raise RecipeError("pad", "pad: true cannot be combined with mode: cached pitch/tempo "
                              "steps (variants are read at the drawn start, not zero-padded)")
        n = recipe.frames
        self._frames = n
        if recipe.datasets is None:
            if isinstance(index, IndexSet):
                if len(index.datasets) != 1:
                    raise RecipeError("datasets", f"missing, and {len(index.datasets)} datasets "
                                      f"are bound ({', '.join(index.datasets)}); name them with "
                                      "their weights, e.g. datasets: {"
                                      + ", ".join(f"{k}: 1" for k in index.datasets) + "}")
                index = next(iter(index.datasets.values()))
            self.pools = [self._pool("", index, recipe.split, recipe.all_splits, 1.0,
                                     strict_split)]
            self.index = self.pools[0].index
        else:
            bound = index.datasets if isinstance(index, IndexSet) else None
            names = list(recipe.datasets)
            if bound is None:
                if len(names) != 1:
                    raise RecipeError("datasets", f"names {', '.join(names)} but one index is "
                                      "given; bind each name to an index: Mixer(recipe, {"
                                      + ", ".join(f"'{k}': ..." for k in names)
                                      + "}) or --index NAME=ROOT per dataset")
                bound = {names[0]: index}
            missing = [k for k in names if k not in bound]
            extra = [k for k in bound if k not in recipe.datasets]
            if missing or extra:
                raise RecipeError("datasets", f"names {', '.join(names)}, but the bound datasets "
                                  f"are {', '.join(bound)}"
                                  + (f" ({', '.join(missing)} unbound)" if missing else "")
                                  + (f" ({', '.join(extra)} not in the recipe)" if extra else ""))
            named = [st for st in recipe.sources if _named_tracks(recipe.stems[st].track)]
            if named:
                raise RecipeError(recipe.stems[named[0]].track.field, "names tracks, which "
                                  "several datasets cannot resolve (track names are per "
                                  "dataset); leave track: [choose, []]")
            self.pools = []
            for k in names:
                p = recipe.datasets[k]
                split, all_splits = (p.split, p.all_splits) if (p.split or p.all_splits) else \
                    (recipe.split, recipe.all_splits)
                self.pools.append(self._pool(k, bound[k], split, all_splits, p.weight,
                                             strict_split))
            if recipe.datasets[names[0]].weight is None:  # by_duration: seconds of audio
                for pool in self.pools:
                    pool.weight = sum(t.duration for t in pool.index.tracks
                                      if any(st in t.stems for st in recipe.sources))
            self.index = IndexSet({pool.name: pool.index for pool in self.pools})
        # each dataset's doctor exclusions (None: none), and what specs record of them
        self._exclusions = {pool.name: pool.exclusions for pool in self.pools}
        self._exclusion_record = None
        if recipe.exclusions is not None:
            from ..doctor.exclude import record_of

            self._exclusion_record = record_of(self._exclusions)
        total = sum(pool.weight for pool in self.pools)
        acc, self._pool_cum = 0.0, []
        for pool in self.pools:  # cumulative probabilities (one uniform draw picks a dataset)
            acc += pool.weight / total
            self._pool_cum.append(acc)
        self.by_stem = {st: [t for pool in self.pools for t in pool.by_stem[st]]
                        for st in recipe.sources}
        self.coherent = [t for pool in self.pools for t in pool.coherent]
        self.hash = recipe.hash()
        self._memo: dict = {}
        self._target = {s: recipe.target_of(s) for s in recipe.sources}
        self._gens = ItemGenerators()
        # per-field drawers (Distribution.drawer: the same draws without per-call dispatch)
        self._frames = n
        self._ref_draw = recipe.ref_db.drawer()
        self._stem_plan = [(s, recipe.stems[s].level[1].drawer(), recipe.stems[s].boost.drawer(),
                            recipe.stems[s].drop) for s in recipe.sources]
        self._stem_drawers = {s: (lv, b) for s, lv, b, _ in self._stem_plan}
        self._place_draw = {s: (recipe.stems[s].track.drawer(), recipe.stems[s].start.drawer())
                            for s in recipe.sources}
        self._by_duration = recipe.tracks == "by_duration"
        if self._by_duration:
            named = [st for st in recipe.sources if _named_tracks(recipe.stems[st].track)]
            if named:
                raise RecipeError(recipe.stems[named[0]].track.field, "names tracks, but "
                                  "tracks: by_duration draws every track by its length; leave "
                                  "track: [choose, []]")
        self._any_snr = any(recipe.stems[s].level[0] == "snr" for s in recipe.sources)
        self._level_kind = {s: recipe.stems[s].level[0] for s in recipe.sources}
        self._events = any(recipe.stems[s].is_event for s in recipe.sources) or \
            recipe.fade_in > 0 or recipe.fade_out > 0
        if recipe.pad and self._events:
            raise RecipeError("pad", "pad: true zero-pads whole-mixture stems; events (Scaper's "
                              "event model: event_time, event_duration, fades) place their own "
                              "excerpts, so the two cannot be combined")
        self._energy_memo: dict = {}
        self._mixup = self._check_mixup()
        self._balance = self._presence() if recipe.balance is not None else None

    def _check_mixup(self):
        """The recipe's mixup (None when it adds nothing), refused where it has no meaning:
        with Scaper's event model, with named tracks, or with too few tracks holding a stem."""
        r = self.recipe
        if r.mixup is None or not r.mixup.p:
            return None
        if self._events:
            raise RecipeError("mixup", "cannot be combined with Scaper's event model "
                              "(event_time, event_duration, events, role, fades): mixup adds "
                              "whole-mixture stems")
        for s, p in r.mixup.p.items():
            if _named_tracks(r.stems[s].track):
                raise RecipeError(r.stems[s].track.field, f"names tracks, but mixup draws "
                                  f"extra {s!r} stems from other tracks; leave track: "
                                  "[choose, []] or set mixup.p for this stem to []")
            for pool in self.pools:
                have = len(pool.by_stem[s])
                if have < 1 + len(p):
                    raise RecipeError("mixup.p", f"up to {len(p)} extra {s!r} stem(s) from "
                                      f"other tracks need {1 + len(p)} tracks holding it, but "
                                      f"the index of {_where(pool)} has {have}")
        return {s: (p, self._stem_drawers[s]) for s, p in r.mixup.p.items()}, \
            r.mixup.gain_db.drawer()

    def _presence(self):
        """Class balance: per dataset, the stems present in each candidate track, and the
        rare targets (present in more than none and at most ``max_presence`` of its tracks
        holding a source), in recipe order (:mod:`.activity` has the definitions)."""
        r, b = self.recipe, self.recipe.balance
        if self._events:
            raise RecipeError("balance", "cannot be combined with Scaper's event model (events "
                              "are placed where they are drawn, not where a stem is active)")
        if len(self.pools) > 1 and r.dataset_mode == "across":
            raise RecipeError("balance", "needs each item's stems from one dataset "
                              "(dataset_mode: within): rarity is counted per dataset")
        present, rare, share = {}, {}, {}
        for pool in self.pools:
            tracks = [t for t in pool.index.tracks if any(x in t.stems for x in r.sources)]
            n = self._frames
            stems = {t.id: frozenset(x for x in r.sources if x in t.stems and stem_present(
                pool.index, t, x, self._src_frames(t, n), b.threshold_db, b.min_active))
                for t in tracks}
            present[pool.name] = stems
            share[pool.name] = {
                g: sum(1 for t in tracks if stems[t.id] & set(r.members(g))) / len(tracks)
                for g in r.targets}
            rare[pool.name] = [g for g in r.targets if 0 < share[pool.name][g] <= b.max_presence]
        return present, rare, share

    def _anchored(self, pool: "Pool", cands: list, anchor: str, stem: str | None) -> list:
        """``cands`` restricted to tracks where the anchor target (coherent: ``stem`` None) or
        its member ``stem`` is present; unrestricted when none is (the anchor then fails its
        activity check, and the silence policy's retries end in a recorded warning)."""
        key = ("\0anchored", pool.name, anchor, stem)
        got = self._memo.get(key)
        if got is None:
            present = self._balance[0][pool.name]
            want = set(self.recipe.members(anchor)) if stem is None else {stem}
            got = [t for t in cands if present.get(t.id, frozenset()) & want]
            if not got:
                got = cands
            self._memo[key] = got
        return got

    def _draw_anchor(self, rng, pool: "Pool") -> str | None:
        """The item's anchor: one uniform draw among ``pool``'s rare targets (none: None,
        and nothing is drawn)."""
        rare = self._balance[1][pool.name]
        if not rare:
            return None
        return rare[min(int(rng.random() * len(rare)), len(rare) - 1)]

    def _anchor_active(self, anchor: str, per: dict, placement: dict) -> bool:
        """Whether the anchor target is active as placed (True when all its members are
        dropped: nothing can make it active)."""
        b = self.recipe.balance
        members = [x for x in self.recipe.members(anchor) if not per[x].dropped]
        if not members:
            return True
        for x in members:
            self._put(per[x], *placement[x])
        return target_activity([per[x] for x in members], [anchor], self.index,
                               b.threshold_db, b.min_active)[0]

    def _pool(self, name: str, index, split, all_splits: bool, weight, strict_split: bool):
        """One dataset's candidate tracks (its split), checked against the recipe."""
        recipe = self.recipe
        where = f"dataset {name!r} ({index.root})" if name else str(index.root)
        if strict_split and not name:
            check_split(recipe, index)
        elif strict_split:
            check_split(recipe, index, split, all_splits, f"datasets.{name}.split")
        try:
            idx = index.subset(split) if split else index
        except IndexError_ as e:
            raise RecipeError(f"datasets.{name}.split" if name else "split", str(e)) from None
        excl = None  # stemforge doctor's list: tracks, stems, spans of this dataset's root
        if recipe.exclusions is not None:
            excl = recipe.exclusions.apply(idx, "exclude_flagged", name)
            idx = excl.index
            if not name:
                self.exclusions = excl
        if len(idx) == 0:
            raise RecipeError("split", f"no tracks in the index of {where} for split {split}")
        of = f" of dataset {name!r}" if name else ""
        have = set(idx.stem_names)
        for s in recipe.sources:
            if s not in have:
                where_f = "targets" if s in recipe.targets else f"groups ({recipe.target_of(s)})"
                hint = ""
                if s in getattr(index, "groups", {}):
                    members = ", ".join(index.groups[s])
                    hint = (f"; {s!r} is a group of the index: declare it in the recipe, "
                            f"groups: {{{s}: [{members}]}} (recipes are self-contained so that "
                            "their hash defines the output)")
                elif name:
                    hint = (f"; every dataset must hold every source stem: map its stems onto "
                            f"the recipe's with a taxonomy (--taxonomy {name}=FILE.yaml)")
                raise RecipeError(where_f, f"stem {s!r} is not in the index of {where} "
                                  f"(it has {', '.join(sorted(have))}){hint}")
        for t in idx.tracks:
            if t.sample_rate != recipe.sample_rate and not recipe.resample:
                raise RecipeError("sample_rate", f"{recipe.sample_rate} Hz but track '{t.id}' is "
                                  f"{t.sample_rate} Hz; set resample: true to convert")
            if t.channels not in (1, recipe.channels) and recipe.channels != 1:
                raise RecipeError("channels", f"{recipe.channels} channels cannot be made from "
                                  f"track '{t.id}' with {t.channels} channels")
        by_stem = {s: [t for t in idx.tracks if s in t.stems] for s in recipe.sources}
        for s in recipe.sources:  # named tracks must exist: refused now, not at some item
            dist = recipe.stems[s].track
            named = _named_tracks(dist)
            have = {t.id for t in by_stem[s]}
            bad = [v for v in named if v not in have]
            if bad:
                raise RecipeError(dist.field, f"track {bad[0]!r} is not a track holding {s!r} "
                                  f"in the index of {where}"
                                  + (f" (split {', '.join(split)})" if split else ""))
        coherent = [t for t in idx.tracks if all(s in t.stems for s in recipe.sources)]
        if recipe.modes.get("coherent", 0) > 0 and not coherent:
            raise RecipeError("modes.coherent", f"no track of {where} holds every source stem "
                              f"({', '.join(recipe.sources)}); use incoherent mixing")
        longest = max(t.frames * recipe.sample_rate / t.sample_rate for t in idx.tracks)
        if self._frames > longest and not recipe.pad:
            raise RecipeError("duration", f"{recipe.duration:g} s is longer than every track{of} "
                              f"(longest {longest / recipe.sample_rate:.2f} s); set pad: true to "
                              "draw tracks zero-padded (Demucs-style)")
        return Pool(name, idx, by_stem, coherent, weight, split, excl)

    def _pick_pool(self, rng) -> "Pool":
        """The dataset of a draw: one uniform draw against the cumulative weights; no draw
        at all with one dataset (one-dataset recipes draw what they always drew)."""
        if len(self.pools) == 1:
            return self.pools[0]
        u = rng.random()
        for pool, acc in zip(self.pools, self._pool_cum, strict=True):
            if u < acc:
                return pool
        return self.pools[-1]

    def notices(self) -> list[str]:
        """What this recipe silently leaves out of its split of the index: stems in no target
        (unless ``exclude``-d) and tracks shorter than the excerpt (unless ``pad``). Empty
        when nothing is left out; ``Mixer`` emits them as warnings."""
        r, out = self.recipe, []
        for pool in self.pools:
            idx = pool.index
            of = f" of dataset '{pool.name}'" if pool.name else ""
            unused = [s for s in idx.stem_names if s not in r.sources and s not in r.exclude]
            if unused:
                out.append(f"recipe '{r.name}': stem(s) {', '.join(unused)} of the index{of} are "
                           f"in no target, so every mixture leaves them out (mix = sum of the "
                           f"targets {', '.join(r.targets)}); add `rest` to targets to collect "
                           f"them in one target, or list them under `exclude:` to say it is meant")
            used = [t for t in idx.tracks if any(s in t.stems for s in r.sources)]
            short = [t for t in used if self._src_frames(t, r.frames) > t.frames]
            if short and not r.pad:
                out.append(f"recipe '{r.name}': {len(short)} of {len(used)} tracks{of} are "
                           f"shorter than its duration ({r.duration:g} s) and are never drawn "
                           f"(e.g. '{short[0].id}', {short[0].duration:.2f} s); set pad: true to "
                           "draw them zero-padded (Demucs-style), or lower duration")
        if self._balance is not None:
            for pool in self.pools:
                if not self._balance[1][pool.name]:
                    of = f" of dataset '{pool.name}'" if pool.name else ""
                    shares = ", ".join(f"{t} {100 * v:.0f} %"
                                       for t, v in self._balance[2][pool.name].items())
                    out.append(f"recipe '{r.name}': balance: no target is rare in the "
                               f"tracks{of} (present in some but at most "
                               f"{r.balance.max_presence:g} of them; presence: {shares}), so "
                               "its items are drawn unbalanced")
        return out

    # ------------------------------------------------------------------ helpers
    def _src_frames(self, track, n_out: int) -> int:
        """Track-rate frames to read so that ``n_out`` frames exist at the recipe rate."""
        return track_frames(track.sample_rate, self.recipe.sample_rate, n_out)

    def _candidates(self, key: str, cands, need: int):
        """Tracks of ``cands`` long enough for ``need`` output frames, and their ids (memoised
        per (candidate list, need): placement is hot, datasets can hold thousands of tracks)."""
        memo = self._memo.get((key, need))
        if memo is None:
            ok = [t for t in cands if self.recipe.pad or self._src_frames(t, need) <= t.frames]
            excl = self._exclusions.get(key[0])  # the placement's dataset's
            if excl is not None:
                ok = [t for t in ok if excl.fits(t, self._placed(key), self._src_frames(t, need))]
            cum = None
            if self._by_duration and ok:  # seconds of valid starts (a padded track: one start)
                cum = np.cumsum([(max(0, t.frames - self._src_frames(t, need)) + 1)
                                 / t.sample_rate for t in ok])
            memo = self._memo[(key, need)] = (ok, [t.id for t in ok], {t.id for t in ok}, cum)
        return memo

    def _draw_track(self, rng, stem: str, ids: list, cum) -> str:
        """A track id: the stem's ``track`` distribution, or with ``tracks: by_duration`` one
        uniform draw against the candidates' cumulative valid-start seconds."""
        if cum is None:
            return self._place_draw[stem][0](rng, ids)
        k = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
        return ids[min(k, len(ids) - 1)]

    def _place(self, rng, stem, pool: "Pool", coherent: bool, need, what, anchor=None):
        """``(track, start, pool)`` for ``stem``'s track and start distributions among
        ``pool``'s tracks holding every source (``coherent``) or ``stem``, long enough for
        ``need`` output frames (and, with a class-balance ``anchor``, where it is present);
        None when none is."""
        key = (pool.name, "\0coherent" if coherent else stem)
        cands = pool.coherent if coherent else pool.by_stem[stem]
        if anchor is not None:
            cands = self._anchored(pool, cands, anchor, None if coherent else stem)
            key = (*key, anchor)
        ok, ids, idset, cum = self._candidates(key, cands, need)
        if not ok:
            return None
        draw_start = self._place_draw[stem][1]
        tid = self._draw_track(rng, stem, ids, cum)
        if tid not in idset:
            field = self.recipe.stems[stem].track.field
            raise RecipeError(field, f"track {tid!r} is not a candidate for {what} "
                              "(not in the index/split, lacks the stem, or too short)")
        track = pool.index.track(tid)
        span = max(0, track.frames - self._src_frames(track, need))  # 0: a padded short track
        frac = float(draw_start(rng))
        if pool.exclusions is not None and pool.exclusions.has_spans(track.id):
            start = pool.exclusions.place(track, self._placed(key),
                                          self._src_frames(track, need), frac)
        else:
            start = int(round(frac * span))
        return track, start, pool

    def _placed(self, key) -> list[str]:
        """The stems one placement puts at its start (``_place``'s key: ``(dataset, stem or
        "\0coherent")``)."""
        return list(self.recipe.sources) if key[1] == "\0coherent" else [key[1]]

    # ------------------------------------------------------------------ draw
    def draw(self, seed: int, epoch: int, item: int) -> tuple[MixSpec, dict]:
        """Draw one MixSpec. Returns ``(spec, processed)`` where ``processed`` maps stem ->
        pre-gain audio computed while measuring loudness (reused by render when given)."""
        return self._draw_items(seed, epoch, (item,), measure=True)[0]

    def draw_many(self, seed: int, epoch: int, items) -> list[MixSpec | None]:
        """:meth:`draw`'s specs of several items, the same values, with one loudness look-up
        for all of them (index energies of every snr source of every item: one batched call
        per (rate, span) instead of one per item). Returns one entry per item, in order: its
        spec, or None when its loudness has to be measured on processed audio (not done here,
        so nothing large is held for a batch: :meth:`draw` that item when it is rendered).
        An item that cannot be drawn raises its error (the first such item in order)."""
        return [None if d is None else d[0]
                for d in self._draw_items(seed, epoch, items, measure=False)]

    def _draw_items(self, seed: int, epoch: int, items, measure: bool) -> list:
        """``(spec, processed)`` per item (None for an item left unmeasured when not
        ``measure``): every item's draws, then one loudness look-up for all snr sources,
        then the gains."""
        items = list(items)
        states = pcg64_states(seed, epoch, items) or [None] * len(items)
        drafts = [self._begin(seed, epoch, item, state)
                  for item, state in zip(items, states, strict=True)]
        entries = [(x, d) for d in drafts for x in d.sources if x.level == "snr"]
        loud = self._loudness_many([(x, source_index(self.index, x).track(x.track),
                                     d.processed) for x, d in entries], measure=measure)
        per_item: dict[int, dict[str, float | None]] = {}
        for (x, d), L in zip(entries, loud, strict=True):
            per_item.setdefault(id(d), {})[x.key] = L
        out = []
        for d in drafts:
            got = per_item.get(id(d), {})
            out.append(None if any(L is None for L in got.values()) else self._finish(d, got))
        return out

    def _begin(self, seed: int, epoch: int, item: int, state=None) -> "ItemDraft":
        """Every draw of an item up to its loudness look-up: mode, ref_db, per-source values,
        placement (silence policy included). ``state``: the item's PCG64 state from
        ``_seeding.pcg64_states`` (the same generator as :func:`item_rng`, without building a
        SeedSequence), or None to build it."""
        r = self.recipe
        rng = item_rng(seed, epoch, item) if state is None else self._gens.get(state)
        modes = list(r.modes)
        if len(modes) > 1:  # one uniform draw against the cumulative probabilities
            u, acc, mode = rng.random(), 0.0, modes[-1]
            for m in modes:
                acc += r.modes[m]
                if u < acc:
                    mode = m
                    break
        else:
            mode = modes[0]
        ref_db = float(self._ref_draw(rng))
        n = self._frames
        aug = bool(r.augment.entries)
        ctx = {"sample_rate": r.sample_rate, "channels": r.channels, "mode": mode,
               "shared": {}} if aug else None
        if self._events:
            sources = self._event_sources(rng, mode, ctx, item)
            warnings = [] if sources else ["no events drawn: a silent mixture (Scaper: a silent "
                                           "soundscape)"]
            return ItemDraft(item, seed, epoch, mode, ref_db, sources, 1, warnings,
                             master=self._draw_master(rng))
        per: dict[str, SourceDraw] = {}
        for s, draw_level, draw_boost, drop in self._stem_plan:
            steps = r.augment.draw(rng, s, ctx) if aug else []
            level = float(draw_level(rng))
            boost = float(draw_boost(rng))
            dropped = bool(rng.random() < drop) if drop > 0 else False
            per[s] = SourceDraw(s, self._target[s], self._level_kind[s], level, boost, dropped,
                                steps, source_frames(steps, n) if steps else n)

        placement: dict[str, tuple] = {}
        attempts, warnings = 0, []
        pending = list(r.sources)
        # incoherent stems within one dataset: the item's, drawn once (across: one per stem)
        item_pool = self._pick_pool(rng) if mode != "coherent" and \
            r.dataset_mode == "within" else None
        anchor = item_pool_b = None
        if self._balance is not None:  # class balance: the item's pool and anchor, once
            item_pool_b = item_pool or self._pick_pool(rng)
            anchor = self._draw_anchor(rng, item_pool_b)
        anchored = set(r.members(anchor)) if anchor is not None else ()
        while True:
            attempts += 1
            if mode == "coherent":
                need = max(d.need for d in per.values()) if aug else n
                pool = item_pool_b or self._pick_pool(rng)
                got = self._place(rng, r.sources[0], pool, True, need, "all sources", anchor)
                if got is None:
                    raise SamplingError(f"item {item}: no track{_of(pool)} is long enough for "
                                        f"{need / r.sample_rate:.2f} s of every source")
                placement = dict.fromkeys(r.sources, got)
            else:
                for s in pending:
                    pool = item_pool or self._pick_pool(rng)
                    got = self._place(rng, s, pool, False, per[s].need, s,
                                      anchor if s in anchored else None)
                    if got is None:
                        raise SamplingError(f"item {item}: no track{_of(pool)} holding {s!r} is "
                                            f"long enough for {per[s].need / r.sample_rate:.2f} s")
                    placement[s] = got
            failing = self._silent_targets(per, placement) if r.silence.min_active > 0 else []
            if anchor is not None and anchor not in failing and \
                    not self._anchor_active(anchor, per, placement):
                failing = [*failing, anchor]
            if not failing:
                break
            if attempts > r.silence.max_retries:
                msg = (f"silence policy: target(s) {failing} below min_active "
                       f"{r.silence.min_active:g} after {attempts} draws")
                if anchor in failing:  # the anchor may fail the balance, not the silence
                    quiet = [t for t in failing if t != anchor]
                    msg = (f"balance: anchor target {anchor!r} not active (min_active "
                           f"{r.balance.min_active:g}) after {attempts} draws"
                           + (f"; {msg}" if quiet else ""))
                if r.silence.on_exhausted == "error":
                    raise SamplingError(f"item {item}: {msg}")
                warnings.append(msg)
                break
            pending = [s for t in failing for s in r.members(t) if s in r.sources]

        for s in r.sources:
            self._put(per[s], *placement[s])
        sources = [per[s] for s in r.sources]
        if self._mixup is not None:
            sources = self._draw_mixup(rng, sources, placement, ctx, item)
        return ItemDraft(item, seed, epoch, mode, ref_db, sources,
                         attempts, warnings, master=self._draw_master(rng), anchor=anchor)

    def _put(self, d: "SourceDraw", track, start: int, pool: "Pool") -> None:
        """Record a placement in draft ``d``: track, start, dataset, frames read and zeros
        appended (pad: true)."""
        d.track, d.start, d.track_sample_rate = track.id, start, track.sample_rate
        d.dataset = pool.name
        nsrc = d.need if track.sample_rate == self.recipe.sample_rate else \
            self._src_frames(track, d.need)
        d.pad_frames = max(0, start + nsrc - track.frames)  # > 0 only with pad: true
        d.source_frames = nsrc - d.pad_frames

    def _draw_mixup(self, rng, sources: list, placement: dict, ctx, item: int) -> list:
        """Mixup of same-class stems, drawn after the placement (so recipes without mixup
        draw what they drew): per source stem in recipe order, one uniform draw per entry of
        its ``mixup.p`` (an extra joins when ``u < p_k``, independently, as MSST does), then
        per extra its steps, level, boost and ``mixup.gain_db``, and an incoherent placement
        in the slot's dataset on a track the slot does not use yet (re-drawn until it is
        another). Returns ``sources`` with each slot's extras right after it."""
        r = self.recipe
        (plan, draw_gain), n = self._mixup, self._frames
        out = []
        for d in sources:
            out.append(d)
            got = plan.get(d.stem)
            if got is None:
                continue
            probs, (draw_level, draw_boost) = got
            count = sum([bool(rng.random() < q) for q in probs])
            pool = placement[d.stem][2]
            used = {d.track}
            for k in range(1, count + 1):
                steps = r.augment.draw(rng, d.stem, ctx) if ctx is not None else []
                x = SourceDraw(d.stem, d.target, d.level, float(draw_level(rng)),
                               float(draw_boost(rng)), d.dropped, steps,
                               source_frames(steps, n) if steps else n, mixup=k,
                               mixup_db=float(draw_gain(rng)))
                for _ in range(MIXUP_TRIES):
                    got = self._place(rng, d.stem, pool, False, x.need, d.stem)
                    if got is None:
                        raise SamplingError(f"item {item}: mixup: no track{_of(pool)} holding "
                                            f"{d.stem!r} is long enough for "
                                            f"{x.need / r.sample_rate:.2f} s")
                    if got[0].id not in used:
                        break
                else:
                    raise SamplingError(f"item {item}: mixup: no other track{_of(pool)} holding "
                                        f"{d.stem!r} found in {MIXUP_TRIES} draws")
                used.add(got[0].id)
                self._put(x, *got)
                out.append(x)
        return out

    def _draw_master(self, rng) -> list[dict]:
        """The mastering bus's parameters, drawn last (recipes without ``master`` draw
        nothing): per step in order, its parameters in declaration order."""
        r = self.recipe
        return draw_master(r.master, rng, r.sample_rate, r.channels)

    def _finish(self, d: "ItemDraft", loud: dict[str, float]) -> tuple[MixSpec, dict]:
        """The spec of draft ``d`` with gains from the measured loudness ``loud`` (stem ->
        LUFS); ``(spec, processed)``."""
        r = self.recipe
        sources = []
        for x in d.sources:
            if x.level == "snr":
                L = loud[x.key]
                snr = x.value
                if math.isfinite(L):
                    gain_db = d.ref_db + x.value + x.boost - max(L, LOUDNESS_FLOOR)
                    loudness = L
                else:  # silent excerpt (-inf LUFS): nothing to normalise, see SILENT_GAIN_DB
                    gain_db, loudness = SILENT_GAIN_DB, None
            else:
                gain_db, loudness, snr = x.value + x.boost, None, None
            if x.mixup and (loudness is not None or x.level != "snr"):
                gain_db += x.mixup_db  # an extra's mixup.gain_db (a silent excerpt stays 0 dB)
            sources.append(SourceSpec(
                stem=x.stem, target=x.target, track=x.track, start=x.start,
                source_frames=x.source_frames, gain_db=gain_db,
                gain=float(10.0 ** (gain_db / 20.0)), loudness=loudness, level=x.level,
                snr=snr, boost=x.boost, dropped=x.dropped,
                track_sample_rate=x.track_sample_rate, active_fraction=x.active,
                steps=x.steps, event=x.event, offset=x.offset, event_frames=x.event_frames,
                fade_in=x.fade_in, fade_out=x.fade_out, role=x.role,
                pad_frames=x.pad_frames, dataset=x.dataset, mixup=x.mixup,
                mixup_db=x.mixup_db))
        spec = MixSpec(sample_rate=r.sample_rate, channels=r.channels, frames=r.frames,
                       mode=d.mode, targets=list(r.targets), sources=sources,
                       ref_db=d.ref_db if self._any_snr else None, clipping=r.clipping,
                       seed=int(d.seed), epoch=int(d.epoch), item=int(d.item),
                       recipe_name=r.name, recipe_hash=self.hash, version=__version__,
                       attempts=d.attempts, warnings=d.warnings, master=d.master,
                       master_linear=r.master_linear,
                       anchor=d.anchor,
                       exclusions=self._exclusion_record)
        return spec, d.processed

    def _silent_targets(self, per: dict[str, "SourceDraw"], placement) -> list[str]:
        r = self.recipe
        if r.silence.min_active <= 0:
            return []
        failing = []
        for t in r.targets:
            best = 0.0
            for s in r.members(t):
                if s not in per or per[s].dropped:
                    continue
                track, start, pool = placement[s]
                nsrc = self._src_frames(track, per[s].need)
                have = min(nsrc, track.frames - start)  # less when zero-padded (pad: true)
                a = pool.index.active_fraction(track.id, s, start, have, r.silence.threshold_db)
                a *= have / nsrc
                per[s].active = float(a)
                best = max(best, a)
            if best < r.silence.min_active and any(not per[s].dropped for s in r.members(t)
                                                   if s in per):
                failing.append(t)
        return failing

    def _loudness_many(self, entries: list, measure: bool = True) -> list:
        """LUFS of each ``(source, track, processed)`` entry (any items) as the stem enters
        its gain. From stored energies when nothing changes the signal's K-weighted energy (or
        quick tape steps opt in with ``loudness: source``: the covered source span, an
        approximation; ``augment.chain.loudness_span``; or a cached variant's own energies):
        those look-ups are made together, one ``excerpt_loudness_many`` call per (sample rate,
        span) group (every stem of a coherent item, every item of a batch, shares one). Else
        measured on the processed audio (as Scaper measures after pitch/tempo), which goes to
        the entry's ``processed`` dict; with ``measure=False`` such entries are left None."""
        out: list = [None] * len(entries)
        groups: dict[tuple[int, int], list] = {}
        channels = self.recipe.channels
        for i, (src, track, processed) in enumerate(entries):
            got = self._energy_span(src, track)
            if got is None:
                if measure:
                    out[i] = self._measure(src, processed)
                continue
            span, energies, start, corr = got
            sr = track.stems[src.stem].sample_rate
            groups.setdefault((sr, span), []).append((i, track, energies, start, corr))
        for (sr, span), group in groups.items():
            vals = lufs.excerpt_loudness_many([g[2] for g in group], sr, [g[3] for g in group],
                                              span, [g[4] for g in group])
            for (i, t, *_), L in zip(group, vals.tolist(), strict=True):
                if t.channels == 1 and channels > 1 and math.isfinite(L):
                    L += 10 * math.log10(channels)  # duplicated channels: powers add
                out[i] = float(L)
        return out

    def _measure(self, src, processed: dict) -> float:
        """LUFS of a source measured on its processed audio (its event audio for an event, as
        Scaper measures it: short events tiled); the audio render will use goes to
        ``processed``."""
        r = self.recipe
        if not src.placed(r.frames):
            audio = process_stem(self.index, src, r.sample_rate, r.channels, r.frames)
            processed[src.key] = audio
            return float(lufs.integrated_loudness(audio, r.sample_rate))
        audio = event_audio(self.index, src, r.sample_rate, r.channels, r.frames)
        processed[src.key] = place_event(audio, src, r.frames)
        return float(lufs.event_loudness(audio, r.sample_rate))

    def _energy_span(self, src, track):
        """``(span, energies, start, corrections)``: the stored energies (and zero-state
        corrections; None for a cached variant's own energies) and frames that give the stem's
        loudness (a plain excerpt or event; energy-preserving steps; a cached pitch/tempo
        variant's own energies; quick tape steps with ``loudness: source``), or None when it
        must be measured on processed audio (also backgrounds, which Scaper puts at ref_db
        exactly, and events under 0.5 s, which Scaper tiles)."""
        r = self.recipe
        if src.pad_frames:
            return None  # zero-padded (pad: true): measured on the padded audio
        n = self._frames
        if src.placed(n):
            n = src.frames_out(n)
            if n < lufs.EVENT_MIN_SECONDS * r.sample_rate or src.role == "background":
                return None
        if track.sample_rate == r.sample_rate and \
                (track.channels == r.channels or track.channels == 1):
            if not src.steps:  # a plain excerpt: the stem's energies over the output frames
                e, c = self._stored(src)
                return n, e, src.start, c
            got = variant_energies(self.index, src, n, ENERGY_PRESERVING)
            if got is not None:
                span, e, start = got  # the identity point reads the stem's own energies
                plain = self._stored(src)
                return span, e, start, plain[1] if e is plain[0] else None
            span = loudness_span(src.steps, n, ENERGY_PRESERVING)
            if span is not None:
                e, c = self._stored(src)
                return span, e, src.start, c
        return None

    def _stored(self, src):
        """A source's stem's stored energies and zero-state corrections (memoised per
        sampler)."""
        key = (src.dataset, src.track, src.stem)
        got = self._energy_memo.get(key)
        if got is None:
            ix = source_index(self.index, src)
            got = self._energy_memo[key] = (ix.energies(src.track, src.stem),
                                            ix.corrections(src.track, src.stem))
        return got

    # ------------------------------------------------------------------ Scaper's event model
    def _event_sources(self, rng, mode: str, ctx, item: int) -> list["SourceDraw"]:
        """Scaper's event model (any stem with an event field, or fades): per stem its number
        of events, then per event its steps, level, boost, drop, duration and time (seconds,
        to frames), then the placements (coherent: one track and start for every event, from
        the first source's distributions; incoherent: one per event, ``source_time`` in
        seconds or the ``start`` fraction). An event running past the mixture's end is moved
        earlier (as Scaper does). Draws nothing that plain recipes draw differently: those
        never come here."""
        r = self.recipe
        n, sr = self._frames, r.sample_rate
        fade_in, fade_out = int(r.fade_in * sr), int(r.fade_out * sr)  # Scaper: int(len * sr)
        draws: list[SourceDraw] = []
        for s, draw_level, draw_boost, drop in self._stem_plan:
            p = r.stems[s]
            count = int(p.events.sample(rng)) if p.events is not None else 1
            for k in range(count):
                steps = r.augment.draw(rng, s, ctx) if ctx is not None else []
                level = float(draw_level(rng))
                boost = float(draw_boost(rng))
                dropped = bool(rng.random() < drop) if drop > 0 else False
                offset, frames = 0, n
                if p.role == "foreground":
                    dur = None if p.event_duration is None else float(p.event_duration.sample(rng))
                    t0 = 0.0 if p.event_time is None else float(p.event_time.sample(rng))
                    offset = min(int(round(t0 * sr)), n - 1)
                    frames = n - offset if dur is None else min(max(int(round(dur * sr)), 1), n)
                    offset = min(offset, n - frames)
                bg = p.role == "background"
                draws.append(SourceDraw(
                    s, self._target[s], self._level_kind[s], level, boost, dropped, steps,
                    source_frames(steps, frames) if steps else frames, event=k, offset=offset,
                    event_frames=None if frames == n - offset else frames,
                    fade_in=0 if bg else fade_in, fade_out=0 if bg else fade_out, role=p.role))
        if mode == "coherent" and draws:
            need = max(d.need for d in draws)
            got = self._place_event(rng, r.sources[0], self._pick_pool(rng), True, need,
                                    "all sources", item)
            places = [got] * len(draws)
        else:
            item_pool = self._pick_pool(rng) if r.dataset_mode == "within" and draws else None
            places = [self._place_event(rng, d.stem, item_pool or self._pick_pool(rng), False,
                                        d.need, d.stem, item) for d in draws]
        for d, (track, start, pool) in zip(draws, places, strict=True):
            d.track, d.start, d.track_sample_rate = track.id, start, track.sample_rate
            d.dataset = pool.name
            d.source_frames = d.need if track.sample_rate == sr else \
                self._src_frames(track, d.need)
            if d.role == "background":  # looped: what the track has from the start
                d.source_frames = min(d.source_frames, track.frames - start)
        return draws

    def _place_event(self, rng, stem, pool: "Pool", coherent: bool, need, what, item):
        """``(track, start, pool)`` of an event: :meth:`_place`, with ``source_time``
        (seconds, cut to the valid range as Scaper does) instead of the ``start`` fraction
        when the recipe gives it; a background may come from any track holding the stem (it
        is looped)."""
        p = self.recipe.stems[stem]
        key = (pool.name, "\0coherent" if coherent else stem)
        ok, ids, idset, cum = self._candidates(key, pool.coherent if coherent else
                                               pool.by_stem[stem],
                                               1 if p.role == "background" else need)
        if not ok:
            raise SamplingError(f"item {item}: no track{_of(pool)} holding {what!r} is long "
                                f"enough for {need / self.recipe.sample_rate:.2f} s")
        draw_start = self._place_draw[stem][1]
        tid = self._draw_track(rng, stem, ids, cum)
        if tid not in idset:
            raise RecipeError(p.track.field, f"track {tid!r} is not a candidate for {what} "
                              "(not in the index/split, lacks the stem, or too short)")
        track = pool.index.track(tid)
        span = max(track.frames - self._src_frames(track, need), 0)
        if p.source_time is not None:
            return track, min(int(float(p.source_time.sample(rng)) * track.sample_rate),
                              span), pool
        frac = float(draw_start(rng))
        if pool.exclusions is not None and p.role != "background" \
                and pool.exclusions.has_spans(track.id):
            return track, pool.exclusions.place(track, self._placed(key),
                                                self._src_frames(track, need), frac), pool
        return track, int(round(frac * span)), pool


def _where(pool: "Pool") -> str:
    return f"dataset {pool.name!r} ({pool.index.root})" if pool.name else str(pool.index.root)


def _of(pool: "Pool") -> str:
    return f" of dataset {pool.name!r}" if pool.name else ""


def _named_tracks(dist) -> list:
    """The track names a ``track`` distribution gives (empty: any candidate)."""
    return list(dist.args[0] if dist.kind in ("choose", "choose_weighted") else dist.args)


@dataclass(slots=True)
class Pool:
    """One dataset's candidates: ``name`` ("" for a one-index recipe), its ``index`` (the
    recipe's split of it), tracks holding each source stem (``by_stem``) and every source
    (``coherent``), its relative ``weight``, its ``split``."""

    name: str
    index: object
    by_stem: dict
    coherent: list
    weight: float
    split: list | None
    exclusions: object = None   # doctor.exclude.AppliedExclusions of this dataset, or None


def check_split(recipe: Recipe, index, split=None, all_splits=None, field: str = "split") -> None:
    """Refuse a recipe that names no split on an index that has several: drawing from train
    and test together is never what a training set wants. ``split: all`` says it is meant.
    ``split``/``all_splits``/``field``: a dataset's own (``datasets.NAME.split``) instead of
    the recipe's."""
    if split is None and all_splits is None:
        split, all_splits = recipe.split, recipe.all_splits
    if split is not None or all_splits:
        return
    counts: dict = {}
    for t in index.tracks:
        counts[t.split] = counts.get(t.split, 0) + 1
    if len(counts) > 1:
        have = ", ".join(f"{k or '(none)'} ({n} tracks)"
                         for k, n in sorted(counts.items(), key=lambda kv: str(kv[0])))
        first = next((k for k in ("train", "training") if k in counts), None) or \
            next(k for k in counts if k)
        raise RecipeError(field, f"missing, and the index of {index.root} has splits {have}; "
                          f"say which to draw from, e.g. {field}: {first} (or --set "
                          f"{field}={first}), or {field}: all for every split")


@dataclass(slots=True)
class SourceDraw(EventPlacement):
    """One source's draws before its gain is known: what :meth:`Sampler._begin` drew
    (``level`` kind and ``value``, ``boost``, ``dropped``, ``steps``, ``need`` output frames
    before the steps) and its placement (``track``, ``start``, ``source_frames``,
    ``track_sample_rate``, ``active`` fraction when the silence policy measured it) and, for
    Scaper's event model, its event fields. Reads like a source (:class:`~stemforge.mixing.sources.SourceRead`) for loudness measurement."""

    stem: str
    target: str
    level: str
    value: float
    boost: float
    dropped: bool
    steps: list
    need: int
    track: str = ""
    start: int = 0
    source_frames: int = 0
    track_sample_rate: int = 0
    active: float | None = None
    # Scaper's event model (SourceSpec's fields of the same names)
    event: int = 0
    offset: int = 0
    event_frames: int | None = None
    fade_in: int = 0
    fade_out: int = 0
    role: str = "foreground"
    pad_frames: int = 0   # zeros after the read (pad: true, a short track)
    dataset: str = ""     # the dataset of a several-dataset recipe (Pool.name)
    mixup: int = 0        # k > 0: the slot's k-th extra stem (recipe mixup:)
    mixup_db: float = 0.0  # its drawn mixup.gain_db


@dataclass(slots=True)
class ItemDraft:
    """An item drawn up to its loudness look-up (:meth:`Sampler._begin`); ``processed``:
    audio measured for its loudness, reused by render."""

    item: int
    seed: int
    epoch: int
    mode: str
    ref_db: float
    sources: list[SourceDraw]
    attempts: int
    warnings: list[str]
    processed: dict = field(default_factory=dict)
    master: list = field(default_factory=list)
    anchor: str | None = None   # class balance: the target this item is anchored on
