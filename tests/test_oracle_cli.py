"""``stemforge oracle`` end to end: estimates in the layout ``stemforge evaluate`` reads, equal to
the library oracles on the indexed audio; IRM2 >= IRM1 >= mixture on the real excerpt through
both commands; errors leave nothing behind."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import MUSDB_STEMS, cache_files, make_musdb18hq, write_wav
from stemforge.cli import main
from stemforge.errors import AudioError, StemforgeError
from stemforge.index import Index
from stemforge.jobs.oracle import run as run_oracle
from stemforge.metrics.oracles import oracle

ACC = "accompaniment=drums,bass,other"


def _read(path):
    a, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return a.T


def test_oracle_then_evaluate_on_the_real_excerpt(musdb_excerpt, tmp_path, capsys):
    index = Index.build(musdb_excerpt)
    (track,) = index.tracks
    mix = index.read_mixture(track.id)
    sources = {s: index.read(track.id, s) for s in MUSDB_STEMS}
    sdr = {}
    for method in ("irm2", "irm1", "mix"):
        est = tmp_path / method
        assert main(["oracle", str(musdb_excerpt), "--method", method, "--out", str(est),
                     "--no-progress"]) == 0
        assert sorted(cache_files(est)) == sorted(f"{track.name}/{s}.wav" for s in MUSDB_STEMS)
        if method == "irm2":  # the files hold the library oracle on the real (mastered) mixture
            want = oracle("irm2", mix, sources)
            for s in MUSDB_STEMS:
                np.testing.assert_array_equal(_read(est / track.name / f"{s}.wav"), want[s])
        res = tmp_path / f"res-{method}"
        assert main(["evaluate", "--references", str(musdb_excerpt), "--estimates", str(est),
                     "--out", str(res), "--metrics", "bsseval", "--no-progress"]) == 0
        tgt = pd.read_csv(res / "summary_targets.csv").set_index("target")
        sdr[method] = tgt["SDR"]
    capsys.readouterr()
    for s in MUSDB_STEMS:
        assert sdr["irm2"][s] >= sdr["irm1"][s] >= sdr["mix"][s], (s, sdr)
    assert (sdr["irm2"] > 5).all() and (sdr["mix"] < 0).all()


def test_group_targets_and_stem_sum_mixture(tmp_path, capsys):
    root = make_musdb18hq(tmp_path / "hq", {"A - One": "test"}, seconds=1.5)
    out = tmp_path / "est"
    rc = main(["oracle", str(root), "--method", "irm1", "--targets", "vocals", "accompaniment",
               "--group", ACC, "--mixture", "sum", "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert "oracle irm1: 1 tracks, 2 files" in capsys.readouterr().out
    index = Index.build(root, groups={"accompaniment": ["drums", "bass", "other"]})
    t = index.tracks[0]
    src = {s: index.read(t.id, s) for s in MUSDB_STEMS}
    mix = np.sum(list(src.values()), axis=0, dtype=np.float64).astype(np.float32)
    want = oracle("irm1", mix, src)
    acc = (want["drums"].astype(np.float64) + want["bass"] + want["other"]).astype(np.float32)
    np.testing.assert_array_equal(_read(out / "A - One" / "accompaniment.wav"), acc)
    np.testing.assert_array_equal(_read(out / "A - One" / "vocals.wav"), want["vocals"])
    assert sorted(p.name for p in out.iterdir()) == ["A - One"]  # no staging folder left


def _fails(capsys, argv, match):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("stemforge oracle: error: "), err
    assert match in err[0], err[0]
    return err[0]


def test_bad_arguments_write_nothing(tmp_path, capsys):
    root = make_musdb18hq(tmp_path / "hq", {"A - One": "test"}, seconds=1.0)
    out = tmp_path / "est"
    _fails(capsys, ["oracle", str(root), "--method", "irm2", "--targets", "vocals", "piano",
                    "--out", str(out), "--no-progress"], "unknown target 'piano'")
    assert not out.exists()
    (tmp_path / "f").write_text("x")
    _fails(capsys, ["oracle", str(root), "--method", "irm2", "--out", str(tmp_path / "f"),
                    "--no-progress"], "exists and is not a folder")
    three = tmp_path / "three"
    for s in MUSDB_STEMS:
        write_wav(three / "test" / "T - X" / f"{s}.wav", 0.1 * np.ones((3, 4410), np.float32))
    _fails(capsys, ["oracle", str(three), "--method", "mwf", "--out", str(out), "--no-progress"],
           "--method mwf supports mono or stereo; track 'T - X' has 3 channels")
    assert not out.exists()


def test_failure_mid_run_leaves_nothing(tmp_path):
    """Track B's stem is corrupted after indexing: the run fails on B and removes what A wrote."""
    root = make_musdb18hq(tmp_path / "hq", {"A - One": "test", "B - Two": "test"}, seconds=1.0)
    index = Index.build(root)
    (root / "test" / "B - Two" / "bass.wav").write_bytes(b"RIFF not a wav file")
    out = tmp_path / "est"
    with pytest.raises(StemforgeError) as e:
        run_oracle(index, out, "irm2")
    assert isinstance(e.value, AudioError) and "bass.wav" in str(e.value)
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(AudioError):
        run_oracle(index, out, "irm2")
    assert cache_files(out) == ["keep.txt"]  # an existing folder keeps only what it had


def test_dask_scheduler_gives_the_same_files(tmp_path, capsys):
    """--scheduler ADDR (a running, here in-process, cluster): same audio, no staging left."""
    import distributed
    root = make_musdb18hq(tmp_path / "hq", {"A - One": "test", "B - Two": "test"}, seconds=1.0)
    args = ["oracle", str(root), "--method", "ibm", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        assert main([*args, "--out", str(tmp_path / "two"),
                     "--scheduler", cluster.scheduler_address]) == 0
    capsys.readouterr()
    files = cache_files(tmp_path / "one")
    assert files == cache_files(tmp_path / "two") and len(files) == 8
    for f in files:
        np.testing.assert_array_equal(_read(tmp_path / "one" / f), _read(tmp_path / "two" / f))
