"""Evaluation metrics: BSS Eval v4 (museval-exact, fast), SI-SDR, MDX SDR, aggregation, oracles.

Audio arrays follow the project convention: ``(nsrc, channels, frames)`` stacks (or sequences of
``(channels, frames)`` arrays), float; computation is float64.
"""
from .bsseval import BSSEvalScores, bss_eval_v4, frame_bounds, frame_count
from .sisdr import mdx_sdr, si_sdr
from .validate import MetricsError, pad_or_trim

__all__ = [
    "BSSEvalScores",
    "MetricsError",
    "bss_eval_v4",
    "frame_bounds",
    "frame_count",
    "mdx_sdr",
    "pad_or_trim",
    "si_sdr",
]
