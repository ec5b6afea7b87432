"""Audio I/O: partial reads, MP4 streams, writing, resampling, channel conversion, bad files."""
from __future__ import annotations

import os

import numpy as np
import pytest
import stempeg

from conftest import tone, write_stem_mp4, write_wav
from stemforge.audio import dsp, io
from stemforge.errors import AudioError


def test_wav_partial_read_matches_full(tmp_path):
    a = tone(440, 1.0, channels=2)
    p = write_wav(tmp_path / "a.wav", a)
    full = io.read(p)
    assert full.dtype == np.float32 and full.shape == a.shape
    np.testing.assert_array_equal(full, a)
    np.testing.assert_array_equal(io.read(p, 1234, 5000), a[:, 1234:6234])


def test_flac_round_trip(tmp_path):
    a = tone(220, 0.5, channels=1)
    p = io.write(tmp_path / "a.flac", a, 44100)
    b = io.read(p)
    assert b.shape == (1, a.shape[1])
    assert np.abs(a - b).max() < 1e-6  # PCM_24 quantisation


def test_write_is_atomic_and_float_exact(tmp_path):
    a = tone(330, 0.2)
    p = io.write(tmp_path / "x.wav", a, 44100)
    np.testing.assert_array_equal(io.read(p), a)
    assert [f.name for f in tmp_path.iterdir()] == ["x.wav"]


def test_stem_mp4_streams_and_partial_reads():
    p = stempeg.example_stem_path()
    streams = io.read_streams(p, expected=5)
    assert len(streams) == 5 and all(s.shape == (2, 268288) for s in streams)
    ref, _ = stempeg.read_stems(p)  # the field's loader (ffmpeg CLI) agrees sample for sample
    for k in range(5):
        assert np.abs(streams[k].T - ref[k]).max() < 1e-6
    for start in (0, 1000, 123457, 268288 - 4000):
        np.testing.assert_array_equal(io.read(p, start, 4000, stream=3),
                                      streams[3][:, start:start + 4000])


def test_stem_mp4_wrong_stream_count(tmp_path):
    p = write_stem_mp4(tmp_path / "x.stem.mp4", [tone(440, 0.5)] * 3)
    with pytest.raises(AudioError, match=r"x\.stem\.mp4: expected 5 audio streams.*found 3"):
        io.read_streams(p, expected=5)


def test_truncated_mp4(tmp_path):
    src = stempeg.example_stem_path()
    data = open(src, "rb").read()
    p = tmp_path / "t.stem.mp4"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"t\.stem\.mp4: .*(truncated|corrupt|not a readable)"):
        io.read_streams(p, expected=5)


def test_corrupt_and_truncated_wav(tmp_path):
    p = write_wav(tmp_path / "ok.wav", tone(440, 1.0))
    bad = tmp_path / "trunc.wav"
    bad.write_bytes(p.read_bytes()[:30])
    with pytest.raises(AudioError, match="trunc.wav"):
        io.read(bad)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match=r"junk\.wav: not a readable audio file|junk\.wav: cannot"):
        io.info(junk)
    with pytest.raises(AudioError, match="truncated"):
        io.read(p, 40000, 10000)


def test_nan_samples_rejected(tmp_path):
    a = tone(440, 0.2)
    a[0, 100] = np.nan
    a[1, 7] = np.inf
    p = write_wav(tmp_path / "nan.wav", a)
    with pytest.raises(AudioError, match=r"nan\.wav: 2 NaN/inf samples"):
        io.read(p)




def test_missing_and_empty_file(tmp_path):
    with pytest.raises(AudioError, match="nope.wav: file not found"):
        io.read(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: file is empty"):
        io.read(tmp_path / "empty.wav")


def test_resample_and_channels():
    a = tone(1000, 1.0, sr=48000)
    b = dsp.resample(a, 48000, 44100)
    assert b.shape == (2, 44100) and b.dtype == np.float32
    spec = np.abs(np.fft.rfft(b[0]))
    assert abs(np.argmax(spec) - 1000) <= 1
    m = dsp.to_channels(a, 1)
    np.testing.assert_allclose(m[0], a.mean(0), atol=1e-7)
    s = dsp.to_channels(m, 2)
    np.testing.assert_array_equal(s[0], s[1])
    with pytest.raises(AudioError, match="cannot convert 3-channel"):
        dsp.to_channels(np.zeros((3, 10), np.float32), 2)
