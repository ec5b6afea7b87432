"""Mixup of same-class stems (issue #20, item 3; MSST's ``mixup``): ``mixup: {p: [...]}`` adds,
with independent probabilities, extra stems of a slot's own name from other tracks. The extras
are drawn after everything a recipe without mixup draws, recorded in the spec, and rendered
alike by the reference and the compiled path."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from conftest import make_musdb18hq, silent_dataset
from stemforge import Index
from stemforge.errors import RecipeError
from stemforge.mixing import reference
from stemforge.mixing.mixer import Mixer
from stemforge.mixing.spec import MixSpec

SR = 16000
BASE = {"targets": ["vocals", "accompaniment"], "groups": {"accompaniment": ["drums", "bass",
        "other"]}, "duration": 1.0, "sample_rate": SR, "split": "train",
        "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", -24, -12],
        "stems": {"default": {"snr": ["uniform", -4, 4]}}}
MIXUP = {**BASE, "mixup": {"p": [0.5, 0.3], "gain_db": ["uniform", -6, 0]}}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """6 train tracks with silent spans (some excerpts silent) and 2 test tracks."""
    base = tmp_path_factory.mktemp("mixup")
    root = silent_dataset(base / "data", tracks=6, seconds=4.0, sr=SR, seed=5)
    make_musdb18hq(root, {"T0 - Test": "test", "T1 - Test": "test"}, seconds=4.0, sr=SR,
                   with_mixture=False, seed=40)
    return Index.open(root, cache_dir=base / "cache")


def test_the_slots_own_sources_are_drawn_as_without_mixup(index):
    """Mixup draws come after the placement: every slot's own source keeps its track, start
    and gain, and a recipe whose probabilities are all 0 gives the plain recipe's bytes."""
    plain, mixed = Mixer(BASE, index, seed=3), Mixer(MIXUP, index, seed=3)
    extras = 0
    for a, b in zip(plain.mixtures(range(12)), mixed.mixtures(range(12)), strict=True):
        own = [s for s in b.spec.sources if not s.mixup]
        assert [(s.stem, s.track, s.start, s.gain_db) for s in a.spec.sources] == \
            [(s.stem, s.track, s.start, s.gain_db) for s in own]
        extras += len(b.spec.sources) - len(own)
    assert extras > 0
    zero = Mixer({**BASE, "mixup": {"p": [0.0, 0.0]}}, index, seed=3)
    for a, b in zip(plain.mixtures(range(4)), zero.mixtures(range(4)), strict=True):
        assert a.mix.tobytes() == b.mix.tobytes()
        assert [s.track for s in a.spec.sources] == [s.track for s in b.spec.sources]


def test_extras_come_from_other_tracks_of_the_split_with_msst_probabilities(index):
    """Per slot, entry k of p is an independent Bernoulli draw (MSST): the number of extras
    is 0, 1, 2 with probabilities (1-p0)(1-p1), p0(1-p1)+(1-p0)p1, p0 p1 (chi-square, 0.1 %).
    Extras hold the slot's stem, in its target, from train tracks other than the slot's and
    each other's, right after the slot in the spec."""
    mixer = Mixer(MIXUP, index, seed=11)
    counts = np.zeros(3, int)
    for i in range(400):
        spec = mixer.spec(i)
        slots = []
        for s in spec.sources:
            if s.mixup:
                slot = slots[-1]
                assert s.stem == slot[0].stem and s.target == slot[0].target
                assert s.mixup == len(slot) and -6 <= s.mixup_db <= 0
                slot.append(s)
            else:
                slots.append([s])
        for slot in slots:
            counts[len(slot) - 1] += 1
            tracks = [s.track for s in slot]
            assert len(set(tracks)) == len(tracks)
            assert all(t.startswith("train/") for t in tracks)
            assert all(s.dropped == slot[0].dropped for s in slot)
    p0, p1 = 0.5, 0.3
    expect = np.array([(1 - p0) * (1 - p1), p0 * (1 - p1) + (1 - p0) * p1, p0 * p1])
    assert stats.chisquare(counts, expect * counts.sum()).pvalue > 0.001, counts


def test_render_is_the_reference_and_the_spec_re_renders(index):
    """Extras render through the compiled kernels as the reference sums them (one more member
    of the slot's target); the spec's JSON round trip re-renders the same bytes; mix ==
    sum(targets); the batch path and the one-item path agree."""
    mixer = Mixer({**MIXUP, "clipping": "peak_normalize", "mixup": {"p": [0.9, 0.6]}}, index,
                  seed=2)
    seen = 0
    for m in mixer.mixtures(range(8)):
        seen += sum(1 for s in m.spec.sources if s.mixup)
        mix, targets, scale, peak = reference.render_reference(m.spec, index)
        assert mix.tobytes() == m.mix.tobytes() and scale == m.spec.scale
        for t in m.spec.targets:
            assert targets[t].tobytes() == m.targets[t].tobytes()
        again = MixSpec.from_json(m.spec.to_json())
        assert again == m.spec
        assert reference.mix_of(m.stacked()).tobytes() == m.mix.tobytes()
        assert mixer.mixture(m.spec.item).mix.tobytes() == m.mix.tobytes()
    assert seen >= 8


def test_per_stem_probabilities_and_refusals(index):
    r = {**BASE, "mixup": {"p": {"default": [0.9], "accompaniment": [], "vocals": [0.9, 0.9]}}}
    mixer = Mixer(r, index, seed=0)
    assert mixer.recipe.mixup.p == {"vocals": (0.9, 0.9)}
    stems = {s.stem for i in range(10) for s in mixer.spec(i).sources if s.mixup}
    assert stems == {"vocals"}
    with pytest.raises(RecipeError, match="'mixup.p': expected a list of at most 4"):
        Mixer({**BASE, "mixup": {"p": [0.1] * 5}}, index)
    with pytest.raises(RecipeError, match="mixup.gain_db"):
        Mixer({**BASE, "mixup": {"p": [0.1], "gain_db": ["uniform", 0, 90]}}, index)
    ev = {**BASE, "modes": {"incoherent": 1}, "stems": {"default": {"event_time": 0.1}}}
    with pytest.raises(RecipeError, match="recipe field 'mixup': cannot be combined"):
        Mixer({**ev, "mixup": {"p": [0.1]}}, index)
    named = {**BASE, "stems": {"vocals": {"track": ["choose", ["train/S0 - Song"]]}}}
    with pytest.raises(RecipeError, match="stems.vocals.track"):
        Mixer({**named, "mixup": {"p": [0.1]}}, index)
    Mixer({**named, "mixup": {"p": {"default": [0.1], "vocals": []}}}, index)  # said: fine


def test_generate_and_regenerate_verify(index, tmp_path, capsys):
    """A generated set with mixup re-renders byte-identically from its specs (the CLI's
    ``regenerate --verify``), and its files are the API's bytes."""
    import soundfile as sf

    from stemforge.cli import main
    from stemforge.jobs.generate import generate

    r = Mixer({**MIXUP, "mixup": {"p": [0.8, 0.5]}}, index, seed=4).recipe
    out = tmp_path / "set"
    generate(r, index, 5, out, seed=4, progress=False, fsync=False)
    specs = [MixSpec.load(out / f"{i:06d}" / "spec.json") for i in range(5)]
    assert any(s.mixup for sp in specs for s in sp.sources)
    mix0, _ = sf.read(str(out / "000000" / "mixture.wav"), dtype="float32", always_2d=True)
    assert mix0.T.tobytes() == Mixer(r, index, seed=4).mixture(0).mix.tobytes()
    code = main(["regenerate", str(out), "--verify", "--no-progress"])
    o, err = capsys.readouterr()
    assert code == 0 and "all 5 items re-render byte-identically" in o, err


def test_extras_come_from_the_slots_dataset(index):
    """With several datasets, an extra is drawn in the dataset of the slot it joins (each
    stem of an ``across`` item its own), and the spec names it."""
    r = {**MIXUP, "datasets": {"a": 1, "b": 1}, "dataset_mode": "across",
         "mixup": {"p": [0.9, 0.9]}}
    mixer = Mixer(r, {"a": index, "b": index}, seed=6)
    pairs = set()
    for i in range(20):
        own = None
        for s in mixer.spec(i).sources:
            if s.mixup:
                assert s.dataset == own.dataset and s.stem == own.stem
                pairs.add(s.dataset)
            else:
                own = s
    assert pairs == {"a", "b"}
