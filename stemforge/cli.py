"""Command-line entry point: ``stemforge <command> ...``.

Thin by design: each command lives in ``stemforge/commands/<name>.py`` with
``add_parser(subparsers)`` and ``run(args) -> int``; this module only dispatches and turns
:class:`~stemforge.errors.StemforgeError` into a one-line message and exit code 2. While a
command runs, stemforge's notes (the ``stemforge`` logger, e.g. ``layout: trackfolder
(detected; --layout to override)``) and warnings (:class:`~stemforge.errors.StemforgeWarning`)
are printed as one line each on stderr. A closed stdout (``stemforge info ROOT | head -1``) ends
the command quietly.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from . import __version__
from .errors import StemforgeError, StemforgeWarning

# command name -> module under stemforge.commands (add one line per new command)
COMMANDS = {
    "demo": "demo",
    "doctor": "doctor",
    "download": "download",
    "evaluate": "evaluate",
    "export-jams": "export_jams",
    "export-shards": "export_shards",
    "generate": "generate",
    "experiment": "experiment",
    "index": "index",
    "import-jams": "import_jams",
    "info": "info",
    "oracle": "oracle",
    "prepare": "prepare",
    "recipes": "recipes",
    "regenerate": "regenerate",
    "report": "report",
    "separate": "separate",
    "train": "train",
    "warmup": "warmup",
}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error, ``stemforge CMD: error: ...`` and exit 2, like
    every other error (the usage text stays in ``--help``). Sub-command parsers share it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="stemforge",
        description="Turn multitrack stem datasets into training and evaluation data.",
    )
    parser.add_argument("--version", action="version", version=f"stemforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"stemforge.commands.{module}")
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


class _Notes(logging.Handler):
    """stemforge's log records as plain lines on (the current) stderr, held back until the
    command writes something else there (progress, a warning) or succeeds: a failing command
    prints its one error line alone (an error that follows from a guess says so itself)."""

    def __init__(self):
        super().__init__()
        self.pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.pending.append(record.getMessage())

    def flush_notes(self) -> None:
        lines, self.pending = self.pending, []
        for line in lines:
            print(line, file=sys.stderr, flush=True)


def _stdout_closed() -> bool:
    """Whether stdout's reader is gone (a pipe whose read end was closed reports an error when
    polled). A stdout without a descriptor (an in-memory stream) has no pipe to lose, so a
    broken pipe is then another one's, reported as an error."""
    import io
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, io.UnsupportedOperation):
        return False
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .progress import BEFORE_OUTPUT

    log = logging.getLogger("stemforge")
    handler, level = _Notes(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    BEFORE_OUTPUT.append(handler.flush_notes)

    def show(message, category, *_args, **_kw):
        handler.flush_notes()
        print(f"stemforge {args.command}: warning: {message}", file=sys.stderr, flush=True)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", StemforgeWarning)
            warnings.showwarning = show  # restored by catch_warnings
            code = int(args._run(args) or 0)
            handler.flush_notes()
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
            return code
    except StemforgeError as e:
        print(f"stemforge {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError as e:
        if not _stdout_closed():  # another pipe (e.g. a separator's): an error like any other
            print(f"stemforge {args.command}: error: {e.filename or 'a pipe'}: {e.strerror}",
                  file=sys.stderr)
            return 2
        # the reader went away (`stemforge info ROOT | head -1`): stop quietly, and keep the
        # interpreter's final flush of stdout from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # it has one: _stdout_closed polled it
        return 141  # 128 + SIGPIPE, as for any program killed by a closed pipe
    except OSError as e:
        # the environment failed where no command gave a more specific message (a full disk,
        # a file that vanished, a permission): still one line naming the file, never a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"stemforge {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stemforge {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        BEFORE_OUTPUT.remove(handler.flush_notes)
        log.removeHandler(handler)
        log.setLevel(level)


def console() -> None:
    """The ``stemforge`` program (and ``python -m stemforge.cli``): :func:`main`, then exit.

    Before exiting, the objects alive are frozen out of the garbage collector: the process ends
    here, and Python's final collections would otherwise walk every object numba's, pandas' and
    SciPy's imports made (0.36-0.43 s after a 4-track ``evaluate``, 0.04-0.06 s frozen,
    measured). Every command has closed its files by then; in-process callers of :func:`main`
    keep the collector as it was.
    """
    import gc

    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
