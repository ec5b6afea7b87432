"""Lossy codec round trips: ``mp3`` (LAME via pedalboard) and ``aac`` (FFmpeg's encoder via PyAV).

Both encode and decode in memory and return exactly the input's length, sample-aligned with the
input (cross-correlation peak at lag 0):

* ``mp3``: ``pedalboard.MP3Compressor`` already compensates LAME's encoder delay and padding.
  LAME in pedalboard accepts only 32, 44.1 and 48 kHz.
* ``aac``: encoded into an in-memory Matroska stream, which records the encoder's priming
  ("CodecDelay", 1024 frames for FFmpeg's AAC); the decoder drops those frames, and the final
  partial-frame padding is trimmed here.
"""
from __future__ import annotations

import io

import numpy as np

from ..errors import RecipeError
from ..types import Hz
from .base import Param, Step, StepError, register

MP3_RATES = (32000, 44100, 48000)
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


def _check_rate(step: str, sample_rate: Hz, rates: tuple[int, ...], field: str | None = None):
    if int(sample_rate) not in rates:
        msg = (f"{step} supports sample rates {', '.join(map(str, rates))} Hz, "
               f"got {sample_rate} Hz")
        if field is not None:
            raise RecipeError(field, msg)
        raise StepError(f"augmentation step '{step}': {msg}")


@register
class MP3(Step):
    """MP3 round trip at LAME VBR quality ``vbr_quality`` (0 = best, 10 = worst)."""

    name = "mp3"
    schema = (Param("vbr_quality", ["uniform", 2.0, 7.0], low=0.0, high=10.0,
                    doc="LAME VBR quality, 0 best .. 10 worst"),)

    def validate(self, field, sample_rate):
        if sample_rate is not None:
            _check_rate(self.name, sample_rate, MP3_RATES, field)

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        import pedalboard

        _check_rate(cls.name, sample_rate, MP3_RATES)
        fx = pedalboard.MP3Compressor(vbr_quality=float(params["vbr_quality"]))
        out = fx(audio, float(sample_rate), reset=True)
        return np.ascontiguousarray(out[:, : audio.shape[1]], dtype=np.float32)


@register
class AAC(Step):
    """AAC-LC round trip at ``bitrate_kbps`` (total for all channels)."""

    name = "aac"
    schema = (Param("bitrate_kbps", ["choose", [64, 96, 128]], low=16.0, high=512.0,
                    integer=True, doc="AAC bit rate in kbit/s"),)

    def validate(self, field, sample_rate):
        if sample_rate is not None:
            _check_rate(self.name, sample_rate, AAC_RATES, field)

    @classmethod
    def transform(cls, audio, sample_rate, params, out_frames):
        import av

        n = out_frames
        _check_rate(cls.name, sample_rate, AAC_RATES)
        channels = audio.shape[0]
        if channels > 2:
            raise StepError(f"augmentation step 'aac': supports mono or stereo, got {channels} "
                            "channels")
        layout = "stereo" if channels == 2 else "mono"
        buf = io.BytesIO()
        with av.open(buf, "w", format="matroska") as out:
            st = out.add_stream("aac", rate=int(sample_rate))
            st.bit_rate = int(params["bitrate_kbps"]) * 1000
            st.layout = layout
            frame = av.AudioFrame.from_ndarray(audio, format="fltp", layout=layout)
            frame.sample_rate = int(sample_rate)
            for pkt in st.encode(frame):
                out.mux(pkt)
            for pkt in st.encode(None):
                out.mux(pkt)
        buf.seek(0)
        with av.open(buf, "r") as inp:
            chunks = [f.to_ndarray() for f in inp.decode(audio=0)]
        dec = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
        if dec.shape[1] < n:
            raise StepError(f"augmentation step 'aac': decoder returned {dec.shape[1]} frames "
                            f"for {n} encoded")
        return np.ascontiguousarray(dec[:, :n], dtype=np.float32)
