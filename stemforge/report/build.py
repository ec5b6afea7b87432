"""Detect what each input is, build its section, write ``OUT/index.html``."""
from __future__ import annotations

import datetime as _dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..errors import StemforgeError
from ..metrics.results import METHOD_NAME
from .compare import comparison_html
from .dataset import dataset_section
from .doctor import doctor_section, is_doctor_output
from .generated import is_generated_set, generated_section
from .html import GENERATOR, PREVIEW_SECONDS, Assets, esc, page, problems_html, slug
from .results import looks_like_results, results_section
from .section import Section

KINDS = ("auto", "dataset", "generated", "results", "doctor")
BUILDERS = {"dataset": dataset_section, "generated": generated_section,
            "results": results_section, "doctor": doctor_section}


def detect_kind(path: str | Path) -> str:
    """``dataset`` (a root or index.jsonl), ``generated`` (a ``stemforge generate`` folder),
    ``results`` (museval JSON files), ``doctor`` (``stemforge doctor`` output), or
    ``missing`` / ``empty``."""
    p = Path(path)
    if not p.exists():
        return "missing"
    if is_doctor_output(p):
        return "doctor"
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


def split_name(path: str | Path) -> tuple[str | None, Path]:
    """``NAME=PATH`` (a results folder named as a method) -> ``(NAME, PATH)``; a path that
    exists as written, or has no valid name before ``=``, is just a path."""
    text = str(path)
    name, sep, rest = text.partition("=")
    if isinstance(path, str) and sep and METHOD_NAME.match(name) and not Path(text).exists():
        return name, Path(rest)
    return None, Path(path)


def build_section(path: str | Path, out: str | Path, kind: str = "auto", n: int = 0,
                  max_items: int = 100, preview_seconds: float = PREVIEW_SECONDS,
                  progress: bool = False, layout: str | None = None) -> Section:
    """One input's section; its assets go to ``out/assets/<n>-<kind>/``. A results input may
    be given as ``NAME=PATH`` to name its method; ``layout``: of a dataset input (see
    ``Index.open``)."""
    name, p = split_name(path)
    if kind not in KINDS:
        raise StemforgeError(f"--kind {kind!r}: expected one of {', '.join(KINDS)}")
    k = detect_kind(p) if kind == "auto" else kind
    if k in ("missing", "empty"):
        what = "does not exist" if k == "missing" else ("is an empty folder: no dataset, "
                                                        "generated set or results")
        return Section("unknown", p, f"{p.name or p}", problems=[f"{p}: {what}"])
    assets = Assets(Path(out), preview_seconds=preview_seconds, sub=f"{n}-{k}",
                    progress=progress)
    if k == "results":
        return results_section(p, assets, max_items=max_items, name=name)
    if k == "dataset":
        return dataset_section(p, assets, max_items=max_items, layout=layout)
    return BUILDERS[k](p, assets, max_items=max_items)


def comparison_section(sections: list[Section], out: str | Path, n: int, max_items: int = 100,
                       preview_seconds: float = PREVIEW_SECONDS) -> Section | None:
    """Every method of several results inputs side by side (None unless two or more inputs
    bring methods). Methods of the same name get the input's number appended."""
    inputs = [s for s in sections if s.kind == "results" and s.methods]
    if len(inputs) < 2:
        return None
    methods = {}
    for i, s in enumerate(inputs):
        for name, m in s.methods.items():
            if not len(m.tracks):
                continue
            key = name if name not in methods else f"{name}-{i + 1}"
            methods[key] = m
    if len(methods) < 2:
        return None
    sec = Section("comparison", Path("."), f"Comparison of {len(methods)} methods")
    assets = Assets(Path(out), preview_seconds=preview_seconds, sub=f"{n}-comparison")
    sec.body, sec.problems = comparison_html(methods, assets, max_items, key="all")
    sec.body = ("<p class=\"muted\">inputs: " + ", ".join(f"<code>{esc(s.path)}</code>"
                                                         for s in inputs) + "</p>" + sec.body)
    sec.rendered = len({t for m in methods.values() for t in m.track_names})
    return sec


class ReportError(StemforgeError):
    """The report cannot be written: ``--out`` unusable, or an I/O failure while writing."""


STAGING = ".stemforge-report.part"   # the new report is built here, then moved into place
OLD_ASSETS = ".assets.old"


def check_out(out: Path) -> None:
    """Refuse an ``out`` that is a file, or a folder holding something other than a stemforge
    report under the names the report writes (``index.html``, ``assets/``)."""
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out}: exists and is not a folder; choose a folder for --out")
    page_file, assets = out / "index.html", out / "assets"
    if page_file.exists():
        try:
            head = page_file.read_text(encoding="utf-8", errors="replace")[:2000]
        except OSError as e:
            raise ReportError(f"{page_file}: cannot read it ({e.strerror})") from e
        if GENERATOR not in head:
            raise ReportError(f"{page_file}: exists and is not a stemforge report; refusing to "
                              "overwrite it, choose another --out")
    elif assets.exists():
        raise ReportError(f"{assets}: exists but {page_file} does not, so this is not a "
                          "stemforge report folder; refusing to overwrite it, choose another --out")


def _install(staging: Path, out: Path) -> Path:
    """Move the finished report from ``staging`` into ``out`` (old assets removed, so nothing
    stale is left behind); ``index.html`` is replaced last, atomically."""
    old = out / OLD_ASSETS
    if old.exists():
        shutil.rmtree(old)
    if (out / "assets").exists():
        (out / "assets").rename(old)
    (staging / "assets").rename(out / "assets")
    (staging / "index.html").replace(out / "index.html")
    staging.rmdir()
    if old.exists():
        shutil.rmtree(old)
    return out / "index.html"


def build_report(paths: str | Path | Sequence[str | Path], out: str | Path, kind: str = "auto",
                 max_items: int = 100, preview_seconds: float = PREVIEW_SECONDS,
                 title: str | None = None, progress: bool = False,
                 layout: str | None = None) -> ReportResult:
    """Write a static HTML report of ``paths`` (datasets, generated sets, results; mixed
    freely; ``NAME=PATH`` names a results input's method) to ``out/index.html`` +
    ``out/assets/``. Several results inputs also get a section comparing all their methods. Problems are shown on the page; the
    result's ``rendered`` is 0 when nothing could be shown. ``progress`` shows a progress bar
    per section (on stderr). ``layout``: of the dataset inputs (default: remembered from
    their last indexing, else detected).

    The report is built in ``out/.stemforge-report.part/`` and moved into place when complete:
    a failure leaves any previous report in ``out`` as it was, and a new report never mixes
    with the assets of an old one. ``out`` must be new, empty of ``index.html``/``assets``, or
    hold an earlier stemforge report (:class:`ReportError` otherwise).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if kind not in KINDS:
        raise StemforgeError(f"--kind {kind!r}: expected one of {', '.join(KINDS)}")
    out = Path(out)
    check_out(out)
    staging = out / STAGING
    try:
        out.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            shutil.rmtree(staging)  # left by a killed run
        staging.mkdir()
        sections = [build_section(p, staging, kind, i, max_items, preview_seconds, progress,
                                  layout) for i, p in enumerate(paths)]
        cmp = comparison_section(sections, staging, len(paths), max_items, preview_seconds)
        if cmp is not None:
            sections.append(cmp)
        (staging / "assets").mkdir(exist_ok=True)
        (staging / "index.html").write_text(_page(sections, title), encoding="utf-8")
        index_html = _install(staging, out)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        what = f" ({e.strerror}: {e.filename})" if e.filename else f" ({e.strerror or e})"
        raise ReportError(f"{out}: cannot write the report{what}; any previous report there "
                          "is unchanged") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ReportResult(index_html, sections)


def _page(sections: list[Section], title: str | None) -> str:
    html_sections = []
    for i, s in enumerate(sections):
        where = "" if s.kind == "comparison" else f": <code>{esc(s.path)}</code>"
        head = (f'<p class="muted">{s.kind}{where}</p>'
                + (f"<h3>problems ({len(s.problems)})</h3>" + problems_html(s.problems)
                   if s.problems else ""))
        if not s.rendered:
            head += problems_html([f"{s.path}: nothing could be rendered"])
        html_sections.append((f"s{i}-{slug(s.path.name or 'input')}", s.title, head + s.body))
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    return page(title or "stemforge report", html_sections,
                footer=f"stemforge {__version__}, written {stamp}")
