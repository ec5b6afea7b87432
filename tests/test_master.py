"""The mastering bus (issue #20, item 3): ``master: [{step: limiter, ...}, {step: compressor,
...}]`` is one time-varying gain computed on the mix and applied to every target, so the
limiter keeps its ceiling and ``mix == sum(targets)`` still holds."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import silent_dataset
from stemforge import Index, render
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
