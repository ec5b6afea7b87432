"""The recipe's mastering bus (``master:``): parse and draw. What the drawn steps do to the audio
is :func:`stemforge.mixing.reference.master_gain` / :func:`~stemforge.mixing.reference.master_bus`.

Two forms::

    master: [{step: limiter, threshold_db: [uniform, -6, -1]}, {step: compressor, ...}]

    master:
      linear: false                  # the mix may stop being the sum of the targets
      steps:
        - {step: limiter, threshold_db: -1}
        - {step: tanh_distortion, p: 0.3, amount: [uniform, 0.05, 0.3]}
        - {step: mp3, p: 0.1, vbr_quality: [uniform, 2, 7]}

The list form is ``linear: true``: only the gain computers (:data:`GAIN_STEPS`), whose one
time-varying gain is applied to every target, so ``mix == sum(targets)`` holds. With
``linear: false`` any length-preserving augmentation step (``stemforge.augment``: codecs,
distortion, EQ, noise, ...) may also be used; it processes the mix alone, the mix is then the
processed one and the un-mastered sum of the targets is written beside them.

Drawing (:func:`draw_master`), per entry in order: a gain computer draws its parameters in
declaration order; an augmentation step draws one ``rng.random()`` for its ``p`` (always) and,
when it fires, its parameters (its ``Step.draw``); steps that do not fire are not recorded.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .. import distributions as D
from ..augment import base as augment_base
from ..augment.chain import ChainEntry
from ..errors import RecipeError

#: gain computers: parameter -> (default, low, high) (None default: required); each a
#: distribution drawn per item
GAIN_STEPS = {
    "limiter": {"threshold_db": (None, -60.0, 0.0), "release_ms": (100.0, 0.1, 10000.0)},
    "compressor": {"threshold_db": (None, -60.0, 0.0), "ratio": (4.0, 1.0, 100.0),
                   "attack_ms": (10.0, 0.01, 10000.0), "release_ms": (100.0, 0.1, 10000.0),
                   "makeup_db": (0.0, -24.0, 24.0)},
}
#: file name (without extension) of the un-mastered sum beside the targets (linear: false)
UNMASTERED = "unmastered"
MASTER_FIELDS = ("linear", "steps")


def parse_master(raw, channels: int, sample_rate: int) -> tuple[tuple, bool]:
    """A recipe's ``master`` value -> ``(entries, linear)``. Entries, in order:
    ``(name, {param: Distribution})`` for a gain computer, ``(name, ChainEntry)`` for an
    augmentation step (``linear: false`` only). Every problem is a RecipeError naming the
    field (``master.0.step``, ``master.steps.1.vbr_quality``, ``master.linear``, ...)."""
    if raw is None:
        return (), True
    linear, prefix = True, "master"
    if isinstance(raw, Mapping):
        for k in raw:
            if k not in MASTER_FIELDS:
                raise RecipeError(f"master.{k}", f"unknown field of master; known: "
                                  f"{', '.join(MASTER_FIELDS)}")
        linear = raw.get("linear", True)
        if not isinstance(linear, bool):
            raise RecipeError("master.linear", f"expected true or false, got {linear!r}")
        if "steps" not in raw:
            raise RecipeError("master.steps", "missing: the list of the bus's steps")
        raw, prefix = raw["steps"], "master.steps"
    if not isinstance(raw, list):
        raise RecipeError(prefix, f"expected a list of steps, e.g. [{{step: limiter, "
                          f"threshold_db: -1}}], got {raw!r}")
    out = []
    for i, e in enumerate(raw):
        f = f"{prefix}.{i}"
        if not isinstance(e, Mapping) or "step" not in e:
            raise RecipeError(f, f"expected a mapping with step: ({', '.join(GAIN_STEPS)}), "
                              f"got {e!r}")
        kind = e["step"]
        if kind in GAIN_STEPS:
            out.append((kind, _gain_step(e, kind, f)))
        else:
            out.append((kind, _mix_step(e, kind, f, linear, channels, sample_rate)))
    return tuple(out), linear


def _gain_step(e: Mapping, kind: str, f: str) -> dict:
    params = GAIN_STEPS[kind]
    for k in e:
        if k != "step" and k not in params:
            raise RecipeError(f"{f}.{k}", f"unknown parameter of {kind}; known: "
                              f"{', '.join(params)}")
    drawn = {}
    for k, (default, low, high) in params.items():
        if k not in e and default is None:
            raise RecipeError(f"{f}.{k}", f"missing (the {kind}'s {k})")
        drawn[k] = D.parse(e.get(k, default), f"{f}.{k}", low=low, high=high)
    return drawn


def _mix_step(e: Mapping, kind: Any, f: str, linear: bool, channels: int,
              sample_rate: int) -> ChainEntry:
    known = isinstance(kind, str) and kind in augment_base.names()
    if not known:
        raise RecipeError(f"{f}.step", f"unknown master step {kind!r}; known: "
                          f"{', '.join(GAIN_STEPS)} (gain computers: the same gain on every "
                          "target keeps mix == sum(targets)); with linear: false also any "
                          "length-preserving augmentation step (docs/augmentation.md)")
    cls = augment_base.get(kind)
    if not linear:
        if not cls.keeps_length:
            raise RecipeError(f"{f}.step", f"step {kind!r} changes the length; the mastering "
                              "bus takes only length-preserving steps")
    else:
        raise RecipeError(f"{f}.step", f"step {kind!r} processes the mix itself, which breaks "
                          "mix == sum(targets); allowed only on a bus declared non-linear: "
                          "master: {linear: false, steps: [...]} (the un-mastered sum is then "
                          "written beside the targets)")
    p = e.get("p", 1.0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) \
            or not 0.0 <= p <= 1.0:
        raise RecipeError(f"{f}.p", f"probability must be a number in [0, 1], got {p!r}")
    params = {k: v for k, v in e.items() if k not in ("step", "p")}
    step = cls.configure(params, f, channels=channels, sample_rate=sample_rate)
    return ChainEntry(step, float(p), "all", False, f)


def draw_master(entries, rng: np.random.Generator, sample_rate: int,
                channels: int) -> list[dict]:
    """The bus's drawn steps for one item, in order (see the module docstring); recipes
    without ``master`` draw nothing."""
    out = []
    for kind, params in entries:
        if isinstance(params, ChainEntry):
            ctx = {"sample_rate": sample_rate, "channels": channels, "mode": "coherent",
                   "shared": {}}
            drawn = params.draw_one(rng, ctx)
            if drawn is not None:
                out.append(drawn)
        else:
            out.append({"step": kind, **{k: float(d.sample(rng)) for k, d in params.items()}})
    return out
