"""DSD100, MedleyDB, Slakh2100, MoisesDB, MIR-1K/iKala channel split and CSV manifest layouts.

Each test builds a faithful miniature of the dataset's documented tree (metadata included) with
0.5 s synthetic audio, indexes it, and checks stems, splits, labels and the audio read back.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import cache_files, make_musdb18hq, tone, write_stem_mp4, write_wav
from stemforge import layouts
from stemforge.errors import AudioError, LayoutError
from stemforge.index import Index

SEC = 0.5


def _read(path) -> np.ndarray:
    a, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return a.T


# ---------------------------------------------------------------------------- miniatures
def make_dsd100(root: Path) -> Path:
    for k, (folder, name) in enumerate([("Dev", "051 - AM Contra - Heart Peripheral"),
                                        ("Test", "005 - Angela Thomas Wade - Milk Cow Blues")]):
        stems = {s: tone(100 * (j + 1) + k, SEC, seed=j + 5 * k)
                 for j, s in enumerate(["bass", "drums", "other", "vocals"])}
        for s, a in stems.items():
            write_wav(root / "Sources" / folder / name / f"{s}.wav", a)
        write_wav(root / "Mixtures" / folder / name / "mixture.wav", sum(stems.values()))
    return root


MEDLEY_STEMS = {  # id -> (instrument, component)
    "S01": ("female singer", "melody"),
    "S02": ("electric bass", "bass"),
    "S03": ("drum set", ""),
    "S04": ("electric bass", "bass"),
}


def medley_metadata(track: str) -> dict:
    stems = {}
    for i, (sid, (inst, comp)) in enumerate(MEDLEY_STEMS.items(), start=1):
        stems[sid] = {"component": comp, "filename": f"{track}_STEM_{i:02d}.wav",
                      "instrument": inst,
                      "raw": {"R01": {"filename": f"{track}_RAW_{i:02d}_01.wav",
                                      "instrument": inst}}}
    return {"album": "", "artist": track.split("_")[0], "composer": "", "excerpt": "no",
            "genre": "Singer/Songwriter", "has_bleed": "no", "instrumental": "no",
            "mix_filename": f"{track}_MIX.wav", "origin": "Dolan Studio", "producer": "",
            "raw_dir": f"{track}_RAW", "stem_dir": f"{track}_STEMS", "stems": stems,
            "title": track.split("_")[1], "version": 1.2, "website": ""}


def make_medleydb(root: Path, track: str = "LizNelson_Rainfall") -> Path:
    tdir = root / "Audio" / track
    total = 0
    for i, sid in enumerate(MEDLEY_STEMS, start=1):
        a = tone(150 * i, SEC, seed=i)
        total = total + a
        write_wav(tdir / f"{track}_STEMS" / f"{track}_STEM_{i:02d}.wav", a)
        write_wav(tdir / f"{track}_RAW" / f"{track}_RAW_{i:02d}_01.wav", a)
    write_wav(tdir / f"{track}_MIX.wav", total)
    (tdir / f"{track}_METADATA.yaml").write_text(yaml.safe_dump(medley_metadata(track)))
    return root


SLAKH_STEMS = {  # id -> (inst_class, program_num, is_drum, audio_rendered)
    "S00": ("Bass", 33, False, True),
    "S01": ("Guitar", 25, False, True),
    "S02": ("Piano", 0, False, False),
    "S03": ("Guitar", 29, False, True),
    "S04": ("Drums", 128, True, True),
}


def slakh_metadata() -> dict:
    stems = {sid: {"audio_rendered": r, "inst_class": c, "integrated_loudness": -20.0,
                   "is_drum": d, "midi_program_name": "x", "midi_saved": True,
                   "plugin_name": "x.nkm", "program_num": p}
             for sid, (c, p, d, r) in SLAKH_STEMS.items()}
    return {"UUID": "0" * 32, "audio_dir": "stems", "lmd_midi_dir": "lmd_matched/x.mid",
            "midi_dir": "MIDI", "normalization_factor": -13.0, "normalized": True,
            "overall_gain": 0.5, "stems": stems, "target_peak": -1.0}


def make_slakh(root: Path) -> Path:
    for k, (folder, track) in enumerate([("train", "Track00001"), ("validation", "Track01501"),
                                         ("test", "Track01876")]):
        tdir = root / folder / track
        total = 0
        for i, (sid, (_, _, _, rendered)) in enumerate(SLAKH_STEMS.items()):
            (tdir / "MIDI").mkdir(parents=True, exist_ok=True)
            (tdir / "MIDI" / f"{sid}.mid").write_bytes(b"MThd")
            if rendered:
                a = tone(80 * (i + 1) + k, SEC, channels=1, seed=i + k)
                total = total + a
                write_wav(tdir / "stems" / f"{sid}.flac", a, subtype="PCM_16")
        write_wav(tdir / "mix.flac", total * 0.5, subtype="PCM_16")
        (tdir / "all_src.mid").write_bytes(b"MThd")
        (tdir / "metadata.yaml").write_text(yaml.safe_dump(slakh_metadata()))
    return root


MOISES_SONG = "0a7c1b4e-1d2f-4c3a-9b8e-7f6d5c4b3a21"


def moises_data(song_id: str = MOISES_SONG) -> dict:
    return {"song": "Song", "artist": "Artist", "genre": "pop", "stems": [
        {"stemName": "vocals", "id": "v-stem", "tracks": [
            {"trackType": "lead female singer", "id": f"{song_id}-v1", "extension": "wav",
             "has_bleed": False},
            {"trackType": "background vocals", "id": f"{song_id}-v2", "extension": "wav",
             "has_bleed": False}]},
        {"stemName": "bass", "id": "b-stem", "tracks": [
            {"trackType": "bass guitar", "id": f"{song_id}-b1", "extension": "wav",
             "has_bleed": False}]},
        {"stemName": "other_keys", "id": "k-stem", "tracks": [
            {"trackType": "synth pad", "id": f"{song_id}-k1", "extension": "wav",
             "has_bleed": True}]},
    ]}


def make_moisesdb(root: Path) -> Path:
    sdir = root / "moisesdb_v0.1" / "provider_a" / MOISES_SONG
    data = moises_data()
    for i, stem in enumerate(data["stems"]):
        for j, t in enumerate(stem["tracks"]):
            write_wav(sdir / stem["stemName"] / f"{t['id']}.wav", tone(120 * (i + 1) + 37 * j,
                                                                        SEC, seed=i * 3 + j))
    (sdir / "data.json").write_text(json.dumps(data, indent=2))
    return root


def make_mir1k(root: Path) -> Path:
    for k, clip in enumerate(["abjones_1_01", "amy_15_03"]):
        music, voice = tone(220 + k, SEC, 16000, channels=1, seed=k), tone(440, SEC, 16000, 1, seed=9)
        write_wav(root / "Wavfile" / f"{clip}.wav", np.concatenate([music, voice]), 16000,
                  subtype="PCM_16")
        (root / "PitchLabel").mkdir(parents=True, exist_ok=True)
        (root / "PitchLabel" / f"{clip}.pv").write_text("0\n0\n")
    write_wav(root / "UndividedWavfile" / "abjones_1.wav", tone(300, SEC, 16000), 16000)
    return root


def make_csv(root: Path) -> Path:
    rows = ["track,stem,path,split"]
    for k, split in enumerate(["train", "test"]):
        for s in ("guitar", "voice"):
            p = write_wav(root / "audio" / f"song{k}_{s}.wav", tone(200 + 50 * k, SEC, seed=k))
            rows.append(f"song{k},{s},audio/{p.name},{split}")
    extra = write_wav(root / "audio" / "song0_voice2.wav", tone(600, SEC, seed=7))
    rows.append(f"song0,voice,audio/{extra.name},train")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def make_musdb18(root: Path) -> Path:
    write_stem_mp4(root / "test" / "A - B.stem.mp4", [tone(200 + i, SEC) for i in range(5)])
    return root


def make_trackfolder(root: Path) -> Path:
    for k in range(2):
        for s in ("lead", "keys"):
            write_wav(root / f"song{k}" / f"{s}.wav", tone(300 + k, SEC))
    return root


def make_labelfolder(root: Path) -> Path:
    write_wav(root / "vocals" / "take1.wav", tone(440, SEC))
    write_wav(root / "drums" / "loop.wav", tone(100, SEC))
    return root


BUILDERS = {
    "dsd100": make_dsd100, "medleydb": make_medleydb, "slakh": make_slakh,
    "moisesdb": make_moisesdb, "channelsplit": make_mir1k, "csv": make_csv,
    "musdb18": make_musdb18, "musdb18hq": lambda r: make_musdb18hq(r, seconds=SEC),
    "trackfolder": make_trackfolder, "labelfolder": make_labelfolder,
}


# ---------------------------------------------------------------------------- detection
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_autodetection_picks_each_layout(tmp_path, name):
    root = BUILDERS[name](tmp_path / name)
    assert layouts.detect(root).name == name


def test_ambiguous_root_lists_candidates(tmp_path):
    root = make_csv(make_dsd100(tmp_path / "both"))
    with pytest.raises(LayoutError, match=r"ambiguous layout, it matches csv, dsd100; "
                                          r"pass --layout"):
        Index.build(root)
    assert Index.build(root, layout="dsd100", cache_dir=tmp_path / "c").layout == "dsd100"


# ---------------------------------------------------------------------------- each layout
def test_dsd100(tmp_path):
    root = make_dsd100(tmp_path / "DSD100")
    idx = Index.build(root, cache_dir=tmp_path / "c")
    assert idx.layout == "dsd100"
    assert {t.id: t.split for t in idx.tracks} == {
        "Dev/051 - AM Contra - Heart Peripheral": "train",
        "Test/005 - Angela Thomas Wade - Milk Cow Blues": "test"}
    t = idx.track("Dev/051 - AM Contra - Heart Peripheral")
    assert sorted(t.stems) == ["bass", "drums", "other", "vocals"] and t.mixture is not None
    assert t.residual_db is None or t.residual_db < -100  # mixture.wav = exact stem sum here
    np.testing.assert_array_equal(
        idx.read(t.id, "vocals"), _read(root / "Sources/Dev" / t.name / "vocals.wav"))
    assert "accompaniment" in idx.groups


def test_medleydb_labels_and_summed_duplicates(tmp_path):
    root = make_medleydb(tmp_path / "MedleyDB")
    idx = Index.build(root, cache_dir=tmp_path / "c")
    assert idx.layout == "medleydb"
    t = idx.track("LizNelson_Rainfall")
    assert sorted(t.stems) == ["drum set", "electric bass", "female singer"]
    assert t.stems["electric bass"].label == "electric bass"
    assert t.meta["stem_ids"]["electric bass"] == ["S02", "S04"]
    assert t.meta["components"]["S01"] == "melody" and t.meta["artist"] == "LizNelson"
    sd = root / "Audio/LizNelson_Rainfall/LizNelson_Rainfall_STEMS"
    np.testing.assert_array_equal(
        idx.read(t.id, "electric bass"),
        _read(sd / "LizNelson_Rainfall_STEM_02.wav") + _read(sd / "LizNelson_Rainfall_STEM_04.wav"))
    assert t.mixture is not None and t.residual_db < -100


def test_medleydb_metadata_in_separate_folder(tmp_path):
    root = make_medleydb(tmp_path / "M")
    meta = root / "Audio/LizNelson_Rainfall/LizNelson_Rainfall_METADATA.yaml"
    (root / "Metadata").mkdir()
    shutil.move(meta, root / "Metadata" / meta.name)
    idx = Index.build(root, cache_dir=tmp_path / "c")
    assert idx.layout == "medleydb" and len(idx.track("LizNelson_Rainfall").stems) == 3


def test_slakh_skips_unrendered_stems_with_a_note(tmp_path):
    root = make_slakh(tmp_path / "slakh2100_flac_redux")
    idx = Index.build(root, cache_dir=tmp_path / "c")
    assert idx.layout == "slakh"
    assert {t.id: t.split for t in idx.tracks} == {
        "train/Track00001": "train", "validation/Track01501": "valid", "test/Track01876": "test"}
    t = idx.track("train/Track00001")
    assert sorted(t.stems) == ["Bass", "Drums", "Guitar"]  # Piano (S02) was not rendered
    assert t.channels == 1 and t.sample_rate == 44100
    assert any("S02 (Piano) skipped: audio_rendered is false" in n for n in t.notes)
    assert sorted(t.meta["stems"]) == ["S00", "S01", "S03", "S04"]
    sd = root / "train/Track00001/stems"
    np.testing.assert_array_equal(idx.read(t.id, "Guitar"),
                                  _read(sd / "S01.flac") + _read(sd / "S03.flac"))
    from stemforge.commands.info import summary
    assert "note: train/Track00001: stem S02 (Piano) skipped" in summary(idx)


def test_moisesdb_sums_sources_of_a_stem(tmp_path):
    root = make_moisesdb(tmp_path / "moises")
    idx = Index.build(root, cache_dir=tmp_path / "c")
    assert idx.layout == "moisesdb"
    t = idx.track(f"moisesdb_v0.1/provider_a/{MOISES_SONG}")
    assert sorted(t.stems) == ["bass", "other_keys", "vocals"] and t.mixture is None
    assert t.meta["sources"]["vocals"] == ["lead female singer", "background vocals"]
    assert t.meta["song"] == "Song"
    vd = root / "moisesdb_v0.1/provider_a" / MOISES_SONG / "vocals"
    expected = _read(vd / f"{MOISES_SONG}-v1.wav") + _read(vd / f"{MOISES_SONG}-v2.wav")
    np.testing.assert_array_equal(idx.read(t.id, "vocals"), expected)
    # the analysed loudness is that of the sum, not of the first file
    assert idx.loudness(t.id, "vocals", 0, t.frames) == pytest.approx(
        t.stems["vocals"].loudness, abs=1e-9)
    # root at the provider level finds the same song
    idx2 = Index.build(root / "moisesdb_v0.1" / "provider_a", layout="moisesdb",
                       cache_dir=tmp_path / "c3")
    assert [x.id for x in idx2.tracks] == [MOISES_SONG]


def test_channelsplit_left_accompaniment_right_vocals(tmp_path):
    root = make_mir1k(tmp_path / "MIR-1K")
    idx = Index.build(root, cache_dir=tmp_path / "c")
    assert idx.layout == "channelsplit"
    assert [t.id for t in idx.tracks] == ["abjones_1_01", "amy_15_03"]  # UndividedWavfile ignored
    t = idx.track("abjones_1_01")
    assert (t.channels, t.sample_rate, t.frames) == (1, 16000, 8000)
    both = _read(root / "Wavfile/abjones_1_01.wav")
    np.testing.assert_array_equal(idx.read(t.id, "accompaniment"), both[:1])
    np.testing.assert_array_equal(idx.read(t.id, "vocals"), both[1:])
    np.testing.assert_array_equal(idx.read(t.id, "linear_mixture"), both[:1] + both[1:])
    assert t.stems["vocals"].channel == 1
    # the channel survives a reload from index.jsonl, and the StemCache holds one channel
    again = Index.load(idx.index_file)
    np.testing.assert_array_equal(again.read(t.id, "vocals", 100, 50), both[1:, 100:150])
    from stemforge.prepare import prepare
    prepare(again, workers=1)
    assert again.cache.get(t.stems["vocals"].key).shape == (1, 8000)
    np.testing.assert_array_equal(again.read(t.id, "vocals"), both[1:])


def test_csv_manifest(tmp_path):
    root = make_csv(tmp_path / "mine")
    idx = Index.build(root, cache_dir=tmp_path / "c")
    assert idx.layout == "csv"
    assert {t.id: t.split for t in idx.tracks} == {"train/song0": "train", "test/song1": "test"}
    np.testing.assert_array_equal(
        idx.read("train/song0", "voice"),
        _read(root / "audio/song0_voice.wav") + _read(root / "audio/song0_voice2.wav"))


def test_csv_manifest_mixture_label_and_channel(tmp_path):
    root = tmp_path / "m"
    st = write_wav(root / "a" / "st.wav", np.concatenate([tone(200, SEC, channels=1),
                                                          tone(500, SEC, channels=1, seed=3)]))
    mix = write_wav(root / "a" / "mix.wav", _read(st).sum(0, keepdims=True))
    (root / "list.csv").write_text(
        "track,stem,path,label,channel\n"
        f"t,music,{st},backing track,0\n"
        f"t,voice,a/st.wav,,1\n"
        f"t,mixture,{mix.relative_to(root)},,\n")
    idx = Index.build(root, cache_dir=tmp_path / "c")
    t = idx.track("t")
    assert t.stems["music"].label == "backing track" and t.mixture is not None
    assert t.residual_db is not None and t.residual_db < -100
    np.testing.assert_array_equal(idx.read("t", "voice"), _read(st)[1:])


# ---------------------------------------------------------------------------- bad input
def _break(tmp_path, case):
    if case == "medley-yaml":
        root = make_medleydb(tmp_path / "d")
        bad = root / "Audio/LizNelson_Rainfall/LizNelson_Rainfall_METADATA.yaml"
        bad.write_text("stems: {S01: [unclosed\n")
        return root, LayoutError, rf"{bad}: malformed YAML metadata"
    if case == "medley-missing":
        root = make_medleydb(tmp_path / "d")
        gone = root / "Audio/LizNelson_Rainfall/LizNelson_Rainfall_STEMS/LizNelson_Rainfall_STEM_03.wav"
        gone.unlink()
        return root, LayoutError, (r"LizNelson_Rainfall_METADATA.yaml: lists stem S03 "
                                   rf"{gone}, which does not exist")
    if case == "medley-nostems":
        root = make_medleydb(tmp_path / "d")
        bad = root / "Audio/LizNelson_Rainfall/LizNelson_Rainfall_METADATA.yaml"
        bad.write_text(yaml.safe_dump({"artist": "x"}))
        return root, LayoutError, rf"{bad}: metadata lacks 'stems'"
    if case == "slakh-yaml":
        root = make_slakh(tmp_path / "d")
        bad = root / "test/Track01876/metadata.yaml"
        bad.write_text("- just\n- a list\n")
        return root, LayoutError, rf"{bad}: expected a mapping at the top level"
    if case == "slakh-missing":
        root = make_slakh(tmp_path / "d")
        (root / "train/Track00001/stems/S04.flac").unlink()
        return root, LayoutError, (r"train/Track00001/metadata.yaml: lists rendered stem S04 "
                                   r".*S04.flac, which does not exist")
    if case == "slakh-field":
        root = make_slakh(tmp_path / "d")
        meta = slakh_metadata()
        del meta["stems"]["S01"]["inst_class"]
        (root / "train/Track00001/metadata.yaml").write_text(yaml.safe_dump(meta))
        return root, LayoutError, r"Track00001/metadata.yaml: metadata lacks 'stems.S01.inst_class'"
    if case == "moises-json":
        root = make_moisesdb(tmp_path / "d")
        bad = next(root.rglob("data.json"))
        bad.write_text('{"stems": [')
        return root, LayoutError, rf"{bad}: malformed JSON metadata"
    if case == "moises-missing":
        root = make_moisesdb(tmp_path / "d")
        gone = next(root.rglob(f"{MOISES_SONG}-v2.wav"))
        gone.unlink()
        return root, LayoutError, rf"data.json: lists vocals source {gone}, which does not exist"
    if case == "csv-missing":
        root = make_csv(tmp_path / "d")
        (root / "audio/song1_voice.wav").unlink()
        return root, LayoutError, r"manifest.csv:5: lists .*song1_voice.wav, which does not exist"
    if case == "csv-row":
        root = make_csv(tmp_path / "d")
        with open(root / "manifest.csv", "a") as fh:
            fh.write("song9,voice\n")
        return root, LayoutError, r"manifest.csv:7: 2 fields, the header has 4"
    if case == "csv-split":
        root = make_csv(tmp_path / "d")
        with open(root / "manifest.csv", "a") as fh:
            fh.write("song0,bass,audio/song0_voice2.wav,test\n")
        return root, LayoutError, r"manifest.csv:7: track 'song0' has split 'test' here but 'train'"
    if case == "mir1k-mono":
        root = make_mir1k(tmp_path / "d")
        bad = write_wav(root / "Wavfile" / "bad_1_01.wav", tone(300, SEC, 16000, channels=1), 16000)
        return root, AudioError, rf"{bad}: has 1 channel\(s\), channel 1 expected"
    if case == "dsd-missing":
        root = make_dsd100(tmp_path / "d")
        (root / "Sources/Test/005 - Angela Thomas Wade - Milk Cow Blues/other.wav").unlink()
        return root, LayoutError, r"Milk Cow Blues: DSD100 track is missing other.wav"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "medley-yaml", "medley-missing", "medley-nostems", "slakh-yaml", "slakh-missing",
    "slakh-field", "moises-json", "moises-missing", "csv-missing", "csv-row", "csv-split",
    "mir1k-mono", "dsd-missing",
])
def test_bad_metadata_names_the_file_and_writes_nothing(tmp_path, case):
    root, exc, match = _break(tmp_path, case)
    cache = tmp_path / "cache"
    with pytest.raises(exc, match=match):
        Index.build(root, cache_dir=cache, workers=1)
    assert cache_files(cache) == []
