"""The augment recipe section: load-time validation, per-stem draws, shared draws, frame plans."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stemforge.augment import (
    StepError, apply_steps, frame_plan, get, names, parse_chain, source_frames,
)
from stemforge.errors import AudioError, RecipeError

SR = 44100


def ctx(mode="coherent", shared=None, **kw):
    return {"sample_rate": SR, "channels": 2, "mode": mode,
            "shared": {} if shared is None else shared, **kw}


# ---------------------------------------------------------------------- load-time errors
@pytest.mark.parametrize("entries, field, words", [
    ({"step": "gain"}, "augment", "expected a list of steps"),
    (["gain"], "augment[0]", "expected a mapping"),
    ([{"p": 0.5}], "augment[0].step", "missing; known steps: aac"),
    ([{"step": "gain"}, {"step": "wobble"}], "augment[1].step", "unknown step 'wobble'; known steps"),
    ([{"step": "gain", "dB": 3}], "augment[0].dB", "parameters are: db"),
    ([{"step": "polarity", "amount": 1}], "augment[0].amount", "its parameters are: none"),
    ([{"step": "gain", "p": 1.5}], "augment[0].p", "probability must be a number in [0, 1], got 1.5"),
    ([{"step": "gain", "p": -0.1}], "augment[0].p", "in [0, 1]"),
    ([{"step": "gain", "p": "often"}], "augment[0].p", "got 'often'"),
    ([{"step": "gain", "p": True}], "augment[0].p", "got True"),
    ([{"step": "gain", "db": ["uniform", -6]}], "augment[0].db", "uniform takes 2"),
    ([{"step": "gain", "db": [" gauss", 0, 1]}], "augment[0].db", "unknown distribution"),
    ([{"step": "gain", "db": 500}], "augment[0].db", "above the maximum 60"),
    ([{"step": "time_stretch", "rate": 0}], "augment[0].rate", "below the minimum 0.25"),
    ([{"step": "time_stretch", "rate": ["uniform", -1, 1.1]}], "augment[0].rate", "below the minimum"),
    ([{"step": "pitch_tempo", "tempo": ["normal", 5, 0.1]}], "augment[0].tempo", "above the maximum"),
    ([{"step": "pitch_shift", "semitones": 30}], "augment[0].semitones", "above the maximum 24"),
    ([{"step": "pitch_shift", "mode": "best"}], "augment[0].mode", "expected one of hq, fast, quick"),
    ([{"step": "pitch_tempo", "mode": "quick"}], "augment[0].mode", "use mode hq or fast"),
    ([{"step": "time_shift", "seconds": 0}], "augment[0].seconds", "maximum shift must be > 0"),
    ([{"step": "time_shift", "seconds": ["uniform", -1, 1]}], "augment[0].seconds", "below the minimum 0"),
    ([{"step": "gain", "stems": []}], "augment[0].stems", "non-empty list"),
    ([{"step": "gain", "stems": [1]}], "augment[0].stems", "got [1]"),
    ([{"step": "gain", "shared": "yes"}], "augment[0].shared", "true, false or always"),
    ([{"step": "reverb", "room_size": 2}], "augment[0].room_size", "above the maximum 1"),
    ([{"step": "lowpass", "cutoff_hz": 30000}], "augment[0].cutoff_hz", "below the Nyquist"),
    ([{"step": "mp3"}], None, None),  # valid at 44.1 kHz: no error
])
def test_load_errors_name_the_field(entries, field, words):
    if field is None:
        parse_chain(entries, sample_rate=SR)
        return
    with pytest.raises(RecipeError) as e:
        parse_chain(entries, sample_rate=SR)
    assert e.value.field == field
    assert words in str(e.value)
    assert f"recipe field '{field}'" in str(e.value)



def test_mono_refuses_channel_swap():
    with pytest.raises(RecipeError) as e:
        parse_chain([{"step": "gain"}, {"step": "channel_swap"}], channels=1)
    assert e.value.field == "augment[1]"
    assert "needs at least 2 channels but the recipe has 1 (mono input)" in str(e.value)
    parse_chain([{"step": "channel_swap"}], channels=2)


def test_codec_sample_rate_checked_at_load():
    with pytest.raises(RecipeError, match=r"augment\[0\].*mp3 supports sample rates 32000, "
                                          r"44100, 48000 Hz, got 22050 Hz"):
        parse_chain([{"step": "mp3"}], sample_rate=22050)
    parse_chain([{"step": "aac"}], sample_rate=22050)


def test_field_prefix_is_used():
    with pytest.raises(RecipeError) as e:
        parse_chain([{"step": "gain", "db": "loud"}], field="stems.vocals.augment")
    assert e.value.field == "stems.vocals.augment[0].db"


def test_resolve_groups_and_unknown_names():
    chain = parse_chain([{"step": "gain", "stems": "accompaniment"},
                         {"step": "polarity", "stems": ["vocals", "drums"]}])
    r = chain.resolve(["vocals", "drums", "bass", "other"],
                      {"accompaniment": ["drums", "bass", "other"]})
    assert r.entries[0].stems == ("drums", "bass", "other")
    assert r.entries[1].stems == ("vocals", "drums")
    with pytest.raises(RecipeError) as e:
        parse_chain([{"step": "gain", "stems": ["vocals", "piano"]}]).resolve(["vocals", "bass"])
    assert e.value.field == "augment[0].stems"
    assert "unknown stem or group 'piano'; known: bass, vocals" in str(e.value)


# ---------------------------------------------------------------------- drawing
def test_draw_is_plain_data_and_reproducible():
    chain = parse_chain([{"step": n} for n in names()], sample_rate=SR)
    a = chain.draw(np.random.default_rng(7), "vocals", ctx("incoherent"))
    b = chain.draw(np.random.default_rng(7), "vocals", ctx("incoherent"))
    c = chain.draw(np.random.default_rng(8), "vocals", ctx("incoherent"))
    assert a == b and a != c
    assert [s["step"] for s in a] == names()  # p defaults to 1: every step fires, in order
    assert json.loads(json.dumps(a)) == a
    for s in a:
        for v in s.values():
            assert type(v) in (str, int, float, bool)


def test_probability_and_stem_targeting():
    chain = parse_chain([{"step": "polarity", "p": 0.3, "stems": ["vocals"]},
                         {"step": "gain", "p": 0.0}])
    rng = np.random.default_rng(0)
    fired = sum(bool(chain.draw(rng, "vocals", ctx("incoherent"))) for _ in range(4000))
    assert abs(fired / 4000 - 0.3) < 0.03
    # drums: polarity does not target it (no randomness used); gain (p=0) uses exactly one
    # Bernoulli draw and never fires
    rng1, rng2 = np.random.default_rng(1), np.random.default_rng(1)
    assert chain.draw(rng1, "drums", ctx()) == []
    rng2.random()
    assert rng1.random() == rng2.random()


def test_groups_from_context_when_unresolved():
    chain = parse_chain([{"step": "polarity", "stems": "accompaniment"}])
    c = ctx(groups={"accompaniment": ["drums", "bass"]})
    assert chain.draw(np.random.default_rng(0), "bass", c) == [{"step": "polarity"}]
    assert chain.draw(np.random.default_rng(0), "vocals", c) == []


def test_shared_draws_once_per_mixture_in_coherent_mode():
    chain = parse_chain([{"step": "pitch_tempo", "p": 0.5}, {"step": "gain"}])
    stems = ["vocals", "drums", "bass", "other"]
    for seed in range(6):
        rng, shared = np.random.default_rng(seed), {}
        draws = [chain.draw(rng, s, ctx("coherent", shared)) for s in stems]
        pt = [[x for x in d if x["step"] == "pitch_tempo"] for d in draws]
        assert all(p == pt[0] for p in pt)          # same decision and params for every stem
        gains = [[x["db"] for x in d if x["step"] == "gain"][0] for d in draws]
        assert len(set(gains)) == 4                 # gain is per stem (shared defaults to false)
        assert set(shared) == {"augment[0]"}
    # incoherent: pitch/tempo drawn per stem
    rng = np.random.default_rng(3)
    semis = [chain.draw(rng, s, ctx("incoherent")) for s in stems]
    vals = {x["semitones"] for d in semis for x in d if x["step"] == "pitch_tempo"}
    assert len(vals) >= 2


def test_shared_always_and_never():
    always = parse_chain([{"step": "gain", "shared": "always"}])
    shared = {}
    rng = np.random.default_rng(0)
    a = [always.draw(rng, s, ctx("incoherent", shared)) for s in ("x", "y")]
    assert a[0] == a[1]
    never = parse_chain([{"step": "pitch_shift", "shared": False}])
    rng = np.random.default_rng(0)
    b = [never.draw(rng, s, ctx("coherent")) for s in ("x", "y")]
    assert b[0] != b[1]


def test_draw_needs_context_keys():
    with pytest.raises(ValueError, match=r"lacks \['shared'\]"):
        parse_chain([{"step": "gain"}]).draw(np.random.default_rng(0), "v",
                                            {"sample_rate": SR, "channels": 2, "mode": "coherent"})


# ---------------------------------------------------------------------- frames and apply
def test_frame_plan_chains_length_changes():
    steps = [{"step": "time_shift", "frames": 10, "max_frames": 100},
             {"step": "time_stretch", "rate": 2.0, "mode": "quick"},
             {"step": "gain", "db": 0.0}]
    # backwards: gain 1000 <- stretch ceil(1000*2)+1024 <- shift +100
    assert frame_plan(steps, 1000) == [3124, 3024, 1000, 1000]
    assert source_frames(steps, 1000) == 3124
    assert source_frames([], 1000) == 1000
    x = np.random.default_rng(0).standard_normal((2, 3124)).astype(np.float32)
    y = apply_steps(x, SR, steps, 1000)
    assert y.shape == (2, 1000) and y.dtype == np.float32
    assert np.array_equal(y, apply_steps(x, SR, steps, 1000))


def test_apply_errors():
    x = np.zeros((2, 999), np.float32)
    steps = [{"step": "time_shift", "frames": 1, "max_frames": 100}]
    with pytest.raises(AudioError, match=r"expected \(C, 1100\) input frames to produce 1000, "
                                         r"got shape \(2, 999\)"):
        apply_steps(x, SR, steps, 1000)
    with pytest.raises(StepError, match="unknown augmentation step 'wobble'; known steps: aac"):
        apply_steps(x, SR, [{"step": "wobble"}], 999)
    with pytest.raises(StepError, match=r"'gain': expected parameters \['db'\], got \['dB'\]"):
        apply_steps(x, SR, [{"step": "gain", "dB": 1.0}], 999)
    with pytest.raises(StepError, match="mapping with 'step'"):
        apply_steps(x, SR, [["gain"]], 999)
    with pytest.raises(StepError, match="expected float32 audio, got float64"):
        apply_steps(x.astype(np.float64), SR, [{"step": "polarity"}], 999)
    with pytest.raises(StepError, match=r"need integers 0 <= frames <= max_frames"):
        apply_steps(np.zeros((2, 1100), np.float32), SR,
                    [{"step": "time_shift", "frames": 200, "max_frames": 100}], 1000)
    with pytest.raises(StepError, match="mode must be one of hq, fast, quick, got 'best'"):
        get("pitch_shift").apply(x, SR, {"semitones": 1.0, "mode": "best"}, 10)


# ---------------------------------------------------------------------- property
from hypothesis import given, settings, strategies as st  # noqa: E402

CHEAP = [{"step": "gain"}, {"step": "polarity", "p": 0.5}, {"step": "channel_swap", "p": 0.5},
         {"step": "reverse", "p": 0.5}, {"step": "time_shift", "seconds": ["uniform", 0, 0.05]},
         {"step": "pitch_shift", "mode": "quick", "shared": False},
         {"step": "time_stretch", "mode": "quick", "rate": ["uniform", 0.5, 2.0]}]


@settings(max_examples=40, deadline=None)
@given(picks=st.lists(st.integers(0, len(CHEAP) - 1), max_size=5),
       seed=st.integers(0, 2**32 - 1), out=st.integers(1, 5000))
def test_any_chain_draws_and_renders_deterministically(picks, seed, out):
    chain = parse_chain([CHEAP[i] for i in picks], sample_rate=SR)
    a = chain.draw(np.random.default_rng(seed), "v", ctx("incoherent"))
    assert a == chain.draw(np.random.default_rng(seed), "v", ctx("incoherent"))
    assert json.loads(json.dumps(a)) == a
    n = source_frames(a, out)
    x = np.random.default_rng(seed).standard_normal((2, n)).astype(np.float32)
    y = apply_steps(x, SR, a, out)
    assert y.shape == (2, out) and y.dtype == np.float32
    assert y.tobytes() == apply_steps(x, SR, a, out).tobytes()
