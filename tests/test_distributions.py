"""Scaper-style distributions: parsing, drawing, bounded re-draws, field-level errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stemforge.errors import RecipeError, SamplingError
from stemforge.distributions import parse


def rng(seed=0):
    return np.random.default_rng(seed)


def test_kinds_draw_in_support():
    g = rng()
    assert parse(3.5, "f").sample(g) == 3.5
    assert parse(["const", 2], "f").sample(g) == 2
    assert parse(["choose", ["a", "b"]], "f", numeric=False).sample(g) in ("a", "b")
    assert parse(["choose", []], "f", numeric=False).sample(g, ["x"]) == "x"
    w = parse(["choose_weighted", ["a", "b"], [0.0, 1.0]], "f", numeric=False)
    assert {w.sample(g) for _ in range(20)} == {"b"}
    u = parse(["uniform", -5, 5], "f")
    xs = [u.sample(g) for _ in range(500)]
    assert -5 <= min(xs) and max(xs) <= 5
    t = parse(["truncnorm", 0, 10, -1, 1], "f")
    xs = [t.sample(g) for _ in range(500)]
    assert -1 <= min(xs) and max(xs) <= 1
    n = parse(["normal", 0, 1], "f")
    assert abs(np.mean([n.sample(g) for _ in range(2000)])) < 0.1


def test_normal_with_limits_redraws_and_is_bounded():
    d = parse(["normal", 0.9, 0.5], "stems.x.start", low=0, high=1)
    g = rng(1)
    xs = [d.sample(g) for _ in range(300)]
    assert 0 <= min(xs) and max(xs) <= 1
    far = parse(["normal", 0.0, 1e-6], "f", low=-100, high=100)
    far = type(far)(far.kind, (99.99999, 1e-9), far.field, limits=(-1, 1), max_tries=5)
    with pytest.raises(SamplingError, match=r"'f': \[normal, 99.99999, 1e-09\] drew no value within \[-1, 1\] in 5 tries"):
        far.sample(g)


def test_sample_valid_is_bounded():
    d = parse(["uniform", 0, 1], "stems.vocals.snr")
    with pytest.raises(SamplingError, match=r"'stems.vocals.snr'.*no valid value \(never\) in 7 draws"):
        d.sample_valid(rng(), lambda v: False, "never", max_tries=7)


@pytest.mark.parametrize("value, kw, msg", [
    ([], {}, "empty distribution"),
    (["poisson", 3], {}, "unknown distribution 'poisson'"),
    (["uniform", 1], {}, "uniform takes 2 argument"),
    (["uniform", "a", 1], {}, "uniform argument must be a number"),
    (["uniform", 2, 1], {}, "uniform low 2 is greater than high 1"),
    (["truncnorm", 0, 1, 2, 1], {}, "truncnorm low 2 is greater than high 1"),
    (["choose_weighted", ["a"], [0.5]], {"numeric": False}, "must sum to 1"),
    (["choose_weighted", ["a", "b"], [1.0]], {"numeric": False}, "2 values but 1 probabilities"),
    (["uniform", -1, 1], {"low": 0}, "value -1 is below the minimum 0"),
    (["uniform", 0, float("inf")], {}, "must be finite"),
    (["normal", 0, 1], {"numeric": False}, "not allowed here"),
])
def test_parse_errors_name_field(value, kw, msg):
    with pytest.raises(RecipeError, match="recipe field 'x.y'") as e:
        parse(value, "x.y", **kw)
    assert msg in str(e.value)


@settings(max_examples=60, deadline=None)
@given(lo=st.floats(-50, 50), width=st.floats(0, 50), seed=st.integers(0, 2**32 - 1))
def test_uniform_deterministic_per_seed(lo, width, seed):
    d = parse(["uniform", lo, lo + width], "f")
    a = [d.sample(rng(seed)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert lo <= a[0] <= lo + width


def test_uniform_draws_exactly_what_numpy_uniform_draws():
    """The draw is computed as numpy's ``Generator.uniform`` computes it: the same values from
    the same generator state (datasets stay the same across stemforge versions)."""
    for lo, hi in ((-5, 5), (-30.0, -10.0), (0, 1), (2.5, 2.5), (-1e-3, 7.25)):
        d = parse(["uniform", lo, hi], "f")
        a, b = np.random.default_rng(11), np.random.default_rng(11)
        got = [d.sample(a) for _ in range(2000)]
        want = [float(b.uniform(lo, hi)) for _ in range(2000)]
        assert got == want, (lo, hi)


def test_item_rng_is_the_seed_sequence_of_the_triple():
    from stemforge.mixing.sample import item_rng

    for triple in ((0, 0, 0), (1, 2, 3), (2**32 - 1, 7, 2**32 - 1), (2**32, 0, 5),
                   (12345678901234, 3, 99), (5, 2**40, 1)):
        want = np.random.default_rng(np.random.SeedSequence(list(triple))).random(8)
        assert np.array_equal(item_rng(*triple).random(8), want), triple


@pytest.mark.parametrize("value, kw, choices", [
    (3.5, {}, None),
    (["uniform", -5, 5], {}, None),
    (["uniform", -30.0, -10.0], {}, None),
    (["uniform", 2.5, 2.5], {}, None),
    (["normal", 0.5, 0.3], {"low": 0, "high": 1}, None),
    (["truncnorm", 0, 3, -6, 6], {}, None),
    (["choose", ["a", "b", "c"]], {"numeric": False}, None),
    (["choose", []], {"numeric": False}, ["x", "y", "z", "w"]),
    (["choose_weighted", ["a", "b"], [0.3, 0.7]], {"numeric": False}, None),
])
def test_drawer_draws_exactly_what_sample_draws(value, kw, choices):
    """``Distribution.drawer()`` (the sampler's hot loop) is ``sample`` without the per-call
    dispatch: the same values from the same generator states, interleaved with other draws."""
    d = parse(value, "f", **kw)
    f = d.drawer()
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    got, want = [], []
    for _ in range(500):
        got.append(f(a, choices))
        want.append(d.sample(b, choices))
        assert a.random() == b.random()  # the generators stay in step
    assert got == want


def test_drawer_of_an_empty_choice_fails_like_sample():
    d = parse(["choose", []], "stems.vocals.track", numeric=False)
    with pytest.raises(SamplingError, match="'stems.vocals.track': nothing to choose from"):
        d.drawer()(rng(), [])
