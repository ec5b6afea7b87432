"""``stemforge evaluate`` end to end (via ``stemforge.cli.main``): museval-compatible JSON that
museval's own schema and EvalStore accept, CSV summaries, boxplots, progress bar, Dask, and
every bad input refused with a one-line message, exit 2 and nothing written."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import MUSDB_STEMS, cache_files, make_musdb18hq, write_wav
from stemforge.cli import main
from stemforge.metrics import bss_eval_v4, mdx_sdr, pad_or_trim, si_sdr

SR = 44100
ACC = "accompaniment=drums,bass,other"
TRACKS = {"A - One": "test", "B - Two": "test"}


def _read(path):
    a, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == SR
    return a.T


def _refs(root, track, target):
    """Reference audio as the dataset holds it (a group = sum of its member stems)."""
    folder = root / "test" / track
    stems = ["drums", "bass", "other"] if target == "accompaniment" else [target]
    return sum(_read(folder / f"{s}.wav").astype(np.float64) for s in stems).astype(np.float32)


def _make_estimates(root, est, targets, seed=0, lengths=None):
    """Degraded copies of the references: leakage from the mixture, noise, a little filtering."""
    rng = np.random.default_rng(seed)
    for track in TRACKS:
        mix = sum(_refs(root, track, s) for s in MUSDB_STEMS)
        for t in targets:
            ref = _refs(root, track, t)
            e = 0.8 * ref + 0.1 * mix + 0.02 * rng.standard_normal(ref.shape).astype(np.float32)
            e[:, 1:] += 0.3 * e[:, :-1]
            n = (lengths or {}).get((track, t))
            if n is not None:
                e = e[:, :n] if n <= e.shape[1] else \
                    np.concatenate([e, 0.01 * np.ones((e.shape[0], n - e.shape[1]), np.float32)], 1)
            write_wav(est / track / f"{t}.wav", e.astype(np.float32))
    return est


@pytest.fixture
def data(tmp_path):
    root = make_musdb18hq(tmp_path / "hq", TRACKS, seconds=2.6)
    est = _make_estimates(root, tmp_path / "est", MUSDB_STEMS + ["accompaniment"])
    return root, est


def _run(capsys, *argv):
    rc = main(["evaluate", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_end_to_end_museval_compatible(data, tmp_path, capsys, monkeypatch):
    import museval

    monkeypatch.setenv("STEMFORGE_PROGRESS_EVERY", "0")  # progress lines off a terminal
    root, est = data
    res = tmp_path / "res"
    rc, out, err = _run(capsys, "--references", root, "--estimates", est, "--out", res,
                        "--group", ACC, "--plots")
    assert rc == 0, err
    assert "evaluate: 2/2 tracks (100%)" in err  # progress, also off a terminal
    assert sorted(cache_files(res)) == sorted(
        ["test/A - One.json", "test/B - Two.json", "summary_tracks.csv", "summary_targets.csv",
         "summary.csv", "methods.pandas", "stemforge-eval.json"]
        + [f"boxplot_{t}.png" for t in ["accompaniment", "bass", "drums", "other", "vocals"]])

    # museval's schema and its loader accept our files
    schema = museval.TrackStore("x").schema
    from jsonschema import validate

    for f in (res / "test").glob("*.json"):
        validate(json.loads(f.read_text()), schema)
    store = museval.EvalStore()
    store.add_eval_dir(res)
    mv = store.agg_frames_tracks_scores()  # museval's median over frames, then over tracks
    targets = pd.read_csv(res / "summary_targets.csv").set_index("target")
    assert set(targets.index) == {"vocals", "drums", "bass", "other", "accompaniment"}
    for (target, metric), value in mv.items():
        assert targets.loc[target, metric] == pytest.approx(value, abs=1e-4), (target, metric)
    assert (targets["tracks"] == 2).all()
    methods = museval.MethodStore()
    methods.add_eval_dir(res)  # the method-comparison loader reads the folder too
    agg = methods.agg_frames_tracks_scores()
    assert agg.loc[("res", "vocals", "SDR")] == pytest.approx(targets.loc["vocals", "SDR"], abs=1e-4)

    # frame values: the joint problems of museval's eval_mus_track (the four stems, reporting
    # drums/bass/other; then vocals/accompaniment, reporting both), checked against our metric
    # (itself checked against museval in test_metrics_bsseval.py)
    data_a = json.loads((res / "test" / "A - One.json").read_text())
    got = {t["name"]: t for t in data_a["targets"]}
    refs = {t: _refs(root, "A - One", t) for t in got}
    ests = {t: _read(est / "A - One" / f"{t}.wav") for t in got}
    for group, report in ((["bass", "drums", "other", "vocals"], 3), (["accompaniment", "vocals"], 2)):
        sc = bss_eval_v4([refs[t] for t in group], [ests[t] for t in group])
        for j, t in enumerate(group[:report]):
            frames = got[t]["frames"]
            assert len(frames) == 2 and frames[1]["time"] == 1.0 and frames[0]["duration"] == 1.0
            for m in ("SDR", "SIR", "SAR", "ISR"):
                np.testing.assert_allclose([f["metrics"][m] for f in frames], sc.metric(m)[j],
                                           atol=1e-5)
    whole = list(got)
    sisdr = si_sdr([refs[t] for t in whole], [ests[t] for t in whole])
    mdx = mdx_sdr([refs[t] for t in whole], [ests[t] for t in whole])
    for j, t in enumerate(whole):
        assert got[t]["track_metrics"]["SI-SDR"] == pytest.approx(sisdr[j], abs=1e-5)
        assert got[t]["track_metrics"]["MDX-SDR"] == pytest.approx(mdx[j], abs=1e-5)

    # CSV per track = median of that track's frames; boxplot PNGs are real images
    tracks = pd.read_csv(res / "summary_tracks.csv")
    assert len(tracks) == 10 and {"SI-SDR", "MDX-SDR"} <= set(tracks.columns)
    row = tracks[(tracks.track == "A - One") & (tracks.target == "vocals")].iloc[0]
    assert row["SDR"] == pytest.approx(np.median([f["metrics"]["SDR"] for f in got["vocals"]["frames"]]), abs=1e-4)
    import matplotlib.image as mpimg

    img = mpimg.imread(res / "boxplot_vocals.png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 200
    assert "vocals" in out and "results: 1 method(s) x 2 tracks" in out


def test_agrees_with_museval_frame_by_frame(tmp_path, capsys):
    """A 2-target track through the CLI vs ``museval.evaluate`` on the same audio (0.01 dB)."""
    import museval
    root = make_musdb18hq(tmp_path / "hq", {"A - One": "test"}, seconds=2.3)
    est = tmp_path / "est"
    rng = np.random.default_rng(4)
    refs, ests = [], []
    for t in ("bass", "vocals"):  # the JSON lists targets in this (sorted) order
        r = _refs(root, "A - One", t)
        e = (0.7 * r + 0.3 * _refs(root, "A - One", "drums")
             + 0.05 * rng.standard_normal(r.shape)).astype(np.float32)
        write_wav(est / "A - One" / f"{t}.wav", e)
        refs.append(r.T)
        ests.append(e.T)
    rc, _, err = _run(capsys, "--references", root, "--estimates", est, "--out", tmp_path / "r",
                      "--metrics", "bsseval", "--no-progress")
    assert rc == 0, err
    got = json.loads((tmp_path / "r" / "test" / "A - One.json").read_text())
    sdr, isr, sir, sar = museval.evaluate(np.stack(refs), np.stack(ests))
    for name, want in (("SDR", sdr), ("ISR", isr), ("SIR", sir), ("SAR", sar)):
        for j, t in enumerate(got["targets"]):
            have = np.array([f["metrics"][name] for f in t["frames"]], float)
            assert have.shape == want[j].shape
            np.testing.assert_allclose(have, want[j], atol=0.01)
    assert "track_metrics" not in got["targets"][0]  # --metrics bsseval only


def test_estimates_of_other_length_are_padded_or_trimmed(tmp_path, capsys):
    root = make_musdb18hq(tmp_path / "hq", TRACKS, seconds=2.2)
    n = int(2.2 * SR)
    lengths = {("A - One", "vocals"): n - 3000, ("B - Two", "bass"): n + 5000}
    est = _make_estimates(root, tmp_path / "est", ["vocals", "bass"], seed=1, lengths=lengths)
    rc, out, err = _run(capsys, "--references", root, "--estimates", est, "--out",
                        tmp_path / "r", "--no-progress")
    assert rc == 0, err
    assert f"A - One/vocals: {n - 3000} -> {n} frames" in out
    assert f"B - Two/bass: {n + 5000} -> {n} frames" in out
    for track in TRACKS:
        got = json.loads((tmp_path / "r" / "test" / f"{track}.json").read_text())
        refs = np.stack([_refs(root, track, t) for t in ("bass", "vocals")])
        raw = [_read(est / track / f"{t}.wav") for t in ("bass", "vocals")]
        ests = np.stack([pad_or_trim(refs[:1], r[None])[0] for r in raw])
        sc = bss_eval_v4(refs, ests)
        for j, t in enumerate(got["targets"]):
            assert t["name"] == ("bass", "vocals")[j]
            np.testing.assert_allclose([f["metrics"]["SAR"] for f in t["frames"]], sc.sar[j],
                                       atol=1e-5)


def test_dask_workers_give_the_same_results(data, tmp_path, capsys):
    import distributed  # noqa: F401  (a test dependency: fail, never skip)
    root, est = data
    args = ["--references", root, "--estimates", est, "--targets", "vocals", "drums",
            "--no-progress"]
    assert _run(capsys, *args, "--out", tmp_path / "one")[0] == 0
    rc, _, err = _run(capsys, *args, "--out", tmp_path / "two", "--workers", "2")
    assert rc == 0, err
    for f in ("test/A - One.json", "test/B - Two.json", "summary_targets.csv"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()


def test_existing_dask_scheduler(data, tmp_path, capsys):
    """--scheduler ADDR: tracks go to a running cluster (here an in-process one, cheap)."""
    import distributed
    root, est = data
    args = ["--references", root, "--estimates", est, "--targets", "vocals", "bass",
            "--no-progress"]
    assert _run(capsys, *args, "--out", tmp_path / "one")[0] == 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        rc, _, err = _run(capsys, *args, "--out", tmp_path / "two", "--scheduler",
                          cluster.scheduler_address)
    assert rc == 0, err
    for f in ("test/A - One.json", "test/B - Two.json", "summary_tracks.csv"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()


def _fails(capsys, root, est, res, *extra, match):
    rc, out, err = _run(capsys, "--references", root, "--estimates", est, "--out", res,
                        "--no-progress", *extra)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stemforge evaluate: error: "), err
    assert match in lines[0], lines[0]
    assert not res.exists(), cache_files(res)  # nothing partial written
    return lines[0]


def test_missing_target_file_or_track_folder(data, tmp_path, capsys):
    root, est = data
    res = tmp_path / "res"
    (est / "B - Two" / "bass.wav").unlink()
    msg = _fails(capsys, root, est, res, match="estimate file")
    assert "B - Two/bass.wav is missing" in msg and "target 'bass'" in msg
    _fails(capsys, root, est, res, "--targets", "vocals", "drums", "guitar",
           match="unknown target 'guitar'")
    for f in (est / "B - Two").iterdir():
        f.unlink()
    (est / "B - Two").rmdir()
    _fails(capsys, root, est, res, match="track 'B - Two': estimate folder")
    _fails(capsys, root, tmp_path / "nowhere", res, match="nowhere: not a folder")


def test_wrong_channel_count_and_rate(data, tmp_path, capsys):
    root, est = data
    res = tmp_path / "res"
    mono = _read(est / "B - Two" / "vocals.wav")[:1]
    write_wav(est / "B - Two" / "vocals.wav", mono)
    msg = _fails(capsys, root, est, res, match="has 1 channel(s), the reference 'vocals' has 2")
    assert "B - Two/vocals.wav" in msg
    write_wav(est / "B - Two" / "vocals.wav", np.zeros((2, 1000), np.float32), sr=22050)
    _fails(capsys, root, est, res, match="is 22050 Hz, the reference is 44100 Hz")


def test_all_silent_reference_fails_the_run_and_writes_nothing(tmp_path, capsys):
    root = make_musdb18hq(tmp_path / "hq", TRACKS, seconds=2.0)
    write_wav(root / "test" / "B - Two" / "bass.wav", np.zeros((2, 2 * SR), np.float32))
    est = _make_estimates(root, tmp_path / "est", ["vocals", "drums"])
    write_wav(est / "B - Two" / "bass.wav", 0.1 * np.ones((2, 2 * SR), np.float32))
    for t in TRACKS:  # track A scores fine; B fails while scored
        if t != "B - Two":
            write_wav(est / t / "bass.wav", _refs(root, t, "bass") + 0.01)
    res = tmp_path / "res"
    msg = _fails(capsys, root, est, res, match="track 'B - Two'")
    assert "reference bass is silent over the whole track" in msg


def test_bad_arguments(data, tmp_path, capsys):
    root, est = data
    res = tmp_path / "res"
    _fails(capsys, root, est, res, "--metrics", "sdr,bsseval", match="--metrics sdr,bsseval: unknown sdr")
    _fails(capsys, root, est, res, "--hop", "0", match="expected positive durations")
    (tmp_path / "afile").write_text("x")
    rc, _, err = _run(capsys, "--references", root, "--estimates", est, "--out",
                      tmp_path / "afile", "--no-progress")
    assert rc == 2 and "exists and is not a folder" in err
    assert (tmp_path / "afile").read_text() == "x"


def test_metric_subset_and_whole_track_only(data, tmp_path, capsys):
    root, est = data
    rc, _, err = _run(capsys, "--references", root, "--estimates", est, "--out", tmp_path / "r",
                      "--metrics", "sisdr,mdx", "--targets", "vocals", "--no-progress")
    assert rc == 0, err
    tr = pd.read_csv(tmp_path / "r" / "summary_tracks.csv")
    assert list(tr.columns) == ["split", "track", "target", "SI-SDR", "MDX-SDR"]
    got = json.loads((tmp_path / "r" / "test" / "A - One.json").read_text())
    assert got["targets"][0]["frames"] == []  # no BSS Eval frames requested
    ref = _refs(data[0], "A - One", "vocals")
    e = _read(est / "A - One" / "vocals.wav")
    got_sisdr = tr.loc[tr.track == "A - One", "SI-SDR"].item()
    assert got_sisdr == pytest.approx(si_sdr([ref], [e])[0], abs=5e-6)  # the JSON's 5 decimals
    assert not math.isnan(tr["MDX-SDR"].iloc[1])


def test_several_methods_imports_and_one_summary(data, tmp_path, capsys):
    """Two estimate folders and a museval JSON folder written by museval itself, in one run:
    a tree per method, summary.csv (method x target x metric, aggregation named) equal to
    museval's MethodStore on the same JSONs, and a MethodStore pickle of every frame."""
    import museval

    root, est = data
    mix = tmp_path / "mix"  # the do-nothing baseline: the mixture as every estimate
    for track in TRACKS:
        m = sum(_refs(root, track, s) for s in MUSDB_STEMS)
        for t in ("vocals", "drums"):
            write_wav(mix / track / f"{t}.wav", m)
    umx = tmp_path / "umx" / "test"  # another tool's results, one track more than evaluated
    umx.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for track in [*TRACKS, "Z - Not evaluated"]:
        store = museval.TrackStore(track, win=1, hop=1)
        for t in ("vocals", "drums"):
            store.add_target(t, {m: list(rng.normal(4, 3, 3)) for m in ("SDR", "SIR", "SAR",
                                                                         "ISR")})
        (umx / f"{track}.json").write_text(store.json)
    res = tmp_path / "res"
    rc, out, err = _run(capsys, "--index", root, "--estimates", f"deg={est}", f"mix={mix}",
                        "--import", f"umx={umx.parent}", "--targets", "vocals", "drums",
                        "--out", res, "--no-progress")
    assert rc == 0, err
    assert "results: 3 method(s) x 2 tracks" in out and "MDX-SDR: whole track (SDX uSDR), " \
        "mean over tracks" in out
    files = cache_files(res)
    assert {"summary.csv", "methods.pandas", "stemforge-eval.json", "deg/test/A - One.json",
            "mix/summary_targets.csv", "umx/test/B - Two.json"} <= set(files)
    assert not any("Not evaluated" in f or ".partial" in f for f in files)
    summary = pd.read_csv(res / "summary.csv")
    assert list(dict.fromkeys(summary["method"])) == ["deg", "mix", "umx"]
    labels = dict(zip(summary["metric"], summary["aggregation"]))
    assert labels == {**{m: "median over frames, then median over tracks"
                         for m in ("SDR", "SIR", "SAR", "ISR")},
                      "SI-SDR": "whole track, median over tracks",
                      "MDX-SDR": "whole track (SDX uSDR), mean over tracks",
                      "cSDR": "median over 1 s chunks, mean over tracks"}
    score = summary.set_index(["method", "target", "metric"])["score"]
    store = museval.MethodStore()
    for m in ("deg", "mix", "umx"):
        store.add_eval_dir(res / m)
    agg = store.agg_frames_tracks_scores()
    assert len(agg) == 3 * 2 * 4
    for key, value in agg.items():
        assert score[key] == pytest.approx(value, abs=1e-6), key
    pickled = museval.MethodStore()
    pickled.load(res / "methods.pandas")
    pd.testing.assert_series_equal(pickled.agg_frames_tracks_scores(), agg)
    for m in ("deg", "mix"):  # whole-track metrics: the aggregation each field uses
        jsons = [json.loads((res / m / "test" / f"{t}.json").read_text()) for t in TRACKS]
        for target in ("vocals", "drums"):
            vals = {k: [next(x for x in j["targets"] if x["name"] == target)["track_metrics"][k]
                        for j in jsons] for k in ("SI-SDR", "MDX-SDR", "cSDR")}
            assert score[(m, target, "SI-SDR")] == pytest.approx(np.median(vals["SI-SDR"]))
            assert score[(m, target, "MDX-SDR")] == pytest.approx(np.mean(vals["MDX-SDR"]))
            assert score[(m, target, "cSDR")] == pytest.approx(np.mean(vals["cSDR"]))
            assert score[("deg", target, "SDR")] > score[("mix", target, "SDR")]
    assert not ((summary.method == "umx") & (summary.metric == "SI-SDR")).any()


def test_several_methods_refusals_change_nothing(data, tmp_path, capsys):
    root, est = data
    res = tmp_path / "res"
    rc, _, err = _run(capsys, "--index", root, "--estimates", f"a={est}", "--targets", "vocals",
                      "--metrics", "mdx", "--out", res, "--no-progress")
    assert rc == 0, err
    before = {f: (res / f).read_bytes() for f in cache_files(res)}

    def refused(*argv, match):
        rc, _, err = _run(capsys, "--index", root, *argv, "--out", res, "--no-progress")
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and match in lines[0], err
        assert {f: (res / f).read_bytes() for f in cache_files(res)} == before

    refused("--estimates", f"a={est}", f"b={tmp_path / 'nowhere'}", match="nowhere: not a folder")
    refused("--estimates", f"a={est}", f"a={est}", match="method name 'a' is given twice")
    refused("--estimates", f"a={est}", "--import", f"a={est}",
            match="'a' is given to --estimates and --import")
    (tmp_path / "j" / "test").mkdir(parents=True)
    (tmp_path / "j" / "test" / "A - One.json").write_text('{"targets": []}')
    refused("--estimates", f"a={est}", "--import", f"j={tmp_path / 'j'}",
            match="no results for 1 of the 2 evaluated tracks (e.g. 'B - Two')")
    refused(match="nothing to evaluate")


def test_threads_per_track_give_the_same_scores():
    """In-process evaluate gives BSS Eval the free cores (``EvalTask.threads``): the scores of a
    track (every metric, as written to its JSON) must not depend on the thread count."""
    from stemforge.jobs.evaluate import score_track

    rng = np.random.default_rng(3)
    refs = {t: (0.1 * rng.standard_normal((2, 3 * 8000))).astype(np.float32)
            for t in ("vocals", "drums", "bass")}
    ests = {t: (r + 0.05 * rng.standard_normal(r.shape)).astype(np.float32)
            for t, r in refs.items()}
    sets = [list(refs)]
    metrics = ("bsseval", "sisdr", "mdx", "csdr")
    one = score_track(refs, ests, sets, metrics, 8000, threads=1)
    two = score_track(refs, ests, sets, metrics, 8000, threads=2)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    assert len(one["targets"]) == 3 and one["targets"][0]["frames"]


def test_scoring_imports_neither_scipy_nor_matplotlib(data, tmp_path):
    """A command's fixed cost: scipy.signal (~0.5 s to import; only the oracles use it),
    scipy.fft (~0.3 s; NumPy's transforms are the same pocketfft) and matplotlib (boxplots on
    request) stay out of a whole evaluate run. (numba itself imports scipy.linalg.)"""
    import subprocess
    import sys

    root, est = data
    code = ("import sys; from stemforge.cli import main; "
            f"rc = main(['evaluate', '--index', {str(root)!r}, '--estimates', {str(est)!r}, "
            f"'--out', {str(tmp_path / 'res')!r}, '--no-progress']); "
            "print(rc, sorted(m for m in ('scipy.signal', 'scipy.fft', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def test_fast_fft_length_is_scipys():
    import scipy.fft

    from stemforge.metrics.toeplitz import fast_len

    ns = list(range(1, 5000)) + [44611, 45001, 88200 + 511, 1 << 20, (1 << 20) + 1, 3 ** 12 + 1]
    assert [fast_len(n) for n in ns] == [scipy.fft.next_fast_len(n, real=True) for n in ns]


def test_tracks_scored_side_by_side_fail_in_track_order(tmp_path, capsys):
    """In-process evaluate scores tracks on the free cores' threads; when several fail, the
    error is the first track's in order (as a plain loop would raise), and nothing is written."""
    root = make_musdb18hq(tmp_path / "hq", TRACKS, seconds=2.0)
    for t in TRACKS:
        write_wav(root / "test" / t / "bass.wav", np.zeros((2, 2 * SR), np.float32))
    est = _make_estimates(root, tmp_path / "est", ["vocals", "drums"])
    for t in TRACKS:
        write_wav(est / t / "bass.wav", 0.1 * np.ones((2, 2 * SR), np.float32))
    for k in range(3):
        msg = _fails(capsys, root, est, tmp_path / f"res{k}", match="track 'A - One'")
        assert "reference bass is silent over the whole track" in msg


def test_meanwhile_runs_in_this_thread_while_items_run_on_the_pool():
    """``run_task(meanwhile=...)``: the caller's thread prepares (kernels, pandas) while the
    items run on pool threads — a single item too — and the results and the first failure are
    still those of item order."""
    import threading
    import time

    from stemforge.jobs.evaluate import run_task

    main_thread = threading.current_thread()
    seen = []

    def fn(i, task):
        seen.append(("item", i, threading.current_thread() is main_thread))
        time.sleep(0.05)
        if i in task:
            raise ValueError(f"item {i}")
        return i

    def meanwhile():
        seen.append(("meanwhile", threading.current_thread() is main_thread))

    for n, threads in ((1, 1), (3, 2)):
        seen.clear()
        assert run_task(fn, set(), n, threads=threads, meanwhile=meanwhile) == list(range(n))
        assert [s for s in seen if s[0] == "meanwhile"] == [("meanwhile", True)]
        assert all(not s[2] for s in seen if s[0] == "item")
    with pytest.raises(ValueError, match="item 1"):
        run_task(fn, {1, 2}, 3, threads=2, meanwhile=meanwhile)


def test_loaded_kernels_are_the_ones_scoring_calls():
    """``load_kernels(nsrc, channels)`` (run by evaluate's main thread while the first tracks
    are read) loads exactly what a real track's scoring then calls: afterwards, scoring a
    track of that shape adds no kernel signature (nothing left to load on the workers). In a
    fresh process (the kernel folder is warm: loads, not compiles). numba's kernels: with an
    ahead-of-time build there is nothing to load (tests/test_aot.py)."""
    import subprocess
    import sys

    code = """
import numpy as np
from stemforge.metrics import _kernels as K
from stemforge.metrics.bsseval import load_kernels
from stemforge.jobs.evaluate import score_track
names = ("cross_spectra", "projection_energies", "levinson", "levinson_t", "frame_energies",
         "dot_sums")
for nsrc, ch in ((4, 2), (2, 1)):
    load_kernels(nsrc, ch)
    before = {n: len(getattr(K, n).signatures) for n in names}
    rng = np.random.default_rng(0)
    refs = {f"s{i}": (0.1 * rng.standard_normal((ch, 3 * 44100))).astype(np.float32)
            for i in range(nsrc)}
    ests = {t: r + np.float32(0.05) * refs[f"s{(i + 1) % nsrc}"]
            for i, (t, r) in enumerate(refs.items())}
    score_track(refs, ests, [list(refs)], ("bsseval", "sisdr", "mdx", "csdr"), 44100)
    after = {n: len(getattr(K, n).signatures) for n in names}
    print(nsrc, ch, sorted(n for n in names if before[n]), before == after)
"""
    env = {**os.environ, "STEMFORGE_AOT": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout.splitlines()
    assert out == ["4 2 ['cross_spectra', 'dot_sums', 'frame_energies', 'levinson', "
                   "'levinson_t', 'projection_energies'] True",
                   "2 1 ['cross_spectra', 'dot_sums', 'frame_energies', 'levinson', "
                   "'levinson_t', 'projection_energies'] True"]


def test_scoring_needs_no_pandas():
    """Scoring a track imports neither pandas nor the tables' module (evaluate imports them in
    its main thread while the tracks are scored), nor scipy.linalg's dense solvers up front."""
    import subprocess
    import sys

    code = """
import sys
import numpy as np
from stemforge.jobs.evaluate import score_track
rng = np.random.default_rng(0)
refs = {t: (0.1 * rng.standard_normal((2, 3 * 8000))).astype(np.float32) for t in "ab"}
ests = {t: r + np.float32(0.1) for t, r in refs.items()}
before = sorted(m for m in ("pandas", "stemforge.metrics.results", "stemforge.metrics.aggregate",
                            "numba") if m in sys.modules)
score_track(refs, ests, [list(refs)], ("bsseval", "sisdr", "mdx", "csdr"), 8000)
print(before, sorted(m for m in ("pandas", "stemforge.metrics.results") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[] []"


def test_evaluate_runs_blas_single_threaded_and_restores_the_environment(monkeypatch):
    """OpenBLAS's own threads would only spin beside evaluate's track threads: the command sets
    ``OPENBLAS_NUM_THREADS=1`` for its run unless the user set it, raises the collector's first
    threshold while it runs, and restores both after."""
    import gc
    import os

    from stemforge.commands.evaluate import lean_runtime

    before = gc.get_threshold()
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with lean_runtime():
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
        assert gc.get_threshold()[0] == 50_000
    assert "OPENBLAS_NUM_THREADS" not in os.environ and gc.get_threshold() == before
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    with pytest.raises(RuntimeError):
        with lean_runtime():
            assert os.environ["OPENBLAS_NUM_THREADS"] == "4"
            raise RuntimeError
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4" and gc.get_threshold() == before
