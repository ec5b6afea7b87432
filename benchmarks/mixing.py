"""Mixing throughput: stemforge vs Scaper 1.6.5 vs a raw memmap read+sum floor, one core.

Run from the repository root::

    bash benchmarks/peers/setup_scaper.sh          # once: Scaper 1.6.5 + numpy<2 in its own venv
    python benchmarks/mixing.py [--quick] [--n 400] [--n-peer 40] [--repeat 3] [--no-peer]

Workload (same for every row): coherent 4-stem (vocals, drums, bass, other) 5 s stereo 44.1 kHz
mixtures, loudness gains (snr uniform(-5, 5) relative to ref_db uniform(-30, -10), Scaper
semantics) and fix_clipping, from the synthetic dataset of ``benchmarks/_data.py`` (20 tracks x
30 s; WAV tree for Scaper, StemCache memmaps for stemforge).

* stemforge: ``Mixer(recipe, index, seed).mixtures(items, out=buffers)`` over 0..n-1, a
  ``--chunk`` of items per call, rendered into one reused pair of output arrays (draw + render;
  the batch path a DataLoader batch or a stream uses with its ``BatchBuffer``). Without ``out``
  every item's outputs are fresh allocations: ~9 MB of new pages per 5 s item (~515 page faults),
  which costs more than the mixing itself (see docs/benchmarks.md).
* Scaper 1.6.5: the seed tutorial's coherent generation, whole per-item function timed
  (``benchmarks/peers/scaper_run.py`` in the peer venv, via subprocess, JSON timings back).
* floor: ``np.load(mmap_mode='r')`` maps opened once; per item the 4 stem slices at
  stemforge's drawn (track, start) are read and summed; no gains, no loudness, no clipping.
* floor + outputs (informative): the floor plus what ``render`` has to return — each slice
  times its gain written to its own target buffer, the mix as the sum of those; still no
  loudness, no peak, no clip scaling. The gap between the two floors is the cost of returning
  four targets besides the mix.

* stemforge, two datasets (issue 20): the same recipe with ``datasets: {a: 0.5, b: 0.5}`` over
  this dataset and a second one of the same shape (``--root`` + ``-b``, seed 1), each item's
  dataset drawn by weight (``Mixer(recipe, {"a": index, "b": index_b})``): the cost of
  resolving each source's dataset, against the ``stemforge`` row.
* stemforge, master bus (issue 20): the recipe plus ``master: [{step: limiter, threshold_db:
  -3, release_ms: 100}]``: the limiter's gain computed on every mix and applied to its four
  targets (the mix summed again), against the ``stemforge`` row.
* stemforge, mixup (issue 20): the recipe plus ``mixup: {p: [0.2, 0.02]}`` (MSST's default
  probabilities: about 0.9 extra stems per 4-stem item, each placed on another track), against
  the ``stemforge`` row (the issue's goal: within 1.5x of it); and mixup + the master bus above.
* stemforge draw only (informative): ``Sampler.draw_many`` of the same chunks, the sampling
  (item generators, distributions, the batched loudness look-up) without rendering.
* stemforge render only (informative): ``render(spec, index)`` of the same items' specs drawn
  beforehand (first renders: the clip scale is measured, so clipping items take the rescale
  pass). render runs one compiled pass per item (``stemforge/mixing/_kernels.py``); the
  kernels are compiled (or loaded from numba's disk cache) by warm-up items before timing.

One core: BLAS/OpenMP pools capped at 1 thread, one process per tool. The page cache is warmed
(every file read once) first, then every local row runs once over all its items untimed (its
memmap pages mapped, kernels loaded: steady state for all alike). Within a round the local rows
take turns every ``--chunk`` items (in an order that rotates from chunk to chunk: they read the
same slices, and the first to read them meets colder caches), so they share the machine's
conditions; Scaper runs once
per round, after them, and each local row re-runs its first chunk untimed before the next
round (its code and data back in the caches the peer's process evicted). Each row is the
median of ``--repeat`` rounds.
Two datasets in the same rounds (``--datasets``, default both): the ``synthetic`` one and the
clipping-prone ``sustained`` one of ``benchmarks/_data.py`` (dense chords, long notes, loud;
its share of items rescaled by fix_clipping is printed). On each: stemforge with the recipe as
above (fix_clipping) and with ``clipping: none``, both also render only, the floor, Scaper; the
other informative rows on the first dataset only.
Prints a markdown table per dataset (items, seconds, audio seconds generated per second,
ratios). Targets: stemforge >= 40x Scaper and >= 0.65x the floor (issue 23: also with
fix_clipping on the sustained data).
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _data  # noqa: E402
from stemforge.mixing.mixer import Mixer  # noqa: E402
from stemforge.mixing.render import render  # noqa: E402

DURATION = 5.0
RECIPE_FRAMES = int(round(DURATION * 44100))
TARGETS = ["vocals", "drums", "bass", "other"]
RECIPE = {
    "name": "bench-coherent-4stem",
    "targets": TARGETS,
    "modes": {"coherent": 1.0},
    "ref_db": ["uniform", -30, -10],
    "stems": {"default": {"snr": ["uniform", -5, 5]}},
    "clipping": "fix_clipping",
    "duration": DURATION,
}


_BUFFERS: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}


def time_stemforge(mixer: Mixer, items: range) -> tuple[float, float]:
    """(wall, CPU) seconds for ``items``, ``Mixer.mixtures`` batches of at most 64 items
    rendered into a reused pair of output arrays ``(mix (B, C, T), targets (B, S, C, T))``, as
    a loader's ``BatchBuffer``: allocated once per shape, outside the timing."""
    S, C, T = len(mixer.recipe.targets), mixer.recipe.channels, mixer.recipe.frames
    B = min(len(items), 64)
    buf = _BUFFERS.get((S, C, T))
    if buf is None or buf[0].shape[0] < B:
        buf = _BUFFERS[(S, C, T)] = (np.zeros((B, C, T), np.float32),
                                     np.zeros((B, S, C, T), np.float32))
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(0, len(items), B):
        part = items[k:k + B]
        mixer.mixtures(part, out=(buf[0][: len(part)], buf[1][: len(part)]))
    return time.perf_counter() - t0, time.process_time() - c0


def time_draw(mixer: Mixer, items: range) -> tuple[float, float]:
    """(wall, CPU) seconds to draw the specs of ``items`` in one batch (no rendering)."""
    t0, c0 = time.perf_counter(), time.process_time()
    mixer.sampler.draw_many(mixer.seed, 0, items)
    return time.perf_counter() - t0, time.process_time() - c0


def floor_plan(mixer: Mixer, index, n: int):
    """Memmaps opened once, and the (track, start) slices stemforge draws for items 0..n-1."""
    maps = {}
    for t in index.tracks:
        for s in TARGETS:
            maps[(t.id, s)] = np.load(index.cache.path(t.stems[s].key), mmap_mode="r")
    plan = []
    for i in range(n):
        spec = mixer.spec(i)
        src = spec.sources[0]
        plan.append((src.track, src.start))
    return maps, plan, mixer.recipe.frames


def time_floor(maps, plan, frames: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for tid, start in plan:
        end = start + frames
        # float32 sum whatever the entries hold (int16 for 16-bit sources, float32 else)
        mix = np.add(maps[(tid, TARGETS[0])][:, start:end], maps[(tid, TARGETS[1])][:, start:end],
                     dtype=np.float32)
        mix += maps[(tid, TARGETS[2])][:, start:end]
        mix += maps[(tid, TARGETS[3])][:, start:end]
    return time.perf_counter() - t0, time.process_time() - c0


def outputs_plan(mixer: Mixer, n: int):
    """Per item: the (track, stem, start, gain) of stemforge's drawn sources."""
    return [[(s.track, s.stem, s.start, np.float32(s.gain)) for s in mixer.spec(i).sources]
            for i in range(n)]


def time_floor_outputs(maps, plan, frames: int) -> tuple[float, float]:
    """The floor plus what render must return: each slice times its gain into its own target
    row of one (5, 2, T) buffer, and the mix as their sum. No loudness, peak or clip scaling."""
    t0, c0 = time.perf_counter(), time.process_time()
    for item in plan:
        buf = np.empty((len(item) + 1, 2, frames), np.float32)
        for j, (tid, stem, start, g) in enumerate(item):
            np.multiply(maps[(tid, stem)][:, start:start + frames], g, out=buf[j],
                        casting="unsafe")
        np.add(buf[0], buf[1], out=buf[-1])
        for j in range(2, len(item)):
            buf[-1] += buf[j]
    return time.perf_counter() - t0, time.process_time() - c0


def render_plan(mixer: Mixer, n: int):
    """The specs of items 0..n-1, drawn beforehand (never rendered: every render is a first
    render, the clip scale unknown)."""
    return [mixer.spec(i) for i in range(n)]


def time_render(index, specs) -> tuple[float, float]:
    """(wall, CPU) seconds to render already-drawn specs (first render: clip scale unknown)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for s in specs:
        render(s, index)
    return time.perf_counter() - t0, time.process_time() - c0


def dataset_rows(name: str, index, n: int, full: bool) -> tuple[dict, dict, Mixer]:
    """The local rows of one dataset: row name -> function of an item range, and row name ->
    items. ``full``: also the informative rows (floor + outputs, draw only, render only)."""
    mixer = Mixer(RECIPE, index, seed=0)
    for i in range(3):  # warm up imports and code paths
        m = mixer.mixture(10_000 + i)
    assert m.mix.shape == (2, mixer.recipe.frames) and m.mix.dtype == np.float32
    none = Mixer({**RECIPE, "clipping": "none"}, index, seed=0)
    none.mixtures(range(10_000, 10_003))
    maps, plan, frames = floor_plan(mixer, index, n)
    tag = f"[{name}] "
    rspecs = render_plan(mixer, n)
    rnone = render_plan(none, n)
    local = {
        tag + FLOOR: lambda r: time_floor(maps, plan[r.start:r.stop], frames),
        tag + "stemforge (fix_clipping)": lambda r: time_stemforge(mixer, r),
        tag + "stemforge (clipping: none)": lambda r: time_stemforge(none, r),
        tag + "stemforge render only (drawn specs, fix_clipping)":
            lambda r: time_render(index, rspecs[r.start:r.stop]),
        tag + "stemforge render only (drawn specs, clipping: none)":
            lambda r: time_render(index, rnone[r.start:r.stop]),
    }
    if full:
        oplan = outputs_plan(mixer, n)
        drawer = Mixer(RECIPE, index, seed=0)  # its own Mixer: the stemforge row's runs stay whole
        local[tag + "floor + outputs (gains into 4 target buffers + sum)"] = \
            lambda r: time_floor_outputs(maps, oplan[r.start:r.stop], frames)
        local[tag + "stemforge draw only (Mixer.spec)"] = lambda r: time_draw(drawer, r)
    return local, {k: n for k in local}, mixer


FLOOR = "floor (memmap read + sum)"
PEER = "Scaper 1.6.5"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="mixing throughput: stemforge vs Scaper vs floor")
    ap.add_argument("--n", type=int, default=400, help="items for stemforge and the floor")
    ap.add_argument("--n-peer", type=int, default=40, help="items for Scaper")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds; median reported")
    ap.add_argument("--chunk", type=int, default=40,
                    help="items per turn when the local rows take turns within a round")
    ap.add_argument("--quick", action="store_true", help="--n 100 --n-peer 10 --repeat 1")
    ap.add_argument("--root", type=Path, default=_data.DEFAULT_ROOT,
                    help="synthetic dataset directory")
    ap.add_argument("--sustained-root", type=Path, default=_data.default_root("sustained"),
                    help="sustained (clipping-prone) dataset directory")
    ap.add_argument("--datasets", default="synthetic,sustained",
                    help="comma-separated styles of benchmarks/_data.py, each measured in the "
                         "same rounds")
    ap.add_argument("--tracks", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0, help="track length")
    ap.add_argument("--venv", type=Path, default=None, help="Scaper peer venv")
    ap.add_argument("--no-peer", action="store_true", help="skip Scaper")
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.n_peer, a.repeat = 100, 10, 1

    styles = [x.strip() for x in a.datasets.split(",") if x.strip()]
    roots = {"synthetic": a.root, "sustained": a.sustained_root}
    local, n_for, mixers = {}, {}, {}
    for k, style in enumerate(styles):
        root = roots.get(style, _data.default_root(style))
        index = _data.build(root, a.tracks, a.seconds, style=style)
        _data.warm_page_cache(root)
        rows, ns, mixers[style] = dataset_rows(style, index, a.n, full=k == 0)
        local.update(rows)
        n_for.update(ns)
    runs = {name: [] for name in local}
    for style in styles:
        runs[f"[{style}] {PEER}"] = []
        n_for[f"[{style}] {PEER}"] = a.n_peer
    faults: dict[str, list[float]] = {}
    # two informative rows on the first dataset: a recipe drawing from two datasets (the second
    # a copy of the first style with another seed), and one with a mastering bus
    first = styles[0]
    index = _data.build(roots.get(first, _data.default_root(first)), a.tracks, a.seconds,
                        style=first, verbose=False)
    two = f"[{first}] stemforge, two datasets (datasets: {{a: 0.5, b: 0.5}})"
    root_b = roots.get(first, _data.default_root(first))
    root_b = root_b.with_name(root_b.name + "-b")
    index_b = _data.build(root_b, a.tracks, a.seconds, seed=1, style=first)
    _data.warm_page_cache(root_b)
    mixer2 = Mixer({**RECIPE, "name": "bench-two-datasets", "datasets": {"a": 0.5, "b": 0.5}},
                   {"a": index, "b": index_b}, seed=0)
    mastered = f"[{first}] stemforge, master bus (limiter at -3 dBFS)"
    mixer3 = Mixer({**RECIPE, "name": "bench-master",
                    "master": [{"step": "limiter", "threshold_db": -3.0, "release_ms": 100.0}]},
                   index, seed=0)
    mixup = f"[{first}] stemforge, mixup (p: [0.2, 0.02])"
    mixer4 = Mixer({**RECIPE, "name": "bench-mixup", "mixup": {"p": [0.2, 0.02]}}, index, seed=0)
    both = f"[{first}] stemforge, mixup + master bus"
    mixer5 = Mixer({**RECIPE, "name": "bench-mixup-master", "mixup": {"p": [0.2, 0.02]},
                    "master": [{"step": "limiter", "threshold_db": -3.0, "release_ms": 100.0}]},
                   index, seed=0)
    for name, mx in ((two, mixer2), (mastered, mixer3), (mixup, mixer4), (both, mixer5)):
        runs[name], n_for[name] = [], a.n
        local[name] = (lambda m: lambda r: time_stemforge(m, r))(mx)
    chunks = [range(c, min(c + a.chunk, a.n)) for c in range(0, a.n, a.chunk)]
    # One untimed pass of every local row over all its items first: each then runs in steady
    # state (the memmap pages mapped into this process, the kernels loaded, the allocator's
    # buffers reused), not paying first touches in its first round.
    for fn in local.values():
        fn(range(a.n))
    peer_info = {}
    for r in range(a.repeat):
        # the local rows take turns chunk by chunk (``--chunk`` items each), so that all of
        # them run under the same machine conditions (a shared VM's speed drifts by tens of
        # percent within seconds); a row's round time is the sum over its chunks
        total = {name: [0.0, 0.0] for name in local}
        for fn in local.values():  # untimed: back in cache after the peer's process ran
            fn(chunks[0])
        names = list(local)
        for k, ch in enumerate(chunks):
            # the rows read the same slices, so whichever runs first in a chunk meets colder
            # page tables and caches: the order rotates from chunk to chunk
            for name in names[k % len(names):] + names[:k % len(names)]:
                fn = local[name]
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                w, c = fn(ch)
                total[name][0] += w
                total[name][1] += c
                faults.setdefault(name, [0.0] * a.repeat)[r] += \
                    (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n_for[name]
        for name, (w, c) in total.items():
            runs[name].append((w, c))
        if not a.no_peer:
            for style in styles:
                root = roots.get(style, _data.default_root(style))
                out = _data.run_scaper(root, a.n_peer, a.venv, source_max=a.seconds - DURATION)
                runs[f"[{style}] {PEER}"].append((out["seconds"], out["cpu_seconds"]))
                peer_info = out
        print(f"round {r + 1}/{a.repeat} done", file=sys.stderr)

    rows = [{"name": k, "items": n_for[k], "seconds": statistics.median(w for w, _ in v),
             "cpu_seconds": statistics.median(c for _, c in v),
             "audio_seconds": n_for[k] * DURATION} for k, v in runs.items() if v]
    print(f"\nMixing: coherent 4-stem {DURATION:g} s stereo 44.1 kHz, snr + ref_db loudness gains, "
          f"fix_clipping (and clipping: none); one core; median of {a.repeat} round(s)")
    print(f"machine: {_data.machine()}")
    if peer_info:
        print(f"peer: {peer_info['tool']} (numpy {peer_info['numpy']}), generate() share of "
              f"its time {peer_info['generate_seconds'] / peer_info['seconds']:.0%}")
    for style in styles:
        mixer = mixers[style]
        m = min(a.n, 200)
        clip = sum(s.scale != 1.0 for s in (x.spec for x in mixer.mixtures(range(m))))
        print(f"\n[{style}] items rescaled by fix_clipping: {clip / m:.0%} of the first {m}")
        print()
        tag = f"[{style}] "
        print(_data.table([r for r in rows if r["name"].startswith(tag)],
                          [("vs Scaper", tag + PEER), ("vs floor", tag + FLOOR)]))
    print("\nminor page faults per item, per round: " + "; ".join(
        f"{k}: {', '.join(f'{x:.1f}' for x in v)}" for k, v in faults.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
