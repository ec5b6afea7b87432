"""Crash test: ``stemforge generate`` as a subprocess, SIGKILLed at seeded random points and rerun.

While it runs and after every kill, every file under a final name must equal the reference
bytes of an uninterrupted run (atomic writes: a partial file is never visible under a final
name); after the last rerun the folder is byte-identical to the uninterrupted run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stemforge.index import Index
from stemforge.jobs.generate import generate
from stemforge.mixing.recipe import Recipe
from test_generate import final_files, gen_args, make_dataset, tree

N = 12


def _check_final_files(out: Path, ref: dict[str, bytes], seen: dict) -> int:
    """Compare every final-named file not yet seen (path, inode, mtime) with the reference.
    Returns how many items are complete (have spec.json)."""
    complete = 0
    if not out.is_dir():
        return 0
    for p in out.rglob("*"):
        rel = str(p.relative_to(out))
        if any(part.startswith(".") for part in Path(rel).parts) or not p.is_file():
            continue
        try:
            st = p.stat()
            key = (rel, st.st_ino, st.st_mtime_ns, st.st_size)
            if key not in seen:
                data = p.read_bytes()
                assert data == ref[rel], f"{rel}: a file under its final name is not complete"
                seen[key] = True
        except FileNotFoundError:  # replaced between listing and reading: checked next round
            continue
        complete += rel.endswith("spec.json")
    return complete


@pytest.mark.parametrize("workers,kills", [(1, 4), (2, 2)])
def test_sigkill_at_random_points_then_rerun_is_byte_identical(tmp_path, workers, kills):
    """workers=2: the killed process's LocalCluster workers notice their parent's death and
    exit on their own (possibly finishing an item first: atomically, with the same bytes)."""
    root = make_dataset(tmp_path)
    index = Index.build(root / "hq", cache_dir=root / "cache")
    recipe = Recipe.load(root / "recipe.yaml")
    generate(recipe, index, N, tmp_path / "ref", seed=7, progress=False)
    ref = final_files(tmp_path / "ref")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "stemforge.cli",
           *map(str, gen_args(root, out, N, 7, "--workers", workers))]
    rng = np.random.default_rng(np.random.SeedSequence(20261125))
    seen: dict = {}
    killed = []
    for attempt in range(kills):
        done = _check_final_files(out, ref, seen)
        target = min(N, done + int(rng.integers(0, 4)))
        extra = float(rng.uniform(0.0, 0.06))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                done = _check_final_files(out, ref, seen)
                if (out / "stemforge-job.json").exists() and done >= target:
                    break
                time.sleep(0.003)
            time.sleep(extra)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                killed.append((attempt, done))
        finally:
            proc.wait(timeout=60)
        # after the kill: everything under a final name is complete
        _check_final_files(out, ref, seen)
        assert {k for k in final_files(out)} <= set(ref)
    print("kills (attempt, items complete):", killed)
    assert len(killed) >= kills - 1, f"the runs finished before being killed: {killed}"
    assert any(0 < d < N for _, d in killed), killed  # at least one kill in mid-set
    # the rerun resumes and completes: byte-identical to the uninterrupted run
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"{N} mixtures complete" in res.stdout
    assert tree(out) == tree(tmp_path / "ref")  # hidden temp files cleaned up too
