"""Atomic file writes: temp file in the same folder, fsync, rename. A crash never leaves a
partial file under a final name.

Temp files are hidden (``.<name>.<random>.part``) so a listing of final names never shows them;
:func:`stemforge.jobs.layout.clean_temp` removes leftovers of a killed run.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _read_umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


# read once at import: os.umask can only be read by setting it, which races with other threads
_UMASK = _read_umask()


def write_bytes_atomic(path: Path, data: bytes | bytearray, fsync: bool = True) -> Path:
    """Write ``data`` to ``path``: readers see either the old file or the whole new one.

    ``fsync=False`` skips flushing the data to the device: still atomic if the *process* dies
    (the page cache survives it), but not across a power loss or kernel crash."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except FileNotFoundError:  # folder missing: create it (one syscall saved per usual write)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
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
    return path


def write_text_atomic(path: Path, text: str, fsync: bool = True) -> Path:
    return write_bytes_atomic(path, text.encode(), fsync=fsync)


def fsync_dir(path: Path) -> None:
    """Make the renames done in folder ``path`` durable (ordering across a power loss)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
