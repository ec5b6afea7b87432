"""``stemforge info ROOT``: what a dataset holds, per split and per stem."""
from __future__ import annotations

import math

from ._common import add_dataset_args, add_workers_arg, open_index, workers


def add_parser(sub):
    p = sub.add_parser("info", help="summarise a dataset: splits, durations, stems, loudness, "
                       "and where its index and cache live")
    add_dataset_args(p)
    add_workers_arg(p, None, "the analysis (when the index must be built)")
    p.add_argument("--tracks", action="store_true", help="also list every track")
    return p


CACHE_SOURCES = {"given": "given with --cache, now remembered for this root",
                 "remembered": "remembered for this root; --cache to change",
                 "default": "the default for this root", "loaded": "opened as a file"}


def location_lines(index) -> list[str]:
    """Where the index and its caches live, and how much of the stem cache is prepared."""
    stems = [s for t in index.tracks for s in [*t.stems.values(), *([t.mixture] if t.mixture
                                                                     else [])]]
    ready = sum(index.cache.has(s.key) for s in stems)
    how = CACHE_SOURCES.get(getattr(index, "cache_source", ""), "")
    hint = "" if ready == len(stems) else f"; `stemforge prepare {index.root}` decodes the rest"
    return [f"index: {index.index_file}" + (f" ({how})" if how else ""),
            f"stem cache: {index.cache.folder} ({ready} of {len(stems)} stems prepared{hint})"]


def _fmt_db(x):
    return "-inf" if x is None or (isinstance(x, float) and math.isinf(x)) else f"{x:6.1f}"


def fmt_residual(x: float) -> str:
    """A mixture residual in dB; ``exact`` when the mixture equals the stem sum (-inf)."""
    return "exact" if math.isinf(x) and x < 0 else f"{x:.1f} dB"


def summary(index) -> str:
    """A plain-text report of an index (the CLI prints it; tests read it)."""
    lines = [f"dataset: {index.root}  (layout {index.layout}, {len(index)} tracks)"]
    lines += location_lines(index)
    for split, tracks in sorted(index.splits().items(), key=lambda kv: str(kv[0])):
        dur = sum(t.duration for t in tracks)
        rates = sorted({t.sample_rate for t in tracks})
        chans = sorted({t.channels for t in tracks})
        lines.append(
            f"  split {split or '-'}: {len(tracks)} tracks, {dur / 60:.1f} min, "
            f"sample rates {rates}, channels {chans}"
        )
    lines.append("stems (tracks, median loudness LUFS, median silent fraction):")
    for name in index.stem_names:
        stems = [t.stems[name] for t in index.tracks_with(name)]
        louds = sorted(s.loudness for s in stems)
        silent = sorted(s.silent_fraction for s in stems)
        lines.append(f"  {name:<16} {len(stems):5d}  {_fmt_db(louds[len(louds) // 2])}  "
                     f"{silent[len(silent) // 2]:.2f}")
    if index.groups:
        lines.append("groups: " + "; ".join(f"{g} = {' + '.join(m)}"
                                            for g, m in index.groups.items()))
    res = sorted(t.residual_db for t in index.tracks if t.residual_db is not None)
    if res:
        exact = sum(math.isinf(r) for r in res)
        lines.append(f"real mixture vs stem sum residual: median {fmt_residual(res[len(res) // 2])}"
                     f" (min {fmt_residual(res[0])}, max {fmt_residual(res[-1])}) relative to the "
                     f"mixture; {exact} of {len(res)} tracks exact (mixture == sum of stems)")
    lines += label_lines(index)
    notes = [(t.id, n) for t in index.tracks for n in t.notes]
    for tid, n in notes:
        lines.append(f"note: {tid}: {n}")
    return "\n".join(lines)


def label_lines(index) -> list[str]:
    """Taxonomy targets and the labels no target claims; without a taxonomy, the labels seen."""
    tax = getattr(index, "taxonomy", None)
    if tax:
        out = ["taxonomy: " + "; ".join(f"{t} = {v if v == '*' else ', '.join(v)}"
                                        for t, v in tax["targets"].items())]
        un = tax.get("unclaimed") or {}
        out.append("unclaimed labels (dropped): " + (", ".join(
            f"{lb} ({n} tracks)" for lb, n in un.items()) if un else "none"))
        return out
    labels = sorted({s.label for t in index.tracks for s in t.stems.values() if s.label})
    return ["instrument labels (map them with --taxonomy): " + ", ".join(labels)] if labels else []


def run(args) -> int:
    index = open_index(args, workers=workers(args))
    print(summary(index))
    if args.tracks:
        for t in index.tracks:
            res = (f", residual {fmt_residual(t.residual_db)}" if t.residual_db is not None
                   else "")
            loud = ", ".join(f"{n} {_fmt_db(s.loudness).strip()}" for n, s in t.stems.items())
            print(f"  {t.id} [{t.split or '-'}] {t.duration:.2f} s {t.sample_rate} Hz "
                  f"{t.channels} ch; {loud}{res}")
    return 0
