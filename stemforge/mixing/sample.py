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
   (``keep``: the last draw is kept and a warning recorded in the spec; ``error``: SamplingError).
"""
from __future__ import annotations

import math

import numpy as np

from .. import __version__
from ..audio import dsp, loudness as lufs
from ..augment import variants
from ..augment.chain import apply_steps, loudness_span, source_frames
from ..errors import IndexError_, RecipeError, SamplingError
from ._seeding import ItemGenerators, pcg64_states
from .recipe import Recipe
from .spec import MixSpec, SourceSpec

LOUDNESS_FLOOR = -70.0  # Scaper floors measured loudness at -70 LUFS
ENERGY_PRESERVING = {"polarity", "channel_swap"}  # K-weighted energy unchanged by these steps
RESAMPLE_PAD = 16


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
    """Pre-computed candidate lists for one (recipe, index); ``draw(seed, epoch, item)``."""

    def __init__(self, recipe: Recipe, index):
        self.recipe = recipe
        try:
            self.index = index.subset(recipe.split) if recipe.split else index
        except IndexError_ as e:
            raise RecipeError("split", str(e)) from None
        self.exclusions = None   # stemforge doctor's exclusion list, applied to the index
        if recipe.exclude is not None:
            self.exclusions = recipe.exclude.apply(self.index)
            self.index = self.exclusions.index
        idx = self.index
        if len(idx) == 0:
            raise RecipeError("split", f"no tracks in the index of {index.root} for split {recipe.split}")
        have = set(idx.stem_names)
        for s in recipe.sources:
            if s not in have:
                where = "targets" if s in recipe.targets else f"groups ({recipe.target_of(s)})"
                hint = ""
                if s in getattr(index, "groups", {}):
                    members = ", ".join(index.groups[s])
                    hint = (f"; {s!r} is a group of the index: declare it in the recipe, "
                            f"groups: {{{s}: [{members}]}} (recipes are self-contained so that "
                            "their hash defines the output)")
                raise RecipeError(where, f"stem {s!r} is not in the index of {index.root} "
                                  f"(it has {', '.join(sorted(have))}){hint}")
        for t in idx.tracks:
            if t.sample_rate != recipe.sample_rate and not recipe.resample:
                raise RecipeError("sample_rate", f"{recipe.sample_rate} Hz but track '{t.id}' is "
                                  f"{t.sample_rate} Hz; set resample: true to convert")
            if t.channels not in (1, recipe.channels) and recipe.channels != 1:
                raise RecipeError("channels", f"{recipe.channels} channels cannot be made from "
                                  f"track '{t.id}' with {t.channels} channels")
        self.by_stem = {s: [t for t in idx.tracks if s in t.stems] for s in recipe.sources}
        self.coherent = [t for t in idx.tracks if all(s in t.stems for s in recipe.sources)]
        if recipe.modes.get("coherent", 0) > 0 and not self.coherent:
            raise RecipeError("modes.coherent", "no track holds every source stem "
                              f"({', '.join(recipe.sources)}); use incoherent mixing")
        n = recipe.frames
        longest = max(t.frames * recipe.sample_rate / t.sample_rate for t in idx.tracks)
        if n > longest:
            raise RecipeError("duration", f"{recipe.duration:g} s is longer than every track "
                              f"(longest {longest / recipe.sample_rate:.2f} s)")
        self.hash = recipe.hash()
        self._memo: dict = {}
        self._target = {s: recipe.target_of(s) for s in recipe.sources}
        self._gens = ItemGenerators()
        # per-field drawers (Distribution.drawer: the same draws without per-call dispatch)
        self._frames = n
        self._ref_draw = recipe.ref_db.drawer()
        self._stem_plan = [(s, recipe.stems[s].level[1].drawer(), recipe.stems[s].boost.drawer(),
                            recipe.stems[s].drop) for s in recipe.sources]
        self._place_draw = {s: (recipe.stems[s].track.drawer(), recipe.stems[s].start.drawer())
                            for s in recipe.sources}
        self._any_snr = any(recipe.stems[s].level[0] == "snr" for s in recipe.sources)
        self._energy_memo: dict = {}

    # ------------------------------------------------------------------ helpers
    def _src_frames(self, track, n_out: int) -> int:
        """Track-rate frames to read so that ``n_out`` frames exist at the recipe rate."""
        sr_t, sr = track.sample_rate, self.recipe.sample_rate
        if sr_t == sr:
            return n_out
        return int(math.ceil(n_out * sr_t / sr)) + RESAMPLE_PAD

    def _candidates(self, key: str, cands, need: int):
        """Tracks of ``cands`` long enough for ``need`` output frames, and their ids (memoised
        per (candidate list, need): placement is hot, datasets can hold thousands of tracks)."""
        memo = self._memo.get((key, need))
        if memo is None:
            ok = [t for t in cands if self._src_frames(t, need) <= t.frames]
            if self.exclusions is not None:
                ok = [t for t in ok if self.exclusions.fits(t, self._placed(key),
                                                            self._src_frames(t, need))]
            memo = self._memo[(key, need)] = (ok, [t.id for t in ok], {t.id for t in ok})
        return memo

    def _place(self, rng, stem, cands, need, what, key):
        """``(track, start)`` for ``stem``'s track and start distributions among ``cands``
        long enough for ``need`` output frames; None when none is."""
        ok, ids, idset = self._candidates(key, cands, need)
        if not ok:
            return None
        draw_track, draw_start = self._place_draw[stem]
        tid = draw_track(rng, ids)
        if tid not in idset:
            field = self.recipe.stems[stem].track.field
            raise RecipeError(field, f"track {tid!r} is not a candidate for {what} "
                              "(not in the index/split, lacks the stem, or too short)")
        track = self.index.track(tid)
        span = track.frames - self._src_frames(track, need)
        frac = float(draw_start(rng))
        if self.exclusions is not None and self.exclusions.has_spans(track.id):
            start = self.exclusions.place(track, self._placed(key),
                                          self._src_frames(track, need), frac)
        else:
            start = int(round(frac * span))
        return track, start

    def _placed(self, key: str) -> list[str]:
        """The stems one placement puts at its start (``_place``'s key)."""
        return list(self.recipe.sources) if key == "\0coherent" else [key]

    # ------------------------------------------------------------------ draw
    def draw(self, seed: int, epoch: int, item: int, keep_audio: bool = False):
        """Draw one MixSpec. Returns ``(spec, processed)`` where ``processed`` maps stem ->
        pre-gain audio computed while measuring loudness (reused by render when given)."""
        states = pcg64_states(seed, epoch, (item,))
        st = self._begin(seed, epoch, item, states[0] if states else None)
        snr = [x for x in st["sources"] if x.level == "snr"]
        loud = self._loudness_all([(x, st["placement"][x.stem][0]) for x in snr], keep_audio,
                                  st["processed"])
        return self._finish(st, dict(zip((x.stem for x in snr), loud)))

    def draw_many(self, seed: int, epoch: int, items) -> list:
        """:meth:`draw` of several items, the same values, with one loudness look-up for all
        of them (index energies of every snr source of every item: one batched call per
        (rate, span) instead of one per item). Returns one entry per item, in order: its
        spec; the exception drawing it raised; or None when its loudness would have to be
        measured on processed audio (not done here: :meth:`draw` it when it is needed)."""
        out, started = [], []
        items = list(items)
        states = pcg64_states(seed, epoch, items) or [None] * len(items)
        for item, state in zip(items, states):
            try:
                st = self._begin(seed, epoch, item, state)
            except Exception as e:  # noqa: BLE001 - handed back for that item only
                out.append(e)
                continue
            out.append(None)
            started.append((len(out) - 1, st))
        entries, owners = [], []
        for k, st in started:
            for x in st["sources"]:
                if x.level == "snr":
                    entries.append((x, st["placement"][x.stem][0], st["processed"]))
                    owners.append((k, x.stem))
        try:
            loud = self._loudness_many(entries, measure=False)
        except Exception:  # noqa: BLE001 - per item, so each item gets its own error
            for k, st in started:
                try:
                    out[k] = self.draw(seed, epoch, st["item"])[0]
                except Exception as e:  # noqa: BLE001
                    out[k] = e
            return out
        per_item: dict[int, dict[str, float]] = {}
        unmeasured = set()
        for (k, stem), L in zip(owners, loud):
            if L is None:
                unmeasured.add(k)
            per_item.setdefault(k, {})[stem] = L
        for k, st in started:
            if k not in unmeasured:
                out[k] = self._finish(st, per_item.get(k, {}))[0]
        return out

    def _begin(self, seed: int, epoch: int, item: int, state=None) -> dict:
        """Every draw of an item up to its loudness look-up: mode, ref_db, per-source values,
        placement (silence policy included) and the SourceSpecs without gains. ``state``: the
        item's PCG64 state from ``_seeding.pcg64_states`` (the same generator as
        :func:`item_rng`, without building a SeedSequence), or None to build it."""
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
        per = {}
        for s, draw_level, draw_boost, drop in self._stem_plan:
            steps = r.augment.draw(rng, s, ctx) if aug else []
            level = float(draw_level(rng))
            boost = float(draw_boost(rng))
            dropped = bool(rng.random() < drop) if drop > 0 else False
            per[s] = {"steps": steps, "level": level, "boost": boost, "dropped": dropped,
                      "need": source_frames(steps, n) if steps else n}

        placement: dict[str, tuple] = {}
        attempts, warnings = 0, []
        pending = list(r.sources)
        while True:
            attempts += 1
            if mode == "coherent":
                need = max(d["need"] for d in per.values()) if aug else n
                got = self._place(rng, r.sources[0], self.coherent, need, "all sources",
                                  "\0coherent")
                if got is None:
                    raise SamplingError(f"item {item}: no track is long enough for "
                                        f"{need / r.sample_rate:.2f} s of every source")
                placement = dict.fromkeys(r.sources, got)
            else:
                for s in pending:
                    got = self._place(rng, s, self.by_stem[s], per[s]["need"], s, s)
                    if got is None:
                        raise SamplingError(f"item {item}: no track holding {s!r} is long enough "
                                            f"for {per[s]['need'] / r.sample_rate:.2f} s")
                    placement[s] = got
            failing = self._silent_targets(per, placement) if r.silence.min_active > 0 else ()
            if not failing:
                break
            if attempts > r.silence.max_retries:
                msg = (f"silence policy: target(s) {failing} below min_active "
                       f"{r.silence.min_active:g} after {attempts} draws")
                if r.silence.on_exhausted == "error":
                    raise SamplingError(f"item {item}: {msg}")
                warnings.append(msg)
                break
            pending = [s for t in failing for s in r.members(t) if s in r.sources]

        processed: dict = {}
        sources = []
        for s in r.sources:
            track, start = placement[s]
            d = per[s]
            nsrc = d["need"] if track.sample_rate == r.sample_rate else \
                self._src_frames(track, d["need"])
            sources.append(SourceSpec(
                stem=s, target=self._target[s], track=track.id, start=start, source_frames=nsrc,
                gain_db=0.0, gain=1.0, level=r.stems[s].level[0], boost=d["boost"],
                dropped=d["dropped"], track_sample_rate=track.sample_rate, steps=d["steps"],
                active_fraction=d.get("active")))
        return dict(item=item, seed=seed, epoch=epoch, mode=mode, ref_db=ref_db, per=per,
                    placement=placement, sources=sources, processed=processed,
                    attempts=attempts, warnings=warnings)

    def _finish(self, st: dict, loud: dict[str, float]):
        """Gains from the measured loudness ``loud`` (stem -> LUFS); ``(spec, processed)``."""
        r = self.recipe
        per, sources, ref_db = st["per"], st["sources"], st["ref_db"]
        seed, epoch, item = st["seed"], st["epoch"], st["item"]
        for spec_s in sources:
            s, d = spec_s.stem, per[spec_s.stem]
            if spec_s.level == "snr":
                L = loud[s]
                spec_s.loudness = L
                spec_s.snr = d["level"]
                spec_s.gain_db = ref_db + d["level"] + d["boost"] - max(L, LOUDNESS_FLOOR)
            else:
                spec_s.gain_db = d["level"] + d["boost"]
            spec_s.gain = float(10.0 ** (spec_s.gain_db / 20.0))
        spec = MixSpec(sample_rate=r.sample_rate, channels=r.channels, frames=r.frames,
                       mode=st["mode"],
                       targets=list(r.targets), sources=sources,
                       ref_db=ref_db if self._any_snr else None,
                       clipping=r.clipping, scale=None, seed=int(seed), epoch=int(epoch),
                       item=int(item), recipe_name=r.name, recipe_hash=self.hash,
                       version=__version__, attempts=st["attempts"], warnings=st["warnings"],
                       exclusions=self.exclusions.record if self.exclusions else None)
        return spec, st["processed"]

    def _silent_targets(self, per, placement) -> list[str]:
        r = self.recipe
        if r.silence.min_active <= 0:
            return []
        failing = []
        for t in r.targets:
            best = 0.0
            for s in r.members(t):
                if s not in per or per[s]["dropped"]:
                    continue
                track, start = placement[s]
                nsrc = self._src_frames(track, per[s]["need"])
                a = self.index.active_fraction(track.id, s, start, nsrc, r.silence.threshold_db)
                per[s]["active"] = float(a)
                best = max(best, a)
            if best < r.silence.min_active and any(not per[s]["dropped"] for s in r.members(t)
                                                   if s in per):
                failing.append(t)
        return failing

    def _loudness_all(self, entries: list, keep_audio: bool, processed: dict) -> list[float]:
        """LUFS of each ``(source, track)`` of one item, exactly what :meth:`_loudness` gives
        for it (see :meth:`_loudness_many`); audio measured on the way goes to ``processed``."""
        return self._loudness_many([(x, t, processed) for x, t in entries], keep_audio)

    def _loudness_many(self, entries: list, keep_audio: bool = False,
                       measure: bool = True) -> list:
        """LUFS of each ``(source, track, processed)`` entry (any items), exactly what
        :meth:`_loudness` gives for it, but the look-ups from index energies are made together:
        one ``excerpt_loudness_many`` call per (sample rate, span) group (every stem of a
        coherent item, every item of a read-ahead run, shares one). Audio measured on the way
        goes to the entry's ``processed`` dict; with ``measure=False`` entries that need it
        are left None instead."""
        out: list = [None] * len(entries)
        groups: dict[tuple[int, int], list] = {}
        for i, (src, track, processed) in enumerate(entries):
            stem = track.stems.get(src.stem)
            got = self._energy_span(src, track) if stem is not None else None
            if got is None and not measure:
                continue
            if got is None:
                L, audio = self._loudness(src, track, keep_audio)
                if audio is not None:
                    processed[src.stem] = audio
                out[i] = L
            else:
                span, energies, start = got
                groups.setdefault((stem.sample_rate, span), []).append((i, track, energies,
                                                                        start))
        for (sr, span), group in groups.items():
            vals = lufs.excerpt_loudness_many([e for *_, e, _ in group], sr,
                                              [st for *_, st in group], span)
            for (i, t, *_), L in zip(group, vals.tolist()):
                if t.channels == 1 and self.recipe.channels > 1 and math.isfinite(L):
                    L += 10 * math.log10(self.recipe.channels)  # as in _loudness
                out[i] = float(L)
        return out

    def _energy_span(self, src: SourceSpec, track):
        """``(span, energies, start)``: the stored energies and frames that give the stem's
        loudness (the condition of :meth:`_loudness`'s look-up path; a cached pitch/tempo
        variant's own energies), or None when it must be measured."""
        r = self.recipe
        if track.sample_rate == r.sample_rate and \
                (track.channels == r.channels or track.channels == 1):
            if not src.steps:  # a plain excerpt: the stem's energies over the output frames
                key = (track.id, src.stem)
                e = self._energy_memo.get(key)
                if e is None:
                    e = self._energy_memo[key] = self.index.energies(track.id, src.stem)
                return self._frames, e, src.start
            got = variants.variant_energies(self.index, src, r.frames, ENERGY_PRESERVING)
            if got is not None:
                return got
            span = loudness_span(src.steps, r.frames, ENERGY_PRESERVING)
            if span is not None:
                return span, self.index.energies(track.id, src.stem), src.start
        return None

    def _loudness(self, src: SourceSpec, track, keep_audio: bool):
        """LUFS of the stem as it enters the gain: from index energies when nothing changes the
        signal's K-weighted energy (or quick tape steps opt in with ``loudness: source``: the
        covered source span, an approximation; ``augment.chain.loudness_span``), else measured
        on the processed audio (as Scaper measures after pitch/tempo)."""
        r = self.recipe
        fast = track.sample_rate == r.sample_rate and \
            (track.channels == r.channels or track.channels == 1) and \
            (span := loudness_span(src.steps, r.frames, ENERGY_PRESERVING)) is not None
        if fast:
            L = self.index.loudness(track.id, src.stem, src.start, span)
            if track.channels == 1 and r.channels > 1 and math.isfinite(L):
                L += 10 * math.log10(r.channels)  # duplicated channels: powers add
            return float(L), None
        audio = process_stem(self.index, src, r.sample_rate, r.channels, r.frames)
        return float(lufs.integrated_loudness(audio, r.sample_rate)), audio


def process_stem(index, src: SourceSpec, sample_rate: int, channels: int, frames: int) -> np.ndarray:
    """Read one source and bring it to the output format, pre-gain: float32 ``(channels, frames)``.

    read ``source_frames`` at the track's rate → resample (soxr) → channel conversion →
    augmentation steps (exactly ``frames`` out). Leading ``mode: cached`` pitch/tempo steps read
    their pre-computed variant instead (``augment.variants.read_source``).
    """
    if src.steps and variants.is_cached(src.steps[0]):
        audio, rest = variants.read_source(index, src, sample_rate, frames)
        audio = dsp.to_channels(audio, channels)  # a read-only memmap view when nothing follows
        return apply_steps(audio, sample_rate, rest, frames) if rest else audio
    audio = index.read(src.track, src.stem, src.start, src.source_frames)
    need = source_frames(src.steps, frames)
    if src.track_sample_rate and src.track_sample_rate != sample_rate:
        audio = dsp.resample(audio, src.track_sample_rate, sample_rate)[:, :need]
    audio = dsp.to_channels(audio, channels)
    if src.steps:
        audio = apply_steps(audio, sample_rate, src.steps, frames)
    return audio
