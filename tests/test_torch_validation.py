"""ValidationDataset: coherent windows tiling whole tracks at original gains; errors."""
from __future__ import annotations

import numpy as np
import pytest

import torch

from conftest import make_musdb18hq  # noqa: E402
from stemforge import Index, MixSpec, Recipe  # noqa: E402
from stemforge.errors import RecipeError  # noqa: E402
from stemforge.torch import MixtureDataset, ValidationDataset  # noqa: E402

SR = 8000


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    base = tmp_path_factory.mktemp("torchval")
    root = make_musdb18hq(base / "hq", {"A - One": "train", "B - Two": "test"},
                          seconds=1.0, sr=SR)
    return Index.open(root, cache_dir=base / "cache")  # not prepared: partial file reads


def test_windows_tile_whole_tracks_at_original_gains(index):
    v = MixtureDataset.validation(index, ["vocals", "accompaniment"], duration=0.3, split="all")
    assert isinstance(v, ValidationDataset) and v.targets == ["vocals", "accompaniment"]
    # 8000 frames, windows of 2400 every 2400, plus one aligned to the end: 0, 2400, 4800, 5600
    assert v.windows == [(t, s) for t in ("test/B - Two", "train/A - One")
                         for s in (0, 2400, 4800, 5600)]
    for i in (1, 7):
        tid, start = v.windows[i]
        mix, targets = v[i]
        assert tuple(targets.shape) == (2, 2, 2400)
        vocals = index.read(tid, "vocals", start, 2400)
        acc = sum(index.read(tid, s, start, 2400) for s in ("drums", "bass", "other"))
        np.testing.assert_array_equal(targets[0].numpy(), vocals)
        np.testing.assert_allclose(targets[1].numpy(), acc, atol=1e-6)
        np.testing.assert_allclose(mix.numpy(), vocals + acc, atol=1e-6)


def test_recipe_split_hop_tail_and_specs(index):
    recipe = Recipe.from_dict({"duration": 0.5, "sample_rate": SR, "split": "train",
                               "targets": ["vocals", "drums"], "sources": ["vocals", "drums"],
                               "stems": {"default": {"snr": ["uniform", -5, 5]}},
                               "augment": [{"step": "polarity"}]})
    # the recipe's split is the training data's: validation takes its own (no valid split
    # here, so it must be named)
    with pytest.raises(RecipeError, match="has no validation split"):
        ValidationDataset(index, recipe)
    v = ValidationDataset(index, recipe, hop=0.375, tail="drop", return_spec=True,
                          split="train")
    assert v.windows == [("train/A - One", 0), ("train/A - One", 3000)]
    mix, targets, spec = v[1]
    got = MixSpec.from_json(spec["json"])
    assert got.mode == "coherent" and got.clipping == "none" and got.scale == 1.0
    assert [(x.stem, x.start, x.gain, x.steps) for x in got.sources] == \
        [("vocals", 3000, 1.0, []), ("drums", 3000, 1.0, [])]
    np.testing.assert_array_equal(targets[1].numpy(), index.read("train/A - One", "drums", 3000, 4000))
    a = ValidationDataset(index, recipe, split="test")
    assert [w[0] for w in a.windows] == ["test/B - Two"] * 2


def test_long_window_skips_short_tracks_and_errors(index):
    with pytest.raises(RecipeError, match=r"recipe field 'duration': 2 s is longer than every "
                                          r"track \(longest 1.00 s\)"):
        ValidationDataset(index, ["vocals"], duration=2.0, split="all")
    with pytest.raises(RecipeError, match=r"recipe field 'targets': stem 'piano' is not in the index"):
        ValidationDataset(index, ["piano"], duration=0.5, split="all")
    with pytest.raises(RecipeError, match=r"recipe field 'sample_rate': 44100 Hz but track "
                                          r"'test/B - Two' is 8000 Hz; set resample: true"):
        ValidationDataset(index, Recipe.from_dict({"targets": ["vocals"]}), duration=0.5,
                          split="all")
    with pytest.raises(RecipeError, match="recipe field 'hop': expected a positive number"):
        ValidationDataset(index, ["vocals"], duration=0.5, hop=0, split="all")
    with pytest.raises(IndexError, match="window 4 out of range for 4 windows"):
        ValidationDataset(index, ["vocals"], duration=0.5, split="all")[4]
