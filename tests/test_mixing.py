"""Mixing engine: Scaper loudness semantics, modes, silence policy, clipping, bad recipes."""
from __future__ import annotations

import numpy as np
import pytest
import pyloudnorm

from conftest import make_musdb18hq, tone, write_wav
from stemforge import Index, Mixer, Recipe, render
from stemforge.errors import RecipeError, SamplingError
from stemforge.mixing.spec import MixSpec
from stemforge.prepare import prepare

VOCALS = {"targets": ["vocals", "accompaniment"],
          "groups": {"accompaniment": ["drums", "bass", "other"]}}


@pytest.fixture(scope="module")
def excerpt_index(tmp_path_factory):
    import shutil

    import stempeg

    d = tmp_path_factory.mktemp("excerpt")
    (d / "m" / "test").mkdir(parents=True)
    shutil.copy(stempeg.example_stem_path(), d / "m" / "test")
    return Index.build(d / "m", cache_dir=d / "cache")


@pytest.fixture(scope="module")
def multi_index(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi")
    names = {f"T{k} - Song": "train" for k in range(5)}
    root = make_musdb18hq(d / "hq", names, seconds=3.0)
    return Index.build(root, cache_dir=d / "cache")


def recipe(**kw):
    base = dict(VOCALS, duration=2.0)
    base.update(kw)
    return Recipe.from_dict(base)


@pytest.mark.parametrize("item", range(6))
def test_loudness_semantics_match_pyloudnorm(excerpt_index, item):
    """Each stem after gain measures ref_db + snr + boost LUFS (before clip scaling)."""
    r = recipe(modes={"coherent": 0.5, "incoherent": 0.5}, ref_db=["uniform", -30, -10],
               stems={"default": {"snr": ["uniform", -5, 5]}, "vocals": {"boost": 2.0}})
    m = Mixer(r, excerpt_index, seed=3).mixture(item, keep_sources=True)
    meter = pyloudnorm.Meter(44100)
    for s in m.spec.sources:
        want = m.spec.ref_db + s.snr + s.boost
        got = meter.integrated_loudness(m.sources[s.stem].T.astype(np.float64))
        assert abs(got - want) < 0.1, (s.stem, got, want)
    np.testing.assert_array_equal(m.mix, sum(m.targets.values()))


def test_coherent_and_incoherent_placement(multi_index):
    r = recipe(modes={"coherent": 1.0})
    for i in range(5):
        spec = Mixer(r, multi_index, seed=1).spec(i)
        assert spec.mode == "coherent"
        assert len({(s.track, s.start) for s in spec.sources}) == 1
    r = recipe(modes={"incoherent": 1.0})
    specs = [Mixer(r, multi_index, seed=1).spec(i) for i in range(5)]
    assert any(len({s.track for s in sp.sources}) > 1 for sp in specs)


def test_determinism_and_call_order(multi_index):
    r = recipe(modes={"coherent": 0.5, "incoherent": 0.5}, stems={"default": {"snr": ["normal", 0, 3]}})
    a = Mixer(r, multi_index, seed=7)
    b = Mixer(r, multi_index, seed=7)
    forward = [a.mixture(i) for i in range(4)]
    backward = [b.mixture(i) for i in reversed(range(4))][::-1]
    for x, y in zip(forward, backward, strict=True):
        assert x.mix.tobytes() == y.mix.tobytes()
        assert x.spec.to_json() == y.spec.to_json()
    assert forward[0].spec.to_json() != forward[1].spec.to_json()
    assert a.mixture(0, epoch=1).spec.to_json() != forward[0].spec.to_json()
    assert Mixer(r, multi_index, seed=8).spec(0).to_json() != forward[0].spec.to_json()


def test_spec_round_trip_and_rerender(multi_index):
    m = Mixer(recipe(), multi_index, seed=2).mixture(3)
    spec2 = MixSpec.from_json(m.spec.to_json())
    assert spec2 == m.spec
    again = render(spec2, multi_index)
    assert again.mix.tobytes() == m.mix.tobytes()
    for t in m.targets:
        assert again.targets[t].tobytes() == m.targets[t].tobytes()


def test_stem_cache_renders_identically(tmp_path):
    root = make_musdb18hq(tmp_path / "hq", {"A - a": "train", "B - b": "train"}, seconds=2.0)
    idx = Index.build(root, cache_dir=tmp_path / "c")
    r = recipe(duration=1.0, stems={"default": {"snr": ["uniform", -3, 3]}})
    before = [Mixer(r, idx, seed=4).mixture(i) for i in range(3)]
    prepare(idx, workers=1)
    after = [Mixer(r, idx, seed=4).mixture(i) for i in range(3)]
    for x, y in zip(before, after, strict=True):
        assert x.mix.tobytes() == y.mix.tobytes()


@pytest.mark.parametrize("policy", ["fix_clipping", "peak_normalize", "none"])
def test_clipping_policies(multi_index, policy):
    r = recipe(ref_db=-3.0, stems={"default": {"snr": 3.0}}, clipping=policy)
    m = Mixer(r, multi_index, seed=0).mixture(0)
    peak = float(np.abs(m.mix).max())
    assert m.spec.peak > 1.0  # this recipe is loud enough to clip before scaling
    if policy == "none":
        assert m.spec.scale == 1.0 and peak > 1.0
    else:
        assert peak <= 1.0 and peak > 0.999
        assert m.spec.scale == pytest.approx(1 / m.spec.peak)
    np.testing.assert_array_equal(m.mix, sum(m.targets.values()))


def test_silence_policy_rejects_silent_excerpts(tmp_path):
    """A vocal stem silent over most of the track: every excerpt still meets min_active."""
    root = tmp_path / "ds"
    sr, secs = 44100, 20.0
    for k in range(2):
        d = root / "train" / f"S{k} - Song"
        for j, s in enumerate(["drums", "bass", "other"]):
            write_wav(d / f"{s}.wav", tone(100 * (j + 1), secs, seed=k * 10 + j))
        v = np.zeros((2, int(secs * sr)), np.float32)
        v[:, int(15 * sr):int(17 * sr)] = tone(440, 2.0, seed=9)  # active only 15-17 s
        write_wav(d / "vocals.wav", v)
        write_wav(d / "mixture.wav", v)
    idx = Index.build(root, cache_dir=tmp_path / "c")
    r = recipe(duration=2.0, modes={"incoherent": 1.0},
               silence={"min_active": 0.5, "threshold_db": -50, "max_retries": 200})
    mixer = Mixer(r, idx, seed=5)
    for i in range(12):
        spec = mixer.spec(i)
        v = next(s for s in spec.sources if s.stem == "vocals")
        assert v.active_fraction >= 0.5
        assert not spec.warnings
        assert 13.8 * sr <= v.start <= 16.2 * sr  # ~1 s overlap, to a 100 ms window or two
    # exhausted retries are reported, never silently replaced
    strict = recipe(duration=2.0, modes={"incoherent": 1.0},
                    silence={"min_active": 0.99, "threshold_db": -50, "max_retries": 0})
    specs = [Mixer(strict, idx, seed=5).spec(i) for i in range(6)]
    assert any("silence policy" in w for sp in specs for w in sp.warnings)
    err = recipe(duration=2.0, modes={"incoherent": 1.0},
                 silence={"min_active": 0.99, "threshold_db": -50, "max_retries": 1,
                          "on_exhausted": "error"})
    with pytest.raises(SamplingError, match=r"item \d+: silence policy: target\(s\) \['vocals'\]"):
        for i in range(20):
            Mixer(err, idx, seed=5).spec(i)


def test_drop_non_target_stems(multi_index):
    r = recipe(stems={"drums": {"drop": 1.0}})
    m = Mixer(r, multi_index, seed=0).mixture(0)
    assert [s.dropped for s in m.spec.sources if s.stem == "drums"] == [True]
    assert not any(s.dropped for s in m.spec.sources if s.stem != "drums")
    with pytest.raises(RecipeError, match=r"stems.vocals.drop.*is itself a target"):
        recipe(stems={"vocals": {"drop": 0.5}})


def test_gain_db_mode_keeps_original_levels(multi_index):
    r = recipe(modes={"coherent": 1.0}, clipping="none")
    m = Mixer(r, multi_index, seed=0).mixture(1)
    s0 = m.spec.sources[0]
    raw = multi_index.read(s0.track, "accompaniment", s0.start, m.spec.frames)
    np.testing.assert_allclose(m.targets["accompaniment"], raw, atol=1e-6)
    assert all(s.gain == 1.0 for s in m.spec.sources)


def test_pitch_tempo_recipe_end_to_end(excerpt_index):
    """The tutorial recipe with pitch/tempo at p=0.5 runs and re-renders bit-exactly."""
    from pathlib import Path

    import yaml

    import stemforge

    path = Path(stemforge.__file__).parent / "recipes" / "musdb_vocals_augmented.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["split"] = "test"
    raw["duration"] = 2.0
    r = Recipe.from_dict(raw)
    mixer = Mixer(r, excerpt_index, seed=11)
    fired = 0
    for i in range(4):
        m = mixer.mixture(i)
        steps = [s.steps for s in m.spec.sources]
        fired += any(steps)
        if m.spec.mode == "coherent" and steps[0]:
            assert all(s == steps[0] for s in steps)  # shared across stems
        np.testing.assert_array_equal(m.mix, sum(m.targets.values()))
        again = render(MixSpec.from_json(m.spec.to_json()), excerpt_index)
        assert again.mix.tobytes() == m.mix.tobytes()
    assert fired > 0


@pytest.mark.parametrize(
    "raw, match",
    [
        ({**VOCALS, "durration": 3}, r"recipe field 'durration': unknown field"),
        ({**VOCALS, "duration": "long"}, r"recipe field 'duration': expected a number, got 'long'"),
        ({**VOCALS, "duration": -1}, r"recipe field 'duration': must be > 0"),
        ({**VOCALS, "ref_db": ["gaussian", 0, 1]}, r"recipe field 'ref_db': unknown distribution 'gaussian'"),
        ({**VOCALS, "ref_db": ["uniform", -10, -30]}, r"'ref_db': uniform low -10 is greater than high -30"),
        ({**VOCALS, "stems": {"default": {"snr": ["normal", 0, -1]}}}, r"'stems.default.snr': normal standard deviation must be >= 0"),
        ({**VOCALS, "stems": {"piano": {"snr": 0}}}, r"'stems.piano': unknown stem or group"),
        ({**VOCALS, "stems": {"default": {"volume": 0}}}, r"'stems.default.volume': unknown parameter"),
        ({**VOCALS, "modes": {"coherent": 0.7}}, r"'modes': probabilities must sum to 1"),
        ({**VOCALS, "modes": {"mashup": 1.0}}, r"'modes.mashup': unknown mode"),
        ({**VOCALS, "clipping": "soft"}, r"'clipping': expected one of fix_clipping"),
        ({"targets": ["vocals"], "sources": ["vocals", "drums"]}, r"'sources': stem\(s\) \['drums'\] are in no target"),
        ({**VOCALS, "augment": [{"step": "warp"}]}, r"'augment\[0\].step': unknown step 'warp'"),
        ({**VOCALS, "augment": [{"step": "gain", "db": 3}], "stems": {"default": {"snr": 0}}},
         r"'augment\[0\].step': a gain step .* has no effect"),
        ({**VOCALS, "channels": 1, "augment": [{"step": "channel_swap"}]}, r"'augment\[0\]': step 'channel_swap' needs at least 2"),
        ({**VOCALS, "augment": [{"step": "time_stretch", "rate": 0}]}, r"'augment\[0\].rate'"),
        ({**VOCALS, "augment": [{"step": "polarity", "p": 1.5}]}, r"'augment\[0\].p': probability must be a number in \[0, 1\]"),
        ({}, r"'targets': missing"),
    ],
)
def test_bad_recipes(raw, match):
    with pytest.raises(RecipeError, match=match):
        Recipe.from_dict(raw)


def test_recipe_index_mismatches(multi_index, excerpt_index):
    with pytest.raises(RecipeError, match=r"'duration': 60 s is longer than every track \(longest 3.00 s\)"):
        Mixer(recipe(duration=60.0), multi_index)
    with pytest.raises(RecipeError, match=r"'targets': stem 'piano' is not in the index"):
        Mixer(Recipe.from_dict({"targets": ["piano"]}), multi_index)
    assert multi_index.groups["accompaniment"] == ["drums", "bass", "other"]
    with pytest.raises(RecipeError, match=r"stem 'accompaniment' is not in the index .* is a group "
                       r"of the index: declare it in the recipe, groups: \{accompaniment: "
                       r"\[drums, bass, other\]\}"):
        Mixer(Recipe.from_dict({"targets": ["vocals", "accompaniment"]}), multi_index)
    with pytest.raises(RecipeError, match=r"'sample_rate': 48000 Hz but track .* is 44100 Hz; set resample: true"):
        Mixer(recipe(sample_rate=48000), multi_index)
    with pytest.raises(RecipeError, match=r"split\(s\) \['valid'\] not in the index|'split'"):
        Mixer(recipe(split="valid"), excerpt_index)


def test_resample_and_mono_sources(tmp_path):
    root = tmp_path / "tf"
    for k in range(2):
        write_wav(root / f"song{k}" / "lead.wav", tone(440, 2.0, sr=48000, channels=1), sr=48000)
        write_wav(root / f"song{k}" / "keys.wav", tone(220, 2.0, sr=48000, channels=1), sr=48000)
    idx = Index.build(root, cache_dir=tmp_path / "c")
    r = Recipe.from_dict({"targets": ["lead", "keys"], "duration": 1.0, "resample": True,
                          "ref_db": -20, "stems": {"default": {"snr": 0}}})
    m = Mixer(r, idx).mixture(0, keep_sources=True)
    assert m.mix.shape == (2, 44100)
    spec = np.abs(np.fft.rfft(m.targets["lead"][0]))
    assert abs(np.argmax(spec) - 440) <= 1  # 1 Hz bins at 1 s
    meter = pyloudnorm.Meter(44100)
    assert abs(meter.integrated_loudness(m.sources["lead"].T.astype(np.float64)) + 20) < 0.1


def test_render_into_given_arrays(multi_index):
    """``out=(mix, targets)``: same values as a plain render, written into (views of) the given
    arrays, also when the clip scaling applies; misfit arrays are refused naming the array."""
    r = recipe(ref_db=-3.0, stems={"default": {"snr": ["uniform", 0, 4]}},
               modes={"coherent": 0.5, "incoherent": 0.5})
    mixer = Mixer(r, multi_index, seed=5)
    S, C, T = len(r.targets), r.channels, r.frames
    batch_mix = np.full((3, C, T), np.nan, np.float32)
    batch_targets = np.full((3, S, C, T), np.nan, np.float32)
    scales = []
    for k in range(3):
        plain = Mixer(r, multi_index, seed=5).mixture(k)
        m = mixer.mixture(k, out=(batch_mix[k], batch_targets[k]))
        assert m.spec.to_json() == plain.spec.to_json()
        assert batch_mix[k].tobytes() == plain.mix.tobytes()
        assert batch_targets[k].tobytes() == plain.stacked().tobytes()
        assert np.shares_memory(m.mix, batch_mix) and m.mix.tobytes() == plain.mix.tobytes()
        for j, t in enumerate(r.targets):
            assert np.shares_memory(m.targets[t], batch_targets[k, j])
        scales.append(m.spec.scale)
    assert min(scales) < 1  # the clip scaling path is covered too
    spec = mixer.spec(0)
    for bad, word in [((np.zeros((C, T), np.float64), batch_targets[0]), "mix"),
                      ((batch_mix[0], batch_targets[0, :1]), "targets"),
                      ((batch_mix[0, :, ::2], batch_targets[0]), "mix"),
                      ((batch_mix[0], batch_targets[0], batch_mix[1]), "pair")]:
        with pytest.raises(ValueError, match=word):
            render_into(spec, multi_index, bad)


def render_into(spec, index, out):
    from stemforge.mixing.render import render as low_level_render

    return low_level_render(spec, index, out=out)
