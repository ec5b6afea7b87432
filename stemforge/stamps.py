"""File identity for the index: cheap stamps that notice edits, full digests that name content.

* :func:`file_stamp` — ``size:mtime_ns:ctime_ns:inode:<sha1 of the first and last 64 KiB>``.
  Checked for every file whenever an index is built or loaded (a ``stat`` and two short reads).
  Any write through the filesystem changes ctime, even when the writer restores size and mtime
  (``touch -r``); a file replaced by another (rename, copy + move) has another inode; the head
  and tail bytes catch header edits and appended/truncated audio where ctime is unreliable.
* :func:`file_digest` — sha256 of the whole file. Computed when a file is first indexed or its
  stamp changed, and for every file with ``--verify-content``; recorded in the index next to
  the stamp it belongs to.
* :func:`source_key` — the key of a stem source: its files' digests plus stream and channel.
  Analysis, decoded stems (StemCache) and pitch/tempo variants are stored under it, so a cache
  entry is only ever found for the exact bytes it was made from: a content edit gives a new key
  and nothing made from the old bytes is served again; a metadata-only change (``chmod``,
  ``touch``, a copy) re-hashes the file but finds the same key, so nothing is re-analysed.

What is and is not detected is stated in docs/datasets.md ("When the index notices an edit").
"""
from __future__ import annotations

import errno
import hashlib
import os
import stat

from .errors import AudioError
from .layouts.base import SourceRef

#: bytes read at each end of a file for its stamp
EDGE = 64 * 1024
#: read size while hashing a whole file
CHUNK = 1 << 20


def _fail(path: str, e: OSError) -> AudioError:
    if e.errno == errno.ENOENT:
        return AudioError(f"{path}: file not found")
    if e.errno == errno.ELOOP:
        return AudioError(f"{path}: symbolic link loop (the link points back at itself)")
    if e.errno in (errno.EACCES, errno.EPERM):
        return AudioError(f"{path}: file is not readable (permission denied)")
    return AudioError(f"{path}: cannot read file ({e.strerror or e})")


def _open_regular(path: str):
    """``path`` opened for binary reading; an error unless it is a regular file (a FIFO or
    device would block or never end). O_NONBLOCK: opening a FIFO does not wait for a writer."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AudioError(f"{path}: not a regular file (a folder, pipe or device)")
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def file_stamp(path: str) -> str:
    """``size:mtime_ns:ctime_ns:inode:edges`` of ``path`` (see the module docstring);
    :class:`AudioError` naming the file when it cannot be read."""
    try:
        with _open_regular(path) as fh:
            st = os.fstat(fh.fileno())
            if st.st_size <= 2 * EDGE:
                edges = fh.read()
            else:
                edges = fh.read(EDGE)
                fh.seek(st.st_size - EDGE)
                edges += fh.read(EDGE)
    except OSError as e:
        raise _fail(path, e) from e
    h = hashlib.sha1(edges).hexdigest()[:16]
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{h}"


def file_digest(path: str) -> str:
    """sha256 (hex) of the whole file; :class:`AudioError` naming the file on failure."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        with _open_regular(path) as fh:
            while n := fh.readinto(buf):
                h.update(view[:n])
    except OSError as e:
        raise _fail(path, e) from e
    return h.hexdigest()


def source_key(ref: SourceRef, digests: list[str] | tuple[str, ...]) -> str:
    """Key of one stem source from the digests of ``ref.paths`` (same order), its stream and
    channel: 24 hex digits."""
    if len(digests) != len(ref.paths):
        raise ValueError(f"{len(ref.paths)} files but {len(digests)} digests")
    parts = [f"sha256={d}" for d in digests] + [f"stream={ref.stream}"]
    if ref.channel is not None:
        parts.append(f"channel={ref.channel}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:24]
