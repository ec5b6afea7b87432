"""Property tests (hypothesis) for the mixing engine over randomly drawn recipes:

* sum invariant: ``mix == sum(targets)`` up to float32 rounding, every target ``(C, T)`` float32;
* determinism: two independent Mixers give the same bytes and specs for the same
  (recipe, seed, epoch, item), and other (seed, epoch, item) give other draws;
* spec JSON round trip is exact and re-rendering the parsed spec gives the same bytes;
* independence from call order: items drawn in any permutation are the same items.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_musdb18hq
from stemforge import Index, Mixer, Recipe, render
from stemforge.mixing.spec import MixSpec

SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    d = tmp_path_factory.mktemp("props")
    names = {f"P{k} - Song": ("train" if k < 4 else "test") for k in range(6)}
    root = make_musdb18hq(d / "hq", names, seconds=2.5)
    return Index.build(root, cache_dir=d / "cache", progress=False)


@st.composite
def recipes(draw) -> dict:
    """A valid recipe dict over the MUSDB stems, with varied modes, gains, targets, policies."""
    grouping = draw(st.sampled_from(["vocals", "four", "rhythm"]))
    if grouping == "vocals":
        targets = {"targets": ["vocals", "accompaniment"],
                   "groups": {"accompaniment": ["drums", "bass", "other"]}}
    elif grouping == "four":
        targets = {"targets": ["drums", "bass", "other", "vocals"]}
    else:
        targets = {"targets": ["rhythm", "melody"],
                   "groups": {"rhythm": ["drums", "bass"], "melody": ["other", "vocals"]}}
    p = draw(st.floats(0.0, 1.0))
    modes = {"coherent": p, "incoherent": 1.0 - p} if 0 < p < 1 else (
        {"coherent": 1.0} if p == 1 else {"incoherent": 1.0})
    lo = draw(st.floats(-12, 6))
    gain = draw(st.sampled_from(["snr", "gain_db"]))
    stems = {"default": {gain: ["uniform", lo, lo + draw(st.floats(0.1, 8))]}}
    rec = dict(targets, duration=draw(st.sampled_from([0.5, 1.0, 1.5])), modes=modes,
               split=draw(st.sampled_from(["all", "train", ["train", "test"]])),
               ref_db=["uniform", -35, -8], stems=stems,
               clipping=draw(st.sampled_from(["fix_clipping", "peak_normalize", "none"])))
    return rec


def _bytes(m) -> list[bytes]:
    return [m.mix.tobytes()] + [m.targets[t].tobytes() for t in m.spec.targets]


@SETTINGS
@given(rec=recipes(), seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 50),
       item=st.integers(0, 10**6))
def test_sum_invariant_shapes_and_round_trip(index, rec, seed, epoch, item):
    recipe = Recipe.from_dict(rec)
    m = Mixer(recipe, index, seed=seed).mixture(item, epoch=epoch)
    frames = recipe.frames
    assert m.mix.dtype == np.float32 and m.mix.shape == (2, frames)
    assert list(m.targets) == list(recipe.targets)
    total = np.zeros_like(m.mix)
    for t in m.spec.targets:
        assert m.targets[t].dtype == np.float32 and m.targets[t].shape == (2, frames)
        total += m.targets[t]
    # float32 rounding only: a few ulps of the largest magnitude involved
    scale = max(1e-12, float(np.abs(np.stack(list(m.targets.values()))).max()))
    assert float(np.abs(m.mix - total).max()) <= 8 * np.finfo(np.float32).eps * scale * len(
        m.targets)

    text = m.spec.to_json()
    again = MixSpec.from_json(text)
    assert again == m.spec and again.to_json() == text
    assert _bytes(render(again, index)) == _bytes(m)


@SETTINGS
@given(rec=recipes(), seed=st.integers(0, 2**31), items=st.permutations(range(4)))
def test_determinism_and_call_order(index, rec, seed, items):
    a = Mixer(rec, index, seed=seed)
    b = Mixer(rec, index, seed=seed)
    forward = [a.mixture(i) for i in range(4)]
    shuffled = {i: b.mixture(i) for i in items}
    for i, m in enumerate(forward):
        assert _bytes(shuffled[i]) == _bytes(m)
        assert shuffled[i].spec.to_json() == m.spec.to_json()
    # another item, epoch or seed is another draw
    specs = {m.spec.to_json() for m in forward}
    specs.add(a.spec(0, epoch=1).to_json())
    specs.add(Mixer(rec, index, seed=seed + 1).spec(0).to_json())
    assert len(specs) == 6
