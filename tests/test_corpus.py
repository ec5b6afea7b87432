"""`stemforge experiment corpus`: music21 scores through FluidSynth into a musdb18hq-layout set.

Three short songs (4-6 s at 16 kHz) from small scores keep this to a few seconds of rendering.
Needs the `experiment` extra (music21, pyfluidsynth) and Debian's fluidsynth + fluid-soundfont-gm
(installed by .ci/run); without them these tests fail rather than skip.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import cache_files
from stemforge import Index
from stemforge.cli import main
from stemforge.errors import StemforgeError
from stemforge.train.corpus import DEFAULT_SOUNDFONT, split_counts, write_corpus
from stemforge.train.corpus.scores import COMPOSERS, candidate_order, candidate_scores

STEMS = ("drums", "bass", "other", "vocals")
SMALL = ("trecento", "lusitano", "corelli")  # small, quick-to-parse multi-part scores


def test_bach_is_never_a_candidate():
    assert Path(DEFAULT_SOUNDFONT).is_file(), "apt-get install fluid-soundfont-gm"
    pool = candidate_scores()
    composers = {p.split("/")[0] for p in pool}
    assert len(pool) > 1000 and set(COMPOSERS) == composers
    assert not any("bach" in part.lower() for p in pool for part in p.split("/"))
    order = candidate_order(pool, np.random.default_rng(0))
    assert sorted(order) == pool  # a permutation: every score at most once
    assert len({p.split("/")[0] for p in order[:40]}) >= 15  # composers balanced
    with pytest.raises(StemforgeError, match="reserved as a held-out check"):
        candidate_scores(("bach",))


def test_corpus_layout_mixture_and_determinism(tmp_path, capsys):
    root = tmp_path / "c"
    assert main(["experiment", "corpus", str(root), "--songs", "3", "--seed", "4", "--seconds",
                 "4", "6", "--sample-rate", "16000", "--composers", *SMALL, "--workers", "1",
                 "--no-progress"]) == 0
    assert "wrote 3 songs (train 1, valid 1, test 1)" in capsys.readouterr().out
    index = Index.build(root, cache_dir=tmp_path / "cache", workers=1)
    assert index.layout == "musdb18hq"
    assert sorted(t.split for t in index.tracks) == ["test", "train", "valid"]
    manifest = json.loads((root / "corpus.json").read_text())
    assert [t["split"] for t in manifest["tracks"]] == ["train", "valid", "test"]
    sources = [t["source"] for t in manifest["tracks"]]
    assert len(set(sources)) == 3 and not any("bach" in s.lower() for s in sources)
    for t in index.tracks:
        d = root / t.split / t.name
        stems = {s: sf.read(str(d / f"{s}.wav"), always_2d=True, dtype="float32") for s in STEMS}
        mix, sr = sf.read(str(d / "mixture.wav"), always_2d=True, dtype="float32")
        assert sr == 16000 and mix.shape[1] == 2 and 4 <= mix.shape[0] / sr <= 9
        total = stems["drums"][0] + stems["bass"][0] + stems["other"][0] + stems["vocals"][0]
        np.testing.assert_array_equal(mix, total)  # the float32 sum, bit for bit
        for s, (x, _) in stems.items():
            rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
            assert 10 * np.log10(rms) > -40, (t.name, s)  # every stem is audible
        assert np.abs(mix).max() <= 0.99
    again = tmp_path / "again"  # same seed, two worker processes: the same bytes
    write_corpus(again, 3, 4, (4, 6), 16000, composers=SMALL, workers=2, progress=False)
    for f in sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()):
        assert (again / f).read_bytes() == (root / f).read_bytes(), f


def test_corpus_refusals_leave_nothing(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep")
    small = ["--composers", *SMALL]
    for args, msg in (([str(tmp_path / "full"), *small], "exists and is not an empty folder"),
                      ([str(tmp_path / "a"), "--songs", "2", *small], "at least 3 songs"),
                      ([str(tmp_path / "b"), "--composers", "bach"], "reserved as a held-out"),
                      ([str(tmp_path / "c"), "--soundfont", str(tmp_path / "no.sf2"), *small],
                       "soundfont not found")):
        assert main(["experiment", "corpus", "--no-progress", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0] and "Traceback" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    assert cache_files(tmp_path) == ["full/x.txt"]
    with pytest.raises(StemforgeError, match="cannot hold"):
        split_counts(4, valid=2, test=2)
