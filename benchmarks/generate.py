"""Batch generation throughput: ``stemforge.jobs.generate.generate`` at 1 and 2 workers.

Data: the shared synthetic dataset (``benchmarks/_data.py``: 20 tracks x 30 s, 4 stereo stems,
44.1 kHz, StemCache prepared). Recipe: the seed tutorial's (``stemforge/recipes/musdb_vocals.yaml``:
5 s stereo, coherent p=0.5 else incoherent, snr uniform(-5, 5), ref_db uniform(-30, -10),
fix_clipping), written as WAV float32 (mixture + 2 targets + spec per item, fsync'd).

Rows (each a fresh output folder, N mixtures):

* ``in-process``  ``workers=1``: a plain loop, no Dask (and once with ``fsync=False``: the cost
  of flushing every file to the device);
* ``dask 1 worker`` / ``dask 2 workers``: a ``LocalCluster`` of 1 or 2 single-thread processes,
  started and warmed (2 items per worker: imports, index, memmaps) *before* timing, passed as
  ``scheduler=`` (cluster start-up is reported apart);
* ``workers=2 (incl. start-up)``: ``generate(..., workers=2)`` exactly as the CLI runs it
  (cluster start, cold workers, shutdown all inside the timing; CPU = this process only).

Scaling efficiency = throughput(2 workers) / (2 x throughput(1 worker)), both on Dask. CPU
seconds are this process's ``process_time`` plus each Dask worker's ``process_time`` delta
(collected with ``client.run``), so they stay meaningful on a loaded machine where wall time
does not.

    python benchmarks/generate.py [--n 60] [--out /tmp/stemforge-bench-generate]
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data  # noqa: E402


def _worker_cpu() -> float:
    return time.process_time()


def _run(recipe, index, n, out, **kw) -> dict:
    from stemforge.jobs.generate import generate

    shutil.rmtree(out, ignore_errors=True)
    c0, t0 = time.process_time(), time.perf_counter()
    res = generate(recipe, index, n, out, seed=0, progress=False, **kw)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert res.written == n
    return {"seconds": wall, "cpu_seconds": cpu}


def _run_on_cluster(recipe, index, n, out, workers: int) -> tuple[dict, float]:
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None,
                           scheduler_kwargs={"dashboard": False,
                                             "dashboard_address": "127.0.0.1:0"},
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    startup = time.perf_counter() - t0
    try:
        # warm every worker (imports, index, memmaps: once per process) before timing
        _run(recipe, index, 2 * workers, out.with_name(out.name + "-warm"),
             scheduler=cluster.scheduler_address)
        before = client.run(_worker_cpu)
        row = _run(recipe, index, n, out, scheduler=cluster.scheduler_address)
        after = client.run(_worker_cpu)
        row["cpu_workers"] = sum(after[w] - before[w] for w in after)
        row["cpu_seconds"] += row["cpu_workers"]
    finally:
        client.close()
        cluster.close()
    return row, startup


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60, help="mixtures per row (default 60)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/stemforge-bench-generate"))
    ap.add_argument("--data", type=Path, default=_data.DEFAULT_ROOT)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    a = ap.parse_args(argv)
    _data.single_thread_env()

    from stemforge.mixing.recipe import Recipe

    index = _data.build(a.data)
    _data.warm_page_cache(a.data)
    recipe = Recipe.load(Path(__file__).resolve().parents[1] / "stemforge" / "recipes" /
                         "musdb_vocals.yaml")
    n, secs = a.n, recipe.duration
    rows = []
    _run(recipe, index, 4, a.out / "warm")  # imports, memmaps, page cache of the output path
    rows.append({"name": "in-process (workers=1)", **_run(recipe, index, n, a.out / "w1")})
    rows.append({"name": "in-process, --no-fsync",
                 **_run(recipe, index, n, a.out / "nf", fsync=False)})
    one, start1 = _run_on_cluster(recipe, index, n, a.out / "d1", 1)
    rows.append({"name": "dask 1 worker", **one})
    two, start2 = _run_on_cluster(recipe, index, n, a.out / "d2", 2)
    rows.append({"name": "dask 2 workers", **two})
    rows.append({"name": "workers=2 (incl. start-up)",
                 **_run(recipe, index, n, a.out / "w2", workers=2)})
    for r in rows:
        r["items"] = n
        r["audio_seconds"] = n * secs
    # identical bytes whatever the workers (the guarantee the tests check; cheap to re-check)
    ref = {p.relative_to(a.out / "w1"): p.read_bytes() for p in (a.out / "w1").rglob("*")
           if p.is_file()}
    for d in ("nf", "d1", "d2", "w2"):
        got = {p.relative_to(a.out / d): p.read_bytes() for p in (a.out / d).rglob("*")
               if p.is_file()}
        assert got == ref, f"{d}: output differs from the in-process run"
    shutil.rmtree(a.out, ignore_errors=True)

    eff = (n / two["seconds"]) / (2 * n / one["seconds"])
    eff_cpu = (one["cpu_seconds"] / n) / (two["cpu_seconds"] / n)
    print(f"\n{n} mixtures of {secs:g} s (stereo 44.1 kHz, WAV float32 + 2 targets + spec), "
          f"seed 0. Machine: {_data.machine()}\n")
    print("| | items | seconds | mixtures/s | audio-s per s | CPU per item | of which workers |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        w = f"{1000 * r['cpu_workers'] / n:.0f} ms" if "cpu_workers" in r else "-"
        print(f"| {r['name']} | {n} | {r['seconds']:.2f} | {n / r['seconds']:.2f} | "
              f"{r['audio_seconds'] / r['seconds']:.1f} | "
              f"{1000 * r['cpu_seconds'] / n:.0f} ms | {w} |")
    print(f"\nLocalCluster start-up: {start1:.1f} s (1 worker), {start2:.1f} s (2 workers)")
    print(f"Scaling efficiency 1 -> 2 Dask workers (wall): {eff:.0%}; CPU per item 1 worker / "
          f"2 workers: {eff_cpu:.2f}")
    print("Outputs of all rows byte-identical: yes")
    if a.json:
        print(json.dumps({"rows": rows, "startup": [start1, start2], "efficiency": eff}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
