"""Advisory folder locks (``flock`` on a lock file), shared by the index cache and batch jobs.

A lock file may be removed by the process holding it (a failed first run removes the folder it
created). A process that opened the file just before then locks a file that no longer has that
name; :func:`acquire` notices (the name now points at another file, or at none) and starts over,
so two processes never both believe they hold the lock. The kernel releases a ``flock`` when its
holder dies, so a killed run never leaves a stale lock.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


def acquire(path: Path, block: bool = True) -> int | None:
    """Create-or-open ``path`` and lock it exclusively; return the open file descriptor (close
    it to release), or None when ``block`` is False and another process holds the lock.
    OSError when the file cannot be created (missing, read-only or unwritable folder)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # removed or replaced by its previous holder: lock the file now named so


def release(fd: int, path: Path | None = None) -> None:
    """Release a lock from :func:`acquire`; with ``path``, remove the lock file first (while it
    is still held, so a waiter retries on a fresh file)."""
    try:
        if path is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    finally:
        os.close(fd)
