"""Shared fixtures: every test builds its own small data in tmp dirs.

``STEMFORGE_CACHE_DIR`` is pointed at a per-test temp folder so no test touches ~/.cache.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

MUSDB_STEMS = ["drums", "bass", "other", "vocals"]


@pytest.fixture(scope="session")
def _kernel_dir(tmp_path_factory):
    """One folder of generated mixing kernels per test process (compiled once, reused)."""
    return str(tmp_path_factory.mktemp("sfkernels"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, _kernel_dir):
    monkeypatch.setenv("STEMFORGE_CACHE_DIR", str(tmp_path_factory.mktemp("sfcache")))
    monkeypatch.setenv("STEMFORGE_KERNEL_DIR", _kernel_dir)


def tone(freq: float, seconds: float, sr: int = 44100, channels: int = 2, amp: float = 0.3,
         seed: int = 0, noise: float = 0.01) -> np.ndarray:
    """A (channels, frames) float32 sine plus a little noise (deterministic)."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    x = amp * np.sin(2 * np.pi * freq * t)[None, :] + noise * rng.standard_normal((channels, n))
    return x.astype(np.float32)


def sine(frames: int, f: float = 440.0, channels: int = 2, sr: int = 44100) -> np.ndarray:
    """A pure ``(channels, frames)`` float32 sine at amplitude 0.5 (pitch/tempo tests)."""
    t = np.arange(frames) / sr
    return np.stack([np.sin(2 * np.pi * f * t)] * channels).astype(np.float32) * 0.5


def peak_frequency(x: np.ndarray, sr: int = 44100) -> float:
    """Peak frequency (Hz) of the middle half of channel 0: Hann window, 8x zero padding,
    parabolic fit on the log spectrum."""
    a = x[0, x.shape[1] // 4: 3 * x.shape[1] // 4].astype(np.float64)
    n = 8 * len(a)
    spec = np.abs(np.fft.rfft(a * np.hanning(len(a)), n))
    k = int(np.argmax(spec))
    lm, c, r = np.log(spec[k - 1: k + 2])
    return (k + 0.5 * (lm - r) / (lm - 2 * c + r)) * sr / n


def write_wav(path: Path, audio: np.ndarray, sr: int = 44100, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.T, sr, subtype=subtype)
    return path


def make_musdb18hq(root: Path, tracks: dict[str, str] | None = None, seconds: float = 2.0,
                   sr: int = 44100, with_mixture: bool = True, seed: int = 0) -> Path:
    """A MUSDB18-HQ tree. ``tracks`` maps track name -> folder (train/test)."""
    tracks = tracks or {"A - One": "train", "B - Two": "test"}
    for i, (name, folder) in enumerate(sorted(tracks.items())):
        stems = {s: tone(110 * (j + 1) * (i + 1), seconds, sr, seed=seed + 10 * i + j)
                 for j, s in enumerate(MUSDB_STEMS)}
        for s, a in stems.items():
            write_wav(root / folder / name / f"{s}.wav", a, sr)
        if with_mixture:
            write_wav(root / folder / name / "mixture.wav", sum(stems.values()), sr)
    return root


def silent_dataset(root: Path, tracks: int, seconds: float, sr: int = 44100, seed: int = 0) -> Path:
    """MUSDB18-HQ tracks whose stems are digitally silent over random spans covering 0-100 %
    of each stem (some stems wholly silent, some never), as real multitracks are."""
    rng = np.random.default_rng(seed)
    names = {f"S{k} - Song": "train" for k in range(tracks)}
    make_musdb18hq(root, names, seconds=seconds, sr=sr, with_mixture=False, seed=seed)
    n = int(round(seconds * sr))
    fractions = np.linspace(0.0, 1.0, tracks * len(MUSDB_STEMS))
    rng.shuffle(fractions)
    for k, name in enumerate(sorted(names)):
        for j, stem in enumerate(MUSDB_STEMS):
            p = root / "train" / name / f"{stem}.wav"
            a, _ = sf.read(str(p), dtype="float32", always_2d=True)
            silent = int(round(fractions[k * len(MUSDB_STEMS) + j] * n))
            m = int(rng.integers(1, 5))  # that many spans, random lengths, random gaps
            lengths = np.diff([0, *np.sort(rng.integers(0, silent + 1, m - 1)), silent])
            gaps = np.diff([0, *np.sort(rng.integers(0, n - silent + 1, m))])
            mask, at = np.zeros(n, bool), 0
            for gap, length in zip(gaps, lengths, strict=True):
                at += int(gap)
                mask[at:at + int(length)] = True
                at += int(length)
            assert mask.sum() == silent
            a[mask] = 0.0
            sf.write(str(p), a, sr, subtype="FLOAT")
    return root


def write_stem_mp4(path: Path, streams: list[np.ndarray], sr: int = 44100) -> Path:
    """Encode (channels, frames) arrays as AAC streams of one MP4 (like MUSDB18 stem.mp4)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as c:
        outs = []
        for a in streams:
            s = c.add_stream("aac", rate=sr)
            s.layout = "stereo" if a.shape[0] == 2 else "mono"
            outs.append(s)
        for s, a in zip(outs, streams, strict=True):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(a, np.float32),
                                               format="fltp", layout=s.layout.name)
            frame.sample_rate = sr
            frame.pts = 0
            for pkt in s.encode(frame):
                c.mux(pkt)
            for pkt in s.encode(None):
                c.mux(pkt)
    return path


@pytest.fixture
def musdb_excerpt(tmp_path) -> Path:
    """A musdb18 root holding the real 6 s excerpt bundled with stempeg (test split)."""
    import stempeg

    src = Path(stempeg.example_stem_path())
    dst = tmp_path / "musdb18" / "test" / src.name
    dst.parent.mkdir(parents=True)
    shutil.copyfile(src, dst)
    return tmp_path / "musdb18"


@pytest.fixture
def hq_root(tmp_path) -> Path:
    return make_musdb18hq(tmp_path / "hq")


def cache_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (for 'nothing partial was written' checks)."""
    if not Path(folder).exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


__all__ = ["tone", "sine", "peak_frequency", "write_wav", "make_musdb18hq", "silent_dataset",
           "write_stem_mp4", "cache_files", "MUSDB_STEMS"]
os.environ.setdefault("MPLBACKEND", "Agg")
