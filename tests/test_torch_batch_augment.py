"""Batched augmentation: item k of each batched op equals the single-item op (our per-item
code and the numpy augmentation steps) given the same params; seeding per (seed, epoch, batch);
mix == sum(targets) afterwards; bad input."""
from __future__ import annotations

import numpy as np
import pytest

import torch

from stemforge.augment import base as steps  # noqa: E402
from stemforge.torch import batch_augment as ba  # noqa: E402
from stemforge.torch.batch_augment import (AugmentError, BatchAugment, ChannelSwap, Gain,  # noqa: E402
                                           Polarity, Remix, Shift)

B, S, C, T = 6, 3, 2, 400
OPS = [Gain(0.25, 1.25), Polarity(0.5), ChannelSwap(0.5), Shift(37), Shift(20, same=True),
       Remix(4), Remix(2, p=0.5)]


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, S, C, T, generator=g)


@pytest.mark.parametrize("op", OPS, ids=repr)
def test_item_k_equals_single_item_op(op):
    x = _batch()
    params = op.draw(np.random.default_rng(7), tuple(x.shape))
    y = op.apply(x, params)
    assert y.shape == op.out_shape(tuple(x.shape))
    for k in range(B):
        assert torch.equal(y[k], op.apply_item(x[k], op.item_params(params, k), x))


def test_batched_ops_match_numpy_augmentation_steps():
    """The same operation as the per-stem numpy steps of stemforge.augment, item by item."""
    x = _batch(1)
    rng = np.random.default_rng(3)
    sr = 8000
    checks = [
        (Gain(), lambda a, p: steps.get("gain").apply(a, sr, {"db": 20 * np.log10(float(p["scale"]))}), 1e-6),
        (Polarity(), lambda a, p: steps.get("polarity").apply(a, sr, {}) if p["sign"] < 0 else a, 0),
        (ChannelSwap(), lambda a, p: steps.get("channel_swap").apply(a, sr, {}) if p["swap"] else a, 0),
        (Shift(50), lambda a, p: steps.get("time_shift").apply(
            a, sr, {"frames": int(p["offset"]), "max_frames": 50}, T - 50), 0),
    ]
    for op, single, tol in checks:
        params = op.draw(rng, tuple(x.shape))
        y = op.apply(x, params)
        for k in range(B):
            for s in range(S):
                want = single(x[k, s].numpy(), {n: v[k, s] for n, v in params.items()})
                np.testing.assert_allclose(y[k, s].numpy(), want, rtol=tol, atol=tol,
                                           err_msg=f"{op!r} item {k} source {s}")


def test_params_are_random_but_reasonable():
    rng = np.random.default_rng(0)
    p = Gain(0.5, 0.75).draw(rng, (64, 4, 2, 10))["scale"]
    assert p.min() >= 0.5 and p.max() <= 0.75 and p.std() > 0.02
    sign = Polarity(0.5).draw(rng, (64, 4, 2, 10))["sign"]
    assert set(sign.unique().tolist()) == {-1.0, 1.0}
    assert Polarity(0.0).draw(rng, (8, 4, 2, 10))["sign"].eq(1).all()
    off = Shift(5).draw(rng, (64, 4, 2, 10))["offset"]
    assert off.min() == 0 and off.max() == 5
    assert (Shift(5, same=True).draw(rng, (8, 4, 2, 10))["offset"].diff(dim=1) == 0).all()
    idx = Remix(4).draw(rng, (10, 3, 2, 10))["index"]
    for g0, n in ((0, 4), (4, 4), (8, 2)):  # each source permuted within its group
        for s in range(3):
            assert sorted(idx[g0:g0 + n, s].tolist()) == list(range(g0, g0 + n))
    assert not (idx == torch.arange(10)[:, None]).all()
    assert (Remix(4, p=0.0).draw(rng, (8, 3, 2, 10))["index"] == torch.arange(8)[:, None]).all()


def test_batch_augment_seeding_and_mix_invariant():
    x = _batch(2)
    aug = BatchAugment.demucs(seed=5, sample_rate=1000, shift_seconds=0.05)
    mix, y = aug(x, epoch=0, batch=3)
    assert tuple(y.shape) == (B, S, C, T - 50) and tuple(mix.shape) == (B, C, T - 50)
    torch.testing.assert_close(mix, y.sum(1), rtol=0, atol=0)
    mix2, y2 = BatchAugment.demucs(seed=5, sample_rate=1000, shift_seconds=0.05)(x, 0, 3)
    assert torch.equal(y, y2)  # same (seed, epoch, batch): same result, any instance
    for other in ((1, 3), (0, 4)):
        assert not torch.equal(aug(x, *other)[1], y)
    assert not torch.equal(BatchAugment.demucs(seed=6, sample_rate=1000,
                                               shift_seconds=0.05)(x, 0, 3)[1], y)
    # the params are plain data: recorded once, applied again, same bytes
    params = aug.draw(0, 3, tuple(x.shape))
    assert torch.equal(aug.apply(x, params)[1], y)


def test_batch_rng_domain_differs_from_item_rng():
    from stemforge.mixing.sample import item_rng
    from stemforge.torch.seeding import batch_rng

    assert batch_rng(1, 2, 3).random() != item_rng(1, 2, 3).random()
    assert batch_rng(1, 2, 3).random() == batch_rng(1, 2, 3).random()


def test_bad_input_errors():
    with pytest.raises(AugmentError, match=r"Gain: expected targets as a \(batch, sources, "
                                           r"channels, frames\) tensor, got shape \(2, 400\)"):
        Gain().apply(torch.zeros(2, 400), {"scale": torch.ones(1, 1)})
    with pytest.raises(AugmentError, match="ChannelSwap: needs at least 2 channels, got 1"):
        ChannelSwap().draw(np.random.default_rng(0), (2, 2, 1, 10))
    with pytest.raises(AugmentError, match="Shift: 10 frames cannot be shifted by up to 10"):
        Shift(10).draw(np.random.default_rng(0), (2, 2, 2, 10))
    with pytest.raises(AugmentError, match=r"p must be a probability in \[0, 1\], got 2"):
        Polarity(2)
    with pytest.raises(AugmentError, match="need 0 <= low <= high"):
        Gain(1.0, 0.5)
    with pytest.raises(AugmentError, match="group_size must be an integer >= 1, got 0"):
        Remix(0)
    with pytest.raises(AugmentError, match=r"Remix: params for a \(4, 3\) batch given a \(6, 3\)"):
        Remix().apply(_batch(), Remix().draw(np.random.default_rng(0), (4, 3, 2, 10)))
    with pytest.raises(AugmentError, match="BatchAugment: 1 param sets for 2 ops"):
        BatchAugment([Gain(), Polarity()]).apply(_batch(), [{}])
    from stemforge.torch.seeding import EpochError
    with pytest.raises(EpochError, match="epoch must be an integer >= 0, got -1"):
        BatchAugment([Gain()]).draw(-1, 0, (B, S, C, T))
    assert ba.BatchOp.item_params({"a": torch.arange(6)}, 2)["a"] == 2
