"""Segment sampling like Demucs and MSST (issue #20, item 2): ``tracks: by_duration`` draws
a track with probability proportional to its number of valid starts, so excerpts are uniform
over all audio; ``tracks: uniform`` (the default) is uniform over tracks."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from conftest import tone, write_wav
from stemforge import Index
from stemforge.errors import RecipeError
from stemforge.mixing.mixer import Mixer

SR = 8000
DURATION = 5.0
LENGTHS = {"short": 10.0, "long": 90.0}
N = 20_000
BINS = 30
ALPHA = 0.001  # chi-square test level: a correct sampler fails it once in 1,000 runs


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    base = tmp_path_factory.mktemp("segments")
    for k, (name, seconds) in enumerate(LENGTHS.items()):
        for j, stem in enumerate(("vocals", "drums")):
            write_wav(base / "data" / name / f"{stem}.wav",
                      tone(200 * (j + 1), seconds, SR, channels=1, seed=k * 2 + j), SR)
    return Index.open(base / "data", layout="trackfolder", cache_dir=base / "cache")


def recipe(**kw):
    return {"targets": ["vocals", "drums"], "duration": DURATION, "sample_rate": SR,
            "channels": 1, "modes": {"coherent": 1}, **kw}


def positions(index, r) -> tuple[np.ndarray, float]:
    """Each item's start as a position in the concatenation of every track's valid starts
    (a fraction of their seconds: uniform over [0, 1) when excerpts are uniform over all
    audio), and the share of items from the short track."""
    mixer = Mixer(r, index, seed=0)
    frames = int(DURATION * SR)
    offset, o = {}, 0.0
    for t in index.tracks:
        offset[t.id] = o
        o += (t.frames - frames + 1) / SR
    out, short = np.empty(N), 0
    for b in range(0, N, 1000):
        for k, spec in enumerate(mixer.sampler.draw_many(0, 0, range(b, b + 1000))):
            src = spec.sources[0]
            out[b + k] = offset[src.track] + src.start / SR
            short += src.track == "short"
    return out / o, short / N


def chi_square_p(x: np.ndarray) -> float:
    counts = np.histogram(x, bins=BINS, range=(0.0, 1.0))[0]
    return float(stats.chisquare(counts).pvalue)


def test_by_duration_starts_are_uniform_over_all_audio(index):
    x, share = positions(index, recipe(tracks="by_duration"))
    p = chi_square_p(x)
    assert p > ALPHA, p
    # the short track holds 5 of the 90 s of valid starts
    assert abs(share - 5 / 90) < 4 * (5 / 90 * 85 / 90 / N) ** 0.5, share


def test_uniform_over_tracks_is_not_uniform_over_audio(index):
    """The test above can fail: the default (each track equally likely) puts half the
    excerpts in the short track's 5 s."""
    x, share = positions(index, recipe())
    assert chi_square_p(x) < 1e-12
    assert abs(share - 0.5) < 0.02


def test_by_duration_with_pad_gives_a_short_track_one_start(index):
    """pad: true (issue #17) draws tracks shorter than the excerpt zero-padded; by length,
    such a track weighs one start, so a 60 s excerpt comes from the 90 s track (31 s of
    starts) far more often than from the 10 s one."""
    counts = {}
    for how in ("by_duration", "uniform"):
        mixer = Mixer(recipe(tracks=how, pad=True, duration=60.0), index, seed=0)
        specs = mixer.sampler.draw_many(0, 0, range(2000))
        counts[how] = sum(s.sources[0].track == "short" for s in specs)
        padded = [s.sources[0].pad_frames for s in specs if s.sources[0].track == "short"]
        assert all(p == 50 * SR for p in padded)  # read whole, zero-padded to 60 s
    # P(short) = 1 start / (1 + 30 s x 8 kHz + 1 starts) < 5e-6 by duration; 1/2 uniformly
    assert counts["by_duration"] <= 2 and abs(counts["uniform"] - 1000) < 4 * 500 ** 0.5 * 1


def test_by_duration_refuses_named_tracks(index):
    with pytest.raises(RecipeError, match=r"'stems.vocals.track': names tracks, but tracks: "
                       r"by_duration draws every track by its length"):
        Mixer(recipe(tracks="by_duration", stems={"vocals": {"track": ["choose", ["long"]]}}),
              index)
    with pytest.raises(RecipeError, match=r"recipe field 'tracks': expected one of uniform, "
                       r"by_duration, got 'length'"):
        Mixer(recipe(tracks="length"), index)
