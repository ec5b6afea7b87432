"""Report section for a ``stemforge doctor`` output (``doctor.json`` or its folder): the
datasets checked, findings per kind and severity, duplicate pairs, every finding, and players
for the flagged spans of the worst findings (listen to what the doctor heard)."""
from __future__ import annotations

from pathlib import Path

from ..audio import io
from ..errors import StemforgeError
from . import plots
from .html import Assets, esc, slug, table
from .section import Section


def is_doctor_output(path: Path) -> bool:
    """``doctor.json`` itself, or a folder holding one."""
    p = Path(path)
    return (p.is_file() and p.name == "doctor.json") or (p.is_dir() and (p / "doctor.json").is_file())


def _spans(spans) -> str:
    return " ".join(f"{a:.1f}-{b:.1f}" for a, b in spans[:4]) + (" ..." if len(spans) > 4 else "") \
        if spans else "all"


def _player(assets: Assets, facts: dict, track: str, stem: str, start: float, label: str
            ) -> str:
    """A player of ``stem`` of ``track`` from ``start`` seconds (empty if it cannot be read)."""
    src = facts.get((track, stem))
    if not src or src.get("summed") or src.get("channel") is not None:
        return ""
    sr = src["sample_rate"]
    first = max(0, int(start * sr))
    n = max(0, min(src["frames"] - first, int(assets.preview_seconds * sr)))
    if n == 0:
        return ""
    a = io.read(src["path"], first, n, src.get("stream"))
    return assets.audio(a, sr, f"doc-{track}-{stem}-{first}", label, prefix="doc")


def doctor_section(path: Path, assets: Assets, max_items: int = 100) -> Section:
    """Build the section of the doctor report at ``path``."""
    from ..doctor.findings import KINDS, SEVERITIES, DoctorReport

    path = Path(path)
    sec = Section("doctor", path, f"Doctor {path.parent.name if path.is_file() else path.name}")
    try:
        rep = DoctorReport.load(path)
    except StemforgeError as e:
        sec.problems.append(str(e))
        return sec
    parts = ["<h3>datasets</h3>", table(
        ["name", "layout", "root", "tracks", "splits", "hours"],
        [[d.get("name"), d.get("layout"), d.get("root"), d.get("tracks"),
          ", ".join(f"{k}: {v}" for k, v in d.get("splits", {}).items()),
          f"{d.get('seconds', 0) / 3600:.2f}"] for d in rep.datasets], left=3)]
    summary = rep.summary()
    parts.append("<h3>findings per kind</h3>")
    if summary:
        parts.append(table(["kind", "what it means", *SEVERITIES],
                           [[k, KINDS[k], *(summary[k][s] for s in SEVERITIES)] for k in summary],
                           left=2))
        counts = {k: sum(v for s, v in summary[k].items() if s != "info") for k in summary}
        counts = {k: v for k, v in counts.items() if v}
        if counts:
            parts.append('<div class="figs">' + assets.figure(
                plots.bar_figure(counts, "findings above info per kind"),
                f"doc-{slug(sec.title)}-kinds", "findings per kind", prefix="doc") + "</div>")
    else:
        parts.append('<p class="ok">no findings</p>')
    dups = [f for f in rep.findings if f.kind == "duplicate"]
    if dups:
        parts.append(f"<h3>duplicates ({len(dups)})</h3>")
        parts.append(table(
            ["track", "split", "stems", "span", "shares with", "their split", "their span",
             "offset (s)", "similarity", "leakage"],
            [[f"{f.dataset}:{f.track}", f.detail.get("split") or "-",
              ", ".join(f.detail.get("stems") or []) or "mixture", _spans(f.spans),
              f"{f.detail['other']['dataset']}:{f.detail['other']['track']}",
              f.detail["other"].get("split") or "-", _spans([f.detail["other"]["span"]]),
              f"{f.detail.get('offset_s', 0):+.2f}", f"{f.detail.get('similarity', 0):.2f}",
              "yes" if f.detail.get("leakage") else "no"] for f in dups], left=6))
    shown = rep.findings[:max(max_items, 0)]
    parts.append(f"<h3>findings ({len(shown)} of {len(rep.findings)})</h3>")
    if shown:
        parts.append(table(["severity", "kind", "dataset", "track", "stem", "spans", "action",
                            "message"],
                           [[f.severity, f.kind, f.dataset, f.track, f.stem or "-",
                             _spans(f.spans), f.action, f.message] for f in shown], left=8))
    # listen: the worst findings with a time span
    facts = {((t["dataset"], t["track"]), name): src
             for t in rep.tracks for name, src in t.get("sources", {}).items()}
    listen = [f for f in rep.findings if f.rank >= 1 and (f.spans or f.kind == "duplicate")]
    cards = []
    for f in listen[: max(0, min(max_items, 20))]:
        stem = f.stem or "mixture"
        players = []
        try:
            start = f.spans[0][0] if f.spans else 0.0
            players.append(_player(assets, facts, (f.dataset, f.track), stem, start,
                                   f"{f.track} {stem} from {start:.1f} s"))
            if f.kind == "duplicate":
                o = f.detail["other"]
                players.append(_player(assets, facts, (o["dataset"], o["track"]), stem,
                                       o["span"][0], f"{o['track']} {stem} from "
                                       f"{o['span'][0]:.1f} s"))
        except StemforgeError as e:
            sec.problems.append(f"{f.dataset}:{f.track}: cannot play {stem}: {e}")
        players = [p for p in players if p]
        if players:
            cards.append(f'<div class="card"><b>{esc(f.kind)}</b> {esc(f.message)}'
                         f'<div class="players">{"".join(players)}</div></div>')
    if cards:
        parts.append(f"<h3>listen ({len(cards)} findings)</h3>" + "".join(cards))
    sec.body = "\n".join(parts)
    sec.rendered = max(1, sum(d.get("tracks", 0) for d in rep.datasets))
    return sec
