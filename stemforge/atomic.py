"""Atomic file writes, for every writer in stemforge (audio, caches, index, specs, job outputs,
results): temp file in the same folder, optional fsync, permissions from the umask, rename. A
crash never leaves a partial file under a final name.

Temp files are hidden (``.<name>.<random>.part``) so a listing of final names never shows them;
:func:`stemforge.jobs.layout.clean_temp` removes leftovers of a killed run in a generated set.
"""
from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def _read_umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


# read once at import: os.umask can only be read by setting it, which races with other threads
_UMASK = _read_umask()


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", fsync: bool = True) -> Iterator[IO]:
    """Open a hidden temp file beside ``path`` for writing (``mode`` "wb" or "w"); when the block
    ends without an exception, flush it (and fsync unless ``fsync=False``), give it the
    permissions a new file gets under the umask, and rename it to ``path``. On any exception the
    temp file is removed and nothing changes under ``path``. The folder is created if missing.

    ``fsync=False`` is still atomic if the *process* dies (the page cache survives it), but not
    across a power loss or kernel crash: fine for caches that are rebuilt when missing."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_file: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except FileNotFoundError:  # folder missing: create it (one syscall saved per usual write)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_bytes_atomic(path: Path, data: bytes | bytearray, fsync: bool = True) -> Path:
    """Write ``data`` to ``path``: readers see either the old file or the whole new one."""
    with atomic_file(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: Path, text: str, fsync: bool = True) -> Path:
    return write_bytes_atomic(path, text.encode(), fsync=fsync)


def fsync_dir(path: Path) -> None:
    """Make the renames done in folder ``path`` durable (ordering across a power loss)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_failure(e: OSError) -> str:
    """Why a write failed, in a few words for a one-line message: "disk full (no space left on
    device)", "not writable (Permission denied)", ... numpy's ``tofile`` reports a short write
    (a full disk) without an errno ("N requested and M written"): also a full disk."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT) or (e.errno is None and "requested and" in str(e)):
        return "disk full (no space left on device)"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"not writable ({e.strerror})"
    return f"cannot write ({e.strerror or e})"
