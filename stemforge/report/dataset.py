"""Report section for an indexed dataset: per-split track tables, loudness, activity, warnings,
and listenable excerpts of every stem."""
from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from ..errors import StemforgeError
from ..types import Decibels
from . import plots
from .html import Assets, esc, problems_html, slug, table
from .section import Section

SILENT_FRACTION = 0.99           # a stem silent in >= 99 % of its 100 ms windows is "silent"
CLIP_PEAK = 1.0                  # |sample| >= 1.0 is clipping
RESIDUAL_WARN_DB: Decibels = -6.0  # real mixture vs stem sum closer than this: warn
ACTIVITY_WINDOW = 0.1            # seconds per entry of Index.activity


def track_warnings(track) -> list[str]:
    """Plain-text warnings for one :class:`~stemforge.index.Track`: silent stems, clipping,
    the index's consistency notes (e.g. mismatched lengths), a large mixture residual."""
    out = []
    for name, s in track.stems.items():
        if s.silent_fraction >= SILENT_FRACTION or math.isinf(s.loudness):
            out.append(f"stem '{name}' is silent (active in {100 * (1 - s.silent_fraction):.0f} %"
                       f" of the track)")
        if s.peak >= CLIP_PEAK:
            out.append(f"stem '{name}' clips (peak {s.peak:.3f} >= {CLIP_PEAK:g})")
    if track.mixture is not None and track.mixture.peak >= CLIP_PEAK:
        out.append(f"real mixture clips (peak {track.mixture.peak:.3f} >= {CLIP_PEAK:g})")
    out.extend(track.notes)
    if track.residual_db is not None and track.residual_db > RESIDUAL_WARN_DB:
        out.append(f"real mixture differs from the stem sum by {track.residual_db:.1f} dB "
                   f"(> {RESIDUAL_WARN_DB:g} dB relative to the mixture)")
    return out


def dataset_figures(index) -> dict[str, Figure]:
    """Figures for an :class:`~stemforge.index.Index` (or a path ``Index.open`` accepts):
    ``loudness`` and ``activity`` (boxplots per stem over tracks), ``durations`` (histogram per
    split)."""
    from ..index import Index

    index = index if isinstance(index, Index) else Index.open(Path(index))
    names = index.stem_names
    loud = {n: [t.stems[n].loudness for t in index.tracks_with(n)] for n in names}
    active = {n: [1.0 - t.stems[n].silent_fraction for t in index.tracks_with(n)]
              for n in names}
    durs = {str(s or "-"): [t.duration for t in ts] for s, ts in index.splits().items()}
    return {
        "loudness": plots.boxplot_figure(loud, "integrated loudness per stem", "LUFS"),
        "activity": plots.boxplot_figure(active, "active fraction per stem (100 ms windows "
                                         "above -60 dB)", "fraction"),
        "durations": plots.histogram_figure(durs, "track durations", "seconds"),
    }


def track_activity_figure(index, track) -> Figure:
    """Activity over time of every stem of ``track`` (from the index's stored energies)."""
    masks = {n: index.activity(track.id, n) for n in track.stems}
    return plots.activity_figure(masks, ACTIVITY_WINDOW, f"activity: {track.name}")


def _split_table(tracks, names) -> str:
    header = ["track", "duration (s)", "rate (Hz)", "ch", "mix LUFS", "mix peak",
              "residual (dB)"] + [f"{n} LUFS / active" for n in names] + ["warnings"]
    rows = []
    for t in tracks:
        w = track_warnings(t)
        stems = [(f"{plots.fmt(t.stems[n].loudness)} / "
                  f"{100 * (1 - t.stems[n].silent_fraction):.0f} %" if n in t.stems else "–")
                 for n in names]
        mix = t.mixture
        rows.append([f'<a href="#t-{esc(slug(t.id))}">{esc(t.id)}</a>', f"{t.duration:.2f}",
                     t.sample_rate, t.channels,
                     plots.fmt(mix.loudness) if mix else "–",
                     plots.fmt(mix.peak, 3) if mix else "–",
                     "exact" if t.residual_db == -math.inf else plots.fmt(t.residual_db)]
                    + [esc(s) for s in stems]
                    + [f'<span class="warn">{len(w)}</span>' if w else '<span class="ok">0</span>'])
    return table(header, rows, raw=True)


def _track_card(index, track, assets: Assets) -> tuple[str, list[str]]:
    """Players (real mixture, then each stem), activity strip, warnings. Returns (html,
    problems)."""
    problems, players = [], []
    n = min(track.frames, int(assets.preview_seconds * track.sample_rate))
    names = (["mixture"] if track.mixture is not None else []) + list(track.stems)
    for name in names:
        try:
            a = (index.read_mixture(track.id, 0, n) if name == "mixture"
                 else index.read(track.id, name, 0, n))
            players.append(assets.audio(a, track.sample_rate, f"ds-{track.id}-{name}",
                                        "real mixture" if name == "mixture" else name,
                                        prefix="ds"))
        except StemforgeError as e:
            problems.append(f"track {track.id}: cannot read {name}: {e}")
    try:
        img = assets.figure(track_activity_figure(index, track), f"ds-{track.id}-activity",
                            f"stem activity of {track.id}", prefix="ds")
    except StemforgeError as e:
        problems.append(f"track {track.id}: no activity plot: {e}")
        img = ""
    warns = track_warnings(track)
    body = (f'<div class="card" id="t-{esc(slug(track.id))}"><h3>{esc(track.id)}</h3>'
            + problems_html(problems)
            + (f'<p class="muted">first {n / track.sample_rate:.1f} s of '
               f'{track.duration:.1f} s</p><div class="players">{"".join(players)}</div>'
               if players else "")
            + img
            + ("<ul>" + "".join(f'<li class="warn">{esc(w)}</li>' for w in warns) + "</ul>"
               if warns else '<p class="ok">no warnings</p>')
            + "</div>")
    return body, problems


def dataset_section(path: Path, assets: Assets, max_items: int = 100,
                    layout: str | None = None) -> Section:
    """Open the index at ``path`` (root or index.jsonl; ``layout`` as in ``Index.open``) and
    build its report section."""
    from ..index import Index

    sec = Section("dataset", Path(path), f"Dataset {Path(path).name}")
    try:
        index = Index.open(Path(path), layout=layout)
    except StemforgeError as e:
        sec.problems.append(f"{path}: cannot open as a dataset: {e}")
        return sec
    sec.title = f"Dataset {index.root.name}"  # the root's name, also when given index.jsonl
    if len(index) == 0:
        sec.problems.append(f"{path}: the dataset holds no tracks")
        return sec
    names = index.stem_names
    parts = [f"<p>root <code>{esc(index.root)}</code>, layout <b>{esc(index.layout)}</b>, "
             f"{len(index)} tracks, stems: {esc(', '.join(names))}</p>"]
    if index.groups:
        parts.append("<p>groups: " + esc("; ".join(f"{g} = {' + '.join(m)}"
                                                  for g, m in index.groups.items())) + "</p>")
    for split, tracks in sorted(index.splits().items(), key=lambda kv: str(kv[0])):
        dur = sum(t.duration for t in tracks)
        parts.append(f"<h3>split {esc(split or '-')}: {len(tracks)} tracks, {dur / 60:.1f} min, "
                     f"rates {sorted({t.sample_rate for t in tracks})}</h3>")
        parts.append(_split_table(tracks, names))
    figs = dataset_figures(index)
    parts.append('<div class="figs">' + "".join(
        assets.figure(f, f"ds-{slug(index.root.name)}-{k}", k, prefix="ds")
        for k, f in figs.items()) + "</div>")
    all_warn = [(t.id, w) for t in index.tracks for w in track_warnings(t)]
    parts.append(f"<h3>warnings ({len(all_warn)})</h3>")
    if all_warn:
        parts.append(table(["track", "warning"], all_warn, left=2))
    shown = index.tracks[:max_items]
    parts.append(f"<h3>tracks: listen and look ({len(shown)} of {len(index)})</h3>")
    for t in assets.bar(shown, "report tracks"):
        card, probs = _track_card(index, t, assets)
        parts.append(card)
        sec.problems.extend(probs)
    sec.body = "\n".join(parts)
    sec.rendered = len(index)
    return sec
