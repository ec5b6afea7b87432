"""Apply a trained separator to whole recordings.

* :func:`separate_array` — ``(C, T)`` audio at the model's rate and channel count ->
  ``(S, C, T)`` estimates, processed in chunks of ``chunk`` seconds that overlap by
  ``overlap`` seconds and are cross-faded (linear), so memory stays bounded on long files.
* :func:`separate_audio` — ``(C, T)`` audio at any rate and mono or the model's channel count
  -> ``{target: (C, T)}`` at the same rate and channels (what ``stemforge separate --index`` runs
  per track);
* :func:`separate_file` — any file :func:`stemforge.audio.io.read` reads (WAV, FLAC, ..., MP4:
  stream 0), at any sample rate: resampled (soxr) and channel-converted to the model's format,
  separated, converted back to the file's rate and channel count, then written as
  ``out/<target>.wav`` (float WAV, atomic). Nothing is written unless every target is computed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..audio import dsp, io
from ..errors import AudioError
from ..types import Seconds
from .checkpoint import default_device, load_model
from .model import MaskSeparator


@torch.no_grad()
def separate_array(model: MaskSeparator, audio: np.ndarray, chunk: Seconds = 30.0,
                   overlap: Seconds = 1.0, device=None, progress: bool = False) -> np.ndarray:
    """``audio`` float ``(C, T)`` at ``model.config.sample_rate`` -> float32 ``(S, C, T)``.
    ``progress``: a bar (or lines off a terminal) over the chunks, on stderr."""
    from ..progress import progress as progress_bar

    cfg = model.config
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2 or audio.shape[0] != cfg.channels:
        raise AudioError(f"separate: expected ({cfg.channels}, frames) audio, got {audio.shape}")
    dev = next(model.parameters()).device if device is None else torch.device(device)
    model.eval()
    C, T = audio.shape
    if T < cfg.n_fft:
        raise AudioError(f"separate: {T} frames is shorter than one STFT window ({cfg.n_fft} "
                         f"frames at {cfg.sample_rate} Hz)")
    n = max(int(chunk * cfg.sample_rate), 4 * cfg.n_fft)
    ov = min(int(overlap * cfg.sample_rate), n // 2)
    out = np.zeros((len(cfg.targets), C, T), np.float32)
    weight = np.zeros(T, np.float32)
    starts = list(range(0, max(T - ov, 1), n - ov))
    bar = progress_bar(len(starts), "separate", "chunk", enabled=progress)
    for a in starts:
        b = min(T, a + n)
        x = torch.from_numpy(audio[None, :, a:b]).to(dev)
        est = model.separate(x)[0].cpu().numpy()                     # (S, C, b - a)
        w = np.ones(b - a, np.float32)
        if a > 0:
            k = min(ov, b - a)
            w[:k] = np.linspace(0, 1, k + 2, dtype=np.float32)[1:-1]
        if b < T:
            w[-ov:] = np.minimum(w[-ov:], np.linspace(1, 0, ov + 2, dtype=np.float32)[1:-1])
        out[:, :, a:b] += est * w
        weight[a:b] += w
        bar.update(1)
    bar.close()
    return out / np.maximum(weight, 1e-8)


def separate_audio(model: MaskSeparator, audio: np.ndarray, sample_rate: int,
                   chunk: Seconds = 30.0, device=None, where: str = "audio",
                   progress: bool = False) -> dict[str, np.ndarray]:
    """Float ``(C, T)`` audio at any rate -> ``{target: float32 (C, T)}`` at the same rate and
    channel count: converted to the model's format (soxr, channel mix), separated, converted
    back. ``where`` names the input in errors (a file, a track); ``progress``: over the chunks."""
    cfg = model.config
    channels = audio.shape[0]
    if audio.shape[1] == 0:
        raise AudioError(f"{where}: holds no audio frames")
    if channels not in (1, cfg.channels) and cfg.channels != 1:
        raise AudioError(f"{where}: {channels}-channel audio; the model separates "
                         f"{cfg.channels}-channel audio and only mono or {cfg.channels}-channel "
                         "input can be converted unambiguously")
    x = dsp.resample(dsp.to_channels(audio, cfg.channels), sample_rate, cfg.sample_rate)
    est = separate_array(model, x, chunk=chunk, device=default_device(device), progress=progress)
    results = {}
    for name, e in zip(cfg.targets, est):
        y = dsp.resample(np.ascontiguousarray(e), cfg.sample_rate, sample_rate)
        y = dsp.to_channels(y, channels)
        results[name] = _fit(y, audio.shape[1])
    return results


def separate_file(checkpoint: str | os.PathLike, audio_path: str | os.PathLike,
                  out: str | os.PathLike, device=None, chunk: Seconds = 30.0,
                  progress: bool = False) -> dict[str, Path]:
    """Separate ``audio_path`` with the model in ``checkpoint``; returns ``{target: path}``."""
    model, _ = load_model(checkpoint, device)
    path = Path(audio_path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    info = io.info(path)
    audio = io.read(path)
    sr = int(info.sample_rate)
    results = separate_audio(model, audio, sr, chunk=chunk, device=device, where=str(path),
                             progress=progress)
    out = Path(out)
    written: list[Path] = []
    try:
        for name, y in results.items():
            written.append(io.write(out / f"{name}.wav", y, sr))
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return dict(zip(results, written))


def _fit(y: np.ndarray, frames: int) -> np.ndarray:
    """Trim or zero-pad ``(C, T')`` to ``frames`` (resampling round trips may differ by one)."""
    if y.shape[1] >= frames:
        return y[:, :frames]
    return np.pad(y, ((0, 0), (0, frames - y.shape[1])))
