"""Rendering: MixSpec (+ index) -> mixture and targets. Deterministic: same spec, same bytes.

For each non-dropped source: read → resample/channels → augmentation steps → ``* gain``
(float32), accumulated into its target in recipe order. The mix is the float32 sum of the
targets. Clipping (``spec.clipping``): ``fix_clipping`` scales mix and targets by
``1 / (peak + 1e-10)`` when the peak exceeds 1, ``peak_normalize`` always does, ``none`` never
(Scaper's semantics). The scale is computed on the first render and returned with the audio
(the caller records it: ``MixSpec.rendered``); re-renders apply the recorded scale. Finally
``mix`` is recomputed as the sum of the scaled targets, so ``mix == sum(targets)`` holds exactly
for the returned arrays. A mastering bus (``spec.master``) acts on the mix before the clip
scale; a non-linear one (``spec.master_linear`` False) leaves the mix as its output and
returns the targets' sum as ``unmastered``. The semantics are those of :mod:`stemforge.mixing.reference`.

The arithmetic runs in one compiled pass per item (:mod:`._kernels`, numba): every source row
is read once, block by block, into its target, the mix and the peak; bytes are those of the
plain float32 NumPy formulation (same operations, same order).

A clip scale has to be known before that pass can apply it. When every source is a prepared
stem read as is, its peak envelopes in the StemCache (largest ``|x|`` per 64 and per 1024
frames) bound the mix's peak block by block: blocks that cannot reach the peak are skipped,
only the few that can are mixed exactly (:func:`._kernels.bounded_peak`), so the scale is
known up front and the single pass writes scaled outputs. Otherwise (processed sources, or when too many
blocks would need mixing) the pass runs unscaled and a second pass rescales. Both ways give
the same bytes, scale and recorded peak.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio.cache import PEAK_BLOCK, PEAK_GROUP, as_float32
from ..indexset import source_index
from .reference import clip_scale, master_bus, master_gain, mix_of, peak_of
from .sources import process_stem
from .spec import MixSpec

#: the envelope bound is used when it leaves at most this share of blocks to mix exactly
#: (more would cost about as much as the rescale pass it saves)
BOUND_MAX_SHARE = 0.125


@dataclass(frozen=True)
class Rendered:
    """``mix`` float32 ``(C, T)``; ``targets`` name -> float32 ``(C, T)`` in spec order;
    ``scale`` the clip scale applied and ``peak`` max ``|mix|`` before it (the spec's recorded
    values on a re-render); ``stacked`` float32 ``(S, C, T)``, the array the targets are rows
    of; ``sources`` source key (the stem; ``stem#k`` for its k-th event) -> post-gain,
    pre-scale float32 ``(C, T)`` (only with ``keep_sources``); ``unmastered`` float32 ``(C, T)``
    the sum of the targets (``reference.mix_of``) when the spec's bus is non-linear
    (``spec.master_linear`` False: ``mix`` is the bus's output), else None."""

    mix: np.ndarray
    targets: dict[str, np.ndarray]
    scale: float
    peak: float | None
    stacked: np.ndarray
    sources: dict[str, np.ndarray] | None = None
    unmastered: np.ndarray | None = None


def render(spec: MixSpec, index, processed: dict | None = None,
           keep_sources: bool = False,
           out: tuple[np.ndarray, np.ndarray] | None = None) -> Rendered:
    """Audio of ``spec``: mix ``(C, T)`` and targets ``(C, T)`` each, float32.

    ``out``: optional ``(mix (C, T), targets (S, C, T))`` float32 C-contiguous arrays to render
    into (e.g. one item's rows of a batch buffer): the returned arrays are views of them, with
    exactly the values a render without ``out`` gives. Raises ``ValueError`` naming the array
    when a shape, dtype or layout does not fit.

    Two steps, :func:`prepare` (the sources' rows, gains and envelopes) then :func:`finish`
    (the compiled passes); :func:`render_batch` prepares a batch of items together.
    """
    if out is not None:
        _check_out(out, len(spec.targets), spec.channels, spec.frames)  # before any reading
    return finish(prepare(spec, index, processed, keep_sources), out)


def render_batch(specs, index, outs=None, processed=None) -> list[Rendered]:
    """:func:`render` of several specs, the same bytes: every spec's first step
    (:func:`prepare`: sources' views, gains and envelopes; nothing is read) is made for the
    whole batch, then the compiled passes run one spec after the other, so the Python side of
    the batch runs back to back while it is cache-warm instead of after each pass has streamed
    an item's audio through the caches. A spec whose sources need processing (resampling,
    augmentation, cached variants) is prepared just before its pass, so no processed audio is
    held for the batch.

    ``outs``: optional per-spec ``(mix (C, T), targets (S, C, T))`` float32 arrays to render
    into (see :func:`render`; None entries allocate), all checked before anything is read.
    ``processed``: optional per-spec dicts of pre-gain audio measured while drawing."""
    specs = list(specs)
    B = len(specs)
    outs = [None] * B if outs is None else list(outs)
    processed = [None] * B if processed is None else list(processed)
    if not len(outs) == len(processed) == B:
        raise ValueError(f"render_batch: {B} specs, {len(outs)} outs and {len(processed)} "
                         "processed entries")
    for spec, o in zip(specs, outs, strict=True):
        if o is not None:
            _check_out(o, len(spec.targets), spec.channels, spec.frames)
    preps = [prepare(spec, index, extra, stored_only=True)
             for spec, extra in zip(specs, processed, strict=True)]
    results = []
    for spec, prep, o, extra in zip(specs, preps, outs, processed, strict=True):
        results.append(finish(prep if prep is not None else prepare(spec, index, extra), o))
    return results


class Prepared:
    """What :func:`finish` needs of one spec: its sources' rows grouped by target (the kernels'
    layout), gains, and for the clip bound (``envelopes``, None when it is not used) their peak
    envelopes, start frames and the bound's settings. Holds views of the memmaps (or processed
    audio), no copies."""

    __slots__ = ("spec", "slot", "kept", "counts", "rows", "gains", "envelopes")

    def __init__(self, spec, slot, kept, counts, rows, gains, envelopes):
        self.spec, self.slot, self.kept = spec, slot, kept
        self.counts, self.rows, self.gains, self.envelopes = counts, rows, gains, envelopes


def prepare(spec: MixSpec, index, processed: dict | None = None, keep_sources: bool = False,
            stored_only: bool = False) -> Prepared | None:
    """Step one of :func:`render`: every source read (a memmap view when it is a prepared
    stem used as is; else processed: resampled, converted, augmented). With ``stored_only``,
    None instead when a source would need processing (nothing heavy is done ahead of time)."""
    C, T = spec.channels, spec.frames
    slot = {t: j for j, t in enumerate(spec.targets)}
    kept = {} if keep_sources else None
    members: list[list[tuple]] = [[] for _ in spec.targets]  # (audio, gain, envelopes, start)
    # peak envelopes (and stem start frames) only matter when the clip scale is still unknown
    # (a source without a StemCache has none: then render measures, see below)
    bound = spec.scale is None and spec.clipping in ("fix_clipping", "peak_normalize") \
        and not spec.master  # a mastered mix's peak is known only after the bus
    for src in spec.sources:
        if src.dropped:
            if kept is not None:
                kept[src.key] = np.zeros((C, T), np.float32)
            continue
        audio = None if processed is None else processed.get(src.key)
        env = None
        if audio is None and not src.steps and not src.pad_frames \
                and src.track_sample_rate in (0, spec.sample_rate) and not src.placed(T):
            # fast path: rows of the prepared memmap, no copy before the gain
            ix = source_index(index, src)  # its dataset's index (several datasets)
            t = ix.track(src.track)
            s = t.stems[src.stem]
            cache = getattr(ix, "cache", None)
            mm = cache.get(s.key) if cache is not None else None
            if mm is not None and s.channels == C:  # int16 or float32 (see audio.cache)
                audio = mm[:, src.start:src.start + T]
                if bound:
                    env = cache.peaks(s.key)  # read-only plain ndarrays (the kernel's type)
        if audio is None:
            if stored_only:
                return None
            audio = process_stem(index, src, spec.sample_rate, C, T)
        if type(audio) is not np.ndarray or audio.dtype not in (np.float32, np.int16) \
                or audio.strides[-1] != audio.itemsize:
            audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.shape != (C, T):
            raise ValueError(f"render: source {src.stem!r} of track {src.track!r} gave audio of "
                             f"shape {audio.shape}, expected {(C, T)}")
        if kept is not None:
            kept[src.key] = np.multiply(as_float32(audio), np.float32(src.gain),
                                        dtype=np.float32)
        members[slot[src.target]].append((audio, src.gain, env, src.start))
    # the kernels take rows of one type: int16 entries (16-bit sources, stored as PCM) beside
    # float32 audio (processed sources, float sources) are converted, exactly, to float32
    mixed = len({a.dtype for group in members for a, *_ in group}) > 1
    # sources grouped by target (spec order within a target): the kernels' layout
    rows, gains, fine, coarse, starts = [], [], [], [], []
    for group in members:
        for audio, g, env, start in group:
            if mixed and audio.dtype == np.int16:
                audio = as_float32(audio)
            if type(audio) is not np.ndarray or audio.flags.writeable:
                audio = _readonly(audio)  # cache slices already are
            rows.extend(audio)  # its C rows
            gains.append(g)
            if env is None:
                bound = False  # a source without an envelope: measure, then rescale
            elif bound:
                fine.append(env[0])
                coarse.append(env[1])
                starts.append(start)
    counts = tuple(len(group) for group in members)
    envelopes = None
    if bound and rows:  # bounded_peak's arguments after rows and gains
        nblocks = C * -(-T // PEAK_BLOCK)
        envelopes = (np.array(counts, np.int64), tuple(fine), tuple(coarse),
                     np.array(starts, np.int64), PEAK_BLOCK, PEAK_GROUP,
                     1.0 if spec.clipping == "fix_clipping" else 0.0,
                     int(nblocks * BOUND_MAX_SHARE))
    return Prepared(spec, slot, kept, counts, tuple(rows),
                    np.array(gains, np.float32),  # each fl32(gain), as np.float32
                    envelopes)


def finish(prep: Prepared, out: tuple[np.ndarray, np.ndarray] | None = None) -> Rendered:
    """Step two of :func:`render`: the clip scale (the spec's recorded one; else from the
    envelope bound when it decides), the mixing pass, the rescale pass when the scale was only
    known after it. The spec is not changed: the scale and peak are returned."""
    spec = prep.spec
    C, T = spec.channels, spec.frames
    S = len(spec.targets)
    if out is None:
        # One buffer for every target and the mix (views ``tbuf[j]``, ``mixbuf``): a single
        # allocation per item that the allocator reuses across items, instead of S + 1 separate
        # ones it returns to the OS and page-faults back in each time (the dominant cost here).
        buf = np.empty((S + 1, C, T), np.float32)
        tbuf, mixbuf = buf[:S], buf[S]
    else:
        mixbuf, tbuf = _check_out(out, S, C, T)
    counts, rows, gains = prep.counts, prep.rows, prep.gains
    scale, peak = spec.scale, spec.peak  # recorded: applied as they are
    if spec.master and not spec.master_linear:
        scale, peak = _master_bus(spec, counts, rows, gains, tbuf, mixbuf, scale, peak)
        targets = {t: tbuf[j] for t, j in prep.slot.items()}
        return Rendered(mixbuf, targets, scale, peak, tbuf, prep.kept, mix_of(tbuf))
    if spec.master:
        scale, peak = _master(spec, counts, rows, gains, tbuf, mixbuf, scale, peak)
        targets = {t: tbuf[j] for t, j in prep.slot.items()}
        return Rendered(mixbuf, targets, scale, peak, tbuf, prep.kept)
    if scale is None and prep.envelopes is not None:
        bound = _scale_from_bound(spec.clipping, rows, gains, prep.envelopes)
        if bound is not None:  # the scale (and the peak, unless it is only known to be <= 1)
            scale, peak = bound
    mixed = _mix(counts, rows, gains, tbuf, mixbuf, np.float32(1.0 if scale is None else scale))
    if scale is None:  # measured by the pass: rescale when the policy says so
        peak = float(mixed)
        scale = clip_scale(spec.clipping, peak)
        if scale != 1.0:
            _rescale(counts, tbuf, mixbuf, np.float32(scale))
    elif peak is None:
        peak = float(mixed)  # no clipping possible: the pass measured the exact peak
    targets = {t: tbuf[j] for t, j in prep.slot.items()}
    return Rendered(mixbuf, targets, scale, peak, tbuf, prep.kept)


def _master(spec, counts, rows, gains, tbuf, mixbuf, scale, peak) -> tuple[float, float]:
    """The mastering bus (reference: :func:`~stemforge.mixing.reference.mix_reference`):
    unscaled targets and mix, the bus's gain from the mix (compiled gain computers), every
    target ``fl32(t * g)`` and the mix summed again, then the clip scale (the recorded one, or
    measured on the mastered mix) by the rescale kernel. Returns ``(scale, peak)``."""
    _mix(counts, rows, gains, tbuf, mixbuf, np.float32(1.0))
    kern = _kernels()
    g = master_gain(mixbuf, spec.master, spec.sample_rate, kern.limiter_gain,
                    kern.compressor_gain)
    np.multiply(tbuf, g[None, None, :], out=tbuf, dtype=np.float32)
    mixbuf[...] = tbuf[0]
    for t in tbuf[1:]:
        mixbuf += t
    if scale is None:
        peak = peak_of(mixbuf)
        scale = clip_scale(spec.clipping, peak)
    if scale != 1.0:
        _rescale(counts, tbuf, mixbuf, np.float32(scale))
    return scale, peak


def _master_bus(spec, counts, rows, gains, tbuf, mixbuf, scale, peak) -> tuple[float, float]:
    """A non-linear bus (reference: :func:`~stemforge.mixing.reference.master_bus`): unscaled
    targets and mix, the bus on the mix (compiled gain computers, augmentation steps on the mix
    alone), every target ``fl32(t * g)``, the mix the bus's output; then the clip scale (the
    recorded one, or measured on the mastered mix) on targets and mix alike. Returns
    ``(scale, peak)``."""
    _mix(counts, rows, gains, tbuf, mixbuf, np.float32(1.0))
    kern = _kernels()
    g, mastered = master_bus(mixbuf, spec.master, spec.sample_rate, kern.limiter_gain,
                             kern.compressor_gain)
    np.multiply(tbuf, g[None, None, :], out=tbuf, dtype=np.float32)
    mixbuf[...] = mastered
    if scale is None:
        peak = peak_of(mixbuf)
        scale = clip_scale(spec.clipping, peak)
    if scale != 1.0:
        np.multiply(tbuf, np.float32(scale), out=tbuf, dtype=np.float32)
        np.multiply(mixbuf, np.float32(scale), out=mixbuf, dtype=np.float32)
    return scale, peak


def _scale_from_bound(clipping: str, rows: tuple, gains: np.ndarray,
                      envelopes: tuple) -> tuple[float, float | None] | None:
    """``(scale, peak)`` from the sources' peak envelopes, before mixing. ``envelopes``:
    :func:`._kernels.bounded_peak`'s arguments after ``rows`` and ``gains`` (counts; per
    source the fine ``(C, n)`` and coarse ``(C, m)`` envelopes of its stem; the stem frames the
    rows begin at; block sizes; the floor; the visit budget, from :func:`prepare`). ``peak``
    None when it is only known to be at most 1 under ``fix_clipping`` (scale 1; the mixing
    pass measures it). None when the bound leaves too many blocks to mix exactly (the caller
    measures, then rescales)."""
    p = _kernels().bounded_peak(rows, gains, *envelopes)
    if p == -1.0:
        return None
    p = float(p)
    if clipping == "fix_clipping" and not p > 1.0 and p == p:
        return 1.0, None
    return clip_scale(clipping, p), p


def _mix(counts: tuple[int, ...], rows: tuple, gains: np.ndarray, tbuf: np.ndarray,
         mixbuf: np.ndarray, scale: np.float32) -> float:
    """Targets and mix into ``tbuf``/``mixbuf`` by the compiled kernels; returns the peak."""
    if not rows:  # every source dropped: silence
        tbuf.fill(0.0)
        mixbuf.fill(0.0)
        return 0.0
    kern = _kernels()
    plan = kern.plan_kernels(counts)
    if plan is not None:
        return plan.mix(rows, gains, tbuf, mixbuf, scale)
    return kern.mix_generic(rows, gains, np.array(counts, np.int64), tbuf, mixbuf, scale)


def _rescale(counts: tuple[int, ...], tbuf: np.ndarray, mixbuf: np.ndarray,
             scale: np.float32) -> None:
    kern = _kernels()
    plan = kern.plan_kernels(counts)
    (plan.rescale if plan is not None else kern.rescale_generic)(tbuf, mixbuf, scale)


_KERNELS = None


def _kernels():
    """:mod:`._kernels`, imported on first use: numba's import stays off the CLI's start-up
    path."""
    global _KERNELS
    if _KERNELS is None:
        from . import _kernels as k

        _KERNELS = k
    return _KERNELS


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only plain-ndarray view (one numba type for memmap slices and computed arrays
    alike, so a kernel compiles once per shape)."""
    v = a.view(np.ndarray)
    v.flags.writeable = False
    return v


def _check_out(out, S: int, C: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        mix, targets = out
    except (TypeError, ValueError):
        raise ValueError("render(out=...): expected a pair (mix (C, T), targets (S, C, T))") from None
    for name, a, shape in (("mix", mix, (C, T)), ("targets", targets, (S, C, T))):
        if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.shape != shape \
                or not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"render(out=...): {name} must be a writable C-contiguous float32 "
                             f"array of shape {shape}, got "
                             f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
    return mix, targets
