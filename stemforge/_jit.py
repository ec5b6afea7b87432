"""Compiled kernels: numba's ``njit`` with stemforge's defaults.

The hot loops that numpy cannot fuse (one pass over several arrays: the mixing sum with its
targets and peak, BSS Eval's cross-spectra and projections) are written as plain Python loops
and compiled by numba on first use. Defaults: ``cache=True`` (the machine code is kept in
``__pycache__`` beside the source, or numba's user-wide cache when that is read-only, so a
process pays the compile once per machine, not once per run), ``nogil=True`` (threads can run
kernels in parallel) and IEEE arithmetic (no ``fastmath``: every kernel's result is specified
bit for bit, e.g. ``mix == sum(targets)`` and re-renders byte-identical to first renders).

Import this module lazily, inside the functions that need a kernel, so ``stemforge --help``
and light imports do not pay numba's import.
"""
from __future__ import annotations

from typing import Any, Callable

from numba import njit as _njit


def njit(*args: Any, **kwargs: Any) -> Callable:
    """``numba.njit`` with ``cache=True`` and ``nogil=True`` unless given: use as ``@njit`` or
    ``@njit(signature, ...)``."""
    kwargs.setdefault("cache", True)
    kwargs.setdefault("nogil", True)
    if len(args) == 1 and callable(args[0]):
        return _njit(**kwargs)(args[0])
    return _njit(*args, **kwargs)
