"""StemCache: decoded stems as memory-mappable ``.npy`` files, one per stem source key.

Layout: ``<cache_dir>/audio/<key>.npy`` holding ``(channels, frames)`` in C order, so an
excerpt of every channel is a strided slice of a memmap: no decoding and no per-item file opens
(each memmap is opened once per process and kept). Written once by ``stemforge prepare``
(:func:`stemforge.prepare.prepare`); readers fall back to partial file reads when absent.

Sample format (cache format 2): int16 when every decoded sample is ``k / 32768`` for an integer
``k`` in int16's range and no sample is ``-0.0`` (what a 16-bit PCM source decodes to), so the
entry is the source's PCM size and ``fl32(k) * 2**-15`` (:data:`PCM16_UNIT`, exact) gives back
the decoded float32 bytes; float32 otherwise (float or 24-bit WAV, decoded lossy codecs).
Readers take either: :func:`as_float32` converts a stored view, the mixing kernels read int16
rows and apply the unit themselves. Format 1 caches (float32 only) are read as they are;
``stemforge prepare`` rewrites their entries that fit int16 (:meth:`StemCache.compact`) and
then records the format in ``<folder>/FORMAT``.

Beside each stem, ``<key>.peaks64x16.npy`` holds its peak envelopes: float32
``(C, ceil(T / 64))`` and ``(C, ceil(T / 1024))`` side by side along the block axis, the largest
``|x|`` of each channel over each block of 64 (1024) frames, NaN where the block holds a NaN
(one file, one memory map per stem). ``render`` bounds a mixture's peak with them, so it
knows the clip scale before its single pass (:mod:`stemforge.mixing.render`). Written by
:meth:`StemCache.put`; for stems prepared before they existed, computed on first use and
stored then (kept in memory only when the folder is read-only).
"""
from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from ..errors import IndexError_

#: every StemCache of this process: a forked child drops their open maps (it reopens its own
#: on first use) instead of each look-up comparing process ids
_LIVE: "weakref.WeakSet[StemCache]" = weakref.WeakSet()


def _forget_after_fork() -> None:
    for c in list(_LIVE):
        c._maps = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)

#: value of one int16 step: an int16 entry ``k`` stands for the float32 ``fl32(k) * PCM16_UNIT``
#: (exact: a power of two), which is what soundfile decodes a 16-bit PCM sample ``k`` to
PCM16_UNIT = np.float32(2.0 ** -15)
#: the cache format this code writes (1: float32 only; 2: int16 where lossless)
FORMAT = 2
#: the file in a StemCache folder that records its format
FORMAT_FILE = "FORMAT"


def as_float32(audio: np.ndarray) -> np.ndarray:
    """A stored entry (or a slice of one), int16 or float32 ``(C, T)``, as float32 ``(C, T)``:
    int16 ``k`` becomes ``fl32(k) * PCM16_UNIT``; a float32 array is returned as it is."""
    if audio.dtype == np.int16:
        return np.multiply(audio, PCM16_UNIT, dtype=np.float32)
    return np.asarray(audio, dtype=np.float32)


def pcm16(audio: np.ndarray) -> np.ndarray | None:
    """``audio`` float32 ``(C, T)`` as int16 ``(C, T)`` when that is lossless (every sample
    ``k * 2**-15`` with integer ``k`` in ``[-32768, 32767]``, no ``-0.0``, no NaN), else None."""
    audio = np.asarray(audio, dtype=np.float32)
    out = np.empty(audio.shape, np.int16)
    T = audio.shape[-1]
    step = max(1, (1 << 20) // max(1, audio.shape[0]))  # bounded temporaries
    for a in range(0, T, step):
        x = audio[..., a:a + step]
        q = x * np.float32(32768.0)  # exact (a power of two; no overflow for finite float32)
        r = np.rint(q)
        if not (np.array_equal(q, r) and (r.size == 0 or (r.min() >= -32768 and r.max() <= 32767))):
            return None  # not on the grid, NaN, or out of range
        if np.any(np.signbit(x) & (x == 0)):
            return None  # -0.0 would come back as +0.0
        out[..., a:a + step] = r
    return out


#: frames per block of a stem's fine peak envelope
PEAK_BLOCK = 64
#: fine blocks per block of the coarse envelope (1024 frames)
PEAK_GROUP = 16
#: a stem's envelope file: ``<key>.peaks64x16.npy`` (the block sizes in the name, so a change
#: of them never reads an old file)
PEAKS_NAME = f"peaks{PEAK_BLOCK}x{PEAK_GROUP}"


def peak_envelope(audio: np.ndarray, block: int = PEAK_BLOCK) -> np.ndarray:
    """Largest ``|x|`` per channel per ``block`` frames of ``audio`` ``(C, T)`` (float32, or a
    stored int16 entry: its float32 values): float32 ``(C, ceil(T / block))``, the last block
    partial; NaN where a block holds a NaN."""
    C, T = audio.shape
    nb = -(-T // block)
    env = np.zeros((C, nb), np.float32)
    full = T // block
    step = block * max(1, (1 << 20) // block)  # ~1 M frames at a time: bounded temporaries
    for a in range(0, full * block, step):
        b = min(a + step, full * block)
        x = np.abs(as_float32(audio[:, a:b]))
        env[:, a // block:b // block] = x.reshape(C, -1, block).max(axis=2)
    if full < nb:
        env[:, full] = np.abs(as_float32(audio[:, full * block:])).max(axis=1)
    return env


def coarse_envelope(env: np.ndarray, group: int = PEAK_GROUP) -> np.ndarray:
    """:func:`peak_envelope` at ``group`` times the block, from the fine one ``(C, n)``:
    float32 ``(C, ceil(n / group))`` (NaN kept)."""
    C, n = env.shape
    pad = -n % group
    if pad:
        env = np.concatenate([env, np.zeros((C, pad), np.float32)], axis=1)
    return env.reshape(C, -1, group).max(axis=2)


def stored_envelopes(audio: np.ndarray) -> np.ndarray:
    """What ``<key>.peaks64x16.npy`` holds for ``audio`` ``(C, T)``: the fine envelope, then
    the coarse one, along the block axis (float32 ``(C, n + ceil(n / PEAK_GROUP))``)."""
    fine = peak_envelope(audio)
    return np.concatenate([fine, coarse_envelope(fine)], axis=1)


class StemCache:
    """Lazily opened read-only memmaps of prepared stems, keyed by source key."""

    #: :meth:`put` also writes the peak envelope
    WITH_PEAKS = True
    #: :meth:`put` stores int16 where that is lossless
    COMPACT = True

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._maps: dict = {}  # name -> memmap view or None; ("peaks", key) -> envelopes
        _LIVE.add(self)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npy"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def get(self, key: str) -> np.ndarray | None:
        """The stem ``(C, T)`` for ``key`` as stored (a read-only view of its memmap: int16 or
        float32, see the module docstring; :func:`as_float32` gives its float32 values), or
        None if the stem was not prepared."""
        return self._map(key)

    def read(self, key: str, start: int = 0, frames: int | None = None) -> np.ndarray | None:
        """Frames ``[start, start + frames)`` (to the end when ``frames`` is None) of the stem
        as a new float32 ``(C, frames)`` array, or None if the stem was not prepared."""
        m = self._map(key)
        if m is None:
            return None
        part = m[:, start:None if frames is None else start + frames]
        return part.astype(np.float32) if part.dtype == np.float32 else as_float32(part)

    def _map(self, name: str) -> np.ndarray | None:
        """``<folder>/<name>.npy`` memory-mapped, as a read-only plain-ndarray view (no memmap
        subclass hooks on every slice), opened once per process; None when absent."""
        m = self._maps.get(name, False)
        if m is False:  # the path is built only here: look-ups are a dict hit per call
            path = self.folder / f"{name}.npy"
            m = np.load(path, mmap_mode="r").view(np.ndarray) if path.exists() else None
            self._maps[name] = m
        return m

    def peaks_path(self, key: str) -> Path:
        return self.folder / f"{key}.{PEAKS_NAME}.npy"

    def peaks(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The stem's peak envelopes ``(fine, coarse)``: float32 ``(C, ceil(T / 64))`` and
        ``(C, ceil(T / 1024))``, read-only views of one memmap; None when the stem was not
        prepared. Computed and stored on first use if missing (or not the stem's size)."""
        got = self._maps.get(("peaks", key))
        if got is not None:
            return got
        audio = self.get(key)
        if audio is None:
            return None
        nf = -(-audio.shape[1] // PEAK_BLOCK)
        path = self.peaks_path(key)
        # mapped here, not through _map: the views below are all this process keeps of it
        both = np.load(path, mmap_mode="r").view(np.ndarray) if path.exists() else None
        if both is None or both.shape != (audio.shape[0], nf + -(-nf // PEAK_GROUP)):
            both = stored_envelopes(audio)
            try:
                self._write_peaks(key, both)
            except OSError:  # read-only cache: keep them for this process only
                pass
            both.flags.writeable = False
        got = self._maps[("peaks", key)] = (both[:, :nf], both[:, nf:])
        return got

    def _write_peaks(self, key: str, both: np.ndarray) -> None:
        """One file per stem: the fine envelope, then the coarse one, along the block axis."""
        with atomic_file(self.peaks_path(key), "wb", fsync=False) as fh:
            np.save(fh, both)

    def put(self, key: str, audio: np.ndarray) -> Path:
        """Store ``(C, T)`` audio atomically (temp file + rename): int16 when that is lossless
        (:func:`pcm16`), else float32; with its peak envelope (written first: a stem file
        present means its envelope is too)."""
        audio = np.ascontiguousarray(as_float32(audio))
        stored = (pcm16(audio) if self.COMPACT else None)
        # no fsync: a cache entry lost to a power cut is re-decoded (its key is checked)
        if self.WITH_PEAKS:
            self._write_peaks(key, stored_envelopes(audio))
            self._maps.pop(("peaks", key), None)
        try:
            with atomic_file(self.path(key), "wb", fsync=False) as fh:
                np.save(fh, audio if stored is None else stored)
        except BaseException:
            if self.WITH_PEAKS and not self.path(key).exists():
                self.peaks_path(key).unlink(missing_ok=True)  # no envelope without its stem
            raise
        self._maps.pop(key, None)
        return self.path(key)

    def compact(self, key: str) -> int:
        """Rewrite a float32 entry (cache format 1) as int16 when that is lossless; returns the
        bytes saved (0 when the entry is absent, already int16 or not 16-bit audio). Its
        envelope is unchanged (same float32 values)."""
        path = self.path(key)
        if not path.exists():
            return 0
        m = np.load(path, mmap_mode="r")
        if m.dtype != np.float32:
            return 0
        stored = pcm16(m)
        del m
        if stored is None:
            return 0
        before = path.stat().st_size
        with atomic_file(path, "wb", fsync=False) as fh:
            np.save(fh, stored)
        self._maps.pop(key, None)
        return before - path.stat().st_size

    def format(self) -> int:
        """The folder's recorded cache format (1 when unrecorded: written before formats)."""
        path = self.folder / FORMAT_FILE
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return 1
        except OSError as e:
            raise IndexError_(f"{path}: cannot read the stem cache's format ({e.strerror or e})") \
                from e
        if not text.isdigit():
            raise IndexError_(f"{path}: not a stem cache format number ({text[:20]!r}); delete "
                             "the file to have the next `stemforge prepare` rewrite it")
        return int(text)

    def mark_format(self) -> None:
        """Record that every entry is in :data:`FORMAT` (after :meth:`compact` of the rest)."""
        from ..atomic import write_text_atomic

        write_text_atomic(self.folder / FORMAT_FILE, f"{FORMAT}\n")

    def forget(self) -> None:
        """Drop open memmaps (e.g. before pickling to another process)."""
        self._maps = {}

    def __getstate__(self):
        return {"folder": self.folder}

    def __setstate__(self, state):
        self.__init__(state["folder"])


class VariantCache(StemCache):
    """Pre-computed pitch/tempo variants of prepared stems (``stemforge prepare --variants``).

    Layout: ``<cache_dir>/variants/<vkey>.npy`` float32 ``(C, round(T / tempo))`` and
    ``<vkey>.energies.npy`` float64 K-weighted 10 ms sub-block energies of that audio (as the
    index stores for plain stems). ``vkey = stemforge.augment.grid.variant_key(stem key,
    semitones, tempo)`` folds in the stem's content key and the engine, so a stale variant is
    never found. A variant counts as present only when both files exist; :meth:`put_variant`
    writes the energies first and the audio last, each atomically. No peak envelopes: the
    renderer bounds the peak of plain stems only.
    """

    WITH_PEAKS = False
    COMPACT = False  # Rubber Band output is float: always float32

    def energies_path(self, key: str) -> Path:
        return self.folder / f"{key}.energies.npy"

    def has(self, key: str) -> bool:
        return self.path(key).exists() and self.energies_path(key).exists()

    def energies(self, key: str) -> np.ndarray | None:
        """Memmap of the variant's energies ``(n_sub,)``, or None when not prepared."""
        return self._map(key + ".energies")

    def put_variant(self, key: str, audio: np.ndarray, energies: np.ndarray) -> int:
        """Store a variant (energies, then audio); returns the bytes written."""
        with atomic_file(self.energies_path(key), "wb", fsync=False) as fh:
            np.save(fh, np.asarray(energies, dtype=np.float64))
        self._maps.pop(key + ".energies", None)
        p = self.put(key, audio)
        return p.stat().st_size + self.energies_path(key).stat().st_size
