"""Where the metrics' compiled kernels come from: :func:`kernels`.

The kernels are written once, for numba, in :mod:`stemforge.metrics._kernels` (the readable
reference). ``stemforge warmup`` also builds them ahead of time (:mod:`stemforge._aot`), which
a process loads in about a millisecond without importing numba; without a matching build the
numba module is used (cached machine code, or compiled on first use). Same numbers either way.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

from .._aot import KernelModule, kernels as _kernels

#: the kernels BSS Eval and the whole-track metrics call, with the argument types their callers
#: pass (see :class:`stemforge._aot.KernelModule`); a call with other types runs the numba kernel
METRICS = KernelModule(
    name="metrics",
    source="stemforge.metrics._kernels",
    signatures={
        # spec (rows, chunks, 2F), m, c0, c1, step, f_lo, f_hi, acc_r (pairs, 2F), acc_d (m, q, 2F)
        "cross_spectra": ("f8[3]", "i8", "i8", "i8", "i8", "i8", "i8", "f8[2]", "f8[3]"),
        # spec, t0, t1, hall (m, m, 2F), hown (nch, m, 2F), w (F,), nch, out (5, frames, nsrc)
        "projection_energies": ("f8[3]", "i8", "i8", "f8[3]", "f8[3]", "f8[1]", "i8", "f8[3]"),
        # refs, ests (nsrc, ch, n), starts, stops (frames,), s_energy, err_energy, silent:
        # float64 stacks, float32 stacks (stemforge evaluate)
        "frame_energies": [(x, x, "i8[1]", "i8[1]", "f8[2]", "f8[2]", "b1[1]")
                           for x in ("f8[3]", "f4[3]")],
        # x, y (nsrc, ch, n), xx, xy (nsrc,)
        "dot_sums": [(x, x, "f8[1]", "f8[1]") for x in ("f8[3]", "f4[3]")],
        # x, y (nsrc, ch, n), alpha, tt, ee (nsrc,)
        "scaled_error_sums": [(x, x, "f8[1]", "f8[1]", "f8[1]") for x in ("f8[3]", "f4[3]")],
        # R (systems, 2L-1, m, m), Y (systems, L, m, q), X out (systems, L, m, q)
        "levinson": ("f8[4]r", "f8[4]", "f8[4]"),
        "levinson_t": ("f8[4]r", "f8[4]", "f8[4]"),
    },
)


def kernels():
    """The metrics kernels by name (``cross_spectra``, ``projection_energies``,
    ``frame_energies``, ``dot_sums``, ``scaled_error_sums``, ``levinson``, ``levinson_t``): the
    ahead-of-time build when
    ``stemforge warmup`` made one for this source, else :mod:`._kernels` (numba)."""
    return _kernels(METRICS)


BLAS_TABLE = "scipy.linalg.cython_blas"


def load_blas_table() -> None:
    """Load SciPy's table of BLAS functions, which the block Levinson kernel's products
    (``np.dot`` in :func:`._kernels.levinson`) look up on their first call, by itself.

    Compiled code asks for the module ``scipy.linalg.cython_blas``; imported the usual way that
    runs ``scipy.linalg``'s package first (~0.17 s with the GIL held: SciPy's array-API layer
    imports ``numpy.f2py``), here the extension module alone is loaded (~0.02 s) and
    registered under its name, so the kernel's lookup finds it. A later ``import
    scipy.linalg`` works as usual (and uses this module). Where SciPy has no such file nothing
    is done; where it does not load by itself a warning says so, and the kernel's own import
    then loads it through ``scipy.linalg`` (same numbers, ~0.15 s later)."""
    if BLAS_TABLE in sys.modules:
        return
    import scipy

    folder = Path(scipy.__file__).parent / "linalg"
    path = next((folder / f"cython_blas{sfx}" for sfx in importlib.machinery.EXTENSION_SUFFIXES
                 if (folder / f"cython_blas{sfx}").is_file()), None)
    if path is None:
        return
    spec = importlib.util.spec_from_file_location(BLAS_TABLE, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[BLAS_TABLE] = mod
    try:
        spec.loader.exec_module(mod)
    except ImportError as e:
        sys.modules.pop(BLAS_TABLE, None)
        import warnings

        from ..errors import StemforgeWarning

        warnings.warn(f"{path}: SciPy's BLAS table does not load by itself ({e}); importing "
                      "scipy.linalg for it instead", StemforgeWarning, stacklevel=2)
    except BaseException:
        sys.modules.pop(BLAS_TABLE, None)
        raise
