"""Ahead-of-time builds of compiled kernels: machine code that loads without numba.

A one-shot command (``stemforge evaluate``) that finds numba's cached machine code still pays
numba's import and its CPU-target set-up before the first kernel runs: ~0.7 s with the GIL held
on the benchmark machine (numba ~0.3 s, its NumPy registries ~0.45 s, which import
scipy.linalg), while the kernels themselves run ~0.3 s per 22 s track. ``stemforge warmup``
therefore also compiles a kernel module ahead of time (numba's ``pycc``, from the same Python
source: the numba kernels module stays the one readable reference) into an extension module in
the kernel folder, ``<kernel_dir>/aot/stemforge_<name>_<key>.<ext>``. Importing it takes about a
millisecond and imports neither numba nor SciPy.

Semantics are the JIT's: the same source, the same IEEE arithmetic (no ``fastmath``; LLVM does
not reorder floating-point sums without it, so results are bit-identical to the JIT kernels,
tested), the GIL released while a kernel runs (as ``nogil=True``), compiled for the host CPU
as numba's JIT is (its vector instructions: the generic x86-64 target ran the cross-spectrum
pass ~1.3-1.8x slower), with the CPU's model and features in the key (so a kernel folder shared
with another kind of machine never loads code that machine cannot run; where they cannot be
read, the generic CPU).

Which build is used (:func:`load`): the one whose ``key`` matches; the key hashes the kernel
module's source, :mod:`stemforge._jit`, the Python ABI, NumPy's major version, the machine
architecture and CPU, so an edited kernel, another interpreter or another CPU never loads a
stale build. With no
matching build, ``STEMFORGE_AOT=0``, or a build that fails to import, callers use the numba
kernels (cached, or compiled on first use): the same numbers, ~0.7 s later.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Callable, Iterator

import numpy as np

#: set to "0" to never load ahead-of-time builds (always numba's kernels)
ENV = "STEMFORGE_AOT"


@dataclass(frozen=True)
class KernelModule:
    """A module of numba kernels with an ahead-of-time build.

    ``name``: short name in the build's file name; ``source``: the dotted name of the numba
    kernels module; ``signatures``: ``{kernel: argument types}`` or ``{kernel: [argument
    types, ...]}`` for several variants (the ones its callers use; every kernel returns
    nothing). Types are written without numba: ``"i8"`` an integer, ``"f8[3]"`` a C-contiguous
    float64 array of 3 dimensions (any NumPy dtype code), ``"f8[4]r"`` the same, read only in
    the kernel."""

    name: str
    source: str
    signatures: dict[str, tuple[str, ...] | list[tuple[str, ...]]]

    def variants(self, kernel: str) -> list[tuple[str, ...]]:
        """``kernel``'s signatures, in order."""
        sig = self.signatures[kernel]
        return list(sig) if isinstance(sig, list) else [sig]

    def exports(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(exported name, kernel, argument types) of every variant: the first under the
        kernel's name, the others as ``<kernel>__<k>``."""
        return [(kernel if k == 0 else f"{kernel}__{k}", kernel, args)
                for kernel in self.signatures for k, args in enumerate(self.variants(kernel))]

    def source_file(self) -> Path:
        """The kernels module's file (found without importing it, which would import numba)."""
        spec = importlib.util.find_spec(self.source)
        if spec is None or spec.origin is None:
            raise ImportError(f"no module {self.source}")
        return Path(spec.origin)


@dataclass(frozen=True)
class ArgType:
    """One argument type of a signature: a scalar integer, or a C-contiguous array."""

    dtype: str | None  # NumPy dtype code of an array; None: an integer scalar
    ndim: int = 0
    readonly: bool = False

    @classmethod
    def parse(cls, text: str) -> "ArgType":
        if text == "i8":
            return cls(None)
        if "[" not in text:
            raise ValueError(f"kernel argument type {text!r}: expected 'i8' or e.g. 'f8[3]'")
        code, rest = text.split("[", 1)
        dims, flag = rest.split("]", 1)
        if flag not in ("", "r"):
            raise ValueError(f"kernel argument type {text!r}: unknown flag {flag!r}")
        return cls(np.dtype(code).str, int(dims), flag == "r")

    def accepts(self, value) -> bool:
        """Does ``value`` have exactly this type (what the compiled code assumes)?"""
        if self.dtype is None:
            return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        return (isinstance(value, np.ndarray) and value.dtype.str == self.dtype
                and value.ndim == self.ndim and value.flags.c_contiguous and value.flags.aligned
                and (self.readonly or value.flags.writeable))

    def numba_type(self):
        from numba import from_dtype, types

        if self.dtype is None:
            return types.int64
        return types.Array(from_dtype(np.dtype(self.dtype)), self.ndim, "C",
                           readonly=self.readonly)


class Checked:
    """An ahead-of-time kernel (one or several compiled variants) behind an exact check of its
    arguments: the compiled code trusts its signature (another dtype, layout or rank would be
    read as if it matched), so a call runs the first variant whose types it matches exactly,
    and any other call the numba kernel of the same name, which compiles for what it gets."""

    def __init__(self, name: str, variants: list[tuple[Callable, tuple[ArgType, ...]]],
                 fallback: Callable[[], ModuleType]):
        self.__name__ = name
        self.variants = variants
        self._fallback = fallback

    def __call__(self, *args):
        for compiled, types in self.variants:
            if len(args) == len(types) and all(t.accepts(a) for t, a in zip(types, args)):
                return compiled(*args)
        return getattr(self._fallback(), self.__name__)(*args)


def _cpu() -> tuple[str, str]:
    """(the build's target CPU, what names it in the key). On Linux the host CPU (numba's JIT
    target too: its vector instructions), named by the model and feature flags of
    ``/proc/cpuinfo``, so a kernel folder shared with another kind of machine never loads code
    it cannot run; elsewhere the architecture's generic CPU."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", "generic"
    first = text.split("\n\n", 1)[0]
    ident = [ln.split(":", 1)[1].strip() for ln in first.splitlines()
             if ln.split(":", 1)[0].strip() in ("model name", "flags", "Features", "CPU part")]
    if not ident:
        return "", "generic"
    return "host", hashlib.sha256("|".join(ident).encode()).hexdigest()[:16]


def key(module: KernelModule) -> str:
    """16 hex digits naming what the build depends on (see the module docstring)."""
    h = hashlib.sha256()
    h.update(_cpu()[1].encode())
    for f in (module.source_file(), Path(__file__).with_name("_jit.py"), Path(__file__)):
        h.update(f.read_bytes())
    h.update(repr(module.exports()).encode())
    h.update(f"{sys.implementation.cache_tag}|{platform.machine()}|numpy{np.__version__.split('.')[0]}"
             .encode())
    return h.hexdigest()[:16]


def folder() -> Path:
    """Where builds are kept: ``<kernel_dir>/aot``."""
    from ._kernel_folder import kernel_dir

    return kernel_dir() / "aot"


def module_name(module: KernelModule) -> str:
    return f"stemforge_{module.name}_{key(module)}"


def build_path(module: KernelModule, into: Path | None = None) -> Path:
    """The file of ``module``'s build for this source and interpreter in ``into`` (default
    :func:`folder`); it may not exist."""
    return (folder() if into is None else Path(into)) / (
        module_name(module) + importlib.machinery.EXTENSION_SUFFIXES[0])


_loaded: dict[str, ModuleType | None] = {}
_kernels: dict[str, object] = {}
_lock = threading.Lock()


def load(module: KernelModule) -> ModuleType | None:
    """The matching build of ``module`` as an imported extension module, or None (no build
    for this key, ``STEMFORGE_AOT=0``, or it does not import). Looked up once per process."""
    with _lock:
        if module.name not in _loaded:
            _loaded[module.name] = None if os.environ.get(ENV) == "0" else _import(module)
        return _loaded[module.name]


_jit_only = [0]  # depth of open jit_only() blocks (process-wide)


@contextmanager
def jit_only() -> Iterator[None]:
    """While open (in any thread), :func:`kernels` gives the numba kernels: warmup compiles
    them, tests compare the two. The numbers are the same either way."""
    with _lock:
        _jit_only[0] += 1
    try:
        yield
    finally:
        with _lock:
            _jit_only[0] -= 1


def kernels(module: KernelModule):
    """``module``'s kernels by name: the build's (each behind :class:`Checked`) when
    :func:`load` finds one, else the numba kernels module itself (imported now; also inside
    :func:`jit_only`)."""
    if _jit_only[0]:
        return importlib.import_module(module.source)
    found = _kernels.get(module.name)
    if found is not None:
        return found
    built = load(module)
    if built is None:
        found = importlib.import_module(module.source)
    else:
        def jit() -> ModuleType:
            return importlib.import_module(module.source)

        variants: dict[str, list] = {}
        for export, kernel, args in module.exports():
            variants.setdefault(kernel, []).append(
                (getattr(built, export), tuple(ArgType.parse(t) for t in args)))
        found = SimpleNamespace(**{k: Checked(k, v, jit) for k, v in variants.items()})
    with _lock:
        return _kernels.setdefault(module.name, found)


def _import(module: KernelModule) -> ModuleType | None:
    return import_build(module, build_path(module))


def import_build(module: KernelModule, path: Path) -> ModuleType | None:
    """The build at ``path`` imported (not registered in ``sys.modules``), or None when there
    is no such file. A file that does not import, or lacks one of ``module``'s kernels, is
    reported (a :class:`~stemforge.errors.StemforgeWarning` naming it) and also gives None:
    numba's kernels then serve, with the same numbers."""
    if not path.is_file():
        return None
    problem = None
    try:
        # the module name is the file's (its init function is named after it)
        spec = importlib.util.spec_from_file_location(path.name.split(".", 1)[0], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    except (ImportError, OSError) as e:
        problem = f"does not import ({type(e).__name__}: {e})"
    else:
        missing = [x for x, _, _ in module.exports() if not callable(getattr(mod, x, None))]
        if missing:
            problem = f"lacks the kernel(s) {', '.join(missing)}"
    if problem is not None:
        import warnings

        from .errors import StemforgeWarning

        warnings.warn(f"{path}: this ahead-of-time kernel build {problem}; using numba's "
                      "kernels instead (`stemforge warmup` rebuilds it)", StemforgeWarning,
                      stacklevel=2)
        return None
    return mod


@contextmanager
def _gil_free_exports() -> Iterator[None]:
    """While building: the exported functions' Python wrappers release the GIL around the
    kernel (numba's ``nogil=True``; pycc's own flags leave it held)."""
    import numba.pycc.compiler as pycc_compiler
    from numba.core.compiler import Flags

    class NoGilFlags(Flags):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    saved = pycc_compiler.Flags
    pycc_compiler.Flags = NoGilFlags
    try:
        yield
    finally:
        pycc_compiler.Flags = saved


def build(module: KernelModule, folder: Path | None = None,
          report: Callable[[str], None] = lambda s: None) -> Path:
    """Compile ``module``'s kernels into :func:`build_path` in ``folder`` (default: the kernel
    folder's ``aot``), atomically (a finished file or none), removing the module's builds of
    other keys there. Needs numba's ``pycc``, setuptools and a C compiler; raises on failure
    (callers then keep using numba's kernels). Returns the file."""
    import warnings

    path = build_path(module, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending-deprecation notice
        from numba import types
        from numba.pycc import CC

        kernels = importlib.import_module(module.source)
        exports = [(export, kernel, types.void(*(ArgType.parse(t).numba_type() for t in args)))
                   for export, kernel, args in module.exports()]
        with tempfile.TemporaryDirectory(prefix=".build-", dir=path.parent) as tmp:
            cc = CC(module_name(module))
            cc.target_cpu = _cpu()[0]
            cc.output_dir = tmp
            cc.output_file = path.name
            for export, kernel, sig in exports:
                cc.export(export, sig)(getattr(kernels, kernel).py_func)
            with _gil_free_exports():
                cc.compile()
            os.replace(Path(tmp) / path.name, path)
    for old in path.parent.glob(f"stemforge_{module.name}_*"):
        if old != path:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    with _lock:
        _loaded.pop(module.name, None)
        _kernels.pop(module.name, None)
    report(f"built {path}")
    return path
