"""Compiled kernels: numba's ``njit`` with stemforge's defaults, cached in one folder.

The hot loops that numpy cannot fuse (one pass over several arrays: the mixing sum with its
targets and peak, BSS Eval's cross-spectra and projections, the loudness gate sums, the item
seeding) are written as plain Python loops and compiled by numba on first use. Defaults:
``cache=True``, ``nogil=True`` (threads can run kernels in parallel) and IEEE arithmetic (no
``fastmath``: every kernel's result is specified bit for bit, e.g. ``mix == sum(targets)`` and
re-renders byte-identical to first renders).

Where the machine code is kept: every stemforge kernel (this package's modules and the mixing
loops generated per item shape) caches in one user-writable folder, :func:`kernel_dir`
(``$STEMFORGE_KERNEL_DIR``, else ``$XDG_CACHE_HOME/stemforge/kernels``, else
``~/.cache/stemforge/kernels``), under ``numba/``: never beside the installed source, which a
system install cannot write. ``NUMBA_CACHE_DIR``, when set, wins (numba's own setting). When the
folder cannot be written numba falls back to its usual places (or compiles per process).
``stemforge warmup`` fills the folder once (:mod:`stemforge.warmup`).

Import this module lazily, inside the functions that need a kernel, so ``stemforge --help``
and light imports do not pay numba's import.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from numba import njit as _njit
from numba.core import caching as _caching

from ._kernel_folder import kernel_dir  # noqa: F401  (re-exported: the one kernel folder)

#: this package's folder: its modules' kernels cache in the kernel folder
_PACKAGE = Path(__file__).resolve().parent


def numba_cache_dir() -> Path:
    """Where numba keeps stemforge's machine code: ``<kernel_dir>/numba``."""
    return kernel_dir() / "numba"


def _ours(py_file: str) -> bool:
    """Is ``py_file`` one of stemforge's modules or a generated kernel module?"""
    p = Path(os.path.abspath(py_file))
    for root in (_PACKAGE, Path(os.path.abspath(kernel_dir()))):
        try:
            p.relative_to(root)
            return True
        except ValueError:
            pass
    return False


class KernelDirLocator(_caching.UserProvidedCacheLocator):
    """numba cache locator for stemforge's kernels: :func:`numba_cache_dir`, a sub-folder per
    source folder (numba's naming). Declines other code, and declines when ``NUMBA_CACHE_DIR``
    is set or the folder cannot be written (numba's other locators then apply)."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(numba_cache_dir() / self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.environ.get("NUMBA_CACHE_DIR") or not _ours(py_file):
            return None
        # the source-file locator's checks (file exists, folder made and writable)
        return super(_caching.UserProvidedCacheLocator, cls).from_function(py_func, py_file)


def _install_locator() -> None:
    """Put :class:`KernelDirLocator` first in numba's locator list (once per process)."""
    impl = getattr(_caching, "CacheImpl", None) or getattr(_caching, "_CacheImpl")  # 0.57+ / older
    classes = impl._locator_classes
    if not any(c.__name__ == KernelDirLocator.__name__ and c.__module__ == __name__
               for c in classes):
        classes.insert(0, KernelDirLocator)


_install_locator()


def njit(*args: Any, **kwargs: Any) -> Callable:
    """``numba.njit`` with ``cache=True`` and ``nogil=True`` unless given: use as ``@njit`` or
    ``@njit(signature, ...)``."""
    kwargs.setdefault("cache", True)
    kwargs.setdefault("nogil", True)
    if len(args) == 1 and callable(args[0]):
        return _njit(**kwargs)(args[0])
    return _njit(*args, **kwargs)
