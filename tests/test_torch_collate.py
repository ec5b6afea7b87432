"""stemforge.torch.collate: the same batches as default_collate, in reused shared-memory
buffers that are never overwritten while any tensor or view of a batch is alive; items rendered
straight into them by MixtureDataset.__getitems__ and MixtureStream; shipped from workers as
file descriptors (fork and spawn); clear errors that leave no buffer claimed."""
from __future__ import annotations

import gc
import warnings

import pytest

import torch

from torch.utils.data import DataLoader, default_collate  # noqa: E402

from conftest import make_musdb18hq  # noqa: E402
from stemforge import Index  # noqa: E402
from stemforge.errors import StemforgeError  # noqa: E402
from stemforge.prepare import prepare  # noqa: E402
from stemforge.torch import (CollateError, EpochError, MixtureDataset, MixtureStream,  # noqa: E402
                             PooledCollate, collate)
from stemforge.torch.collate import PooledItems  # noqa: E402

SR = 8000
RECIPE = {"name": "t", "duration": 0.1, "sample_rate": SR, "channels": 2,
          "targets": ["vocals", "drums", "bass", "other"],
          "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", -30, -10],
          "stems": {"default": {"snr": ["uniform", -5, 5]}},
          "augment": [{"step": "polarity", "p": 0.5}]}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    base = tmp_path_factory.mktemp("torchcollate")
    root = make_musdb18hq(base / "hq", {"A - One": "train", "B - Two": "train"},
                          seconds=0.5, sr=SR)
    idx = Index.open(root, cache_dir=base / "cache")
    prepare(idx, workers=1)
    return idx


def _reference(ds, epoch, batch_size):
    """default_collate over per-item __getitem__ (no __getitems__, no pool)."""
    ds.set_epoch(epoch)
    n = len(ds)
    return [default_collate([ds[i] for i in range(s, min(s + batch_size, n))])
            for s in range(0, n, batch_size)]


def _equal(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        assert a.is_contiguous()
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _equal(x, y)
    else:
        assert a == b


def _loader(ds, workers, **kw):
    extra = dict(persistent_workers=True) if workers else {}
    return DataLoader(ds, batch_size=3, num_workers=workers, **extra, **kw)


@pytest.mark.parametrize("return_spec", [False, True])
def test_same_batches_as_default_collate_at_any_worker_count(index, return_spec):
    ds = MixtureDataset(RECIPE, index, length=7, seed=5, return_spec=return_spec)
    refs = {e: _reference(ds, e, 3) for e in (0, 1)}
    for w in (0, 2):
        for kw in ({"collate_fn": collate}, {}):  # pooled, and __getitems__ + default_collate
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pin_memory without an accelerator
                loader = _loader(ds, w, pin_memory=True, **kw)
                for e in (0, 1):
                    ds.set_epoch(e)
                    got = list(loader)  # held: pooled buffers in use, then one-off buffers
                    assert len(got) == 3
                    for g, r in zip(got, refs[e], strict=True):
                        _equal(g, r)
            del loader, got
    assert not torch.equal(refs[0][0][0], refs[1][0][0])


def test_held_batches_and_views_are_never_overwritten(index):
    """More batches held at once than the pool has buffers, a lone view kept past its batch,
    then batches dropped at once (buffer reused): every tensor keeps its values. MixtureDataset
    renders into the default pool, ``stemforge.torch.collate`` (4 buffers per process)."""
    gc.collect()
    assert collate.pooled()[1] == 0  # nothing from earlier tests is still alive
    ds = MixtureDataset(RECIPE, index, length=24, seed=2)
    ref = _reference(ds, 3, 2)
    ds.set_epoch(3)
    held, views, ptrs, k = [], [], [], 0
    for batch in DataLoader(ds, batch_size=2, collate_fn=collate):  # (no enumerate: its
        ptrs.append(batch[1].data_ptr())                          # result tuple lingers)
        if k < 6:
            held.append(batch)  # 6 > max_buffers: four pooled, two one-off
        elif k == 7:
            views.append(batch[1][1, 2])  # only a view of targets survives
        del batch
        k += 1
    assert len(held) == 6
    for got, r in zip(held, ref[:6], strict=True):
        _equal(got, r)
    assert torch.equal(views[0], ref[7][1][1, 2])
    assert len(set(ptrs[8:])) == 1  # dropped at once: the same free buffer every time
    assert collate.pooled() == (4, 4)  # the held batches pin every pooled buffer
    del held
    assert collate.pooled() == (4, 0)  # (the view is in a one-off buffer)
    assert torch.equal(views[0], ref[7][1][1, 2])
    # a view of a pooled batch pins that buffer: the next batches go elsewhere
    view = collate(ds.__getitems__([2, 3]))[1][0, 1]
    assert collate.pooled() == (4, 1)
    for s in range(0, 24, 2):
        _equal(collate(ds.__getitems__([s, s + 1])), ref[s // 2])
    assert torch.equal(view, ref[1][1][0, 1])
    del view, views
    assert collate.pooled() == (4, 0)
    assert collate.release() == 4 and collate.pooled() == (0, 0)


def test_worker_batches_held_in_main_are_not_overwritten(index):
    """From workers, batches arrive as fds of the workers' pooled buffers; holding 6 batches
    from 2 workers with 2 pooled buffers each forces the one-off path too."""
    ds = MixtureDataset(RECIPE, index, length=18, seed=8)
    ref = _reference(ds, 1, 3)
    ds.set_epoch(1)
    got = list(DataLoader(ds, batch_size=3, num_workers=2,
                          collate_fn=PooledCollate(max_buffers=2)))
    for g, r in zip(got, ref, strict=True):
        _equal(g, r)
    # dropping them one by one while iterating again: values still right every batch
    ds.set_epoch(1)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate)
    for g, r in zip(loader, ref, strict=True):
        _equal(g, r)


def test_spawn_workers_ship_batches(index):
    ds = MixtureDataset(RECIPE, index, length=4, seed=1)
    loader = DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate,
                        multiprocessing_context="spawn")
    for g, r in zip(loader, _reference(ds, 0, 2), strict=True):
        _equal(g, r)


def test_stream_batches_pooled_and_held_safely(index):
    s = MixtureStream(RECIPE, index, batch_size=2, seed=4, batches=4, return_spec=True)
    ds = MixtureDataset(RECIPE, index, length=8, seed=4, return_spec=True)
    ref = _reference(ds, 2, 2)
    for w in (0, 2):
        s.set_epoch(2)
        got = list(DataLoader(s, batch_size=None, num_workers=w))
        for (mix, targets, specs), (rmix, rtargets, rspec) in zip(got, ref, strict=True):
            assert isinstance(specs, list) and [d["item"] for d in specs] == \
                rspec["item"].tolist()
            _equal(mix, rmix)
            _equal(targets, rtargets)


def test_getitems_is_a_plain_item_list_to_other_collates(index):
    ds = MixtureDataset(RECIPE, index, length=5, seed=6)
    items = ds.__getitems__([4, 0, 2])
    assert isinstance(items, PooledItems) and len(items) == 3
    for (mix, targets), i in zip(items, (4, 0, 2), strict=True):
        rmix, rtargets = ds[i]
        assert torch.equal(mix, rmix) and torch.equal(targets, rtargets)
    with pytest.raises(IndexError, match="item 5 out of range"):
        ds.__getitems__([0, 5])


def test_collate_errors_name_the_field_and_leave_no_buffer_claimed(index):
    pool = PooledCollate(max_buffers=2)
    a = (torch.zeros(2, 5), torch.zeros(3, 2, 5))
    with pytest.raises(CollateError, match=r"item\[1\] of item 1 is \(3, 2, 6\)") as e:
        pool([a, (torch.zeros(2, 5), torch.zeros(3, 2, 6))])
    assert isinstance(e.value, StemforgeError)
    with pytest.raises(CollateError, match=r"item\[0\] of item 1 is \(2, 5\) torch.float64"):
        pool([a, (torch.zeros(2, 5, dtype=torch.float64), torch.zeros(3, 2, 5))])
    with pytest.raises(CollateError, match="item of item 2 does not have the 2 fields"):
        pool([a, a, (torch.zeros(2, 5),)])
    with pytest.raises(CollateError, match=r"item of item 1 does not have the keys \['x'\]"):
        pool([{"x": torch.zeros(1)}, {"y": torch.zeros(1)}])
    assert pool.pooled() == (0, 0)  # checked before any buffer was claimed
    with pytest.raises(ValueError, match="max_buffers must be an integer >= 1"):
        PooledCollate(max_buffers=0)
    # a failure while items are rendered into a claimed buffer frees it again
    ds = MixtureDataset(RECIPE, index, length=4, seed=1, require_set_epoch=True)
    with pytest.raises(EpochError, match="set_epoch"):
        ds.__getitems__([0, 1])
    before = collate.pooled()[1]
    with pytest.raises(IndexError):
        ds.set_epoch(0)
        ds.__getitems__([0, 9])
    assert collate.pooled()[1] == before


def test_non_tensor_items_and_pool_reuse(index):
    pool = PooledCollate(max_buffers=1)
    items = [{"x": torch.full((3,), float(i)), "n": i, "s": f"s{i}"} for i in range(4)]
    out = pool(items)
    _equal(out, default_collate(items))
    ptr = out["x"].data_ptr()
    del out
    again = pool(items)
    assert again["x"].data_ptr() == ptr  # the freed buffer is reused
    assert pool([1, 2]).tolist() == [1, 2]  # nothing to pool: default_collate
    grad = [torch.ones(2, requires_grad=True), torch.zeros(2, requires_grad=True)]
    _equal(pool(grad), default_collate(grad))  # autograd tensors: torch's stack, as default
    assert pool(grad).requires_grad


def _drop(holder):
    holder.clear()
    gc.collect()


def test_forked_child_dropping_an_inherited_batch_frees_nothing(index):
    """The buffers are MAP_SHARED, so a forked child sees them: its copy of a batch being
    freed must not mark the parent's buffer free (the parent still holds the batch)."""
    import multiprocessing as mp

    gc.collect()
    ds = MixtureDataset(RECIPE, index, length=4, seed=9)
    ref = _reference(ds, 0, 2)[0]
    box = [collate(ds.__getitems__([0, 1]))]  # the only reference: the child drops its copy
    used = collate.pooled()[1]
    p = mp.get_context("fork").Process(target=_drop, args=(box,))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert collate.pooled()[1] == used >= 1
    for s in range(0, 4, 2):  # new batches must not land in the held one
        collate(ds.__getitems__([s, s + 1]))
    _equal(box[0], ref)
