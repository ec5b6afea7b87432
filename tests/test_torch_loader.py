"""DataLoader integration: identical batches at num_workers 0/1/4 (persistent workers, pinned
memory), across runs, and across epochs set with set_epoch; the iterable stream likewise."""
from __future__ import annotations

import warnings

import pytest

import torch

from torch.utils.data import DataLoader  # noqa: E402

from conftest import make_musdb18hq  # noqa: E402
from stemforge import Index  # noqa: E402
from stemforge.prepare import prepare  # noqa: E402
from stemforge.torch import MixtureDataset, MixtureStream  # noqa: E402

SR = 8000
RECIPE = {"name": "t", "duration": 0.1, "sample_rate": SR, "channels": 2,
          "targets": ["vocals", "drums", "bass", "other"],
          "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", -30, -10],
          "stems": {"default": {"snr": ["uniform", -5, 5]}},
          "augment": [{"step": "polarity", "p": 0.5},
                      {"step": "channel_swap", "stems": "vocals", "p": 0.5}]}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    base = tmp_path_factory.mktemp("torchdl")
    root = make_musdb18hq(base / "hq", {"A - One": "train", "B - Two": "train"},
                          seconds=0.5, sr=SR)
    idx = Index.open(root, cache_dir=base / "cache")
    prepare(idx, workers=1)
    return idx


def _run(ds, workers, epochs=(0, 1), batch_size=3):
    kw = dict(num_workers=workers, pin_memory=True, batch_size=batch_size)
    if workers:
        kw.update(persistent_workers=True, prefetch_factor=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pin_memory without an accelerator
        loader = DataLoader(ds, **kw)
        out = []
        for e in epochs:
            ds.set_epoch(e)
            out.append([b for b in loader])
    return out


def _same(a, b):
    assert len(a) == len(b)
    for ea, eb in zip(a, b, strict=True):
        assert len(ea) == len(eb)
        for x, y in zip(ea, eb, strict=True):
            assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))


def test_identical_batches_at_any_worker_count_and_epochs_differ(index):
    ref = _run(MixtureDataset(RECIPE, index, length=7, seed=11), 0)
    assert len(ref[0]) == 3 and tuple(ref[0][0][1].shape) == (3, 4, 2, 800)
    assert not torch.equal(ref[0][0][0], ref[1][0][0])  # epoch 1 is new data
    for w in (1, 4):  # persistent workers must see set_epoch(1)
        _same(_run(MixtureDataset(RECIPE, index, length=7, seed=11), w), ref)
    _same(_run(MixtureDataset(RECIPE, index, length=7, seed=11), 0), ref)  # another run


def test_stream_identical_at_any_worker_count(index):
    def run(w):
        s = MixtureStream(RECIPE, index, batch_size=2, seed=4, batches=5)
        return _run(s, w, epochs=(0, 3), batch_size=None)

    ref = run(0)
    assert len(ref[0]) == 5 and tuple(ref[0][0][0].shape) == (2, 2, 800)
    ds = MixtureDataset(RECIPE, index, length=10, seed=4, epoch=3)
    assert torch.equal(ref[1][4][1][1], ds[9][1])
    _same(run(2), ref)
    _same(run(4), ref)  # 5 batches over 4 workers: uneven shards still come back in order


def test_spawned_worker_sees_set_epoch(index):
    """With the spawn start method the dataset is pickled to the worker; the epoch must still
    be shared (persistent worker, epoch changed after it started)."""
    ds = MixtureDataset(RECIPE, index, length=2, seed=1)
    loader = DataLoader(ds, batch_size=2, num_workers=1, persistent_workers=True,
                        multiprocessing_context="spawn")
    got = []
    for e in (0, 5):
        ds.set_epoch(e)
        got.append(next(iter(loader))[0])
    assert torch.equal(got[1][1], ds.item(1, epoch=5)[0])
    assert torch.equal(got[0][0], ds.item(0, epoch=0)[0])
