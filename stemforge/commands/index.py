"""``stemforge index ROOT``: build (or refresh) the cached index of a dataset."""
from __future__ import annotations

import time

from ._common import add_dataset_args, add_workers_arg, open_index, workers


def add_parser(sub):
    p = sub.add_parser("index", help="scan a dataset and build or refresh its cached index")
    add_dataset_args(p)
    add_workers_arg(p, None, "the analysis")
    p.add_argument("--verify-content", action="store_true",
                   help="hash every file in full instead of trusting files whose stamp (size, "
                   "mtime, ctime, inode, first and last 64 KiB) is unchanged; finds any edit")
    return p


def run(args) -> int:
    t0 = time.perf_counter()
    index = open_index(args, workers=workers(args), verify_content=args.verify_content)
    splits = ", ".join(f"{k or '-'}: {len(v)}" for k, v in sorted(index.splits().items(),
                                                                      key=lambda kv: str(kv[0])))
    print(f"indexed {len(index)} tracks ({splits}) with layout '{index.layout}' "
          f"in {time.perf_counter() - t0:.2f} s")
    print(f"stems: {', '.join(index.stem_names)}")
    if index.groups:
        print("groups: " + "; ".join(f"{g} = {' + '.join(m)}" for g, m in index.groups.items()))
    if index.content_changed:
        shown = ", ".join(index.content_changed[:3])
        more = f" and {len(index.content_changed) - 3} more" if len(index.content_changed) > 3 else ""
        print(f"content changed since the last index: {shown}{more} (re-analysed)")
    elif args.verify_content:
        print("content verified: every file matches the bytes it was indexed from")
    print(f"index file: {index.index_file}")
    return 0
