"""``stemforge download musdb18-sample DIR``: fetch, verify and unpack the MUSDB18 7 s preview."""
from __future__ import annotations

DATASETS = ("musdb18-sample",)


def add_parser(sub):
    p = sub.add_parser("download", help="download a public sample dataset (resumable, verified)")
    p.add_argument("dataset", choices=DATASETS, help="what to download")
    p.add_argument("dir", help="destination folder (becomes a musdb18 root)")
    p.add_argument("--url", help="download from this address instead of the official one "
                   "(also $STEMFORGE_MUSDB_SAMPLE_URL)")
    p.add_argument("--keep-archive", action="store_true", help="keep the zip after unpacking")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def run(args) -> int:
    from ..download import download_musdb18_sample

    dest = download_musdb18_sample(args.dir, url=args.url, progress=not args.no_progress,
                                   keep_archive=args.keep_archive)
    print(f"MUSDB18 7 s preview ready in {dest} (layout musdb18); try `stemforge info {dest}`")
    return 0
