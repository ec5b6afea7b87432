"""Command-line entry point: ``stemforge <command> ...``.

Thin by design: each command lives in ``stemforge/commands/<name>.py`` with
``add_parser(subparsers)`` and ``run(args) -> int``; this module only dispatches and turns
:class:`~stemforge.errors.StemforgeError` into a one-line message and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import StemforgeError

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
    "regenerate": "regenerate",
    "report": "report",
    "separate": "separate",
    "train": "train",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except StemforgeError as e:
        print(f"stemforge {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stemforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
