"""The recipe's ``augment`` section: parse, draw per stem, apply recorded steps.

Recipe form (a list; each entry one step, applied in list order)::

    augment:
      - step: pitch_tempo
        p: 0.5                 # chance the step fires (default 1.0)
        stems: all             # all | a stem or group name | a list of stem/group names
        shared: true           # true | false | always  (default: the step's shared_default)
        semitones: [uniform, -2, 2]
        tempo: [uniform, 0.9, 1.1]
      - step: gain
        stems: [vocals]
        db: [uniform, -6, 6]

Randomness. This module never creates a generator. ``Chain.draw(rng, stem, context)`` consumes
the caller's ``rng`` entry by entry, in list order, for the entries that target ``stem``:
one ``rng.random()`` for the Bernoulli(p) decision (always, whatever p is), then — only if the
step fires — the step's own draws (one ``Distribution.sample`` per random parameter, in the
step's schema order). Entries that do not target the stem consume nothing. A *shared* entry
draws at most once per mixture: the first ``draw`` call for a targeted stem stores its outcome
(fired or not, and the params) in ``context["shared"]`` under the key ``"augment[i]"``, and
every later stem reuses it without touching ``rng``. ``shared: true`` shares only when
``context["mode"] == "coherent"``; ``shared: always`` shares in every mode; ``false`` never.
So the draws are a pure function of (recipe, the rng's seed, the stem order the caller uses).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..audio.dsp import tape
from ..errors import AudioError, RecipeError
from ..types import Frames, Hz
from . import base
from .base import Step, StepError, check_audio, fit_length

RESERVED = ("step", "p", "stems", "shared")


@dataclass(frozen=True)
class ChainEntry:
    """One parsed recipe entry. ``stems`` is ``"all"`` or a tuple of stem/group names."""

    step: Step
    p: float
    stems: str | tuple[str, ...]
    shared: bool | str
    key: str  # "augment[i]": field path and shared-draw key

    def targets(self, stem: str, groups: Mapping[str, Sequence[str]]) -> bool:
        if self.stems == "all":
            return True
        return any(stem == s or stem in groups.get(s, ()) for s in self.stems)

    def is_shared(self, mode: str) -> bool:
        return self.shared == "always" or (self.shared is True and mode == "coherent")

    def draw_one(self, rng: np.random.Generator, context: Mapping[str, Any]) -> dict | None:
        if not rng.random() < self.p:
            return None
        return {"step": self.step.name, **self.step.draw(rng, context)}


@dataclass(frozen=True)
class Chain:
    """A parsed ``augment`` section: an ordered tuple of :class:`ChainEntry`."""

    entries: tuple[ChainEntry, ...] = ()

    def __len__(self) -> int:
        return len(self.entries)

    def draw(self, rng: np.random.Generator, stem: str, context: Mapping[str, Any]) -> list[dict]:
        """Concrete steps for one stem, in order: ``[{"step": name, **params}, ...]``.

        ``context``: ``sample_rate`` (int), ``channels`` (int), ``mode`` ("coherent" or
        "incoherent"), ``shared`` (a dict the caller creates empty per mixture and passes for
        every stem of it); optional ``groups`` ({group: [stem, ...]}) when the chain was not
        resolved with :meth:`resolve`. Steps that do not fire are not listed. Returns fresh
        dicts (safe to mutate / store).
        """
        missing = [k for k in ("sample_rate", "channels", "mode", "shared") if k not in context]
        if missing:
            raise ValueError(f"Chain.draw context lacks {missing}")
        groups = context.get("groups") or {}
        out: list[dict] = []
        for e in self.entries:
            if not e.targets(stem, groups):
                continue
            if e.is_shared(context["mode"]):
                cache = context["shared"]
                if e.key not in cache:
                    cache[e.key] = e.draw_one(rng, context)
                params = cache[e.key]
            else:
                params = e.draw_one(rng, context)
            if params is not None:
                out.append(dict(params))
        return out

    def resolve(self, stems: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None,
                field: str = "augment") -> "Chain":
        """Expand group names into stem names and check every name exists (recipe load time).

        ``stems``: the recipe's stem names; ``groups``: {group: [stem, ...]}. Unknown names raise
        RecipeError at ``<field>[i].stems`` listing what is known.
        """
        groups = dict(groups or {})
        known = set(stems)
        out = []
        for e in self.entries:
            if e.stems == "all":
                out.append(e)
                continue
            expanded: list[str] = []
            for name in e.stems:
                if name in groups:
                    expanded += [s for s in groups[name] if s not in expanded]
                elif name in known:
                    if name not in expanded:
                        expanded.append(name)
                else:
                    raise RecipeError(
                        f"{e.key}.stems",
                        f"unknown stem or group {name!r}; known: "
                        f"{', '.join(sorted(known | set(groups)))}",
                    )
            out.append(ChainEntry(e.step, e.p, tuple(expanded), e.shared, e.key))
        return Chain(tuple(out))


def parse_chain(entries: Any, field: str = "augment", channels: int = 2,
                sample_rate: Hz | None = None) -> Chain:
    """Validate a recipe's ``augment`` list and build a :class:`Chain`.

    Every problem raises RecipeError naming the field path, e.g. ``augment[1].db``: not a list,
    entry not a mapping, missing/unknown ``step`` (lists the known steps), unknown parameter
    (lists the step's parameters), ``p`` outside [0, 1], bad ``stems``/``shared``, parameter
    values out of range, a step invalid for ``channels`` (channel swap on mono), a frequency at
    or above Nyquist or a codec sample rate unsupported (when ``sample_rate`` is given).
    A ``mode: cached`` pitch/tempo entry after a non-cached one is refused (a variant is of the
    unprocessed stem).
    ``None`` means no augmentation.
    """
    if entries is None:
        return Chain()
    if not isinstance(entries, (list, tuple)):
        raise RecipeError(field, f"expected a list of steps, got {type(entries).__name__}")
    parsed = []
    for i, raw in enumerate(entries):
        key = f"{field}[{i}]"
        if not isinstance(raw, Mapping):
            raise RecipeError(key, f"expected a mapping with a 'step' key, got {raw!r}")
        name = raw.get("step")
        if name is None:
            raise RecipeError(f"{key}.step", f"missing; known steps: {', '.join(base.names())}")
        try:
            cls = base.get(name)
        except StepError:
            raise RecipeError(f"{key}.step", f"unknown step {name!r}; known steps: "
                              f"{', '.join(base.names())}") from None
        p = raw.get("p", 1.0)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) \
                or not 0.0 <= p <= 1.0:
            raise RecipeError(f"{key}.p", f"probability must be a number in [0, 1], got {p!r}")
        stems = _parse_stems(raw.get("stems", "all"), f"{key}.stems")
        shared = raw.get("shared", cls.shared_default)
        if shared not in (True, False, "always"):
            raise RecipeError(f"{key}.shared", f"expected true, false or always, got {shared!r}")
        params = {k: v for k, v in raw.items() if k not in RESERVED}
        step = cls.configure(params, key, channels=channels, sample_rate=sample_rate)
        if step.options.get("mode") == "cached" and parsed and \
                (before := [e for e in parsed if e.step.options.get("mode") != "cached"]):
            raise RecipeError(f"{key}.mode", f"mode cached reads a pre-computed variant of the "
                              f"unprocessed stem, so it must come before every other step; "
                              f"{before[0].key} ({before[0].step.name}) is earlier")
        parsed.append(ChainEntry(step, float(p), stems, shared, key))
    return Chain(tuple(parsed))


def _parse_stems(value: Any, field: str) -> str | tuple[str, ...]:
    if value == "all":
        return "all"
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, (list, tuple)) and value and all(isinstance(s, str) and s for s in value):
        return tuple(value)
    raise RecipeError(field, f"expected 'all', a stem or group name, or a non-empty list of "
                      f"names, got {value!r}")


# ---------------------------------------------------------------------- rendering
def _split(step: Mapping[str, Any]) -> tuple[type[Step], dict]:
    if not isinstance(step, Mapping) or "step" not in step:
        raise StepError(f"a recorded augmentation step must be a mapping with 'step', got {step!r}")
    return base.get(step["step"]), {k: v for k, v in step.items() if k != "step"}


def frame_plan(steps: Sequence[Mapping[str, Any]], out_frames: Frames) -> list[Frames]:
    """Lengths through the chain: ``plan[i]`` is step i's input length, ``plan[-1] == out_frames``.

    Computed backwards: the last step must output ``out_frames``, each earlier step must output
    what the next one reads.
    """
    plan = [int(out_frames)]
    for step in reversed(steps):
        cls, params = _split(step)
        plan.append(int(cls.source_frames(params, plan[-1])))
    return plan[::-1]


def source_frames(steps: Sequence[Mapping[str, Any]], out_frames: Frames) -> Frames:
    """Frames the renderer must read for ``steps`` to yield exactly ``out_frames``."""
    return frame_plan(steps, out_frames)[0]


def loudness_span(steps: Sequence[Mapping[str, Any]], out_frames: Frames,
                  preserving=("polarity", "channel_swap")) -> Frames | None:
    """How many source frames (from the read start) to take the stem's loudness from, via the
    index's stored energies, instead of measuring the processed audio; None = measure it.

    Every step must be in ``preserving`` (K-weighted energy unchanged: ``out_frames``) or a tape
    step recorded with ``loudness: source`` (opt-in approximation, see
    :class:`~stemforge.augment.pitch.TapeLoudness`): the output then covers
    ``round(out_frames * speed)`` source frames, ``speed`` the product of the tape speeds.
    """
    speed = 1.0
    for step in steps:
        cls, params = _split(step)
        if cls.name in preserving:
            continue
        sp = cls.tape_speed(params) if params.get("loudness") == "source" else None
        if sp is None:
            return None
        speed *= sp
    return int(out_frames) if speed == 1.0 else int(round(out_frames * speed))


def apply_steps(audio: np.ndarray, sample_rate: Hz, steps: Sequence[Mapping[str, Any]],
                out_frames: Frames) -> np.ndarray:
    """Apply recorded steps in order: float32 ``(C, source_frames(steps, out_frames))`` ->
    float32 ``(C, out_frames)``. Deterministic; the input is never modified.

    A run of consecutive tape steps (quick ``pitch_shift``/``time_stretch``: ``tape_speed`` is
    not None) of the same ``tape_quality`` is applied as one tape speed change by the product
    of their speeds: one resampling instead of one per step (same effect, cheaper; bytes differ
    from chaining them).
    Its input is the run's first step's input (``plan``), so the lengths are unchanged.

    Raises AudioError when the input length is not ``source_frames(steps, out_frames)`` (the
    caller must read exactly that much; short sources go to the silence policy, never padding),
    and StepError for an unknown step or params that do not match its schema.
    """
    plan = frame_plan(steps, out_frames)
    if audio.ndim != 2 or audio.shape[1] != plan[0]:
        raise AudioError(
            f"augmentation chain {[s['step'] for s in steps]}: expected ({'C'}, {plan[0]}) input "
            f"frames to produce {out_frames}, got shape {audio.shape}"
        )
    split = [_split(s) for s in steps]
    i = 0
    while i < len(split):
        cls, params = split[i]
        speed = cls.tape_speed(params)
        j = i + 1
        if speed is not None:  # fuse a run of tape speed changes into one resampling
            quality = cls.tape_quality(params)
            while j < len(split) and (s := split[j][0].tape_speed(split[j][1])) is not None \
                    and split[j][0].tape_quality(split[j][1]) == quality:
                speed, j = speed * s, j + 1
        n_out = plan[j]
        if j - i > 1:
            names = "+".join(c.name for c, _ in split[i:j])
            audio = fit_length(names, tape(check_audio(names, audio), sample_rate, speed, quality,
                                           n_out), n_out)
        else:
            audio = cls.apply(audio, sample_rate, params, n_out)
        if audio.shape[1] != n_out:  # a step breaking its own contract is a bug, not user error
            raise AssertionError(f"{cls.name} returned {audio.shape[1]} frames, not {n_out}")
        i = j
    if not steps:
        audio = np.ascontiguousarray(audio, dtype=np.float32)
    return audio
