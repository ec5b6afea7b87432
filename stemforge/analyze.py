"""Per-track analysis, run once per changed file when an index is built.

For every stem (and the real mixture, when there is one) it decodes the audio once, checks it
(finite, readable, consistent across the track) and computes what the index stores:
sample rate, channels, frames, BS.1770 K-weighted sub-block energies (saved as ``.npy`` in the
cache's ``analysis/`` folder), integrated loudness, silent fraction, and for tracks with a real
mixture the residual ``mixture - sum(stems)`` in dB relative to the mixture (``-inf`` when the
mixture is exactly the stem sum).

Track consistency policy (documented in docs/datasets.md):
* all stems of a track must share sample rate and channel count (else an error names the files);
* lengths may differ by at most ``LENGTH_TOLERANCE`` frames (codec padding); the track is then
  trimmed to its shortest stem and a note is recorded. Larger differences are an error.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_file
from .audio import io, loudness
from .errors import AudioError
from .layouts.base import SourceRef, TrackEntry
from .stamps import file_digest, source_key

LENGTH_TOLERANCE = 2048  # frames (~46 ms at 44.1 kHz)
#: beside a stem's energies ``<key>.npy``: its zero-state corrections (``loudness.
#: zero_state_corrections``), ``<key>.zs1.npy``; a change of their format renames the file, so
#: caches written before are re-analysed (both files must exist), never misread
CORRECTIONS_SUFFIX = ".zs1.npy"


def corrections_path(energies_path: Path) -> Path:
    """``<key>.zs1.npy`` beside ``<key>.npy``."""
    return energies_path.with_name(energies_path.stem + CORRECTIONS_SUFFIX)


def analysis_done(analysis_dir, key: str) -> bool:
    """True when both analysis files of source ``key`` exist in ``analysis_dir``."""
    d = Path(analysis_dir)
    return (d / f"{key}.npy").exists() and (d / f"{key}{CORRECTIONS_SUFFIX}").exists()


def residual_key(keys: dict[str, str]) -> str:
    """Key of a track's residual measurement: all its stems' and mixture's source keys."""
    return hashlib.sha1("|".join(keys[n] for n in sorted(keys)).encode()).hexdigest()[:24]


@dataclass
class StemFacts:
    key: str
    sample_rate: int
    channels: int
    frames: int
    loudness: float
    silent_fraction: float
    peak: float


def decode_source(ref: SourceRef, decoded_mp4: dict | None = None) -> tuple[np.ndarray, int]:
    """Whole-source audio ``(C, T)`` float32 and its sample rate (multi-file sources summed)."""
    arrays, rates = [], []
    for p in ref.paths:
        if io.is_mp4(p):
            if decoded_mp4 is not None and p in decoded_mp4:
                streams, sr = decoded_mp4[p]
            else:
                streams, sr = io.read_streams(p), io.info(p).sample_rate
                if decoded_mp4 is not None:
                    decoded_mp4[p] = (streams, sr)
            s = ref.stream or 0
            if s >= len(streams):
                raise AudioError(f"{p}: has {len(streams)} audio streams, stream {s} expected")
            arrays.append(streams[s])
        else:
            arrays.append(io.read(p))
            rates.append(io.info(p).sample_rate)
            continue
        rates.append(sr)
    if ref.channel is not None:
        arrays = [_channel(a, ref.channel, p) for p, a in zip(ref.paths, arrays)]
    if len(set(rates)) > 1:
        raise AudioError(f"{ref.path}: summed source files have different sample rates {rates}")
    if len(arrays) == 1:
        return arrays[0], rates[0]
    n = min(a.shape[1] for a in arrays)
    c = max(a.shape[0] for a in arrays)
    total = np.zeros((c, n), np.float32)
    for p, a in zip(ref.paths, arrays):
        if a.shape[0] not in (1, c):
            raise AudioError(f"{p}: {a.shape[0]} channels cannot be summed with {c}-channel files")
        total += a[:, :n]
    return total, rates[0]


def _channel(audio: np.ndarray, channel: int, path: str) -> np.ndarray:
    """One channel of ``(C, T)`` audio as ``(1, T)``; an error names the file if it lacks it."""
    if not 0 <= channel < audio.shape[0]:
        raise AudioError(f"{path}: has {audio.shape[0]} channel(s), channel {channel} expected "
                         "(a channel-split stem needs a multi-channel file)")
    return audio[channel:channel + 1]


def analyse_audio(audio: np.ndarray, sr: int, energies_path: Path) -> tuple[float, float, float]:
    """Save sub-block energies and zero-state corrections (``<key>.npy``, ``<key>.zs1.npy``);
    return (integrated LUFS, silent fraction, peak)."""
    e, corr = loudness.stem_analysis(audio, sr)
    for arr, path in ((corr, corrections_path(energies_path)),
                      (e, energies_path)):  # the energies last: they mark the pair complete
        # a unique hidden temp name per writer (runs on one cache never share one), then a rename
        with atomic_file(path, "wb", fsync=False) as fh:
            np.save(fh, arr.astype(np.float64))
    frames = audio.shape[1]
    lufs = loudness.excerpt_loudness(e, sr, 0, frames)
    active = loudness.active_fraction(e, sr, 0, frames)
    return float(lufs), float(1.0 - active), float(np.abs(audio).max(initial=0.0))


def analyse_track(
    entry: TrackEntry,
    digests: dict[str, tuple[str | None, ...]],
    known: dict[str, StemFacts],
    analysis_dir: str,
    residual_known: dict[str, float | None],
) -> dict:
    """Analyse one track's stems whose key is not in ``known``; return facts for all of them.

    ``digests`` maps stem name (and ``"__mixture__"``) to the sha256 of each of its files
    (``ref.paths`` order), None where unknown: those files are hashed here (read in full), then
    keys are made from the digests (:func:`stemforge.stamps.source_key`). Returns
    ``{"facts": {name: StemFacts}, "digests": {name: tuple}, "residual_db": float|None,
    "residual_key": str, "created": [paths], "notes": [...]}``.
    """
    adir = Path(analysis_dir)
    sources = dict(entry.stems)
    if entry.mixture is not None:
        sources["__mixture__"] = entry.mixture
    hashed: dict[str, str] = {}
    full: dict[str, tuple[str, ...]] = {}
    for name, ref in sources.items():
        ds = []
        for p, d in zip(ref.paths, digests[name]):
            if d is None:
                d = hashed.get(p) or file_digest(p)
                hashed[p] = d
            ds.append(d)
        full[name] = tuple(ds)
    keys = {name: source_key(ref, full[name]) for name, ref in sources.items()}
    created: list[str] = []
    try:
        return _analyse(entry, sources, keys, full, known, adir, residual_known, created)
    except BaseException:
        for p in created:  # a failed track leaves none of its analysis files behind
            Path(p).unlink(missing_ok=True)
        raise


def _analyse(entry, sources, keys, full, known, adir, residual_known, created) -> dict:
    facts: dict[str, StemFacts] = {}
    audio: dict[str, np.ndarray] = {}
    mp4cache: dict = {}
    rkey = residual_key(keys)
    need_residual = entry.mixture is not None and rkey not in residual_known
    for name, ref in sources.items():
        k = keys[name]
        if k in known and analysis_done(adir, k) and not need_residual:
            facts[name] = known[k]
            continue
        a, sr = decode_source(ref, mp4cache)
        if a.shape[1] == 0:
            raise AudioError(f"{ref.path}: holds no samples")
        audio[name] = a
        if k in known and analysis_done(adir, k):
            facts[name] = known[k]
            continue
        path = adir / f"{k}.npy"
        for p in (corrections_path(path), path):
            if not p.exists():
                created.append(str(p))  # before the write: an interrupt right after it cleans too
        try:
            lufs, silent, peak = analyse_audio(a, sr, path)
        except AudioError as e:  # e.g. more channels than BS.1770 weighs: name the file
            raise AudioError(f"{ref.path}: {e}") from e
        facts[name] = StemFacts(k, sr, a.shape[0], a.shape[1], lufs, silent, peak)
    notes = check_consistency(entry, facts)
    residual = residual_known.get(rkey)
    if need_residual:
        n = min(f.frames for f in facts.values())
        stem_sum = sum(audio[s][:, :n].astype(np.float64) for s in entry.stems)
        mix = audio["__mixture__"][:, :n].astype(np.float64)
        num, den = float(((mix - stem_sum) ** 2).sum()), float((mix**2).sum())
        # -inf: the mixture is exactly the stem sum; None: a silent mixture (no reference level)
        residual = (10 * np.log10(num / den) if num > 0 else -math.inf) if den > 0 else None
    return {"facts": facts, "digests": full, "residual_db": residual, "residual_key": rkey,
            "created": created, "notes": notes}


def check_consistency(entry: TrackEntry, facts: dict[str, StemFacts]) -> list[str]:
    """Apply the track consistency policy; return notes (e.g. trimmed lengths)."""
    def src(name):
        ref = entry.mixture if name == "__mixture__" else entry.stems[name]
        return (Path(ref.path).name + (f"[stream {ref.stream}]" if ref.stream is not None else "")
                + (f"[channel {ref.channel}]" if ref.channel is not None else ""))

    rates = {n: f.sample_rate for n, f in facts.items()}
    if len(set(rates.values())) > 1:
        desc = ", ".join(f"{src(n)}={r} Hz" for n, r in rates.items())
        raise AudioError(f"track '{entry.id}': stems have different sample rates ({desc})")
    chans = {n: f.channels for n, f in facts.items()}
    if len(set(chans.values())) > 1:
        desc = ", ".join(f"{src(n)}={c}" for n, c in chans.items())
        raise AudioError(f"track '{entry.id}': stems have different channel counts ({desc})")
    lens = {n: f.frames for n, f in facts.items()}
    lo, hi = min(lens.values()), max(lens.values())
    if hi - lo > LENGTH_TOLERANCE:
        desc = ", ".join(f"{src(n)}={f} frames" for n, f in lens.items())
        raise AudioError(
            f"track '{entry.id}': stem lengths differ by {hi - lo} frames, more than the "
            f"{LENGTH_TOLERANCE}-frame tolerance ({desc})"
        )
    if hi != lo:
        return [f"stem lengths differ by {hi - lo} frames; trimmed to {lo}"]
    return []
