"""Music-like four-stem songs for measuring the doctor: fast to render, realistic where it counts.

The doctor's fingerprint, bleed and label checks are easy to fool with stationary sines, so the
material here has what real multitracks have: notes with envelopes that change pitch, a beat,
vibrato, independent phases and a few cents of detuning between instruments (so that two stems
are never phase-locked), stereo images that are not one mono signal panned (a Haas delay on
one channel), rests and an instrumental intro. A song is composed first (:func:`compose`: the
notes, from one ``rng``) and then rendered (:func:`render`: the timbres, from another), so the
same score can be rendered with other instruments (what Slakh does with its MIDI files).

Rendering uses wavetables (one period of a harmonic waveform, looked up by phase), so a 30 s
stereo song at 44.1 kHz takes a fraction of a second:

* ``vocals``: formant-weighted harmonic tone (16 partials, a random vowel per note), 5-6 Hz
  vibrato, breath noise, phrase rests, an intro of one or two bars;
* ``drums``: kick (110 -> 45 Hz sweep), snare (tone + noise) on 2 and 4, hi-hats on eighths;
* ``bass``: chord roots two octaves down, plucked envelope;
* ``other``: sustained chord pad (slow attack) plus, in half of the songs, an eighth-note arpeggio.

Stems are float32 ``(2, T)`` at random levels (-26 to -18 dBFS RMS over their active part) with
a -80 dBFS noise floor where they are not digitally silent; the mixture is their sum
(scaled together if it would exceed 0.9).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..types import Hz, Seconds

STEMS = ("drums", "bass", "other", "vocals")
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4), (0, 3, 5, 4))
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
          (570, 840, 2410))  # F1, F2, F3 (Hz) of a, i, u, e, o
TABLE = 4096
NOISE_FLOOR = 10 ** (-80 / 20)


@dataclass
class Note:
    """One event of a score: onset and duration in seconds, MIDI pitch (drums: 0 kick,
    1 snare, 2 hat), velocity in [0, 1], and a vowel index for the voice."""

    onset: Seconds
    dur: Seconds
    pitch: float
    velocity: float = 1.0
    vowel: int = 0


@dataclass
class Score:
    """The notes of one song per stem, its length, and whether ``other`` has an arpeggio."""

    seconds: Seconds
    beat: Seconds
    notes: dict[str, list[Note]] = field(default_factory=dict)


def midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def compose(rng: np.random.Generator, seconds: Seconds) -> Score:
    """A random song structure: key, tempo (80-140 BPM), a four-chord loop, and the notes of
    the four stems (see the module docstring)."""
    beat = 60.0 / float(rng.uniform(80, 140))
    scale = MAJOR if rng.random() < 0.5 else MINOR
    root = 48 + int(rng.integers(0, 12))
    prog = PROGRESSIONS[int(rng.integers(0, len(PROGRESSIONS)))]
    chords = [tuple(root + 12 * ((d + k) // 7) + scale[(d + k) % 7] for k in (0, 2, 4))
              for d in prog]
    bar = 4 * beat
    n_bars = int(np.ceil(seconds / bar))
    notes: dict[str, list[Note]] = {s: [] for s in STEMS}
    for b in range(int(seconds / beat) + 1):  # drums
        t = b * beat
        if b % 2 == 0 or rng.random() < 0.15:
            notes["drums"].append(Note(t, 0.35, 0, float(rng.uniform(0.8, 1.0))))
        if b % 2 == 1:
            notes["drums"].append(Note(t, 0.25, 1, float(rng.uniform(0.7, 1.0))))
        for half in (0, 1):
            if rng.random() < 0.9:
                notes["drums"].append(Note(t + half * beat / 2, 0.08, 2,
                                           float(rng.uniform(0.5, 1.0))))
    for i in range(2 * n_bars):  # bass: a note per half bar
        chord = chords[(i // 2) % len(chords)]
        up = 12 if rng.random() < 0.15 else 0
        notes["bass"].append(Note(i * 2 * beat, 2 * beat * 0.95, chord[0] - 24 + up,
                                  float(rng.uniform(0.8, 1.0))))
    arpeggio = rng.random() < 0.5
    for i in range(n_bars):  # other: pad chord per bar (+ arpeggio)
        chord = chords[i % len(chords)]
        for p in chord:
            notes["other"].append(Note(i * bar, bar, p, 0.5))
        if arpeggio:
            for j in range(8):
                notes["other"].append(Note(i * bar + j * beat / 2, beat / 2, chord[j % 3] + 12,
                                           float(rng.uniform(0.6, 0.9))))
    t = float(rng.integers(1, 3)) * bar  # vocals: an intro, then phrases with rests
    center = root + 12 + int(rng.integers(0, 5))
    degree = int(rng.integers(0, len(scale)))
    while t < seconds - 0.3:
        if rng.random() < 0.2:
            t += beat * float(rng.choice([1.0, 2.0]))
            continue
        dur = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 9))
        octave, step = divmod(degree, len(scale))
        notes["vocals"].append(Note(t, dur, center + 12 * octave + scale[step],
                                    float(rng.uniform(0.7, 1.0)), int(rng.integers(0, 5))))
        t += dur
    return Score(seconds=float(seconds), beat=beat, notes=notes)


def _table(amps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One period (``TABLE`` samples) of partials ``amps`` (partial k = amps[k-1]) with random
    phases, peak 1: float32 ``(TABLE,)``."""
    spec = np.zeros(TABLE // 2 + 1, np.complex128)
    k = np.arange(1, len(amps) + 1)
    spec[k] = amps * np.exp(1j * rng.uniform(0, 2 * np.pi, len(amps)))
    x = np.fft.irfft(spec, TABLE)
    return (x / np.abs(x).max()).astype(np.float32)


def _osc(table: np.ndarray, f0, sr: Hz, n: int, phase0: float) -> np.ndarray:
    """Wavetable oscillator: ``n`` samples following ``f0`` (Hz, scalar or ``(n,)``)."""
    if np.ndim(f0) == 0:
        phase = phase0 + (float(f0) / sr) * np.arange(n)
    else:
        phase = phase0 + np.cumsum(f0) / sr
    idx = ((phase - np.floor(phase)) * TABLE).astype(np.int32) & (TABLE - 1)
    return table[idx]


def _env(n: int, sr: Hz, attack: Seconds, release: Seconds, decay: Seconds | None = None
         ) -> np.ndarray:
    """Linear attack, (optional exponential decay), linear release over ``n`` samples."""
    t = np.arange(n, dtype=np.float32) / sr
    env = np.minimum(1.0, t / max(attack, 1e-4))
    if decay is not None:
        env = env * np.exp(-np.maximum(t - attack, 0) / decay).astype(np.float32)
    rel = max(1, int(release * sr))
    if n > rel:
        env[n - rel:] *= np.linspace(1, 0, rel, dtype=np.float32)
    return env


def _add(dst: np.ndarray, start: int, x: np.ndarray) -> None:
    end = min(dst.shape[-1], start + x.shape[-1])
    if end > start >= 0:
        dst[start:end] += x[: end - start]


def _formants(f0: float, vowel) -> np.ndarray:
    freqs = f0 * np.arange(1, 17)
    w = np.full(16, 0.05)
    for i, (fc, bw) in enumerate(zip(vowel, (90.0, 120.0, 160.0))):
        w += (1.0, 0.6, 0.3)[i] * np.exp(-0.5 * ((freqs - fc) / (1.5 * bw)) ** 2)
    return w / np.arange(1, 17) ** 0.7


def _detune(rng, cents_sd: float) -> float:
    return float(2.0 ** (rng.normal(0.0, cents_sd) / 1200.0))


def render(score: Score, rng: np.random.Generator, sample_rate: Hz = 44100,
           timbre: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Render ``score``: stem name -> float32 ``(2, T)``. ``rng`` draws levels, pans, noise and
    phases; ``timbre`` (default: ``rng``) the instruments' partial amplitudes and tuning."""
    sr = int(sample_rate)
    n = int(round(score.seconds * sr))
    tim = rng if timbre is None else timbre
    raw: dict[str, np.ndarray] = {}

    # drums
    out = np.zeros(n, np.float32)
    kick_t = np.arange(int(0.35 * sr)) / sr
    k_lo, k_hi = float(tim.uniform(40, 55)), float(tim.uniform(90, 130))
    kick = np.sin(2 * np.pi * np.cumsum(k_lo + (k_hi - k_lo) * np.exp(-kick_t / 0.04)) / sr)
    kick = (kick * np.exp(-kick_t / float(tim.uniform(0.08, 0.16)))).astype(np.float32)
    snare_f = float(tim.uniform(160, 240))
    for note in score.notes["drums"]:
        m = int(note.dur * sr)
        t = np.arange(m, dtype=np.float32) / sr
        if note.pitch == 0:
            x = kick[:m]
        elif note.pitch == 1:
            x = 0.35 * np.sin(2 * np.pi * snare_f * t + rng.uniform(0, 6.3)) * np.exp(-t / 0.05) \
                + 0.45 * rng.standard_normal(m).astype(np.float32) * np.exp(-t / 0.07)
        else:
            x = 0.12 * np.diff(rng.standard_normal(m + 1)).astype(np.float32) * np.exp(-t / 0.03)
        x = x * _env(m, sr, 0.0005, 0.02)  # a hit decays to zero, it is not cut off
        _add(out, int(note.onset * sr), note.velocity * x.astype(np.float32))
    raw["drums"] = out

    # bass
    out = np.zeros(n, np.float32)
    table = _table(np.array([1.0, 0.5, 0.3, 0.2, 0.1, 0.05]) * tim.uniform(0.6, 1.0, 6), tim)
    tune = _detune(tim, 5.0)
    for note in score.notes["bass"]:
        m = int(note.dur * sr)
        f = midi_hz(note.pitch) * tune * _detune(rng, 2.0)
        x = _osc(table, f, sr, m, rng.random()) * _env(m, sr, 0.008, 0.08, decay=0.6)
        _add(out, int(note.onset * sr), note.velocity * x)
    raw["bass"] = out

    # other
    out = np.zeros(n, np.float32)
    pad = _table((1.0 / np.arange(1, 11)) * tim.uniform(0.5, 1.0, 10), tim)
    pluck = _table(np.array([1.0, 0.3, 0.1, 0.05]), tim)
    tune = _detune(tim, 5.0)
    for note in score.notes["other"]:
        m = int(note.dur * sr)
        f = midi_hz(note.pitch) * tune * _detune(rng, 3.0)
        if note.velocity == 0.5:  # pad voice
            x = 0.4 * _osc(pad, f, sr, m, rng.random()) * _env(m, sr, 0.3, 0.3)
        else:
            x = 0.4 * _osc(pluck, f, sr, m, rng.random()) * _env(m, sr, 0.005, 0.03, decay=0.1)
        _add(out, int(note.onset * sr), note.velocity * x)
    raw["other"] = out

    # vocals
    out = np.zeros(n, np.float32)
    tune = _detune(tim, 5.0)
    for note in score.notes["vocals"]:
        m = int(note.dur * sr)
        f = midi_hz(note.pitch) * tune
        t = np.arange(m) / sr
        vib = 0.35 * np.sin(2 * np.pi * rng.uniform(5.0, 6.0) * t) * np.clip(t / 0.3, 0, 1)
        table = _table(_formants(f, VOWELS[note.vowel]), rng)
        x = _osc(table, f * 2.0 ** (vib / 12.0), sr, m, rng.random())
        x = x + 0.02 * rng.standard_normal(m).astype(np.float32)
        _add(out, int(note.onset * sr), note.velocity * x * _env(m, sr, 0.04, min(0.08, note.dur / 3)))
    raw["vocals"] = out

    stems = {}
    for name in STEMS:
        x = raw[name]
        active = x != 0
        rms = float(np.sqrt(np.dot(x, x) / max(1, int(active.sum()))))
        gain = float(10 ** (float(rng.uniform(-26, -18)) / 20) / (rms + 1e-12))
        pan = float(rng.uniform(-0.15, 0.15) if name in ("vocals", "bass") else rng.uniform(-0.7, 0.7))
        theta = (pan + 1) * np.pi / 4
        d = int(rng.integers(4, 30))  # Haas delay of the right channel (0.1-0.7 ms)
        st = np.empty((2, n), np.float32)
        np.multiply(x, np.float32(gain * np.cos(theta)), out=st[0])
        st[1, :d] = 0
        np.multiply(x[:-d], np.float32(gain * np.sin(theta)), out=st[1, d:])
        noise = rng.standard_normal((2, n), dtype=np.float32)
        noise *= np.float32(NOISE_FLOOR)
        noise[:, ~active] = 0
        st += noise
        stems[name] = st
    peak = float(np.abs(sum(stems.values())).max())
    if peak > 0.9:
        stems = {k: (v * (0.9 / peak)).astype(np.float32) for k, v in stems.items()}
    return stems


def song(rng: np.random.Generator, seconds: Seconds, sample_rate: Hz = 44100
         ) -> dict[str, np.ndarray]:
    """:func:`compose` then :func:`render` with the same ``rng``: stem -> float32 ``(2, T)``."""
    return render(compose(rng, seconds), rng, sample_rate)
