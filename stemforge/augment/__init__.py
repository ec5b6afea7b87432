"""Augmentation steps with the draw/apply split (see docs/augmentation.md).

    chain = parse_chain(recipe["augment"], channels=2, sample_rate=44100)   # load time
    steps = chain.draw(rng, "vocals", context)        # plain data for the MixSpec
    n_in = source_frames(steps, out_frames)           # frames the renderer reads
    y = apply_steps(x, 44100, steps, out_frames)      # (C, n_in) -> (C, out_frames)

Importing this package registers every built-in step.
"""
from __future__ import annotations

from . import basic, codec, degrade, effects, pitch  # noqa: F401  (register the steps)
from .base import Param, Step, StepError, get, names, register
from .chain import Chain, ChainEntry, apply_steps, frame_plan, parse_chain, source_frames

__all__ = [
    "Chain", "ChainEntry", "Param", "Step", "StepError", "apply_steps", "frame_plan", "get",
    "names", "parse_chain", "register", "source_frames",
]
