"""The augmentation study (stemforge.train.experiment / results) on a tiny four-stem index whose
stems are not named like MUSDB's: the --quick pipeline end to end, resume, refusals, recipes.

It checks that the pipeline runs and writes well-formed results, not which recipe wins.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import write_wav
from stemforge import Index
from stemforge.cli import main
from stemforge.errors import StemforgeError
from stemforge.mixing.recipe import Recipe
from stemforge.train import synth
from stemforge.train.experiment import (ABLATION, QUICK, ROWS, Protocol, Setup,
                                        condition_recipe, plan_jobs, resolve_setup)
from stemforge.train.results import ORACLES, paired_difference

SR = 8000
NAMES = {"drums": "kick", "bass": "cello", "other": "piano", "vocals": "flute"}
TARGETS = ["kick", "cello", "piano", "flute"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for the in-process runs (--jobs 1), as the study's workers use."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Seven 5 s songs, trackfolder layout (no splits), stems kick/cello/piano/flute."""
    base = tmp_path_factory.mktemp("study")
    root = base / "songs"
    for k in range(7):
        song = synth.render_song(np.random.default_rng(k), 5.0, SR)
        for stem, audio in song.items():
            write_wav(root / f"Song {k}" / f"{NAMES[stem]}.wav", audio, SR)
    return base, root


def argv(base, root, out, *extra):
    """--quick with fewer steps and a shorter evaluation still (the suite's time budget)."""
    return ["experiment", "augmentation", "--index", str(root), "--targets", *TARGETS, "--quick",
            "--steps", "8", "--valid-every", "4", "--eval-seconds", "4", "--out", str(base / out),
            "--no-progress", "--cache", str(base / "cache"), *extra]


def test_quick_study_end_to_end_on_any_four_stem_index(data, capsys):
    base, root = data
    assert main(argv(base, root, "q", "--jobs", "2")) == 0  # two worker processes
    out = base / "q"
    log = capsys.readouterr().out
    assert "9 rows x 1 seeds = 9 runs (0 done); train 3, valid 2, test 2 songs" in log
    proto = json.loads((out / "protocol.json").read_text())
    assert sorted(proto["splits"].values()) == ["test"] * 2 + ["train"] * 3 + ["valid"] * 2
    assert proto["targets"] == TARGETS and proto["protocol"]["seeds"] == [0]

    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["row"]) == list(ROWS) + list(ORACLES)
    for _, r in summary.iterrows():
        assert math.isfinite(r["test_mean"]) and math.isfinite(r["valid_mean"])
        assert r["test_tracks"] == 2 and r["valid_tracks"] == 2
    s = summary.set_index("row")
    assert s.loc["oracle IRM2", "test_mean"] > s.loc["plain", "test_mean"] + 3
    assert math.isnan(s.loc["plain", "test_delta"])
    for row in ROWS[1:]:  # paired difference against plain, with an interval around it
        lo, m, hi = s.loc[row, ["test_delta_lo", "test_delta", "test_delta_hi"]]
        assert lo <= m <= hi
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["split"]) == {"valid", "test"} and set(scores["target"]) == set(TARGETS)
    assert len(scores) == (len(ROWS) + len(ORACLES)) * 4 * len(TARGETS)
    md = (out / "summary.md").read_text()
    assert "| 4 + channel swap / polarity |" in md and "| oracle IRM1 |" in md
    for png in ("curves.png", "deltas.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == len(ROWS)
    for run in runs:
        for f in ("best.pt", "checkpoint.pt", "history.csv", "scores.csv", "done.json"):
            assert (run / "seed0" / f).is_file()

    before = (out / "summary.csv").read_bytes()
    assert main(argv(base, root, "q", "--jobs", "1")) == 0  # resumes: nothing left to train
    assert "(9 done)" in capsys.readouterr().out
    assert (out / "summary.csv").read_bytes() == before

    assert main(argv(base, root, "q", "--train-songs", "2")) == 2  # another protocol
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another protocol" in err[0] and "Traceback" not in err[0]


def test_in_process_job_and_default_targets(data, capsys):
    base, root = data
    out = base / "one"
    cmd = ["experiment", "augmentation", "--index", str(root), "--quick", "--rows", "plain",
           "--seeds", "3", "--steps", "2", "--valid-every", "2", "--eval-seconds", "4", "--jobs",
           "1", "--out", str(out), "--no-progress", "--cache", str(base / "cache")]
    assert main(cmd) == 0
    proto = json.loads((out / "protocol.json").read_text())
    assert sorted(proto["targets"]) == sorted(TARGETS)  # default: every stem of the index
    assert (next((out / "runs").iterdir()) / "seed3" / "done.json").is_file()


def test_setup_refusals_and_warnings(data, capsys):
    base, root = data
    index = Index.build(root, cache_dir=base / "cache", workers=1)
    with pytest.raises(StemforgeError, match="single target"):
        resolve_setup(index, QUICK, ["piano"])
    with pytest.raises(StemforgeError, match="vocals not in the index"):
        resolve_setup(index, QUICK, ["vocals", "piano"])
    setup = resolve_setup(index, QUICK, ["kick", "piano", "flute"])
    assert len(setup.warnings) == 1 and "stems cello are not in the targets" in setup.warnings[0]
    with pytest.raises(StemforgeError, match="protocol needs 15"):
        resolve_setup(index, Protocol(train_songs=8, valid_songs=6), None)
    out = base / "refused"
    assert main(["experiment", "augmentation", "--index", str(root), "--targets", "flute",
                 "--quick", "--out", str(out), "--no-progress", "--cache",
                 str(base / "cache")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "single target (flute)" in err[0]
    assert not out.exists()
    assert main(argv(base, root, "refused", "--valid-songs", "0")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--valid-songs: expected an integer >= 1, got 0" in err[0]
    from stemforge.jobs.generate import job_lock

    out.mkdir()
    with job_lock(out):  # a study already running in this folder
        assert main(argv(base, root, "refused")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another stemforge job is writing" in err[0]
    assert sorted(p.name for p in out.iterdir()) == [".stemforge.lock"]


@pytest.mark.parametrize("sr,channels,codec", [(16000, 2, "aac"), (44100, 1, "mp3")])
def test_ablation_rows_add_one_ingredient_each(sr, channels, codec):
    steps = []
    for row in ABLATION:
        r = condition_recipe(row, TARGETS, sr, channels, 1.0)
        names = [e.step.name for e in r.augment.entries]
        assert names[: len(steps)] == steps  # every earlier ingredient is kept
        steps = names
        assert r.targets == TARGETS and r.sample_rate == sr and r.channels == channels
    assert steps[-1] == codec and ("channel_swap" in steps) == (channels == 2)
    remix = condition_recipe("remix", TARGETS, sr, channels, 1.0)
    assert remix.modes == {"coherent": 0.5, "incoherent": 0.5}
    gains = condition_recipe("gains", TARGETS, sr, channels, 1.0)
    assert gains.raw["stems"]["default"]["gain_db"] == ["uniform", -6, 6]
    assert isinstance(condition_recipe("recommended", TARGETS, sr, channels, 1.0), Recipe)


def test_rows_with_the_same_recipe_but_its_name_share_their_runs(tmp_path, monkeypatch):
    """A comparison recipe equal to an ablation row but for its name (here: a recommended
    recipe that is the remix row) trains once; a real difference makes its own runs."""
    import yaml

    from stemforge.train import experiment

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    raw = {**experiment.ablation_recipe("remix", 2, 16000), "name": "mine"}
    (recipes / experiment.RECIPE_FILES["recommended"]).write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(experiment, "RECIPES_DIR", recipes)
    setup = Setup({"a": "train", "b": "valid", "c": "test"}, TARGETS, 16000, 2)
    jobs, alias = plan_jobs(tmp_path / "study", setup, Protocol(seeds=(0, 1)),
                            ["plain", "remix", "recommended", "gains"])
    assert alias["recommended"] == alias["remix"] != alias["plain"]
    assert sorted({j.row for j in jobs}) == ["gains", "plain", "remix"]
    assert len(jobs) == 6 and len({j.run_dir for j in jobs}) == 6
    # seed-major, the costliest rows of a seed first (the study ends on short jobs)
    jobs, _ = plan_jobs(tmp_path / "study2", setup, Protocol(seeds=(0, 1)),
                        ["plain", "pitch", "swap", "codec"])
    assert [(j.seed, j.row) for j in jobs] == [(s, r) for s in (0, 1)
                                              for r in ("codec", "pitch", "swap", "plain")]


def test_paired_difference_interval():
    tracks = pd.DataFrame({"split": "test", "seed": [0, 0, 0, 1, 1, 1] * 2,
                           "method": ["plain"] * 6 + ["x"] * 6, "track": list("abcabc") * 2,
                           "SDR": [1, 2, 3, 1, 2, 3, 2, 3, 5, 2, 3, 3]})
    m, lo, hi, n = paired_difference(tracks, "test", "x")
    d = np.array([1.0, 1.0, 1.0])  # seeds averaged first: a 1, b 1, c (2+0)/2
    assert n == 3 and m == pytest.approx(d.mean()) and lo == pytest.approx(1.0) == hi


def test_the_default_study_is_the_ablation_and_quick_checks_every_row(data, monkeypatch,
                                                                      tmp_path):
    """Without --rows the CLI runs the seven ablation rows (the 2 h budget); --quick runs all
    nine; --rows is passed as given. (The study itself is replaced by a recorder here: the
    row lists are what is checked; test_quick_study_* runs the real one.)"""
    import stemforge.train.experiment as exp

    seen = []

    def record(index, out, protocol, rows, *a, **kw):
        seen.append((list(rows), protocol.steps))
        return exp.StudyResult(out, [], None)

    monkeypatch.setattr(exp, "run_study", record)
    base, root = data
    common = ["experiment", "augmentation", "--index", str(root), "--targets", *TARGETS,
              "--cache", str(base / "cache"), "--no-progress", "--out", str(tmp_path / "s")]
    assert main(common) == 0
    assert main(common + ["--quick"]) == 0
    assert main(common + ["--rows", "remix", "tutorial"]) == 0
    assert seen == [(list(ABLATION), Protocol().steps), (list(ROWS), QUICK.steps),
                    (["remix", "tutorial"], Protocol().steps)]
    assert list(ABLATION) == ["plain", "remix", "gains", "swap", "pitch", "effects", "codec"]
