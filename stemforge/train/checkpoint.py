"""Separator checkpoints: one ``torch.save`` dict, written atomically, checked on load.

A checkpoint holds everything needed to rebuild the model, resume training bit-for-bit, and
know what data it saw::

    format           "stemforge.separator" (anything else is refused on load)
    format_version   1
    version          stemforge version that wrote it
    model            "MaskSeparator"
    model_config     ModelConfig.to_dict()
    state_dict       model weights and BatchNorm statistics
    optimizer        optimizer state (Adam moments)
    step             number of optimisation steps done
    train_config     TrainConfig.to_dict()
    recipe           the training recipe as written (Recipe.raw)
    recipe_hash      Recipe.hash() of it
    history          list of {"step", "train_loss", "valid_loss"} rows
    best_valid       lowest validation loss seen (inf before the first validation)

Only plain Python values and tensors are stored, so ``torch.load(weights_only=True)`` reads it.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from .. import __version__
from ..errors import StemforgeError
from ..atomic import write_bytes_atomic
from .model import MaskSeparator, ModelConfig

FORMAT = "stemforge.separator"
FORMAT_VERSION = 1
MODEL = "MaskSeparator"


class CheckpointError(StemforgeError):
    """A checkpoint is missing, unreadable, of another model, or does not fit the run."""


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` (see module docstring; format fields are added) atomically."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__,
            "model": MODEL, **payload}
    buf = io.BytesIO()
    torch.save(data, buf)
    return write_bytes_atomic(Path(path), buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read and check a checkpoint (tensors on CPU). Raises :class:`CheckpointError` naming
    ``path`` when it is missing, not a torch file, or not a stemforge separator checkpoint."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types (UnpicklingError, RuntimeError, EOFError)
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        kind = "a dict without a 'format' field" if isinstance(data, dict) and "format" not in data \
            else f"format {data.get('format')!r}" if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{p}: not a stemforge separator checkpoint ({kind}); expected "
                              f"format {FORMAT!r} as written by `stemforge train`")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{p}: checkpoint format_version {data.get('format_version')!r}; "
                              f"this stemforge reads version {FORMAT_VERSION}")
    if data.get("model") != MODEL:
        raise CheckpointError(f"{p}: checkpoint of model {data.get('model')!r}; expected {MODEL!r}")
    for key in ("model_config", "state_dict", "step"):
        if key not in data:
            raise CheckpointError(f"{p}: checkpoint has no {key!r} field")
    return data


def model_from_checkpoint(data: dict, path: str | os.PathLike = "<checkpoint>") -> MaskSeparator:
    """Rebuild the model of a loaded checkpoint (CPU, eval mode)."""
    try:
        config = ModelConfig.from_dict(dict(data["model_config"]))
        model = MaskSeparator(config)
        model.load_state_dict(data["state_dict"])
    except (TypeError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: model_config / weights do not fit a MaskSeparator "
                              f"({str(e).splitlines()[0]})") from e
    return model.eval()


def load_model(path: str | os.PathLike, device: str | torch.device | None = None
               ) -> tuple[MaskSeparator, dict]:
    """``(model in eval mode on device, checkpoint dict)`` from a checkpoint file."""
    data = load_checkpoint(path)
    model = model_from_checkpoint(data, path)
    return model.to(default_device(device)), data


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
