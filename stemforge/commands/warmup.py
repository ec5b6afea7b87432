"""``stemforge warmup``: compile every numba kernel once into the kernel folder
(``$STEMFORGE_KERNEL_DIR``, default ``~/.cache/stemforge/kernels``), so no later command pays a
compile. One progress line per step on stderr; a failure is one line, exit 2."""
from __future__ import annotations

import sys


def add_parser(sub):
    return sub.add_parser("warmup", help="compile every compiled kernel once (into "
                          "$STEMFORGE_KERNEL_DIR, default ~/.cache/stemforge/kernels), so the "
                          "first evaluation or mixed item does not pay it")


def run(args) -> int:
    from ..errors import StemforgeError
    from ..warmup import warmup

    def line(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        warmup(line)
    except StemforgeError:
        raise
    except OSError:
        raise  # the CLI turns it into one line naming the file
    except Exception as e:  # a compile failure: one line, not numba's pages of traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise StemforgeError(f"warmup failed: {type(e).__name__}: {first}") from e
    return 0
