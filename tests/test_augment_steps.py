"""Per-step contracts: plain-data params, determinism, exact length, and each effect itself."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stemforge.augment import StepError, apply_steps, get, names, parse_chain, source_frames

SR = 44100
OUT = SR // 2  # 0.5 s output


def noise(frames, channels=2, seed=0, cutoff=None):
    x = np.random.default_rng(seed).standard_normal((channels, frames)).astype(np.float32) * 0.1
    if cutoff:  # band-limit (codecs cut the top octave)
        import pedalboard
        x = pedalboard.LowpassFilter(cutoff)(x, SR)
    return np.ascontiguousarray(x, dtype=np.float32)


def lag_of_peak(a, b):
    """Lag (frames) at which the cross-correlation of 1-D a against b peaks."""
    n = len(a) + len(b)
    c = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    k = int(np.argmax(c))
    return k if k < len(a) else k - n


@pytest.mark.parametrize("name", names())
def test_every_step_plain_data_deterministic_exact_length(name):
    chain = parse_chain([{"step": name}], sample_rate=SR)
    ctx = {"sample_rate": SR, "channels": 2, "mode": "incoherent", "shared": {}}
    steps = chain.draw(np.random.default_rng(1), "s", ctx)
    assert len(steps) == 1 and steps[0]["step"] == name
    assert json.loads(json.dumps(steps)) == steps
    n_in = source_frames(steps, OUT)
    x = noise(n_in, cutoff=10000) * np.float32(4)  # ~ -8 dBFS: above compressor thresholds
    before = x.copy()
    y1 = apply_steps(x, SR, steps, OUT)
    y2 = apply_steps(x, SR, steps, OUT)
    assert y1.shape == (2, OUT) and y1.dtype == np.float32 and y1.flags.c_contiguous
    assert y1.tobytes() == y2.tobytes()
    assert np.array_equal(x, before)  # input untouched
    assert np.isfinite(y1).all()
    if name != "time_shift" and n_in == OUT:  # every step does something to the audio
        assert not np.array_equal(y1, x)


def test_gain_exact_in_db():
    x = noise(OUT)
    for db in (-12.5, 0.0, 3.0, 20.0):
        y = get("gain").apply(x, SR, {"db": db})
        measured = 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2))
                                 / np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        assert abs(measured - db) < 1e-4


def test_polarity_swap_reverse_exact():
    x = noise(OUT)
    assert np.array_equal(get("polarity").apply(x, SR, {}), -x)
    assert np.array_equal(get("channel_swap").apply(x, SR, {}), x[[1, 0]])
    assert np.array_equal(get("reverse").apply(x, SR, {}), x[:, ::-1])
    assert np.array_equal(get("reverse").apply(get("reverse").apply(x, SR, {}), SR, {}), x)
    with pytest.raises(StepError, match="'channel_swap': needs at least 2 channels, got 1"):
        get("channel_swap").apply(x[:1], SR, {})
    with pytest.raises(StepError, match="keeps the length: got 22050 input frames but 100"):
        get("polarity").apply(x, SR, {}, 100)


def test_time_shift_offsets_without_padding():
    chain = parse_chain([{"step": "time_shift", "seconds": ["uniform", 0, 0.25]}])
    ctx = {"sample_rate": SR, "channels": 2, "mode": "incoherent", "shared": {}}
    rng = np.random.default_rng(0)
    draws = [chain.draw(rng, "s", ctx)[0] for _ in range(50)]
    assert all(d["max_frames"] == SR // 4 for d in draws)
    assert len({d["frames"] for d in draws}) == 50 and all(0 <= d["frames"] <= SR // 4
                                                           for d in draws)
    x = noise(OUT + SR // 4)
    d = draws[0]
    y = apply_steps(x, SR, [d], OUT)
    assert np.array_equal(y, x[:, d["frames"]: d["frames"] + OUT])


def test_mp3_and_aac_differ_but_stay_aligned():
    # partials, not noise: AAC codes noise bands parametrically (PNS), so its waveform error on
    # white noise is large by design
    t = np.arange(SR) / SR
    x = np.stack([sum(np.sin(2 * np.pi * f * t + i) for i, f in enumerate((220, 330, 550, 1200)))
                  ] * 2).astype(np.float32) * 0.2
    x[1] *= np.linspace(0, 1, SR, dtype=np.float32)
    for step in ({"step": "mp3", "vbr_quality": 6.0}, {"step": "aac", "bitrate_kbps": 64}):
        y = apply_steps(x, SR, [step], SR)
        assert y.shape == x.shape
        err = np.sqrt(np.mean((y - x) ** 2)) / np.sqrt(np.mean(x ** 2))
        assert 1e-3 < err < 0.5, (step, err)  # lossy, yet the same signal
        for c in range(2):
            assert lag_of_peak(y[c], x[c]) == 0, step
    # mono AAC works too
    y = get("aac").apply(x[:1], SR, {"bitrate_kbps": 48})
    assert y.shape == (1, SR) and lag_of_peak(y[0], x[0]) == 0


def test_codec_bad_rates():
    with pytest.raises(StepError, match="'mp3': mp3 supports sample rates 32000, 44100, 48000 Hz,"
                                        " got 16000 Hz"):
        get("mp3").apply(noise(1000), 16000, {"vbr_quality": 2.0})
    with pytest.raises(StepError, match="'aac': aac supports sample rates .* got 7000 Hz"):
        get("aac").apply(noise(1000), 7000, {"bitrate_kbps": 64})
    with pytest.raises(StepError, match="'aac': supports mono or stereo, got 3 channels"):
        get("aac").apply(noise(1000, channels=3), SR, {"bitrate_kbps": 64})


def band_energy(x, lo, hi):
    spec = np.abs(np.fft.rfft(x[0].astype(np.float64))) ** 2
    f = np.fft.rfftfreq(x.shape[1], 1 / SR)
    return spec[(f >= lo) & (f < hi)].sum()


@pytest.mark.parametrize("step, band, direction", [
    ({"step": "lowpass", "cutoff_hz": 1000.0}, (8000, 16000), "down"),
    ({"step": "highpass", "cutoff_hz": 2000.0}, (20, 200), "down"),
    ({"step": "peak_eq", "freq_hz": 1000.0, "gain_db": 12.0, "q": 2.0}, (900, 1100), "up"),
    ({"step": "low_shelf", "freq_hz": 200.0, "gain_db": -12.0, "q": 0.7071}, (20, 100), "down"),
    ({"step": "high_shelf", "freq_hz": 5000.0, "gain_db": 12.0, "q": 0.7071}, (10000, 16000), "up"),
])
def test_filters_move_the_right_band(step, band, direction):
    x = noise(SR)
    y = apply_steps(x, SR, [step], SR)
    ratio_db = 10 * np.log10(band_energy(y, *band) / band_energy(x, *band))
    assert (ratio_db < -6) if direction == "down" else (ratio_db > 6), ratio_db


def test_compressor_reverb_distortion_chorus_effects():
    t = np.arange(SR) / SR
    tone = np.stack([np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32) * 0.5
    loud_quiet = tone * np.where(t < 0.5, 1.0, 0.05).astype(np.float32)
    comp = get("compressor").apply(loud_quiet, SR, {"threshold_db": -30.0, "ratio": 8.0,
                                                    "attack_ms": 1.0, "release_ms": 50.0})
    # compression narrows the loud/quiet level difference
    def lvl(a):
        return 20 * np.log10(np.sqrt(np.mean(a ** 2)))
    before = lvl(loud_quiet[:, 11025:22050]) - lvl(loud_quiet[:, 33075:])
    after = lvl(comp[:, 11025:22050]) - lvl(comp[:, 33075:])
    assert after < before - 6
    # reverb: an impulse gets a tail
    imp = np.zeros((2, SR), np.float32)
    imp[:, 100] = 1.0
    rev = get("reverb").apply(imp, SR, {"room_size": 0.8, "damping": 0.5, "wet_level": 0.5,
                                        "dry_level": 0.0, "width": 1.0})
    assert np.abs(rev[:, SR // 4:]).max() > 1e-3
    # distortion adds harmonics of 220 Hz (the clean tone has none at 660 Hz)
    dist = get("distortion").apply(tone, SR, {"drive_db": 20.0})
    assert band_energy(dist, 650, 670) > 1e3 * band_energy(tone, 650, 670)
    # chorus: changes the signal but keeps its level close
    ch = get("chorus").apply(tone, SR, {"rate_hz": 1.0, "depth": 0.25, "centre_delay_ms": 7.0,
                                        "feedback": 0.0, "mix": 0.5})
    assert not np.allclose(ch, tone, atol=1e-3) and abs(lvl(ch) - lvl(tone)) < 6


def test_filter_frequency_above_nyquist_at_apply():
    with pytest.raises(StepError, match=r"'lowpass': cutoff_hz=30000.0 Hz must be in \(0, 22050\)"
                                        r" at 44100 Hz"):
        get("lowpass").apply(noise(100), SR, {"cutoff_hz": 30000.0})
