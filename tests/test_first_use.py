"""A user's own data, first time right (issue #17): each defect found by a new user, as a test.

The data is a tiny 4-stem folder like the user's (``train/`` and ``test/``, stems
soprano/alto/tenor/bass and a ``mixture.wav``), built here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import make_musdb18hq, tone, write_wav
from stemforge import layouts
from stemforge.cli import main
from stemforge.errors import LayoutError, RecipeError, StemforgeWarning
from stemforge.index import Index
from stemforge.mixing.mixer import Mixer
from stemforge.mixing.recipe import Recipe

SATB = ["soprano", "alto", "tenor", "bass"]
REPO = Path(__file__).resolve().parent.parent


def make_satb(root: Path, tracks: dict[str, int] | None = None, seconds: float = 1.0,
              short: dict[str, float] | None = None) -> Path:
    """``root/<split>/songK/{soprano,alto,tenor,bass,mixture}.wav``; ``short`` gives some
    tracks (``"test/song0"``) another length."""
    tracks = tracks or {"train": 2, "test": 2}
    for split, n in tracks.items():
        for k in range(n):
            sec = (short or {}).get(f"{split}/song{k}", seconds)
            st = {s: tone(180 + 60 * j + 7 * k, sec, seed=10 * k + j) for j, s in enumerate(SATB)}
            for s, a in st.items():
                write_wav(root / split / f"song{k}" / f"{s}.wav", a)
            write_wav(root / split / f"song{k}" / "mixture.wav", sum(st.values()))
    return root


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, command: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith(f"stemforge {command}: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------- 1. layout detection
def test_a_four_stem_folder_is_a_trackfolder_and_the_guess_is_said(tmp_path, capsys):
    """bass.wav + mixture.wav under train/ once made it MUSDB18-HQ ("missing drums.wav")."""
    root = make_satb(tmp_path / "choir")
    assert layouts.detect(root).name == "trackfolder"
    code, out, err = cli(capsys, "index", root, "--no-progress")
    assert code == 0, err
    assert "with layout 'trackfolder'" in out
    assert "layout: trackfolder (detected; --layout to override)" in err


def test_weak_evidence_is_ambiguous_and_strong_evidence_wins(tmp_path):
    # half the tracks hold MUSDB's stems, half a choir's: refused, the candidates listed
    mixed = make_satb(tmp_path / "mixed", {"train": 1, "test": 1})
    make_musdb18hq(mixed, {"M - One": "train", "M - Two": "test"}, seconds=0.5)
    with pytest.raises(LayoutError, match=r"ambiguous layout, it matches musdb18hq \(50% of its "
                                          r"tracks fit\), trackfolder; pass --layout"):
        layouts.detect(mixed)
    # a MUSDB18-HQ tree with one damaged track of six is still MUSDB18-HQ, and the error
    # says the layout was a guess and how to choose another
    hq = make_musdb18hq(tmp_path / "hq", {f"T{k}": "train" for k in range(6)}, seconds=0.3)
    (hq / "train" / "T3" / "vocals.wav").unlink()
    assert layouts.detect(hq).name == "musdb18hq"
    with pytest.raises(LayoutError, match=r"missing vocals.wav \(layout musdb18hq was detected; "
                                          r"pass --layout to choose another, e.g. --layout "
                                          r"trackfolder\)"):
        Index.build(hq)


# ---------------------------------------------------------------------- 2. remembered layout
def test_the_layout_is_remembered_by_every_later_use(tmp_path, capsys):
    """An ambiguous tree indexed once with --layout: every later use of the root reuses it."""
    root = make_satb(tmp_path / "mixed", {"train": 1, "test": 1}, seconds=1.0)
    make_musdb18hq(root, {"M - One": "train", "M - Two": "test"}, seconds=1.0)
    assert cli(capsys, "index", root)[0] == 2  # ambiguous
    code, _, err = cli(capsys, "index", root, "--layout", "trackfolder", "--no-progress")
    assert code == 0, err
    code, out, err = cli(capsys, "info", root)
    assert code == 0, err
    assert "layout trackfolder" in out and "detected" not in err  # remembered, not guessed
    assert Index.open(root).layout == "trackfolder"
    assert Index.open(root, layout="trackfolder").layout_source == "given"
    recipe = {"targets": ["bass", "rest"], "split": "train", "duration": 0.5,
              "modes": {"incoherent": 1.0}}
    from stemforge.torch import MixtureDataset

    ds = MixtureDataset(recipe, root, length=2)
    assert ds.index.layout == "trackfolder" and len(ds[0]) == 2
    rp = tmp_path / "r.yaml"
    rp.write_text(json.dumps(recipe))
    code, _, err = cli(capsys, "generate", rp, "--index", root, "--n", 2, "--out",
                       tmp_path / "gen", "--no-progress")
    assert code == 0, err
    code, _, err = cli(capsys, "regenerate", tmp_path / "gen", "--verify", "--index", root,
                       "--no-progress")
    assert code == 0, err
    code, _, err = cli(capsys, "report", root, "--out", tmp_path / "rep", "--no-progress")
    assert code == 0, err
    # --layout is taken by every command that takes a dataset, and a wrong one is refused
    code, _, err = cli(capsys, "info", root, "--layout", "musdb18hq")
    assert code == 2 and "missing" in one_line_error(err, "info")
    code, _, err = cli(capsys, "info", Index.open(root).index_file, "--layout", "dsd100")
    assert "built with layout 'trackfolder'" in one_line_error(err, "info")


def test_layout_options_are_remembered_too(tmp_path, capsys):
    root = make_satb(tmp_path / "choir", {"train": 1})
    assert cli(capsys, "index", root, "--group", "low=tenor,bass", "--no-progress")[0] == 0
    code, out, _ = cli(capsys, "info", root)
    assert code == 0 and "low = tenor + bass" in out


# ---------------------------------------------------------------------- 3. one root, one cache
def test_prepare_with_cache_is_remembered_for_the_root(tmp_path, capsys):
    root = make_satb(tmp_path / "choir", {"train": 1, "test": 1})
    fast = tmp_path / "fast-cache"
    code, out, err = cli(capsys, "prepare", root, "--cache", fast, "--no-progress")
    assert code == 0, err
    code, out, err = cli(capsys, "info", root)
    assert f"index: {fast / 'index.jsonl'} (remembered for this root" in out
    assert f"stem cache: {fast / 'audio'} (8 of 8 stems prepared; 0 of 2 real mixtures)" in out
    ix = Index.open(root)
    assert ix.cache_dir == fast and ix.cache_source == "remembered"
    assert ix.cache.get(ix.tracks[0].stems["bass"].key) is not None  # memmaps, not file reads
    # nothing was built in the default cache directory
    from stemforge.index import default_cache_dir

    assert not (default_cache_dir(root) / "index.jsonl").exists()
    # another --cache replaces the remembered one (and says where in info)
    other = tmp_path / "other-cache"
    assert cli(capsys, "index", root, "--cache", other, "--no-progress")[0] == 0
    assert Index.open(root).cache_dir == other


# ---------------------------------------------------------------------- 4. --continue, fingerprint
def test_continue_with_other_audio_is_refused_with_the_reason(tmp_path, capsys):
    hq = make_musdb18hq(tmp_path / "hq", {"A": "train", "B": "train"}, seconds=1.0)
    copy = make_musdb18hq(tmp_path / "copy", {"A": "train", "B": "train"}, seconds=1.0, seed=5)
    rp = tmp_path / "r.yaml"
    rp.write_text("targets: [vocals, accompaniment]\ngroups: {accompaniment: [drums, bass, "
                  "other]}\nsplit: train\nduration: 0.5\n")
    out = tmp_path / "set"
    assert cli(capsys, "generate", rp, "--index", hq, "--n", 2, "--out", out,
               "--no-progress")[0] == 0
    job = json.loads((out / "stemforge-job.json").read_text())
    assert len(job["index"]["fingerprint"]) == 16 and sorted(job["index"]["tracks"]) == \
        ["train/A", "train/B"]
    code, _, err = cli(capsys, "generate", rp, "--index", copy, "--n", 3, "--out", out,
                       "--continue", "--no-progress")
    line = one_line_error(err, "generate")
    assert code == 2 and "generated from other audio than this index holds (2 of 2 tracks " \
        "differ in content" in line and "--continue" not in line.split("holds")[0]
    assert not (out / "000002").exists()
    # verify reports it (with the reason, before the per-file mismatches); repair refuses
    code, stdout, _ = cli(capsys, "regenerate", out, "--verify", "--index", copy,
                          "--no-progress")
    assert code == 1 and stdout.splitlines()[0].startswith(
        "MISMATCH stemforge-job.json: the set was generated from other audio than this index "
        "holds (2 of 2 tracks differ in content")
    code, _, err = cli(capsys, "regenerate", out, "--index", copy, "--no-progress")
    assert code == 2 and "re-rendering it from this index cannot give its bytes" in \
        one_line_error(err, "regenerate")
    # the same audio moved elsewhere continues
    moved = tmp_path / "moved"
    hq.rename(moved)
    code, _, err = cli(capsys, "generate", rp, "--index", moved, "--n", 3, "--out", out,
                       "--continue", "--no-progress")
    assert code == 0, err


# ---------------------------------------------------------------------- 6. silent drops
def test_stems_in_no_target_warn_and_rest_collects_them(tmp_path, capsys):
    root = make_satb(tmp_path / "choir", {"train": 2})
    ix = Index.build(root)
    with pytest.warns(StemforgeWarning, match=r"stem\(s\) alto, tenor of the index are in no "
                                              r"target.*add `rest` to targets"):
        Mixer({"targets": ["soprano", "bass"], "split": "train", "duration": 0.5}, ix)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Mixer({"targets": ["soprano", "bass"], "exclude": ["alto", "tenor"], "split": "train",
               "duration": 0.5}, ix)
        m = Mixer({"targets": ["soprano", "rest"], "split": "train", "duration": 0.5,
                   "modes": {"coherent": 1.0}}, ix)
    assert m.recipe.groups == {"rest": ["alto", "bass", "tenor"]} and not m.recipe.open
    x = m.mixture(0)
    src = x.spec.sources[0]
    want = sum(ix.read(src.track, s, src.start, x.spec.frames) for s in ["alto", "bass", "tenor"])
    np.testing.assert_allclose(x.targets["rest"] / x.spec.scale, want * 1.0, atol=1e-6)
    np.testing.assert_array_equal(x.mix, x.targets["soprano"] + x.targets["rest"])
    # the CLI prints the warning as one line
    rp = tmp_path / "r.yaml"
    rp.write_text("targets: [soprano]\nsplit: train\nduration: 0.5\n")
    code, _, err = cli(capsys, "generate", rp, "--index", root, "--n", 1, "--out",
                       tmp_path / "g", "--no-progress")
    assert code == 0
    assert [ln for ln in err.splitlines() if "warning" in ln] == [
        "stemforge generate: warning: recipe 'r': stem(s) alto, bass, tenor of the index are in "
        "no target, so every mixture leaves them out (mix = sum of the targets soprano); add "
        "`rest` to targets to collect them in one target, or list them under `exclude:` to say "
        "it is meant"]


def test_short_tracks_are_counted_and_pad_draws_them_zero_padded(tmp_path):
    root = make_satb(tmp_path / "choir", {"train": 4}, seconds=2.0,
                     short={"train/song1": 0.6, "train/song2": 0.8})
    ix = Index.build(root)
    r = {"targets": ["soprano", "rest"], "split": "train", "duration": 1.0, "modes": {
        "coherent": 1.0}, "stems": {"default": {"snr": ["uniform", -3, 3]}}}
    with pytest.warns(StemforgeWarning, match=r"2 of 4 tracks are shorter than its duration "
                                              r"\(1 s\) and are never drawn.*pad: true"):
        m = Mixer(r, ix)
    assert {m.spec(i).sources[0].track for i in range(30)} == {"train/song0", "train/song3"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        padded = Mixer({**r, "pad": True}, ix)
    specs = [padded.spec(i) for i in range(40)]
    short = [s for s in specs if s.sources[0].track in ("train/song1", "train/song2")]
    assert short and all(src.pad_frames > 0 and src.start == 0 for s in short
                         for src in s.sources)
    s = short[0]
    n = ix.track(s.sources[0].track).frames
    x = padded.mixture(s.item)
    assert x.mix.shape == (2, 44100)
    assert np.all(x.mix[:, n:] == 0) and np.abs(x.mix[:, :n]).max() > 0
    np.testing.assert_array_equal(x.mix, x.targets["soprano"] + x.targets["rest"])
    # the spec records the padding and re-renders to the same bytes; unpadded specs do not
    # carry the field (their JSON is unchanged)
    from stemforge.mixing.mixer import render
    from stemforge.mixing.spec import MixSpec

    again = render(MixSpec.from_json(x.spec.to_json()), ix)
    np.testing.assert_array_equal(again.mix, x.mix)
    assert '"pad_frames"' in x.spec.to_json()
    full = next(sp for sp in specs if sp.sources[0].track == "train/song0")
    assert '"pad_frames"' not in full.to_json()


# ---------------------------------------------------------------------- 7. risky defaults
def test_a_recipe_without_split_is_refused_on_an_index_with_splits(tmp_path, capsys):
    root = make_satb(tmp_path / "choir", {"train": 2, "test": 1})
    ix = Index.build(root)
    with pytest.raises(RecipeError, match=r"recipe field 'split': missing, and the index of .* "
                                          r"has splits test \(1 tracks\), train \(2 tracks\); "
                                          r"say which to draw from, e.g. split: train \(or --set "
                                          r"split=train\), or split: all"):
        Mixer({"targets": ["*"], "duration": 0.5}, ix)
    assert len(Mixer({"targets": ["*"], "duration": 0.5, "split": "all"}, ix).sampler.index) == 3
    rp = tmp_path / "r.yaml"
    rp.write_text("targets: ['*']\nduration: 0.5\n")
    code, _, err = cli(capsys, "generate", rp, "--index", root, "--n", 1, "--out",
                       tmp_path / "g")
    assert code == 2 and "split" in one_line_error(err, "generate")
    assert not (tmp_path / "g").exists()


def test_sets_made_before_the_split_rule_still_verify(tmp_path, capsys, monkeypatch):
    """A set generated (by an earlier stemforge) from a recipe without split on an index with
    splits re-renders as it was drawn: the rule refuses new sets, not old ones."""
    from stemforge.jobs.generate import generate
    from stemforge.mixing import sample

    root = make_satb(tmp_path / "choir", {"train": 1, "test": 1})
    with monkeypatch.context() as m:  # the rule as it was before
        m.setattr(sample, "check_split", lambda recipe, index: None)
        generate(Recipe.from_dict({"targets": ["*"], "duration": 0.5}), Index.open(root), 3,
                 tmp_path / "old", progress=False)
    code, out, err = cli(capsys, "regenerate", tmp_path / "old", "--verify", "--no-progress")
    assert code == 0 and "all 3 items re-render byte-identically" in out, err


def test_validation_uses_the_valid_split_or_needs_a_choice(tmp_path):
    from stemforge.torch import MixtureDataset, ValidationDataset

    root = make_satb(tmp_path / "choir", {"train": 2, "valid": 1, "test": 1})
    ds = MixtureDataset({"targets": ["*"], "split": "train", "duration": 0.5}, root, length=4)
    v = ValidationDataset(ds.index, ds.recipe)
    assert {tid for tid, _ in v.windows} == {"valid/song0"}
    no_valid = make_satb(tmp_path / "nv", {"train": 2, "test": 1})
    ds = MixtureDataset({"targets": ["*"], "split": "train", "duration": 0.5}, no_valid,
                        length=4)
    with pytest.raises(RecipeError, match=r"has no validation split \('valid'; its splits: "
                                          r"test, train\).*split=NAME"):
        ValidationDataset(ds.index, ds.recipe)
    v = ValidationDataset(ds.index, ds.recipe, split="test")
    assert {tid for tid, _ in v.windows} == {"test/song0"}


def test_train_selects_on_test_only_when_told(tmp_path, capsys):
    root = make_satb(tmp_path / "choir", {"train": 2, "test": 1})
    rp = tmp_path / "r.yaml"
    rp.write_text("targets: ['*']\nsplit: train\nduration: 0.5\n")
    base = ["train", rp, "--index", root, "--steps", 1, "--batch-size", 2, "--hidden", 8,
            "--no-progress"]
    code, _, err = cli(capsys, *base, "--out", tmp_path / "r0")
    assert code == 2 and "has no 'valid' split" in one_line_error(err, "train")
    code, _, err = cli(capsys, *base, "--out", tmp_path / "r1", "--valid-split", "test")
    assert code == 2 and "--select-on-test" in one_line_error(err, "train")
    assert not (tmp_path / "r1").exists()
    code, _, err = cli(capsys, *base, "--out", tmp_path / "r2", "--valid-split", "test",
                       "--select-on-test")
    assert code == 0, err
    assert (tmp_path / "r2" / "best.pt").is_file()


# ---------------------------------------------------------------------- 8. closed pipe
def test_info_into_a_closed_pipe_ends_quietly(tmp_path):
    root = make_satb(tmp_path / "choir", {"train": 1})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run([sys.executable, "-m", "stemforge.cli", "index", str(root),
                           "--no-progress"], env=env, capture_output=True).returncode == 0
    p = subprocess.Popen([sys.executable, "-m", "stemforge.cli", "info", str(root), "--tracks"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before the command writes: like `| head -1`
    err = p.stderr.read().decode()
    assert p.wait() == 141
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
    shell = subprocess.run(f"{sys.executable} -m stemforge.cli info {root} --tracks | head -1",
                           shell=True, env=env, capture_output=True, text=True)
    assert shell.stdout.startswith("dataset: ") and "Traceback" not in shell.stderr


def test_a_broken_pipe_that_is_not_stdout_is_a_one_line_error(monkeypatch, capsys):
    """Only stdout's own reader going away ends quietly; another pipe (e.g. a separator's)
    breaking is an error like any other, also when stdout has no descriptor (captured)."""
    from stemforge import cli as cli_mod

    real = cli_mod.build_parser

    def parser():
        p = real()
        parse = p.parse_args

        def parse_and_break(argv):
            args = parse(argv)

            def run(_args):
                raise BrokenPipeError(32, "Broken pipe", "separator.fifo")
            args._run = run
            return args
        p.parse_args = parse_and_break
        return p

    monkeypatch.setattr(cli_mod, "build_parser", parser)
    assert cli_mod.main(["recipes"]) == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == ["stemforge recipes: error: separator.fifo: Broken pipe"]


# ---------------------------------------------------------------------- must show
def test_a_four_stem_folder_works_end_to_end_without_layout(tmp_path, capsys):
    """index, info, generate NAME --index DIR --set split=test, report: no --layout anywhere."""
    root = make_satb(tmp_path / "choir", {"train": 2, "test": 2}, seconds=1.0)
    code, out, err = cli(capsys, "index", root, "--no-progress")
    assert code == 0 and "layout 'trackfolder'" in out, err
    code, out, err = cli(capsys, "info", root)
    assert code == 0 and "stems (tracks" in out, err
    gen = tmp_path / "gen"
    code, out, err = cli(capsys, "generate", "all_stems", "--index", root, "--set", "split=test",
                         "--set", "duration=0.5", "--n", 2, "--out", gen, "--no-progress")
    assert code == 0, err
    assert sorted(p.name for p in (gen / "000001").iterdir()) == [
        "alto.wav", "bass.wav", "mixture.wav", "soprano.wav", "spec.json", "tenor.wav"]
    job = json.loads((gen / "stemforge-job.json").read_text())
    assert job["recipe"]["targets"] == ["alto", "bass", "soprano", "tenor"]
    assert job["recipe"]["split"] == "test" and job["recipe"]["duration"] == 0.5
    spec = json.loads((gen / "000000" / "spec.json").read_text())
    assert {s["track"] for s in spec["sources"]} <= {"test/song0", "test/song1"}
    assert spec["recipe_hash"] == Recipe.from_dict(job["recipe"]).hash() == job["recipe_hash"]
    code, out, err = cli(capsys, "report", root, gen, "--out", tmp_path / "rep", "--no-progress")
    assert code == 0 and "0 problems" in out, err
    for line in err.splitlines():
        assert line.startswith("layout: trackfolder ("), line  # only notes, no errors
