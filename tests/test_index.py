"""Layouts, the cached Index, the StemCache, and their bad-input paths."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import stempeg

from conftest import MUSDB_STEMS, cache_files, make_musdb18hq, tone, write_stem_mp4, write_wav
from stemforge import layouts
from stemforge.audio import io
from stemforge.errors import AudioError, IndexError_, LayoutError
from stemforge.index import Index
from stemforge.prepare import prepare


def test_real_excerpt_musdb18_and_musdb18hq_identical(musdb_excerpt, tmp_path):
    idx = Index.build(musdb_excerpt, cache_dir=tmp_path / "c1")
    assert idx.layout == "musdb18" and len(idx) == 1
    t = idx.tracks[0]
    assert t.id == "test/The Easton Ellises - Falcon 69" and t.split == "test"
    assert (t.sample_rate, t.channels, t.frames) == (44100, 2, 268288)
    assert sorted(t.stems) == sorted(MUSDB_STEMS) and t.mixture is not None
    # the real mixture is mastered: about -15 dB residual vs the stem sum (reference.md)
    assert -17 < t.residual_db < -13
    # write it out as MUSDB18-HQ wavs (float, exact), index again: identical samples
    hq = tmp_path / "hq" / "test" / t.name
    for s in MUSDB_STEMS:
        io.write(hq / f"{s}.wav", idx.read(t.id, s), 44100)
    io.write(hq / "mixture.wav", idx.read_mixture(t.id), 44100)
    idx2 = Index.build(tmp_path / "hq", cache_dir=tmp_path / "c2")
    assert idx2.layout == "musdb18hq"
    t2 = idx2.tracks[0]
    assert t2.id == t.id and t2.frames == t.frames
    for s in MUSDB_STEMS:
        np.testing.assert_array_equal(idx.read(t.id, s), idx2.read(t.id, s))
        assert t2.stems[s].loudness == pytest.approx(t.stems[s].loudness, abs=1e-9)
    np.testing.assert_array_equal(idx.read(t.id, "accompaniment"),
                                  idx.read(t.id, "drums") + idx.read(t.id, "bass")
                                  + idx.read(t.id, "other"))


def test_musdb_official_split(tmp_path):
    root = tmp_path / "m"
    names = {"Leaf - Summerghost": "train", "Some - Train Song": "train", "X - Test": "test"}
    for name, folder in names.items():
        write_stem_mp4(root / folder / f"{name}.stem.mp4", [tone(200 + i, 0.5) for i in range(5)])
    idx = Index.build(root, cache_dir=tmp_path / "c")
    splits = {t.name: t.split for t in idx.tracks}
    assert splits == {"Leaf - Summerghost": "valid", "Some - Train Song": "train",
                      "X - Test": "test"}
    assert layouts.musdb18.VALIDATION_TRACKS.__len__() == 14


def test_trackfolder_and_labelfolder(tmp_path):
    tf = tmp_path / "tf"
    for split in ("train", "valid"):
        for k in range(2):
            for s in ("lead", "keys"):
                write_wav(tf / split / f"song{k}" / f"{s}.flac", tone(300 + k, 0.5), subtype="PCM_16")
    idx = Index.build(tf, cache_dir=tmp_path / "c1")
    assert idx.layout == "trackfolder"
    assert {t.split for t in idx.tracks} == {"train", "valid"}
    assert idx.stem_names == ["keys", "lead"]

    lf = tmp_path / "lf"
    write_wav(lf / "vocals" / "take1.wav", tone(440, 0.7))
    write_wav(lf / "vocals" / "take2.wav", tone(450, 0.9))
    write_wav(lf / "drums" / "loop.wav", tone(100, 1.2))
    idx = Index.build(lf, cache_dir=tmp_path / "c2")
    assert idx.layout == "labelfolder"
    assert [t.id for t in idx.tracks_with("vocals")] == ["vocals/take1", "vocals/take2"]
    assert idx.tracks_with("drums")[0].frames == int(1.2 * 44100)


def test_ambiguous_and_unknown_layout(tmp_path):
    root = tmp_path / "amb"
    write_wav(root / "only" / "a.wav", tone(440, 0.3))
    write_wav(root / "only" / "b.wav", tone(440, 0.3))
    with pytest.raises(LayoutError, match="ambiguous layout, it matches labelfolder, trackfolder"):
        Index.build(root)
    assert Index.build(root, layout="trackfolder").layout == "trackfolder"
    with pytest.raises(LayoutError, match="unknown layout 'nope'; known layouts: "):
        Index.build(root, layout="nope")
    other = tmp_path / "other"
    (other / "x").mkdir(parents=True)
    (other / "x" / "readme.txt").write_text("hi")
    with pytest.raises(LayoutError, match="no known dataset layout matches"):
        Index.build(other)


def test_missing_and_empty_root(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        Index.build(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="empty"):
        Index.build(tmp_path / "empty")


def _bad_track(root: Path, stem: str, audio=None, sr=44100, raw: bytes | None = None):
    make_musdb18hq(root, {"Good - Song": "train", "Bad - Song": "train"}, seconds=1.0)
    p = root / "train" / "Bad - Song" / f"{stem}.wav"
    if raw is not None:
        p.write_bytes(raw)
    else:
        write_wav(p, audio, sr)
    return p


@pytest.mark.parametrize(
    "case, match",
    [
        ("rate", r"track 'train/Bad - Song': stems have different sample rates .*bass.wav=22050 Hz"),
        ("channels", r"stems have different channel counts .*bass.wav=1"),
        ("length", r"stem lengths differ by 22050 frames, more than the 2048-frame tolerance"),
        ("nan", r"bass.wav: 1 NaN/inf samples"),
        ("corrupt", r"bass.wav: not a readable audio file|bass.wav: cannot decode"),
        ("truncated", r"bass.wav: (not a readable|cannot decode|audio file holds no)"),
        ("notaudio", r"bass.wav: (not a readable|cannot decode)"),
    ],
)
def test_bad_stems_leave_nothing(tmp_path, case, match):
    root = tmp_path / "ds"
    if case == "rate":
        _bad_track(root, "bass", tone(110, 1.0, sr=22050), sr=22050)
    elif case == "channels":
        _bad_track(root, "bass", tone(110, 1.0, channels=1))
    elif case == "length":
        _bad_track(root, "bass", tone(110, 1.5))
    elif case == "nan":
        a = tone(110, 1.0)
        a[0, 5] = np.nan
        _bad_track(root, "bass", a)
    elif case == "corrupt":
        _bad_track(root, "bass", raw=b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x01" * 40)
    elif case == "truncated":
        good = write_wav(tmp_path / "full.wav", tone(110, 1.0), subtype="PCM_16").read_bytes()
        _bad_track(root, "bass", raw=good[:40])
    elif case == "notaudio":
        _bad_track(root, "bass", raw=b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    cache = tmp_path / "cache"
    with pytest.raises(AudioError, match=match):
        Index.build(root, cache_dir=cache, workers=1)
    assert cache_files(cache) == []


def test_length_within_tolerance_is_trimmed(tmp_path):
    root = tmp_path / "ds"
    p = _bad_track(root, "bass", tone(110, 1.0 + 1000 / 44100))
    idx = Index.build(root, cache_dir=tmp_path / "c")
    t = idx.track("train/Bad - Song")
    assert t.frames == 44100 and "trimmed to 44100" in t.notes[0]
    assert p.exists()


def test_bad_mp4_files(tmp_path):
    root = tmp_path / "m"
    write_stem_mp4(root / "train" / "Three - Streams.stem.mp4", [tone(300, 0.5)] * 3)
    with pytest.raises(AudioError, match=r"Three - Streams.stem.mp4: has 3 audio streams, stream 3"):
        Index.build(root, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()
    root2 = tmp_path / "m2"
    (root2 / "test").mkdir(parents=True)
    data = open(stempeg.example_stem_path(), "rb").read()
    (root2 / "test" / "Cut - Short.stem.mp4").write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(AudioError, match=r"Cut - Short.stem.mp4: .*(truncated|corrupt|not a readable)"):
        Index.build(root2, cache_dir=tmp_path / "c2")
    assert not (tmp_path / "c2").exists()


def test_incremental_reindex_detects_changes(tmp_path):
    root = make_musdb18hq(tmp_path / "hq", {"A - 1": "train", "B - 2": "train", "C - 3": "test"},
                          seconds=1.0)
    cache = tmp_path / "c"
    idx = Index.build(root, cache_dir=cache)
    before = {t.id: t.stems["vocals"].key for t in idx.tracks}
    n_analysis = len(list((cache / "analysis").glob("*.npy")))
    # unchanged: nothing re-analysed
    idx2 = Index.build(root, cache_dir=cache)
    assert {t.id: t.stems["vocals"].key for t in idx2.tracks} == before
    assert len(list((cache / "analysis").glob("*.npy"))) == n_analysis
    # edit one stem (louder), add a track, remove a track
    time.sleep(0.01)
    write_wav(root / "train" / "A - 1" / "vocals.wav", tone(999, 1.0, amp=0.9))
    make_musdb18hq(root, {"D - 4": "test"}, seconds=1.0, seed=7)
    for f in (root / "train" / "B - 2").iterdir():
        f.unlink()
    (root / "train" / "B - 2").rmdir()
    # loading the old index file notices the change (never silently stale)
    with pytest.raises(IndexError_, match="stale"):
        Index.load(cache / "index.jsonl", refresh=False)
    idx3 = Index.load(cache / "index.jsonl")
    assert sorted(t.id for t in idx3.tracks) == ["test/C - 3", "test/D - 4", "train/A - 1"]
    a = idx3.track("train/A - 1")
    assert a.stems["vocals"].key != before["train/A - 1"]
    assert a.stems["vocals"].loudness > idx.track("train/A - 1").stems["vocals"].loudness + 5
    assert a.stems["drums"].key == idx.track("train/A - 1").stems["drums"].key


def test_stem_cache_prepare_and_reads(tmp_path, musdb_excerpt):
    idx = Index.build(musdb_excerpt, cache_dir=tmp_path / "c")
    tid = idx.tracks[0].id
    direct = idx.read(tid, "vocals", 10000, 44100)
    st = prepare(idx, workers=1)
    assert st.stems_written == 5 and st.stems_skipped == 0
    assert idx.cache.get(idx.tracks[0].stems["vocals"].key) is not None
    np.testing.assert_array_equal(idx.read(tid, "vocals", 10000, 44100), direct)
    assert prepare(idx).stems_written == 0  # resumable / idempotent
    assert not [p for p in (tmp_path / "c" / "audio").iterdir() if p.name.startswith(".")]


def test_read_errors(hq_root, tmp_path):
    idx = Index.build(hq_root, cache_dir=tmp_path / "c")
    t = idx.tracks[0]
    with pytest.raises(IndexError_, match="window .* is outside"):
        idx.read(t.id, "vocals", t.frames - 10, 100)
    with pytest.raises(IndexError_, match="'piano' is neither a stem nor a group"):
        idx.read(t.id, "piano")
    with pytest.raises(IndexError_, match="track 'nope' is not in the index"):
        idx.track("nope")


def test_loudness_from_index_matches_pyloudnorm(hq_root, tmp_path):
    import pyloudnorm

    idx = Index.build(hq_root, cache_dir=tmp_path / "c")
    t = idx.tracks[0]
    for start, n in [(0, 44100), (12345, 50000)]:
        ours = idx.loudness(t.id, "bass", start, n)
        ref = pyloudnorm.Meter(44100).integrated_loudness(idx.read(t.id, "bass", start, n).T)
        assert abs(ours - ref) < 0.05


def test_cache_without_zero_state_corrections_is_reanalysed(hq_root, tmp_path):
    """A cache written before the corrections existed (``<key>.npy`` only) is re-analysed on
    the next build (never read without them); the energies come out the same."""
    cache = tmp_path / "cache"
    index = Index.build(hq_root, cache_dir=cache)
    adir = cache / "analysis"
    zs = sorted(adir.glob("*.zs1.npy"))
    assert zs and len(zs) == len([p for p in adir.glob("*.npy") if ".zs1" not in p.name])
    before = {p.name: p.read_bytes() for p in adir.glob("*.npy") if ".zs1" not in p.name}
    t, s = index.tracks[0].id, MUSDB_STEMS[0]
    L = index.loudness(t, s, 441 * 7, 44100)
    for p in zs:
        p.unlink()
    again = Index.build(hq_root, cache_dir=cache)
    assert sorted(adir.glob("*.zs1.npy")) == zs
    assert {p.name: p.read_bytes() for p in adir.glob("*.npy") if ".zs1" not in p.name} == before
    assert again.loudness(t, s, 441 * 7, 44100) == L
