"""MixtureDataset: tensors, determinism, epochs, pickling, StemCache use, clear errors."""
from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

import torch

from conftest import make_musdb18hq  # noqa: E402
from stemforge import Index, Mixer  # noqa: E402
from stemforge.errors import RecipeError  # noqa: E402
from stemforge.prepare import prepare  # noqa: E402
from stemforge.torch import EpochError, MixtureDataset, MixtureStream  # noqa: E402

SR = 8000
RECIPE = {"name": "t", "duration": 0.25, "sample_rate": SR, "channels": 2,
          "targets": ["vocals", "accompaniment"],
          "groups": {"accompaniment": ["drums", "bass", "other"]},
          "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", -30, -10],
          "stems": {"default": {"snr": ["uniform", -5, 5]}}}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    base = tmp_path_factory.mktemp("torchds")
    root = make_musdb18hq(base / "hq", {"A - One": "train", "B - Two": "train",
                                        "C - Three": "train"}, seconds=1.0, sr=SR)
    idx = Index.open(root, cache_dir=base / "cache")
    prepare(idx, workers=1)
    return idx


def test_item_is_the_mixers_mixture_as_tensors(index):
    ds = MixtureDataset(RECIPE, index, length=8, seed=3)
    assert ds.targets == ["vocals", "accompaniment"] and len(ds) == 8
    mix, targets = ds[5]
    m = Mixer(RECIPE, index, seed=3).mixture(5, epoch=0)
    assert mix.dtype == torch.float32 and targets.dtype == torch.float32
    assert tuple(mix.shape) == (2, 2000) and tuple(targets.shape) == (2, 2, 2000)
    np.testing.assert_array_equal(mix.numpy(), m.mix)
    np.testing.assert_array_equal(targets[0].numpy(), m.targets["vocals"])
    np.testing.assert_array_equal(targets[1].numpy(), m.targets["accompaniment"])
    np.testing.assert_allclose(mix.numpy(), targets.sum(0).numpy(), atol=1e-6)


def test_determinism_across_instances_and_epochs(index):
    a = MixtureDataset(RECIPE, index, length=6, seed=1)
    b = MixtureDataset(RECIPE, index, length=6, seed=1)
    for i in range(6):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    e0 = [a[i][0] for i in range(6)]
    a.set_epoch(1)
    assert a.epoch == 1
    e1 = [a[i][0] for i in range(6)]
    assert all(not torch.equal(x, y) for x, y in zip(e0, e1, strict=True))
    assert torch.equal(a.item(2, epoch=0)[0], e0[2])
    assert not torch.equal(MixtureDataset(RECIPE, index, 6, seed=2)[0][0], e0[0])


def test_spec_dict_is_collate_friendly_and_rerenders(index):
    from torch.utils.data import default_collate

    from stemforge import MixSpec, render

    ds = MixtureDataset(RECIPE, index, length=4, seed=0, epoch=2, return_spec=True)
    mix, targets, spec = default_collate([ds[i] for i in range(4)])
    assert spec["item"].tolist() == [0, 1, 2, 3] and spec["epoch"].tolist() == [2] * 4
    again = render(MixSpec.from_json(spec["json"][3]), index)
    np.testing.assert_array_equal(again.mix, mix[3].numpy())


def test_pickles_small_without_analysis_arrays(index):
    ds = MixtureDataset(RECIPE, index, length=4, seed=0)
    ds[0]
    assert index._energies  # the sampler has memmapped analysis in this process ...
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # ... but the pickle holds only recipe + track metadata
    ds2 = pickle.loads(blob)
    assert ds2.mixer.index._energies == {} and ds2.index.cache._maps == {}
    assert torch.equal(ds2[3][1], ds[3][1])


def test_reads_from_stem_cache_not_files(tmp_path):
    root = make_musdb18hq(tmp_path / "hq", {"A - One": "train", "B - Two": "train"},
                          seconds=1.0, sr=SR)
    idx = Index.open(root, cache_dir=tmp_path / "cache")
    prepare(idx, workers=1)
    ds = MixtureDataset(RECIPE, idx, length=4, seed=0)
    before = ds[1]
    shutil.rmtree(root)  # no audio files left: items must come from the memmaps
    assert torch.equal(ds[1][0], before[0])
    assert torch.equal(MixtureDataset(RECIPE, idx, length=4, seed=0)[1][1], before[1])


def test_require_set_epoch(index):
    ds = MixtureDataset(RECIPE, index, length=2, require_set_epoch=True)
    with pytest.raises(EpochError, match=r"require_set_epoch=True but set_epoch\(e\) was never"):
        ds[0]
    ds.set_epoch(4)
    assert torch.equal(ds[0][0], MixtureDataset(RECIPE, index, 2, epoch=4)[0][0])
    with pytest.raises(EpochError, match="expected an integer epoch >= 0, got -1"):
        ds.set_epoch(-1)


def test_bad_input_errors(index, tmp_path):
    with pytest.raises(RecipeError, match=r"recipe field 'targets': stem 'piano' is not in the "
                                          r"index of .* \(it has bass, drums, other, vocals\)"):
        MixtureDataset({**RECIPE, "targets": ["piano", "accompaniment"]}, index, length=4)
    with pytest.raises(RecipeError, match=r"recipe field 'sample_rate': 44100 Hz but track "
                                          r"'train/A - One' is 8000 Hz; set resample: true"):
        MixtureDataset({**RECIPE, "sample_rate": 44100}, index, length=4)
    ok = MixtureDataset({**RECIPE, "sample_rate": 16000, "resample": True}, index, length=1)
    assert tuple(ok[0][0].shape) == (2, 4000)
    with pytest.raises(ValueError, match="length must be an integer >= 1, got 0"):
        MixtureDataset(RECIPE, index, length=0)
    with pytest.raises(IndexError, match="item 4 out of range for a dataset of length 4"):
        MixtureDataset(RECIPE, index, length=4)[4]
    with pytest.raises(RecipeError, match="recipe file not found"):
        MixtureDataset(tmp_path / "nope.yaml", index, length=4)


def test_paths_for_recipe_and_index(index, tmp_path):
    import yaml

    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(RECIPE))
    ds = MixtureDataset(p, index.index_file, length=3, seed=5)
    assert torch.equal(ds[2][0], MixtureDataset(RECIPE, index, 3, seed=5)[2][0])


def test_stream_batches_equal_dataset_items_and_epoch_rules(index):
    ds = MixtureDataset(RECIPE, index, length=8, seed=2, epoch=1)
    s = MixtureStream(RECIPE, index, batch_size=3, seed=2, batches=2)
    with pytest.raises(EpochError, match=r"finite stream .* needs set_epoch\(e\)"):
        next(iter(s))
    s.set_epoch(1)
    batches = list(s)
    assert len(batches) == 2 == len(s)
    mix, targets = batches[1]
    assert tuple(targets.shape) == (3, 2, 2, 2000)
    for k in range(3):
        assert torch.equal(mix[k], ds[3 + k][0]) and torch.equal(targets[k], ds[3 + k][1])
    endless = iter(MixtureStream(RECIPE, index, batch_size=2, seed=2, start=5))
    assert torch.equal(next(endless)[0][0], MixtureDataset(RECIPE, index, 11, seed=2)[10][0])
    with pytest.raises(TypeError, match="endless MixtureStream has no length"):
        len(MixtureStream(RECIPE, index, batch_size=2))
