"""Dataset QA beside the index: ``stemforge doctor`` (see docs/doctor.md).

Finds duplicates and leakage across tracks, splits and datasets (audio fingerprints and an
inverted index), bleed between stems, and broken stems and mixtures (silence, dropouts,
clipping, DC offset, copied, inverted or swapped stems, a channel or span of the mixture that
does not match the stems, mismatched rates and lengths, labels that do not fit the content).
The findings are an exclusion list recipes apply (``exclude_flagged: doctor.json``).

Modules: ``run`` (the job and duplicate matching), ``track`` (every per-track check), ``scan``,
``frames``, ``source``, ``relation``, ``bleed``, ``labels``, ``fingerprint`` (the checks),
``findings`` and ``options`` (what is reported, with which thresholds), ``exclude`` (applying
the list), ``datasets`` (what is checked), ``songs`` and ``planted`` (made music and planted
defects for measuring all this).
"""
from __future__ import annotations

from .findings import KINDS, DoctorError, DoctorReport, Finding
from .options import Options

__all__ = ["KINDS", "DoctorError", "DoctorReport", "Finding", "Options", "resolve",
           "run_doctor"]


def resolve(path, name=None, layout=None, taxonomy=None, cache=None):
    """A dataset to check (see :func:`stemforge.doctor.datasets.resolve`)."""
    from .datasets import resolve as _resolve

    return _resolve(path, name, layout, taxonomy, cache)


def run_doctor(datasets, out=None, options=None, workers=1, scheduler=None, progress=False):
    """Check ``datasets`` and write ``out/doctor.json`` (see
    :func:`stemforge.doctor.run.run_doctor`)."""
    from .run import run_doctor as _run

    return _run(datasets, out, options, workers, scheduler, progress)
