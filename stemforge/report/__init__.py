"""Static HTML reports ("always listen to your data") and the figures behind them.

``build_report(paths, out)`` writes ``out/index.html`` for any mix of inputs: an indexed dataset
(root or ``index.jsonl``), a generated set (``stemforge generate`` output) or evaluation results
(museval JSON). The same figures are available for notebooks::

    from stemforge.report import dataset_figures, generated_figures, mixture_figure, results_figures
    figs = dataset_figures("path/to/musdb18")     # {"loudness": Figure, "activity": ..., ...}
    figs["loudness"]                              # shows inline in Jupyter
"""
from .build import ReportError, ReportResult, build_report, detect_kind
from .dataset import dataset_figures, track_activity_figure, track_warnings
from .generated import generated_figures, mixture_figure
from .plots import spectrogram_figure
from .results import results_figures

__all__ = ["build_report", "detect_kind", "ReportResult", "ReportError", "dataset_figures",
           "track_activity_figure", "track_warnings", "generated_figures", "mixture_figure",
           "results_figures", "spectrogram_figure"]
