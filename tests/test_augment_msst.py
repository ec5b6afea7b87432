"""The steps added for parity with MSST's augmentation list (issue #20, item 6): scale, phaser,
bitcrush, resample, noise, gaussian_noise, seven_band_eq, tanh_distortion.

Steps with a short definition are checked against that definition written out in NumPy here;
every step's draws are plain recorded data and its rendering a pure function of them (the
generic contract tests in test_augment_steps.py also cover every registered step)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import silent_dataset, sine, tone
from stemforge import Index, render
from stemforge.augment import StepError, apply_steps, get, parse_chain
from stemforge.errors import RecipeError
from stemforge.mixing.mixer import Mixer
from stemforge.mixing.spec import MixSpec

SR = 44100
NEW = ("scale", "phaser", "bitcrush", "resample", "noise", "gaussian_noise", "seven_band_eq",
       "tanh_distortion")


def music(frames: int, seed: int = 0) -> np.ndarray:
    """Stereo, dense and loud with a silent gap: three tones under a decaying noise burst."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / SR
    x = sum(a * np.sin(2 * np.pi * f * t + p)
            for a, f, p in ((0.3, 110.0, 0.0), (0.2, 660.0, 1.0), (0.1, 3300.0, 2.0)))
    x = np.stack([x, np.roll(x, 37)]) + 0.05 * rng.standard_normal((2, frames))
    x[:, frames // 2: frames // 2 + frames // 10] = 0.0
    return np.ascontiguousarray(x, dtype=np.float32)


def ctx():
    return {"sample_rate": SR, "channels": 2, "mode": "incoherent", "shared": {}}


def drawn(entry: dict, seed: int = 0) -> dict:
    return parse_chain([entry], sample_rate=SR).draw(np.random.default_rng(seed), "s", ctx())[0]


def mean_channel_rms(x) -> float:
    x = np.asarray(x, np.float64)
    return float(np.mean(np.sqrt(np.mean(x ** 2, axis=1))))


# ---------------------------------------------------------------------- against formulas
def test_scale_is_the_linear_factor():
    x = music(SR // 2)
    d = drawn({"step": "scale"})
    assert set(d) == {"step", "factor"} and 0.5 <= d["factor"] <= 1.5
    y = get("scale").apply(x, SR, {"factor": d["factor"]})
    assert y.tobytes() == (x * np.float32(d["factor"])).tobytes()


def test_bitcrush_is_rounding_to_the_bit_grid_as_pedalboard_does():
    import pedalboard

    x = music(SR // 2)
    for bits in (4.0, 7.5, 16.0):
        y = get("bitcrush").apply(x, SR, {"bits": bits})
        q = 2.0 ** bits
        assert np.array_equal(y, (np.round(x.astype(np.float64) * q) / q).astype(np.float32))
        on_grid = y.astype(np.float64) * q
        assert np.abs(on_grid - np.round(on_grid)).max() < 1e-3  # up to float32 rounding
        pb = pedalboard.Bitcrush(bit_depth=bits)(x, float(SR))
        # pedalboard's definition, computed in float32 there: equal up to float32 rounding
        assert np.abs(pb - y).max() <= 1.2e-7


def test_tanh_distortion_is_audiomentations_definition():
    x = music(SR // 2)
    for amount in (0.1, 0.7):
        y = get("tanh_distortion").apply(x, SR, {"amount": amount})
        xd = x.astype(np.float64)
        threshold = np.percentile(np.abs(xd), 100 - 99 * amount)
        want = np.tanh(0.5 / (threshold + 1e-6) * xd)
        want *= mean_channel_rms(xd) / mean_channel_rms(want)
        np.testing.assert_allclose(y, want.astype(np.float32), rtol=0, atol=2e-7)
        assert mean_channel_rms(y) == pytest.approx(mean_channel_rms(x), rel=1e-5)
        # soft clipping: the crest factor falls with the amount
        assert np.abs(y).max() / mean_channel_rms(y) < np.abs(x).max() / mean_channel_rms(x)
    silent = np.zeros((2, 1000), np.float32)
    assert np.array_equal(get("tanh_distortion").apply(silent, SR, {"amount": 0.5}), silent)


def test_white_noise_at_its_snr_and_gaussian_noise_at_its_amplitude():
    x = music(SR)
    d = drawn({"step": "noise", "snr_db": ["uniform", 5, 30]}, seed=3)
    assert set(d) == {"step", "color", "snr_db", "seed"} and d["color"] == "white"
    params = {k: v for k, v in d.items() if k != "step"}
    y = get("noise").apply(x, SR, params)
    n = np.random.default_rng(d["seed"]).standard_normal(x.shape)
    n /= np.sqrt(np.mean(n ** 2, axis=1, keepdims=True))
    want = x.astype(np.float64) + mean_channel_rms(x) / 10 ** (d["snr_db"] / 20) * n
    assert y.tobytes() == want.astype(np.float32).tobytes()
    added = y.astype(np.float64) - x
    snr = 20 * np.log10(mean_channel_rms(x) / mean_channel_rms(added))
    assert snr == pytest.approx(d["snr_db"], abs=1e-3)
    # gaussian_noise: absolute standard deviation
    g = get("gaussian_noise").apply(x, SR, {"amplitude": 0.01, "seed": 5})
    n = np.random.default_rng(5).standard_normal(x.shape)
    assert g.tobytes() == (x.astype(np.float64) + 0.01 * n).astype(np.float32).tobytes()
    assert np.std(g.astype(np.float64) - x) == pytest.approx(0.01, rel=0.01)
    # a silent stem gets no noise (the level is relative to it)
    z = np.zeros((2, 100), np.float32)
    assert np.array_equal(get("noise").apply(z, SR, params), z)


def band_power_db(x: np.ndarray, lo: float, hi: float) -> float:
    f = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    p = np.abs(np.fft.rfft(x.astype(np.float64), axis=-1)) ** 2
    return 10 * np.log10(p[..., (f >= lo) & (f < hi)].sum())


def test_pink_noise_has_equal_power_per_octave():
    z = np.full((2, 4 * SR), 0.1, np.float32)  # a DC stem: the added noise is all there is
    params = {"snr_db": 0.0, "seed": 11}
    pink = get("noise").apply(z, SR, {**params, "color": "pink"}) - z
    white = get("noise").apply(z, SR, {**params, "color": "white"}) - z
    # power per octave from 125 Hz to 16 kHz, fitted by a line: pink is flat, white rises by
    # 3 dB per octave
    octaves = np.arange(7)
    for noise, slope in ((pink, 0.0), (white, 10 * math.log10(2))):
        power = [band_power_db(noise, 125.0 * 2 ** k, 250.0 * 2 ** k) for k in octaves]
        assert np.polyfit(octaves, power, 1)[0] == pytest.approx(slope, abs=0.1)
    assert mean_channel_rms(pink) == pytest.approx(0.1, rel=1e-6)  # snr 0 dB against 0.1


def test_resample_removes_what_the_lower_rate_cannot_hold():
    for frames in (SR // 2, SR // 2 + 7, 12345):
        low, high = sine(frames, 1000.0), sine(frames, 6000.0)
        x = np.ascontiguousarray(low + high, dtype=np.float32)
        y = get("resample").apply(x, SR, {"rate_hz": 8000.0})
        assert y.shape == x.shape
        mid = slice(frames // 4, 3 * frames // 4)  # away from the edges' transients
        assert np.abs(y[:, mid] - low[:, mid]).max() < 2e-3  # 1 kHz kept, aligned; 6 kHz gone
    assert np.array_equal(get("resample").apply(x, SR, {"rate_hz": float(SR)}), x)
    with pytest.raises(StepError, match=r"'resample': rate_hz=48000.0 must be in \(0, 44100\]"):
        get("resample").apply(x, SR, {"rate_hz": 48000.0})


def test_seven_band_eq_draws_within_its_bands_and_shapes_them():
    from stemforge.augment.effects import EQ7_BANDS

    d = drawn({"step": "seven_band_eq", "gain_db": ["uniform", -9, 9]}, seed=4)
    assert len(d) == 1 + 21
    for k, (kind, lo, hi) in enumerate(EQ7_BANDS, start=1):
        assert lo <= d[f"band{k}_hz"] <= hi and -9 <= d[f"band{k}_db"] <= 9
        assert (0.5 <= d[f"band{k}_q"] <= 5) if kind == "PeakFilter" else \
            (0.1 <= d[f"band{k}_q"] <= 0.999)
    x = music(SR)
    flat = {k: (0.0 if k.endswith("_db") else v) for k, v in d.items() if k != "step"}
    np.testing.assert_allclose(get("seven_band_eq").apply(x, SR, flat), x, atol=1e-5)
    # one band up 12 dB: a tone at its centre gains 12 dB, one three octaves away stays
    boost = {**flat, "band4_db": 12.0, "band4_hz": 600.0, "band4_q": 2.0}
    for f, gain in ((600.0, 12.0), (75.0, 0.0)):
        t = tone(f, 1.0, SR, amp=0.1)
        y = get("seven_band_eq").apply(t, SR, boost)
        assert 20 * np.log10(mean_channel_rms(y[:, SR // 2:]) / mean_channel_rms(t[:, SR // 2:])) \
            == pytest.approx(gain, abs=0.3)
    with pytest.raises(StepError, match=r"'seven_band_eq': band4_q must be a finite number > 0"):
        get("seven_band_eq").apply(x, SR, {**flat, "band4_q": -1.0})
    with pytest.raises(StepError, match=r"band7_hz=9000.0 Hz must be below 8000 Hz"):
        get("seven_band_eq").apply(x[:, :1600], 16000, {**flat, "band7_hz": 9000.0})


def test_phaser_is_the_pedalboard_phaser_from_a_zero_state():
    import pedalboard

    x = music(SR // 2)
    d = drawn({"step": "phaser"}, seed=2)
    assert set(d) == {"step", "rate_hz", "depth", "centre_hz", "feedback", "mix"}
    params = {k: v for k, v in d.items() if k != "step"}
    y = get("phaser").apply(x, SR, params)
    fx = pedalboard.Phaser(rate_hz=d["rate_hz"], depth=d["depth"],
                           centre_frequency_hz=d["centre_hz"], feedback=d["feedback"],
                           mix=d["mix"])
    assert y.tobytes() == fx(x, float(SR), reset=True).astype(np.float32).tobytes()
    assert not np.array_equal(y, x)


# ---------------------------------------------------------------------- draws and rendering
def test_draws_are_recorded_plain_data_and_rendering_repeats():
    chain = parse_chain([{"step": n} for n in NEW], sample_rate=SR)
    a = chain.draw(np.random.default_rng(7), "s", ctx())
    assert a == chain.draw(np.random.default_rng(7), "s", ctx())
    assert a != chain.draw(np.random.default_rng(8), "s", ctx())
    assert [s["step"] for s in a] == list(NEW)
    assert json.loads(json.dumps(a)) == a
    x = music(SR // 2)
    y = apply_steps(x, SR, a, SR // 2)
    assert y.tobytes() == apply_steps(x.copy(), SR, json.loads(json.dumps(a)), SR // 2).tobytes()
    # another noise seed gives other noise
    other = [dict(s, seed=s["seed"] + 1) if "seed" in s else s for s in a]
    assert apply_steps(x, SR, other, SR // 2).tobytes() != y.tobytes()


@pytest.mark.parametrize("entry,field", [
    ({"step": "scale", "factor": -1}, "augment[0].factor"),
    ({"step": "bitcrush", "bits": ["uniform", 0, 8]}, "augment[0].bits"),
    ({"step": "noise", "color": "blue"}, "augment[0].color"),
    ({"step": "noise", "snr": 10}, "augment[0].snr"),
    ({"step": "tanh_distortion", "amount": 1.5}, "augment[0].amount"),
    ({"step": "phaser", "centre_hz": 30000}, "augment[0].centre_hz"),
    ({"step": "resample", "rate_hz": ["uniform", 8000, 48000]}, "augment[0].rate_hz"),
    ({"step": "seven_band_eq", "gain_db": 50}, "augment[0].gain_db"),
    ({"step": "gaussian_noise", "amplitude": -0.1}, "augment[0].amplitude"),
])
def test_bad_parameters_name_the_field(entry, field):
    with pytest.raises(RecipeError) as e:
        parse_chain([entry], sample_rate=SR)
    assert f"'{field}'" in str(e.value) and "\n" not in str(e.value)


def test_a_recipe_records_every_step_and_re_renders_from_its_spec(tmp_path):
    root = silent_dataset(tmp_path / "data", tracks=3, seconds=3.0, sr=SR, seed=1)
    index = Index.open(root, cache_dir=tmp_path / "cache")
    recipe = {"targets": ["vocals", "drums", "bass", "other"], "duration": 1.0,
              "sample_rate": SR, "split": "all",
              "stems": {"default": {"gain_db": 0}},
              "augment": [{"step": n, "p": 0.7} for n in NEW]}
    mixer = Mixer(recipe, index, seed=5)
    fired = set()
    for m in mixer.mixtures(range(4)):
        for src in m.spec.sources:
            fired |= {s["step"] for s in src.steps}
        spec = MixSpec.from_json(m.spec.to_json())
        again = render(spec, index)
        assert again.mix.tobytes() == m.mix.tobytes()
        assert all(again.targets[t].tobytes() == m.targets[t].tobytes() for t in spec.targets)
    assert fired == set(NEW)  # every step was drawn, recorded and rendered at least once
