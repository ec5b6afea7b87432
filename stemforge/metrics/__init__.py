"""Evaluation metrics: BSS Eval v4 (museval-exact, fast), SI-SDR, MDX SDR (= SDX uSDR), SDX cSDR,
aggregation, results trees of several methods, oracles.

Audio arrays follow the project convention: ``(nsrc, channels, frames)`` stacks (or sequences of
``(channels, frames)`` arrays), float; computation is float64.
"""
from . import museval_json, oracles
from .bsseval import BSSEvalScores, bss_eval_v4, bss_eval_v4_sdr, frame_bounds, frame_count
from .oracles import oracle
from .sdx import chunk_sdr, csdr, usdr
from .sisdr import mdx_sdr, si_sdr
from .validate import MetricsError, pad_or_trim


def __getattr__(name: str):
    """``aggregate`` (pandas tables) is imported on first use: scoring alone does not need
    pandas, and ``stemforge evaluate`` imports it while its first tracks are scored."""
    if name == "aggregate":
        import importlib

        return importlib.import_module(f"{__name__}.aggregate")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BSSEvalScores",
    "MetricsError",
    "bss_eval_v4",
    "bss_eval_v4_sdr",
    "chunk_sdr",
    "csdr",
    "frame_bounds",
    "frame_count",
    "aggregate",
    "mdx_sdr",
    "museval_json",
    "oracle",
    "oracles",
    "pad_or_trim",
    "si_sdr",
    "usdr",
]
