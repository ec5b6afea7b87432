"""Loader throughput and worker memory: MixtureDataset + DataLoader vs Scaper 1.6.5 vs floors.

Run from the repository root::

    bash benchmarks/peers/setup_scaper.sh          # once: Scaper 1.6.5 + numpy<2 in its own venv
    python benchmarks/loader.py [--n 320] [--n-peer 16] [--no-peer] [--no-memory]
    python benchmarks/loader.py --no-memory --malloc-tune   # same, glibc malloc tunables set

Part 1 — throughput. Workload (same for every row; the one of ``benchmarks/mixing.py``):
coherent 4-stem (vocals, drums, bass, other) 5 s stereo 44.1 kHz mixtures, loudness gains (snr
uniform(-5, 5) relative to ref_db uniform(-30, -10), Scaper semantics), fix_clipping, from the
synthetic prepared dataset of ``benchmarks/_data.py`` (20 tracks x 30 s, StemCache memmaps).

* three APIs, each for W = 0, 1, 2 workers (``persistent_workers`` when W > 0):
  ``MixtureDataset`` through ``DataLoader(batch_size=8)`` with torch's default collate;
  the same with ``collate_fn=stemforge.torch.collate`` (pooled batch buffers, items rendered
  into them by ``MixtureDataset.__getitems__``); ``MixtureStream(batch_size=8)`` through
  ``DataLoader(batch_size=None)``. Same items, same batches (tests/test_torch_collate.py).
  Epoch 0 warms up (worker start-up), epoch 1 (``set_epoch(1)``) is timed.
  CPU time = main process + its DataLoader workers (psutil) over the timed epoch; "per core"
  is audio seconds per CPU second, which stays meaningful on a shared, loaded machine where
  wall time with 2 workers on 2 busy cores is not.
* ``Mixer.mixture`` loop in-process (no DataLoader, no tensors): the engine alone.
* floor: memmap slices at the drawn (track, start) read and summed (``mixing.time_floor``).
* floor through DataLoader: the same slices stacked as targets and summed as the mix, served
  by a trivial Dataset through the same DataLoader (batch 8) at 0 and 2 workers: what the
  DataLoader's collate and worker IPC cost for tensors of these shapes.
* Scaper 1.6.5 (one core, the seed tutorial's on-the-fly generation) via
  ``benchmarks/peers/scaper_run.py`` in the peer venv.

Part 3 — cache size and worker memory on a larger cache (``--cache-only`` runs just this part;
``--no-cache-size`` skips it): the dataset of ``benchmarks/_data.py`` at ``--big-tracks`` x
``--big-seconds`` (default 32 x 60 s: 1.35 GB of 16-bit PCM, three times the throughput data)
under ``--big-root``, prepared (StemCache format 2: int16 entries), plus a float32 copy of the
same cache (format 1, what earlier versions wrote; same index, analysis and envelopes). Per
cache: the bytes of the stem entries and of everything else (peak envelopes) against the
sources' PCM bytes; then a fresh process runs ``DataLoader(num_workers=2,
persistent_workers=True, collate_fn=stemforge.torch.collate)`` over ``--big-items`` coherent
4-stem 5 s items of the throughput recipe and reports each worker's Rss, Pss (anonymous and
file-backed) and USS (Private_Clean + Private_Dirty) from ``/proc/<pid>/smaps_rollup``, with
the page cache dropped of the other cache's files first where the kernel allows it.

Part 4 — the recommended recipe (issue 23's goal: >= 320 s of 44.1 kHz stereo audio per CPU
second through the torch loader; ``--recommended-only`` runs just this part,
``--no-recommended`` skips it): the packaged ``stemforge_recommended`` recipe with every
augmentation it has (coherent/incoherent remix, per-stem channel swap and polarity) at
``--rec-seconds`` (default 8 s, a RoFormer/HT Demucs training excerpt) per item, on both data
sets of ``benchmarks/_data.py`` (synthetic and the sustained, music-like one), through
``DataLoader(MixtureDataset, batch_size=16, collate_fn=stemforge.torch.collate)`` at 0 and 2
workers and ``MixtureStream(batch_size=16)`` at 0 workers, beside the floor: the same drawn
slices read, scaled by their gains into target rows and summed (``mixing.time_floor_outputs``),
one core, no loader.

Part 2 — worker memory as the dataset grows: tiny prepared datasets of 10, 100 and 1,000
tracks (2 stereo stems x 1 s at 8 kHz, trackfolder layout, built once under ``--mem-root``);
per size, a fresh process runs ``DataLoader(num_workers=2, persistent_workers=True)`` over
2,000 incoherent mixtures (so most tracks' memmaps are opened) and reports the workers'
RSS, PSS and USS (psutil ``memory_full_info``) and the pickled dataset size.
"""
from __future__ import annotations

import os
import sys

# --malloc-tune: re-run this script under glibc malloc tunables that keep large freed blocks
# in the heap (no mmap/munmap per batch, no trimming): on this VM the page faults of freshly
# mapped batch buffers were the main cost of DataLoader's collate. Must act before imports.
MALLOC_TUNE = {"MALLOC_MMAP_THRESHOLD_": str(2 ** 32), "MALLOC_TRIM_THRESHOLD_": str(2 ** 32),
               "MALLOC_TOP_PAD_": str(2 ** 28)}
if "--malloc-tune" in sys.argv and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_TUNE})

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _data  # noqa: E402
import mixing  # noqa: E402

DURATION = mixing.DURATION
RECIPE = mixing.RECIPE
RECIPE_FRAMES = mixing.RECIPE_FRAMES
BATCH = 8
MEM_SR = 8000
MEM_RECIPE = {"name": "bench-memory", "targets": ["vocals", "drums"], "sample_rate": MEM_SR,
              "duration": 0.5, "modes": {"incoherent": 1.0}, "ref_db": ["uniform", -30, -10],
              "stems": {"default": {"snr": ["uniform", -5, 5]}}}
MEM_ITEMS = 2000


# ---------------------------------------------------------------------- throughput
def _cpu_self() -> float:
    t = os.times()
    return t.user + t.system


def _workers_cpu(loader, workers: int) -> float:
    """User + system CPU seconds so far of ``loader``'s worker processes (0 without workers or
    before its first iterator)."""
    import psutil

    it = getattr(loader, "_iterator", None)
    if workers == 0 or it is None:
        return 0.0
    return sum(sum(psutil.Process(w.pid).cpu_times()[:2]) for w in it._workers)


def time_loader(index, n: int, workers: int, api: str = "default") -> tuple[float, float, float]:
    """(wall seconds of the timed epoch, CPU seconds of main process + workers during it,
    wall seconds of the warm-up epoch incl. worker start).

    ``api``: "default" = ``DataLoader(MixtureDataset, batch_size=8)`` (torch's default_collate);
    "collate" = the same with ``collate_fn=stemforge.torch.collate``; "stream" =
    ``DataLoader(MixtureStream(batch_size=8), batch_size=None)``."""
    import torch
    from torch.utils.data import DataLoader

    from stemforge.torch import MixtureDataset, MixtureStream, collate

    torch.set_num_threads(1)
    if api == "stream":
        ds = MixtureStream(RECIPE, index, batch_size=BATCH, seed=0, batches=n // BATCH)
        loader = DataLoader(ds, batch_size=None, num_workers=workers,
                            persistent_workers=workers > 0)
    else:
        ds = MixtureDataset(RECIPE, index, length=n, seed=0)
        kw = {"collate_fn": collate} if api == "collate" else {}
        loader = DataLoader(ds, batch_size=BATCH, num_workers=workers,
                            persistent_workers=workers > 0, **kw)

    walls, cpus = [], []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        t0, c0, w0 = time.perf_counter(), _cpu_self(), _workers_cpu(loader, workers)
        for mix, targets in loader:
            assert targets.shape[1:] == (4, 2, RECIPE_FRAMES)
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu_self() - c0 + _workers_cpu(loader, workers) - w0)
    del loader
    return walls[1], cpus[1], walls[0]


class FloorDataset:
    """The DataLoader floor: item i = the 4 stem slices at stemforge's drawn (track, start),
    stacked as targets ``(4, C, T)`` and summed as the mix; no gains, loudness or clipping.
    Same shapes and batch sizes as ``MixtureDataset``, so the loader + collate + worker IPC
    cost is the same."""

    def __init__(self, index, plan):
        self.keys = {(t.id, s): t.stems[s].key for t in index.tracks for s in mixing.TARGETS}
        self.folder, self.plan, self.frames = index.cache.folder, plan, mixing.RECIPE_FRAMES
        self.cache = None

    def __len__(self):
        return len(self.plan)

    def __getitem__(self, i):
        import torch

        from stemforge.audio.cache import StemCache

        if self.cache is None:
            self.cache = StemCache(self.folder)
        tid, start = self.plan[i]
        t = np.stack([self.cache.read(self.keys[(tid, s)], start, self.frames)
                      for s in mixing.TARGETS])
        return torch.from_numpy(t.sum(0)), torch.from_numpy(t)


def time_floor_loader(index, plan, workers: int) -> tuple[float, float]:
    """(wall, CPU main + workers) of one epoch of ``FloorDataset`` after a warm-up epoch."""
    from torch.utils.data import DataLoader

    loader = DataLoader(FloorDataset(index, plan), batch_size=BATCH, num_workers=workers,
                        persistent_workers=workers > 0)

    for _ in loader:
        pass
    t0, c0, w0 = time.perf_counter(), _cpu_self(), _workers_cpu(loader, workers)
    for _ in loader:
        pass
    return time.perf_counter() - t0, _cpu_self() - c0 + _workers_cpu(loader, workers) - w0


def time_mixer(index, n: int) -> tuple[float, float]:
    from stemforge.mixing.mixer import Mixer

    mixer = Mixer(RECIPE, index, seed=0)
    t0, c0 = time.perf_counter(), _cpu_self()
    for i in range(n):  # one item at a time, each dropped: no batch of outputs held
        mixer.mixture(i, epoch=1)
    return time.perf_counter() - t0, _cpu_self() - c0


# ---------------------------------------------------------------------- the recommended recipe
REC_BATCH = 16


def time_recommended(recipe, index, n: int, workers: int, api: str) -> tuple[float, float]:
    """(wall, CPU main + workers) of epoch 1 of the recommended recipe after a warm-up epoch 0;
    ``api`` "collate" (MixtureDataset + stemforge.torch.collate) or "stream"."""
    import torch
    from torch.utils.data import DataLoader

    from stemforge.torch import MixtureDataset, MixtureStream, collate

    torch.set_num_threads(1)
    if api == "stream":
        ds = MixtureStream(recipe, index, batch_size=REC_BATCH, seed=0, batches=n // REC_BATCH)
        loader = DataLoader(ds, batch_size=None, num_workers=workers,
                            persistent_workers=workers > 0)
    else:
        ds = MixtureDataset(recipe, index, length=n, seed=0)
        loader = DataLoader(ds, batch_size=REC_BATCH, num_workers=workers,
                            persistent_workers=workers > 0, collate_fn=collate)

    out = (0.0, 0.0)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        t0, c0, w0 = time.perf_counter(), _cpu_self(), _workers_cpu(loader, workers)
        got = 0
        for mix, targets in loader:
            got += mix.shape[0]
        assert got == n, (got, n)
        out = (time.perf_counter() - t0, _cpu_self() - c0 + _workers_cpu(loader, workers) - w0)
    del loader
    return out


def recommended_rows(roots: dict, n: int, seconds: float) -> list[dict]:
    """Rows of part 4 for each data set in ``roots`` (style -> root)."""
    from stemforge.mixing.mixer import Mixer, as_recipe

    recipe = as_recipe("stemforge_recommended", [f"duration={seconds:g}"])
    rows = []
    for style, root in roots.items():
        index = _data.build(root, 20, 30.0, style=style)
        _data.warm_page_cache(root)
        for api, w in (("collate", 0), ("collate", 2), ("stream", 0)):
            sec, cpu = time_recommended(recipe, index, n, w, api)
            label = ("MixtureDataset + collate" if api == "collate" else "MixtureStream") + \
                f", num_workers={w}"
            rows.append({"data": style, "name": label, "items": n, "seconds": sec,
                         "cpu_seconds": cpu})
            print(f"recommended {style} {label} done", file=sys.stderr)
        mixer = Mixer(recipe, index, seed=0)
        maps = {(t.id, s): np.load(index.cache.path(t.stems[s].key), mmap_mode="r")
                for t in index.tracks for s in t.stems}
        plan = mixing.outputs_plan(mixer, n)
        sec, cpu = mixing.time_floor_outputs(maps, plan, recipe.frames)
        rows.append({"data": style, "name": "floor: read x gain into targets + sum (one core)",
                     "items": n, "seconds": sec, "cpu_seconds": cpu})
    return rows


def print_recommended(rows: list[dict], seconds: float) -> None:
    print(f"\n**The recommended recipe through the loader** (stemforge_recommended: coherent/"
          f"incoherent 0.5/0.5, per-stem channel_swap and polarity p 0.5; {seconds:g} s "
          f"stereo 44.1 kHz items, 4 targets; batch {REC_BATCH}; one run; goal >= 320 audio-s "
          f"per CPU-s = {320 / seconds:.0f} items/s per core)")
    print(f"machine: {_data.machine()}\n")
    print("| data | | items | wall s | CPU s (main + workers) | items/s per core | "
          "audio-s per CPU-s | vs floor |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    floors = {r["data"]: r for r in rows if r["name"].startswith("floor")}
    for r in rows:
        per = r["items"] * seconds / r["cpu_seconds"]
        fl = floors[r["data"]]
        vs = per / (fl["items"] * seconds / fl["cpu_seconds"])
        print(f"| {r['data']} | {r['name']} | {r['items']} | {r['seconds']:.2f} | "
              f"{r['cpu_seconds']:.2f} | {r['items'] / r['cpu_seconds']:.0f} | {per:,.0f} | "
              f"{vs:.2f}x |")


# ---------------------------------------------------------------------- memory
def build_tiny(root: Path, tracks: int):
    """``tracks`` tracks of 2 stereo stems x 1 s at 8 kHz, indexed and prepared (reused)."""
    import soundfile as sf

    from stemforge.index import Index
    from stemforge.prepare import prepare

    stamp = root / "done.json"
    if not stamp.is_file():
        for i in range(tracks):
            d = root / "train" / f"t{i:04d}"
            d.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(np.random.SeedSequence([7, i]))
            for s in ("vocals", "drums"):
                x = 0.1 * rng.standard_normal((MEM_SR, 2))
                sf.write(d / f"{s}.wav", x.astype(np.float32), MEM_SR, subtype="PCM_16")
    index = Index.build(root, layout="trackfolder", cache_dir=root / "cache")
    prepare(index)
    stamp.write_text(json.dumps({"tracks": tracks}))
    return index


def memory_child(root: Path, tracks: int) -> dict:
    """Runs in a fresh process: worker memory after an epoch over a ``tracks``-track dataset."""
    import psutil
    from torch.utils.data import DataLoader

    from stemforge.torch import MixtureDataset

    index = build_tiny(root, tracks)
    ds = MixtureDataset(MEM_RECIPE, index, length=MEM_ITEMS, seed=0)
    pickled = len(pickle.dumps(ds))
    loader = DataLoader(ds, batch_size=16, num_workers=2, persistent_workers=True)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    seconds = time.perf_counter() - t0
    it = loader._iterator  # persistent workers stay alive: measure them now
    procs = [psutil.Process(w.pid) for w in it._workers]
    mem = [p.memory_full_info() for p in procs]
    main = psutil.Process().memory_full_info()
    mb = 1 / 2 ** 20

    def status(pid: int) -> dict:
        """RssAnon / RssFile / RssShmem in MB from /proc/<pid>/status (Linux)."""
        out = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0]) / 1024
        return out

    st = [status(p.pid) for p in procs]
    return {"worker_anon_mb": float(np.mean([x["RssAnon"] for x in st])),
            "worker_file_mb": float(np.mean([x["RssFile"] for x in st])),
            "worker_shmem_mb": float(np.mean([x["RssShmem"] for x in st])),
            "tracks": tracks, "items": MEM_ITEMS, "seconds": seconds, "pickled_bytes": pickled,
            "worker_rss_mb": float(np.mean([m.rss for m in mem]) * mb),
            "worker_pss_mb": float(np.mean([m.pss for m in mem]) * mb),
            "worker_uss_mb": float(np.mean([m.uss for m in mem]) * mb),
            "main_rss_mb": main.rss * mb,
            "cache_mb": sum(p.stat().st_size
                            for p in (root / "cache" / "audio").glob("*.npy")) * mb}


def memory_rows(mem_root: Path, sizes) -> list[dict]:
    rows = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--memory-child", str(n), "--mem-root", str(mem_root)]
        env = {**os.environ, "STEMFORGE_CACHE_DIR": str(mem_root / "sfcache")}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"memory run for {n} tracks failed:\n{r.stderr[-3000:]}")
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(f"memory: {n} tracks done", file=sys.stderr)
    return rows


def print_memory(mem: list[dict]) -> None:
    print(f"\nWorker memory: DataLoader(num_workers=2, persistent_workers=True), "
          f"{MEM_ITEMS} incoherent 0.5 s mixtures (batch 16); mean per worker after the epoch")
    print("(RssAnon = heap/anonymous memory; RssFile = file-backed pages mapped, mostly the "
          "StemCache memmaps: shared page cache, reclaimable, bounded by the cache size)")
    print("\n| tracks | StemCache MB | pickled dataset KB | worker RssAnon MB | "
          "worker RssFile MB | worker RssShmem MB | worker RSS MB | worker PSS MB | "
          "worker USS MB | main RSS MB | epoch s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in mem:
        print(f"| {m['tracks']} | {m['cache_mb']:.1f} | {m['pickled_bytes'] / 1024:.1f} | "
              f"{m['worker_anon_mb']:.1f} | {m['worker_file_mb']:.1f} | "
              f"{m['worker_shmem_mb']:.1f} | {m['worker_rss_mb']:.1f} | "
              f"{m['worker_pss_mb']:.1f} | {m['worker_uss_mb']:.1f} | "
              f"{m['main_rss_mb']:.1f} | {m['seconds']:.2f} |")


# ---------------------------------------------------------------------- cache size
def _entries(folder: Path) -> tuple[int, int]:
    """(bytes of stem entries ``<key>.npy``, bytes of every other file) in a StemCache folder."""
    stems = other = 0
    for p in folder.iterdir():
        if p.is_file():
            if p.suffix == ".npy" and p.name.count(".") == 1:
                stems += p.stat().st_size
            else:
                other += p.stat().st_size
    return stems, other


def build_big(root: Path, tracks: int, seconds: float) -> dict:
    """The larger dataset, its format-2 cache (``cache/``) and a float32 copy of it
    (``cache-f32/``: every entry as float32, the rest copied). Returns sizes in bytes."""
    import shutil

    import soundfile as sf

    from stemforge.audio.cache import FORMAT_FILE, as_float32

    index = _data.build(root, tracks, seconds, verbose=False)
    src_pcm = src_files = 0
    for t in index.tracks:
        for s in t.stems.values():
            info = sf.info(s.path)
            assert info.subtype == "PCM_16"
            src_pcm += info.frames * info.channels * 2
            src_files += os.path.getsize(s.path)
    f32 = root / "cache-f32"
    stamp = f32 / "done.json"
    if not stamp.is_file():
        shutil.rmtree(f32, ignore_errors=True)
        shutil.copytree(root / "cache", f32)
        (f32 / "audio" / FORMAT_FILE).unlink()
        for p in (f32 / "audio").glob("*.npy"):
            if p.name.count(".") == 1:
                np.save(p, as_float32(np.load(p)))
        stamp.write_text("{}")
    i16, o16 = _entries(root / "cache" / "audio")
    e32, o32 = _entries(f32 / "audio")
    return {"tracks": tracks, "seconds": seconds, "src_pcm": src_pcm, "src_files": src_files,
            "int16": (i16, o16), "float32": (e32, o32)}


def _smaps(pid: int) -> dict:
    """``/proc/<pid>/smaps_rollup`` fields in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        k, _, v = line.partition(":")
        if v.strip().endswith("kB"):
            out[k.strip()] = int(v.split()[0]) / 1024
    return out


def _drop_cached(folder: Path) -> None:
    """Ask the kernel to drop ``folder``'s files from the page cache (posix_fadvise DONTNEED;
    pages mapped by a live process stay)."""
    for p in folder.rglob("*.npy"):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cache_child(root: Path, which: str, items: int) -> dict:
    """Runs in a fresh process: worker memory after ``items`` items from cache ``which``."""
    from torch.utils.data import DataLoader

    from stemforge.index import Index
    from stemforge.torch import MixtureDataset, collate

    other = root / ("cache-f32" if which == "int16" else "cache")
    _drop_cached(other)
    index = Index.open(root, cache_dir=root / ("cache" if which == "int16" else "cache-f32"))
    recipe = {**RECIPE, "modes": {"coherent": 1.0}}
    ds = MixtureDataset(recipe, index, length=items, seed=0)
    loader = DataLoader(ds, batch_size=BATCH, num_workers=2, persistent_workers=True,
                        collate_fn=collate)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    seconds = time.perf_counter() - t0
    sm = [_smaps(w.pid) for w in loader._iterator._workers]
    mean = {k: float(np.mean([m.get(k, 0.0) for m in sm])) for k in sm[0]}
    mean["USS"] = mean.get("Private_Clean", 0.0) + mean.get("Private_Dirty", 0.0)
    return {"which": which, "items": items, "seconds": seconds, "smaps": mean}


def cache_rows(root: Path, tracks: int, seconds: float, items: int) -> tuple[dict, list[dict]]:
    sizes = build_big(root, tracks, seconds)
    rows = []
    for which in ("float32", "int16"):
        cmd = [sys.executable, __file__, "--cache-child", which, "--big-root", str(root),
               "--big-items", str(items)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise SystemExit(f"cache memory run ({which}) failed:\n{r.stderr[-3000:]}")
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(f"cache memory: {which} done", file=sys.stderr)
    return sizes, rows


def print_cache(sizes: dict, rows: list[dict]) -> None:
    gb = 1 / 1e9
    src = sizes["src_pcm"]
    print(f"\nStemCache size: {sizes['tracks']} tracks x {sizes['seconds']:g} s x 4 stereo "
          f"stems, 16-bit PCM WAV sources: {src * gb:.3f} GB of PCM "
          f"({sizes['src_files'] * gb:.3f} GB of files)")
    print("\n| cache | stem entries GB | x source PCM | + envelopes etc. GB | total x source PCM |")
    print("|---|---:|---:|---:|---:|")
    for label, key in (("float32 (format 1, before)", "float32"),
                       ("int16 where lossless (format 2)", "int16")):
        e, o = sizes[key]
        print(f"| {label} | {e * gb:.3f} | {e / src:.3f}x | {o * gb:.3f} | "
              f"{(e + o) / src:.3f}x |")
    print(f"\nWorker memory on that cache: DataLoader(num_workers=2, persistent_workers=True, "
          f"collate_fn=stemforge.torch.collate), {rows[0]['items']} coherent 4-stem 5 s items "
          f"(batch {BATCH}); mean per worker, /proc/<pid>/smaps_rollup, MB")
    print("\n| cache | Rss | Pss | Pss_Anon | Pss_File | Pss_Shmem | USS (private) | "
          "Shared_Clean | epoch s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        m = r["smaps"]
        print(f"| {r['which']} | {m.get('Rss', 0):.0f} | {m.get('Pss', 0):.0f} | "
              f"{m.get('Pss_Anon', 0):.0f} | {m.get('Pss_File', 0):.0f} | "
              f"{m.get('Pss_Shmem', 0):.0f} | {m['USS']:.0f} | {m.get('Shared_Clean', 0):.0f} | "
              f"{r['seconds']:.1f} |")


# ---------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="loader throughput and worker memory")
    ap.add_argument("--n", type=int, default=320, help="items per timed epoch (stemforge)")
    ap.add_argument("--n-peer", type=int, default=16, help="items for Scaper")
    ap.add_argument("--root", type=Path, default=_data.DEFAULT_ROOT)
    ap.add_argument("--tracks", type=int, default=20, help="throughput dataset: tracks")
    ap.add_argument("--seconds", type=float, default=30.0, help="throughput dataset: seconds")
    ap.add_argument("--mem-root", type=Path, default=Path("/tmp/stemforge-bench-loader-mem"))
    ap.add_argument("--venv", type=Path, default=None, help="Scaper peer venv")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--memory-only", action="store_true", help="skip the throughput part")
    ap.add_argument("--malloc-tune", action="store_true",
                    help="run under glibc MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_/"
                         "MALLOC_TOP_PAD_ (inherited by workers and Scaper)")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--big-root", type=Path, default=Path("/tmp/stemforge-bench-loader-big"))
    ap.add_argument("--big-tracks", type=int, default=32)
    ap.add_argument("--big-seconds", type=float, default=60.0)
    ap.add_argument("--big-items", type=int, default=640)
    ap.add_argument("--no-cache-size", action="store_true", help="skip part 3")
    ap.add_argument("--cache-only", action="store_true", help="run part 3 only")
    ap.add_argument("--cache-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--apis", default="default,collate,stream",
                    help="throughput rows: comma-separated of default, collate, stream")
    ap.add_argument("--workers", default="0,1,2", help="throughput rows: num_workers values")
    ap.add_argument("--no-recommended", action="store_true", help="skip part 4")
    ap.add_argument("--recommended-only", action="store_true", help="run part 4 only")
    ap.add_argument("--rec-seconds", type=float, default=8.0, help="part 4: item length")
    ap.add_argument("--rec-items", type=int, default=320, help="part 4: items per epoch")
    ap.add_argument("--sustained-root", type=Path, default=_data.default_root("sustained"))
    a = ap.parse_args(argv)
    rec_roots = {"synthetic": a.root, "sustained": a.sustained_root}
    if a.recommended_only:
        print_recommended(recommended_rows(rec_roots, a.rec_items, a.rec_seconds),
                          a.rec_seconds)
        return 0
    if a.memory_child is not None:
        print(json.dumps(memory_child(a.mem_root / f"n{a.memory_child}", a.memory_child)))
        return 0
    if a.cache_child is not None:
        print(json.dumps(cache_child(a.big_root, a.cache_child, a.big_items)))
        return 0
    if a.cache_only:
        print(f"machine: {_data.machine()}")
        print_cache(*cache_rows(a.big_root, a.big_tracks, a.big_seconds, a.big_items))
        return 0

    if a.memory_only:
        print_memory(memory_rows(a.mem_root, (10, 100, 1000)))
        return 0
    index = _data.build(a.root, a.tracks, a.seconds)
    _data.warm_page_cache(a.root)
    rows, notes = [], []
    apis = {"default": "MixtureDataset, DataLoader(batch_size=8) default collate",
            "collate": "MixtureDataset, DataLoader(batch_size=8, collate_fn=stemforge.torch."
                       "collate)",
            "stream": "MixtureStream(batch_size=8), DataLoader(batch_size=None)"}
    apis = {k: v for k, v in apis.items() if k in a.apis.split(",")}
    for api, label in apis.items():
        for w in (int(x) for x in a.workers.split(",")):
            sec, cpu, warm = time_loader(index, a.n, w, api)
            rows.append({"name": f"{label}, num_workers={w}", "items": a.n, "seconds": sec,
                         "cpu_seconds": cpu, "audio_seconds": a.n * DURATION})
            notes.append(f"{api}, num_workers={w}: warm-up epoch (incl. worker start) "
                         f"{warm:.2f} s")
            print(f"loader {api} num_workers={w} done", file=sys.stderr)
    sec, cpu = time_mixer(index, a.n)
    rows.append({"name": "Mixer.mixture loop (no DataLoader, no tensors)", "items": a.n,
                 "seconds": sec, "cpu_seconds": cpu, "audio_seconds": a.n * DURATION})
    from stemforge.mixing.mixer import Mixer

    maps, plan, frames = mixing.floor_plan(Mixer(RECIPE, index, seed=0), index, a.n)
    sec, cpu = mixing.time_floor(maps, plan, frames)
    rows.append({"name": "floor (memmap read + sum)", "items": a.n, "seconds": sec,
                 "cpu_seconds": cpu, "audio_seconds": a.n * DURATION})
    for w in (0, 2):
        sec, cpu = time_floor_loader(index, plan, w)
        rows.append({"name": f"floor through DataLoader num_workers={w} (read + stack + sum)",
                     "items": a.n, "seconds": sec, "cpu_seconds": cpu,
                     "audio_seconds": a.n * DURATION})
    peer = None
    if not a.no_peer:
        peer = _data.run_scaper(a.root, a.n_peer, a.venv, source_max=30.0 - DURATION)
        rows.append({"name": "Scaper 1.6.5 (on the fly, one core)", "items": a.n_peer,
                     "seconds": peer["seconds"], "cpu_seconds": peer["cpu_seconds"],
                     "audio_seconds": a.n_peer * DURATION})

    print(f"\nLoader: coherent 4-stem {DURATION:g} s stereo 44.1 kHz mixtures, snr + ref_db "
          f"loudness, fix_clipping; batch {BATCH}; one run")
    print(f"machine: {_data.machine()}")
    tuned = {k: os.environ[k] for k in MALLOC_TUNE if k in os.environ}
    print(f"glibc malloc tunables: {tuned or 'none (defaults)'}")
    if peer:
        print(f"peer: {peer['tool']} (numpy {peer['numpy']})")
    print()
    scaper = next((r for r in rows if r["name"].startswith("Scaper")), None)
    per_cpu = lambda r: r["audio_seconds"] / r["cpu_seconds"]  # noqa: E731
    print("| | items | wall s | CPU s (main + workers) | batches/s (wall) | audio-s per wall-s "
          "| audio-s per CPU-s (per core) | per core vs Scaper |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        vs = f"{per_cpu(r) / per_cpu(scaper):.0f}x" if scaper else "-"
        bps = (f"{r['items'] / BATCH / r['seconds']:.1f}" if r["name"].startswith("Mixture")
               or "through DataLoader" in r["name"] else "")
        print(f"| {r['name']} | {r['items']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
              f"{bps} | {r['audio_seconds'] / r['seconds']:,.0f} | {per_cpu(r):,.0f} | {vs} |")
    for n in notes:
        print(f"- {n}")

    if not a.no_recommended:
        print_recommended(recommended_rows(rec_roots, a.rec_items, a.rec_seconds),
                          a.rec_seconds)
    if not a.no_cache_size:
        print_cache(*cache_rows(a.big_root, a.big_tracks, a.big_seconds, a.big_items))
    if not a.no_memory:
        print_memory(memory_rows(a.mem_root, (10, 100, 1000)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
