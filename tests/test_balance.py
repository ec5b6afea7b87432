"""Class balance (issue #20, item 4; MSST's dataset type 7, activity-aware): ``balance:
{max_presence: 0.4}`` anchors every item on a target drawn uniformly among the rare ones and
places it where it is active; the torch sinks say which targets are active per item."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from conftest import tone, write_wav
from stemforge import Index
from stemforge.errors import RecipeError
from stemforge.mixing.activity import target_activity
from stemforge.mixing.mixer import Mixer

SR = 8000
TARGETS = ["vocals", "drums", "piano", "guitar"]
RECIPE = {"targets": TARGETS, "duration": 1.0, "sample_rate": SR,
          "modes": {"coherent": 0.5, "incoherent": 0.5},
          "stems": {"default": {"snr": ["uniform", -3, 3]}}}
N = 300


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """10 songs of 6 s: vocals and drums play throughout; piano plays in song 0 and in the last
    2 s of song 1 (present in 20 % of the songs), guitar in songs 2-4 (30 %); elsewhere they
    are digital silence, as a rare stem of MoisesDB is."""
    base = tmp_path_factory.mktemp("balance")
    for i in range(10):
        for j, s in enumerate(TARGETS):
            a = tone(90 * (j + 1) + 13 * i, 6.0, sr=SR, seed=10 * i + j, amp=0.2)
            if s == "piano" and i > 1 or s == "guitar" and i not in (2, 3, 4):
                a[:] = 0
            if s == "piano" and i == 1:
                a[:, :4 * SR] = 0
            write_wav(base / "ds" / f"song{i}" / f"{s}.wav", a, SR)
    return Index.open(base / "ds", layout="trackfolder", cache_dir=base / "cache")


def activity(mixer, index, n=N):
    specs = [mixer.spec(i) for i in range(n)]
    return specs, np.array([target_activity(s.sources, TARGETS, index) for s in specs])


def test_rare_targets_are_seen_as_often_as_the_balance_promises(index):
    """Unbalanced, piano is active in about 1 item in 7 and guitar in 1 in 4. Balanced
    (max_presence 0.4: both rare, vocals and drums not), every item is anchored on piano or
    guitar with equal probability (chi-square, 0.1 %) and its anchor is active, so each rare
    target is active in at least half of the items (binomial, 0.1 %)."""
    _, plain = activity(Mixer(RECIPE, index, seed=1), index)
    assert plain[:, 2].mean() < 0.3 and plain[:, 3].mean() < 0.45
    assert plain[:, :2].all()
    mixer = Mixer({**RECIPE, "balance": {"max_presence": 0.4}}, index, seed=1)
    specs, act = activity(mixer, index)
    anchors = [s.anchor for s in specs]
    counts = [anchors.count("piano"), anchors.count("guitar")]
    assert sum(counts) == N
    assert stats.chisquare(counts).pvalue > 0.001, counts
    for s, row in zip(specs, act, strict=True):
        assert row[TARGETS.index(s.anchor)] and not s.warnings
    for k in (2, 3):
        assert stats.binomtest(int(act[:, k].sum()), N, 0.5, alternative="less").pvalue > 0.001
    # a lower max_presence leaves guitar (30 %) out of the anchors: piano in every item
    specs, act = activity(Mixer({**RECIPE, "balance": {"max_presence": 0.25}}, index, seed=1),
                          index, 60)
    assert {s.anchor for s in specs} == {"piano"} and act[:, 2].all()


def test_presence_is_counted_per_track_and_a_balance_with_no_rare_target_warns(index):
    mixer = Mixer({**RECIPE, "balance": {"max_presence": 0.4}}, index, seed=0)
    _, rare, share = mixer.sampler._balance
    assert rare == {"": ["piano", "guitar"]}
    assert share[""] == {"vocals": 1.0, "drums": 1.0, "piano": 0.2, "guitar": 0.3}
    # song 1's piano plays 2 s: present for 1 s excerpts, not for 5 s ones at min_active 0.5
    long = Mixer({**RECIPE, "duration": 5.0, "balance": {"max_presence": 0.4,
                                                         "min_active": 0.5}}, index, seed=0)
    assert long.sampler._balance[2][""]["piano"] == 0.1
    with pytest.warns(Warning, match=r"balance: no target is rare in the tracks \(present in "
                      r"some but at most 0.1 of them; presence: vocals 100 %, drums 100 %, "
                      r"guitar 30 %\)"):
        Mixer({**RECIPE, "balance": {"max_presence": 0.1, "min_active": 0.5},
               "duration": 5.0, "targets": ["vocals", "drums", "guitar"],
               "exclude": ["piano"]}, index)


def test_torch_sinks_return_active_flags_identically_at_0_and_2_workers(index):
    import torch
    from torch.utils.data import DataLoader

    from stemforge.torch import MixtureDataset, MixtureStream, collate

    r = {**RECIPE, "balance": {"max_presence": 0.4}, "mixup": {"p": [0.3]}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = MixtureDataset(r, index, length=8, seed=3, active=True, return_spec=True)
        runs = []
        for workers in (0, 2):
            for fn in (None, collate):
                loader = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=fn)
                runs.append([b for b in loader])
    for batches in runs[1:]:
        for a, b in zip(runs[0], batches, strict=True):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            assert torch.equal(a[3], b[3]) and a[3].dtype == torch.bool
    first = runs[0][0]
    assert first[3].shape == (4, len(TARGETS))
    expect = [target_activity(ds.mixer.spec(i).sources, TARGETS, index) for i in range(4)]
    assert first[3].tolist() == expect
    assert len(ds[0]) == 4 and ds[0][3].shape == (len(TARGETS),)
    assert len(MixtureDataset(RECIPE, index, length=2)[0]) == 2   # opt-in: unchanged without
    stream = MixtureStream(r, index, batch_size=4, seed=3, active=True)
    mix, targets, active = next(iter(stream))
    assert torch.equal(active, first[3]) and torch.equal(mix, first[0])


def test_refusals_name_the_field(index):
    with pytest.raises(RecipeError, match="recipe field 'balance.max_presence': must be > 0"):
        Mixer({**RECIPE, "balance": {"max_presence": 0}}, index)
    with pytest.raises(RecipeError, match="recipe field 'balance.ratio': unknown field"):
        Mixer({**RECIPE, "balance": {"max_presence": 0.4, "ratio": 1}}, index)
    with pytest.raises(RecipeError, match="recipe field 'balance': cannot be combined"):
        Mixer({**RECIPE, "modes": {"incoherent": 1}, "balance": {"max_presence": 0.4},
               "stems": {"default": {"event_time": 0.2}}}, index)
    with pytest.raises(RecipeError, match="recipe field 'balance': needs each item"):
        Mixer({**RECIPE, "balance": {"max_presence": 0.4}, "datasets": {"a": 1, "b": 1},
               "dataset_mode": "across"}, {"a": index, "b": index})


def test_the_flags_say_which_rendered_targets_carry_sound(index):
    """On this data (tones or digital silence) the definition agrees with the audio: a target
    is active exactly when at least 10 % of its rendered 100 ms windows are above -60 dBFS
    RMS (the silent windows are exact zeros)."""
    mixer = Mixer({**RECIPE, "balance": {"max_presence": 0.4}}, index, seed=9)
    both = [0, 0]
    for m in mixer.mixtures(range(40)):
        flags = target_activity(m.spec.sources, TARGETS, index)
        for t, flag in zip(TARGETS, flags, strict=True):
            x = m.targets[t].astype(np.float64)
            w = x[:, : x.shape[1] // 800 * 800].reshape(2, -1, 800)
            rms_db = 10 * np.log10(np.maximum((w ** 2).mean(axis=(0, 2)), 1e-30))
            assert flag == ((rms_db > -60).mean() >= 0.1), (m.spec.item, t)
            both[flag] += 1
    assert min(both) > 10  # both kinds occur: the check is not vacuous
