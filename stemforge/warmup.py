"""``stemforge warmup``: compile every numba kernel once, into the kernel folder.

numba compiles a kernel on its first call in a process and keeps the machine code on disk
(:mod:`stemforge._jit`: ``$STEMFORGE_KERNEL_DIR``, default ``~/.cache/stemforge/kernels``), so
later processes only load it. Without a warm folder the first evaluation on a new machine pays
BSS Eval's compile and the first mixed item the mixing kernels'. Warmup runs the real code paths
on a tiny dataset it writes in a temporary folder (deleted after): indexing (loudness analysis),
``prepare`` (a 16-bit source stored as int16, a float source as float32), mixing through
``Mixer.mixtures`` (item seeding, loudness look-ups, the peak bound and the mixing loops for
int16, float32 and mixed rows, the common target shapes) and BSS Eval v4 with the other metrics
``evaluate`` computes. Each kernel signature the real paths use is compiled, so a second run
finds them all cached and takes seconds. Last, the metrics kernels are also built ahead of time
(:mod:`stemforge._aot`: a one-shot ``stemforge evaluate`` then loads them in a millisecond
without importing numba); where that build cannot be made (no C compiler) warmup says so on
its line and succeeds: numba's cached kernels serve instead.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

STEMS = ("drums", "bass", "other", "vocals")
SR = 44100
SECONDS = 3.0


def _dataset(root: Path) -> None:
    """Two 16-bit tracks and one float track of four stereo stems (musdb18hq layout)."""
    import soundfile as sf

    n = int(SECONDS * SR)
    t = np.arange(n) / SR
    rng = np.random.default_rng(0)
    for k, (name, subtype) in enumerate((("A - Warmup", "PCM_16"), ("B - Warmup", "PCM_16"),
                                         ("C - Warmup", "FLOAT"))):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        mix = np.zeros((n, 2))
        for j, s in enumerate(STEMS):
            x = 0.4 * np.sin(2 * np.pi * 110 * (j + 1) * (k + 1) * t)[:, None] \
                + 0.05 * rng.standard_normal((n, 2))
            x[: SR // 2 * j] = 0.0  # some silence for the silence checks
            mix += x
            sf.write(str(folder / f"{s}.wav"), x.astype(np.float32), SR, subtype=subtype)
        sf.write(str(folder / "mixture.wav"), (0.25 * mix).astype(np.float32), SR,
                 subtype=subtype)


def _recipes() -> list[dict]:
    base = {"name": "warmup", "duration": 1.0, "sample_rate": SR, "channels": 2,
            "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", -20, 0],
            "stems": {"default": {"snr": ["uniform", -5, 5]}}, "clipping": "fix_clipping"}
    four = {**base, "targets": list(STEMS)}
    two = {**base, "targets": ["vocals", "accompaniment"],
           "groups": {"accompaniment": ["drums", "bass", "other"]}}
    flips = {**four, "augment": [{"step": "polarity", "p": 0.5, "shared": False}]}
    return [four, two, flips, {**four, "clipping": "none"}, {**two, "clipping": "peak_normalize"}]


def steps() -> list[tuple[str, Callable[[Path], str | None]]]:
    """The warmup's steps in order: (name, function of the temporary folder returning None or
    a note for its progress line)."""

    def index(tmp: Path) -> None:
        from .index import Index
        from .prepare import prepare

        _dataset(tmp / "data")
        idx = Index.build(tmp / "data", layout="musdb18hq", cache_dir=tmp / "cache")
        prepare(idx, workers=1)

    def mixing(tmp: Path) -> None:
        from .index import Index
        from .mixing.mixer import Mixer

        idx = Index.open(tmp / "data", layout="musdb18hq", cache_dir=tmp / "cache")
        for recipe in _recipes():
            Mixer(recipe, idx, seed=0, warn=False).mixtures(range(24))

    def metrics(tmp: Path) -> None:
        from ._aot import jit_only
        from .index import Index
        from .metrics import bss_eval_v4, csdr, mdx_sdr, si_sdr

        idx = Index.open(tmp / "data", layout="musdb18hq", cache_dir=tmp / "cache")
        t = idx.tracks[0]
        refs = [idx.read(t.id, s) for s in STEMS]
        ests = [r + np.float32(0.1) * refs[(k + 1) % len(refs)] for k, r in enumerate(refs)]
        with jit_only():  # numba's kernels too: they serve calls the build does not match
            for dtype in (np.float32, np.float64):  # evaluate's float32 stacks, float64 input
                r = [x.astype(dtype) for x in refs]
                e = [x.astype(dtype) for x in ests]
                bss_eval_v4(r, e)
                si_sdr(r, e)
                mdx_sdr(r, e)
                csdr(r, e)

    def ahead_of_time(tmp: Path) -> str:
        from . import _aot
        from .metrics.kernels import METRICS

        path = _aot.build_path(METRICS)
        if path.is_file() and _aot.load(METRICS) is not None:
            return f"up to date ({path.name})"
        try:
            _aot.build(METRICS)
        except Exception as e:  # no C compiler, no setuptools, no numba.pycc: numba's kernels
            first = (str(e).strip().splitlines() or [""])[0][:200]
            return (f"not built ({type(e).__name__}: {first}); evaluate loads numba's cached "
                    "kernels instead (same numbers, ~0.7 s more per command)")
        return f"built {path.name}"

    return [("index + prepare (loudness analysis, stem cache)", index),
            ("mixing (seeding, loudness look-ups, mixing kernels)", mixing),
            ("metrics (BSS Eval v4, SI-SDR, MDX SDR, cSDR)", metrics),
            ("metrics kernels ahead of time (loaded without numba)", ahead_of_time)]


def warmup(report: Callable[[str], None] = print) -> float:
    """Run every step (see the module docstring), calling ``report`` with one line per step;
    returns the total seconds."""
    from ._jit import kernel_dir

    t00 = time.perf_counter()
    report(f"warmup: compiling kernels into {kernel_dir()}")
    todo = steps()
    with tempfile.TemporaryDirectory(prefix="stemforge-warmup-") as tmp:
        for k, (name, fn) in enumerate(todo, 1):
            t0 = time.perf_counter()
            note = fn(Path(tmp))
            report(f"warmup {k}/{len(todo)}: {name}: {time.perf_counter() - t0:.1f} s"
                   + (f": {note}" if note else ""))
    total = time.perf_counter() - t00
    report(f"warmup: done in {total:.1f} s")
    return total
