"""Quick (tape) pitch/tempo: consecutive quick steps run as ONE resampling by the product of
their speeds. The effect is the composition (tone frequency within 1 % of F0 * 2**(s/12) * rate,
same samples as chaining them up to resampler rounding), lengths exact, bytes deterministic,
and bad params in a fused run still raise the step's own error."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import peak_frequency, sine
from stemforge.augment import StepError, apply_steps, frame_plan, get, source_frames
from stemforge.audio.dsp import tape

SR = 44100
F0 = 440.0


def quick(semitones, rate):
    return [{"step": "pitch_shift", "semitones": semitones, "mode": "quick"},
            {"step": "time_stretch", "rate": rate, "mode": "quick"}]


@pytest.mark.parametrize("semitones,rate", [(-2.0, 0.9), (1.5, 1.1), (2.0, 0.9), (-0.7, 1.04)])
def test_fused_tape_is_one_resampling_with_the_composed_effect(semitones, rate):
    out = SR // 2
    steps = quick(semitones, rate)
    n_in = source_frames(steps, out)
    x = sine(n_in)
    y = apply_steps(x, SR, steps, out)
    assert y.shape == (2, out) and y.dtype == np.float32
    speed = 2 ** (semitones / 12) * rate
    # the effect: pitch (and tempo) x 2**(s/12) * rate
    assert abs(peak_frequency(y) / (F0 * speed) - 1) < 0.01
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
    b = sine(441, 1000.0)[0] * np.hanning(441).astype(np.float32)
    for s in range(every // 2, n_in - 441, every):
        x[:, s: s + 441] = b
    y = apply_steps(x, SR, steps, out)
    idx = np.flatnonzero(np.abs(y[0]) > 0.05)
    starts = np.asarray([idx[0]] + [q for p, q in zip(idx[:-1], idx[1:], strict=True) if q - p > 1500], float)
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
    for st, n in zip(steps, plan[1:], strict=True):
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
     r"'time_stretch': expected parameters \['mode', 'rate'\] \(and optionally loudness, quality\), got \['rate'\]"),
])
def test_bad_params_in_a_fused_run_raise_the_steps_error(bad, msg):
    steps = [quick(1.0, 1.0)[0], bad]
    x = np.zeros((2, source_frames(steps, 100)), np.float32)
    with pytest.raises(StepError, match=msg):
        apply_steps(x, SR, steps, 100)


# ---------------------------------------------------------------------- loudness: source
from stemforge.augment import parse_chain  # noqa: E402
from stemforge.augment.chain import loudness_span  # noqa: E402
from stemforge.errors import RecipeError  # noqa: E402


def test_loudness_option_recorded_only_when_source():
    ctx = {"sample_rate": SR, "channels": 2, "mode": "incoherent", "shared": {}}
    measured = parse_chain([{"step": "pitch_shift", "mode": "quick"}], sample_rate=SR)
    source = parse_chain([{"step": "pitch_shift", "mode": "quick", "loudness": "source"},
                          {"step": "time_stretch", "mode": "quick", "loudness": "source"}],
                         sample_rate=SR)
    a = measured.draw(np.random.default_rng(0), "v", ctx)
    b = source.draw(np.random.default_rng(0), "v", ctx)
    assert set(a[0]) == {"step", "semitones", "mode"}  # specs of existing recipes unchanged
    assert b[0]["loudness"] == "source" and b[1]["loudness"] == "source"
    assert b[0]["semitones"] == a[0]["semitones"]  # the option draws nothing
    out = 1000
    speed = 2 ** (b[0]["semitones"] / 12) * b[1]["rate"]
    assert loudness_span(b, out) == round(out * speed)
    assert loudness_span(a, out) is None  # measured on the processed audio
    assert loudness_span([b[0], {"step": "polarity"}], out) == round(out * 2 ** (b[0]["semitones"] / 12))
    assert loudness_span([b[0], {"step": "gain", "db": 1.0}], out) is None
    assert loudness_span([{"step": "channel_swap"}], out) == out
    assert loudness_span([], out) == out
    # the option does not change the audio
    x = np.random.default_rng(1).standard_normal((2, source_frames(b, out))).astype(np.float32)
    plain = [{k: v for k, v in s.items() if k != "loudness"} for s in b]
    assert np.array_equal(apply_steps(x, SR, b, out), apply_steps(x, SR, plain, out))


@pytest.mark.parametrize("raw,field,msg", [
    ({"step": "pitch_shift", "loudness": "source"}, "augment[0].loudness",
     "loudness: source is only for mode quick"),
    ({"step": "time_stretch", "mode": "fast", "loudness": "source"}, "augment[0].loudness",
     "only for mode quick"),
    ({"step": "time_stretch", "mode": "quick", "loudness": "guess"}, "augment[0].loudness",
     "expected one of measured, source, got 'guess'"),
    ({"step": "pitch_tempo", "loudness": "source"}, "augment[0].loudness",
     "unknown parameter for step 'pitch_tempo'"),
])
def test_loudness_option_errors_at_recipe_load(raw, field, msg):
    with pytest.raises(RecipeError) as e:
        parse_chain([raw], sample_rate=SR)
    assert e.value.field == field and msg in str(e.value)


def test_recorded_loudness_checked_when_applied():
    x = np.zeros((2, 3000), np.float32)
    with pytest.raises(StepError, match="'pitch_shift': loudness must be one of measured, source "
                                        r"\(source with mode quick only\), got 'source' with mode 'hq'"):
        apply_steps(x, SR, [{"step": "pitch_shift", "semitones": 0.0, "mode": "hq",
                             "loudness": "source"}], 3000 - 1024)
    with pytest.raises(StepError, match="loudness must be one of .* got 'x'"):
        get("time_stretch").tape_speed({"rate": 1.0, "mode": "quick", "loudness": "x"})


def test_source_loudness_approximation_on_real_stems():
    """The opt-in approximation against measuring the processed audio, on the real MUSDB18
    excerpt's stems: tape speeds 0.9..1.1 (and 0.8..1.25) at random starts."""
    import stempeg

    from stemforge.audio import loudness as lufs

    stems, sr = stempeg.read_stems(stempeg.example_stem_path())
    sr, out = int(sr), 2 * int(sr)
    rng = np.random.default_rng(1)
    for lo, hi, median, worst in ((0.9, 1.1, 0.15, 0.6), (0.8, 1.25, 0.3, 1.3)):
        errs = []
        for k in range(1, 5):
            x = np.ascontiguousarray(stems[k].T, dtype=np.float32)
            energies = lufs.block_energies(x, sr)
            for _ in range(6):
                sp = float(rng.uniform(lo, hi))
                n = source_frames([{"step": "time_stretch", "rate": sp, "mode": "quick"}], out)
                st = int(rng.integers(0, x.shape[1] - n))
                steps = [{"step": "time_stretch", "rate": sp, "mode": "quick",
                          "loudness": "source"}]
                y = apply_steps(x[:, st:st + n], sr, steps, out)
                approx = lufs.excerpt_loudness(energies, sr, st, loudness_span(steps, out))
                errs.append(approx - lufs.integrated_loudness(y, sr))
        e = np.abs(errs)
        assert np.isfinite(e).all()
        assert np.median(e) < median and e.max() < worst, (lo, hi, np.sort(e))
        assert e.max() > 0.01  # it IS an approximation, not an identity


def test_mixer_with_source_loudness(tmp_path):
    """End to end: the spec's loudness is the stored-energy loudness of the covered source span
    (no filtering), gains follow it, the mix is the sum of the targets, re-render is bit-exact."""
    from conftest import make_musdb18hq

    from stemforge import Index, Mixer, Recipe, render
    from stemforge.audio import loudness as lufs
    from stemforge.mixing.spec import MixSpec

    root = make_musdb18hq(tmp_path / "hq", {f"T{k} - Song": "train" for k in range(3)},
                          seconds=3.0)
    idx = Index.build(root, cache_dir=tmp_path / "cache")
    aug = [{"step": "pitch_shift", "mode": "quick", "loudness": "source"},
           {"step": "time_stretch", "mode": "quick", "loudness": "source"}]
    r = Recipe.from_dict({"targets": ["vocals", "accompaniment"],
                          "groups": {"accompaniment": ["drums", "bass", "other"]},
                          "duration": 1.5, "modes": {"coherent": 1.0}, "augment": aug,
                          "ref_db": ["uniform", -30, -10],
                          "stems": {"default": {"snr": ["uniform", -5, 5]}}})
    mixer = Mixer(r, idx, seed=5)
    for i in range(3):
        m = mixer.mixture(i, keep_sources=True)
        np.testing.assert_array_equal(m.mix, sum(m.targets.values()))
        for s in m.spec.sources:
            assert [x["loudness"] for x in s.steps] == ["source", "source"]
            span = loudness_span(s.steps, r.frames)
            assert s.loudness == idx.loudness(s.track, s.stem, s.start, span)
            assert s.gain_db == pytest.approx(m.spec.ref_db + s.snr + s.boost - s.loudness)
            # the processed stem's measured level is close to the intended one (approximation)
            got = lufs.integrated_loudness(m.sources[s.stem], r.sample_rate)
            assert abs(got - (m.spec.ref_db + s.snr + s.boost)) < 0.5, (s.stem, got)
        again = render(MixSpec.from_json(m.spec.to_json()), idx)
        assert again.mix.tobytes() == m.mix.tobytes()


# ---------------------------------------------------------------------- quality: LQ
def band_energy(x, lo, hi):
    spec = np.abs(np.fft.rfft(x[0].astype(np.float64))) ** 2
    f = np.fft.rfftfreq(x.shape[1], 1 / SR)
    return spec[(f >= lo) & (f < hi)].sum()


def test_lq_tape_same_effect_narrower_band():
    out = SR // 2
    hq = quick(1.5, 1.05)
    lq = [dict(s, quality="LQ") for s in hq]
    speed = 2 ** (1.5 / 12) * 1.05
    x = sine(source_frames(hq, out))
    y = apply_steps(x, SR, lq, out)
    assert y.shape == (2, out)
    assert abs(peak_frequency(y) / (F0 * speed) - 1) < 0.01
    assert np.array_equal(y, tape(x, SR, speed, "LQ")[:, :out])  # fused, at LQ
    assert not np.array_equal(y, apply_steps(x, SR, hq, out))
    # white noise sped up: HQ's pass band runs to 95 % of Nyquist (20.9 kHz), LQ's to 80 %
    # (17.6 kHz): 19.5-20.5 kHz is ~21 dB down with LQ, 2-15 kHz the same
    noise = np.random.default_rng(0).standard_normal((2, source_frames(hq, out))).astype(np.float32)
    a, b = apply_steps(noise, SR, hq, out), apply_steps(noise, SR, lq, out)
    assert band_energy(b, 19500, 20500) < 0.05 * band_energy(a, 19500, 20500)
    assert band_energy(b, 2000, 15000) == pytest.approx(band_energy(a, 2000, 15000), rel=0.02)


def test_quality_recorded_only_when_not_hq_and_runs_split_by_quality():
    ctx = {"sample_rate": SR, "channels": 2, "mode": "incoherent", "shared": {}}
    chain = parse_chain([{"step": "pitch_shift", "mode": "quick", "quality": "LQ"},
                         {"step": "time_stretch", "mode": "quick", "quality": "HQ"}],
                        sample_rate=SR)
    steps = chain.draw(np.random.default_rng(0), "v", ctx)
    assert steps[0]["quality"] == "LQ" and "quality" not in steps[1]
    out = 4000
    plan = frame_plan(steps, out)
    x = np.random.default_rng(2).standard_normal((2, plan[0])).astype(np.float32)
    z = get("pitch_shift").apply(x, SR, {k: v for k, v in steps[0].items() if k != "step"}, plan[1])
    z = get("time_stretch").apply(z, SR, {k: v for k, v in steps[1].items() if k != "step"}, plan[2])
    assert np.array_equal(apply_steps(x, SR, steps, out), z)  # not fused across qualities


@pytest.mark.parametrize("raw,field,msg", [
    ({"step": "pitch_shift", "quality": "LQ"}, "augment[0].quality",
     "quality: LQ is only for mode quick"),
    ({"step": "time_stretch", "mode": "quick", "quality": "best"}, "augment[0].quality",
     "expected one of HQ, MQ, LQ, got 'best'"),
])
def test_quality_errors_at_recipe_load(raw, field, msg):
    with pytest.raises(RecipeError) as e:
        parse_chain([raw], sample_rate=SR)
    assert e.value.field == field and msg in str(e.value)


def test_recorded_quality_checked_when_applied():
    x = np.zeros((2, 3000), np.float32)
    with pytest.raises(StepError, match=r"'time_stretch': quality must be one of HQ, MQ, LQ "
                                        r"\(MQ, LQ with mode quick only\), got 'LQ' with mode 'fast'"):
        apply_steps(x, SR, [{"step": "time_stretch", "rate": 1.0, "mode": "fast",
                             "quality": "LQ"}], 3000 - 1024)
