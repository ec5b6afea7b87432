"""``stemforge doctor`` end to end: the command, its outputs and errors, the report section,
Dask, and the exclusion list applied by recipes (sampling, specs, ``generate --exclude``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import cache_files
from stemforge.cli import main
from stemforge.doctor import songs
from stemforge.doctor.findings import DoctorReport
from stemforge.errors import RecipeError

SR = 22050


def _write(d: Path, stems: dict) -> None:
    d.mkdir(parents=True)
    for n, a in stems.items():
        sf.write(str(d / f"{n}.wav"), a.T, SR, subtype="PCM_16")
    sf.write(str(d / "mixture.wav"), sum(stems.values()).T, SR, subtype="PCM_16")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """MUSDB18-HQ layout, 22.05 kHz: a clean track, a training copy of a test track (leakage),
    a silent vocals stem, a dropout in drums; all indexable."""
    root = tmp_path_factory.mktemp("doc") / "ds"
    rng = np.random.default_rng(5)
    _write(root / "train" / "A - Clean", songs.song(rng, 10.0, SR))
    orig = songs.song(rng, 12.0, SR)
    _write(root / "test" / "B - Original", orig)
    _write(root / "train" / "C - Copy", {k: (0.7 * v[:, SR:]).astype(np.float32)
                                         for k, v in orig.items()})
    st = songs.song(rng, 10.0, SR)
    st["vocals"] = np.zeros_like(st["vocals"])
    _write(root / "train" / "D - No vocals", st)
    st = songs.song(rng, 10.0, SR)
    mix = sum(st.values())
    st["other"] = st["other"].copy()
    st["other"][:, 4 * SR: 5 * SR] = 0
    d = root / "train" / "E - Dropout"
    d.mkdir(parents=True)
    for n, a in st.items():
        sf.write(str(d / f"{n}.wav"), a.T, SR, subtype="PCM_16")
    sf.write(str(d / "mixture.wav"), mix.T, SR, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def doctored(dataset, tmp_path_factory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("docout") / "doctor"
    code = main(["doctor", str(dataset), "--out", str(out), "--no-progress"])
    return out, code


def test_doctor_writes_findings_and_exits_1(doctored, capsys):
    out, code = doctored
    assert code == 1
    rep = DoctorReport.load(out)
    got = {(f.kind, f.track, f.stem, f.action) for f in rep.findings if f.rank >= 1}
    assert got == {("duplicate", "train/C - Copy", None, "exclude_track"),
                   ("silence", "train/D - No vocals", "vocals", "exclude_stem"),
                   ("silence", "train/E - Dropout", "other", "exclude_span")}
    drop = next(f for f in rep.findings if f.kind == "silence" and f.spans)
    assert drop.spans[0] == pytest.approx([4.0, 5.0], abs=0.01)
    dup = next(f for f in rep.findings if f.kind == "duplicate")
    assert dup.detail["leakage"] and dup.detail["offset_s"] == pytest.approx(1.0, abs=0.03)
    assert (out / "findings.csv").read_text().count("\n") == len(rep.findings) + 1
    assert rep.datasets[0]["layout"] == "musdb18hq" and rep.datasets[0]["tracks"] == 5


def test_clean_dataset_exits_0(tmp_path, capsys):
    _write(tmp_path / "ds" / "train" / "Only - One", songs.song(np.random.default_rng(9), 8.0, SR))
    assert main(["doctor", str(tmp_path / "ds"), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 0
    assert "no findings" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "dataset root does not exist"),
    (["--index", "=x"], "--index '=x': expected ROOT or NAME=ROOT"),
    (["--index", "a={ds}", "--index", "a={other}"], "the name 'a' is given twice"),
    (["{ds}", "--index", "b={ds}"], "is given twice; give each dataset once"),
    (["{ds}", "{other}", "--cache", "{missing}"], "names one dataset's index, but 2 datasets"),
    (["{ds}", "--workers", "0"], "--workers 0: expected 1 or more worker processes"),
    ([], "no dataset given"),
    (["{ds}", "--layout", "nosuch"], "unknown layout 'nosuch'"),
])
def test_errors_are_one_line_and_leave_nothing(dataset, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    other = tmp_path / "other"
    other.mkdir()
    args = [a.format(missing=tmp_path / "nope", ds=dataset, other=other) for a in args]
    assert main(["doctor", *args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not out.exists()


def test_index_option_is_the_positional_root(dataset, doctored, tmp_path, capsys):
    """``--index ROOT`` = ``ROOT``; ``--index NAME=ROOT`` names the dataset; an unnamed dataset
    whose folder name is taken gets a suffix, a given name never changes."""
    from stemforge.commands.doctor import add_parser, datasets_of
    import argparse

    out, _ = doctored
    assert main(["doctor", "--index", str(dataset), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 1
    a = json.loads((out / "doctor.json").read_text())
    b = json.loads((tmp_path / "o" / "doctor.json").read_text())
    assert a["findings"] == b["findings"] and a["datasets"] == b["datasets"]
    other = tmp_path / "x" / dataset.name
    _write(other / "train" / "Z - Z", songs.song(np.random.default_rng(3), 2.0, SR))
    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    args = parser.parse_args([str(other), "--index", f"{dataset.name}={dataset}", "--out", "o"])
    refs = datasets_of(args)
    assert [r.name for r in refs] == [dataset.name, f"{dataset.name}-2"]
    assert [r.root for r in refs] == [str(dataset.resolve()), str(other.resolve())]


def test_out_must_be_a_folder(dataset, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["doctor", str(dataset), "--out", str(f), "--no-progress"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert f.read_text() == "x" and cache_files(tmp_path) == ["file"]


def test_report_shows_the_doctor_section(doctored, tmp_path):
    from stemforge.report import build_report, detect_kind

    out, _ = doctored
    assert detect_kind(out) == detect_kind(out / "doctor.json") == "doctor"
    res = build_report([out], tmp_path / "rep")
    html = res.index_html.read_text()
    assert res.sections[0].kind == "doctor" and not res.problems
    assert "duplicates (1)" in html and "train/C - Copy" in html and "<audio" in html


def test_dask_gives_the_same_report(dataset, doctored, tmp_path):
    pytest.importorskip("distributed")
    out, _ = doctored
    main(["doctor", str(dataset), "--out", str(tmp_path / "d"), "--workers", "2",
          "--no-progress"])
    a = json.loads((out / "doctor.json").read_text())
    b = json.loads((tmp_path / "d" / "doctor.json").read_text())
    assert a["findings"] == b["findings"] and a["tracks"] == b["tracks"]


# ---------------------------------------------------------------------------- exclusions
RECIPE = {"duration": 1.0, "sample_rate": SR, "split": "train",
          "targets": ["vocals", "accompaniment"],
          "groups": {"accompaniment": ["drums", "bass", "other"]},
          "modes": {"coherent": 0.5, "incoherent": 0.5}}


def test_recipe_exclude_drops_tracks_stems_and_spans(dataset, doctored, tmp_path):
    import yaml

    from stemforge import Index
    from stemforge.mixing.recipe import Recipe
    from stemforge.mixing.sample import Sampler

    out, _ = doctored
    index = Index.open(dataset)
    plain = Recipe.from_dict(RECIPE)
    # a path relative to the recipe's folder (the doctor output folder, not the file)
    (out.parent / "r.yaml").write_text(yaml.safe_dump({**RECIPE, "exclude": out.name}))
    rec = Recipe.load(out.parent / "r.yaml")
    assert rec.hash() != plain.hash() and rec.raw["exclude_flagged"]["items"]
    assert "exclude" not in rec.raw and rec.exclude == ()  # `exclude: PATH` = exclude_flagged
    # the same list under its own key, beside main's stem exclusion list
    (out.parent / "r2.yaml").write_text(yaml.safe_dump(
        {**RECIPE, "targets": ["vocals", "drums"], "exclude": ["bass", "other"],
         "exclude_flagged": out.name}))
    both = Recipe.load(out.parent / "r2.yaml")
    assert both.exclude == ("bass", "other")
    assert both.raw["exclude_flagged"] == rec.raw["exclude_flagged"]
    s = Sampler(rec, index)
    ids = {t.id for t in s.index.tracks}
    assert "train/C - Copy" not in ids and "vocals" not in s.index.track(
        "train/D - No vocals").stems
    r = s.exclusions.record
    assert (r["tracks"], r["stems"], r["spans"], r["unmatched"]) == (1, 1, 1, 0)
    hits = 0
    for i in range(400):
        spec = s.draw(0, 0, i)[0]
        assert spec.exclusions == s.exclusions.record
        for src in spec.sources:
            assert src.track != "train/C - Copy"
            assert (src.track, src.stem) != ("train/D - No vocals", "vocals")
            if src.track == "train/E - Dropout" and src.stem == "other":
                hits += 1
                assert src.start + src.source_frames <= 4 * SR or src.start >= 5 * SR
    assert hits > 20
    d = Sampler(plain, index).draw(0, 0, 0)[0].to_dict()
    assert "exclusions" not in d  # specs without an exclusion list are as before


def test_exclude_errors_name_the_field(dataset, doctored, tmp_path):
    from stemforge.index import Index
    from stemforge.mixing.recipe import Recipe
    from stemforge.mixing.sample import Sampler

    with pytest.raises(RecipeError, match="recipe field 'exclude'.*doctor report not found"):
        Recipe.from_dict({**RECIPE, "exclude": str(tmp_path / "none.json")})
    with pytest.raises(RecipeError, match="recipe field 'exclude'.*expected a list of stem"):
        Recipe.from_dict({**RECIPE, "exclude": 3})
    with pytest.raises(RecipeError, match="recipe field 'exclude_flagged'.*expected the path"):
        Recipe.from_dict({**RECIPE, "exclude_flagged": 3})
    with pytest.raises(RecipeError, match="recipe field 'exclude'.*given both"):
        Recipe.from_dict({**RECIPE, "exclude": str(doctored[0]),
                          "exclude_flagged": str(doctored[0])})
    other = tmp_path / "other"
    _write(other / "train" / "X - Y", songs.song(np.random.default_rng(1), 4.0, SR))
    rec = Recipe.from_dict({**RECIPE, "exclude": str(doctored[0])})
    with pytest.raises(RecipeError, match="not the index's dataset"):
        Sampler(rec, Index.open(other))


def test_exclusions_apply_per_dataset_with_several_datasets(dataset, tmp_path):
    """One doctor run over two datasets; a recipe drawing from both applies each dataset's
    findings to that dataset (matched by root) and records them per dataset name."""
    import yaml

    from stemforge.doctor.exclude import ExclusionList
    from stemforge.index import Index
    from stemforge.mixing.mixer import Mixer

    second = tmp_path / "second"
    rng = np.random.default_rng(11)
    _write(second / "train" / "P - Plain", songs.song(rng, 8.0, SR))
    st = songs.song(rng, 8.0, SR)
    st["bass"] = np.zeros_like(st["bass"])
    _write(second / "train" / "Q - No bass", st)
    out = tmp_path / "doc2"
    assert main(["doctor", "--index", f"one={dataset}", "--index", f"two={second}", "--out",
                 str(out), "--no-progress"]) == 1
    rep = DoctorReport.load(out)
    assert [d["name"] for d in rep.datasets] == ["one", "two"]
    assert ("two", "train/Q - No bass", "bass", "exclude_stem") in {
        (f.dataset, f.track, f.stem, f.action) for f in rep.findings}
    recipe = {**RECIPE, "datasets": {"one": 0.5, "two": 0.5}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({**recipe, "exclude_flagged": "doc2"}))
    indexes = {"one": Index.open(dataset), "two": Index.open(second)}
    mixer = Mixer(tmp_path / "r.yaml", indexes, seed=3)
    pools = {p.name: p for p in mixer.sampler.pools}
    assert "train/C - Copy" not in {t.id for t in pools["one"].index.tracks}
    assert "bass" not in pools["two"].index.track("train/Q - No bass").stems
    assert pools["one"].exclusions.record["spans"] == 1
    seen, hits = set(), 0
    for i in range(300):
        spec = mixer.spec(i)
        rec = spec.exclusions
        assert rec["files"] == ["doc2"] and set(rec["datasets"]) == {"one", "two"}
        assert (rec["datasets"]["one"]["tracks"], rec["datasets"]["one"]["stems"],
                rec["datasets"]["two"]["stems"]) == (1, 1, 1)
        for src in spec.sources:
            seen.add(src.dataset)
            assert (src.dataset, src.track) != ("one", "train/C - Copy")
            assert (src.dataset, src.track, src.stem) not in {
                ("one", "train/D - No vocals", "vocals"), ("two", "train/Q - No bass", "bass")}
            if (src.dataset, src.track, src.stem) == ("one", "train/E - Dropout", "other"):
                hits += 1
                assert src.start + src.source_frames <= 4 * SR or src.start >= 5 * SR
    assert seen == {"one", "two"} and hits > 5
    # a list that covers only one of the datasets is refused, naming the other
    only_one = tmp_path / "doc1"
    assert main(["doctor", str(dataset), "--out", str(only_one), "--no-progress"]) == 1
    with pytest.raises(RecipeError, match=r"recipe field 'exclude_flagged': the exclusion list "
                       r".* not dataset 'two' \(.*second\); run stemforge doctor on every"):
        Mixer({**recipe, "exclude_flagged": str(only_one)}, indexes)
    # two reports, one per dataset, say the same as one run over both
    per = tmp_path / "doc_two"
    assert main(["doctor", str(second), "--out", str(per), "--no-progress"]) == 1
    both = ExclusionList.coerce([str(only_one), str(per)])
    assert sorted(both.roots) == sorted(str(p.resolve()) for p in (dataset, second))
    m2 = Mixer({**recipe, "exclude_flagged": [str(only_one), str(per)]}, indexes, seed=3)
    assert m2.spec(0).exclusions["datasets"] == mixer.spec(0).exclusions["datasets"]


def test_generate_exclude_flag(dataset, doctored, tmp_path):
    import yaml

    out, _ = doctored
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(RECIPE))
    assert main(["generate", str(tmp_path / "r.yaml"), "--index", str(dataset), "--n", "6",
                 "--out", str(tmp_path / "gen"), "--exclude", str(out), "--no-progress"]) == 0
    specs = sorted((tmp_path / "gen").rglob("spec.json"))
    assert len(specs) == 6
    for p in specs:
        d = json.loads(p.read_text())
        assert d["exclusions"]["tracks"] == 1
        assert all(s["track"] != "train/C - Copy" for s in d["sources"])


def test_validation_windows_avoid_excluded_spans(dataset, doctored):
    pytest.importorskip("torch")
    from stemforge.index import Index
    from stemforge.torch import ValidationDataset

    recipe = {**RECIPE, "exclude": str(doctored[0])}
    ds = ValidationDataset(Index.open(dataset), recipe, duration=1.0, split="train")
    assert "train/C - Copy" not in {t for t, _ in ds.windows}
    starts = [s for t, s in ds.windows if t == "train/E - Dropout"]
    assert starts and all(s + SR <= 4 * SR or s >= 5 * SR for s in starts)
    assert ds.spec(0).exclusions["spans"] == 1


def test_broken_files_are_findings_not_crashes(tmp_path):
    root = tmp_path / "ds"
    st = songs.song(np.random.default_rng(2), 6.0, SR)
    _write(root / "train" / "A - Broken", st)
    (root / "train" / "A - Broken" / "bass.wav").write_bytes(b"RIFF0000WAVEjunk")
    nan = {k: v.copy() for k, v in st.items()}
    d = root / "train" / "B - NaN"
    d.mkdir(parents=True)
    for n, a in nan.items():
        if n == "other":
            a[:, 100] = np.nan
        sf.write(str(d / f"{n}.wav"), a.T, SR, subtype="FLOAT")
    out = tmp_path / "o"
    assert main(["doctor", str(root), "--out", str(out), "--no-progress"]) == 1
    rep = DoctorReport.load(out)
    bad = {(f.track, f.stem) for f in rep.findings if f.kind == "unreadable"}
    assert bad == {("train/A - Broken", "bass"), ("train/B - NaN", "other")}
    assert all(f.severity == "error" and f.action == "exclude_track" for f in rep.findings
               if f.kind == "unreadable")


def test_an_index_file_gives_the_index_layout_and_names(dataset, tmp_path):
    from stemforge import Index
    from stemforge.doctor import resolve

    index = Index.open(dataset)
    ref = resolve(index.index_file)
    assert (ref.root, ref.layout, ref.name) == (str(dataset.resolve()), "musdb18hq", "ds")
    assert resolve(dataset).layout == "musdb18hq"
