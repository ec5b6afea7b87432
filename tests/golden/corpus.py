"""The made dataset behind the golden outputs: 16-bit four-stem songs, exact on every machine.

Every sample is computed in integer arithmetic from two tables built with Python's ``math``
(phase accumulators, table look-ups, integer envelopes and pans), never with NumPy's float
transcendental functions, whose SIMD variants differ by an ulp between processors. So the WAV
files, and therefore the goldens, are the same bytes on any machine.

The songs are music-like for a mixing engine: sustained chords, a bass line, a vibrato melody
with a silent intro, and noise-burst drums with decays; loud enough that some items clip.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf

STEMS = ("drums", "bass", "other", "vocals")
_TABLE_BITS = 12
_SINE = np.array([round(32767 * math.sin(2 * math.pi * k / (1 << _TABLE_BITS)))
                  for k in range(1 << _TABLE_BITS)], dtype=np.int64)
_DECAY = np.array([round(32767 * math.exp(-6.0 * k / 1024)) for k in range(1024)], dtype=np.int64)
_MASK = (1 << 32) - 1


def _inc(freq: float, sr: int) -> int:
    """Phase increment (32-bit accumulator) of ``freq`` Hz."""
    return int(round(freq * (1 << 32) / sr))


def _tone(freqs: list[float], frames: int, sr: int, vibrato: int = 0) -> np.ndarray:
    """int64 ``(frames,)`` in [-32767 * len(freqs), ...]: summed table sines (+ first three
    harmonics at 1/2, 1/4); ``vibrato``: peak phase-increment deviation in 1/32768 units."""
    n = np.arange(frames, dtype=np.int64)
    out = np.zeros(frames, dtype=np.int64)
    lfo = _SINE[((n * _inc(5.5, sr)) & _MASK) >> (32 - _TABLE_BITS)]
    for f in freqs:
        for h, amp_shift in ((1, 0), (2, 1), (3, 2)):
            inc = _inc(f * h, sr)
            if vibrato:
                phase = np.cumsum(inc + ((inc * vibrato) >> 15) * lfo // 32767) & _MASK
            else:
                phase = (n * inc) & _MASK
            out += _SINE[phase >> (32 - _TABLE_BITS)] >> amp_shift
    return out


def _notes(starts: list[int], length: int, frames: int, attack: int) -> np.ndarray:
    """int64 ``(frames,)`` envelope in [0, 32767]: a linear attack then the decay table over
    ``length`` frames from each start."""
    env = np.zeros(frames, dtype=np.int64)
    for s in starts:
        k = np.arange(min(length, frames - s), dtype=np.int64)
        att = np.minimum(k * 32767 // max(attack, 1), 32767)
        dec = _DECAY[np.minimum(k * 1024 // length, 1023)]
        env[s: s + k.shape[0]] = np.maximum(env[s: s + k.shape[0]], att * dec // 32767)
    return env


def song(index: int, seconds: float, sr: int = 44100) -> dict[str, np.ndarray]:
    """The four int16 ``(2, frames)`` stems of song ``index`` (deterministic)."""
    frames = int(round(seconds * sr))
    rng = np.random.default_rng(1000 + index)  # integers only: identical on every machine
    beat = sr // 2
    beats = list(range(0, frames, beat))
    root = [55.0, 61.74, 65.41, 73.42][index % 4]
    # drums: noise bursts (kick/snare alternation) with fast decays
    noise = rng.integers(-32767, 32768, size=frames, dtype=np.int64)
    drums = noise * _notes(beats, beat // 3, frames, 40) // 32767
    drums += _tone([root * 2], frames, sr) * _notes(beats[::2], beat // 2, frames, 20) // 32767
    # bass: one note per two beats, long sustain
    bass = np.zeros(frames, dtype=np.int64)
    for j, s in enumerate(beats[::2]):
        f = root * [1, 1.5, 1.335, 1.125][(j + index) % 4]
        e = min(frames, s + 2 * beat)
        bass[s:e] = (_tone([f], e - s, sr) * _notes([0], 2 * beat, e - s, 200) // 32767)
    # other: sustained triads changing every four beats
    other = np.zeros(frames, dtype=np.int64)
    for j, s in enumerate(beats[::4]):
        f = root * 4 * [1, 1.335, 1.5, 1.125][(j + index) % 4]
        e = min(frames, s + 4 * beat)
        other[s:e] = _tone([f, f * 1.26, f * 1.5], e - s, sr) // 3
    # vocals: a vibrato melody, silent for the first 1.5 s of odd songs
    vocals = np.zeros(frames, dtype=np.int64)
    quiet = int(1.5 * sr) if index % 2 else 0
    for j, s in enumerate(beats):
        if s < quiet:
            continue
        f = root * 8 * [1, 1.125, 1.26, 1.5, 1.335, 1.68][int(rng.integers(0, 6))]
        e = min(frames, s + beat)
        vocals[s:e] = _tone([f], e - s, sr, vibrato=400) * _notes([0], beat, e - s, 800) // 32767
    out = {}
    for k, (name, x) in enumerate(zip(STEMS, (drums, bass, other, vocals), strict=True)):
        level = [9000, 12000, 7000, 10000][k] * (4 + index % 3) // 4
        pan = (k * 7 + index * 3) % 16  # 0..15: left gain 16 - pan, right gain pan + 1
        mono = x * level // (32767 * 2)
        st = np.stack([mono * (17 - pan) // 17, mono * (pan + 1) // 17])
        out[name] = np.clip(st, -32768, 32767).astype(np.int16)
    return out


def write_dataset(root: Path, tracks: dict[str, str], seconds: float, sr: int = 44100) -> Path:
    """A MUSDB18-HQ tree (``<split>/<name>/<stem>.wav`` + ``mixture.wav``, 16-bit PCM):
    ``tracks`` maps track name -> split folder; song ``k`` is the ``k``-th name in sorted order."""
    for k, (name, split) in enumerate(sorted(tracks.items())):
        stems = song(k, seconds, sr)
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for s, a in stems.items():
            sf.write(str(folder / f"{s}.wav"), a.T, sr, subtype="PCM_16")
        mix = np.clip(sum(a.astype(np.int32) for a in stems.values()), -32768, 32767)
        sf.write(str(folder / "mixture.wav"), mix.astype(np.int16).T, sr, subtype="PCM_16")
    return root
