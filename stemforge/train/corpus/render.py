"""Render an arranged :class:`~.scores.Song` with FluidSynth and mix it like an engineer would.

* :func:`render_stem` plays the parts of one stem through FluidSynth (a General MIDI soundfont,
  its own reverb and chorus off, one MIDI channel per part, pan per part) into float32 stereo,
  sample-accurate up to FluidSynth's 64-frame control blocks. The vocals get expression (swell,
  CC 11) and pitch (onset scoop, delayed vibrato) as 100 Hz control curves per note. A fresh
  synthesizer renders every stem, so a stem's audio depends only on its notes (same bytes in any
  process and order).
* :func:`engineer` draws and applies per-stem processing with pedalboard: high-pass and EQ,
  compression, reverb (vocals and other more, bass none), then sets each stem's level (RMS over
  its active 50 ms blocks) to a drawn value around a typical balance (vocals on top).
* :func:`render_song` = both for the four stems, scaled together so the mixture's peak stays
  below 0.98 (nothing is limited or clipped: the mixture is exactly the sum of the stems).

Needs the ``fluidsynth`` library (Debian: ``fluidsynth``), pyfluidsynth and a GM soundfont
(Debian ``fluid-soundfont-gm``: :data:`DEFAULT_SOUNDFONT`).
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from ...errors import StemforgeError
from ...types import Decibels, Hz
from .scores import Part, Song

STEMS = ("drums", "bass", "other", "vocals")
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
CONTROL_RATE = 100.0   # vocal control updates per second
#: typical active-RMS level per stem (dBFS) and the spread drawn around it
LEVELS: dict[str, tuple[Decibels, Decibels]] = {"vocals": (-18.0, 1.5), "drums": (-19.5, 2.0),
                                                "bass": (-21.0, 2.0), "other": (-20.5, 2.0)}
PEAK = 0.98


def _fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as e:  # pyfluidsynth missing, or libfluidsynth not found
        raise StemforgeError("experiment corpus needs FluidSynth: apt-get install fluidsynth "
                             f"fluid-soundfont-gm; pip install 'stemforge[experiment]' ({e})") from e
    write = fluidsynth.cfunc("fluid_synth_write_float", ctypes.c_int,
                             ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
                             ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1),
                             ("lincr", ctypes.c_int, 1), ("rout", ctypes.c_void_p, 1),
                             ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1))
    return fluidsynth, write


def check_soundfont(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise StemforgeError(f"{p}: soundfont not found "
                             "(Debian: apt-get install fluid-soundfont-gm)")
    return p


def _vocal_controls(note, vocal: dict, sr: Hz):
    """``[(frame, bend, expression)]`` for one vocal note (bend in pyfluidsynth's -8192..8191
    units of a +-2 semitone range)."""
    out = []
    dur = note.end - note.start
    n = max(1, int(dur * CONTROL_RATE))
    for k in range(n):
        t = k / CONTROL_RATE
        cents = -vocal["scoop_cents"] * max(0.0, 1.0 - t / 0.08)
        if t > vocal["vibrato_delay"]:
            ramp = min(1.0, (t - vocal["vibrato_delay"]) / 0.3)
            cents += vocal["vibrato_cents"] * ramp * np.sin(
                2 * np.pi * vocal["vibrato_rate"] * (t - vocal["vibrato_delay"]))
        swell = vocal["swell"] + (1 - vocal["swell"]) * min(1.0, t / 0.15)
        expr = 127 * swell * (1.0 - 0.12 * t / max(dur, 1e-3))
        bend = int(np.clip(round(cents * 8192 / 200), -8192, 8191))
        out.append((int(round((note.start + t) * sr)), bend, int(np.clip(round(expr), 0, 127))))
    return out


def render_stem(parts: list[Part], frames: int, sample_rate: Hz, soundfont: str | Path,
                vocal: dict | None = None) -> np.ndarray:
    """The parts of one stem played by FluidSynth: float32 ``(2, frames)``. ``vocal``: the
    song's vocal expression (applied to every part when given)."""
    fluidsynth, write = _fluidsynth()
    out = np.zeros((frames, 2), np.float32)
    if not parts or not any(p.notes for p in parts):
        return np.ascontiguousarray(out.T)
    synth = fluidsynth.Synth(gain=0.2, samplerate=float(sample_rate),
                             **{"synth.reverb.active": 0, "synth.chorus.active": 0})
    try:
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise StemforgeError(f"{soundfont}: FluidSynth cannot load this soundfont")
        events = []  # (frame, order, kind, args); order: controls before note-ons at one frame
        melodic = [c for c in range(16) if c != 9]
        for k, part in enumerate(parts):
            chan = 9 if part.bank == 128 else melodic[k % len(melodic)]
            synth.program_select(chan, sfid, part.bank, part.program)
            synth.cc(chan, 7, 100)
            synth.cc(chan, 10, int(np.clip(part.pan, 0, 127)))
            synth.cc(chan, 11, 127)
            for n in part.notes:
                a, b = int(round(n.start * sample_rate)), int(round(n.end * sample_rate))
                if a >= frames:
                    continue
                events.append((min(b, frames - 1), 0, "off", (chan, n.pitch)))
                events.append((a, 2, "on", (chan, n.pitch, n.velocity)))
                if vocal is not None:
                    for f, bend, expr in _vocal_controls(n, vocal, sample_rate):
                        if f < min(b, frames):
                            events.append((f, 1, "ctl", (chan, bend, expr)))
        events.sort(key=lambda e: (e[0], e[1]))
        pos = 0
        base = out.ctypes.data
        for frame, _, kind, args in events:
            if frame > pos:
                write(synth.synth, frame - pos, base + 8 * pos, 0, 2, base + 8 * pos, 1, 2)
                pos = frame
            if kind == "on":
                synth.noteon(*args)
            elif kind == "off":
                synth.noteoff(*args)
            else:
                chan, bend, expr = args
                synth.pitch_bend(chan, bend)
                synth.cc(chan, 11, expr)
        if frames > pos:
            write(synth.synth, frames - pos, base + 8 * pos, 0, 2, base + 8 * pos, 1, 2)
    finally:
        synth.delete()
    return np.ascontiguousarray(out.T)


def _board(stem: str, rng: np.random.Generator):
    """Per-stem processing (pedalboard plug-ins) with drawn settings."""
    import pedalboard as pb

    u = rng.uniform
    if stem == "vocals":
        fx = [pb.HighpassFilter(u(70, 120)),
              pb.PeakFilter(u(2500, 5000), u(1, 4), 1.0),
              pb.Compressor(u(-26, -16), u(3, 5), u(4, 12), u(80, 200)),
              pb.Reverb(room_size=u(0.3, 0.7), damping=u(0.3, 0.6), wet_level=u(0.08, 0.25),
                        dry_level=1.0, width=1.0)]
    elif stem == "drums":
        fx = [pb.LowShelfFilter(100, u(0, 3), 0.7), pb.PeakFilter(u(300, 600), u(-4, 0), 1.0),
              pb.Compressor(u(-22, -12), u(2, 4), u(10, 30), u(80, 200)),
              pb.Reverb(room_size=u(0.1, 0.4), damping=0.5, wet_level=u(0.03, 0.12),
                        dry_level=1.0, width=1.0)]
    elif stem == "bass":
        fx = [pb.HighpassFilter(u(30, 45)), pb.LowShelfFilter(100, u(0, 3), 0.7),
              pb.Compressor(u(-24, -14), u(4, 8), u(5, 20), u(100, 250))]
    else:
        fx = [pb.HighpassFilter(u(80, 200)), pb.PeakFilter(u(300, 600), u(-4, 0), 1.0),
              pb.Compressor(u(-24, -16), u(1.5, 3), u(10, 30), u(100, 250)),
              pb.Reverb(room_size=u(0.4, 0.8), damping=u(0.3, 0.6), wet_level=u(0.1, 0.3),
                        dry_level=1.0, width=1.0)]
    return pb.Pedalboard(fx)


def active_rms(x: np.ndarray, sample_rate: Hz, block: float = 0.05, floor_db: Decibels = -40.0
               ) -> float:
    """RMS of ``(C, T)`` over its 50 ms blocks within ``floor_db`` of the loudest block."""
    n = max(1, int(block * sample_rate))
    m = x.shape[1] // n
    if m == 0:
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    e = np.mean(x[:, : m * n].astype(np.float64).reshape(x.shape[0], m, n) ** 2, axis=(0, 2))
    keep = e >= e.max() * 10 ** (floor_db / 10)
    return float(np.sqrt(e[keep].mean())) if e.max() > 0 else 0.0


def engineer(stem: str, audio: np.ndarray, sample_rate: Hz, rng: np.random.Generator
             ) -> np.ndarray:
    """Process one stem (see module docstring): float32 ``(2, T)`` -> float32 ``(2, T)``."""
    board = _board(stem, rng)
    mean, spread = LEVELS[stem]
    level = float(rng.normal(mean, spread))
    if not np.any(audio):
        return audio
    y = board(audio, float(sample_rate), reset=True).astype(np.float32)
    rms = active_rms(y, sample_rate)
    return (y * np.float32(10 ** (level / 20) / rms)).astype(np.float32) if rms > 0 else y


def render_song(song: Song, sample_rate: Hz, rng: np.random.Generator,
                soundfont: str | Path = DEFAULT_SOUNDFONT) -> dict[str, np.ndarray]:
    """``{stem: float32 (2, frames)}`` for the four stems; their sum is the mixture."""
    frames = int(round(song.seconds * sample_rate))
    stems = {}
    for stem in STEMS:
        raw = render_stem(song.stem_parts(stem), frames, sample_rate, soundfont,
                          vocal=song.vocal if stem == "vocals" else None)
        stems[stem] = engineer(stem, raw, sample_rate, rng)
    peak = float(np.max(np.abs(sum(stems.values()))))
    if peak > PEAK:
        g = np.float32(PEAK / peak)
        stems = {k: (v * g).astype(np.float32) for k, v in stems.items()}
    return stems
