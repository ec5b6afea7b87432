"""Methods side by side, as museval's MethodStore compares them: for every target a table of
each method's aggregates (each metric aggregated as its field reports it, the aggregation
named), boxplots of the per-track values, a per-track table sortable by any method's score,
method-vs-method scatter of the tracks with the diagonal, and players: for each method's worst
and best track, the excerpt where it and the method most different on that track differ most.

Listening needs the audio: a ``stemforge evaluate`` record names each method's estimates folder
and the references' index; methods without them (museval JSON from elsewhere) are compared by
their scores only.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import StemforgeError
from ..metrics import chunk_sdr
from ..metrics.results import AGGREGATION, HEADLINE, METRIC_ORDER, MethodResults, summary_table
from . import plots
from .html import Assets, esc, slug, sortable_table

MAX_PAIRS = 6          # scatter panels per target


def primary_metric(methods: Mapping[str, MethodResults]) -> str | None:
    """The metric worst/best tracks and scatters use: SDR, else the first headline metric."""
    have = {m for r in methods.values() for m in r.metrics}
    for m in HEADLINE + METRIC_ORDER:
        if m in have:
            return m
    return next(iter(sorted(have)), None)


def legend(metrics) -> str:
    parts = [f"<b>{esc(m)}</b>: {esc(AGGREGATION[m][1])}" for m in metrics if m in AGGREGATION]
    return f'<p class="legend">{"; ".join(parts)}.</p>' if parts else ""


def _pairs(names: list[str]) -> list[tuple[str, str]]:
    if len(names) <= 4:
        return list(itertools.combinations(names, 2))[:MAX_PAIRS]
    return [(names[0], n) for n in names[1:]][:MAX_PAIRS]


def _per_track(methods: Mapping[str, MethodResults], target: str, metric: str
               ) -> dict[str, dict[str, float]]:
    """method -> track -> value of ``metric`` for ``target``."""
    out = {}
    for name, r in methods.items():
        sub = r.tracks[(r.tracks["target"] == target) & (r.tracks["metric"] == metric)]
        out[name] = dict(zip(sub["track"], sub["score"].astype(float)))
    return out


class Listener:
    """Reads references, mixtures and estimates for the players (indexes opened once)."""

    def __init__(self):
        self._indexes: dict[Path, object] = {}

    def index(self, path: Path):
        if path not in self._indexes:
            from ..index import Index

            self._indexes[path] = Index.load(path, refresh=False)
        return self._indexes[path]

    def track(self, method: MethodResults, name: str):
        if method.estimates is None or method.index_file is None:
            raise StemforgeError(f"method {method.name!r}: no estimates folder recorded")
        index = self.index(method.index_file)
        for g, members in method.groups.items():
            index.groups.setdefault(g, list(members))
        for t in index.tracks:
            if t.name == name:
                return index, t
        raise StemforgeError(f"track {name!r} is not in the index {method.index_file}")

    @staticmethod
    def estimate(method: MethodResults, track: str, target: str, frames: int) -> np.ndarray:
        from ..audio import io

        a = io.read(Path(method.estimates) / track / f"{target}.wav")
        if a.shape[1] >= frames:
            return a[:, :frames]
        return np.pad(a, ((0, 0), (0, frames - a.shape[1])))


def excerpt_start(ref: np.ndarray, a: np.ndarray, b: np.ndarray, sample_rate: int,
                  seconds: float) -> tuple[int, float]:
    """Start frame of the ``seconds``-long excerpt where the 1 s chunk SDRs of estimates ``a``
    and ``b`` of ``ref`` differ most (largest summed absolute difference; silent chunks count
    0), and that mean absolute difference in dB."""
    sa = chunk_sdr([ref], [a], win=sample_rate)[0]
    sb = chunk_sdr([ref], [b], win=sample_rate)[0]
    d = np.nan_to_num(np.abs(sa - sb), nan=0.0)
    w = int(max(1, min(len(d), round(seconds))))
    sums = np.convolve(d, np.ones(w), mode="valid")
    k = int(np.argmax(sums))
    return k * sample_rate, float(sums[k] / w)


def _cards(methods: Mapping[str, MethodResults], target: str, metric: str, assets: Assets,
           limit: int, listener: Listener, key: str) -> tuple[str, list[str]]:
    vals = _per_track(methods, target, metric)
    names = [n for n in methods if vals.get(n)]
    audible = [n for n in names if methods[n].estimates is not None
               and methods[n].index_file is not None]
    if len(names) < 2 or limit <= 0:
        return "", []
    if len(audible) < 2:
        return ('<p class="muted">no players: listening needs two methods with estimates '
                'recorded by <code>stemforge evaluate</code></p>'), []
    chosen, seen = [], set()
    for m in audible:
        finite = {t: v for t, v in vals[m].items() if np.isfinite(v)}
        if not finite:
            continue
        lo, hi = min(finite, key=finite.get), max(finite, key=finite.get)
        for label, track in ((("worst", lo), ("best", hi)) if lo != hi
                             else (("worst and best", lo),)):
            others = [o for o in audible if o != m and np.isfinite(vals[o].get(track, np.nan))]
            if not others:
                continue
            other = max(others, key=lambda o: abs(vals[o][track] - finite[track]))
            pair = (track, frozenset((m, other)))
            if pair in seen:
                continue
            seen.add(pair)
            chosen.append((label, m, other, track))
    html, problems = [], []
    for n, (label, m, other, track) in enumerate(chosen[:limit]):
        try:
            index, t = listener.track(methods[m], track)
            ref = index.read(t.id, target)
            a = listener.estimate(methods[m], track, target, ref.shape[1])
            b = listener.estimate(methods[other], track, target, ref.shape[1])
            start, diff = excerpt_start(ref, a, b, t.sample_rate, assets.preview_seconds)
            stop = min(ref.shape[1], start + int(assets.preview_seconds * t.sample_rate))
            mix = index.read_input(t.id)[:, start:stop]
        except (StemforgeError, OSError) as e:
            problems.append(f"{target}, track {track!r}: no players ({e})")
            continue
        base = f"cmp-{key}-{slug(target)}-{n}"
        players = [assets.audio(mix, t.sample_rate, f"{base}-mix", "mixture", prefix="cmp"),
                   assets.audio(ref[:, start:stop], t.sample_rate, f"{base}-ref",
                                f"reference {target}", prefix="cmp"),
                   assets.audio(a[:, start:stop], t.sample_rate, f"{base}-a",
                                f"{m} ({plots.fmt(vals[m][track])} dB)", prefix="cmp"),
                   assets.audio(b[:, start:stop], t.sample_rate, f"{base}-b",
                                f"{other} ({plots.fmt(vals[other][track])} dB)", prefix="cmp")]
        sr = t.sample_rate
        html.append(
            f'<div class="card"><h4>{esc(label)} track for {esc(m)}: {esc(track)}</h4>'
            f'<p class="muted">{esc(target)} {esc(metric)}: {esc(m)} '
            f'{plots.fmt(vals[m][track], 2)} dB, {esc(other)} {plots.fmt(vals[other][track], 2)}'
            f' dB; excerpt {start / sr:.1f}&ndash;{stop / sr:.1f} s of {t.duration:.1f} s, where '
            f'their 1 s SDRs differ most (mean |&Delta;| {diff:.1f} dB)</p>'
            f'<div class="players">{"".join(players)}</div></div>')
    return "".join(html), problems


def comparison_html(methods: Mapping[str, MethodResults], assets: Assets, max_items: int = 100,
                    key: str = "cmp") -> tuple[str, list[str]]:
    """The comparison's HTML (one part per target) and its problems; ``methods`` in order."""
    problems: list[str] = []
    metric = primary_metric(methods)
    summary = summary_table(methods)
    targets = list(dict.fromkeys(t for r in methods.values() for t in r.targets))
    n_tracks = len({t for r in methods.values() for t in r.track_names})
    all_metrics = [m for m in METRIC_ORDER if m in set(summary["metric"])]
    parts = [f"<p>{len(methods)} methods ({esc(', '.join(methods))}), {n_tracks} tracks, targets "
             f"{esc(', '.join(targets))}. Worst/best tracks and scatters use "
             f"<b>{esc(metric or '-')}</b>. Per method and target, each metric is aggregated "
             "over tracks as its field reports it:</p>" + legend(all_metrics)]
    listener = Listener()
    for target in targets:
        sub = summary[summary["target"] == target]
        metrics = [m for m in METRIC_ORDER if m in set(sub["metric"])]
        metrics += sorted(set(sub["metric"]) - set(metrics))
        rows = []
        for name in methods:
            s = sub[sub["method"] == name].set_index("metric")
            if not len(s):
                continue
            rows.append([name] + [float(s.loc[m, "score"]) if m in s.index else np.nan
                                  for m in metrics] + [int(s["tracks"].max())])
        parts.append(f'<h3 id="{esc(key)}-{esc(slug(target))}">{esc(target)}</h3>')
        parts.append(sortable_table(["method", *metrics, "tracks"], rows))
        shown = [m for m in HEADLINE if m in metrics][:4] or metrics[:1]
        box = {m: {n: list(v.values()) for n, v in _per_track(methods, target, m).items()
                   if v} for m in shown}
        figs = [assets.figure(plots.method_boxplot_figure(box, f"{target}: per-track values"),
                              f"{key}-{target}-box", f"{target} boxplots", prefix="cmp-fig")]
        if metric:
            vals = _per_track(methods, target, metric)
            names = [n for n in methods if vals.get(n)]
            pairs = []
            for a, b in _pairs(names):
                common = sorted(set(vals[a]) & set(vals[b]))
                pairs.append((a, b, [vals[a][t] for t in common], [vals[b][t] for t in common]))
            if pairs:
                figs.append(assets.figure(
                    plots.scatter_figure(pairs, metric, f"{target}: {metric} per track"),
                    f"{key}-{target}-scatter", f"{target} scatter", prefix="cmp-fig"))
        parts.append('<div class="figs">' + "".join(figs) + "</div>")
        per = {m: _per_track(methods, target, m) for m in shown}
        tracks = sorted({t for m in shown for v in per[m].values() for t in v})
        header = ["track"] + [f"{n} {m}" for m in shown for n in methods if per[m].get(n)]
        cols = [(m, n) for m in shown for n in methods if per[m].get(n)]
        table_rows = [[t] + [per[m][n].get(t, np.nan) for m, n in cols] for t in tracks]
        parts.append(f"<details open><summary>per track ({len(tracks)}; click a column to "
                     'sort)</summary><div class="wide">' + sortable_table(header, table_rows)
                     + "</div></details>")
        if metric:
            cards, probs = _cards(methods, target, metric, assets, max_items, listener, key)
            problems += probs
            if cards:
                parts.append(f"<h4>listen: worst and best tracks ({esc(target)})</h4>" + cards)
    return "".join(parts), problems
