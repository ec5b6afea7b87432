"""Synthetic multitrack "songs" in the MUSDB18-HQ layout, for experiments without real data.

Each song is rendered from a random key (root note, major/minor), tempo (80-140 BPM), chord
progression (four chords, one per bar, looped) and mix levels; all randomness comes from the
``numpy.random.Generator`` given to :func:`render_song`. Four stems, float32 ``(2, T)``:

* ``vocals`` — a melodic voice: a harmonic tone (16 partials, 1/k roll-off) whose partials are
  weighted by three vowel formants (F1/F2/F3 resonances, a random vowel per note), with 5-6 Hz
  vibrato, a soft attack/release per note, a little breath noise, rests between phrases and an
  instrumental intro (so some 1 s frames are vocal-free, as in real songs);
* ``drums`` — kicks (exponential 110 -> 45 Hz sine sweeps) on beats 1 and 3 plus random extras,
  snares (a 190 Hz tone + decaying noise) on 2 and 4, hi-hats (differentiated noise, 30 ms decay)
  on eighth notes;
* ``bass`` — the chord roots two octaves down, 6 partials, one note per half bar;
* ``other`` — the chords as a sustained sawtooth-like pad (10 partials) with slow attack, plus
  an arpeggio of chord tones on eighth notes in half of the songs.

Stems are panned (constant power) and scaled to random levels (-26 to -18 dBFS RMS), and get a
-80 dBFS white noise floor wherever they are not digitally silent, like a recording's (it also
keeps BSS Eval's distortion-filter system well conditioned: on purely tonal, band-limited stems
its block-Toeplitz solve is near singular and falls back to a much slower dense solve; digital
silence is kept so museval's silent-window rule still applies); ``mixture.wav`` is their sum
(peak-normalised together if it would clip). :func:`write_dataset` writes
``<root>/{train,test}/<Synth - NNN>/{mixture,drums,bass,other,vocals}.wav`` (float WAV), which
``stemforge`` reads with its ``musdb18hq`` layout.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import StemforgeError
from ..types import Hz, Seconds

STEMS = ("drums", "bass", "other", "vocals")
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4), (0, 3, 5, 4))
NOISE_FLOOR = 10 ** (-80 / 20)  # white noise per stem channel, -80 dBFS RMS
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
          (570, 840, 2410))  # a, i, u, e, o (F1, F2, F3 in Hz)


def midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def _envelope(n: int, sr: Hz, attack: Seconds, release: Seconds) -> np.ndarray:
    """Linear attack, sustain, linear release over ``n`` frames: float64 ``(n,)``."""
    env = np.ones(n)
    a = min(n, max(1, int(attack * sr)))
    r = min(n - a, max(1, int(release * sr))) if n > a else 0
    env[:a] = np.linspace(0, 1, a, endpoint=False)
    if r > 0:
        env[n - r:] = np.linspace(1, 0, r)
    return env


def _harmonic(f0: np.ndarray, sr: Hz, amps: np.ndarray, phase0: float = 0.0) -> np.ndarray:
    """Additive tone following the instantaneous pitch ``f0`` (Hz, ``(n,)``); partial ``k``
    (1-based) has amplitude ``amps[k-1]`` (zeroed above Nyquist). Returns ``(n,)``."""
    phase = phase0 + 2 * np.pi * np.cumsum(f0) / sr
    out = np.zeros_like(f0)
    top = float(f0.max())
    for k, a in enumerate(amps, start=1):
        if a == 0 or k * top >= 0.45 * sr:
            continue
        out += a * np.sin(k * phase)
    return out


def _formant_weights(f0: float, n_partials: int, vowel) -> np.ndarray:
    """Partial weights of a voice: 1/k source times three Gaussian-shaped formant resonances."""
    freqs = f0 * np.arange(1, n_partials + 1)
    w = np.full(n_partials, 0.05)
    for i, (fc, bw) in enumerate(zip(vowel, (90.0, 120.0, 160.0))):
        w += (1.0, 0.6, 0.3)[i] * np.exp(-0.5 * ((freqs - fc) / (1.5 * bw)) ** 2)
    return w / np.arange(1, n_partials + 1) ** 0.7


def _place(dst: np.ndarray, start: int, x: np.ndarray) -> None:
    end = min(dst.shape[-1], start + x.shape[-1])
    if end > start:
        dst[start:end] += x[: end - start]


def _vocals(rng, sr, n, beat, scale, root, bars) -> np.ndarray:
    out = np.zeros(n)
    t = int(rng.integers(1, 3)) * 4 * beat  # instrumental intro of 1-2 bars (seconds)
    center = root + 12 + int(rng.integers(0, 5))
    degree = int(rng.integers(0, len(scale)))
    while t < n / sr - 0.3:
        if rng.random() < 0.2:  # a rest between phrases
            t += beat * float(rng.choice([1.0, 2.0]))
            continue
        dur = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 9))
        octave, step = divmod(degree, len(scale))
        f = midi_hz(center + 12 * octave + scale[step])
        m = int(dur * sr)
        tt = np.arange(m) / sr
        vib = 0.35 * np.sin(2 * np.pi * rng.uniform(5.0, 6.0) * tt) * np.clip(tt / 0.3, 0, 1)
        f0 = f * 2.0 ** (vib / 12.0)
        amps = _formant_weights(f, 16, VOWELS[int(rng.integers(0, len(VOWELS)))])
        x = _harmonic(f0, sr, amps, float(rng.uniform(0, 2 * np.pi)))
        x += 0.02 * rng.standard_normal(m)  # breath
        _place(out, int(t * sr), x * _envelope(m, sr, 0.04, min(0.08, dur / 3)))
        t += dur
    return out


def _drums(rng, sr, n, beat) -> np.ndarray:
    out = np.zeros(n)
    kick_n, snare_n, hat_n = int(0.35 * sr), int(0.25 * sr), int(0.08 * sr)
    tk = np.arange(kick_n) / sr
    kick = np.sin(2 * np.pi * np.cumsum(45 + 65 * np.exp(-tk / 0.04)) / sr) * np.exp(-tk / 0.12)
    ts = np.arange(snare_n) / sr
    th = np.arange(hat_n) / sr
    n_beats = int(n / sr / beat) + 1
    for b in range(n_beats):
        start = int(b * beat * sr)
        if b % 2 == 0 or rng.random() < 0.1:
            _place(out, start, 0.9 * kick)
        if b % 2 == 1:
            snare = 0.35 * np.sin(2 * np.pi * 190 * ts) * np.exp(-ts / 0.05) \
                + 0.45 * rng.standard_normal(snare_n) * np.exp(-ts / 0.07)
            _place(out, start, snare)
        for half in (0, 1):
            if rng.random() < 0.9:
                hat = np.diff(rng.standard_normal(hat_n + 1)) * np.exp(-th / 0.03)
                _place(out, start + int(half * beat * sr / 2), 0.12 * hat)
    return out


def _bass(rng, sr, n, beat, chords) -> np.ndarray:
    out = np.zeros(n)
    amps = np.array([1.0, 0.5, 0.3, 0.2, 0.1, 0.05])
    half_bar = 2 * beat
    for i in range(int(n / sr / half_bar) + 1):
        root = chords[(i // 2) % len(chords)][0] - 24
        m = int(half_bar * sr)
        f0 = np.full(m, midi_hz(root + (12 if rng.random() < 0.15 else 0)))
        x = _harmonic(f0, sr, amps) * _envelope(m, sr, 0.01, 0.1)
        _place(out, int(i * half_bar * sr), x)
    return out


def _other(rng, sr, n, beat, chords) -> np.ndarray:
    out = np.zeros(n)
    pad_amps = 1.0 / np.arange(1, 11)
    bar = 4 * beat
    arpeggio = rng.random() < 0.5
    for i in range(int(n / sr / bar) + 1):
        chord = chords[i % len(chords)]
        m = int(bar * sr)
        x = sum(_harmonic(np.full(m, midi_hz(note)), sr, pad_amps, float(rng.uniform(0, 6.3)))
                for note in chord)
        _place(out, int(i * bar * sr), 0.4 * x * _envelope(m, sr, 0.3, 0.3))
        if arpeggio:
            e = int(beat * sr / 2)
            for j in range(8):
                note = chord[j % 3] + 12
                f0 = np.full(e, midi_hz(note))
                y = _harmonic(f0, sr, np.array([1.0, 0.3, 0.1])) * np.exp(-np.arange(e) / sr / 0.1)
                _place(out, int(i * bar * sr) + j * e, 0.4 * y)
    return out


def _pan(x: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan of a mono ``(n,)`` signal, ``pan`` in [-1, 1]: ``(2, n)``."""
    theta = (pan + 1) * np.pi / 4
    return np.stack([np.cos(theta) * x, np.sin(theta) * x])


def render_song(rng: np.random.Generator, seconds: Seconds = 12.0, sample_rate: Hz = 22050
                ) -> dict[str, np.ndarray]:
    """One synthetic song: stem name -> float32 ``(2, frames)``; the mixture is their sum."""
    if seconds <= 0 or sample_rate < 8000:
        raise StemforgeError(f"synth: need seconds > 0 and sample_rate >= 8000, got "
                             f"{seconds!r} s at {sample_rate!r} Hz")
    sr, n = int(sample_rate), int(round(seconds * sample_rate))
    beat = 60.0 / float(rng.uniform(80, 140))
    scale = MAJOR if rng.random() < 0.5 else MINOR
    root = 48 + int(rng.integers(0, 12))  # C3..B3
    prog = PROGRESSIONS[int(rng.integers(0, len(PROGRESSIONS)))]
    chords = []
    for d in prog:
        chords.append(tuple(root + 12 * ((d + k) // 7) + scale[(d + k) % 7] for k in (0, 2, 4)))
    bars = int(np.ceil(n / sr / (4 * beat)))
    raw = {
        "drums": _drums(rng, sr, n, beat),
        "bass": _bass(rng, sr, n, beat, chords),
        "other": _other(rng, sr, n, beat, chords),
        "vocals": _vocals(rng, sr, n, beat, scale, root, bars),
    }
    stems = {}
    for name in STEMS:
        x = raw[name]
        x = x / (np.sqrt(np.mean(x ** 2)) + 1e-9)  # unit RMS, then a random level
        level = 10 ** (float(rng.uniform(-26, -18)) / 20)
        pan = float(rng.uniform(-0.15, 0.15) if name in ("vocals", "bass") else rng.uniform(-0.7, 0.7))
        floor = NOISE_FLOOR * rng.standard_normal((2, n)) * (x != 0)  # none in digital silence
        stems[name] = _pan(level * x, pan) + floor
    peak = np.max(np.abs(sum(stems.values())))
    scale_all = 0.95 / peak if peak > 0.95 else 1.0
    return {k: (v * scale_all).astype(np.float32) for k, v in stems.items()}


def write_dataset(root: str | Path, rng: np.random.Generator, n_train: int = 24, n_test: int = 6,
                  seconds: tuple[Seconds, Seconds] = (10.0, 20.0), sample_rate: Hz = 22050
                  ) -> Path:
    """Write ``n_train`` + ``n_test`` songs (durations uniform in ``seconds``) in the MUSDB18-HQ
    layout under ``root``; returns ``root``. Song ``k`` is named ``Synth - NNN``.

    ``root`` must not exist or be an empty folder. Songs are written to a temporary sibling
    folder renamed to ``root`` at the end, so a failure leaves nothing behind."""
    root = Path(root)
    if n_train < 1 or n_test < 0:
        raise StemforgeError(f"synth: need n_train >= 1 and n_test >= 0, got {n_train}, {n_test}")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise StemforgeError(f"{root}: exists and is not an empty folder; choose a new folder")
    lo, hi = seconds
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".partial", dir=root.parent))
    try:
        for k in range(n_train + n_test):
            folder = "train" if k < n_train else "test"
            song = render_song(rng, float(rng.uniform(lo, hi)), sample_rate)
            d = tmp / folder / f"Synth - {k:03d}"
            d.mkdir(parents=True)
            for name, audio in song.items():
                sf.write(str(d / f"{name}.wav"), audio.T, sample_rate, subtype="FLOAT")
            sf.write(str(d / "mixture.wav"), sum(song.values()).T, sample_rate, subtype="FLOAT")
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, root)  # also replaces an empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
