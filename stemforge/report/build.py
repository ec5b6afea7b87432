"""Detect what each input is, build its section, write ``OUT/index.html``."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..errors import StemforgeError
from .dataset import dataset_section
from .generated import is_generated_set, generated_section
from .html import PREVIEW_SECONDS, Assets, page, problems_html, slug
from .results import looks_like_results, results_section
from .section import Section

KINDS = ("auto", "dataset", "generated", "results")
BUILDERS = {"dataset": dataset_section, "generated": generated_section,
            "results": results_section}


def detect_kind(path: str | Path) -> str:
    """``dataset`` (a root or index.jsonl), ``generated`` (a ``stemforge generate`` folder),
    ``results`` (museval JSON files), or ``missing`` / ``empty``."""
    p = Path(path)
    if not p.exists():
        return "missing"
    if p.is_file():
        if p.name == "index.jsonl":
            return "dataset"
        return "results" if p.suffix in (".json", ".csv") else "dataset"
    if not any(p.iterdir()):
        return "empty"
    if is_generated_set(p):
        return "generated"
    if looks_like_results(p):
        return "results"
    return "dataset"


@dataclass
class ReportResult:
    """What :func:`build_report` wrote: the page, its sections, and how much rendered."""

    index_html: Path
    sections: list[Section]

    @property
    def rendered(self) -> int:
        return sum(s.rendered for s in self.sections)

    @property
    def problems(self) -> list[str]:
        return [p for s in self.sections for p in s.problems]

    @property
    def size_bytes(self) -> int:
        root = self.index_html.parent
        return sum(f.stat().st_size for f in [self.index_html, *(root / "assets").rglob("*")]
                   if f.is_file())


def build_section(path: str | Path, out: str | Path, kind: str = "auto", n: int = 0,
                  max_items: int = 100, preview_seconds: float = PREVIEW_SECONDS) -> Section:
    """One input's section; its assets go to ``out/assets/<n>-<kind>/``."""
    p = Path(path)
    if kind not in KINDS:
        raise StemforgeError(f"--kind {kind!r}: expected one of {', '.join(KINDS)}")
    k = detect_kind(p) if kind == "auto" else kind
    if k in ("missing", "empty"):
        what = "does not exist" if k == "missing" else ("is an empty folder: no dataset, "
                                                        "generated set or results")
        return Section("unknown", p, f"{p.name or p}", problems=[f"{p}: {what}"])
    assets = Assets(Path(out), preview_seconds=preview_seconds, sub=f"{n}-{k}")
    return BUILDERS[k](p, assets, max_items=max_items)


def build_report(paths: str | Path | Sequence[str | Path], out: str | Path, kind: str = "auto",
                 max_items: int = 100, preview_seconds: float = PREVIEW_SECONDS,
                 title: str | None = None) -> ReportResult:
    """Write a static HTML report of ``paths`` (datasets, generated sets, results; mixed
    freely) to ``out/index.html`` + ``out/assets/``. Problems are shown on the page; the
    result's ``rendered`` is 0 when nothing could be shown."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = [build_section(p, out, kind, i, max_items, preview_seconds)
                for i, p in enumerate(paths)]
    html_sections = []
    for i, s in enumerate(sections):
        head = (f'<p class="muted">{s.kind}: <code>{s.path}</code></p>'
                + (f"<h3>problems ({len(s.problems)})</h3>" + problems_html(s.problems)
                   if s.problems else ""))
        if not s.rendered:
            head += problems_html([f"{s.path}: nothing could be rendered"])
        html_sections.append((f"s{i}-{slug(s.path.name or 'input')}", s.title, head + s.body))
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    text = page(title or "stemforge report", html_sections,
                footer=f"stemforge {__version__}, written {stamp}")
    index_html = out / "index.html"
    tmp = out / ".index.html.part"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(index_html)
    return ReportResult(index_html, sections)
