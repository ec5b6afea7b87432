"""``stemforge demo``: the main job on the real MUSDB18 excerpt bundled with ``stempeg``."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import StemforgeError


def add_parser(sub):
    p = sub.add_parser("demo", help="index the bundled real MUSDB18 excerpt and show what "
                       "stemforge does with it")
    p.add_argument("--out", default="stemforge-demo", help="output folder (default ./stemforge-demo)")
    return p


def example_root(out: Path) -> Path:
    """A musdb18-layout root holding the real excerpt shipped in the stempeg package."""
    try:
        import stempeg
    except ImportError as e:
        raise StemforgeError("the demo needs the 'stempeg' package for its bundled MUSDB18 "
                             "excerpt: pip install stempeg") from e
    src = Path(stempeg.example_stem_path())
    root = out / "musdb18-excerpt"
    dst = root / "test" / src.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or dst.stat().st_size != src.stat().st_size:
        shutil.copyfile(src, dst)
    return root


def run(args) -> int:
    from ..index import Index
    from .info import summary

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = example_root(out)
    index = Index.build(root, cache_dir=out / "cache", progress=True)
    print(summary(index))
    return 0
