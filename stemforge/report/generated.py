"""Report section for a generated set (``stemforge generate`` output)::

    DIR/<id>/mixture.wav, DIR/<id>/<target>.wav, DIR/<id>/spec.json
    DIR/manifest.csv, DIR/stemforge-job.json

Per mixture: players for the mix and every target, a spectrogram image, the drawn parameters.
Across the set: histograms of gains, SNRs, reference levels, clip scaling, and mode counts.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..audio import io
from ..errors import StemforgeError
from ..mixing.spec import MixSpec
from . import plots
from .html import Assets, esc, preview_codec, problems_html, slug, table
from .section import Section

SPEC_FILE = "spec.json"
MIX_FILE = "mixture.wav"
JOB_FILE = "stemforge-job.json"
MANIFEST_FILE = "manifest.csv"


@dataclass
class Item:
    """One mixture folder; ``spec`` is None when spec.json is missing or invalid (``error``)."""

    id: str
    dir: Path
    spec: MixSpec | None
    error: str | None = None

    def target_files(self) -> dict[str, Path]:
        """name -> wav path: the spec's targets in order, else every non-mixture wav."""
        if self.spec is not None:
            return {t: self.dir / f"{t}.wav" for t in self.spec.targets}
        return {p.stem: p for p in sorted(self.dir.glob("*.wav")) if p.name != MIX_FILE}


def is_generated_set(path: Path) -> bool:
    """A folder with a job file, a manifest, or child folders holding a spec.json."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / JOB_FILE).is_file() or (path / MANIFEST_FILE).is_file():
        return True
    return any((c / SPEC_FILE).is_file() for c in path.iterdir() if c.is_dir())


def load_items(path: Path) -> list[Item]:
    """Every mixture folder under ``path`` (a child folder with a spec.json or any .wav),
    sorted by id. Invalid specs are kept as items with ``error`` set."""
    items = []
    for d in sorted(p for p in Path(path).iterdir() if p.is_dir() and not p.name.startswith(".")):
        spec_file = d / SPEC_FILE
        if not spec_file.is_file() and not any(d.glob("*.wav")):
            continue
        if not spec_file.is_file():
            items.append(Item(d.name, d, None, f"{spec_file}: spec file not found"))
            continue
        try:
            items.append(Item(d.name, d, MixSpec.load(spec_file)))
        except StemforgeError as e:
            items.append(Item(d.name, d, None, str(e)))
    return items


def generated_figures(specs) -> dict[str, Figure]:
    """Histograms across a set: ``gains`` (applied gain in dB per stem), ``snrs`` (drawn SNR per
    stem, for stems levelled by SNR), ``ref_db``, ``scale`` (clip scaling in dB) and ``modes``
    (bar counts). Stems in the recipe's order (as the specs list their sources).

    ``specs`` is a list of :class:`MixSpec` or a generated-set folder.
    """
    if isinstance(specs, (str, Path)):
        specs = [i.spec for i in load_items(Path(specs)) if i.spec is not None]
    stems = list(dict.fromkeys(src.stem for s in specs for src in s.sources))
    gains = {n: [src.gain_db for s in specs for src in s.sources
                 if src.stem == n and not src.dropped] for n in stems}
    snrs = {n: [src.snr for s in specs for src in s.sources
                if src.stem == n and src.snr is not None and not src.dropped] for n in stems}
    snrs = {n: v for n, v in snrs.items() if v}
    modes: dict[str, int] = {}
    for s in specs:
        modes[s.mode] = modes.get(s.mode, 0) + 1
    return {
        "gains": plots.histogram_figure(gains, "applied gain per stem", "gain (dB)"),
        "snrs": plots.histogram_figure(snrs, "drawn SNR per stem (loudness re ref_db)",
                                       "SNR (LU)"),
        "ref_db": plots.histogram_figure({"ref_db": [s.ref_db for s in specs]},
                                         "reference loudness", "LUFS"),
        "scale": plots.histogram_figure(
            {"scale": [20 * math.log10(s.scale) if s.scale > 0 else -math.inf for s in specs]},
            "clip scaling of the mixture", "dB"),
        "modes": plots.bar_figure(modes, "mixtures per mode"),
    }


def _read_preview(path: Path, seconds: float) -> tuple[np.ndarray, int]:
    inf = io.info(path)
    n = min(inf.frames, int(seconds * inf.sample_rate))
    return io.read(path, 0, n), inf.sample_rate


def mixture_figure(item_dir, seconds: float = 10.0) -> Figure:
    """Spectrograms of one mixture folder: the mix, then every target (first ``seconds``)."""
    item = Item(Path(item_dir).name, Path(item_dir), None)
    if (item.dir / SPEC_FILE).is_file():
        item.spec = MixSpec.load(item.dir / SPEC_FILE)
    files = {"mix": item.dir / MIX_FILE, **item.target_files()}
    signals, sr = {}, 44100
    for name, p in files.items():
        signals[name], sr = _read_preview(p, seconds)
    return plots.spectrogram_figure(signals, sr, title=item.id)


def _steps_text(steps: list[dict]) -> str:
    out = []
    for st in steps:
        name = st.get("step") or st.get("name") or "step"
        args = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in st.items() if k not in ("step", "name"))
        out.append(f"{name}({args})")
    return "; ".join(out) or "–"


def params_html(spec: MixSpec) -> str:
    """The drawn parameters of one spec: a summary line and one row per source."""
    head = (f"<p>mode <b>{esc(spec.mode)}</b>, {spec.duration:.2f} s at {spec.sample_rate} Hz, "
            f"ref_db {plots.fmt(spec.ref_db)} LUFS, peak before clip fix {spec.peak:.3f}, "
            f"scale {spec.scale:.3f} ({esc(spec.clipping)}), "
            f"recipe <b>{esc(spec.recipe_name)}</b> "
            f"<code>{esc(spec.recipe_hash[:12])}</code>, seed {spec.seed} epoch {spec.epoch} "
            f"item {spec.item}, attempts {spec.attempts}</p>")
    rows = [[s.stem, s.target, s.track,
             f"{s.start / (s.track_sample_rate or spec.sample_rate):.2f}",
             plots.fmt(s.gain_db), plots.fmt(s.snr), plots.fmt(s.loudness), plots.fmt(s.boost),
             plots.fmt(s.active_fraction, 2), "yes" if s.dropped else "", _steps_text(s.steps)]
            for s in spec.sources]
    warn = "".join(f'<p class="warn">{esc(w)}</p>' for w in spec.warnings)
    return head + warn + table(["stem", "target", "track", "start (s)", "gain (dB)", "SNR",
                                "LUFS before gain", "boost", "active", "dropped", "steps"],
                               rows, left=3)


def _item_card(item: Item, assets: Assets) -> tuple[str, list[str], bool]:
    """(html, problems, rendered) for one mixture folder."""
    problems = [] if item.error is None else [f"mixture {item.id}: {item.error}"]
    files = {"mix": item.dir / MIX_FILE, **item.target_files()}
    players, signals, sr = [], {}, None
    for name, p in files.items():
        try:
            a, sr_ = _read_preview(p, assets.preview_seconds)
            players.append(assets.audio(a, sr_, f"gen-{item.id}-{name}", name, prefix="gen"))
        except StemforgeError as e:
            problems.append(f"mixture {item.id}: cannot read {name}: {e}")
            continue
        sr = sr_
        signals[name] = a
    img = ""
    if signals:
        img = assets.figure(plots.spectrogram_figure(signals, sr), f"gen-{item.id}-spec",
                            f"spectrograms of {item.id}", prefix="gen", fmt="webp")
    body = (f'<div class="card" id="m-{esc(slug(item.id))}"><h3>{esc(item.id)}</h3>'
            + problems_html(problems)
            + (f'<div class="players">{"".join(players)}</div>' if players else "")
            + img + (params_html(item.spec) if item.spec is not None else "") + "</div>")
    return body, problems, bool(players)


def _job_html(path: Path, problems: list[str]) -> str:
    parts = []
    job = path / JOB_FILE
    if job.is_file():
        try:
            data = json.loads(job.read_text())
            parts.append("<details><summary>job file</summary><pre>"
                         + esc(json.dumps(data, indent=1)[:20000]) + "</pre></details>")
        except (OSError, ValueError) as e:
            problems.append(f"{job}: not readable JSON ({e})")
    man = path / MANIFEST_FILE
    if man.is_file():
        import pandas as pd

        try:
            df = pd.read_csv(man, dtype={"id": str})
            cols = esc(", ".join(map(str, df.columns)))
            parts.append(f"<p>manifest: {len(df)} rows, columns {cols}</p>")
            if "id" in df.columns:
                missing = sorted(set(map(str, df["id"])) - {p.name for p in path.iterdir()})
                if missing:
                    problems.append(f"{man}: {len(missing)} listed mixtures have no folder "
                                    f"(e.g. {', '.join(missing[:5])})")
        except (OSError, ValueError) as e:
            problems.append(f"{man}: not a readable CSV ({e})")
    return "".join(parts)


def generated_section(path: Path, assets: Assets, max_items: int = 100) -> Section:
    """Build the report section of the generated set at ``path``."""
    path = Path(path)
    sec = Section("generated", path, f"Generated set {path.name}")
    parts = [_job_html(path, sec.problems)]
    items = load_items(path)
    if not items:
        sec.problems.append(f"{path}: the generated set is empty (no <id>/ folder with "
                            f"{SPEC_FILE} or {MIX_FILE})")
        sec.body = "".join(parts)
        return sec
    specs = [i.spec for i in items if i.spec is not None]
    targets = list(dict.fromkeys(t for s in specs for t in s.targets))  # the recipe's order
    parts.append(f"<p>{len(items)} mixtures, {len(specs)} with a valid spec; targets "
                 f"{esc(', '.join(targets) or '-')}</p>")
    if specs:
        parts.append('<div class="figs">' + "".join(
            assets.figure(f, f"gen-{slug(path.name)}-{k}", k, prefix="gen-set")
            for k, f in generated_figures(specs).items()) + "</div>")
    shown = items[:max_items]
    parts.append(f"<h3>mixtures: listen and look ({len(shown)} of {len(items)})</h3>")
    for item in assets.bar(shown, "report mixtures"):
        card, probs, ok = _item_card(item, assets)
        parts.append(card)
        sec.problems.extend(probs)
        sec.rendered += ok
    if sec.rendered:
        sec.bytes_per_item = assets.bytes_by_prefix.get("gen", 0) / sec.rendered
        parts.append(f'<p class="muted">previews: first {assets.preview_seconds:g} s, '
                     f'{preview_codec(assets.kbps_per_channel)}; '
                     f'{sec.bytes_per_item / 1024:.0f} KiB of audio and images per mixture</p>')
    sec.body = "".join(parts)
    return sec
