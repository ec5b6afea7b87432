"""Item generators without SeedSequence (``stemforge.mixing._seeding``): the same PCG64 state
and the same draws as ``default_rng(SeedSequence([seed, epoch, item]))``, and the sampler's
specs identical on the fast path and the SeedSequence path."""
from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

from stemforge.mixing import _seeding

M32 = 2**32 - 1


def _numpy_state(seed, epoch, item):
    st = np.random.default_rng(np.random.SeedSequence([seed, epoch, item])).bit_generator.state
    return st["state"]["state"], st["state"]["inc"]


def test_states_equal_numpys_for_edge_and_random_triples():
    rng = np.random.default_rng(0)
    triples = [(0, 0, 0), (M32, M32, M32), (0, 0, M32), (M32, 0, 0), (1, 2, 3), (0, 1, 0)]
    triples += [tuple(int(x) for x in rng.integers(0, 2**32, 3)) for _ in range(300)]
    triples += [(int(rng.integers(0, 100)), int(rng.integers(0, 10)), i) for i in range(200)]
    for seed, epoch, item in triples:
        assert _seeding.pcg64_states(seed, epoch, [item]) == [_numpy_state(seed, epoch, item)]
    # a batch gives each item's own state, in order
    items = list(range(1000, 1100)) + [5, 5, 0]
    assert _seeding.pcg64_states(7, 3, items) == [_numpy_state(7, 3, i) for i in items]
    assert _seeding.pcg64_states(7, 3, []) == []


def test_generators_draw_what_numpys_draw():
    gens = _seeding.ItemGenerators()
    for seed, epoch, item in [(0, 0, 0), (12, 3, 456), (M32, 1, M32)]:
        want = np.random.default_rng(np.random.SeedSequence([seed, epoch, item]))
        (state,) = _seeding.pcg64_states(seed, epoch, [item])
        got = gens.get(state)
        for _ in range(3):  # mixed calls: doubles, bounded ints (32-bit buffering), normals
            assert got.random() == want.random()
            assert got.integers(17) == want.integers(17)
            assert got.integers(5) == want.integers(5)
            assert got.normal(1, 2) == want.normal(1, 2)
            assert np.array_equal(got.random(5), want.random(5))


def test_out_of_range_values_are_left_to_seed_sequence():
    assert _seeding.pcg64_states(2**32, 0, [1]) is None
    assert _seeding.pcg64_states(0, 2**40, [1]) is None
    assert _seeding.pcg64_states(0, 0, [1, 2**32]) is None
    assert _seeding.pcg64_states(0, 0, [-1]) is None
    assert _seeding.pcg64_states(-1, 0, [1]) is None


def test_a_numpy_that_seeds_differently_turns_the_fast_path_off(monkeypatch):
    monkeypatch.setattr(_seeding, "_agrees", None)
    monkeypatch.setattr(_seeding, "_states", lambda s, e, items: [(1, 3)] * len(items))
    assert _seeding.pcg64_states(0, 0, [1]) is None
    assert _seeding._agrees is False


def test_each_thread_has_its_own_generator_and_it_pickles():
    gens = _seeding.ItemGenerators()
    (s1,), (s2,) = _seeding.pcg64_states(1, 0, [1]), _seeding.pcg64_states(2, 0, [2])
    mine = gens.get(s1)
    seen, errors = [], []

    def other():
        try:
            g = gens.get(s2)
            seen.append((g is mine, g.random()))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert not errors
    assert seen == [(False, np.random.default_rng(np.random.SeedSequence([2, 0, 2])).random())]
    # this thread's generator was not re-seeded by the other thread
    assert mine.random() == np.random.default_rng(np.random.SeedSequence([1, 0, 1])).random()
    again = pickle.loads(pickle.dumps(gens))
    assert again.get(s1).random() == np.random.default_rng(np.random.SeedSequence([1, 0, 1])).random()


RECIPES = {
    "coherent-snr": {"name": "t", "duration": 0.5, "targets": ["vocals", "accompaniment"],
                     "groups": {"accompaniment": ["drums", "bass", "other"]},
                     "modes": {"coherent": 0.5, "incoherent": 0.5},
                     "ref_db": ["uniform", -30, -10],
                     "stems": {"default": {"snr": ["uniform", -5, 5]},
                               "bass": {"gain_db": ["normal", -3, 2], "drop": 0.3}},
                     "clipping": "fix_clipping"},
    "augmented": {"name": "t", "duration": 0.5, "targets": ["vocals", "accompaniment"],
                  "groups": {"accompaniment": ["drums", "bass", "other"]},
                  "modes": {"incoherent": 1.0},
                  "stems": {"default": {"gain_db": ["uniform", -6, 0],
                                        "track": ["choose", []]}},
                  "augment": [{"step": "polarity", "p": 0.5},
                              {"step": "gain", "db": ["uniform", -3, 3]}]},
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_sampler_specs_equal_on_the_seed_sequence_path(tmp_path, monkeypatch, name):
    from conftest import make_musdb18hq

    from stemforge.index import Index
    from stemforge.mixing import sample
    from stemforge.mixing.mixer import Mixer

    root = make_musdb18hq(tmp_path / "hq", {"A - One": "train", "B - Two": "train",
                                            "C - Three": "train"}, seconds=2.0)
    idx = Index.build(root, cache_dir=tmp_path / "cache")
    sampler = Mixer(RECIPES[name], idx, seed=3).sampler
    items = list(range(12)) + [2**32 + 5]  # the last one always takes SeedSequence
    fast = [sampler.draw(3, 1, i)[0].to_json() for i in items]
    fast_many = [s.to_json() for s in sampler.draw_many(3, 1, items)]
    monkeypatch.setattr(sample, "pcg64_states", lambda *a: None)
    slow = [sampler.draw(3, 1, i)[0].to_json() for i in items]
    assert fast == slow
    assert fast_many == slow
    assert len(set(slow)) == len(slow)  # the items differ
