"""museval JSON round trip and aggregation against museval's own reader / medians."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stemforge.metrics import MetricsError, bss_eval_v4
from stemforge.metrics import aggregate, museval_json


def _scores(seed):
    rng = np.random.default_rng(seed)
    refs = rng.standard_normal((2, 2, 3 * 44100))
    ests = 0.8 * refs + 0.2 * rng.standard_normal(refs.shape)
    ests[0, :, :44100] = 0
    return bss_eval_v4(refs, ests)


def test_json_round_trip_and_museval_reader(tmp_path):
    import museval
    sc = _scores(0)
    data = museval_json.track_dict({"vocals": _slice(sc, 0), "accompaniment": _slice(sc, 1)}, 1.0, 1.0)
    p = museval_json.save(tmp_path / "test" / "A - B.json", data)
    back = museval_json.load(p)
    assert back["targets"][0]["frames"][1]["metrics"]["SDR"] == pytest.approx(sc.sdr[0, 1], abs=1e-5)
    assert np.isnan(back["targets"][0]["frames"][0]["metrics"]["SIR"])
    df = museval.json2df(json.loads(p.read_text()), "A - B")  # museval reads our file
    ours = aggregate.frames_table("A - B", back)
    assert len(df) == len(ours)
    mv = df[(df.target == "accompaniment") & (df.metric == "SAR")].score.median()
    tr = aggregate.track_scores(ours)
    got = tr[(tr.target == "accompaniment") & (tr.metric == "SAR")].score.item()
    assert got == pytest.approx(mv)


def _slice(sc, j):
    return {"SDR": sc.sdr[j], "SIR": sc.sir[j], "SAR": sc.sar[j], "ISR": sc.isr[j]}


def test_median_of_medians_and_compare(tmp_path):
    for i in range(3):
        sc = _scores(i + 1)
        museval_json.save(tmp_path / "m" / f"t{i}.json", museval_json.track_dict({"vocals": _slice(sc, 0)}, 1.0, 1.0))
    frames = aggregate.load_dir(tmp_path / "m", method="m")
    per_track = [np.nanmedian(_scores(i + 1).sdr[0]) for i in range(3)]
    tgt = aggregate.target_scores(frames)
    assert tgt.loc[tgt.target == "vocals", "SDR"].item() == pytest.approx(np.median(per_track), abs=1e-4)
    table = aggregate.compare({"a": frames, "b": frames})
    assert list(table.columns) == ["a", "b"] and table.loc["vocals", "a"] == table.loc["vocals", "b"]


def test_bad_json(tmp_path):
    (tmp_path / "x.json").write_text('{"foo": 1}')
    with pytest.raises(MetricsError, match="x.json: expected an object with a 'targets' list"):
        museval_json.load(tmp_path / "x.json")
    with pytest.raises(MetricsError, match="no museval JSON files found"):
        aggregate.load_dir(tmp_path / "empty")
