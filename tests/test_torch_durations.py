"""A random excerpt length per batch (issue #20, item 2; MSST's ``chunk_size_augm``):
``MixtureStream(durations=[...])`` draws each batch's length from (seed, epoch, batch) alone."""
from __future__ import annotations

import warnings

import pytest

from conftest import make_musdb18hq
from stemforge import Index
from stemforge.errors import ArgumentError, RecipeError
from stemforge.mixing.mixer import Mixer
from stemforge.torch.seeding import batch_duration

SR = 8000
RECIPE = {"targets": ["vocals", "accompaniment"],
          "groups": {"accompaniment": ["drums", "bass", "other"]}, "duration": 1.0,
          "sample_rate": SR, "split": "train", "modes": {"coherent": 0.5, "incoherent": 0.5},
          "stems": {"default": {"snr": ["uniform", -3, 3]}}}
DURATIONS = [0.5, 0.75, 1.25]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    base = tmp_path_factory.mktemp("durations")
    make_musdb18hq(base / "ds", {f"S{k}": "train" for k in range(3)}, seconds=3.0, sr=SR)
    return Index.open(base / "ds", cache_dir=base / "cache")


def test_one_length_per_batch_identical_at_0_and_2_workers(index):
    import torch
    from torch.utils.data import DataLoader

    from stemforge.torch import MixtureStream

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stream = MixtureStream(RECIPE, index, batch_size=2, seed=7, batches=8,
                               durations=DURATIONS, return_spec=True, active=True)
        stream.set_epoch(1)
        runs = [[b for b in DataLoader(stream, batch_size=None, num_workers=w)]
                for w in (0, 2)]
    lengths = set()
    for b, (x, y) in enumerate(zip(*runs, strict=True)):
        d = batch_duration(DURATIONS, 7, 1, b)
        T = int(round(d * SR))
        assert x[0].shape == (2, 2, T) and x[1].shape == (2, 2, 2, T) and x[3].shape == (2, 2)
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and torch.equal(x[3], y[3])
        lengths.add(T)
        # the batch is items 2b, 2b+1 of the recipe at that duration
        m = Mixer({**RECIPE, "duration": d}, index, seed=7, warn=False).mixture(2 * b + 1, 1)
        assert m.mix.tobytes() == x[0][1].numpy().tobytes()
    assert len(lengths) > 1                                      # the lengths do vary
    assert [batch_duration(DURATIONS, 7, 1, b) for b in range(8)] != \
        [batch_duration(DURATIONS, 7, 2, b) for b in range(8)]  # and with the epoch


def test_bad_durations_are_refused(index):
    from stemforge.torch import MixtureStream

    with pytest.raises(ArgumentError, match="durations must be a non-empty list"):
        MixtureStream(RECIPE, index, batch_size=2, durations=[])
    with pytest.raises(ArgumentError, match="durations must be a non-empty list"):
        MixtureStream(RECIPE, index, batch_size=2, durations=[1.0, -2])
    with pytest.raises(RecipeError, match="recipe field 'duration': 9 s is longer"):
        MixtureStream(RECIPE, index, batch_size=2, durations=[1.0, 9.0])
