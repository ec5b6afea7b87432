"""The doctor's building blocks on small made signals: compiled kernels against their NumPy
references, and each check on a signal that has (and one that lacks) its defect."""
from __future__ import annotations

import numpy as np
import pytest

from stemforge.doctor import bleed, fingerprint, frames, labels, relation, scan, songs
from stemforge.doctor.options import Options
from stemforge.doctor.source import check_source

SR = 22050


@pytest.fixture(scope="module")
def song():
    return songs.song(np.random.default_rng(3), 14.0, SR)


# ---------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("T", [1, 3, 4, 5, 8, 9, 441, 442, 883, 10_001])
@pytest.mark.parametrize("C", [1, 2, 3])
@pytest.mark.parametrize("q", [1, 2, 4])
def test_scan_matches_reference(T, C, q):
    rng = np.random.default_rng(T * 7 + C)
    block = 444 if q == 4 else 442
    for x, scale in ((rng.standard_normal((T, C)).astype(np.float32), 1.0),
                     (rng.integers(-32768, 32767, (T, C), dtype=np.int16), 2.0 ** -15),
                     (rng.integers(-2 ** 31, 2 ** 31 - 1, (T, C), dtype=np.int32), 2.0 ** -31)):
        x[T // 3: T // 2] = 0
        _check_scan(x, block, q, scale)


def _check_scan(x, block, q, scale):
    T, C = x.shape
    ref, got = scan.scan_reference(x, block, q, scale), scan.scan(x, block, q, scale)
    np.testing.assert_allclose(got.squares, ref.squares, rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(got.high, ref.high)
    np.testing.assert_array_equal(got.low, ref.low)
    assert got.dec.shape == ref.dec.shape == (C, T // q)
    np.testing.assert_allclose(got.dec, ref.dec, rtol=1e-5, atol=1e-6)


def test_power_and_cross_sums_match_references():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((3, 157, 40)) + 1j * rng.standard_normal((3, 157, 40))).astype(
        np.complex64)
    np.testing.assert_array_equal(frames.power(X[0], 30), frames.power_reference(X[0], 30))
    ref, got = bleed.cross_sums_reference(X, 50, 25), bleed.cross_sums(X, 50, 25)
    for f in ("ce", "co", "pe", "po", "win"):
        np.testing.assert_allclose(getattr(got, f), getattr(ref, f), rtol=1e-10, atol=1e-9)
    assert (got.n_even, got.n_odd) == (ref.n_even, ref.n_odd) == (82, 75)
    # the doctor passes a view of its (K, F, bins) spectra: rows and bins selected, not copied
    V = X[1:, :, 5:31]
    assert not V.flags.c_contiguous
    ref, got = bleed.cross_sums_reference(V, 50, 25), bleed.cross_sums(V, 50, 25)
    for f in ("ce", "co", "pe", "po", "win"):
        np.testing.assert_allclose(getattr(got, f), getattr(ref, f), rtol=1e-10, atol=1e-9)


def test_stft_many_rows_equal_stft():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 22050)).astype(np.float32)
    for rate in (11025, 11000):   # integer hop (strided view) and gathered frames
        many = frames.stft_many(x, rate)
        p = frames.plan(rate)
        idx = p.starts(p.n_frames(x.shape[1]))[:, None] + np.arange(p.win)
        assert many.shape == (3, idx.shape[0], p.nfft // 2 + 1)
        for k in range(3):   # the definition: windowed frames at round(i * rate / FPS), rfft
            want = np.fft.rfft(x[k][idx].astype(np.float64) * p.window, n=p.nfft, axis=1)
            np.testing.assert_allclose(many[k], want, rtol=0, atol=2e-4)
            np.testing.assert_array_equal(frames.stft(x[k].copy(), rate), many[k])


# ---------------------------------------------------------------------------- one source
def _facts(x, opts=Options()):
    """Facts of a float32 ``(C, T)`` source, stored as 16-bit PCM would be."""
    pcm = np.round(np.clip(x.T, -1, 1 - 2 ** -15) * 32768).astype(np.int16)
    return check_source("s", pcm, 2.0 ** -15, SR, scan.scan(pcm, 441, 1, 2.0 ** -15), opts)


def test_silence_dropout_clipping_dc(song):
    v = song["vocals"]
    clean = _facts(v)
    assert not clean.silent and not clean.dropouts and not clean.clip_spans
    assert max(abs(d) for d in clean.dc) < Options().dc_offset
    assert _facts(np.zeros_like(v)).digital_silence
    quiet = _facts((1e-5 * np.random.default_rng(1).standard_normal(v.shape)).astype(np.float32))
    assert quiet.silent and not quiet.digital_silence
    # a dropout cutting the sustained pad, and only there
    pad = song["other"].copy()
    pad[:, 5 * SR: 6 * SR] = 0
    f = _facts(pad)
    assert len(f.dropouts) == 1 and abs(f.dropouts[0][0] - 5) < 0.01 and abs(f.dropouts[0][1] - 6) < 0.01
    # clipping: flat runs at the peak, after a gain change too
    c = 0.5 * float(np.abs(v).max())
    f = _facts(0.7 * np.clip(v, -c, c))
    assert f.clip_runs >= Options().clip_min_runs and f.clip_spans
    assert abs(_facts(v + np.float32(0.01)).dc[0] - 0.01) < 1e-3


# ---------------------------------------------------------------------------- relations
def _scan(x):
    return scan.scan(np.ascontiguousarray(x.T), 441, 1)


def _dec(stems):
    return [_scan(x).dec for x in stems]


def test_relation_finds_polarity_swap_copy_and_one_channel(song):
    names = list(songs.STEMS)
    st = [song[n] for n in names]
    mix = sum(st)
    rel = relation.relate(_dec(st), _scan(mix).dec, SR)
    assert rel.states == [0, 0, 0, 0] and max(rel.best_db) <= -40 and not rel.copies
    bad = list(st)
    bad[1] = -bad[1]                 # bass inverted
    bad[3] = bad[3][::-1].copy()     # vocals: channels swapped
    rel = relation.relate(_dec(bad), _scan(mix).dec, SR)
    assert [relation.STATE_NAMES[s] for s in rel.states] == [
        "as is", "inverted", "as is", "channels swapped"]
    assert max(rel.best_db) <= -40 < min(rel.plain_db)
    copy = list(st)
    copy[2] = 0.5 * st[0]
    assert relation.relate(_dec(copy), None, SR).copies == [(0, 2, pytest.approx(1.0))]
    left = [x.copy() for x in st]
    left[2][0] = np.roll(left[2][0], SR)   # one channel of one stem replaced
    rel = relation.relate(_dec(left), _scan(mix).dec, SR)
    base = np.nanpercentile(rel.window_db, 20, axis=0)
    assert base[0] > -15 and base[1] <= -40


# ---------------------------------------------------------------------------- bleed
def _band(stems):
    specs = [frames.stft(_scan(x).dec.mean(axis=0), SR) for x in stems]
    band = bleed.band_slice(specs[0].shape[1], frames.plan(SR).bin_hz)
    return np.stack([s[:, band] for s in specs]), band.start


@pytest.mark.parametrize("gain_db", [-30.0, -15.0])
def test_bleed_level_is_measured(song, gain_db):
    names = list(songs.STEMS)
    st = dict(song)
    d = 40  # 1.8 ms later
    leak = np.zeros_like(st["drums"])
    leak[:, d:] = st["drums"][:, :-d]
    st["vocals"] = st["vocals"] + np.float32(10 ** (gain_db / 20)) * leak
    X, b0 = _band([st[n] for n in names])
    got = {(names[b.into], names[b.source]): b for b in
           bleed.estimate(X, frames.plan(SR).bin_hz, b0, frames.FPS)}
    hit = got[("vocals", "drums")]
    assert abs(hit.gain_db - gain_db) < 2.0 and hit.gain > 8 * hit.stderr
    clean = [b.gain_db for k, b in got.items() if k != ("vocals", "drums")]
    assert max(clean) < -38


# ---------------------------------------------------------------------------- labels
def test_label_rules(song):
    def voiced(x):
        s = frames.stft(x.mean(axis=0), SR)
        return labels.voiced_fraction(s, frames.power(s, s.shape[1]), SR, -60)[0]

    assert voiced(song["vocals"]) > 0.85 and voiced(song["drums"]) < 0.3

    def onsets(x):
        s = frames.stft(x.mean(axis=0), SR)
        return labels.onset_rate(frames.grid_power(frames.power(s, s.shape[1]), SR))[0]

    assert onsets(song["drums"]) > 3 * Options().onset_rate
    assert onsets(song["other"]) < Options().onset_rate
    assert labels.label_class("vox1", None) == "vocals"
    assert labels.label_class("stem_03", "drum set") == "drums"
    assert labels.label_class("vocals", "electric guitar") is None


# ---------------------------------------------------------------------------- fingerprints
def _print(x, sr):
    q = frames.decimation(sr)
    d = scan.scan(np.ascontiguousarray(x.T), q * int(round(sr / (50 * q))), q).dec.mean(axis=0)
    r = sr // q
    return fingerprint.landmarks(frames.grid_power(frames.power(frames.stft(d, r), 400), r))


def test_fingerprint_survives_gain_offset_resampling_codec_and_finds_partial_overlap():
    from stemforge.audio import dsp
    from stemforge.augment.codec import MP3

    sr = 44100
    mix = sum(songs.song(np.random.default_rng(11), 24.0, sr).values())
    other = sum(songs.song(np.random.default_rng(12), 24.0, sr).values())
    off = 2.01
    copy = MP3.apply(dsp.resample(0.4 * mix[:, int(off * sr):], sr, 48000), 48000,
                     {"vbr_quality": 5.0})
    part = np.concatenate([other[:, : 5 * sr], mix[:, 3 * sr: 15 * sr]], axis=1)
    prints = [_print(mix, sr), _print(copy, 48000), _print(other, sr), _print(part, sr)]
    found = {(m.a, m.b): m for m in fingerprint.match(prints, min_coverage=0.5)}
    assert set(found) == {(0, 1), (0, 3), (1, 3)}  # the copy and the partial share too
    assert found[(0, 1)].offset == pytest.approx(-off, abs=0.03)
    assert found[(0, 3)].offset == pytest.approx(2.0, abs=0.03)
    assert found[(0, 3)].span_b[0] == pytest.approx(5.0, abs=1.0)
    assert found[(0, 3)].span_b[1] - found[(0, 3)].span_b[0] >= 10


def test_matching_looks_up_posting_lists_not_pairs():
    """Signals sharing no hash give no candidate at all; a hash held by more than
    ``max_posting`` landmarks is a stop word; blocks of queries give the same matches."""
    rng = np.random.default_rng(0)
    prints = [fingerprint.Fingerprint(np.arange(i * 50, i * 50 + 50, dtype=np.uint32),
                                      np.sort(rng.integers(0, 5000, 50)).astype(np.int32), 5000)
              for i in range(2000)]
    table = fingerprint.HashTable.build(prints, np.ones(len(prints), bool))
    q = prints[7]
    got = fingerprint.votes_of(table, np.full(50, 7, np.int32), q.frames, q.hashes,
                               lambda a, b: a == a, 64)
    assert all(len(x) == 0 for x in got)
    common = [fingerprint.Fingerprint(np.full(10, 7, np.uint32), np.arange(10, dtype=np.int32),
                                      100) for _ in range(300)]
    table = fingerprint.HashTable.build(common, np.ones(300, bool))
    lo, n = table.lookup(np.array([7], np.uint32), 64)
    assert n.tolist() == [0]  # 3000 entries > 64: a stop word
    # one copy among unrelated prints is found whatever the block size
    base = [fingerprint.Fingerprint(np.sort(rng.integers(0, 2 ** 32, 600, dtype=np.uint32)),
                                    np.sort(rng.integers(0, 1500, 600)).astype(np.int32), 1500)
            for _ in range(40)]
    base.append(fingerprint.Fingerprint(base[3].hashes[::2].copy(),
                                        base[3].frames[::2] + 25, 1525))
    for block in (1, 1000, 1 << 20):
        found = fingerprint.match(base, min_votes=10, min_span=5, block_landmarks=block)
        assert [(m.a, m.b) for m in found] == [(3, 40)]
        assert found[0].offset == pytest.approx(0.5)
