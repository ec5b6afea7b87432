"""Golden outputs: packaged recipes still draw the same specs and render the same bytes.

The stored records (``tests/golden/<case>.json``) were rendered by earlier code; see
``tests/golden/golden.py`` for what they hold and how to regenerate them after a deliberate
change (with a CHANGELOG.md line).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))

from golden import CASES, EPOCH, SEED, build_index, golden_path, render_case, sha256  # noqa: E402

from stemforge import __version__  # noqa: E402
from stemforge.mixing.mixer import render  # noqa: E402
from stemforge.mixing.spec import MixSpec  # noqa: E402

HOW = ("If this change of output is deliberate, regenerate the goldens with "
       "`python tests/golden/regenerate.py` and add a CHANGELOG.md line saying which recipes' "
       "outputs changed and why.")


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    made: dict = {}

    def get(name):
        if name not in made:
            made[name] = build_index(tmp_path_factory.mktemp(f"golden-{name}"), name)
        return made[name]
    return get


def _load(name: str) -> dict:
    path = golden_path(name)
    assert path.is_file(), f"missing golden file {path}. {HOW}"
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_recipe_outputs_are_golden(name, indexes):
    """Sampling (every drawn value) and rendering (every byte) of the case's items."""
    case = CASES[name]
    want = _load(name)
    assert (want["recipe"], want["seed"], want["epoch"]) == (case["recipe"], SEED, EPOCH)
    assert [it["item"] for it in want["items"]] == case["items"], HOW
    got = render_case(case, {case["data"]: indexes(case["data"])})
    for g, w in zip(got, want["items"], strict=True):
        assert g["spec"] == w["spec"], (
            f"{name} item {w['item']}: the drawn spec changed. {HOW}")
        assert g["sha256"] == w["sha256"], (
            f"{name} item {w['item']}: the rendered audio changed (same spec). {HOW}")


@pytest.mark.parametrize("name", list(CASES))
def test_golden_specs_re_render_to_golden_bytes(name, indexes):
    """The stored specs alone (read back from JSON) render to the stored hashes: the render
    side is pinned independently of sampling."""
    case = CASES[name]
    idx = indexes(case["data"])
    for w in _load(name)["items"]:
        spec = MixSpec.from_dict({**w["spec"], "version": __version__})
        m = render(spec, idx)
        got = {"mix": sha256(m.mix), **{t: sha256(a) for t, a in m.targets.items()}}
        assert got == w["sha256"], f"{name} item {w['item']}: re-rendered bytes differ. {HOW}"
