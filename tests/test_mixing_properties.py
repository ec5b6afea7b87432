"""Property tests (hypothesis) for the mixing engine over randomly drawn recipes:

* sum invariant: ``mix == sum(targets)`` up to float32 rounding, every target ``(C, T)`` float32;
* determinism: two independent Mixers give the same bytes and specs for the same
  (recipe, seed, epoch, item), and other (seed, epoch, item) give other draws;
* spec JSON round trip is exact and re-rendering the parsed spec gives the same bytes;
* independence from call order: items drawn in any permutation are the same items;
* stems with random digital silences (0-100 % of each stem): every spec is strict JSON holding
  only finite numbers or nulls, a silent ``snr`` source has ``loudness: null`` and 0 dB, audio is
  finite, the sum invariant and the re-render from the parsed spec hold.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_musdb18hq, silent_dataset
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
               split=draw(st.sampled_from(["all", "train", ["train"]])),
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


@pytest.fixture(scope="module")
def silent_index(tmp_path_factory):
    d = tmp_path_factory.mktemp("silent-props")
    root = silent_dataset(d / "hq", tracks=6, seconds=2.5, seed=11)
    return Index.build(root, cache_dir=d / "cache", progress=False)


@st.composite
def silent_recipes(draw) -> dict:
    """:func:`recipes` plus a silence policy (sometimes none, never an erroring one)."""
    rec = draw(recipes())
    if draw(st.booleans()):
        rec["silence"] = {"min_active": draw(st.floats(0.0, 0.6)),
                          "max_retries": draw(st.integers(0, 4)), "on_exhausted": "keep"}
    return rec


def _finite_or_null(value, where="spec") -> None:
    if isinstance(value, float):
        assert math.isfinite(value), where
    elif isinstance(value, dict):
        for k, v in value.items():
            _finite_or_null(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite_or_null(v, f"{where}.{i}")


def _refuse(name):
    raise AssertionError(f"non-finite JSON literal {name}")


@SETTINGS
@given(rec=silent_recipes(), seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 50),
       item=st.integers(0, 10**6))
def test_silent_spans_give_finite_specs(silent_index, rec, seed, epoch, item):
    recipe = Recipe.from_dict(rec)
    m = Mixer(recipe, silent_index, seed=seed).mixture(item, epoch=epoch)
    text = m.spec.to_json()
    _finite_or_null(json.loads(text, parse_constant=_refuse))
    for src in m.spec.sources:
        if src.level != "snr":
            assert src.loudness is None
            continue
        frames = src.source_frames
        lufs = silent_index.loudness(src.track, src.stem, src.start, frames)
        if math.isinf(lufs):  # the excerpt is silent: recorded as such, not normalised
            assert src.loudness is None and src.gain_db == 0.0 and src.gain == 1.0
        else:
            assert src.loudness == pytest.approx(lufs, abs=1e-9)
            assert src.gain_db == pytest.approx(m.spec.ref_db + src.snr + src.boost
                                                - max(lufs, -70.0))
    assert np.isfinite(m.mix).all()
    total = np.zeros_like(m.mix)
    for t in m.spec.targets:
        assert np.isfinite(m.targets[t]).all()
        total += m.targets[t]
    scale = max(1e-12, float(np.abs(np.stack(list(m.targets.values()))).max()))
    assert float(np.abs(m.mix - total).max()) <= 8 * np.finfo(np.float32).eps * scale * len(
        m.targets)
    assert _bytes(render(MixSpec.from_json(text), silent_index)) == _bytes(m)


def test_silent_excerpts_occur_in_the_property_data(silent_index):
    """The data above really holds silent excerpts (so the property is not vacuous): over 200
    items of a plain recipe, some ``snr`` sources are silent and most are not."""
    recipe = Recipe.from_dict({"targets": ["drums", "bass", "other", "vocals"], "duration": 1.0,
                               "modes": {"incoherent": 1.0},
                               "stems": {"default": {"snr": ["uniform", -5, 5]}}})
    mixer = Mixer(recipe, silent_index, seed=1)
    sources = [s for i in range(200) for s in mixer.spec(i).sources]
    silent = [s for s in sources if s.loudness is None]
    assert 10 <= len(silent) <= len(sources) // 2
    assert all(s.gain_db == 0.0 for s in silent)
