"""StemCache: decoded stems as memory-mappable ``.npy`` files, one per stem source key.

Layout: ``<cache_dir>/audio/<key>.npy`` holding float32 ``(channels, frames)`` in C order, so an
excerpt of every channel is a strided slice of a memmap: no decoding and no per-item file opens
(each memmap is opened once per process and kept). Written once by ``stemforge prepare``
(:func:`stemforge.prepare.prepare`); readers fall back to partial file reads when absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_file


class StemCache:
    """Lazily opened read-only memmaps of prepared stems, keyed by source key."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._maps: dict[str, np.ndarray | None] = {}
        self._pid = os.getpid()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npy"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def get(self, key: str) -> np.ndarray | None:
        """The memmap ``(C, T)`` for ``key``, or None if the stem was not prepared."""
        return self._map(key, self.path(key))

    def _map(self, name: str, path: Path) -> np.ndarray | None:
        """The memmap of ``path`` (opened once per process under ``name``), or None."""
        if os.getpid() != self._pid:  # forked worker: reopen our own maps
            self._maps, self._pid = {}, os.getpid()
        m = self._maps.get(name, False)
        if m is False:
            m = np.load(path, mmap_mode="r") if path.exists() else None
            self._maps[name] = m
        return m

    def put(self, key: str, audio: np.ndarray) -> Path:
        """Store ``(C, T)`` audio as float32 atomically (temp file + rename)."""
        # no fsync: a cache entry lost to a power cut is re-decoded (its key is checked)
        with atomic_file(self.path(key), "wb", fsync=False) as fh:
            np.save(fh, np.ascontiguousarray(audio, dtype=np.float32))
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
    index stores for plain stems). ``vkey = stemforge.augment.variants.variant_key(stem key,
    semitones, tempo)`` folds in the stem's content key and the engine, so a stale variant is
    never found. A variant counts as present only when both files exist; :meth:`put_variant`
    writes the energies first and the audio last, each atomically.
    """

    def energies_path(self, key: str) -> Path:
        return self.folder / f"{key}.energies.npy"

    def has(self, key: str) -> bool:
        return self.path(key).exists() and self.energies_path(key).exists()

    def energies(self, key: str) -> np.ndarray | None:
        """Memmap of the variant's energies ``(n_sub,)``, or None when not prepared."""
        return self._map(key + ".energies", self.energies_path(key))

    def put_variant(self, key: str, audio: np.ndarray, energies: np.ndarray) -> int:
        """Store a variant (energies, then audio); returns the bytes written."""
        with atomic_file(self.energies_path(key), "wb", fsync=False) as fh:
            np.save(fh, np.asarray(energies, dtype=np.float64))
        self._maps.pop(key + ".energies", None)
        p = self.put(key, audio)
        return p.stat().st_size + self.energies_path(key).stat().st_size
