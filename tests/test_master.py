"""The mastering bus (issue #20, item 3): ``master: [{step: limiter, ...}, {step: compressor,
...}]`` is one time-varying gain computed on the mix and applied to every target, so the
limiter keeps its ceiling and ``mix == sum(targets)`` still holds."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import silent_dataset
from stemforge import Index, render
from stemforge.augment import get as get_step
from stemforge.errors import RecipeError
from stemforge.mixing import _kernels, reference
from stemforge.mixing.mixer import Mixer
from stemforge.mixing.spec import MixSpec

SR = 16000
LIMIT = {"step": "limiter", "threshold_db": ["uniform", -9, -1], "release_ms": 80}
BASE = {"targets": ["vocals", "drums", "bass", "other"], "duration": 2.0, "sample_rate": SR,
        "split": "all", "modes": {"coherent": 0.5, "incoherent": 0.5},
        "ref_db": ["uniform", -14, -6],   # loud: most mixes peak far above the ceilings
        "stems": {"default": {"snr": ["uniform", -4, 4]}}}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """Dense tones with digital-silence spans (vocals entering late, stems wholly silent)."""
    base = tmp_path_factory.mktemp("master")
    root = silent_dataset(base / "data", tracks=4, seconds=6.0, sr=SR, seed=3)
    return Index.open(root, cache_dir=base / "cache")


def test_the_limiter_keeps_its_ceiling_and_the_sum_holds(index):
    plain = Mixer(BASE, index, seed=2)
    mixer = Mixer({**BASE, "master": [LIMIT]}, index, seed=2)
    above = 0
    for m in mixer.mixtures(range(16)):
        step = m.spec.master[0]
        assert step["step"] == "limiter" and -9 <= step["threshold_db"] <= -1
        ceiling = 10 ** (step["threshold_db"] / 20)
        peak = float(np.abs(m.mix).max())
        assert peak <= ceiling * (1 + 2 ** -22), (peak, ceiling)  # float32 rounding only
        # mix == sum(targets): the mix is the targets summed again, in order, after the gain
        stack = m.stacked()
        assert m.mix.tobytes() == reference.mix_of(stack).tobytes()
        np.testing.assert_allclose(m.mix, stack.sum(0, dtype=np.float64), rtol=0, atol=1e-6)
        unlimited = plain.mixture(m.spec.item)
        above += float(np.abs(unlimited.mix).max()) > ceiling * 1.01
        assert [s.track for s in unlimited.spec.sources] == [s.track for s in m.spec.sources]
    assert above >= 12  # the limiter had work to do in most items (the test is not vacuous)


def test_render_is_the_reference_and_re_renders_from_the_spec(index):
    r = {**BASE, "clipping": "peak_normalize",
         "master": [{"step": "compressor", "threshold_db": ["uniform", -30, -20],
                     "ratio": ["uniform", 2, 8], "attack_ms": 5, "release_ms": 120,
                     "makeup_db": 6}, LIMIT]}
    mixer = Mixer(r, index, seed=0)
    for m in mixer.mixtures(range(6)):
        mix, targets, scale, peak = reference.render_reference(m.spec, index)
        assert mix.tobytes() == m.mix.tobytes() and scale == m.spec.scale
        assert all(targets[t].tobytes() == m.targets[t].tobytes() for t in m.spec.targets)
        spec = MixSpec.from_json(m.spec.to_json())
        assert [s["step"] for s in spec.master] == ["compressor", "limiter"]
        assert render(spec, index).mix.tobytes() == m.mix.tobytes()
    # recipes without a master draw and write exactly what they did
    spec = Mixer(BASE, index, seed=0).spec(0)
    assert spec.master == [] and "master" not in spec.to_dict()


def test_compiled_gain_computers_are_the_reference():
    rng = np.random.default_rng(0)
    level = np.abs(rng.standard_normal(20000)) * np.repeat(rng.uniform(0, 2, 20), 1000)
    level[5000:6000] = 0.0
    a = reference.limiter_gain(level, SR, -6.0, 50.0)
    b = _kernels.limiter_gain(level, SR, -6.0, 50.0)
    assert a.tobytes() == b.tobytes()
    a = reference.compressor_gain(level, SR, -20.0, 4.0, 5.0, 100.0, 3.0)
    b = _kernels.compressor_gain(level, SR, -20.0, 4.0, 5.0, 100.0, 3.0)
    assert a.tobytes() == b.tobytes()


def test_compressor_settles_on_its_static_curve():
    level = np.full(SR, 10 ** (-8 / 20))  # -8 dB, 12 dB over a -20 dB threshold, for 1 s
    g = reference.compressor_gain(level, SR, -20.0, 4.0, 5.0, 100.0, 2.0)
    assert 20 * np.log10(g[-1]) == pytest.approx(2.0 - 12 * (1 - 1 / 4), abs=1e-6)
    assert g[0] > g[-1]  # attack: the reduction grows over ~5 ms, not at once


def test_the_clip_policy_acts_on_the_mastered_mix(index):
    r = {**BASE, "master": [{"step": "compressor", "threshold_db": -40, "makeup_db": 24}]}
    ms = Mixer(r, index, seed=1).mixtures(range(6))
    assert any(m.spec.scale < 1 for m in ms)
    for m in ms:
        assert float(np.abs(m.mix).max()) <= 1.0 + 1e-6
        assert m.mix.tobytes() == reference.mix_of(m.stacked()).tobytes()


def test_the_stream_hands_out_the_unmastered_sum_on_request(index):
    """``MixtureStream(return_unmastered=True)``: the same arrays as the dataset's items, after
    the targets and before specs/active; the mix itself for a linear bus; same batches at 0
    and 2 workers."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from stemforge.torch import MixtureDataset, MixtureStream

    recipe = nonlinear([SATURATE])
    st = MixtureStream(recipe, index, batch_size=2, seed=1, return_unmastered=True,
                       return_spec=True, active=True)
    mix, targets, unm, specs, active = st.batch(1, 0)
    ds = MixtureDataset(recipe, index, length=4, seed=1, return_unmastered=True)
    for k in range(2):
        d_mix, d_targets, d_unm = ds[2 + k]
        assert torch.equal(mix[k], d_mix) and torch.equal(targets[k], d_targets)
        assert torch.equal(unm[k], d_unm) and not torch.equal(unm[k], mix[k])
    assert unm.shape == mix.shape and unm.dtype == torch.float32
    assert len(specs) == 2 and active.shape == (2, targets.shape[1])
    lin = MixtureStream({**BASE, "master": [LIMIT]}, index, batch_size=2, seed=1,
                        return_unmastered=True)
    l_mix, _, l_unm = lin.batch(0, 0)
    assert torch.equal(l_mix, l_unm)
    assert len(MixtureStream(recipe, index, batch_size=2, seed=1).batch(0, 0)) == 2
    runs = []
    for workers in (0, 2):
        stream = MixtureStream(recipe, index, batch_size=2, seed=1, batches=3, epoch=0,
                               return_unmastered=True)
        runs.append([b[2].clone() for b in DataLoader(stream, batch_size=None,
                                                      num_workers=workers)])
    assert len(runs[0]) == 3 and all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


@pytest.mark.parametrize("master,msg", [
    ({"step": "saturate"}, r"'master.0.step': unknown master step 'saturate'; known: limiter, "
                           r"compressor"),
    ({"step": "limiter", "threshold_db": -1, "knee": 2},
     r"'master.0.knee': unknown parameter of limiter"),
    ({"step": "limiter"}, r"'master.0.threshold_db': missing"),
    ({"step": "limiter", "threshold_db": 3}, r"'master.0.threshold_db'"),
    ({"step": "compressor", "threshold_db": -20, "ratio": 0.5}, r"'master.0.ratio'"),
    ("limiter", r"'master': expected a list of steps"),
])
def test_bad_master_steps_name_the_field(index, master, msg):
    with pytest.raises(RecipeError, match=msg):
        Mixer({**BASE, "master": master if isinstance(master, str) else [master]}, index)


def test_export_jams_says_scaper_renders_it_unmastered(index, tmp_path):
    from stemforge.jobs.generate import generate
    from stemforge.jobs.jams_export import export_jams
    from stemforge.mixing.recipe import Recipe

    generate(Recipe.from_dict({**BASE, "master": [LIMIT]}), index, 2, tmp_path / "set",
             progress=False, fsync=False)
    _, warns = export_jams(tmp_path / "set", progress=False)
    assert any("mastered (limiter); Scaper has no mastering bus" in w for w in warns), warns


# ---------------------------------------------------------------------- linear: false
SATURATE = {"step": "tanh_distortion", "amount": ["uniform", 0.2, 0.5]}
CODEC = {"step": "aac", "p": 0.5, "bitrate_kbps": 64}   # MSST's codec on the mixture


def nonlinear(steps, **extra):
    return {**BASE, "clipping": "none", "master": {"linear": False, "steps": steps}, **extra}


def test_a_non_linear_bus_keeps_the_targets_summing_to_the_unmastered_mix(index):
    linear = Mixer({**BASE, "clipping": "none", "master": [LIMIT]}, index, seed=4)
    mixer = Mixer(nonlinear([LIMIT, SATURATE, CODEC]), index, seed=4)
    fired = 0
    for m in mixer.mixtures(range(6)):
        spec = m.spec
        assert spec.master_linear is False and '"master_linear": false' in spec.to_json()
        assert [s["step"] for s in spec.master][:2] == ["limiter", "tanh_distortion"]
        fired += [s["step"] for s in spec.master] == ["limiter", "tanh_distortion", "aac"]
        stack = m.stacked()
        # the targets sum, exactly, to the recorded un-mastered mix; the mix is another signal
        assert m.unmastered.tobytes() == reference.mix_of(stack).tobytes()
        assert np.abs(m.mix - m.unmastered).max() > 1e-3
        # the targets carry the gain computers' gain only: those of the linear bus holding
        # the same (first-drawn) limiter, bit for bit
        lin = linear.mixture(spec.item)
        assert lin.spec.master[0] == spec.master[0]
        assert lin.stacked().tobytes() == stack.tobytes()
        # the reference and a re-render from the spec's JSON give the same bytes
        mix, targets, scale, peak = reference.render_reference(spec, index)
        assert mix.tobytes() == m.mix.tobytes() and scale == spec.scale == 1.0
        assert all(targets[t].tobytes() == m.targets[t].tobytes() for t in spec.targets)
        again = render(MixSpec.from_json(spec.to_json()), index)
        assert again.mix.tobytes() == m.mix.tobytes()
        assert again.unmastered.tobytes() == m.unmastered.tobytes()
    assert 0 < fired < 6  # p: 0.5, recorded only when the codec ran
    # the mastered mix is the bus on the un-mastered one: the saturation's own definition
    m = Mixer(nonlinear([SATURATE]), index, seed=4).mixture(0)
    want = get_step("tanh_distortion").apply(m.unmastered, SR, {
        "amount": m.spec.master[0]["amount"]})
    assert m.mix.tobytes() == want.tobytes()


def test_the_clip_scale_acts_on_the_mastered_mix_and_the_targets_alike(index):
    r = nonlinear([{"step": "gaussian_noise", "amplitude": 0.5}], clipping="peak_normalize")
    for m in Mixer(r, index, seed=2).mixtures(range(3)):
        assert float(np.abs(m.mix).max()) == pytest.approx(1.0, abs=1e-6)
        assert m.spec.scale < 1.0 and m.spec.peak > 1.0
        assert m.unmastered.tobytes() == reference.mix_of(m.stacked()).tobytes()
        mix, _, scale, peak = reference.render_reference(m.spec, index)
        assert mix.tobytes() == m.mix.tobytes() and (scale, peak) == (m.spec.scale, m.spec.peak)


def test_generate_writes_the_unmastered_sum_and_verify_reproduces_it(index, tmp_path, capsys):
    import soundfile as sf
    from stemforge.cli import main
    from stemforge.jobs.generate import generate
    from stemforge.mixing.recipe import Recipe

    out = tmp_path / "set"
    generate(Recipe.from_dict(nonlinear([LIMIT, SATURATE])), index, 3, out, progress=False,
             fsync=False)
    header = (out / "manifest.csv").read_text().splitlines()[0].split(",")
    assert header[:7] == ["id", "mixture", "vocals", "drums", "bass", "other", "unmastered"]
    for i in range(3):
        d = out / f"{i:06d}"
        files = {p.name for p in d.iterdir()}
        assert files == {"mixture.wav", "vocals.wav", "drums.wav", "bass.wav", "other.wav",
                         "unmastered.wav", "spec.json"}
        t = sum(sf.read(d / f"{s}.wav", dtype="float32", always_2d=True)[0]
                for s in ("vocals", "drums", "bass", "other"))
        u = sf.read(d / "unmastered.wav", dtype="float32", always_2d=True)[0]
        assert u.tobytes() == t.tobytes()  # ((v + d) + b) + o, as the render sums them
    assert main(["regenerate", str(out), "--verify", "--no-progress"]) == 0
    assert "all 3 items re-render byte-identically" in capsys.readouterr().out
    p = out / "000001" / "unmastered.wav"
    b = bytearray(p.read_bytes())
    b[-8:-4] = np.float32(0.5).tobytes()
    p.write_bytes(bytes(b))
    assert main(["regenerate", str(out), "--verify", "--no-progress"]) == 1
    assert "MISMATCH 000001/unmastered.wav: differs" in capsys.readouterr().out
    # a linear recipe's set has no such file, and no such column
    lin = tmp_path / "lin"
    generate(Recipe.from_dict({**BASE, "master": [LIMIT]}), index, 1, lin, progress=False,
             fsync=False)
    assert not (lin / "000000" / "unmastered.wav").exists()
    assert "unmastered" not in (lin / "manifest.csv").read_text()


def test_the_torch_dataset_hands_out_the_unmastered_sum_on_request(index):
    torch = pytest.importorskip("torch")
    from stemforge.torch import MixtureDataset

    ds = MixtureDataset(nonlinear([SATURATE]), index, length=4, seed=1,
                        return_unmastered=True)
    mix, targets, unmastered = ds[2]
    m = ds.mixer.mixture(2)
    assert unmastered.numpy().tobytes() == m.unmastered.tobytes()
    assert mix.numpy().tobytes() == m.mix.tobytes()
    batch = ds.__getitems__([1, 2])
    assert torch.equal(batch[1][2], unmastered) and len(batch[0]) == 3
    plain = MixtureDataset(nonlinear([SATURATE]), index, length=4, seed=1)
    assert len(plain[2]) == 2


@pytest.mark.parametrize("master,msg", [
    ([LIMIT, SATURATE], r"'master.1.step': step 'tanh_distortion' processes the mix itself, "
                        r"which breaks mix == sum\(targets\); allowed only on a bus declared "
                        r"non-linear: master: \{linear: false"),
    ({"linear": "no", "steps": [LIMIT]}, r"'master.linear': expected true or false"),
    ({"linear": False}, r"'master.steps': missing"),
    ({"linear": False, "steps": [LIMIT], "knee": 1}, r"'master.knee': unknown field of master"),
    ({"linear": True, "steps": [SATURATE]}, r"'master.steps.0.step': step 'tanh_distortion'"),
    ({"linear": False, "steps": [{"step": "time_shift"}]},
     r"'master.steps.0.step': step 'time_shift' changes the length"),
    ({"linear": False, "steps": [{"step": "mp3"}]},
     r"'master.steps.0': mp3 supports sample rates 32000, 44100, 48000 Hz, got 16000"),
    ({"linear": False, "steps": [{"step": "aac", "p": 2}]}, r"'master.steps.0.p': probability"),
    ({"linear": False, "steps": [{"step": "tanh_distortion", "amount": 3}]},
     r"'master.steps.0.amount'"),
    ({"linear": False, "steps": [{"step": "tanh_distortion", "stems": "vocals"}]},
     r"'master.steps.0.stems': unknown parameter"),
])
def test_bad_non_linear_buses_name_the_field(index, master, msg):
    with pytest.raises(RecipeError, match=msg):
        Mixer({**BASE, "master": master}, index)


def test_a_target_cannot_take_the_unmastered_file_name(index):
    r = {**nonlinear([SATURATE]), "targets": ["vocals", "unmastered"],
         "groups": {"unmastered": ["drums", "bass", "other"]}}
    with pytest.raises(RecipeError, match=r"'targets': a target cannot be named 'unmastered'"):
        Mixer(r, index)
