"""``stemforge download musdb18-sample DIR``: fetch, verify and unpack the MUSDB18 7 s preview."""
from __future__ import annotations

DATASETS = ("musdb18-sample",)


def add_parser(sub):
    p = sub.add_parser("download", help="download a public sample dataset (resumable, verified)")
    p.add_argument("dataset", choices=DATASETS, help="what to download")
    p.add_argument("dir", nargs="?", metavar="DIR",
                   help="destination folder (becomes a musdb18 root); or --out DIR")
    p.add_argument("--out", metavar="DIR", help="the destination folder, as DIR")
    p.add_argument("--url", help="download from this address instead of the official one "
                   "(also $STEMFORGE_MUSDB_SAMPLE_URL)")
    p.add_argument("--keep-archive", action="store_true", help="keep the zip after unpacking")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def run(args) -> int:
    from ..download import download_musdb18_sample
    from ..errors import StemforgeError

    if args.dir and args.out and args.dir != args.out:
        raise StemforgeError(f"two destinations given ({args.dir} and --out {args.out})")
    if not (args.dir or args.out):
        raise StemforgeError("no destination given: stemforge download musdb18-sample DIR")
    dest = download_musdb18_sample(args.dir or args.out, url=args.url,
                                   progress=not args.no_progress,
                                   keep_archive=args.keep_archive)
    print(f"MUSDB18 7 s preview ready in {dest} (layout musdb18); try `stemforge info {dest}`")
    return 0
