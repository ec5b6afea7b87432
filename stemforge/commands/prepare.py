"""``stemforge prepare ROOT --cache DIR``: decode every stem once into memory-mappable arrays."""
from __future__ import annotations

import time

from ._common import add_dataset_args, open_index


def add_parser(sub):
    p = sub.add_parser("prepare", help="decode all stems once into the StemCache (memmaps)")
    add_dataset_args(p)
    return p


def run(args) -> int:
    from ..prepare import prepare

    index = open_index(args)
    t0 = time.perf_counter()
    st = prepare(index, workers=args.workers, progress=not args.no_progress)
    dt = time.perf_counter() - t0
    print(f"prepared {st.tracks} tracks: {st.stems_written} stems decoded "
          f"({st.bytes_written / 1e6:.1f} MB), {st.stems_skipped} already cached, {dt:.2f} s")
    print(f"stem cache: {index.cache.folder}")
    return 0
