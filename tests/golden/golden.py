"""Golden outputs: what packaged recipes produce for fixed seeds on a made dataset.

Each case is a packaged recipe (optionally with a few overrides that keep CI fast), a seed and a
list of items. For every item the golden file holds the spec (as JSON data, without the library
``version``) and the sha256 of every rendered float32 array (mix and each target). The test
(``tests/test_golden.py``) renders them again and compares: any change of a drawn value or of a
rendered byte fails it.

A deliberate change (new draw order, new loudness arithmetic, a recipe edit) regenerates them::

    python tests/golden/regenerate.py            # rewrites tests/golden/*.json

and adds a line to CHANGELOG.md saying which recipes' outputs changed and why.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import yaml

import stemforge
from stemforge import Index, Mixer
from stemforge.prepare import prepare

HERE = Path(__file__).resolve().parent
RECIPES = Path(stemforge.__file__).resolve().parent / "recipes"

# main data: three train songs and one test song of 8 s (pitch/tempo needs up to 5.6 s of source
# for 5 s out, the 4-stem and recommended recipes 6 s out)
MAIN = {"A - Song": "train", "B - Song": "train", "C - Song": "train", "D - Song": "test"}
# the cached-variant case renders Rubber Band R3 variants of every stem at every grid point when
# it prepares: two short songs and a four-point grid keep that to seconds
SMALL = {"A - Song": "train", "B - Song": "train"}

CASES: dict[str, dict] = {
    "tutorial": {"recipe": "musdb_vocals", "data": "main", "items": [0, 1, 2, 3, 4]},
    "four_stems": {"recipe": "musdb_4stems", "data": "main", "items": [0, 1, 2, 3, 4]},
    # item 7: a coherent item with pitch/tempo (shared draws)
    "recommended": {"recipe": "stemforge_recommended", "data": "main",
                    "items": [0, 1, 2, 3, 4, 7]},
    # item 8: a coherent item with a cached variant
    "augmented_cached": {
        "recipe": "musdb_vocals_augmented_cached", "data": "small", "items": [0, 1, 2, 3, 4, 8],
        "overrides": {"duration": 2.0, "augment.0.grid": "semitones=-1,1 tempo=0.9,1"},
    },
}
SEED = 0
EPOCH = 0


def recipe_dict(case: dict) -> dict:
    """The packaged recipe's YAML as a dict, with the case's overrides (``a.0.b`` paths)."""
    raw = yaml.safe_load((RECIPES / f"{case['recipe']}.yaml").read_text())
    raw = copy.deepcopy(raw)
    for path, value in (case.get("overrides") or {}).items():
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return raw


DATA = {"main": (MAIN, 8.0), "small": (SMALL, 3.0)}


def build_index(tmp: Path, name: str) -> Index:
    """Made dataset ``name`` under ``tmp``, indexed and prepared (with the variants of every
    case that draws from it)."""
    from corpus import write_dataset

    tracks, seconds = DATA[name]
    root = write_dataset(tmp / name, tracks, seconds)
    idx = Index.build(root, cache_dir=tmp / f"{name}-cache")
    prepare(idx, workers=1)
    for c in CASES.values():
        if c["data"] == name:
            for step in recipe_dict(c).get("augment") or []:
                if step.get("mode") == "cached":
                    prepare(idx, workers=1, variants=step["grid"])
    return idx


def build_indexes(tmp: Path) -> dict[str, Index]:
    """Every made dataset (see :func:`build_index`)."""
    return {name: build_index(tmp, name) for name in DATA}


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def spec_data(spec) -> dict:
    """The spec as JSON data, without the library version (it changes with every release)."""
    d = json.loads(spec.to_json())
    d.pop("version", None)
    return d


def render_case(case: dict, indexes: dict[str, Index]) -> list[dict]:
    """Render the case's items: one record per item (spec data and array hashes)."""
    mixer = Mixer(recipe_dict(case), indexes[case["data"]], seed=SEED)
    out = []
    for i in case["items"]:
        m = mixer.mixture(i, epoch=EPOCH)
        hashes = {"mix": sha256(m.mix)}
        hashes.update({t: sha256(a) for t, a in m.targets.items()})
        out.append({"item": i, "spec": spec_data(m.spec), "sha256": hashes})
    return out


def golden_path(name: str) -> Path:
    return HERE / f"{name}.json"
