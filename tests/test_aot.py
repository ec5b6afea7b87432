"""Ahead-of-time metrics kernels (stemforge._aot): bit-identical to numba's, loaded without
numba, GIL released, exact argument checks with numba as the fallback, stale or broken builds
ignored.

The build is the one ``stemforge warmup`` made in the kernel folder (CI runs warmup before the
suite); where there is none, the module builds one in a temporary folder first (~15 s)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

from stemforge import _aot
from stemforge.metrics import _kernels as JIT
from stemforge.metrics import bss_eval_v4
from stemforge.metrics.whole import whole_track
from stemforge.metrics.kernels import METRICS, kernels


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """(the imported build, the kernel folder holding it)."""
    from stemforge._kernel_folder import kernel_dir

    mod = _aot.load(METRICS)
    if mod is not None:
        return mod, kernel_dir()
    folder = tmp_path_factory.mktemp("kernels")
    path = _aot.build(METRICS, folder=folder / "aot")
    mod = _aot.import_build(METRICS, path)
    assert mod is not None
    return mod, folder


@contextmanager
def using(mod):
    """This process's kernels() gives ``mod``'s (behind the argument checks)."""
    saved = dict(_aot._loaded), dict(_aot._kernels)
    _aot._loaded[METRICS.name] = mod
    _aot._kernels.pop(METRICS.name, None)
    try:
        yield
    finally:
        _aot._loaded.clear()
        _aot._loaded.update(saved[0])
        _aot._kernels.clear()
        _aot._kernels.update(saved[1])


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("nsrc,nch,n,win,hop", [
    (4, 2, 3 * 44100 + 777, 44100, 44100),   # 4 stereo sources: BLAS recursion (m = 8)
    (2, 1, 20000, 4096, 2048),               # overlapping frames: uncached frame spectra
    (3, 2, 9000, 44100, 44100),              # one frame over the whole signal
    (1, 2, 50000, 8000, 8000),
])
def test_build_scores_bit_identical_to_numba(build, nsrc, nch, n, win, hop):
    """BSS Eval v4 (all four metrics) and the whole-track metrics through the build equal, byte
    for byte, the same calls through numba's kernels."""
    mod, _ = build
    rng = np.random.default_rng(nsrc * 7 + n)
    refs = rng.standard_normal((nsrc, nch, n))
    refs[0, :, : n // 5] = 0.0  # silent frames (NaN rows)
    ests = 0.8 * refs + 0.2 * np.roll(refs, 1, axis=0) + 0.05 * rng.standard_normal(refs.shape)
    with _aot.jit_only():
        want = bss_eval_v4(refs, ests, win=win, hop=hop, filters_len=64)
        want_w = whole_track(refs, ests, win=win)
    with using(mod):
        assert isinstance(kernels().cross_spectra, _aot.Checked)
        got = bss_eval_v4(refs, ests, win=win, hop=hop, filters_len=64)
        got_w = whole_track(refs, ests, win=win)
    for name in ("SDR", "ISR", "SIR", "SAR"):
        assert _same(got.metric(name), want.metric(name)), name
    assert want_w.keys() == got_w.keys()
    assert all(_same(got_w[k], want_w[k]) for k in want_w)


def test_each_exported_kernel_equals_numba(build):
    """Every exported kernel, called directly with its signature's types, writes exactly what
    numba's does; a singular block raises the same LinAlgError."""
    mod, _ = build
    rng = np.random.default_rng(3)
    m, q, nc, F = 4, 4, 3, 70
    spec = rng.standard_normal((m + q, nc, 2 * F))
    outs = []
    for k in (mod, JIT):
        acc_r, acc_d = np.zeros((m * (m + 1) // 2, 2 * F)), np.zeros((m, q, 2 * F))
        k.cross_spectra(spec, m, 0, nc, 2, 5, F - 3, acc_r, acc_d)
        hall, hown = rng.standard_normal((m, m, 2 * F)), rng.standard_normal((2, m, 2 * F))
        outs.append((acc_r, acc_d))
    assert all(_same(a, b) for a, b in zip(*outs))
    hall, hown, w = rng.standard_normal((m, m, 2 * F)), rng.standard_normal((2, m, 2 * F)), \
        rng.random(F)
    e = [np.zeros((5, nc, 2)) for _ in range(2)]
    mod.projection_energies(spec, 0, nc, hall, hown, w, 2, e[0])
    JIT.projection_energies(spec, 0, nc, hall, hown, w, 2, e[1])
    assert _same(*e)
    x, y = rng.standard_normal((2, 2, 900)), rng.standard_normal((2, 2, 900))
    x[:, :, 300:600] = 0
    starts, stops = np.array([0, 300, 600]), np.array([300, 600, 900])
    fe = [(np.empty((3, 2)), np.empty((3, 2)), np.empty(3, np.bool_)) for _ in range(2)]
    mod.frame_energies(x, y, starts, stops, *fe[0])
    JIT.frame_energies(x, y, starts, stops, *fe[1])
    assert all(_same(a, b) for a, b in zip(*fe)) and list(fe[0][2]) == [False, True, False]
    for m in (2, 8):  # the loop recursion and the BLAS one
        L = 12
        sig = rng.standard_normal((m, 4000))
        R = np.stack([sig[:, : 4000 - k] @ sig[:, k:].T for k in range(L)])
        R = np.concatenate([np.transpose(R[:0:-1], (0, 2, 1)), R])[None]
        Y = rng.standard_normal((1, L, m, 3))
        X = [np.empty_like(Y) for _ in range(2)]
        name = "levinson" if m >= 6 else "levinson_t"
        getattr(mod, name)(R, Y, X[0])
        getattr(JIT, name)(R, Y, X[1])
        assert _same(*X)
        with pytest.raises(np.linalg.LinAlgError):
            getattr(mod, name)(np.zeros_like(R), Y, X[0])


def test_other_argument_types_go_to_numba(build):
    """The compiled code trusts its signature, so a call with another dtype, layout, rank or a
    read-only output runs numba's kernel instead: the same result (or numba's error), never
    a misread array."""
    mod, _ = build
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((2, 2, 600)), rng.standard_normal((2, 2, 600))
    starts, stops = np.array([0, 300]), np.array([300, 600])

    def energies(k, x, y, starts=starts):
        s, e, sil = np.empty((2, 2)), np.empty((2, 2)), np.empty(2, np.bool_)
        k.frame_energies(x, y, starts, stops, s, e, sil)
        return s, e

    want = energies(JIT, x, y)
    with using(mod):
        k = kernels()
        calls = []
        real = k.frame_energies.variants
        k.frame_energies.variants = [((lambda *a, f=f: calls.append(1) or f(*a)), t)
                                     for f, t in real]
        try:
            assert all(_same(a, b) for a, b in zip(energies(k, x, y), want))
            assert calls == [1]
            for xx, st in ((np.asfortranarray(x), starts), (x, starts.astype(np.int32)),
                           (x[:, :, ::1].copy()[..., :600], starts)):
                assert all(_same(a, b) for a, b in zip(energies(k, xx, y, st), want))
            from numba.core.errors import TypingError

            with pytest.raises(TypingError):  # numba's own answer to a list
                energies(k, x, y, [0, 300])
            xf = np.asfortranarray(x.astype(np.float32))  # a float32 variant, Fortran order
            got = energies(k, xf, xf)
            assert all(_same(a, b) for a, b in zip(got, energies(JIT, xf, xf)))
            assert calls == [1, 1]  # the contiguous copy matched; the others went to numba
            ro = np.empty((2, 2))
            ro.flags.writeable = False
            with pytest.raises(Exception):
                k.frame_energies(x, y, starts, stops, ro, np.empty((2, 2)), np.empty(2, np.bool_))
            assert calls == [1, 1]
        finally:
            k.frame_energies.variants = real


@pytest.mark.parametrize("text,ok", [
    ("i8", "int"), ("f8[3]", "<f8 3 False"), ("f8[4]r", "<f8 4 True"), ("b1[1]", "|b1 1 False"),
])
def test_argument_types_parse(text, ok):
    t = _aot.ArgType.parse(text)
    assert (t.dtype is None and ok == "int") or f"{t.dtype} {t.ndim} {t.readonly}" == ok


@pytest.mark.parametrize("text", ["f8", "f8[3]w", "q9[2]"])
def test_bad_argument_types_are_named(text):
    with pytest.raises((ValueError, TypeError), match="f8|q9|data type"):
        _aot.ArgType.parse(text)


def test_kernels_run_without_the_gil(build):
    """Like numba's ``nogil=True``: while a long kernel runs in one thread, Python code in
    another keeps running."""
    mod, _ = build
    rng = np.random.default_rng(0)
    m, nc, F = 8, 400, 4000
    spec = rng.standard_normal((2 * m, nc, 2 * F))
    acc_r, acc_d = np.zeros((m * (m + 1) // 2, 2 * F)), np.zeros((m, m, 2 * F))
    t = time.perf_counter()
    mod.cross_spectra(spec, m, 0, nc, 1, 0, F, acc_r, acc_d)
    alone = time.perf_counter() - t
    assert alone > 0.02
    done = threading.Event()

    def run():
        mod.cross_spectra(spec, m, 0, nc, 1, 0, F, acc_r, acc_d)
        done.set()

    th = threading.Thread(target=run)
    count = 0
    th.start()
    while not done.is_set():
        count += 1
    th.join()
    # with the GIL held for the whole call the loop could run only between switch intervals
    # before and after it (a few iterations); it runs ~10^5 times per 20 ms when free
    assert count > 1000, (count, alone)


def _env(folder, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", _aot.ENV)}
    env.update(STEMFORGE_KERNEL_DIR=str(folder), **extra)
    return env


SCORE = """
import sys
import numpy as np
from stemforge.jobs.evaluate import score_track
rng = np.random.default_rng(0)
refs = {t: (0.1 * rng.standard_normal((2, 3 * 8000))).astype(np.float32) for t in "abcd"}
ests = {t: r + np.float32(0.1) for t, r in refs.items()}
score_track(refs, ests, [list(refs)], ("bsseval", "sisdr", "mdx", "csdr"), 8000)
from stemforge.metrics.kernels import kernels
print("numba" in sys.modules, type(kernels()).__name__)
"""


def test_scoring_with_a_build_imports_no_numba(build):
    """With the build in the kernel folder, scoring a track (4 stereo sources: the BLAS
    recursion too) never imports numba; with STEMFORGE_AOT=0 it uses numba's kernels."""
    _, folder = build
    p = subprocess.run([sys.executable, "-c", SCORE], capture_output=True, text=True,
                       env=_env(folder), timeout=300)
    assert p.stdout.split() == ["False", "SimpleNamespace"], p.stderr[-2000:]
    p = subprocess.run([sys.executable, "-c", SCORE], capture_output=True, text=True,
                       env=_env(folder, STEMFORGE_AOT="0"), timeout=300)
    assert p.stdout.split() == ["True", "module"], p.stderr[-2000:]


def test_stale_or_broken_builds_are_ignored(build, tmp_path, monkeypatch):
    """Only the build of this source's key is loaded: one for another key (an edited kernel)
    is ignored, a file that does not import as the module is ignored, and kernels() then gives
    numba's kernels."""
    monkeypatch.setenv("STEMFORGE_KERNEL_DIR", str(tmp_path))
    monkeypatch.setattr(_aot, "_loaded", {})
    monkeypatch.setattr(_aot, "_kernels", {})
    mod, _ = build
    aot = tmp_path / "aot"
    aot.mkdir()
    other = aot / f"stemforge_metrics_0000000000000000{os.path.splitext(mod.__file__)[1]}"
    other.write_bytes(open(mod.__file__, "rb").read())
    assert _aot.load(METRICS) is None and kernels() is JIT
    monkeypatch.setattr(_aot, "_loaded", {})
    monkeypatch.setattr(_aot, "_kernels", {})
    broken = _aot.build_path(METRICS)
    broken.write_bytes(b"not a shared object")
    from stemforge.errors import StemforgeWarning

    with pytest.warns(StemforgeWarning, match="does not import") as seen:
        assert _aot.load(METRICS) is None and kernels() is JIT
    assert str(broken) in str(seen[0].message)  # the warning names the file


def test_build_replaces_older_builds_atomically(build, tmp_path, monkeypatch):
    """A build lands under its final name only when complete (no partial file on failure)
    and removes the module's builds of other keys."""
    monkeypatch.setenv("STEMFORGE_KERNEL_DIR", str(tmp_path))
    monkeypatch.setattr(_aot, "_loaded", {})
    monkeypatch.setattr(_aot, "_kernels", {})
    aot = tmp_path / "aot"
    aot.mkdir()
    stale = aot / "stemforge_metrics_0000000000000000.so"
    stale.write_bytes(b"old")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending-deprecation notice
        import numba.pycc

    def broken(self):
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(numba.pycc.CC, "compile", broken)
    with pytest.raises(RuntimeError, match="no C compiler"):
        _aot.build(METRICS)
    assert sorted(p.name for p in aot.iterdir()) == [stale.name]  # nothing partial, old kept


def test_warmup_step_reports_a_failed_build_and_goes_on(monkeypatch, tmp_path):
    """Without a C compiler (any build failure) warmup's last step says so on its line and
    succeeds: numba's kernels serve."""
    from stemforge import warmup

    monkeypatch.setattr(_aot, "load", lambda module: None)

    def fail(module, **kw):
        raise RuntimeError("unable to find a C compiler\nmore")

    monkeypatch.setattr(_aot, "build", fail)
    name, step = warmup.steps()[-1]
    assert name.startswith("metrics kernels ahead of time")
    note = step(tmp_path)
    assert note.startswith("not built (RuntimeError: unable to find a C compiler); evaluate "
                           "loads numba's cached kernels instead")


def test_the_key_names_the_cpu(monkeypatch):
    """Builds target the host CPU (as numba's JIT): its identity is part of the key, so a
    kernel folder shared with another kind of machine never loads code built for this one;
    without /proc/cpuinfo the generic CPU is the target."""
    cpu = _aot._cpu()
    assert cpu[0] in ("host", "")
    k0 = _aot.key(METRICS)
    monkeypatch.setattr(_aot, "_cpu", lambda: ("host", "another-cpu"))
    assert _aot.key(METRICS) != k0
    monkeypatch.undo()
    import pathlib

    def unreadable(self, *a, **k):
        raise OSError("no such file")

    monkeypatch.setattr(pathlib.Path, "read_text", unreadable)
    assert _aot._cpu() == ("", "generic")
