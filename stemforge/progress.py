"""Progress for long commands, on a terminal and off it.

:func:`progress` returns a bar-like object (``update(n)``, ``set_postfix``, ``close``, a
context manager). On a terminal (stderr is a TTY) it is a tqdm bar. Elsewhere (a log file, a
pipe, a batch job) a bar's carriage returns would pile up into one unreadable line, so it
writes plain lines to stderr instead::

    index: 12/40 tracks (30%), 6 s, ~14 s left

the first once the work has run for ``STEMFORGE_PROGRESS_EVERY`` seconds (default 5), then at
most every that many seconds, and a last one when it ends (only if a line was written: short
runs stay quiet). ``STEMFORGE_PROGRESS_EVERY=0`` writes a line per update.
"""
from __future__ import annotations

import os
import sys
import time

ENV = "STEMFORGE_PROGRESS_EVERY"
DEFAULT_EVERY = 5.0
#: called before progress is first shown (the CLI writes its pending notes there, so that
#: they come before the lines they explain)
BEFORE_OUTPUT: list = []


def _before_output() -> None:
    for fn in list(BEFORE_OUTPUT):
        fn()


class _Off:
    """Progress that shows nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args, **kw) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Lines(_Off):
    """Periodic progress lines on a stream (see the module docstring)."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int = 0,
                 stream=None, every: float | None = None):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.start_n = initial
        self.stream = stream if stream is not None else sys.stderr
        self.every = _every() if every is None else every
        self.t0 = self.last = time.monotonic()
        self.shown = False
        self.postfix = ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self._write(now)

    def set_postfix(self, *args, **kw) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in kw.items() if k != "refresh")

    def close(self) -> None:
        if self.shown:
            self._write(time.monotonic(), final=True)
            self.shown = False

    def _write(self, now: float, final: bool = False) -> None:
        if not self.shown:
            _before_output()
        self.last, self.shown = now, True
        el = now - self.t0
        units = self.unit if self.unit.endswith("s") else \
            f"{self.unit}es" if self.unit.endswith(("x", "ch", "sh")) else f"{self.unit}s"
        if self.total:
            line = f"{self.desc}: {self.n}/{self.total} {units} ({100 * self.n / self.total:.0f}%)"
        else:
            line = f"{self.desc}: {self.n} {units}"
        line += f", {el:.0f} s"
        done = self.n - self.start_n
        if self.total and not final and done > 0 and self.n < self.total:
            line += f", ~{el / done * (self.total - self.n):.0f} s left"
        if self.postfix:
            line += f" ({self.postfix})"
        try:
            print(line, file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed or broken stream: progress is not worth a crash
            pass


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get(ENV, DEFAULT_EVERY)))
    except ValueError:
        return DEFAULT_EVERY


def iterate(items, desc: str, unit: str = "item", enabled: bool = True):
    """``items``, yielded one by one under a :func:`progress` bar."""
    items = list(items)
    with progress(len(items), desc, unit, enabled) as bar:
        for x in items:
            yield x
            bar.update(1)


def progress(total: int | None, desc: str, unit: str = "item", enabled: bool = True,
             initial: int = 0):
    """A progress bar on a terminal, periodic lines elsewhere, nothing when not ``enabled``."""
    if not enabled:
        return _Off()
    stream = sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        _before_output()
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                    file=stream)
    return Lines(total, desc, unit, initial=initial, stream=stream)
