"""Instrument taxonomy: validation, application while indexing, and `stemforge info` output."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import cache_files
from stemforge.cli import main
from stemforge.commands.info import summary
from stemforge.errors import IndexError_, RecipeError
from stemforge.index import Index
from stemforge.layouts.base import SourceRef, TrackEntry
from stemforge.taxonomy import Taxonomy
from test_layouts_more import make_medleydb, make_moisesdb, make_musdb18, make_slakh

TAX = {"bass": ["electric bass", "double bass", "Bass"],
       "vocals": ["female singer", "male singer", "vocals"], "rest": "*"}


def _read(path):
    return sf.read(str(path), dtype="float32", always_2d=True)[0].T


@pytest.mark.parametrize("mapping, match", [
    ({}, r"recipe field 'taxonomy': expected a non-empty mapping"),
    ([1], r"recipe field 'taxonomy': expected a non-empty mapping .* got list"),
    ({"a": "*", "b": "*"}, r"field 'taxonomy.b': only one target may be the catch-all '\*' "
                           r"\('a' already is\)"),
    ({"a": ["Bass"], "b": [" bass "]}, r"field 'taxonomy.b': label ' bass ' is already claimed "
                                       r"by target 'a'"),
    ({"a": [1, 2]}, r"field 'taxonomy.a': expected a non-empty list of label strings or '\*'"),
    ({"a": []}, r"field 'taxonomy.a': expected a non-empty list"),
    ({"mixture": ["x"]}, r"field 'taxonomy.mixture': target names must be non-empty strings "
                         r"other than 'mixture'"),
])
def test_invalid_mappings(mapping, match):
    with pytest.raises(RecipeError, match=match):
        Taxonomy.from_mapping(mapping)


def test_matching_and_apply():
    tax = Taxonomy.from_mapping({"bass": ["Electric  Bass", "Bass"], "drums": "drum set"})
    assert tax.target_of("electric bass") == "bass" and tax.target_of("BASS") == "bass"
    assert tax.target_of("drum set") == "drums" and tax.target_of("piano") is None
    assert tax.unclaimed(["piano", "bass", "organ", "piano"]) == ["organ", "piano"]
    e = TrackEntry("t", None, {"S1": SourceRef("/a.wav", label="electric bass"),
                               "S2": SourceRef("/b.wav", label="Bass", extra_paths=("/c.wav",)),
                               "piano": SourceRef("/d.wav")})
    out = tax.apply(e)
    assert list(out.stems) == ["bass"]
    assert out.stems["bass"].paths == ("/a.wav", "/b.wav", "/c.wav")
    assert out.stems["bass"].label == "electric bass, Bass"
    assert out.meta == {"labels": {"bass": ["electric bass", "Bass"]}, "unclaimed": ["piano"]}
    assert Taxonomy.from_mapping(tax.to_mapping()) == tax


def test_load_from_yaml_file(tmp_path):
    p = tmp_path / "tax.yaml"
    p.write_text(yaml.safe_dump({"taxonomy": TAX}))
    assert Taxonomy.load(p).catch_all == "rest"
    p.write_text("bass: [a, b\n")
    with pytest.raises(RecipeError, match=rf"{p}: not valid YAML/JSON"):
        Taxonomy.load(p)
    with pytest.raises(RecipeError, match=r"nope.yaml: cannot read taxonomy file"):
        Taxonomy.load(tmp_path / "nope.yaml")


def test_medleydb_with_catch_all(tmp_path):
    root = make_medleydb(tmp_path / "M")
    idx = Index.build(root, cache_dir=tmp_path / "c", taxonomy=TAX)
    t = idx.track("LizNelson_Rainfall")
    assert sorted(t.stems) == ["bass", "rest", "vocals"]
    # MedleyDB already summed its two "electric bass" stems into one labelled stem
    assert t.meta["labels"] == {"vocals": ["female singer"], "bass": ["electric bass"],
                                "rest": ["drum set"]}
    sd = root / "Audio/LizNelson_Rainfall/LizNelson_Rainfall_STEMS"
    np.testing.assert_array_equal(idx.read(t.id, "bass"),
                                  _read(sd / "LizNelson_Rainfall_STEM_02.wav")
                                  + _read(sd / "LizNelson_Rainfall_STEM_04.wav"))
    text = summary(idx)
    assert "taxonomy: bass = electric bass, double bass, Bass; vocals = " in text
    assert "unclaimed labels (dropped): none" in text


def test_unclaimed_labels_listed_and_kept_on_reload(tmp_path, capsys):
    root = make_medleydb(tmp_path / "M")
    tax = tmp_path / "tax.yaml"
    tax.write_text(yaml.safe_dump({"bass": ["electric bass"]}))
    idx = Index.build(root, cache_dir=tmp_path / "c", taxonomy=tax)
    assert idx.stem_names == ["bass"]
    assert idx.track("LizNelson_Rainfall").meta["unclaimed"] == ["drum set", "female singer"]
    line = "unclaimed labels (dropped): drum set (1 tracks), female singer (1 tracks)"
    assert line in summary(idx)
    again = Index.load(idx.index_file)
    assert line in summary(again)
    # a changed file triggers a rebuild that keeps the taxonomy
    stem = root / "Audio/LizNelson_Rainfall/LizNelson_Rainfall_STEMS/LizNelson_Rainfall_STEM_02.wav"
    sf.write(str(stem), _read(stem).T * 0.5, 44100, subtype="FLOAT")
    rebuilt = Index.load(idx.index_file)
    assert rebuilt.stem_names == ["bass"] and line in summary(rebuilt)
    # CLI: stemforge info ROOT --taxonomy FILE
    assert main(["info", str(root), "--taxonomy", str(tax), "--cache", str(tmp_path / "c2"),
                 "--no-progress"]) == 0
    assert line in capsys.readouterr().out
    # without a taxonomy, info lists the labels so a user can write one
    plain = Index.build(root, cache_dir=tmp_path / "c3")
    assert ("instrument labels (map them with --taxonomy): drum set, electric bass, "
            "female singer") in summary(plain)


def test_one_mapping_across_datasets(tmp_path):
    """The same mapping claims MedleyDB labels, Slakh inst_class and MoisesDB stem types."""
    slakh = Index.build(make_slakh(tmp_path / "S"), cache_dir=tmp_path / "c1", taxonomy=TAX)
    assert slakh.stem_names == ["bass", "rest"]
    t = slakh.track("train/Track00001")
    assert t.meta["labels"]["rest"] == ["Guitar", "Drums"]  # stem order of metadata.yaml
    moises = Index.build(make_moisesdb(tmp_path / "D"), cache_dir=tmp_path / "c2", taxonomy=TAX)
    assert moises.stem_names == ["bass", "rest", "vocals"]


def test_streams_of_one_file_cannot_be_summed(tmp_path):
    root = make_musdb18(tmp_path / "m")
    cache = tmp_path / "c"
    with pytest.raises(IndexError_, match=r"track 'test/A - B': taxonomy target 'music' would "
                                          r"sum drums, bass, which are single streams"):
        Index.build(root, cache_dir=cache, taxonomy={"music": ["drums", "bass"]})
    assert cache_files(cache) == []
    # renaming a single stream is fine; the layout's groups that no longer apply are dropped
    idx = Index.build(root, cache_dir=cache, taxonomy={"voice": ["vocals"]})
    assert idx.stem_names == ["voice"] and idx.groups == {}


def test_taxonomy_claiming_nothing(tmp_path):
    root = make_medleydb(tmp_path / "M")
    with pytest.raises(IndexError_, match=r"the taxonomy claims no stem of any track "
                                          r"\(unclaimed labels: drum set, electric bass"):
        Index.build(root, cache_dir=tmp_path / "c", taxonomy={"x": ["kazoo"]})
    assert cache_files(tmp_path / "c") == []
