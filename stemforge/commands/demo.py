"""``stemforge demo``: the whole data path on the real MUSDB18 excerpt bundled with ``stempeg``.

Writes into ``--out`` (default ``./stemforge-demo``)::

    musdb18-excerpt/test/<excerpt>.stem.mp4   the excerpt in the musdb18 layout
    cache/                                    its index (index.jsonl + analysis)
    musdb_vocals.yaml                         the tutorial recipe (split set to the excerpt's)
    mixtures/                                 the generated set (``stemforge generate`` layout)
    report/index.html                         the report of the dataset and the generated set

Re-running in the same folder reuses everything that is already complete (the index cache,
finished mixtures) and rewrites the report.
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import yaml

from ..errors import StemforgeError
from ._common import count

DEMO_RECIPE = "musdb_vocals.yaml"
EXCERPT_SPLIT = "test"      # MUSDB18's own split of the bundled excerpt


def bundled_excerpt() -> Path:
    """Path of the real MUSDB18 excerpt (``*.stem.mp4``) shipped inside the ``stempeg`` package.

    Found without importing ``stempeg`` (its import needs a system ffmpeg; stemforge does not).
    """
    spec = importlib.util.find_spec("stempeg")
    if spec is None or not spec.submodule_search_locations:
        raise StemforgeError("the demo needs the 'stempeg' package for its bundled MUSDB18 "
                             "excerpt: pip install stempeg")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    found = sorted(data.glob("*.stem.mp4"))
    if not found:
        raise StemforgeError(f"{data}: no *.stem.mp4 excerpt found in the installed stempeg "
                             "package; reinstall it (pip install --force-reinstall stempeg)")
    return found[0]


def example_root(out: Path) -> Path:
    """A musdb18-layout root under ``out`` holding a copy of the bundled excerpt."""
    src = bundled_excerpt()
    root = out / "musdb18-excerpt"
    dst = root / EXCERPT_SPLIT / src.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or dst.stat().st_size != src.stat().st_size:
        tmp = dst.with_name(f".{dst.name}.part")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
    return root


def packaged_recipe(name: str = DEMO_RECIPE) -> Path:
    """Path of a recipe shipped with stemforge (``stemforge/recipes/<name>``)."""
    p = Path(__file__).resolve().parent.parent / "recipes" / name
    if not p.is_file():
        raise StemforgeError(f"{p}: packaged recipe not found (broken install?)")
    return p


def demo_recipe(out: Path, src: Path | None = None) -> Path:
    """Write the tutorial recipe (or ``src``), restricted to the excerpt's split, to ``out``;
    return it. The file's text (and its comments) is kept; only its ``split`` line changes."""
    import re

    src = src or packaged_recipe()
    text = src.read_text()
    line = f"split: [{EXCERPT_SPLIT}]   # the bundled excerpt is a MUSDB18 {EXCERPT_SPLIT} track"
    new, n = re.subn(r"(?m)^split:.*$", line, text, count=1)
    if n == 0:
        new = text.rstrip("\n") + "\n" + line + "\n"
    want = yaml.safe_load(text)
    want["split"] = [EXCERPT_SPLIT]
    try:
        same = yaml.safe_load(new) == want  # the edit must change nothing but the split
    except yaml.YAMLError:
        same = False
    if not same:
        new = (f"# {src.name} with split: [{EXCERPT_SPLIT}]\n"
               + yaml.safe_dump(want, sort_keys=False))
    dst = out / src.name
    if not dst.is_file() or dst.read_text() != new:
        tmp = dst.with_name(f".{dst.name}.part")
        tmp.write_text(new)
        tmp.replace(dst)
    return dst


def add_parser(sub):
    p = sub.add_parser("demo", help="index the bundled real MUSDB18 excerpt, generate mixtures "
                       "from it with the tutorial recipe, and write a report to listen to")
    p.add_argument("--out", default="stemforge-demo",
                   help="output folder (default ./stemforge-demo)")
    p.add_argument("--n", type=int, default=4, help="mixtures to generate (default 4)")
    p.add_argument("--seed", type=count, default=0, help="job seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def describe_set(specs) -> list[str]:
    """One line per generated mixture: id, mode, reference level, per-target SNR and files."""
    lines = []
    for i, s in enumerate(specs):
        snr = ", ".join(f"{src.stem} {src.snr:+.1f}" for src in s.sources
                        if src.snr is not None and not src.dropped)
        lines.append(f"  {i:06d}  {s.mode:<10}  ref_db {s.ref_db:6.1f} LUFS  snr [{snr}]"
                     f"  scale {s.scale:.3f}")
    return lines


def run(args) -> int:
    from ..index import Index
    from ..jobs.generate import generate
    from ..jobs.layout import SPEC_FILE, item_dir
    from ..mixing.recipe import Recipe
    from ..mixing.spec import MixSpec
    from ..report import build_report
    from .info import summary

    if args.n < 1:
        raise StemforgeError(f"--n {args.n}: expected a positive number of mixtures")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise StemforgeError(f"{out}: exists and is not a folder; choose a folder for --out")
    bundled_excerpt()  # fail before writing anything when stempeg is missing
    packaged_recipe()
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress

    root = example_root(out)
    index = Index.build(root, cache_dir=out / "cache", progress=progress)
    print(summary(index))

    recipe_file = demo_recipe(out)
    recipe = Recipe.load(recipe_file)
    gen = out / "mixtures"
    res = generate(recipe, index, args.n, gen, seed=args.seed, fmt="wav", workers=1,
                   progress=progress)
    specs = [MixSpec.load(item_dir(gen, i) / SPEC_FILE) for i in range(args.n)]
    print(f"\nrecipe {recipe_file} ({recipe.name}): {res.n} mixtures of {recipe.duration:g} s in "
          f"{gen} ({res.written} written, {res.skipped} already there)")
    print("\n".join(describe_set(specs)))
    print(f"  each folder: mixture.wav, {', '.join(f'{t}.wav' for t in recipe.targets)}, "
          f"spec.json (every drawn value; re-render with stemforge.render(spec, index))")

    rep = build_report([root, gen], out / "report", title="stemforge demo", progress=progress)
    for p in rep.problems:
        print(f"stemforge demo: report problem: {p}", file=sys.stderr)
    if not rep.rendered:
        print(f"stemforge demo: error: nothing could be rendered in the report "
              f"({rep.index_html})", file=sys.stderr)
        return 1
    print(f"\nreport: {rep.index_html} ({rep.size_bytes / 1e6:.1f} MB) - open it in a browser "
          f"to listen to the excerpt and the mixtures")
    return 0
