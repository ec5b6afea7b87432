"""Batched augmentation of target tensors on any device (Demucs-style), with a draw/apply split.

Every op works on ``targets`` float32 ``(B, S, C, T)`` — batch, sources (targets), channels,
frames — and :class:`BatchAugment` returns ``mix = targets.sum(1)`` so ``mix == sum(targets)``
still holds after augmentation.

Each op has three parts:

* ``draw(rng, shape) -> params``: parameters as CPU tensors drawn with a
  ``numpy.random.Generator`` (never torch's global RNG), so they are identical on CPU and GPU;
* ``apply(x, params)``: batched and deterministic (params are moved to ``x.device``);
* ``apply_item(x_k, params_k, pool)``: the same op on one item ``x_k (S, C, T)`` written
  without batching (``pool`` is the whole input batch, used only by :class:`Remix`);
  ``item_params(params, k)`` slices item ``k``'s params. ``apply(x, p)[k] ==
  apply_item(x[k], item_params(p, k), x)`` is tested for every op.

:class:`BatchAugment` draws all ops' params for batch ``b`` of epoch ``e`` from
:func:`~stemforge.torch.seeding.batch_rng` ``(seed, e, b)`` in op order, then applies them.

Defaults follow Demucs: shift up to 1 s per source (output ``T - max_frames`` frames, no
padding), channel swap p=0.5, sign flip p=0.5, remix within groups of 4, scale
uniform(0.25, 1.25) per source.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import StemforgeError
from .seeding import batch_rng

Shape = tuple[int, int, int, int]  # (B, S, C, T)


class AugmentError(StemforgeError):
    """A batch augmentation op got a tensor or params of the wrong shape, or bad settings."""


def _check(x: torch.Tensor, what: str) -> Shape:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise AugmentError(f"{what}: expected targets as a (batch, sources, channels, frames) "
                           f"tensor, got shape {tuple(getattr(x, 'shape', ()))}")
    return tuple(x.shape)  # type: ignore[return-value]


def _prob(p, what) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise AugmentError(f"{what}: p must be a probability in [0, 1], got {p!r}")
    return float(p)


class BatchOp(ABC):
    """Base of the batched ops. Params are a dict of CPU tensors with leading dims ``(B, S)``.
    Subclasses implement :meth:`draw`, :meth:`apply` and :meth:`apply_item`."""

    def out_shape(self, shape: Shape) -> Shape:
        return shape

    @abstractmethod
    def draw(self, rng: np.random.Generator, shape: Shape) -> dict[str, torch.Tensor]:
        """Params for a batch of ``shape`` ``(B, S, C, T)``, drawn with ``rng`` only."""

    @abstractmethod
    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """The op on ``x (B, S, C, T)`` with ``params`` (deterministic)."""

    @abstractmethod
    def apply_item(self, x: torch.Tensor, params: dict[str, torch.Tensor],
                   pool: torch.Tensor | None = None) -> torch.Tensor:
        """The same op on one item ``x (S, C, T)``, written without batching."""

    @staticmethod
    def item_params(params: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
        return {name: v[k] for name, v in params.items()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Gain(BatchOp):
    """Multiply each source of each item by a linear factor ~ uniform(low, high)
    (Demucs ``Scale``, Open-Unmix gain). Params: ``scale`` float32 ``(B, S)``."""

    def __init__(self, low: float = 0.25, high: float = 1.25):
        if not 0 <= low <= high:
            raise AugmentError(f"Gain: need 0 <= low <= high, got low={low!r}, high={high!r}")
        self.low, self.high = float(low), float(high)

    def draw(self, rng, shape):
        B, S = shape[:2]
        return {"scale": torch.from_numpy(rng.uniform(self.low, self.high, (B, S)).astype(np.float32))}

    def apply(self, x, params):
        _check(x, "Gain")
        return x * params["scale"].to(x.device)[:, :, None, None]

    def apply_item(self, x, params, pool=None):
        return torch.stack([x[s] * params["scale"][s].item() for s in range(x.shape[0])])


class Polarity(BatchOp):
    """Flip the sign of a source with probability ``p`` (Demucs ``FlipSign``).
    Params: ``sign`` float32 ``(B, S)`` of +-1."""

    def __init__(self, p: float = 0.5):
        self.p = _prob(p, "Polarity")

    def draw(self, rng, shape):
        B, S = shape[:2]
        flip = rng.random((B, S)) < self.p
        return {"sign": torch.from_numpy(np.where(flip, -1.0, 1.0).astype(np.float32))}

    def apply(self, x, params):
        _check(x, "Polarity")
        return x * params["sign"].to(x.device)[:, :, None, None]

    def apply_item(self, x, params, pool=None):
        return torch.stack([-x[s] if params["sign"][s] < 0 else x[s] for s in range(x.shape[0])])


class ChannelSwap(BatchOp):
    """Reverse the channel order of a source with probability ``p`` (stereo: swap left and
    right; Demucs ``FlipChannels``). Params: ``swap`` bool ``(B, S)``."""

    def __init__(self, p: float = 0.5):
        self.p = _prob(p, "ChannelSwap")

    def draw(self, rng, shape):
        if shape[2] < 2:
            raise AugmentError(f"ChannelSwap: needs at least 2 channels, got {shape[2]}")
        B, S = shape[:2]
        return {"swap": torch.from_numpy(rng.random((B, S)) < self.p)}

    def apply(self, x, params):
        _check(x, "ChannelSwap")
        return torch.where(params["swap"].to(x.device)[:, :, None, None], x.flip(2), x)

    def apply_item(self, x, params, pool=None):
        return torch.stack([x[s].flip(0) if params["swap"][s] else x[s] for s in range(x.shape[0])])


class Shift(BatchOp):
    """Crop each source at its own offset ~ randint(0, max_frames) (Demucs ``Shift``): output
    ``T - max_frames`` frames, no padding; sources become misaligned (``same=True``: one offset
    per item). Params: ``offset`` int64 ``(B, S)``."""

    def __init__(self, max_frames: int = 44100, same: bool = False):
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 0:
            raise AugmentError(f"Shift: max_frames must be an integer >= 0, got {max_frames!r}")
        self.max_frames, self.same = max_frames, bool(same)

    def out_shape(self, shape):
        B, S, C, T = shape
        if T <= self.max_frames:
            raise AugmentError(f"Shift: {T} frames cannot be shifted by up to {self.max_frames} "
                               "frames (the output would be empty); use longer excerpts")
        return (B, S, C, T - self.max_frames)

    def draw(self, rng, shape):
        self.out_shape(shape)
        B, S = shape[:2]
        off = rng.integers(0, self.max_frames + 1, (B, 1 if self.same else S))
        return {"offset": torch.from_numpy(np.broadcast_to(off, (B, S)).astype(np.int64))}

    def apply(self, x, params):
        B, S, C, T = _check(x, "Shift")
        Tout = self.out_shape((B, S, C, T))[3]
        off = params["offset"].to(x.device)
        windows = x.unfold(3, Tout, 1)  # (B, S, C, max_frames + 1, Tout), a view
        b = torch.arange(B, device=x.device)[:, None]
        s = torch.arange(S, device=x.device)[None, :]
        return windows[b, s, :, off]   # (B, S, C, Tout)

    def apply_item(self, x, params, pool=None):
        Tout = x.shape[-1] - self.max_frames
        return torch.stack([x[s, :, int(o):int(o) + Tout] for s, o in enumerate(params["offset"])])


class Remix(BatchOp):
    """In-batch remix (Demucs ``Remix``): inside each group of ``group_size`` consecutive items,
    every source is permuted independently, so item ``k`` gets source ``s`` of item
    ``index[k, s]`` of its group (the last group may be smaller). ``p`` is the chance that a
    batch is remixed at all. Params: ``index`` int64 ``(B, S)`` (identity when not remixed)."""

    def __init__(self, group_size: int = 4, p: float = 1.0):
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise AugmentError(f"Remix: group_size must be an integer >= 1, got {group_size!r}")
        self.group_size, self.p = group_size, _prob(p, "Remix")

    def draw(self, rng, shape):
        B, S = shape[:2]
        index = np.repeat(np.arange(B)[:, None], S, axis=1)
        if rng.random() < self.p:
            for g0 in range(0, B, self.group_size):
                n = min(self.group_size, B - g0)
                for s in range(S):
                    index[g0:g0 + n, s] = g0 + rng.permutation(n)
        return {"index": torch.from_numpy(index.astype(np.int64))}

    def apply(self, x, params):
        B, S, C, T = _check(x, "Remix")
        index = params["index"].to(x.device)
        if tuple(index.shape) != (B, S):
            raise AugmentError(f"Remix: params for a ({index.shape[0]}, {index.shape[1]}) "
                               f"batch given a ({B}, {S}) batch")
        return x[index, torch.arange(S, device=x.device)[None, :]]

    def apply_item(self, x, params, pool=None):
        if pool is None:
            raise AugmentError("Remix.apply_item: needs the batch (pool) the sources come from")
        return torch.stack([pool[int(k), s] for s, k in enumerate(params["index"])])


@dataclass
class BatchAugment:
    """A chain of batch ops seeded per ``(seed, epoch, batch)``::

        aug = BatchAugment.demucs(seed=0, sample_rate=44100)
        for b, (mix, targets) in enumerate(loader):
            mix, targets = aug(targets.to(device), epoch, b)   # mix == targets.sum(1)
    """

    ops: list[BatchOp]
    seed: int = 0

    @classmethod
    def demucs(cls, seed: int = 0, sample_rate: int = 44100, shift_seconds: float = 1.0,
               group_size: int = 4) -> "BatchAugment":
        """Demucs' training defaults: shift, channel swap, sign flip, remix, scale."""
        return cls([Shift(int(round(shift_seconds * sample_rate))), ChannelSwap(0.5),
                    Polarity(0.5), Remix(group_size), Gain(0.25, 1.25)], seed)

    def draw(self, epoch: int, batch: int, shape: Shape) -> list[dict[str, torch.Tensor]]:
        """Params of every op for this batch (CPU tensors), drawn in op order."""
        rng = batch_rng(self.seed, epoch, batch)
        out = []
        shape = tuple(int(n) for n in shape)
        if len(shape) != 4:
            raise AugmentError(f"BatchAugment: expected a (B, S, C, T) shape, got {shape}")
        for op in self.ops:
            out.append(op.draw(rng, shape))
            shape = op.out_shape(shape)
        return out

    def apply(self, targets: torch.Tensor, params: list[dict[str, torch.Tensor]]):
        """``targets (B, S, C, T)`` -> ``(mix (B, C, T'), targets (B, S, C, T'))``."""
        _check(targets, "BatchAugment")
        if len(params) != len(self.ops):
            raise AugmentError(f"BatchAugment: {len(params)} param sets for {len(self.ops)} ops")
        x = targets
        for op, p in zip(self.ops, params):
            x = op.apply(x, p)
        return x.sum(1), x

    def __call__(self, targets: torch.Tensor, epoch: int, batch: int):
        return self.apply(targets, self.draw(epoch, batch, tuple(targets.shape)))
