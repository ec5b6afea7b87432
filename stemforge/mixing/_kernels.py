"""Compiled inner loop of ``render``: gains, target sums, mix and peak in one pass.

NumPy needs one pass over memory per operation (each slice times its gain, each add into the
mix, the peak, the rescale), so an item of four 5 s stereo stems moves ~10 arrays of 1.7 MB
through the caches. Here every source sample is read once, each target and mix sample is
written once, and the peak is taken in the same vectorised loop (an unsigned max of the mix
value's IEEE bits, see :func:`abs_bits`).

A loop that keeps every value in registers needs the item's *shape* fixed at compile time: the
number of sources feeding each target (``counts``, e.g. ``(1, 3)`` for vocals vs a three-stem
accompaniment). :func:`plan_kernels` writes that loop's source for a shape into a small module
in the kernel folder (:func:`stemforge._jit.kernel_dir`: ``$STEMFORGE_KERNEL_DIR``, else
``~/.cache/stemforge/kernels``) and imports it, so numba's on-disk cache (in the same folder)
keeps the machine code between processes. A process
compiles at most ``MAX_PLANS`` shapes (and only shapes of at most ``MAX_SOURCES`` sources);
further shapes use :func:`mix_generic`, a fixed kernel that walks the sources block by block —
slower, same bytes.

Arithmetic is the reference's (:mod:`stemforge.mixing.reference`, plain NumPy): float32, in
its order, so the bytes are identical whichever kernel runs (``tests/test_mixing_reference.py``
checks each one against it): a target is ``fl(x0 * g0)``, then ``fl(t + fl(x1 * g1))`` for
each further member in spec order; with a clip scale ``k``, ``fl(t * k)``; the mix is
``((t0 + t1) + t2) + ...`` over targets in spec order. No fused multiply-add, no reassociation
(numba without ``fastmath``). The block steps (:func:`_targets_block`, :func:`_scale_block`,
:func:`_mix_block`) serve the generic kernels and the peak bound; the fused loops are generated
per shape (:func:`_plan_source`) with the same operations inlined.

Shapes: ``rows`` is a tuple of ``K * C`` contiguous read-only ``(T,)`` arrays, all float32 or
all int16 (StemCache entries of 16-bit sources: each sample is read as ``fl32(k) * 2**-15``,
:func:`sample`, the exact float32 value the reference mixes), row
``k * C + c`` being channel ``c`` of source ``k``, sources grouped by target in target order
(spec order within a target); ``gains`` float32 ``(K,)``; ``targets`` float32 ``(S, C, T)``;
``mix`` float32 ``(C, T)``; ``scale`` float32 (1 = none). Kernels return the largest ``|mix|``
as float32, NaN when the mix holds a NaN.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from numba import types
from numba.extending import overload

from .. import _jit
from .._jit import njit
from ..audio.cache import PCM16_UNIT
from . import reference

#: frames per block of the blocked loops (both channels of a block in turn; the choice is
#: measured in docs/benchmarks.md)
BLOCK = 8192
#: shapes compiled per process; others run on :func:`mix_generic`
MAX_PLANS = 24
#: largest source count given its own compiled loop
MAX_SOURCES = 12


def sample(x):
    """A source sample as the float32 the reference mixes: int16 ``k`` (a StemCache entry of a
    16-bit source) is ``fl32(k) * 2**-15`` (exact), a float32 is itself. Compiled code calls
    the overload below, specialised per row type."""
    return np.float32(x) * PCM16_UNIT if isinstance(x, (int, np.integer)) else x


@overload(sample, inline="always")
def _sample_impl(x):
    if isinstance(x, types.Integer):
        def impl(x):
            return np.float32(x) * PCM16_UNIT
    else:
        def impl(x):
            return x
    return impl


@njit
def abs_bits(m):
    """The IEEE bits of the largest ``|m[i]|`` of a contiguous float32 ``(n,)`` row (uint32).

    With the sign cleared, unsigned order of the bit patterns is magnitude order and every NaN
    ranks above infinity, so an integer max (which vectorises, unlike a float max that has to
    honour NaN) gives the peak, and a running max of these bits over blocks keeps a NaN."""
    u = m.view(np.uint32)
    hi = np.uint32(0)
    mask = np.uint32(0x7FFFFFFF)
    for i in range(u.shape[0]):
        # ufuncs keep uint32 (``max``/``&`` would widen to 64 bits: no vpmaxud)
        hi = np.maximum(hi, np.bitwise_and(u[i], mask))
    return hi


@njit
def as_float(bits):
    """float32 value of uint32 IEEE ``bits``."""
    return np.array([bits], np.uint32).view(np.float32)[0]


@njit
def abs_max(m):
    """Largest ``|m[i]|`` of a contiguous float32 ``(n,)`` row as float32; NaN if any is NaN."""
    return as_float(abs_bits(m))


@njit
def _targets_block(rows, gains, counts, c, f0, f1, t):
    """Reference step 1 for frames ``[f0, f1)`` of channel ``c``: target ``j`` into
    ``t[j, :f1 - f0]`` (``t``: float32 ``(S, >= f1 - f0)``, any strides), ``fl(x0 * g0)`` then
    ``+= fl(xk * gk)`` per further member; zeros for a target without members."""
    C = len(rows) // gains.shape[0]
    n = f1 - f0
    k = 0
    for j in range(counts.shape[0]):
        tj = t[j, :n]
        if counts[j] == 0:
            tj[:] = 0.0
        for r in range(counts[j]):
            x = rows[k * C + c][f0:f1]
            g = gains[k]
            if r == 0:
                for i in range(n):
                    tj[i] = sample(x[i]) * g
            else:
                for i in range(n):
                    tj[i] += sample(x[i]) * g
            k += 1


@njit
def _scale_block(t, n, scale):
    """Reference step 4's scaling of ``t[:, :n]`` in place: ``fl(t * scale)``."""
    for j in range(t.shape[0]):
        tj = t[j, :n]
        for i in range(n):
            tj[i] *= scale


@njit
def _mix_block(t, m, n):
    """Reference step 2: ``m[:n] = ((t0 + t1) + t2) + ...`` of ``t[:, :n]``; returns the
    block's :func:`abs_bits` (step 3)."""
    S = t.shape[0]
    mm = m[:n]
    if S == 1:
        for i in range(n):
            mm[i] = t[0, i]
    else:
        for i in range(n):
            mm[i] = t[0, i] + t[1, i]
        for j in range(2, S):
            for i in range(n):
                mm[i] += t[j, i]
    return abs_bits(mm)


@njit
def mix_generic(rows, gains, counts, targets, mix, scale):
    """Any shape, block by block: ``counts`` int64 ``(S,)`` sources per target (see the module
    docstring). The fallback of :func:`plan_kernels`; same bytes as the fused loops."""
    C = mix.shape[0]
    T = mix.shape[1]
    peak = np.uint32(0)
    for c in range(C):
        for b0 in range(0, T, BLOCK):
            b1 = min(b0 + BLOCK, T)
            t = targets[:, c, b0:b1]
            _targets_block(rows, gains, counts, c, b0, b1, t)
            if scale != np.float32(1.0):
                _scale_block(t, b1 - b0, scale)
            peak = max(peak, _mix_block(t, mix[c, b0:b1], b1 - b0))
    return as_float(peak)


@njit
def rescale_generic(targets, mix, scale):
    """In place: every target ``fl(t * scale)``, then the mix summed again from them; returns
    the new peak."""
    C = mix.shape[0]
    T = mix.shape[1]
    peak = np.uint32(0)
    for c in range(C):
        for b0 in range(0, T, BLOCK):
            b1 = min(b0 + BLOCK, T)
            t = targets[:, c, b0:b1]
            _scale_block(t, b1 - b0, scale)
            peak = max(peak, _mix_block(t, mix[c, b0:b1], b1 - b0))
    return as_float(peak)


#: relative slack on a peak bound: float32 rounding of K products and S + K sums stays far
#: below it for any realistic source count (each adds at most 2**-24 relative)
BOUND_SLACK = 1e-4


# the mastering bus's gain computers: the reference's own loops, compiled (one definition)
limiter_gain = njit(reference.limiter_gain)
compressor_gain = njit(reference.compressor_gain)


@njit
def _block_peak(rows, gains, counts, c, f0, f1, t, m):
    """:func:`abs_bits` of mix frames ``[f0, f1)`` of channel ``c``, computed exactly as the
    mixing kernels do (the same block steps); ``t`` ``(S, E)`` and ``m`` ``(E,)`` float32
    scratch."""
    _targets_block(rows, gains, counts, c, f0, f1, t)
    return _mix_block(t, m, f1 - f0)


@njit
def _bounds(envs, gains, starts, E, T, c, b0, b1, out):
    """``out[b - b0]`` for mix blocks ``b`` in ``[b0, b1)`` (of ``E`` frames) of channel ``c``:
    ``sum_k |g_k| * env_k`` over the stem blocks the block reads, at least its largest
    ``|mix|`` up to rounding (float64; NaN when an envelope value it uses is NaN). Sources in
    the outer loop: one tuple look-up per source, not per block."""
    out[:b1 - b0] = 0.0
    last = (T + E - 1) // E - 1
    for k in range(gains.shape[0]):
        e = envs[k][c]
        g = abs(np.float64(gains[k]))
        s = starts[k]
        # mix block b reads stem frames [s + b E, s + min(b E + E, T) - 1]: stem blocks q + b
        # and, when the start is not aligned (or at the excerpt's last frame), the next one
        q = s // E
        step = 1 if s % E else 0
        qlast = (s + T - 1) // E
        for b in range(b0, b1):
            u = e[q + b]
            q1 = qlast if b == last else q + b + step
            if q1 != q + b:
                v = e[q1]
                if v > u or v != v:  # NaN-keeping max
                    u = v
            out[b - b0] += g * np.float64(u)


@njit
def _take_largest(u):
    """Index of the largest value of ``u`` (float64, no NaN), -1 when all are negative (the
    walk marks taken entries -1; bounds are never negative). A linear scan: the walk takes a
    few of a few hundred entries, cheaper than sorting them."""
    best, bv = -1, -0.5
    for i in range(u.shape[0]):
        if u[i] > bv:
            best, bv = i, u[i]
    return best


@njit
def bounded_peak(rows, gains, counts, fine, coarse, starts, E, G, floor, max_visit):
    """The mix's exact peak, found from the sources' peak envelopes without mixing it whole.

    ``fine``/``coarse``: per source the float32 ``(C, n)`` envelopes of the whole stem (largest
    ``|x|`` per ``E`` and per ``E * G`` frames); ``starts`` int64 ``(K,)`` the stem frame where
    ``rows`` begin. A bound on ``|mix|`` over a block is ``sum_k |g_k| * env_k`` over the stem
    blocks it reads (:func:`_bounds`, with :data:`BOUND_SLACK` for float32 rounding).
    Coarse blocks are walked from the largest bound down while their bound reaches
    ``bar = max(peak so far, floor)``; inside one, fine blocks are mixed exactly
    (:func:`_block_peak`) from the largest bound down while theirs does, raising the bar. No
    skipped block can exceed the result. NaN bounds count as infinite (walked first).

    Returns float32: the exact peak when it is at least ``floor`` (NaN when the mix holds a
    NaN); a value below ``floor`` means only "the peak is below ``floor``"; -1 when more than
    ``max_visit`` fine blocks would need mixing (the caller then mixes in full).
    """
    C = fine[0].shape[0]
    T = rows[0].shape[0]
    S = counts.shape[0]
    EC = E * G
    nbc = (T + EC - 1) // EC
    nbf = (T + E - 1) // E
    slack = 1.0 + BOUND_SLACK
    ubc = np.empty(C * nbc)
    for c in range(C):
        _bounds(coarse, gains, starts, EC, T, c, 0, nbc, ubc[c * nbc:(c + 1) * nbc])
    top = 0.0
    for i in range(ubc.shape[0]):
        if ubc[i] != ubc[i]:
            ubc[i] = np.inf  # walked first
        top = max(top, ubc[i])
    if top * slack < floor:
        return np.float32(0.0)  # nothing can reach the floor
    t = np.empty((S, E), np.float32)
    m = np.empty(E, np.float32)
    ubf = np.empty(G)
    bits = np.uint32(0)
    bar = np.float64(floor)
    visited = 0
    while True:
        idx = _take_largest(ubc)  # largest bound first: the bar rises soonest
        if idx < 0 or ubc[idx] * slack < bar:
            break  # every coarse block left is bounded below the bar
        ubc[idx] = -1.0  # walked
        c = idx // nbc
        f0 = (idx % nbc) * G
        f1 = min(f0 + G, nbf)
        _bounds(fine, gains, starts, E, T, c, f0, f1, ubf)
        for j in range(f1 - f0, G):
            ubf[j] = -1.0  # past the last fine block
        for j in range(f1 - f0):
            if ubf[j] != ubf[j]:
                ubf[j] = np.inf  # mixed first
        while True:
            j = _take_largest(ubf)
            if j < 0 or ubf[j] * slack < bar:
                break
            ubf[j] = -1.0
            b = f0 + j
            visited += 1
            if visited > max_visit:
                return np.float32(-1.0)
            bits = max(bits, _block_peak(rows, gains, counts, c, b * E, min(b * E + E, T), t, m))
            p = as_float(bits)
            if p != p:
                return p  # NaN: the result whatever else the mix holds
            if p > bar:
                bar = np.float64(p)
    return as_float(bits)


# ------------------------------------------------------------------ per-shape fused loops
def _block_loop(w, K: int, S: int) -> None:
    """Emit the loop header shared by both generated functions: per block ``[b0, b1)`` and
    channel ``c`` (channels inner: both channels of a block in turn, which the mixing benchmark
    found faster than a whole channel at a time), views ``x{k}`` of the source rows (K of them),
    ``t{j}`` of the target rows and ``m`` of the mix row."""
    w("    for b0 in range(0, T, BLOCK):")
    w("        b1 = min(b0 + BLOCK, T)")
    w("        for c in range(C):")
    for k in range(K):
        w(f"            x{k} = rows[{k} * C + c][b0:b1]")
    for j in range(S):
        w(f"            t{j} = targets[{j}, c, b0:b1]")
    w("            m = mix[c, b0:b1]")
    w("            mu = m.view(np.uint32)")


def _peak_of_sample(w, indent: str) -> None:
    """Emit the running peak, taken in the loop that writes the mix: the bits of ``m[i]`` read
    back through the uint32 view ``mu`` (the compiler forwards the store, so the value never
    leaves its register; the loop stays vectorised, ``vpmaxud``): cheaper than a second loop
    over the written block."""
    w(f"{indent}peak = np.maximum(peak, np.bitwise_and(mu[i], MASK))")


def _mix_sum(S: int) -> str:
    """``((v0 + v1) + v2) + ...`` over the S target values."""
    acc = "v0"
    for j in range(1, S):
        acc = f"({acc} + v{j})"
    return acc


def _plan_source(counts: tuple[int, ...]) -> str:
    """Python source of ``mix(rows, gains, targets, mix, scale)`` and
    ``rescale(targets, mix, scale)`` for one shape, every value kept in registers."""
    K, S = sum(counts), len(counts)
    L = []
    w = L.append
    w("# generated by stemforge.mixing._kernels for counts=%r: do not edit" % (counts,))
    w("import numpy as np")
    w("from stemforge._jit import njit")
    w("from stemforge.mixing._kernels import BLOCK, as_float, sample")
    w("")
    w("MASK = np.uint32(0x7FFFFFFF)")
    w("")
    w("")
    w("@njit")
    w("def mix(rows, gains, targets, mix, scale):")
    w("    C = mix.shape[0]")
    w("    T = mix.shape[1]")
    for k in range(K):
        w(f"    g{k} = gains[{k}]")
    w("    one = scale == np.float32(1.0)")
    w("    peak = np.uint32(0)")
    _block_loop(w, K, S)
    for scaled in (False, True):
        w("            if %s:" % ("one" if not scaled else "not one"))
        w("                for i in range(m.shape[0]):")
        k = 0
        for j, n in enumerate(counts):
            if n == 0:
                w(f"                    v{j} = np.float32(0.0)")
            for r in range(n):
                term = f"sample(x{k}[i]) * g{k}"
                w(f"                    v{j} = {term}" if r == 0 else f"                    v{j} = v{j} + {term}")
                k += 1
            if scaled and n:
                w(f"                    v{j} = v{j} * scale")
            w(f"                    t{j}[i] = v{j}")
        w(f"                    m[i] = {_mix_sum(S)}")
        _peak_of_sample(w, " " * 20)
    w("    return as_float(peak)")
    w("")
    w("")
    w("@njit")
    w("def rescale(targets, mix, scale):")
    w("    C = mix.shape[0]")
    w("    T = mix.shape[1]")
    w("    peak = np.uint32(0)")
    _block_loop(w, 0, S)
    w("            for i in range(m.shape[0]):")
    for j in range(S):
        w(f"                v{j} = t{j}[i] * scale")
        w(f"                t{j}[i] = v{j}")
    w(f"                m[i] = {_mix_sum(S)}")
    _peak_of_sample(w, " " * 16)
    w("    return as_float(peak)")
    return "\n".join(L) + "\n"


#: a hash of the generator's output and of this whole module (the generated code imports
#: ``BLOCK`` and ``as_float`` from here, and numba's disk cache keys a module's machine code on
#: that module's file only): any change here gives new module names, so no stale code loads
_GEN_TAG = hashlib.sha256(_plan_source((1, 2, 0)).encode()
                          + Path(__file__).read_bytes()).hexdigest()[:10]
_plans: dict[tuple[int, ...], object] = {}


def kernel_dir() -> Path:
    """Folder of the generated per-shape modules (:func:`stemforge._jit.kernel_dir`, where
    every kernel's machine code is cached too; created on demand)."""
    return _jit.kernel_dir()


def plan_kernels(counts: tuple[int, ...]):
    """The fused ``(mix, rescale)`` pair for a shape, or None when this process is over its
    ``MAX_PLANS`` budget, the shape has more than ``MAX_SOURCES`` sources, or the kernel folder
    cannot be written (the caller then runs the generic kernels)."""
    if counts in _plans:
        return _plans[counts]
    mod = None
    if len(_plans) < MAX_PLANS and 0 < sum(counts) <= MAX_SOURCES:
        try:
            mod = _load(counts)
        except OSError:
            mod = None
    _plans[counts] = mod
    return mod


def _load(counts: tuple[int, ...]):
    from ..atomic import write_text_atomic

    name = "mix_%s_%s" % (_GEN_TAG, "_".join(map(str, counts)))
    folder = kernel_dir()
    path = folder / f"{name}.py"
    src = _plan_source(counts)
    if not path.exists() or path.read_text() != src:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, src)
    modname = f"_stemforge_plan_{name}"
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[modname] = mod
    return mod
