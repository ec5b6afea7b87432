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

    from numba.core.errors import NumbaError

    try:
        warmup(line)
    except NumbaError as e:  # a compile failure: one line, not numba's pages of traceback
        # (anything else propagates: a StemforgeError or OSError is the CLI's one line, a bug
        # keeps its traceback)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise StemforgeError(f"warmup failed: {type(e).__name__}: {first}") from e
    return 0
