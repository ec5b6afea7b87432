"""Quick (tape) pitch/tempo: consecutive quick steps run as ONE resampling by the product of
their speeds. The effect is the composition (tone frequency within 1 % of F0 * 2**(s/12) * rate,
same samples as chaining them up to resampler rounding), lengths exact, bytes deterministic,
and bad params in a fused run still raise the step's own error."""
from __future__ import annotations

import numpy as np
import pytest

from stemforge.augment import StepError, apply_steps, frame_plan, get, source_frames
from stemforge.augment.pitch import tape

SR = 44100
F0 = 440.0


def tone(frames, f=F0, channels=2):
    t = np.arange(frames) / SR
    return np.stack([np.sin(2 * np.pi * f * t)] * channels).astype(np.float32) * 0.5


def measured_freq(x):
    a = x[0, x.shape[1] // 4: 3 * x.shape[1] // 4].astype(np.float64)
    n = 8 * len(a)
    spec = np.abs(np.fft.rfft(a * np.hanning(len(a)), n))
    k = int(np.argmax(spec))
    lm, c, r = np.log(spec[k - 1: k + 2])
    return (k + 0.5 * (lm - r) / (lm - 2 * c + r)) * SR / n


def quick(semitones, rate):
    return [{"step": "pitch_shift", "semitones": semitones, "mode": "quick"},
            {"step": "time_stretch", "rate": rate, "mode": "quick"}]


@pytest.mark.parametrize("semitones,rate", [(-2.0, 0.9), (1.5, 1.1), (2.0, 0.9), (-0.7, 1.04)])
def test_fused_tape_is_one_resampling_with_the_composed_effect(semitones, rate):
    out = SR // 2
    steps = quick(semitones, rate)
    n_in = source_frames(steps, out)
    x = tone(n_in)
    y = apply_steps(x, SR, steps, out)
    assert y.shape == (2, out) and y.dtype == np.float32
    speed = 2 ** (semitones / 12) * rate
    # the effect: pitch (and tempo) x 2**(s/12) * rate
    assert abs(measured_freq(y) / (F0 * speed) - 1) < 0.01
    # one resampling: exactly the single tape speed change by the product
    assert np.array_equal(y, tape(x, SR, speed)[:, :out])
    # deterministic bytes
    assert y.tobytes() == apply_steps(x, SR, steps, out).tobytes()
    # and the same signal as running the two tape changes one after the other (step by step),
    # up to the resampler's rounding: only the bytes differ
    plan = frame_plan(steps, out)
    z = get("pitch_shift").apply(x, SR, {"semitones": semitones, "mode": "quick"}, plan[1])
    z = get("time_stretch").apply(z, SR, {"rate": rate, "mode": "quick"}, plan[2])
    assert not np.array_equal(y, z)
    assert np.max(np.abs(y - z)) < 2e-3


def test_fused_tape_tempo_changes_duration():
    """Bursts every 4410 frames come every 4410 / speed frames after the fused run."""
    out, every = SR, 4410
    steps = quick(2.0, 1.1)
    speed = 2 ** (2 / 12) * 1.1
    n_in = source_frames(steps, out)
    x = np.zeros((2, n_in), np.float32)
    b = tone(441, 1000.0)[0] * np.hanning(441).astype(np.float32)
    for s in range(every // 2, n_in - 441, every):
        x[:, s: s + 441] = b
    y = apply_steps(x, SR, steps, out)
    idx = np.flatnonzero(np.abs(y[0]) > 0.05)
    starts = np.asarray([idx[0]] + [q for p, q in zip(idx[:-1], idx[1:]) if q - p > 1500], float)
    gaps = np.diff(starts)
    assert len(gaps) >= 8
    assert np.allclose(gaps, every / speed, atol=0.003 * SR)


def test_non_tape_step_breaks_the_run():
    """quick pitch_shift, gain, quick time_stretch: two resamplings, exactly the step-by-step
    result (nothing fused across a step that is not a tape change)."""
    out = 8000
    steps = [quick(1.0, 1.0)[0], {"step": "gain", "db": -3.0}, quick(0.0, 1.07)[1]]
    plan = frame_plan(steps, out)
    x = np.random.default_rng(3).standard_normal((2, plan[0])).astype(np.float32)
    want = x
    for st, n in zip(steps, plan[1:]):
        want = get(st["step"]).apply(want, SR, {k: v for k, v in st.items() if k != "step"}, n)
    assert np.array_equal(apply_steps(x, SR, steps, out), want)


def test_hq_steps_are_not_tape():
    assert get("pitch_shift").tape_speed({"semitones": 1.0, "mode": "hq"}) is None
    assert get("time_stretch").tape_speed({"rate": 1.1, "mode": "fast"}) is None
    assert get("gain").tape_speed({"db": 1.0}) is None
    assert get("time_stretch").tape_speed({"rate": 1.1, "mode": "quick"}) == 1.1


@pytest.mark.parametrize("bad,msg", [
    ({"step": "time_stretch", "rate": 0.0, "mode": "quick"},
     r"'time_stretch': rate must be in \[0.25, 4.0\], got 0.0"),
    ({"step": "time_stretch", "rate": 1.0, "mode": "tape"},
     "'time_stretch': mode must be one of hq, fast, quick, got 'tape'"),
    ({"step": "time_stretch", "rate": 1.0},
     r"'time_stretch': expected parameters \['mode', 'rate'\], got \['rate'\]"),
])
def test_bad_params_in_a_fused_run_raise_the_steps_error(bad, msg):
    steps = [quick(1.0, 1.0)[0], bad]
    x = np.zeros((2, source_frames(steps, 100)), np.float32)
    with pytest.raises(StepError, match=msg):
        apply_steps(x, SR, steps, 100)
