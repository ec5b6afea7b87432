"""One CLI grammar, recipe overrides, packaged recipes, progress off a terminal (issue #17)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_musdb18hq
from stemforge.cli import main
from stemforge.errors import RecipeError
from stemforge.mixing import packaged
from stemforge.mixing.mixer import Mixer
from stemforge.mixing.recipe import Recipe
from test_first_use import cli, make_satb, one_line_error

REPO = Path(__file__).resolve().parent.parent
VOCALS = {"targets": ["vocals", "accompaniment"], "split": "train", "duration": 0.5,
          "groups": {"accompaniment": ["drums", "bass", "other"]},
          "stems": {"default": {"snr": ["uniform", -5, 5]}}}


# ---------------------------------------------------------------------- overrides
def test_overrides_from_the_command_line_are_validated_and_recorded(tmp_path, capsys):
    root = make_musdb18hq(tmp_path / "hq", {"A": "train", "B": "test", "C": "test"},
                          seconds=4.0)
    rp = tmp_path / "vocals.yaml"
    rp.write_text(json.dumps({**VOCALS, "duration": 1.0}))
    out = tmp_path / "set"
    code, _, err = cli(capsys, "generate", rp, "--index", root, "--n", 6, "--out", out,
                       "--set", "split=test", "--set", "duration=3",
                       "--set", "stems.vocals.snr=[uniform,-3,3]", "--no-progress")
    assert code == 0, err
    job = json.loads((out / "stemforge-job.json").read_text())
    effective = {**VOCALS, "split": "test", "duration": 3,
                 "stems": {"default": {"snr": ["uniform", -5, 5]},
                           "vocals": {"snr": ["uniform", -3, 3]}}}
    assert job["recipe"] == effective and job["recipe_name"] == "vocals"
    assert job["recipe_hash"] == Recipe.from_dict(effective).hash() != \
        Recipe.load(rp).hash()
    for i in range(6):
        spec = json.loads((out / f"{i:06d}" / "spec.json").read_text())
        assert spec["recipe_hash"] == job["recipe_hash"] and spec["frames"] == 3 * 44100
        by = {s["stem"]: s for s in spec["sources"]}
        assert -3 <= by["vocals"]["snr"] <= 3 and by["vocals"]["track"].startswith("test/")
    # a bad override is refused like a bad file, naming the field and the override
    for bad, want in [("duration=-1", "recipe field 'duration': must be > 0, got -1 (override "
                                      "duration=-1)"),
                      ("stems.vocals.snr=[uniform,3]", "recipe field 'stems.vocals.snr': "
                                                       "uniform takes 2 argument(s)"),
                      ("stems.piano.snr=0", "recipe field 'stems.piano': unknown stem or group"),
                      ("nope=1", "recipe field 'nope': unknown field"),
                      ("split", "expected FIELD=VALUE")]:
        code, _, err = cli(capsys, "generate", rp, "--index", root, "--n", 1, "--out",
                           tmp_path / "bad", "--set", bad)
        assert code == 2 and want in one_line_error(err, "generate"), (bad, err)
        assert not (tmp_path / "bad").exists()


def test_overrides_in_the_api(tmp_path):
    from stemforge.torch import MixtureDataset

    root = make_musdb18hq(tmp_path / "hq", {"A": "train", "B": "test"}, seconds=2.0)
    m = Mixer(VOCALS, root, overrides={"split": "test", "stems.vocals.boost": 6})
    assert m.recipe.split == ["test"] and m.recipe.raw["stems"]["vocals"] == {"boost": 6}
    assert m.spec(0).sources[0].boost == 6 and m.spec(0).sources[0].track == "test/B"
    same = Mixer(Recipe.from_dict(VOCALS).with_overrides(["split=test",
                                                          "stems.vocals.boost=6"]), root)
    assert same.spec(3).to_json() == m.spec(3).to_json()
    ds = MixtureDataset(VOCALS, root, length=2, overrides=["duration=0.25"])
    assert ds.recipe.duration == 0.25 and tuple(ds[0][0].shape) == (2, 11025)
    with pytest.raises(RecipeError, match=r"'augment.0': override: '0' is not an index"):
        Mixer({**VOCALS, "augment": []}, root, overrides={"augment.0.p": 0.5})
    aug = {**VOCALS, "augment": [{"step": "polarity", "p": 0.5}]}
    assert Mixer(aug, root, overrides={"augment.0.p": 1.0}).recipe.raw["augment"][0]["p"] == 1.0


# ---------------------------------------------------------------------- packaged recipes
def test_packaged_recipes_list_show_and_load_by_name(capsys):
    code, out, _ = cli(capsys, "recipes")
    assert code == 0
    for name in packaged.names():
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "musdb_vocals " in out and "vs accompaniment" in out
    code, out, _ = cli(capsys, "recipes", "show", "musdb_vocals")
    assert code == 0 and out == (REPO / "stemforge" / "recipes" / "musdb_vocals.yaml").read_text()
    assert Recipe.load("musdb_vocals").name == "musdb-vocals"
    assert Recipe.load("musdb_vocals.yaml").hash() == Recipe.load(
        REPO / "stemforge" / "recipes" / "musdb_vocals.yaml").hash()
    code, _, err = cli(capsys, "recipes", "show", "nope")
    assert code == 2 and "no packaged recipe has that name (packaged: all_stems" in \
        one_line_error(err, "recipes")
    # every packaged recipe validates and names its split (never train and test by accident)
    for name in packaged.names():
        r = Recipe.load(name)
        assert r.split or r.all_splits, name


@pytest.mark.slow
def test_packaged_recipes_work_after_a_plain_pip_install(tmp_path):
    """A wheel built from the source tree, installed into a folder: recipes load by name."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    run = dict(capture_output=True, text=True, timeout=600)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(wheels), str(REPO)], **run)
    assert r.returncode == 0, r.stderr
    wheel = next(wheels.glob("stemforge-*.whl"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                        str(target), str(wheel)], **run)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    r = subprocess.run([sys.executable, "-c",
                        "import stemforge, sys; from stemforge.mixing.recipe import Recipe; "
                        "print(stemforge.__file__); print(Recipe.load('musdb_vocals').name)"],
                       env=env, cwd=tmp_path, **run)
    assert r.returncode == 0, r.stderr
    where, name = r.stdout.split()
    assert where.startswith(str(target)) and name == "musdb-vocals"
    r = subprocess.run([sys.executable, "-m", "stemforge.cli", "recipes"], env=env,
                       cwd=tmp_path, **run)
    assert r.returncode == 0 and "stemforge_recommended" in r.stdout, r.stderr


# ---------------------------------------------------------------------- one grammar
def test_dataset_is_index_root_or_positional_everywhere(tmp_path, capsys):
    root = make_satb(tmp_path / "choir", {"train": 1, "test": 1})
    code, a, _ = cli(capsys, "info", root)
    code2, b, _ = cli(capsys, "info", "--index", root)
    assert code == code2 == 0 and a == b
    code, _, err = cli(capsys, "info", root, "--index", tmp_path / "elsewhere")
    assert code == 2 and "two datasets given" in one_line_error(err, "info")
    code, _, err = cli(capsys, "info")
    assert code == 2 and "no dataset given" in one_line_error(err, "info")
    # the recipe is positional in train too (--recipe stays as an alias: tests/test_train.py)
    code, _, err = cli(capsys, "train", "--index", root, "--steps", 1, "--out", tmp_path / "r")
    assert code == 2 and "no recipe given" in one_line_error(err, "train")


def test_index_takes_name_equals_root_everywhere(tmp_path, capsys):
    """--index NAME=ROOT (one per dataset of a recipe's datasets:) is accepted by every command
    for its one dataset; only generate and regenerate take several."""
    root = make_satb(tmp_path / "choir", {"train": 1, "test": 1})
    code, a, _ = cli(capsys, "info", root)
    code2, b, _ = cli(capsys, "info", "--index", f"choir={root}")
    assert code == code2 == 0 and a == b
    code, _, err = cli(capsys, "info", "--index", f"a={root}", "--index", f"b={root}")
    assert code == 2 and "this command takes one dataset, got 2" in one_line_error(err, "info")
    for argv, msg in [
        (["--index", root, "--index", root], "--index given 2 times"),
        (["--index", f"a={root}", "--index", root], f"--index {root}: name every dataset"),
        (["--index", f"a={root}", "--index", f"a={root}"], "dataset 'a' given twice"),
        (["--index", f"a={root}", "--index", f"b={root}", "--cache", tmp_path / "c"],
         "each dataset needs its own cache folder"),
        (["--index", f"a={root}", "--index", f"b={root}", "--taxonomy", "c=t.yaml"],
         "--taxonomy c=t.yaml: no dataset 'c' is given"),
    ]:
        code, _, err = cli(capsys, "generate", "all_stems", *argv, "--n", 1,
                           "--out", tmp_path / "g")
        assert code == 2 and msg in one_line_error(err, "generate"), err
        assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("argv", [
    ["index", "{root}"], ["info", "{root}"], ["prepare", "{root}"],
    ["oracle", "{root}", "--method", "mix", "--out", "{tmp}/o"],
    ["evaluate", "--index", "{root}", "--estimates", "{tmp}", "--out", "{tmp}/e"],
    ["generate", "all_stems", "--index", "{root}", "--n", "1", "--out", "{tmp}/g"],
    ["regenerate", "{tmp}/g"],
    ["train", "all_stems", "--index", "{root}", "--steps", "1", "--out", "{tmp}/t"],
    ["doctor", "{root}", "--out", "{tmp}/d"],
])
def test_workers_means_worker_processes_everywhere(tmp_path, capsys, argv):
    root = make_satb(tmp_path / "choir", {"train": 1})
    argv = [a.format(root=root, tmp=tmp_path) for a in argv]
    code, _, err = cli(capsys, *argv, "--workers", 0)
    assert code == 2
    assert "--workers 0: expected 1 or more worker processes" in one_line_error(err, argv[0])
    help_text = subprocess.run([sys.executable, "-m", "stemforge.cli", argv[0], "--help"],
                               capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert "worker processes for" in help_text and "1 = in this process" in help_text


def test_export_shards_out_and_dest(tmp_path, capsys):
    root = make_satb(tmp_path / "choir", {"train": 1})
    gen = tmp_path / "g"
    assert cli(capsys, "generate", "all_stems", "--index", root, "--set", "duration=0.5",
               "--n", 2, "--out", gen, "--no-progress")[0] == 0
    assert cli(capsys, "export-shards", gen, "--out", tmp_path / "a")[0] == 0
    assert cli(capsys, "export-shards", gen, "--dest", tmp_path / "b")[0] == 0
    assert (tmp_path / "a" / "shard-000000.tar").read_bytes() == \
        (tmp_path / "b" / "shard-000000.tar").read_bytes()


# ---------------------------------------------------------------------- progress
def test_long_commands_show_progress_off_a_terminal(tmp_path, capsys, monkeypatch):
    """index, prepare, prepare --variants, export-jams, export-shards, train (validation) and
    separate write progress lines to a non-terminal stderr (every update here)."""
    monkeypatch.setenv("STEMFORGE_PROGRESS_EVERY", "0")
    root = make_satb(tmp_path / "choir", {"train": 2, "valid": 1}, seconds=1.0)
    gen, run = tmp_path / "g", tmp_path / "run"
    steps = [
        (["index", root], "index: 3/3 tracks (100%)"),
        (["prepare", root], "prepare: 3/3 tracks (100%)"),
        (["prepare", root, "--variants", "semitones=0,1 tempo=1"],
         "prepare --variants: 12/12 variants (100%)"),
        (["generate", "all_stems", "--index", root, "--set", "duration=0.5", "--n", 2,
          "--out", gen], "generate: 2/2 mixes (100%)"),
        (["export-jams", gen], "export-jams: 2/2 items (100%)"),
        (["export-shards", gen, "--per-shard", 1], "export-shards: 2/2 items (100%)"),
        (["train", "all_stems", "--index", root, "--set", "duration=0.5", "--steps", 1,
          "--batch-size", 2, "--hidden", 8, "--out", run], "validate: 2/2 windows (100%)"),
        (["separate", run / "best.pt", root / "valid" / "song0" / "mixture.wav", "--out",
          tmp_path / "sep"], "separate: 1/1 chunks (100%)"),
    ]
    for argv, want in steps:
        code, _, err = cli(capsys, *argv)
        assert code == 0, err
        assert want in err, (argv[0], err)
    # --no-progress silences them
    code, _, err = cli(capsys, "export-jams", gen, "--no-progress")
    assert code == 0 and "export-jams:" not in err


def test_progress_lines_are_periodic_and_quiet_for_short_runs():
    import io

    from stemforge.progress import Lines

    buf = io.StringIO()
    p = Lines(100, "work", "item", stream=buf, every=3600)
    for _ in range(100):
        p.update(1)
    p.close()
    assert buf.getvalue() == ""  # finished before the first line was due
    buf = io.StringIO()
    p = Lines(4, "work", "item", stream=buf, every=0)
    for _ in range(4):
        p.update(1)
    p.close()
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("work: 1/4 items (25%), 0 s, ~0 s left")
    assert lines[-1].startswith("work: 4/4 items (100%)") and len(lines) == 5
    assert np.all(["\r" not in line for line in lines])
