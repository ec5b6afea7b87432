"""``stemforge index ROOT``: build (or refresh) the cached index of a dataset."""
from __future__ import annotations

import time

from ._common import add_dataset_args, add_workers_arg, open_index, workers


def add_parser(sub):
    p = sub.add_parser("index", help="scan a dataset and build or refresh its cached index")
    add_dataset_args(p)
    add_workers_arg(p, None, "the analysis")
    return p


def run(args) -> int:
    t0 = time.perf_counter()
    index = open_index(args, workers=workers(args))
    splits = ", ".join(f"{k or '-'}: {len(v)}" for k, v in sorted(index.splits().items(),
                                                                      key=lambda kv: str(kv[0])))
    print(f"indexed {len(index)} tracks ({splits}) with layout '{index.layout}' "
          f"in {time.perf_counter() - t0:.2f} s")
    print(f"stems: {', '.join(index.stem_names)}")
    if index.groups:
        print("groups: " + "; ".join(f"{g} = {' + '.join(m)}" for g, m in index.groups.items()))
    print(f"index file: {index.index_file}")
    return 0
