"""Every numba kernel (mixing, loudness, seeding, BSS Eval) caches its machine code in the one
kernel folder ($STEMFORGE_KERNEL_DIR), never beside the source; ``stemforge warmup`` runs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import stemforge

PKG = Path(stemforge.__file__).resolve().parent

# one small kernel of each compiled module; prints numba's cache hits per kernel
SCRIPT = r"""
import numpy as np
from stemforge.mixing import _kernels as mk, _seeding
from stemforge.audio import _loudness_kernels as lk
from stemforge.metrics import _kernels as bk
mk.abs_max(np.zeros(5, np.float32))
lk.pairwise_sum(np.ones(9))
states = _seeding.pcg64_states(1, 2, [3, 4])
assert states is not None
out = np.zeros(4)
bk._dot(np.ones((2, 2)), np.ones((2, 2)), np.zeros((2, 2)))
hits = [f.stats.cache_hits for f in (mk.abs_max, lk.pairwise_sum, bk._dot)]
print(" ".join(str(sum(h.values())) for h in hits))
"""


def _run(pkg_parent: Path, kdir: Path, **extra) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR",)}
    env.update(PYTHONPATH=str(pkg_parent), STEMFORGE_KERNEL_DIR=str(kdir), **extra)
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout.split()


def _compiled(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")]


def test_kernels_cache_in_the_kernel_dir_not_beside_the_source(tmp_path):
    """A copy of the package (no __pycache__) as an installed tree: its kernels compile into
    the kernel folder, one sub-folder per source folder, and a second process loads them from
    there; nothing is written beside the source. With NUMBA_CACHE_DIR set, numba's setting
    wins."""
    site = tmp_path / "site"
    shutil.copytree(PKG, site / "stemforge", ignore=shutil.ignore_patterns("__pycache__"))
    kdir = tmp_path / "kernels"
    assert _run(site, kdir) == ["0", "0", "0"]  # compiled (no cache yet)
    assert _compiled(site) == []  # nothing beside the source
    folders = {p.parent.relative_to(kdir / "numba").parts[0].split("_")[0]
               for p in _compiled(kdir)}
    assert folders == {"mixing", "audio", "metrics"}  # _seeding lives in mixing/
    assert any("_seeding" in p.name for p in _compiled(kdir))
    assert _run(site, kdir) == ["1", "1", "1"]  # loaded from the kernel folder
    assert _compiled(site) == []
    other = tmp_path / "numba-own"
    _run(site, tmp_path / "k2", NUMBA_CACHE_DIR=str(other))
    assert _compiled(other) and not (tmp_path / "k2").exists()


def test_warmup_command_fills_the_kernel_dir(tmp_path):
    """`stemforge warmup` prints a line per step on stderr and leaves the compiled kernels of
    every module in the kernel folder (the suite's own folder: usually warm already, so this
    stays quick; the test above checks a cold folder)."""
    from stemforge._jit import kernel_dir

    kdir = kernel_dir()
    env = {**os.environ, "STEMFORGE_CACHE_DIR": str(tmp_path / "c")}
    env.pop("NUMBA_CACHE_DIR", None)
    p = subprocess.run([sys.executable, "-m", "stemforge.cli", "warmup"], capture_output=True,
                       text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert lines[0] == f"warmup: compiling kernels into {kdir}"
    assert [ln.split(":")[0] for ln in lines[1:5]] == [f"warmup {k}/4" for k in range(1, 5)]
    assert lines[-1].startswith("warmup: done in ") and len(lines) == 6 and p.stdout == ""
    from stemforge import _aot
    from stemforge.metrics.kernels import METRICS

    build = _aot.build_path(METRICS)  # the metrics kernels ahead of time, for this source
    assert lines[4].endswith((f"built {build.name}", f"up to date ({build.name})"))
    assert build.is_file() and [p.name for p in build.parent.iterdir()] == [build.name]
    here = {f"{d}_" for d in ("mixing", "audio", "metrics")}
    sub = {p.parent.name.split("_")[0] + "_" for p in _compiled(kdir / "numba")}
    assert here <= sub
    assert list(kdir.glob("mix_*_1_1_1_1.py")) and list(kdir.glob("mix_*_1_3.py"))


def test_warmup_failure_is_one_line(monkeypatch, capsys):
    """A step whose kernel fails to compile (numba's multi-line TypingError) ends warmup with one
    line on stderr naming it, exit 2, no traceback; any other exception is not hidden."""
    from numba import njit

    from stemforge import cli, warmup

    @njit
    def untypable(x):
        return x.no_such_attribute

    def broken(tmp):
        untypable(1)

    monkeypatch.setattr(warmup, "steps", lambda: [("mixing", broken)])
    assert cli.main(["warmup"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("warmup: compiling kernels into ")
    assert err[1:] == ["stemforge warmup: error: warmup failed: TypingError: Failed in "
                       "nopython mode pipeline (step: nopython frontend)"]

    def bug(tmp):
        raise RuntimeError("a bug in a warmup step")

    monkeypatch.setattr(warmup, "steps", lambda: [("mixing", bug)])
    with pytest.raises(RuntimeError, match="a bug in a warmup step"):
        cli.main(["warmup"])
