"""``stemforge prepare ROOT --cache DIR [--variants SPEC]``: decode every stem once into
memory-mappable arrays; optionally render pitch/tempo variants for ``mode: cached`` recipes."""
from __future__ import annotations

import time

from ._common import add_dataset_args, add_workers_arg, open_index, workers


def add_parser(sub):
    p = sub.add_parser("prepare", help="decode all stems once into the StemCache (memmaps)")
    add_dataset_args(p)
    add_workers_arg(p, None, "decoding and rendering variants")
    p.add_argument("--variants", metavar="SPEC",
                   help="also render every stem at a (semitones, tempo) grid through Rubber Band "
                        "R3, for recipe steps with mode: cached, e.g. "
                        "\"semitones=-2,-1,0,1,2 tempo=0.9,1,1.1\" (grid = product; costs one "
                        "copy of the stems per non-identity point)")
    return p


def run(args) -> int:
    from ..prepare import prepare

    grid = None
    if args.variants is not None:  # a bad SPEC fails before the index is built or anything written
        from ..augment.grid import parse_grid

        grid = parse_grid(args.variants, "--variants")
    k = workers(args)
    index = open_index(args, workers=k)
    t0 = time.perf_counter()
    st = prepare(index, workers=k, progress=not args.no_progress, variants=grid)
    dt = time.perf_counter() - t0
    print(f"prepared {st.tracks} tracks: {st.stems_written} stems decoded "
          f"({st.bytes_written / 1e6:.1f} MB), {st.stems_skipped} already cached, {dt:.2f} s")
    if grid is not None:
        print(f"variants {grid.spec()}: {st.variants_written} rendered "
              f"({st.variant_bytes / 1e6:.1f} MB), {st.variants_skipped} already present")
        print(f"variant cache: {index.variants.folder}")
    print(f"stem cache: {index.cache.folder}")
    return 0
