"""What is augmentation worth? Train the same separator on three recipes, score on held-out tracks.

Conditions (same model, same initial weights, same steps, batch size and learning rate; only the
training recipe differs — all three draw from the index's ``train`` split):

* ``plain``     — coherent excerpts only (all stems of one track at one start), original levels,
  no augmentation: the "just cut the multitracks into pieces" baseline.
* ``tutorial``  — the seed tutorial's recipe, ``recipes/musdb_vocals_augmented.yaml``: coherent
  or incoherent (p = 0.5), each stem loudness-normalised to ``ref_db + snr`` (Scaper semantics,
  ref_db uniform(-30, -10) LUFS, snr uniform(-5, 5) dB), pitch uniform(-2, 2) semitones and tempo
  uniform(0.9, 1.1) with p = 0.5 (Rubber Band hq), fix_clipping.
* ``stemforge`` — stemforge's recommended recipe, ``recipes/stemforge_recommended.yaml`` (see
  docs/experiments.md for the reasons behind each choice).

The recipes' targets, sample rate, channels and excerpt duration are replaced by the
experiment's, so every condition trains the same model. Scores (:mod:`stemforge.train.evaluate`)
are on whole tracks of ``eval_split``, next to the oracle upper bounds IRM1/IRM2 and the
mixture-as-estimate lower bound on the same tracks.

Output folder: ``<condition>/`` (a training run, resumable), ``scores.csv`` (per track),
``summary.csv`` (median over tracks), ``summary.md`` (tables), ``summary.png`` (SDR per target
and validation loss curves).
"""
from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import yaml

from ..errors import StemforgeError
from ..atomic import write_bytes_atomic, write_text_atomic
from ..mixing.recipe import Recipe
from .checkpoint import load_checkpoint, model_from_checkpoint
from .evaluate import model_estimator, oracle_estimator, score_tracks, summarize
from .loop import CHECKPOINT, TrainConfig, train
from .model import ModelConfig

CONDITIONS = ("plain", "tutorial", "stemforge")
RECIPE_FILES = {"tutorial": "musdb_vocals_augmented.yaml", "stemforge": "stemforge_recommended.yaml"}
ORACLES = {"oracle IRM1": "irm1", "oracle IRM2": "irm2", "mixture (no separation)": "mix"}
RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


def condition_recipe(condition: str, targets: list[str], sample_rate: int, channels: int,
                     duration: float, split: str = "train", pitch_mode: str | None = None
                     ) -> Recipe:
    """The training recipe of one condition, fitted to the experiment's targets and format.
    ``pitch_mode`` (``hq`` / ``fast``) overrides the mode of every ``pitch_tempo`` step."""
    if condition == "plain":
        raw = {"name": "plain-coherent", "modes": {"coherent": 1.0}, "clipping": "none"}
    elif condition in RECIPE_FILES:
        raw = yaml.safe_load((RECIPES_DIR / RECIPE_FILES[condition]).read_text())
        raw.pop("groups", None)  # the index's groups (e.g. accompaniment) stay usable
    else:
        raise StemforgeError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    raw.update(targets=list(targets), sample_rate=int(sample_rate), channels=int(channels),
               duration=float(duration), split=[split])
    if pitch_mode is not None:
        for step in raw.get("augment", []):
            if step.get("step") == "pitch_tempo":
                step["mode"] = pitch_mode
    if pitch_mode is not None and raw.get("augment"):
        raw["name"] = f"{raw['name']}-pitch-{pitch_mode}"
    return Recipe.from_dict(raw)


@dataclass
class ExperimentResult:
    out: Path
    scores: pd.DataFrame
    summary: pd.DataFrame
    timing: dict[str, dict]
    files: list[Path]


def run_augmentation(index, out, steps: int, conditions=CONDITIONS, targets=None,
                     duration: float = 2.0, train_config: TrainConfig | None = None,
                     model_kw: dict | None = None, eval_split: str = "test", device=None,
                     pitch_mode: str | None = None, oracles=tuple(ORACLES), progress: bool = True,
                     log=print) -> ExperimentResult:
    """Train every condition for ``steps`` steps into ``out/<condition>`` (an existing finished
    run is reused, an unfinished one resumed), then score all on ``eval_split`` next to
    ``oracles`` (keys of :data:`ORACLES`). ``pitch_mode``: see :func:`condition_recipe`."""
    out = Path(out)
    unknown = [o for o in oracles if o not in ORACLES]
    if unknown:
        raise StemforgeError(f"unknown oracle(s) {unknown}; known: {', '.join(ORACLES)}")
    targets = list(targets or [s for s in ("drums", "bass", "other", "vocals")
                               if s in index.stem_names] or index.stem_names)
    if not index.tracks:
        raise StemforgeError(f"{index.root}: the index holds no tracks")
    splits = {t.split for t in index.tracks}
    for name, sp in (("training", "train"), ("evaluation", eval_split)):
        if sp not in splits:
            raise StemforgeError(f"{index.root}: no {sp!r} split for {name} (splits: "
                                 f"{', '.join(sorted(map(str, splits)))})")
    sr = index.tracks[0].sample_rate
    channels = max(t.channels for t in index.tracks)
    cfg = replace(train_config or TrainConfig(), steps=int(steps), valid_split=eval_split)
    mkw = dict(model_kw or {})
    models, timing = {}, {}
    for cond in conditions:
        recipe = condition_recipe(cond, targets, sr, channels, duration, pitch_mode=pitch_mode)
        run_dir = out / cond
        mcfg = ModelConfig(targets=list(recipe.targets), channels=channels, sample_rate=sr, **mkw)
        ckpt = run_dir / CHECKPOINT
        done = ckpt.exists() and int(load_checkpoint(ckpt)["step"]) == cfg.steps
        if done:
            data = load_checkpoint(ckpt)
            if data.get("recipe_hash") != recipe.hash() or data["model_config"] != mcfg.to_dict():
                raise StemforgeError(f"{ckpt}: a finished run with another recipe or model; "
                                     "use another --out")
            models[cond] = model_from_checkpoint(data, ckpt)
            timing[cond] = _read_timing(run_dir)
            log(f"{cond}: reusing the finished run in {run_dir}")
            continue
        resumed = ckpt.exists()
        t0, w0 = _cpu_seconds(), time.perf_counter()
        res = train(recipe, index, run_dir, cfg, mcfg, resume=resumed, device=device,
                    progress=progress, desc=cond)
        timing[cond] = {"cpu_s": _cpu_seconds() - t0, "wall_s": time.perf_counter() - w0,
                        "steps": res.step, "resumed": resumed}
        write_text_atomic(run_dir / "timing.json", json.dumps(timing[cond]))
        models[cond] = res.model.cpu()

    estimators = {c: model_estimator(m) for c, m in models.items()}
    estimators.update({name: oracle_estimator(ORACLES[name]) for name in oracles})
    test = index.subset(eval_split)
    scores = score_tracks(test, targets, estimators, sr, channels, progress=progress)
    summary = summarize(scores)
    files = write_tables(out, scores, summary, timing, targets, list(estimators))
    files.append(write_plot(out / "summary.png", summary, targets, list(estimators),
                            {c: out / c / "history.csv" for c in models}))
    return ExperimentResult(out, scores, summary, timing, files)


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its reaped children (the DataLoader
    workers, joined at the end of every epoch), so mixing in workers is counted."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _read_timing(run_dir: Path) -> dict:
    p = run_dir / "timing.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def wide(summary: pd.DataFrame, metric: str, targets, methods) -> pd.DataFrame:
    """methods x targets table of ``metric`` plus a ``mean`` column (mean of target medians)."""
    t = summary.pivot(index="method", columns="target", values=metric)
    t = t.reindex(index=methods, columns=list(targets))
    t["mean"] = t.mean(axis=1)
    return t


def write_tables(out: Path, scores: pd.DataFrame, summary: pd.DataFrame, timing: dict,
                 targets, methods) -> list[Path]:
    files = [write_text_atomic(out / "scores.csv", scores.to_csv(index=False, float_format="%.4f")),
             write_text_atomic(out / "summary.csv", summary.to_csv(index=False, float_format="%.4f"))]
    n_tracks = int(summary["tracks"].max()) if len(summary) else 0
    lines = [f"Median over {n_tracks} held-out tracks of the per-track score (BSS Eval v4 SDR: "
             "median of 1 s windows; SI-SDR: whole track), in dB.", ""]
    for metric in ("SDR", "SI-SDR"):
        t = wide(summary, metric, targets, methods)
        head = ["method", *t.columns]
        extra = metric == "SDR"
        if extra:
            head += ["steps", "train CPU s", "train wall s"]
        lines += [f"**{metric}**", "", "| " + " | ".join(head) + " |",
                  "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        for m, row in t.iterrows():
            cells = [m] + [_fmt(v) for v in row]
            if extra:
                tm = timing.get(m, {})
                cells += [str(tm.get("steps", "")), _fmt(tm.get("cpu_s"), 0), _fmt(tm.get("wall_s"), 0)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    files.append(write_text_atomic(out / "summary.md", "\n".join(lines)))
    return files


def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.{digits}f}"


def write_plot(path: Path, summary: pd.DataFrame, targets, methods, histories: dict) -> Path:
    """Grouped bars of median SDR per target and method; validation loss per step per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = wide(summary, "SDR", targets, methods)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    cols = list(t.columns)
    x = np.arange(len(cols))
    w = 0.8 / max(len(t), 1)
    for k, (m, row) in enumerate(t.iterrows()):
        ax.bar(x + (k - (len(t) - 1) / 2) * w, row.values, w, label=m,
               hatch="//" if m in ORACLES else None)
    ax.set_xticks(x, cols)
    ax.set_ylabel("SDR (dB, median over tracks)")
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("held-out tracks")
    for cond, p in histories.items():
        if p.is_file():
            h = pd.read_csv(p).dropna(subset=["valid_loss"])
            bx.plot(h["step"], h["valid_loss"], marker="o", ms=3, label=cond)
    bx.set_xlabel("step")
    bx.set_ylabel("validation loss")
    bx.set_title("validation (coherent full-track excerpts)")
    bx.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())
