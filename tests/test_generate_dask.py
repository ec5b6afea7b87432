"""Generation on Dask distributed: a LocalCluster of 2 processes, and a real scheduler plus two
workers started as separate processes on 127.0.0.1 (``python -m distributed.cli.dask_scheduler``
/ ``dask_worker``). Output bytes must equal the in-process run's; a worker SIGKILLed mid-job
must not change them.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import distributed  # noqa: F401  (a test dependency: fail, never skip)

from stemforge.index import Index  # noqa: E402
from stemforge.jobs.generate import generate  # noqa: E402
from stemforge.mixing.recipe import Recipe  # noqa: E402
from test_generate import cli, gen_args, make_dataset, tree  # noqa: E402

N = 8


class Cluster:
    """A scheduler and workers as separate OS processes; every process is ours to stop."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.address = ""

    def _spawn(self, *args) -> subprocess.Popen:
        log = open(self.folder / f"proc{len(self.procs)}.log", "wb")
        p = subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=log,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs.append(p)
        return p

    def start(self, workers: int = 2) -> "Cluster":
        info = self.folder / "scheduler.json"
        self._spawn("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                    "--no-dashboard", "--scheduler-file", str(info))
        deadline = time.monotonic() + 90
        while not info.exists() or not info.read_text().strip():
            assert time.monotonic() < deadline, self.logs()
            time.sleep(0.1)
        self.address = json.loads(info.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")
        for _ in range(workers):
            self.workers.append(self._spawn(
                "distributed.cli.dask_worker", self.address, "--nthreads", "1", "--nworkers", "1",
                "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"))
        from distributed import Client

        with Client(self.address, timeout="60s") as c:
            c.wait_for_workers(workers, timeout=120)
        return self

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:]
                         for p in sorted(self.folder.glob("proc*.log")))

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=20)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("dgen"))
    index = Index.build(root / "hq", cache_dir=root / "cache")
    recipe = Recipe.load(root / "recipe.yaml")
    generate(recipe, index, N, root / "ref", seed=7, progress=False)
    return root, index, recipe


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield c.start(2)
    finally:
        c.stop()


def test_local_cluster_of_two_processes_same_bytes(setup, tmp_path):
    root, index, recipe = setup
    res = generate(recipe, index, N, tmp_path / "o", seed=7, workers=2, progress=False)
    assert res.written == N
    assert tree(tmp_path / "o") == tree(root / "ref")


def test_external_scheduler_same_bytes_and_verify(setup, cluster, tmp_path, capsys):
    root, index, recipe = setup
    out = tmp_path / "o"
    assert cli(*gen_args(root, out, N, 7, "--scheduler", cluster.address)) == 0
    assert tree(out) == tree(root / "ref")
    assert cli("regenerate", out, "--verify", "--no-progress", "--scheduler",
               cluster.address) == 0
    (out / "000005" / "mixture.wav").unlink()
    assert cli("regenerate", out, "--verify", "--no-progress", "--scheduler",
               cluster.address) == 1
    assert "MISMATCH 000005/mixture.wav: missing" in capsys.readouterr().out


def test_unreachable_scheduler_is_a_clear_error(setup, tmp_path, capsys):
    root, *_ = setup
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    assert cli(*gen_args(root, tmp_path / "o", N, 7, "--scheduler",
                         f"tcp://127.0.0.1:{port}")) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in err
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "o").exists()  # checked before anything is created
    assert cli(*gen_args(root, tmp_path / "o", N, 7, "--scheduler", "127.0.0.1")) == 2
    assert "expected tcp://HOST:PORT" in capsys.readouterr().err


def test_worker_sigkilled_mid_job_output_identical(setup, cluster, tmp_path):
    """Runs last in this module: it kills one of the shared cluster's two workers."""
    root, index, recipe = setup
    n = 40
    generate(recipe, index, n, tmp_path / "ref", seed=3, progress=False)
    out = tmp_path / "o"
    result: dict = {}

    def run():
        try:
            result["res"] = generate(recipe, index, n, out, seed=3, scheduler=cluster.address,
                                     progress=False)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            result["error"] = e

    th = threading.Thread(target=run)
    th.start()
    victim = cluster.workers[0]
    deadline = time.monotonic() + 120
    while len(list(out.glob("*/spec.json"))) < 3 and th.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    done_at_kill = len(list(out.glob("*/spec.json")))
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    th.join(timeout=300)
    assert not th.is_alive()
    assert "error" not in result, result.get("error")
    assert done_at_kill < n, "the job finished before the worker was killed"
    assert victim.returncode == -signal.SIGKILL
    assert tree(out) == tree(tmp_path / "ref")
