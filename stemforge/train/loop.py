"""Training loop: MixtureDataset + DataLoader -> MaskSeparator, validation, checkpoints, resume.

Data order is a pure function of the step: step ``s`` (0-based) trains on items
``b*B .. b*B+B-1`` of epoch ``e`` of ``MixtureDataset(recipe, index, length=B*batches, seed)``
with ``e, b = divmod(s, batches)`` (``B`` = batch size, ``batches`` = batches per epoch). The
model is initialised from ``seed`` alone, has no dropout, and the checkpoint stores weights,
BatchNorm statistics, the Adam state and the step; so on CPU a run resumed from step ``k`` gives
the same weights as an uninterrupted run (tested), at any ``num_workers``.

Validation: :class:`~stemforge.torch.ValidationDataset` (coherent full-track excerpts, original
gains, no augmentation) on ``valid_split`` (default ``auto``: the index's ``valid`` split; an
index without one needs an explicit choice); the mean :func:`spectral_loss` over its windows.

Files in ``out``: ``checkpoint.pt`` (latest, every ``checkpoint_every`` steps and at the end),
``best.pt`` (lowest validation loss), ``history.csv`` (step, train_loss, valid_loss). All written
atomically.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..errors import StemforgeError
from ..atomic import write_text_atomic
from ..mixing.mixer import as_index, as_recipe, bind
from ..torch import MixtureDataset, ValidationDataset
from ..torch.validation import validation_split
from .checkpoint import (CheckpointError, default_device, load_checkpoint, model_from_checkpoint,
                         save_checkpoint)
from .model import MaskSeparator, ModelConfig, build, spectral_loss

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
HISTORY = "history.csv"
#: TrainConfig fields that must match for a resume to continue the same run
RESUME_FIXED = ("batch_size", "batches_per_epoch", "lr", "seed", "grad_clip")


@dataclass
class TrainConfig:
    """How to train. ``steps`` is the total number of optimisation steps (a resumed run may
    raise it); ``valid_every``/``checkpoint_every`` in steps (0: only at the end)."""

    steps: int = 1000
    batch_size: int = 8
    batches_per_epoch: int = 64
    lr: float = 1e-3
    seed: int = 0
    grad_clip: float = 5.0
    valid_every: int = 100
    checkpoint_every: int = 100
    valid_split: str | None = "auto"  # auto: the index's valid split (else refused); None: off
    valid_duration: float | None = None  # seconds per validation window (default: recipe's)
    num_workers: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> "TrainConfig":
        for name in ("steps", "batch_size", "batches_per_epoch", "valid_every",
                     "checkpoint_every", "num_workers", "seed"):
            v = getattr(self, name)
            low = 1 if name in ("steps", "batch_size", "batches_per_epoch") else 0
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise StemforgeError(f"train config field '{name}': expected an integer >= {low}, "
                                     f"got {v!r}")
        if not self.lr > 0 or not self.grad_clip > 0:
            raise StemforgeError(f"train config: lr and grad_clip must be > 0, got lr={self.lr!r}, "
                                 f"grad_clip={self.grad_clip!r}")
        return self


@dataclass
class TrainResult:
    out: Path
    step: int
    history: list[dict]
    best_valid: float
    model: MaskSeparator


def model_config_for(recipe, **kw) -> ModelConfig:
    """A :class:`ModelConfig` matching a recipe's targets, channels and sample rate."""
    return ModelConfig(targets=list(recipe.targets), channels=recipe.channels,
                       sample_rate=recipe.sample_rate, **kw)


def _check_fit(cfg: ModelConfig, recipe) -> None:
    want = (list(recipe.targets), recipe.channels, recipe.sample_rate)
    have = (list(cfg.targets), cfg.channels, cfg.sample_rate)
    if want != have:
        raise StemforgeError(f"model config (targets, channels, sample rate) {have} does not fit "
                             f"recipe '{recipe.name}' {want}")


@torch.no_grad()
def validation_loss(model: MaskSeparator, data: ValidationDataset, device, batch_size: int = 8,
                    progress: bool = False) -> float:
    """Mean :func:`spectral_loss` over the windows of ``data`` (model in eval mode).
    ``progress``: a bar (or lines off a terminal) over the windows, on stderr."""
    from ..progress import progress as progress_bar

    was = model.training
    model.eval()
    total, n = 0.0, 0
    bar = progress_bar(len(data), "validate", "window", enabled=progress)
    try:
        for mix, targets in DataLoader(data, batch_size=batch_size, shuffle=False):
            loss = spectral_loss(model, mix.to(device), targets.to(device))
            total += float(loss) * mix.shape[0]
            n += mix.shape[0]
            bar.update(mix.shape[0])
    finally:
        bar.close()
        model.train(was)
    return total / max(n, 1)


def _batches(start: int, stop: int, cfg: TrainConfig):
    """``(epoch, [(step, item indices)])`` runs of consecutive steps within one epoch."""
    s = start
    while s < stop:
        epoch, b = divmod(s, cfg.batches_per_epoch)
        end = min(stop, (epoch + 1) * cfg.batches_per_epoch)
        B = cfg.batch_size
        yield epoch, [(k, list(range((k - epoch * cfg.batches_per_epoch) * B,
                                     (k - epoch * cfg.batches_per_epoch + 1) * B)))
                      for k in range(s, end)]
        s = end


def _write_history(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["step", "train_loss", "valid_loss"], lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if row.get(k) is None else row[k]) for k in w.fieldnames})
    write_text_atomic(path, buf.getvalue())


def train(recipe, index, out: str | os.PathLike, config: TrainConfig | None = None,
          model_config: ModelConfig | None = None, resume: bool = False,
          device: str | torch.device | None = None, progress: bool = True,
          desc: str = "train", on_step=None) -> TrainResult:
    """Train a :class:`MaskSeparator` on mixtures drawn by ``recipe`` from ``index``.

    ``recipe``: Recipe / YAML path / dict; ``index``: Index / root / index.jsonl. ``out``: run
    folder (see module docstring). If ``out/checkpoint.pt`` exists, ``resume=True`` continues it
    (its model config, recipe hash and fixed train settings must match) and ``resume=False`` is
    refused, so a run is never overwritten by accident. ``device``: default CUDA if available.
    ``on_step(step)`` is called after every optimisation step (progress reporting).
    """
    cfg = (config or TrainConfig()).check()
    index = as_index(index)
    recipe = bind(as_recipe(recipe), index)
    mcfg = model_config or model_config_for(recipe)
    _check_fit(mcfg, recipe)
    out = Path(out)
    ckpt_path = out / CHECKPOINT
    dev = default_device(device)

    model = build(mcfg, cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, history, best = 0, [], math.inf
    if ckpt_path.exists():
        if not resume:
            raise CheckpointError(f"{ckpt_path}: a run already exists here; resume it (--resume) "
                                  "or choose another output folder")
        data = load_checkpoint(ckpt_path)
        _check_resume(data, ckpt_path, mcfg, recipe, cfg)
        model = model_from_checkpoint(data, ckpt_path).train()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        opt.load_state_dict(data["optimizer"])
        step, history = int(data["step"]), list(data.get("history", []))
        best = float(data.get("best_valid", math.inf))
    elif resume:
        raise CheckpointError(f"{ckpt_path}: checkpoint not found, nothing to resume")
    model.to(dev).train()
    _optimizer_to(opt, dev)

    dataset = MixtureDataset(recipe, index, length=cfg.batch_size * cfg.batches_per_epoch,
                             seed=cfg.seed)
    vsplit = validation_split(index, None) if cfg.valid_split == "auto" else cfg.valid_split
    valid = ValidationDataset(index, recipe, duration=cfg.valid_duration, split=vsplit) \
        if vsplit else None
    if valid is not None and len(valid) == 0:
        raise StemforgeError(f"validation split {cfg.valid_split!r}: no track is long enough for "
                             f"one {valid.recipe.duration} s window")

    def checkpoint(path: Path):
        save_checkpoint(path, {
            "model_config": mcfg.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": _cpu_state(opt.state_dict()),
            "step": step, "train_config": cfg.to_dict(), "recipe": recipe.raw,
            "recipe_hash": recipe.hash(), "history": history, "best_valid": best})

    from ..progress import progress as progress_bar

    bar = progress_bar(cfg.steps, desc, "step", enabled=progress, initial=min(step, cfg.steps))
    running, n_running = 0.0, 0
    try:
        for epoch, batch_list in _batches(step, cfg.steps, cfg):
            dataset.set_epoch(epoch)
            loader = DataLoader(dataset, batch_sampler=[items for _, items in batch_list],
                                num_workers=cfg.num_workers)
            for (k, _), (mix, targets) in zip(batch_list, loader):
                loss = spectral_loss(model, mix.to(dev), targets.to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                step = k + 1
                value = loss.item()
                running += value
                n_running += 1
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                if on_step is not None:
                    on_step(step)
                last = step == cfg.steps
                if (cfg.valid_every and step % cfg.valid_every == 0) or last:
                    vloss = validation_loss(model, valid, dev, cfg.batch_size,
                                            progress=progress) if valid else None
                    history.append({"step": step, "train_loss": running / n_running,
                                    "valid_loss": vloss})
                    running, n_running = 0.0, 0
                    if vloss is not None and vloss < best:
                        best = vloss
                        checkpoint(out / BEST)
                    _write_history(out / HISTORY, history)
                if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or last:
                    checkpoint(ckpt_path)
    finally:
        bar.close()
    return TrainResult(out, step, history, best, model.eval())


def _check_resume(data: dict, path: Path, mcfg: ModelConfig, recipe, cfg: TrainConfig) -> None:
    if data["model_config"] != mcfg.to_dict():
        raise CheckpointError(f"{path}: model config {data['model_config']} differs from this "
                              f"run's {mcfg.to_dict()}")
    if data.get("recipe_hash") != recipe.hash():
        raise CheckpointError(f"{path}: trained with recipe hash {data.get('recipe_hash')}, this "
                              f"run's recipe '{recipe.name}' has hash {recipe.hash()}")
    old = data.get("train_config", {})
    diff = [f"{k}: {old.get(k)!r} -> {getattr(cfg, k)!r}" for k in RESUME_FIXED
            if old.get(k) != getattr(cfg, k)]
    if diff:
        raise CheckpointError(f"{path}: cannot resume with other training settings ({'; '.join(diff)})")
    if int(data["step"]) > cfg.steps:
        raise CheckpointError(f"{path}: checkpoint is at step {data['step']}, beyond the requested "
                              f"{cfg.steps} steps")


def _cpu_state(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_state(v) for v in obj)
    return obj


def _optimizer_to(opt: torch.optim.Optimizer, device) -> None:
    for state in opt.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and k != "step":
                state[k] = v.to(device)
