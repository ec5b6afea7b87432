"""Pre-computed pitch/tempo variants (``prepare --variants``) and the steps' ``mode: cached``.

One small dataset (one 2 s track: a pure 440 Hz vocal, a click track on a 0.2 s grid, two
tones) is prepared once for the module at the grid ``semitones=0,2 tempo=0.9,1`` (3 variants per
stem, Rubber Band R3). The tests check the effect (tone frequency within 1 % of the grid point's
shift, click spacing / tempo), the recorded values, determinism, bit-exact re-rendering (also
through ``generate`` + ``regenerate --verify``), the sum invariant, loudness from the variants'
stored energies, and every error path (grid SPEC, recipe options, missing/stale variants,
hand-edited specs) with nothing partial written.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import cache_files, peak_frequency, sine, write_wav

from stemforge.audio import loudness as lufs
from stemforge.augment import StepError, apply_steps, parse_chain, source_frames
from stemforge.augment.grid import (VariantError, VariantGrid, parse_grid, required_points,
                                   variant_key)
from stemforge.cli import main
from stemforge.errors import AudioError, RecipeError
from stemforge.index import Index
from stemforge.mixing.mixer import Mixer, render
from stemforge.mixing.recipe import Recipe
from stemforge.mixing.sample import Sampler
from stemforge.mixing.spec import MixSpec
from stemforge.prepare import prepare

SR = 44100
GRID = "semitones=0,2 tempo=0.9,1"
CLICK = 0.2  # seconds between clicks in the drums stem
SECONDS = 2.0


def _clicks(frames: int) -> np.ndarray:
    """(2, frames): 3 ms noise bursts every CLICK seconds from 0.05 s."""
    x = np.zeros((2, frames), np.float32)
    rng = np.random.default_rng(3)
    burst = int(0.003 * SR)
    for t in np.arange(0.05, frames / SR - 0.01, CLICK):
        i = int(round(t * SR))
        x[:, i:i + burst] = 0.5 * rng.standard_normal((2, burst)).astype(np.float32)
    return x


def _dataset(root: Path, vocal_hz: float = 440.0) -> Path:
    n = int(SECONDS * SR)
    stems = {"vocals": sine(n, vocal_hz), "drums": _clicks(n), "bass": sine(n, 110.0) * 0.6,
             "other": sine(n, 330.0) * 0.4}
    for s, a in stems.items():
        write_wav(root / "train" / "A - One" / f"{s}.wav", a)
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("variants")
    root = _dataset(base / "hq")
    index = Index.build(root, cache_dir=base / "cache")
    stats = prepare(index, workers=1, variants=GRID)
    return index, stats


def _recipe(augment, targets=("vocals", "drums", "bass", "other"), duration=1.0, **kw) -> dict:
    return {"name": "variants-test", "duration": duration, "sample_rate": SR, "channels": 2,
            "targets": list(targets), "modes": {"coherent": 1.0},
            "ref_db": ["uniform", -30, -10], "stems": {"default": {"snr": ["uniform", -5, 5]}},
            "clipping": "fix_clipping", "augment": augment, **kw}


PT = {"step": "pitch_tempo", "mode": "cached", "grid": GRID,
      "semitones": ["uniform", -2, 2], "tempo": ["uniform", 0.9, 1.1]}


# ---------------------------------------------------------------------- grid SPEC
def test_grid_spec_forms_and_points():
    g = parse_grid("semitones=-2,-1,0,1,2 tempo=0.9,1,1.1")
    assert g.semitones == (-2.0, -1.0, 0.0, 1.0, 2.0) and g.tempo == (0.9, 1.0, 1.1)
    assert len(g.points()) == 14 and (0.0, 1.0) not in g.points()  # identity = plain stem
    assert g.spec() == "semitones=-2,-1,0,1,2 tempo=0.9,1,1.1"
    assert parse_grid({"tempo": [1.1, 0.9]}) == VariantGrid(None, (0.9, 1.1))
    assert parse_grid("tempo=1.1,0.9").points() == [(0.0, 0.9), (0.0, 1.1)]
    # the identity point alone stores nothing
    assert parse_grid("semitones=0").points() == []


@pytest.mark.parametrize("spec, msg", [
    ("", "empty grid"),
    ("semitones", "expected AXIS=V,V"),
    ("pitch=1,2", "unknown axis 'pitch'; axes: semitones, tempo"),
    ("semitones=1,x", "semitones: 'x' is not a number"),
    ("semitones=30", r"semitones: '30' is outside \[-24, 24\]"),
    ("tempo=0", r"tempo: '0' is outside \[0.25, 4\]"),
    ("tempo=nan", "tempo: 'nan' is outside"),
    ("semitones=1,1.0", "semitones: value 1 given twice"),
    ("tempo=1 tempo=2", "axis 'tempo' given twice"),
])
def test_bad_grid_spec(spec, msg, tmp_path):
    with pytest.raises(VariantError, match=f"--variants '{spec}': {msg}"):
        parse_grid(spec)


def test_bad_spec_in_prepare_writes_nothing(tmp_path, capsys):
    root = _dataset(tmp_path / "hq")
    cache = tmp_path / "cache"
    code = main(["prepare", str(root), "--cache", str(cache), "--no-progress",
                 "--variants", "semitones=1 tempo=9"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--variants 'semitones=1 tempo=9': tempo: '9' is outside [0.25, 4]" in err
    assert cache_files(cache) == []  # not even the index
    index = Index.build(root, cache_dir=cache)
    before = cache_files(cache)
    with pytest.raises(VariantError, match="tempo: 'x' is not a number"):
        prepare(index, workers=1, variants="tempo=x")
    assert cache_files(cache) == before  # no stem decoded either


# ---------------------------------------------------------------------- recipe options
@pytest.mark.parametrize("entries, field, msg", [
    ([{"step": "pitch_tempo", "mode": "cached"}], "augment[0].grid",
     "mode cached needs the grid of prepared variants"),
    ([{"step": "pitch_shift", "mode": "hq", "grid": GRID}], "augment[0].grid",
     "grid is only for mode cached"),
    ([{"step": "pitch_shift", "mode": "cached", "grid": "tempo=0.9,1"}], "augment[0].grid",
     "step 'pitch_shift' moves semitones but the grid has no semitones values"),
    ([{"step": "time_stretch", "mode": "cached", "grid": {"semitones": [1]}}], "augment[0].grid",
     "step 'time_stretch' moves tempo but the grid has no tempo values"),
    ([{"step": "pitch_tempo", "mode": "cached", "grid": "semitones=99"}], "augment[0].grid",
     r"semitones: '99' is outside \[-24, 24\]"),
    ([{"step": "pitch_tempo", "mode": "cached", "grid": 3}], "augment[0].grid",
     "expected a grid string"),
    ([{"step": "pitch_shift", "mode": "cached", "grid": GRID, "loudness": "source"}],
     "augment[0].loudness", "only for mode quick"),
    ([{"step": "gain"}, {"step": "pitch_tempo", "mode": "cached", "grid": GRID}],
     "augment[1].mode", r"must come before every other step; augment\[0\] \(gain\) is earlier"),
])
def test_recipe_errors(entries, field, msg):
    with pytest.raises(RecipeError, match=msg) as e:
        parse_chain(entries, channels=2, sample_rate=SR)
    assert e.value.field == field


def test_draw_records_value_and_snapped_point():
    chain = parse_chain([PT], channels=2, sample_rate=SR)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        (step,) = chain.draw(rng, "vocals", {"sample_rate": SR, "channels": 2,
                                             "mode": "incoherent", "shared": {}})
        assert set(step) == {"step", "semitones", "tempo", "mode", "variant"}
        s, t = step["variant"]["semitones"], step["variant"]["tempo"]
        assert s == (2.0 if step["semitones"] > 1.0 else 0.0)  # nearest of {0, 2}
        # nearest of {0.9, 1} in log-ratio: the boundary is sqrt(0.9)
        assert t == (0.9 if step["tempo"] < np.sqrt(0.9) else 1.0)
        seen.add((s, t))
    assert seen == {(0.0, 0.9), (0.0, 1.0), (2.0, 0.9), (2.0, 1.0)}
    # pitch_shift then time_stretch, both cached: the combined points are required
    chain = parse_chain([{"step": "pitch_shift", "mode": "cached", "grid": GRID, "p": 0.5},
                         {"step": "time_stretch", "mode": "cached", "grid": GRID}],
                        channels=2, sample_rate=SR)
    assert required_points(chain, "vocals") == [(0.0, 0.9), (2.0, 0.9), (2.0, 1.0)]


# ---------------------------------------------------------------------- prepare
def test_prepare_writes_variants_then_skips_them(prepared):
    index, stats = prepared
    assert stats.variants_written == 4 * 3 and stats.variants_skipped == 0
    files = cache_files(index.variants.folder)
    assert len(files) == 2 * 12 and not [f for f in files if f.endswith(".part")]
    for t in index.tracks:
        for name, s in t.stems.items():
            for a, b in parse_grid(GRID).points():
                k = variant_key(s.key, a, b)
                audio = np.load(index.variants.path(k))
                assert audio.dtype == np.float32 and audio.shape == (2, round(t.frames / b))
                e = np.load(index.variants.energies_path(k))
                np.testing.assert_array_equal(e, lufs.block_energies(audio, SR))
    again = prepare(index, workers=1, variants=GRID)
    assert (again.stems_written, again.variants_written, again.variants_skipped) == (0, 0, 12)
    assert cache_files(index.variants.folder) == files
    # an interrupted prepare (energies written, audio not yet): that variant is redone
    s = index.tracks[0].stems["bass"]
    gone = index.variants.path(variant_key(s.key, 2.0, 0.9))
    data = gone.read_bytes()
    gone.unlink()
    st = prepare(index, workers=1, variants=GRID)
    assert (st.variants_written, st.variants_skipped) == (1, 11)
    assert gone.read_bytes() == data  # deterministic render


# ---------------------------------------------------------------------- the effect
def test_cached_pitch_shift_tone_frequency(prepared):
    index, _ = prepared
    rec = _recipe([{"step": "pitch_shift", "mode": "cached", "grid": GRID,
                    "semitones": ["uniform", 1.2, 2.8]}], targets=["vocals"])
    m = Mixer(rec, index, seed=5)
    for i in range(3):
        x = m.mixture(i)
        (step,) = x.spec.sources[0].steps
        assert step["variant"] == {"semitones": 2.0, "tempo": 1.0} and step["semitones"] != 2.0
        f = peak_frequency(x.targets["vocals"])
        assert abs(f / (440.0 * 2 ** (2 / 12)) - 1) < 0.01, f


def test_cached_time_stretch_click_positions(prepared):
    index, _ = prepared
    rec = _recipe([{"step": "time_stretch", "mode": "cached", "grid": GRID,
                    "rate": ["uniform", 0.8, 0.93]}], targets=["drums"], duration=1.2)
    m = Mixer(rec, index, seed=1)
    for i in range(3):
        x = m.mixture(i)
        src = x.spec.sources[0]
        assert src.steps[0]["variant"] == {"semitones": 0.0, "tempo": 0.9}
        y = np.abs(x.targets["drums"][0])
        loud = np.flatnonzero(y > 0.05 * y.max())
        # first frame of each burst: loud after >= 20 ms of quiet
        starts = [int(i) for j, i in enumerate(loud)
                  if (j == 0 and i > 0.02 * SR) or (j > 0 and i - loud[j - 1] > 0.02 * SR)]
        # where the clicks of the source span land at tempo 0.9: (t - start) / 0.9
        src_clicks = np.arange(0.05, SECONDS - 0.01, CLICK) * SR
        want = [(c - src.start) / 0.9 for c in src_clicks
                if 0 < (c - src.start) / 0.9 < x.spec.frames - 0.005 * SR]
        assert len(starts) == len(want) >= 4
        assert np.max(np.abs(np.array(starts) - np.array(want))) < 0.003 * SR


def test_two_cached_steps_read_their_combined_variant(prepared):
    index, _ = prepared
    rec = _recipe([{"step": "pitch_shift", "mode": "cached", "grid": GRID, "semitones": 1.7},
                   {"step": "time_stretch", "mode": "cached", "grid": GRID, "rate": 0.88}],
                  targets=["vocals"], split=["train"])  # a split: the index subset's variants
    x = Mixer(rec, index, seed=4).mixture(0)
    src = x.spec.sources[0]
    assert [st["variant"] for st in src.steps] == [{"semitones": 2.0, "tempo": 1.0},
                                                   {"semitones": 0.0, "tempo": 0.9}]
    key = variant_key(index.tracks[0].stems["vocals"].key, 2.0, 0.9)
    v0 = int(np.floor(src.start / 0.9 + 0.5))
    want = np.load(index.variants.path(key))[:, v0:v0 + x.spec.frames] * np.float32(src.gain)
    np.testing.assert_array_equal(x.targets["vocals"], want * np.float32(x.spec.scale))
    assert abs(peak_frequency(x.targets["vocals"]) / (440.0 * 2 ** (2 / 12)) - 1) < 0.01


def test_cached_on_a_track_at_another_rate(tmp_path):
    """48 kHz stems, 44.1 kHz recipe: the variant (at 48 kHz) is read then resampled."""
    n = int(SECONDS * 48000)
    for name, f in (("vocals", 440.0), ("drums", 200.0), ("bass", 110.0), ("other", 330.0)):
        write_wav(tmp_path / "hq" / "train" / "A - One" / f"{name}.wav",
                  sine(n, f, sr=48000), 48000)
    index = Index.build(tmp_path / "hq", cache_dir=tmp_path / "cache")
    assert prepare(index, workers=1, variants="semitones=2").variants_written == 4
    rec = _recipe([{"step": "pitch_shift", "mode": "cached", "grid": "semitones=2",
                    "semitones": ["uniform", 1.5, 2.5]}], targets=["vocals"], resample=True)
    m = Mixer(rec, index, seed=0)
    for i in range(2):
        x = m.mixture(i)
        assert x.mix.shape == (2, SR) and x.spec.sources[0].track_sample_rate == 48000
        assert abs(peak_frequency(x.targets["vocals"]) / (440.0 * 2 ** (2 / 12)) - 1) < 0.01
        assert np.array_equal(render(MixSpec.from_json(x.spec.to_json()), index).mix, x.mix)


# ---------------------------------------------------------------------- determinism, sums
def test_bit_exact_rerender_and_sum_invariant(prepared):
    index, _ = prepared
    rec = _recipe([PT, {"step": "polarity", "stems": ["vocals"]},
                   {"step": "lowpass", "stems": ["bass"], "cutoff_hz": 2000}])
    a, b = Mixer(rec, index, seed=11), Mixer(rec, index, seed=11)
    points = set()
    for i in range(6):
        x, y = a.mixture(i), b.mixture(i)
        assert x.spec.to_json() == y.spec.to_json()
        assert np.array_equal(x.mix, y.mix)
        steps = [s.steps for s in x.spec.sources]
        assert all(st[0] == steps[0][0] for st in steps)  # shared in coherent mixes
        points.add(tuple(steps[0][0]["variant"].values()))
        again = render(MixSpec.from_json(x.spec.to_json()), index)
        assert np.array_equal(again.mix, x.mix)
        for t in x.targets:
            assert np.array_equal(again.targets[t], x.targets[t])
        total = np.zeros_like(x.mix)
        for t in x.spec.targets:
            total += x.targets[t]
        assert np.array_equal(total, x.mix)
    assert len(points) >= 2


def test_generate_then_regenerate_verify(prepared, tmp_path, capsys):
    index, _ = prepared
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(_recipe([PT])))
    out = tmp_path / "gen"
    assert main(["generate", str(recipe), "--index", str(index.index_file), "--n", "3",
                 "--out", str(out), "--no-progress", "--no-fsync"]) == 0
    assert main(["regenerate", str(out), "--verify", "--index", str(index.index_file),
                 "--no-progress"]) == 0, capsys.readouterr()
    specs = [MixSpec.load(p) for p in sorted(out.rglob("spec.json"))]
    assert len(specs) == 3 and all(s.sources[0].steps[0]["mode"] == "cached" for s in specs)


def test_loudness_from_variant_energies(prepared):
    index, _ = prepared
    rec = _recipe([PT], duration=1.5)
    m = Mixer(rec, index, seed=2)
    for i in range(4):
        x = m.mixture(i, keep_sources=True)
        for src in x.spec.sources:
            s, t = src.steps[0]["variant"].values()
            stem = index.tracks[0].stems[src.stem]
            if (s, t) == (0.0, 1.0):  # the stem itself: its zero-state corrections apply
                e, v0 = index.energies(src.track, src.stem), src.start
                c = index.corrections(src.track, src.stem)
            else:  # a variant's energies have none stored
                e = np.load(index.variants.energies_path(variant_key(stem.key, s, t)))
                v0, c = int(np.floor(src.start / t + 0.5)), None
            assert src.loudness == lufs.excerpt_loudness(e, SR, v0, x.spec.frames, c)
            if src.stem != "drums":  # steady tones: the stored-energy look-up is ~exact
                pre_gain = x.sources[src.stem] / np.float32(src.gain)
                measured = lufs.integrated_loudness(pre_gain, SR)
                assert abs(src.loudness - measured) < 0.02, (src.stem, src.loudness, measured)


# ---------------------------------------------------------------------- errors
def test_missing_variant_refused_at_mixer_construction(prepared, tmp_path):
    index, _ = prepared
    rec = _recipe([{**PT, "grid": "semitones=-1,0,2 tempo=0.9,1"}])
    with pytest.raises(VariantError) as e:
        Mixer(rec, index)
    msg = str(e.value)
    assert "recipe 'variants-test' augment[0] (mode cached) needs 20 pitch/tempo variants, " \
           "8 not prepared, e.g. track 'train/A - One' stem" in msg
    assert "semitones=-1 tempo=0.9" in msg
    assert (f"run: stemforge prepare {index.index_file} --variants "
            "'semitones=-1,0,2 tempo=0.9,1'") in msg
    # no variants at all (a fresh cache)
    fresh = Index.build(index.root, cache_dir=tmp_path / "fresh")
    with pytest.raises(VariantError, match="needs 12 pitch/tempo variants, 12 not prepared"):
        Mixer(_recipe([PT]), fresh)
    assert not (tmp_path / "fresh" / "variants").exists()
    # a bare Sampler (the torch ValidationDataset's: no augmentation applied) needs none
    Sampler(Recipe.from_dict(_recipe([PT])), fresh)
    # a recipe without cached steps does not look for variants
    Mixer(_recipe([{**PT, "mode": "hq", "grid": None}]), fresh)


def test_spec_rendered_without_variants_or_edited(prepared, tmp_path):
    index, _ = prepared
    spec = Mixer(_recipe([PT]), index, seed=3).spec(0)
    fresh = Index.build(index.root, cache_dir=tmp_path / "fresh")
    assert spec.sources[0].steps[0]["variant"] != {"semitones": 0.0, "tempo": 1.0}
    with pytest.raises(VariantError, match=r"stem 'vocals': pitch/tempo variant semitones=\S+ "
                                           r"tempo=\S+ is not prepared .*run: stemforge prepare"):
        render(spec, fresh)

    def edited(**changes):  # the spec with its first source changed (specs are frozen)
        d = spec.to_dict()
        d["sources"][0].update(changes)
        return MixSpec.from_dict(d)

    bad = edited(steps=[{**spec.sources[0].steps[0], "variant": {"semitones": 1.0}}])
    with pytest.raises(StepError, match=r"expected variant \{semitones: S, tempo: T\}"):
        render(bad, index)
    bad = edited(steps=[{"step": "pitch_shift", "semitones": 2.0, "mode": "cached",
                         "variant": {"semitones": 2.0, "tempo": 0.9}}])
    with pytest.raises(StepError, match="moves an axis the step does not"):
        render(bad, index)
    # past the end of the variant: an error, never zero padding
    bad = edited(steps=[{"step": "pitch_tempo", "semitones": 2.0, "tempo": 0.95,
                         "mode": "cached", "variant": {"semitones": 2.0, "tempo": 0.9}}],
                 start=index.tracks[0].frames - 100)
    with pytest.raises(AudioError, match="variant semitones=2 tempo=0.9 .* never zero-padded"):
        render(bad, index)
    # applied to audio directly: refused with the reason
    steps = [spec.sources[0].steps[0]]
    x = np.zeros((2, source_frames(steps, 100)), np.float32)
    with pytest.raises(StepError, match="reads a pre-computed variant of the stem"):
        apply_steps(x, SR, steps, 100)


def test_stale_variants_after_stem_change(tmp_path, capsys):
    root = _dataset(tmp_path / "hq")
    grid = "semitones=2"
    index = Index.build(root, cache_dir=tmp_path / "cache")
    assert prepare(index, workers=1, variants=grid).variants_written == 4
    rec = _recipe([{"step": "pitch_shift", "mode": "cached", "grid": grid,
                    "semitones": 2}], targets=["vocals"])
    before = Mixer(rec, index, seed=0).mixture(0)
    assert abs(peak_frequency(before.targets["vocals"]) / (440 * 2 ** (2 / 12)) - 1) < 0.01
    # the vocal is replaced: new content key -> its old variant must never be served
    write_wav(root / "train" / "A - One" / "vocals.wav", sine(int(SECONDS * SR), 523.25))
    index = Index.open(root, cache_dir=tmp_path / "cache")
    with pytest.raises(VariantError, match="needs 1 pitch/tempo variants, 1 not prepared, e.g. "
                                           "track 'train/A - One' stem 'vocals'"):
        Mixer(rec, index)
    capsys.readouterr()
    assert main(["prepare", str(index.index_file), "--variants", grid, "--workers", "1",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 stems decoded" in out and "variants semitones=2: 1 rendered" in out
    assert "3 already present" in out
    index = Index.open(index.index_file)
    after = Mixer(rec, index, seed=0).mixture(0)
    assert abs(peak_frequency(after.targets["vocals"]) / (523.25 * 2 ** (2 / 12)) - 1) < 0.01


def test_bundled_cached_recipe_loads():
    p = Path(__file__).resolve().parents[1] / "stemforge" / "recipes" / \
        "musdb_vocals_augmented_cached.yaml"
    r = Recipe.load(p)
    (entry,) = r.augment.entries
    assert entry.step.options["mode"] == "cached" and entry.p == 0.5
    assert len(required_points(r.augment, "vocals")) == 14
    assert entry.step.options["grid"].spec() == "semitones=-2,-1,0,1,2 tempo=0.9,1,1.1"
