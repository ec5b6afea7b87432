"""StemCache: decoded stems as memory-mappable ``.npy`` files, one per stem source key.

Layout: ``<cache_dir>/audio/<key>.npy`` holding float32 ``(channels, frames)`` in C order, so an
excerpt of every channel is a strided slice of a memmap: no decoding and no per-item file opens
(each memmap is opened once per process and kept). Written once by ``stemforge prepare``
(:func:`stemforge.prepare.prepare`); readers fall back to partial file reads when absent.

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

#: every StemCache of this process: a forked child drops their open maps (it reopens its own
#: on first use) instead of each look-up comparing process ids
_LIVE: "weakref.WeakSet[StemCache]" = weakref.WeakSet()


def _forget_after_fork() -> None:
    for c in list(_LIVE):
        c._maps = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)

#: frames per block of a stem's fine peak envelope
PEAK_BLOCK = 64
#: fine blocks per block of the coarse envelope (1024 frames)
PEAK_GROUP = 16
#: a stem's envelope file: ``<key>.peaks64x16.npy`` (the block sizes in the name, so a change
#: of them never reads an old file)
PEAKS_NAME = f"peaks{PEAK_BLOCK}x{PEAK_GROUP}"


def peak_envelope(audio: np.ndarray, block: int = PEAK_BLOCK) -> np.ndarray:
    """Largest ``|x|`` per channel per ``block`` frames of ``audio`` ``(C, T)``: float32
    ``(C, ceil(T / block))``, the last block partial; NaN where a block holds a NaN."""
    C, T = audio.shape
    nb = -(-T // block)
    env = np.zeros((C, nb), np.float32)
    full = T // block
    step = block * max(1, (1 << 20) // block)  # ~1 M frames at a time: bounded temporaries
    for a in range(0, full * block, step):
        b = min(a + step, full * block)
        x = np.abs(np.asarray(audio[:, a:b], dtype=np.float32))
        env[:, a // block:b // block] = x.reshape(C, -1, block).max(axis=2)
    if full < nb:
        env[:, full] = np.abs(np.asarray(audio[:, full * block:], dtype=np.float32)).max(axis=1)
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

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._maps: dict = {}  # name -> memmap view or None; ("peaks", key) -> envelopes
        _LIVE.add(self)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npy"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def get(self, key: str) -> np.ndarray | None:
        """The stem ``(C, T)`` for ``key`` (a read-only view of its memmap), or None if the
        stem was not prepared."""
        return self._map(key)

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
        """Store ``(C, T)`` audio as float32 atomically (temp file + rename), with its peak
        envelope (written first: a stem file present means its envelope is too)."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        # no fsync: a cache entry lost to a power cut is re-decoded (its key is checked)
        if self.WITH_PEAKS:
            self._write_peaks(key, stored_envelopes(audio))
            self._maps.pop(("peaks", key), None)
        try:
            with atomic_file(self.path(key), "wb", fsync=False) as fh:
                np.save(fh, audio)
        except BaseException:
            if self.WITH_PEAKS and not self.path(key).exists():
                self.peaks_path(key).unlink(missing_ok=True)  # no envelope without its stem
            raise
        self._maps.pop(key, None)
        return self.path(key)

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
