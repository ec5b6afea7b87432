"""A small mask-based separator on magnitude spectrograms (Open-Unmix-like, ~0.2 M parameters).

``MaskSeparator(targets, channels, sample_rate)`` maps a mixture ``(B, C, T)`` to one soft mask
per target, channel, frequency bin and STFT frame, applied to the mixture's complex STFT and
inverted back to ``(B, S, C, T)`` waveforms (mixture phase, like Open-Unmix without its Wiener
post-filter).

Architecture (per STFT frame, frames ``N``):
``log|X|`` (bins below ``max_bin``, both channels) minus its per-item mean (so the network is
invariant to the mixture's overall gain) -> learned per-bin affine -> Linear(C·max_bin, hidden)
-> BatchNorm -> tanh -> bidirectional LSTM (hidden/2 per direction) -> concat skip ->
Linear(2·hidden, hidden) -> BatchNorm -> ReLU -> Linear(hidden, S·C·F) -> sigmoid = masks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import StemforgeError


@dataclass
class ModelConfig:
    """Everything needed to rebuild a :class:`MaskSeparator` (stored in checkpoints)."""

    targets: list[str]
    channels: int = 2
    sample_rate: int = 22050
    n_fft: int = 1024
    hop: int = 256
    hidden: int = 64
    max_bin: int | None = None  # input bins used (None: all n_fft // 2 + 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**d)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1


class STFT(nn.Module):
    """``(B, C, T)`` waveforms <-> ``(B, C, F, N)`` complex spectra (Hann, centred)."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft, self.hop = int(n_fft), int(hop)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        spec = torch.stft(x.reshape(b * c, t), self.n_fft, self.hop, window=self.window,
                          center=True, return_complex=True)
        return spec.reshape(b, c, *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """``(..., F, N)`` complex -> ``(..., length)`` real."""
        lead = spec.shape[:-2]
        y = torch.istft(spec.reshape(-1, *spec.shape[-2:]), self.n_fft, self.hop,
                        window=self.window, center=True, length=length)
        return y.reshape(*lead, length)


class MaskSeparator(nn.Module):
    """See the module docstring. ``forward(mix)`` returns masks; :meth:`separate` waveforms."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not config.targets:
            raise StemforgeError("MaskSeparator: at least one target is needed")
        self.config = config
        c, f = config.channels, config.bins
        self.max_bin = min(f, config.max_bin or f)
        h = int(config.hidden)
        if h < 2 or h % 2:
            raise StemforgeError(f"MaskSeparator: hidden must be an even number >= 2, got {h}")
        self.stft = STFT(config.n_fft, config.hop)
        self.in_shift = nn.Parameter(torch.zeros(c * self.max_bin))
        self.in_scale = nn.Parameter(torch.ones(c * self.max_bin))
        self.fc1 = nn.Linear(c * self.max_bin, h, bias=False)
        self.bn1 = nn.BatchNorm1d(h)
        self.lstm = nn.LSTM(h, h // 2, num_layers=1, bidirectional=True, batch_first=True)
        self.fc2 = nn.Linear(2 * h, h, bias=False)
        self.bn2 = nn.BatchNorm1d(h)
        self.fc3 = nn.Linear(h, len(config.targets) * c * f)

    @property
    def targets(self) -> list[str]:
        return list(self.config.targets)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def masks(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex mixture spectra ``(B, C, F, N)`` -> masks in [0, 1] ``(B, S, C, F, N)``."""
        b, c, f, n = spec.shape
        cfg = self.config
        if c != cfg.channels or f != cfg.bins:
            raise StemforgeError(f"MaskSeparator: expected {cfg.channels} channels and {cfg.bins} "
                                 f"bins, got {c} and {f}")
        logmag = torch.log(spec.abs()[:, :, : self.max_bin] + 1e-5)          # (B, C, F', N)
        logmag = logmag - logmag.mean(dim=(1, 2, 3), keepdim=True)
        x = logmag.permute(0, 3, 1, 2).reshape(b, n, c * self.max_bin)       # (B, N, C·F')
        x = (x + self.in_shift) * self.in_scale
        x = self.fc1(x)
        x = torch.tanh(self.bn1(x.transpose(1, 2)).transpose(1, 2))          # (B, N, H)
        y, _ = self.lstm(x)                                                  # (B, N, H)
        x = self.fc2(torch.cat([x, y], dim=-1))
        x = torch.relu(self.bn2(x.transpose(1, 2)).transpose(1, 2))
        m = torch.sigmoid(self.fc3(x))                                       # (B, N, S·C·F)
        return m.reshape(b, n, len(cfg.targets), c, f).permute(0, 2, 3, 4, 1)

    def forward(self, mix: torch.Tensor):
        """``mix (B, C, T)`` -> ``(masks (B, S, C, F, N), mixture spectra (B, C, F, N))``."""
        spec = self.stft(mix)
        return self.masks(spec), spec

    def separate(self, mix: torch.Tensor) -> torch.Tensor:
        """``mix (B, C, T)`` -> estimated targets ``(B, S, C, T)`` (masked mixture STFT)."""
        masks, spec = self(mix)
        return self.stft.inverse(masks * spec.unsqueeze(1), mix.shape[-1])


def spectral_loss(model: MaskSeparator, mix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Open-Unmix's magnitude MSE, normalised per item by the mixture's spectral energy so that
    loud and quiet mixtures weigh the same. ``mix (B, C, T)``, ``targets (B, S, C, T)``."""
    masks, spec = model(mix)
    b, s, c, t = targets.shape
    tmag = model.stft(targets.reshape(b, s * c, t)).abs().reshape(masks.shape)
    est = masks * spec.abs().unsqueeze(1)
    err = ((est - tmag) ** 2).mean(dim=(1, 2, 3, 4))
    energy = (spec.abs() ** 2).mean(dim=(1, 2, 3)) + 1e-10
    return (err / energy).mean()


def build(config: ModelConfig, seed: int = 0) -> MaskSeparator:
    """A freshly initialised model; the initial weights depend only on ``seed`` (the global torch
    RNG is forked, so nothing outside is affected)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return MaskSeparator(config)
