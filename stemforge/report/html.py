"""Static HTML: escaping helpers, tables, the page template, and the asset writer.

The page is one ``index.html`` plus an ``assets/`` folder of PNG figures and audio previews,
all referenced by relative paths, so it opens straight from the file system (no server, no
network). Its only script is a few inline lines that sort a table by the clicked column;
without it the page still reads in full. Figures are rendered at twice their displayed size
(sharp on high-DPI screens).
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import AudioError
from ..types import Hz, Seconds
from .plots import image_bytes

PREVIEW_SECONDS: Seconds = 10.0
GENERATOR = '<meta name="generator" content="stemforge report">'   # marks our pages
# Previews are Ogg/Opus at 48 kHz, ~32 kb/s per channel (~64 kb/s stereo, ~40 KB per 5 s): a
# 100-mixture report of 5 s mixtures (mix + 2 targets) is ~12 MB of audio. libsndfile maps its
# compression level c in [0, 1] to (256 - 250 c) kb/s per channel for Opus. Where libsndfile
# lacks Opus, Ogg/Vorbis at compression level 0.8 (~90 kb/s stereo) is used instead.
PREVIEW_KBPS_PER_CHANNEL = 32
OPUS_RATE: Hz = 48000
VORBIS_LEVEL = 0.8

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;
max-width:1100px;padding:0 1em;color:#222;background:#fff}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:2em}
h3{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;font-size:.82em;margin:.4em 0 1em}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.problem{background:#fdecea;border-left:4px solid #c62828;padding:.4em .8em;margin:.4em 0}
.warn{color:#a15c00}.ok{color:#2e7d32}.muted{color:#777;font-size:.85em}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
.players{display:flex;flex-wrap:wrap;gap:.3em 1.2em}
.players figure{margin:0}.players figcaption{font-size:.8em;color:#555}
audio{width:240px;height:32px}img{max-width:100%;height:auto}
.figs{display:flex;flex-wrap:wrap;gap:.5em}
nav a{margin-right:1em}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[data-dir=desc]::after{content:" \\25BE"}
table.sortable th[data-dir=asc]::after{content:" \\25B4"}
.legend{font-size:.8em;color:#555;margin:-.6em 0 1em}
.wide{overflow-x:auto}.wide td.l{white-space:nowrap}
"""

# Click a header of a table.sortable: rows sorted by that column (numbers by value, from
# data-v when present; empty values last), highest first, a second click reverses.
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var dir = th.dataset.dir === 'desc' ? 'asc' : 'desc';
      Array.prototype.forEach.call(heads, function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      var rows = Array.prototype.slice.call(table.rows, 1);
      var key = function (r) {
        var c = r.cells[col], v = c.dataset.v !== undefined ? c.dataset.v : c.textContent;
        var n = parseFloat(v);
        return {n: isNaN(n) ? null : n, s: v.trim()};
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), sign = dir === 'desc' ? -1 : 1;
        if (x.n !== null && y.n !== null) return sign * (x.n - y.n);
        if (x.n !== null) return -1;
        if (y.n !== null) return 1;
        if (!x.s || !y.s) return x.s ? -1 : (y.s ? 1 : 0);
        return sign * x.s.localeCompare(y.s);
      });
      rows.forEach(function (r) { r.parentNode.appendChild(r); });
    });
  });
});
"""
FIGURE_DPI = 80     # CSS pixels per figure inch
FIGURE_SCALE = 2    # image pixels per CSS pixel


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def slug(text: str) -> str:
    """A file- and anchor-safe name for ``text``."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return s[:80] or "item"


def table(header: Sequence[str], rows: Sequence[Sequence], left: int = 1,
          raw: bool = False) -> str:
    """An HTML table; the first ``left`` columns are left-aligned. Cells are escaped unless
    ``raw`` (then the caller passes trusted, already escaped HTML)."""
    cell = (lambda v: str(v)) if raw else esc
    cls = lambda i: ' class="l"' if i < left else ""  # noqa: E731
    out = ["<table><tr>" + "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(header))
           + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td{cls(i)}>{cell(v)}</td>" for i, v in enumerate(r))
                   + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def sortable_table(header: Sequence[str], rows: Sequence[Sequence], left: int = 1,
                   digits: int = 2) -> str:
    """A table sorted by clicking a header. Cells that are numbers (float/int, NaN allowed) show
    with ``digits`` decimals and sort by value; other cells are text (escaped)."""
    from .plots import fmt

    def cell(i, v):
        cls = ' class="l"' if i < left else ""
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return f'<td{cls} data-v="{int(v)}">{int(v)}</td>'
        if isinstance(v, (float, np.floating)):
            x = float(v)
            data = "" if np.isnan(x) else repr(x)
            return f'<td{cls} data-v="{data}">{esc(fmt(x, digits))}</td>'
        return f"<td{cls}>{esc(v)}</td>"

    heads = "".join(f'<th{cls} title="click to sort">{esc(h)}</th>' for cls, h in
                    ((' class="l"' if i < left else "", h) for i, h in enumerate(header)))
    out = [f'<table class="sortable"><tr>{heads}</tr>']
    out += ["<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows]
    out.append("</table>")
    return "\n".join(out)


def problems_html(problems: Sequence[str]) -> str:
    return "".join(f'<div class="problem">{esc(p)}</div>' for p in problems)


@dataclass
class Assets:
    """Writes figures and audio previews under ``out/assets`` and returns the HTML that shows
    them. Keeps a byte count per prefix so the report can state its size per mixture."""

    out: Path
    preview_seconds: Seconds = PREVIEW_SECONDS
    kbps_per_channel: float = PREVIEW_KBPS_PER_CHANNEL
    sub: str = ""            # sub-folder of assets/ (one per report section: no name clashes)
    bytes_by_prefix: dict[str, int] = field(default_factory=dict)
    progress: bool = False   # sections show a progress bar over their tracks / mixtures

    def bar(self, items, desc: str):
        """``items`` under a progress bar (lines off a terminal; a no-op unless ``progress``)."""
        from ..progress import iterate

        return iterate(items, desc, "item", enabled=self.progress)

    def __post_init__(self):
        self.out = Path(self.out)
        (self.out / "assets" / self.sub).mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> tuple[Path, str]:
        rel = f"assets/{self.sub}/{name}" if self.sub else f"assets/{name}"
        return self.out / rel, rel

    def _count(self, prefix: str, n: int) -> None:
        self.bytes_by_prefix[prefix] = self.bytes_by_prefix.get(prefix, 0) + n

    def figure(self, fig, name: str, alt: str, prefix: str = "", dpi: int = FIGURE_DPI,
               fmt: str = "png") -> str:
        """Save a matplotlib figure as ``assets/<name>.<fmt>`` (png, jpg or webp) rendered at
        ``FIGURE_SCALE`` x ``dpi`` pixels per inch; return an ``<img>`` tag that shows it at
        ``dpi`` CSS pixels per inch (sharp on high-DPI screens)."""
        data = image_bytes(fig, fmt=fmt, dpi=dpi * FIGURE_SCALE)
        path, rel = self._path(slug(name) + "." + fmt)
        path.write_bytes(data)
        self._count(prefix, len(data))
        w, h = (round(x * dpi) for x in fig.get_size_inches())
        return f'<img src="{esc(rel)}" alt="{esc(alt)}" width="{w}" height="{h}">'

    def audio(self, audio: np.ndarray, sample_rate: Hz, name: str, caption: str,
              prefix: str = "") -> str:
        """Encode the first ``preview_seconds`` of float32 ``(channels, frames)`` audio as
        ``assets/<name>.ogg`` (Opus, see :func:`encode_preview`); return a captioned
        ``<audio>`` player."""
        a = np.asarray(audio, dtype=np.float32)[:, :int(self.preview_seconds * sample_rate)]
        path, rel = self._path(slug(name) + ".ogg")
        data = encode_preview(a, int(sample_rate), self.kbps_per_channel)
        path.write_bytes(data)
        self._count(prefix, len(data))
        return (f'<figure><figcaption>{esc(caption)}</figcaption>'
                f'<audio controls preload="metadata" src="{esc(rel)}"></audio></figure>')


def preview_codec(kbps_per_channel: float = PREVIEW_KBPS_PER_CHANNEL) -> str:
    """What :func:`encode_preview` produces here, for the page's footnotes."""
    import soundfile as sf

    if "OPUS" in sf.available_subtypes("OGG"):
        return f"Ogg/Opus 48 kHz, ~{kbps_per_channel:g} kb/s per channel"
    return "Ogg/Vorbis"  # libsndfile < 1.2 has no Opus


def encode_preview(audio: np.ndarray, sample_rate: Hz,
                   kbps_per_channel: float = PREVIEW_KBPS_PER_CHANNEL) -> bytes:
    """Float32 ``(channels, frames)`` -> Ogg file bytes for a browser preview.

    Ogg/Opus at ``kbps_per_channel`` (audio resampled to 48 kHz, Opus' rate) when libsndfile
    supports Opus, else Ogg/Vorbis. Samples are clipped to [-1, 1] first: the encoders' integer
    paths would wrap; clipping is reported by the report's warnings, not hidden by the preview.
    """
    import io as _io

    import soundfile as sf

    a = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if a.ndim != 2 or a.shape[1] == 0:
        raise AudioError(f"no audio to preview (shape {a.shape}; expected (channels, frames) "
                         "with frames > 0)")
    buf = _io.BytesIO()
    if "OPUS" in sf.available_subtypes("OGG"):
        if sample_rate != OPUS_RATE:
            from ..audio.dsp import resample

            a = np.clip(resample(a, sample_rate, OPUS_RATE), -1.0, 1.0)
        level = min(1.0, max(0.0, (256.0 - kbps_per_channel) / 250.0))
        sf.write(buf, np.ascontiguousarray(a.T), OPUS_RATE, format="OGG", subtype="OPUS",
                 compression_level=level)
    else:  # libsndfile < 1.2 has no Opus
        sf.write(buf, np.ascontiguousarray(a.T), int(sample_rate), format="OGG",
                 subtype="VORBIS", compression_level=VORBIS_LEVEL)
    return buf.getvalue()


def page(title: str, sections: Sequence[tuple[str, str, str]], footer: str = "") -> str:
    """The whole page. ``sections`` are ``(anchor, heading, body_html)``."""
    nav = " ".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "\n".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>\n{b}\n</section>'
                     for a, h, b in sections)
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"{GENERATOR}<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
            f"<h1>{esc(title)}</h1><nav>{nav}</nav>\n{body}\n"
            f"<p class=\"muted\">{footer}</p>"
            + (f"<script>{SORT_JS}</script>" if 'class="sortable"' in body else "")
            + "</body></html>\n")
