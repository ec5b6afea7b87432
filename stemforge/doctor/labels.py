"""Does a stem's content fit its label? Two simple feature rules.

* **vocals must be voiced in the singing range.** A frame (46 ms) is *voiced* when its
  normalised autocorrelation (corrected for the Hann window's own) peaks at ``VOICED_PEAK`` or
  more at a lag of 1-20 ms, and the pitch that peak gives (the shortest lag within 15 % of the
  highest peak, against octave errors) lies in ``PITCH_HZ`` (90-1000 Hz). A stem labelled
  vocals whose active frames are voiced less than ``voiced_fraction`` of the time is flagged.
  Catches: drums, noise, a bass line (pitched below 90 Hz), hum in a vocals slot. Cannot catch: another
  pitched, monophonic instrument (a lead guitar, a synth line, a sax) labelled vocals; rap
  or whispering is voiced less and may be flagged.
* **drums must have percussive onsets.** A frame is a *percussive onset* when, across the
  fingerprint grid (172 Hz-6 kHz), at least ``ONSET_SPREAD`` of the bands that carry energy
  rise by ``ONSET_RISE_DB`` or more over the previous two frames, and it is a local maximum
  of that fraction: a broadband attack. A stem labelled drums with fewer than ``onset_rate``
  onsets per active second is flagged (drums play several per second; melodic parts have
  one broadband attack per note at most). Catches: a sustained or melodic part (pad, bass, vocals)
  in a drums slot. Cannot catch: pitched percussive instruments (piano, plucked strings, mallets)
  labelled drums; a drums stem holding only kick drum (narrowband) may be flagged.

Labels are read from the stem's layout label (MedleyDB instrument names ...) or else its name:
``vocal``/``voice``/``singer``/``vox`` mean vocals, ``drum`` means drums.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from . import frames as fr

VOICED_PEAK = 0.6
MIN_LAG_S, MAX_LAG_S = 0.001, 0.020
PITCH_HZ = (90.0, 1000.0)
ONSET_RISE_DB = 9.0
ONSET_SPREAD = 0.3
VOICING_STRIDE = 2       # every 2nd active frame is tested (25 per second)
ACTIVE_DB = 40.0          # frames within this of the stem's loudest frame are active

VOCAL_WORDS = ("vocal", "voice", "singer", "vox", "sing")
DRUM_WORDS = ("drum",)


def label_class(name: str, label: str | None) -> str | None:
    """``"vocals"``, ``"drums"`` or None from a stem's label (preferred) or name."""
    for text in (label, name):
        if not text:
            continue
        t = text.lower()
        if any(w in t for w in VOCAL_WORDS):
            return "vocals"
        if any(w in t for w in DRUM_WORDS):
            return "drums"
        if label:
            return None  # a label that names something else wins over the stem name
    return None


@dataclass
class LabelFacts:
    """``measure`` (voiced fraction or onsets per active second), active seconds."""

    cls: str
    measure: float
    active_seconds: float


@lru_cache(maxsize=8)
def _window_ac(rate: int) -> tuple[int, int, np.ndarray]:
    """``(lo, hi, wac)``: lag range and the Hann window's normalised autocorrelation over
    lags ``lo..hi`` at ``rate``."""
    p = fr.plan(rate)
    lo, hi = int(MIN_LAG_S * rate), min(p.win - 1, int(np.ceil(MAX_LAG_S * rate)))
    w = p.window.astype(np.float64)
    wac = np.array([np.dot(w[: p.win - k], w[k:]) for k in range(hi + 1)])
    return lo, hi, wac[lo:] / wac[0]


def voiced_fraction(spec: np.ndarray, power: np.ndarray, rate: float, silence_db: float
                    ) -> tuple[float, float]:
    """Fraction of active frames that are voiced, and active seconds, from a stem's short-time
    spectrum ``spec`` (complex ``(F, bins)``, :func:`stemforge.doctor.frames.stft`) and its
    power ``power`` (``(F, >= 1)``, for the frames' energies). The autocorrelation is the
    inverse FFT of the power spectrum (circular over the FFT length; the Hann window keeps the
    wrapped part small at the lags read)."""
    r = int(round(rate))
    p = fr.plan(r)
    if spec.shape[0] == 0:
        return 0.0, 0.0
    lo, hi, wac = _window_ac(r)
    e = power.sum(axis=1, dtype=np.float64)
    thr = max(e.max() * 10 ** (-ACTIVE_DB / 10), p.win * 10 ** (silence_db / 10) * 0.375
              * p.nfft / 2)
    act = np.flatnonzero(e > thr)
    if not len(act):
        return 0.0, 0.0
    seconds = len(act) / fr.FPS
    s = spec[act[::VOICING_STRIDE]]
    ac = scipy.fft.irfft(s.real * s.real + s.imag * s.imag, n=p.nfft, axis=1, workers=1)
    norm = ac[:, lo:hi + 1] / np.maximum(ac[:, :1], 1e-30) / wac
    top_v = norm.max(axis=1)
    local = np.zeros_like(norm, bool)
    local[:, 1:-1] = (norm[:, 1:-1] >= norm[:, :-2]) & (norm[:, 1:-1] >= norm[:, 2:])
    cand = local & (norm >= 0.85 * top_v[:, None])
    first = np.where(cand.any(axis=1), cand.argmax(axis=1), norm.argmax(axis=1))
    pitch = rate / (lo + first)
    voiced = (top_v >= VOICED_PEAK) & (pitch >= PITCH_HZ[0]) & (pitch <= PITCH_HZ[1])
    return float(voiced.mean()), float(seconds)


def onset_rate(grid: np.ndarray) -> tuple[float, float]:
    """Percussive onsets per active second, and active seconds, of a grid power spectrogram
    ``(F, G)``."""
    F = grid.shape[0]
    if F < 3:
        return 0.0, 0.0
    L = 10 * np.log10(grid + 1e-20)
    frame_db = 10 * np.log10(grid.sum(axis=1) + 1e-20)
    active = frame_db > frame_db.max() - ACTIVE_DB
    carry = L > (L.max(axis=1, keepdims=True) - 60.0)
    prev = np.maximum(L[1:-1], L[:-2])
    rise = (L[2:] - prev >= ONSET_RISE_DB) & carry[2:]
    spread = np.zeros(F)
    spread[2:] = rise.sum(axis=1) / np.maximum(carry[2:].sum(axis=1), 1)
    is_peak = np.zeros(F, bool)
    is_peak[1:-1] = (spread[1:-1] >= spread[:-2]) & (spread[1:-1] > spread[2:])
    onsets = is_peak & (spread >= ONSET_SPREAD) & active
    secs = float(active.sum() / fr.FPS)
    return (float(onsets.sum()) / secs if secs > 0 else 0.0), secs
