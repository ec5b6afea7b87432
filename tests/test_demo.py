"""``stemforge demo``: index the bundled real excerpt, generate with the tutorial recipe, write
the report; re-running in the same folder resumes; bad input fails with a clear message."""
from __future__ import annotations

import importlib.util

import pytest
import soundfile as sf
import yaml

from conftest import cache_files
from stemforge.cli import main
from stemforge.commands import demo
from stemforge.errors import StemforgeError
from stemforge.index import Index
from stemforge.mixing.mixer import render
from stemforge.mixing.spec import MixSpec
from test_report import Page


def test_demo_generates_and_reports_then_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "2", "--no-progress"]) == 0
    text = capsys.readouterr().out
    # the real excerpt, indexed in the musdb18 layout
    excerpt = demo.bundled_excerpt()
    assert (out / "musdb18-excerpt" / "test" / excerpt.name).stat().st_size == \
        excerpt.stat().st_size
    assert "layout musdb18, 1 tracks" in text
    # the tutorial recipe restricted to the excerpt's split, otherwise unchanged
    written = yaml.safe_load((out / "musdb_vocals.yaml").read_text())
    packaged = yaml.safe_load(demo.packaged_recipe().read_text())
    assert written == {**packaged, "split": ["test"]}
    # two complete mixtures, 5 s stereo at 44.1 kHz, re-renderable from their specs
    index = Index.open(out / "musdb18-excerpt", cache_dir=out / "cache")
    for i in range(2):
        d = out / "mixtures" / f"{i:06d}"
        spec = MixSpec.load(d / "spec.json")
        assert spec.targets == ["vocals", "accompaniment"]
        assert f"{i:06d}  {spec.mode}" in text
        for name in ("mixture", "vocals", "accompaniment"):
            info = sf.info(str(d / f"{name}.wav"))
            assert (info.channels, info.samplerate, info.frames) == (2, 44100, 5 * 44100)
        m = render(spec, index)
        mix, _ = sf.read(str(d / "mixture.wav"), dtype="float32", always_2d=True)
        assert (m.mix == mix.T).all()
    assert "2 written, 0 already there" in text
    # the report: path printed, players for the excerpt (mix + 4 stems) and each mixture
    # (mix + 2 targets), no problems
    report = out / "report" / "index.html"
    assert f"report: {report}" in text
    page = Page(report)
    assert page.problems == []
    assert len(page.audio) == 5 + 2 * 3
    assert all((out / "report" / s).is_file() for s in page.audio + page.images)
    gen = out / "mixtures"
    before = {p: (gen / p).stat().st_mtime_ns for p in cache_files(gen)
              if not p.startswith(".")}

    # re-run in the same folder: nothing regenerated, report rewritten
    assert main(["demo", "--out", str(out), "--n", "2", "--no-progress"]) == 0
    again = capsys.readouterr().out
    assert "0 written, 2 already there" in again
    assert f"report: {report}" in again
    after = {p: (gen / p).stat().st_mtime_ns for p in before}
    changed = [p for p in before if after[p] != before[p]
               and p not in ("stemforge-job.json", "manifest.csv")]
    assert len(before) == 2 * 4 + 2 and changed == []


def test_demo_without_stempeg_names_the_package(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "stempeg" else real(name, *a))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stemforge demo: error: the demo needs the 'stempeg' package")
    assert not out.exists()


def test_demo_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("x")
    assert main(["demo", "--out", str(f)]) == 2
    assert f"{f}: exists and is not a folder" in capsys.readouterr().err
    assert f.read_text() == "x"


def test_demo_bad_n(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--n", "0"]) == 2
    assert "--n 0: expected a positive number of mixtures" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_bundled_excerpt_is_found_without_importing_stempeg():
    """``import stempeg`` fails without a system ffmpeg; the demo must not need it."""
    import subprocess
    import sys

    code = ("import sys; from stemforge.commands import demo; p = demo.bundled_excerpt(); "
            "print(p); assert 'stempeg' not in sys.modules, 'stempeg was imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    p = demo.bundled_excerpt()
    assert r.stdout.strip() == str(p)
    assert p.name.endswith(".stem.mp4") and p.stat().st_size > 100_000


def test_missing_packaged_recipe_is_named():
    with pytest.raises(StemforgeError, match=r"no_such_recipe.yaml: packaged recipe not found"):
        demo.packaged_recipe("no_such_recipe.yaml")


BLOCK_SPLIT = "split:\n  - train\n  - valid\n"


@pytest.mark.parametrize("split_text", ["", "split: [train]\n", BLOCK_SPLIT])
def test_demo_recipe_changes_only_the_split(tmp_path, split_text):
    """Comments kept when the split is one line; a block-style or missing split still ends as
    exactly the source recipe with split [test]."""
    src = tmp_path / "r.yaml"
    src.write_text("# my recipe\nname: r\n" + split_text + "targets: [vocals]\nduration: 2.0\n")
    (tmp_path / "out").mkdir()
    dst = demo.demo_recipe(tmp_path / "out", src)
    assert yaml.safe_load(dst.read_text()) == {"name": "r", "targets": ["vocals"],
                                               "duration": 2.0, "split": ["test"]}
    assert dst.read_text().startswith("# r.yaml with split: [test]" if split_text == BLOCK_SPLIT
                                      else "# my recipe")
