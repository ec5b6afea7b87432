"""Foundation benchmarks (issue 2), one run, printed side by side.

1. stem.mp4 decode: stemforge (PyAV in-process, one demux pass for all 5 streams) vs stempeg
   (ffmpeg CLI subprocess per read) on the real MUSDB18 excerpt bundled with stempeg.
2. Random 5 s excerpt reads: StemCache memmap vs soundfile partial reads (seek + read) vs the
   floor (a copy of an in-RAM array slice).
3. Re-indexing an unchanged 150-track dataset vs its first indexing.

Usage: python benchmarks/foundation.py [--tracks 150] [--reads 300]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemforge.audio import io  # noqa: E402
from stemforge.index import Index  # noqa: E402
from stemforge.prepare import prepare  # noqa: E402


def cpu() -> float:
    """CPU seconds of this process and its waited-for children (stempeg's ffmpeg), from
    getrusage (microsecond resolution, unlike os.times' 10 ms ticks)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def timeit(fn, repeat=5):
    """(best wall seconds, CPU seconds of that run) over ``repeat`` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        t, c = time.perf_counter(), cpu()
        fn()
        best = min(best, (time.perf_counter() - t, cpu() - c))
    return best


def bench_decode():
    import stempeg

    p = stempeg.example_stem_path()
    (ours, ours_c), (peer, peer_c) = timeit(lambda: io.read_streams(p, expected=5)), \
        timeit(lambda: stempeg.read_stems(p), repeat=3)
    dur = 268288 / 44100
    print("\n## stem.mp4 decode (real 6.08 s excerpt, 5 stereo AAC streams; best of 5 / 3)")
    print("| method | wall s per file | CPU s per file (incl. children) | x realtime (wall) | "
          "speed-up (wall) | speed-up (CPU) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| stemforge (PyAV, one demux pass) | {ours:.4f} | {ours_c:.3f} | {dur / ours:.0f} | "
          f"{peer / ours:.1f}x | {peer_c / max(ours_c, 1e-9):.1f}x |")
    print(f"| stempeg 0.2 (ffmpeg CLI) | {peer:.4f} | {peer_c:.3f} | {dur / peer:.0f} | 1.0x | 1.0x |")


def make_dataset(root: Path, n: int, seconds: float, sr=44100):
    rng = np.random.default_rng(0)
    for k in range(n):
        d = root / "train" / f"Artist{k:03d} - Song"
        d.mkdir(parents=True, exist_ok=True)
        for j, s in enumerate(["drums", "bass", "other", "vocals"]):
            a = (0.1 * rng.standard_normal((int(seconds * sr), 2))).astype(np.float32)
            sf.write(d / f"{s}.wav", a, sr, subtype="PCM_16")


def bench_reads(root: Path, cache: Path, n_reads: int):
    idx = Index.build(root, cache_dir=cache)
    prepare(idx)
    rng = np.random.default_rng(1)
    n = 5 * 44100
    picks = []
    for _ in range(n_reads):
        t = idx.tracks[int(rng.integers(len(idx.tracks)))]
        picks.append((t, int(rng.integers(0, t.frames - n))))

    def from_cache():
        for t, s in picks:
            idx.read(t.id, "vocals", s, n)

    def from_files():
        for t, s in picks:
            with sf.SoundFile(t.stems["vocals"].path) as f:
                f.seek(s)
                f.read(n, dtype="float32", always_2d=True)

    ram = {t.id: idx.cache.read(t.stems["vocals"].key) for t, _ in picks}

    def floor():
        for t, s in picks:
            ram[t.id][:, s:s + n].copy()

    (a, ac), (b, bc), (c, cc) = timeit(from_cache, 3), timeit(from_files, 3), timeit(floor, 3)
    print(f"\n## Random 5 s stereo excerpt reads ({n_reads} reads over {len(idx)} tracks, "
          "page cache warm, best of 3)")
    print("| method | wall ms per read | CPU ms per read | vs soundfile (wall) | vs soundfile (CPU) |")
    print("|---|---:|---:|---:|---:|")
    ms = 1e3 / n_reads
    print(f"| StemCache memmap (`Index.read`) | {a * ms:.3f} | {ac * ms:.3f} | {b / a:.1f}x | "
          f"{bc / max(ac, 1e-9):.1f}x |")
    print(f"| soundfile partial read (16-bit WAV) | {b * ms:.3f} | {bc * ms:.3f} | 1.0x | 1.0x |")
    print(f"| floor: copy of an in-RAM slice | {c * ms:.3f} | {cc * ms:.3f} | {b / c:.1f}x | "
          f"{bc / max(cc, 1e-9):.1f}x |")


def bench_reindex(root: Path, cache: Path, n: int):
    def run(fn):
        t, c = time.perf_counter(), cpu()
        fn()
        return time.perf_counter() - t, cpu() - c

    first, first_c = run(lambda: Index.build(root, cache_dir=cache))
    again, again_c = run(lambda: Index.build(root, cache_dir=cache))
    load, load_c = run(lambda: Index.load(cache / "index.jsonl"))
    print(f"\n## Indexing {n} tracks x 4 stems (10 s stereo 16-bit WAV each), "
          f"up to {os.cpu_count()} processes")
    print("| run | wall s | CPU s (incl. workers) | share of first (wall) | share of first (CPU) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| first index (decode + analyse) | {first:.2f} | {first_c:.2f} | 100 % | 100 % |")
    for name, w, c in (("re-index unchanged (`Index.build`)", again, again_c),
                       ("load index file (`Index.load`, stamps re-checked)", load, load_c)):
        print(f"| {name} | {w:.3f} | {c:.3f} | {100 * w / first:.1f} % | "
              f"{100 * c / max(first_c, 1e-9):.1f} % |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracks", type=int, default=150)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--reads", type=int, default=300)
    args = ap.parse_args()
    bench_decode()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_dataset(tmp / "ds", args.tracks, args.seconds)
        bench_reindex(tmp / "ds", tmp / "cache", args.tracks)
        bench_reads(tmp / "ds", tmp / "cache", args.reads)


if __name__ == "__main__":
    main()
