"""Scores -> arranged songs: music21's bundled corpus turned into four-stem note lists.

A :class:`Song` is plain data (seconds, MIDI pitches, velocities, GM programs): what the renderer
(:mod:`.render`) plays. :func:`arrange` makes one from a parsed score and an ``rng``:

* the score's parts are sorted by mean pitch; the highest note of the top part is the melody
  (``vocals``), the lowest note of the bottom part the bass line (``bass``, moved by octaves into
  the bass register), every other note goes to ``other`` (one line per part, each with its own
  program);
* an instrument program per part and song, drawn from General MIDI classes as Slakh does (bass
  programs for the bass, voice/choir programs for the vocals, the other melodic classes for
  ``other``), a drum kit per song;
* a tempo set from the melody's note values (its median note lasts 0.25-0.5 s), an excerpt of
  the drawn length starting on a bar line, an arrangement (vocals and drums may sit out an intro
  and a break; an instrument takes the melody in half of the breaks);
* humanisation: per note timing (normal, 4-14 ms sd per part) and velocity (a part level, a slow
  phrase curve, downbeat accents, jitter), legato per part;
* a programmatic GM drum part on the score's bars: kick/snare/hi-hat or ride patterns for simple
  and compound meters, ghost notes, crashes on phrase starts, tom/snare fills ending phrases;
* vocal expression for the renderer: vibrato (rate, depth, onset delay) and swell per song.

The Bach chorales are reserved as an independent held-out check: :func:`candidate_scores`
never offers a file of music21's ``bach`` composer folder (nor any folder whose name contains
``bach``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import StemforgeError
from ...types import Seconds

#: music21 corpus folders with multi-part scores (monophonic folk collections are left out:
#: they have no bass or inner parts to arrange). Any folder containing "bach" is excluded.
COMPOSERS = ("palestrina", "monteverdi", "trecento", "beethoven", "mozart", "haydn", "josquin",
             "schumann_robert", "schumann_clara", "schubert", "verdi", "weber", "handel",
             "corelli", "ciconia", "luca", "lusitano", "chopin", "joplin", "beach", "schoenberg",
             "webern", "johnson_j_r", "liliuokalani")
EXCLUDED = "bach"
SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")

VOCAL_PROGRAMS = (52, 53, 54, 85)           # Choir Aahs, Voice Oohs, Synth Voice, Voice Lead
VOCAL_WEIGHTS = (0.35, 0.35, 0.15, 0.15)
BASS_PROGRAMS = tuple(range(32, 40))        # GM bass class (Slakh's "Bass")
#: GM melodic programs for "other": everything but bass, voices, percussive and sound effects
OTHER_PROGRAMS = tuple(p for p in range(0, 112)
                       if p not in BASS_PROGRAMS and p not in (52, 53, 54, 85, 91))
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)      # bank 128: Standard, Room, Power, Electronic,
#                                             TR-808, Jazz, Brush
KICK, SNARE, SIDESTICK, CLOSED_HAT = 36, 38, 37, 42         # GM percussion keys
PEDAL_HAT, OPEN_HAT, RIDE, CRASH = 44, 46, 51, 49
TOMS = (50, 48, 47, 45, 43, 41)             # high to low
MAX_OTHER_LINES = 6


@dataclass
class Note:
    """One note: ``start``/``end`` in seconds from the song start, MIDI ``pitch``, ``velocity``."""

    start: Seconds
    end: Seconds
    pitch: int
    velocity: int


@dataclass
class Part:
    """One MIDI channel's worth of notes for one stem. ``bank`` 128 = drum kit."""

    stem: str
    program: int
    notes: list[Note]
    pan: int = 64
    bank: int = 0
    name: str = ""


@dataclass
class Song:
    """A song ready to render: ``parts`` per stem, ``seconds`` long (the last note's release
    and the reverb tail included), ``vocal`` expression parameters, provenance in ``meta``."""

    name: str
    seconds: Seconds
    parts: list[Part]
    vocal: dict
    meta: dict = field(default_factory=dict)

    def stem_parts(self, stem: str) -> list[Part]:
        return [p for p in self.parts if p.stem == stem]


@dataclass
class Bar:
    """A bar of the score: ``offset``/``length``/``beat`` in quarter notes, ``beats`` per bar,
    ``compound`` for 6/8-like meters (beats of three eighths)."""

    offset: float
    length: float
    beats: int
    beat: float
    compound: bool


# ---------------------------------------------------------------------- candidate scores
def corpus_root() -> Path:
    """music21's bundled corpus folder (needs ``pip install music21``)."""
    try:
        from music21 import common
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise StemforgeError("experiment corpus needs music21: pip install 'stemforge[experiment]'"
                             ) from e
    return Path(common.getCorpusFilePath())


def candidate_scores(composers=COMPOSERS) -> list[str]:
    """Sorted corpus-relative paths (``composer/.../file``) of every score of ``composers``,
    never one under a folder whose name contains ``bach``."""
    root = corpus_root()
    out = []
    for c in composers:
        if EXCLUDED in c.lower():
            raise StemforgeError(f"composer {c!r}: the Bach chorales are reserved as a held-out "
                                 "check and never used in the corpus")
        d = root / c
        if not d.is_dir():
            raise StemforgeError(f"composer {c!r}: no such folder in music21's corpus ({root})")
        for p in d.rglob("*"):
            rel = p.relative_to(root)
            if p.is_file() and p.suffix.lower() in SUFFIXES \
                    and not any(EXCLUDED in part.lower() for part in rel.parts):
                out.append(rel.as_posix())
    return sorted(out)


def candidate_order(paths: list[str], rng: np.random.Generator) -> list[str]:
    """``paths`` in a random order that balances composers (each composer's files weigh
    1/count: weighted sampling without replacement, Efraimidis-Spirakis keys)."""
    composer = [p.split("/", 1)[0] for p in paths]
    counts = {c: composer.count(c) for c in set(composer)}
    w = np.array([1.0 / counts[c] for c in composer])
    keys = np.log(rng.random(len(paths))) / w
    return [paths[i] for i in np.argsort(-keys, kind="stable")]


def parse_score(rel_path: str):
    """The music21 score of a corpus path (the first score of an opus)."""
    from music21 import converter, stream

    s = converter.parse(str(corpus_root() / rel_path))
    if isinstance(s, stream.Opus):
        s = s.scores[0] if len(s.scores) else None
    return s


# ---------------------------------------------------------------------- score reading
def _lines(score) -> list[list[tuple[float, float, tuple[int, ...]]]]:
    """Per part with notes: ``(onset, duration, pitches)`` in quarter notes, ties merged."""
    from music21 import harmony

    parts = list(score.parts) if len(getattr(score, "parts", [])) else [score]
    lines = []
    for p in parts:
        evs = []
        for n in p.stripTies().flatten().notes:
            if isinstance(n, harmony.ChordSymbol) or float(n.quarterLength) <= 0:
                continue
            pitches = tuple(sorted(int(x.midi) for x in n.pitches))
            if pitches:
                evs.append((float(n.offset), float(n.quarterLength), pitches))
        if evs:
            lines.append(sorted(evs))
    return lines


def _bars(score, end: float) -> list[Bar]:
    """Bars of the score's first part (time signatures followed), up to ``end`` quarter notes."""
    parts = list(score.parts) if len(getattr(score, "parts", [])) else [score]
    bars = []
    ts = None
    for m in parts[0].getElementsByClass("Measure"):
        if m.timeSignature is not None:
            ts = m.timeSignature
        bars.append((float(m.offset), ts))
    if not bars:
        bars = [(0.0, None)]
    out = []
    for i, (off, ts) in enumerate(bars):
        num, den = (ts.numerator, ts.denominator) if ts is not None else (4, 4)
        full = 4.0 * num / den
        nxt = bars[i + 1][0] if i + 1 < len(bars) else None
        length = nxt - off if nxt is not None and nxt > off else full
        compound = den == 8 and num % 3 == 0 and num > 3
        beat = 1.5 if compound else 4.0 / den
        beats = max(1, int(round(full / beat)))
        out.append(Bar(off, length, beats, beat, compound))
    last = out[-1]
    while last.offset + last.length < end:  # a score without measures: continue its last bar
        last = Bar(last.offset + last.length, last.length, last.beats, last.beat, last.compound)
        out.append(last)
    return out


def _median_shift(pitches, lo: int, hi: int) -> int:
    """Octave shift (a multiple of 12) moving the median of ``pitches`` into ``[lo, hi]``."""
    m = float(np.median(pitches))
    k = 0
    while m + k > hi:
        k -= 12
    while m + k < lo:
        k += 12
    return k


def _monophonic(evs):
    """Cut each note where the next one starts (melody and bass are single lines)."""
    out = []
    for i, (on, dur, p) in enumerate(evs):
        if out and on <= out[-1][0]:
            continue  # two notes at one onset: the first (chosen) one stays
        if i + 1 < len(evs) and evs[i + 1][0] > on:
            dur = min(dur, evs[i + 1][0] - on)
        out.append((on, dur, p))
    return out


# ---------------------------------------------------------------------- arrangement
def arrange(score, rng: np.random.Generator, seconds: tuple[Seconds, Seconds], name: str,
            source: str) -> Song | None:
    """A :class:`Song` from a parsed ``score`` (see module docstring), or None when the score
    does not fit (fewer than two parts, too few notes, shorter than ``seconds[0]``)."""
    lines = _lines(score)
    if len(lines) < 2:
        return None
    lines.sort(key=lambda ev: -np.mean([np.mean(p) for _, _, p in ev]))
    top, bottom = lines[0], lines[-1]
    melody = _monophonic([(on, d, p[-1]) for on, d, p in top])
    bass = _monophonic([(on, d, p[0]) for on, d, p in bottom])
    others = [[(on, d, p[:-1]) for on, d, p in top if len(p) > 1]]
    others += [list(ev) for ev in lines[1:-1]]
    others.append([(on, d, p[1:]) for on, d, p in bottom if len(p) > 1])
    others = [ev for ev in others if len(ev) >= 4][:MAX_OTHER_LINES]
    if len(melody) < 16 or len(bass) < 8 or not others:
        return None
    end = max(on + d for ev in lines for on, d, _ in ev)

    # tempo from the melody's note values; excerpt of the drawn length from a bar line
    med = float(np.median([d for _, d, _ in melody]))
    spq = float(rng.uniform(0.25, 0.5)) / max(med, 1e-3)           # seconds per quarter note
    spq = float(np.clip(spq, 60 / 200, 60 / 50))
    target = float(rng.uniform(*seconds))
    if end * spq < seconds[0]:
        return None
    bars = [b for b in _bars(score, end) if b.offset < end]
    fits = [i for i, b in enumerate(bars) if b.offset + target / spq <= end]
    first = int(rng.choice(fits)) if fits else 0
    w0 = bars[first].offset
    w1 = min(end, w0 + target / spq)
    bars = [b for b in bars[first:] if b.offset < w1 - 1e-6]

    def window(evs):
        return [(on - w0, min(on + d, w1) - on, p) for on, d, p in evs if w0 <= on < w1]

    melody, bass = window(melody), window(bass)
    others = [w for w in (window(ev) for ev in others) if w]
    bars = [Bar(b.offset - w0, b.length, b.beats, b.beat, b.compound) for b in bars]
    if len(melody) < 8 or len(bass) < 4 or not others:
        return None

    # arrangement: vocal / drum intro and break (bar index ranges that sit out)
    nb = len(bars)
    vocal_out, drum_out = set(), set()
    if rng.random() < 0.5 and nb >= 8:
        vocal_out |= set(range(int(rng.integers(1, min(4, nb // 4) + 1))))
    brk = None
    if rng.random() < 0.35 and nb >= 16:
        length = int(rng.integers(2, min(8, nb // 4) + 1))
        s = int(rng.integers(nb // 3, nb - length - 1))
        brk = set(range(s, s + length))
        vocal_out |= brk
    if rng.random() < 0.5 and nb >= 8:
        drum_out |= set(range(int(rng.integers(1, min(4, nb // 4) + 1))))
    if rng.random() < 0.25 and nb >= 16:
        length = int(rng.integers(2, 5))
        s = int(rng.integers(nb // 3, nb - length - 1))
        drum_out |= set(range(s, s + length))

    def bar_of(q: float) -> int:
        for i in range(len(bars) - 1, -1, -1):
            if q >= bars[i].offset - 1e-6:
                return i
        return 0

    sung = [ev for ev in melody if bar_of(ev[0]) not in vocal_out]
    lead = [ev for ev in melody if brk and bar_of(ev[0]) in brk] if rng.random() < 0.5 else []

    parts: list[Part] = []
    downbeats = [b.offset for b in bars]
    human = _Humaniser(rng, spq, downbeats)
    mel_shift = _median_shift([p for _, _, p in melody], 58, 72)
    vocal_prog = int(rng.choice(VOCAL_PROGRAMS, p=VOCAL_WEIGHTS))
    sung_notes = human.line([(o, d, (p + mel_shift,)) for o, d, p in sung], legato=(0.92, 1.0))
    parts.append(Part("vocals", vocal_prog, sung_notes,
                      pan=int(64 + rng.integers(-6, 7)), name="melody"))
    bass_shift = _median_shift([p for _, _, p in bass], 33, 45)
    parts.append(Part("bass", int(rng.choice(BASS_PROGRAMS)),
                      human.line([(o, d, (p + bass_shift,)) for o, d, p in bass],
                                 legato=(0.8, 0.97)),
                      pan=int(64 + rng.integers(-5, 6)), name="bass"))
    pans = np.linspace(-40, 40, len(others) + bool(lead))
    rng.shuffle(pans)
    for k, ev in enumerate(others):
        pitches = [q for _, _, p in ev for q in p]
        shift = _median_shift(pitches, 48, 84)
        parts.append(Part("other", int(rng.choice(OTHER_PROGRAMS)),
                          human.line([(o, d, tuple(q + shift for q in p)) for o, d, p in ev],
                                     legato=(0.75, 1.0)),
                          pan=int(64 + pans[k]), name=f"part {k + 1}"))
    if lead:
        parts.append(Part("other", int(rng.choice(OTHER_PROGRAMS)),
                          human.line([(o, d, (p + mel_shift,)) for o, d, p in lead],
                                     legato=(0.85, 1.0)),
                          pan=int(64 + pans[-1]), name="lead in the break"))
    drum_notes = _drums(rng, bars, drum_out, spq)
    parts.append(Part("drums", int(rng.choice(DRUM_KITS)), drum_notes, pan=64, bank=128,
                      name="drums"))
    vocal = {"vibrato_rate": float(rng.uniform(4.8, 6.2)),
             "vibrato_cents": float(rng.uniform(15.0, 45.0)),
             "vibrato_delay": float(rng.uniform(0.12, 0.35)),
             "swell": float(rng.uniform(0.5, 0.8)),    # expression at the onset (of 1)
             "scoop_cents": float(rng.uniform(0.0, 40.0))}
    last = max(n.end for p in parts for n in p.notes)
    meta = {"source": source, "tempo_bpm": round(60.0 / spq, 2),
            "window_quarters": [round(w0, 3), round(w1, 3)], "bars": nb,
            "programs": {p.name: (p.bank, p.program) for p in parts},
            "vocals_out_bars": sorted(vocal_out), "drums_out_bars": sorted(drum_out)}
    return Song(name, last + 2.0, parts, vocal, meta)


class _Humaniser:
    """Quarter-note events -> humanised :class:`Note` lists (see module docstring)."""

    def __init__(self, rng, spq: float, downbeats: list[float]):
        self.rng, self.spq = rng, spq
        self.downbeats = np.asarray(downbeats)

    def line(self, evs, legato: tuple[float, float]) -> list[Note]:
        rng = self.rng
        sd = float(rng.uniform(0.004, 0.014))
        base = float(rng.uniform(62, 98))
        leg = float(rng.uniform(*legato))
        # slow phrase curve: two sines of random period (8-30 s) and phase, +-10 velocity
        per = rng.uniform(8, 30, 2)
        ph = rng.uniform(0, 2 * np.pi, 2)
        notes = []
        for on, dur, pitches in evs:
            t = max(0.0, on * self.spq + float(rng.normal(0, sd)))
            length = max(0.05, dur * self.spq * leg)
            curve = 5 * (np.sin(2 * np.pi * t / per[0] + ph[0])
                         + np.sin(2 * np.pi * t / per[1] + ph[1]))
            accent = 8 if np.any(np.abs(self.downbeats - on) < 1e-6) else 0
            for p in pitches:
                if 0 <= p <= 127:
                    v = int(np.clip(round(base + curve + accent + rng.normal(0, 5)), 20, 127))
                    notes.append(Note(t, t + length, int(p), v))
        return notes


def _drums(rng, bars: list[Bar], out: set[int], spq: float) -> list[Note]:
    """A GM drum part on ``bars`` (quarter-note offsets), silent in the bars of ``out``."""
    style = str(rng.choice(["hats8", "hats16", "ride", "halftime", "sparse"],
                           p=[0.35, 0.15, 0.2, 0.15, 0.15]))
    sd = float(rng.uniform(0.002, 0.008))
    phrase = int(rng.choice([4, 8]))
    fill_p = float(rng.uniform(0.3, 0.8))
    hits: list[tuple[float, int, float]] = []   # (quarter offset, note, velocity)

    def hit(q, note, vel, sd_v=6.0):
        hits.append((q, note, vel + rng.normal(0, sd_v)))

    for i, b in enumerate(bars):
        if i in out:
            continue
        n_sub = 3 if b.compound else (4 if style == "hats16" else 2)
        sub = b.beat / n_sub
        fill = (i + 1) % phrase == 0 and rng.random() < fill_p and i + 1 < len(bars)
        body_beats = b.beats - 1 if fill else b.beats
        if i == 0 or i % phrase == 0 or (i - 1) in out:
            hit(b.offset, CRASH, 100)
        for k in range(body_beats):
            q = b.offset + k * b.beat
            if q >= b.offset + b.length - 1e-6:
                break
            # kick on 1 (and 3 of 4), sometimes pushed; snare on the backbeat
            if k == 0 or (b.beats >= 4 and k == b.beats // 2 and style != "halftime"):
                hit(q, KICK, 102)
            elif rng.random() < 0.12:
                hit(q + sub * (n_sub - 1), KICK, 88)
            backbeat = (k % 2 == 1) if b.beats % 2 == 0 else (k > 0)
            if style == "halftime":
                backbeat = k == b.beats // 2 and b.beats >= 2
            if style == "sparse":
                if backbeat:
                    hit(q, SIDESTICK, 80)
            elif backbeat:
                hit(q, SNARE, 96)
            elif rng.random() < 0.08:
                hit(q + sub, SNARE, 40, 4)  # ghost note
            cym = RIDE if style == "ride" else (PEDAL_HAT if style == "sparse" else CLOSED_HAT)
            for j in range(n_sub):
                if style == "sparse" and j:
                    continue
                vel = 78 if j == 0 else 58
                hit(q + j * sub, cym, vel, 5)
            if style in ("hats8", "hats16") and k == body_beats - 1 and rng.random() < 0.2:
                hit(q + (n_sub - 1) * sub, OPEN_HAT, 70)
        if fill:
            q0 = b.offset + body_beats * b.beat
            steps = int(round(b.beat / (b.beat / 4)))
            toms = list(TOMS) if rng.random() < 0.6 else [SNARE] * len(TOMS)
            for j in range(steps):
                note = toms[min(len(toms) - 1, j * len(toms) // steps)]
                hit(q0 + j * b.beat / 4, note, 85 + 3 * j)
            hit(q0, KICK, 95)
    notes = []
    for q, note, vel in sorted(hits):
        t = max(0.0, q * spq + float(rng.normal(0, sd)))
        notes.append(Note(t, t + 0.2, int(note), int(np.clip(round(vel), 15, 127))))
    return notes
