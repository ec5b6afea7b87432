"""The performance shortcuts return exactly what the straightforward code returns.

* stem.mp4 decoding takes planar-float frames as views of their planes and joins them once;
  the reference decodes every frame with PyAV's ``to_ndarray`` and concatenates.
* ``_join_chunks`` with a mix of plane tuples and ``(C, n)`` arrays keeps frame order.
* excerpt loudness from an energies memmap equals the value from an in-RAM copy.
* ``excerpt_loudness_many`` (all stems of an item in one set of numpy calls) equals one
  ``excerpt_loudness`` per row, bit for bit, whatever the other rows; the sampler's batched
  look-up records exactly ``Index.loudness`` of each source.
* ``Mixer``'s read-ahead (specs of the next items drawn with item ``i`` when items come in
  order) returns exactly what a mixer without it returns, in any access order.
* (the render's compiled kernels against plain NumPy: tests/test_mixing_kernels.py)
"""
from __future__ import annotations

import numpy as np
import pytest

from stemforge.audio import io
from stemforge.audio import loudness as lufs


def test_mp4_decode_equals_per_frame_to_ndarray(musdb_excerpt):
    import av

    path = next(musdb_excerpt.rglob("*.stem.mp4"))
    got = io.read_streams(path, expected=5)
    with av.open(str(path)) as c:  # the former implementation: one demux pass, to_ndarray
        streams = list(c.streams.audio)
        ids = [s.index for s in streams]
        chunks = {i: [] for i in ids}
        for packet in c.demux(streams):
            for frame in packet.decode():
                assert frame.format.name == "fltp"  # the fast path is the one exercised
                chunks[packet.stream.index].append(io._frame_to_array(frame))
    want = [np.concatenate(chunks[i], axis=1) for i in ids]
    assert len(got) == 5
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.float32 and g.flags.c_contiguous and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_join_chunks_mixed_kinds_keeps_order():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 5)).astype(np.float32)
    b = rng.standard_normal((2, 3)).astype(np.float32)
    c = rng.standard_normal((2, 4)).astype(np.float32)
    tuples = [tuple(a), tuple(b), tuple(c)]
    np.testing.assert_array_equal(io._join_chunks(tuples), np.concatenate([a, b, c], axis=1))
    mixed = [tuple(a), b, tuple(c)]
    np.testing.assert_array_equal(io._join_chunks(mixed), np.concatenate([a, b, c], axis=1))
    assert io._join_chunks(tuples).dtype == np.float32


@pytest.mark.parametrize("start,frames", [(0, 44100), (12345, 5 * 44100), (777, 9000)])
def test_excerpt_loudness_memmap_equals_array(tmp_path, start, frames):
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal((2, 8 * 44100))).astype(np.float32)
    x[:, 3 * 44100:4 * 44100] = 0.0
    e = lufs.block_energies(x, 44100)
    np.save(tmp_path / "e.npy", e)
    mm = np.load(tmp_path / "e.npy", mmap_mode="r")
    assert type(mm) is np.memmap
    a = lufs.excerpt_loudness(mm, 44100, start, frames)
    b = lufs.excerpt_loudness(np.array(e), 44100, start, frames)
    assert a == b and np.isfinite(a)


def _energies_set(rng, sr=44100, seconds=8, corrections=False):
    """Energies of four stems: loud noise, quiet noise with a silent second, digital silence,
    a short burst in silence (blocks on both sides of the gates); with ``corrections``, the
    pairs ``(energies, zero-state corrections)``."""
    out = []
    for kind in range(4):
        x = (0.1 * rng.standard_normal((2, seconds * sr))).astype(np.float32)
        if kind == 1:
            x *= 0.003
            x[:, 2 * sr:3 * sr] = 0.0
        elif kind == 2:
            x[:] = 0.0
        elif kind == 3:
            x[:, : 4 * sr] = 0.0
            x[:, 5 * sr:] = 0.0
        out.append(lufs.stem_analysis(x, sr) if corrections else lufs.block_energies(x, sr))
    return out


def _close_to_reference(values, es, sr, starts, frames, atol=1e-9, cs=None):
    """The compiled values equal the readable NumPy reference to float rounding (the two sum
    in different orders), with -inf exactly where the reference has it."""
    cs = cs or [None] * len(es)
    ref = np.array([lufs.excerpt_loudness_reference(e, sr, s, frames, c)
                    for e, s, c in zip(es, starts, cs, strict=True)])
    assert np.array_equal(np.isinf(values), np.isinf(ref)), (values, ref)
    fin = np.isfinite(ref)
    np.testing.assert_allclose(values[fin], ref[fin], rtol=0, atol=atol)


def test_excerpt_loudness_many_equals_one_call_per_row(tmp_path):
    rng = np.random.default_rng(3)
    sr = 44100
    es = _energies_set(rng, sr)
    np.save(tmp_path / "e0.npy", es[0])
    es[0] = np.load(tmp_path / "e0.npy", mmap_mode="r")  # memmap rows too
    span = es[1].shape[0] * lufs.sub_block_frames(sr)
    finite = inf = 0
    for frames in (100, 9000, 17640, sr, 5 * sr, span):  # < 1 block, 1 block, exact, whole
        for _ in range(15):
            starts = [int(rng.integers(0, span - frames + 1)) for _ in es]
            many = lufs.excerpt_loudness_many(es, sr, starts, frames)
            one = np.array([lufs.excerpt_loudness(e, sr, s, frames) for e, s in zip(es, starts, strict=True)])
            assert many.shape == (4,) and many.dtype == np.float64
            assert np.array_equal(many, one), (frames, starts, many, one)
            _close_to_reference(many, es, sr, starts, frames)
            # a row does not depend on the others: reversed order, and each row alone
            rev = lufs.excerpt_loudness_many(es[::-1], sr, starts[::-1], frames)
            assert np.array_equal(rev[::-1], one)
            finite += int(np.isfinite(one).sum())
            inf += int(np.isinf(one).sum())
    assert finite > 100 and inf > 20  # both outcomes exercised
    assert lufs.excerpt_loudness_many([], sr, [], 1000).shape == (0,)


def test_excerpt_loudness_many_with_corrections_equals_reference():
    """Zero-state corrections (one row without), starts on and off the sub-block grid."""
    rng = np.random.default_rng(4)
    sr = 44100
    b = lufs.sub_block_frames(sr)
    pairs = _energies_set(rng, sr, corrections=True)
    es = [e for e, _ in pairs]
    cs = [c for _, c in pairs]
    cs[2] = None
    span = es[1].shape[0] * b
    moved = 0
    for frames in (9000, 17640, sr, 5 * sr):
        for k in range(12):
            starts = [int(rng.integers(0, (span - frames) // b)) * b if k % 2 else
                      int(rng.integers(0, span - frames + 1)) for _ in es]
            many = lufs.excerpt_loudness_many(es, sr, starts, frames, cs)
            one = np.array([lufs.excerpt_loudness(e, sr, s, frames, c)
                            for e, s, c in zip(es, starts, cs, strict=True)])
            assert np.array_equal(many, one), (frames, starts)
            _close_to_reference(many, es, sr, starts, frames, cs=cs)
            plain = lufs.excerpt_loudness_many(es, sr, starts, frames)
            moved += int(np.sum(np.isfinite(plain) & (plain != many)))
            assert many[2] == plain[2] or (np.isinf(many[2]) and np.isinf(plain[2]))
    assert moved > 20  # the corrections did change values


def test_compiled_pairwise_sum_is_numpys_sum():
    """The loudness kernel's gated sums use NumPy's own association (pairwise, 8-way blocks of
    <= 128, recursive halves beyond): equal bit for bit for every length, any magnitudes."""
    from stemforge.audio._loudness_kernels import pairwise_sum

    rng = np.random.default_rng(11)
    for n in list(range(0, 300)) + [511, 1024, 4097, 100_003]:
        a = rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n)
        assert pairwise_sum(a) == np.add.reduce(a), n


def test_excerpt_loudness_many_long_excerpts_equal_one_call_per_row():
    """> 128 gating blocks (the recursive part of the pairwise sums), rows of other lengths."""
    rng = np.random.default_rng(5)
    sr = 44100
    es = [lufs.block_energies((a * rng.standard_normal((2, 40 * sr))).astype(np.float32), sr)
          for a in (0.2, 0.01, 0.5)]
    es[1][1000:1500] = 0.0  # a silent stretch inside
    for frames in (int(13.3 * sr), 20 * sr + 17, 35 * sr):
        for _ in range(4):
            starts = [int(rng.integers(0, 40 * sr - frames + 1)) for _ in es]
            many = lufs.excerpt_loudness_many(es, sr, starts, frames)
            one = [lufs.excerpt_loudness(e, sr, s, frames) for e, s in zip(es, starts, strict=True)]
            assert np.array_equal(many, np.array(one)), (frames, starts)
            _close_to_reference(many, es, sr, starts, frames)


def test_excerpt_loudness_many_bad_input_names_the_problem():
    from stemforge.errors import AudioError

    e = lufs.block_energies(np.zeros((2, 44100), np.float32) + 0.1, 44100)
    with pytest.raises(AudioError, match="2 energy arrays but 1 starts"):
        lufs.excerpt_loudness_many([e, e], 44100, [0], 1000)
    with pytest.raises(AudioError, match=r"excerpt \[44000, 45000\) runs past the end"):
        lufs.excerpt_loudness_many([e, e], 44100, [0, 44000], 1000)
    with pytest.raises(AudioError, match="excerpt start must be >= 0"):
        lufs.excerpt_loudness_many([e], 44100, [-1], 1000)
    with pytest.raises(AudioError, match="energies must be a non-empty 1-D array"):
        lufs.excerpt_loudness_many([e, e[None, :]], 44100, [0, 0], 1000)


def test_sampler_batched_loudness_is_index_loudness(tmp_path):
    """Coherent items (one batched look-up for all stems) and incoherent ones (different
    tracks and starts in one batch) record exactly ``Index.loudness`` of every source."""
    from conftest import make_musdb18hq

    from stemforge.index import Index
    from stemforge.mixing.mixer import Mixer

    root = make_musdb18hq(tmp_path / "hq", {"A - One": "train", "B - Two": "train",
                                            "C - Three": "train"}, seconds=3.0)
    idx = Index.build(root, cache_dir=tmp_path / "cache")
    recipe = {"name": "t", "duration": 1.5, "targets": ["vocals", "drums", "bass", "other"],
              "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", -30, -10],
              "stems": {"default": {"snr": ["uniform", -5, 5]}}, "clipping": "fix_clipping"}
    mixer = Mixer(recipe, idx, seed=7)
    modes = set()
    for i in range(12):
        spec = mixer.spec(i)
        modes.add(spec.mode)
        for s in spec.sources:
            want = idx.loudness(s.track, s.stem, s.start, s.source_frames)
            assert s.loudness == want, (i, s.stem, s.loudness, want)
            assert s.gain_db == spec.ref_db + s.snr + s.boost - max(want, -70.0)
    assert modes == {"coherent", "incoherent"}


def _same_mixture(a, b):
    assert a.spec.to_json() == b.spec.to_json()
    assert np.array_equal(a.mix.view(np.uint32), b.mix.view(np.uint32))
    assert list(a.targets) == list(b.targets)
    for t in a.targets:
        assert np.array_equal(a.targets[t].view(np.uint32), b.targets[t].view(np.uint32))


def _tiny_index(tmp_path, prepared=False):
    from conftest import make_musdb18hq

    from stemforge.index import Index
    from stemforge.prepare import prepare

    root = make_musdb18hq(tmp_path / "hq", {"A - One": "train", "B - Two": "train"},
                          seconds=2.0)
    idx = Index.build(root, cache_dir=tmp_path / "cache")
    if prepared:
        prepare(idx, workers=1)
    return idx


def _silence_index(tmp_path):
    """One song whose vocals are active in the first half only."""
    from conftest import tone, write_wav

    from stemforge.index import Index

    sr, secs = 44100, 6.0
    d = tmp_path / "ds" / "train" / "S - Song"
    for j, s in enumerate(["drums", "bass", "other"]):
        write_wav(d / f"{s}.wav", tone(100 * (j + 1), secs, seed=j))
    v = np.zeros((2, int(secs * sr)), np.float32)
    v[:, : 3 * sr] = tone(440, 3.0, seed=9)
    write_wav(d / "vocals.wav", v)
    return Index.build(tmp_path / "ds", cache_dir=tmp_path / "c2")


FOUR = {"name": "t", "duration": 0.5, "targets": ["vocals", "drums", "bass", "other"],
        "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", -30, -10],
        "stems": {"default": {"snr": ["uniform", 0, 12]}}, "clipping": "fix_clipping"}


@pytest.mark.parametrize("prepared", [True, False])
def test_mixtures_equal_mixture_item_by_item(tmp_path, prepared):
    """The batch path (one draw for the batch, ``render_batch``) gives each item exactly what
    ``mixture`` gives it alone: any order, jumps, repeats; into ``out`` rows (views of them);
    also for recipes whose loudness is measured on processed audio (drawn per item)."""
    from stemforge.mixing.mixer import Mixer

    idx = _tiny_index(tmp_path, prepared)
    mixer = Mixer(FOUR, idx, seed=5)
    items = [0, 1, 2, 40, 3, 3, 17, 2]
    got = mixer.mixtures(items, epoch=1)
    assert len(got) == len(items)
    for i, m in zip(items, got, strict=True):
        _same_mixture(m, mixer.mixture(i, epoch=1))
    assert {m.spec.scale != 1.0 for m in got} == {True, False}  # clipped and not
    B, T = 3, got[0].mix.shape[1]
    mix, targets = np.empty((B, 2, T), np.float32), np.empty((B, 4, 2, T), np.float32)
    into = mixer.mixtures([7, 8, 9], out=(mix, targets))
    for k, m in enumerate(into):
        assert np.shares_memory(m.mix, mix[k]) and np.shares_memory(m.targets["bass"], targets[k])
        _same_mixture(m, mixer.mixture(7 + k))
    rev = Mixer(dict(FOUR, augment=[{"step": "reverse", "p": 0.5}]), idx, seed=5)
    for i, m in zip(range(6), rev.mixtures(range(6)), strict=True):
        _same_mixture(m, rev.mixture(i))
    with pytest.raises(ValueError, match=r"mix must have shape \(2, 2, "):
        mixer.mixtures([1, 2], out=(mix, targets))


def test_mixtures_raise_the_first_failing_items_error(tmp_path):
    """Items whose silence policy is exhausted (on_exhausted: error): a batch holding one
    raises that item's error, the message ``mixture`` gives; other items are unaffected."""
    from stemforge.errors import SamplingError
    from stemforge.mixing.mixer import Mixer

    idx = _silence_index(tmp_path)
    recipe = {"name": "t", "duration": 1.0, "targets": ["vocals", "drums", "bass", "other"],
              "modes": {"coherent": 1.0}, "stems": {"default": {"gain_db": 0.0}},
              "silence": {"min_active": 0.9, "threshold_db": -50, "max_retries": 0,
                          "on_exhausted": "error"}}
    mixer = Mixer(recipe, idx, seed=1)
    ok, bad = [], {}
    for i in range(16):
        try:
            mixer.mixture(i)
            ok.append(i)
        except SamplingError as e:
            bad[i] = str(e)
    assert ok and bad
    first = min(bad)
    with pytest.raises(SamplingError) as got:
        mixer.mixtures(ok[:2] + sorted(bad))
    assert str(got.value) == bad[first] and f"item {first}:" in bad[first]
    for i, m in zip(ok, mixer.mixtures(ok), strict=True):
        _same_mixture(m, mixer.mixture(i))


def test_draw_many_equals_draw_item_by_item(tmp_path):
    """One batched loudness look-up for several items: every spec is the one ``draw`` gives;
    a failing item raises draw's error; items whose loudness needs processed audio are left
    to ``draw`` (None)."""
    from stemforge.errors import SamplingError
    from stemforge.mixing.mixer import Mixer

    idx = _tiny_index(tmp_path)
    recipe = {"name": "t", "duration": 0.5, "targets": ["vocals", "accompaniment"],
              "groups": {"accompaniment": ["drums", "bass", "other"]},
              "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", -30, -10],
              "stems": {"default": {"snr": ["uniform", -5, 5]}, "bass": {"gain_db": -3}},
              "clipping": "fix_clipping"}
    sampler = Mixer(recipe, idx, seed=3).sampler
    items = [0, 1, 2, 7, 30, 31, 5]
    got = sampler.draw_many(3, 2, items)
    assert len(got) == len(items)
    for i, spec in zip(items, got, strict=True):
        assert spec.to_json() == sampler.draw(3, 2, i)[0].to_json(), i

    silent = {"name": "t", "duration": 1.0, "targets": ["vocals", "drums", "bass", "other"],
              "modes": {"coherent": 1.0}, "stems": {"default": {"snr": ["uniform", -5, 5]}},
              "silence": {"min_active": 0.9, "threshold_db": -50, "max_retries": 0,
                          "on_exhausted": "error"}}
    s2 = Mixer(silent, _silence_index(tmp_path), seed=1).sampler
    errors = {}
    for i in range(16):
        try:
            s2.draw(1, 0, i)
        except SamplingError as e:
            errors[i] = str(e)
    assert errors and len(errors) < 16
    with pytest.raises(SamplingError) as e:
        s2.draw_many(1, 0, range(16))
    assert str(e.value) == errors[min(errors)]
    fine = [i for i in range(16) if i not in errors]
    for i, g in zip(fine, s2.draw_many(1, 0, fine), strict=True):
        assert g.to_json() == s2.draw(1, 0, i)[0].to_json()

    # loudness measured on processed audio: not drawn here
    rev = dict(recipe, augment=[{"step": "reverse"}])
    assert Mixer(rev, idx, seed=3).sampler.draw_many(3, 0, range(4)) == [None] * 4


def test_excerpt_loudness_many_compiles_once_for_every_batch_size():
    """Rows reach the kernel gathered in one array: a new batch size is not a new numba
    specialisation (a tuple of rows was typed by its length: 1-5 s of compiling, and one more
    cache entry, per size). Strided rows give the same values as contiguous ones."""
    from stemforge.audio import _loudness_kernels as kern

    rng = np.random.default_rng(8)
    sr = 44100
    es = _energies_set(rng, sr)
    frames = 2 * sr
    span = es[0].shape[0] * lufs.sub_block_frames(sr)
    lufs.excerpt_loudness_many(es[:1], sr, [0], frames)
    before = len(kern.gate_sums.signatures)
    for r in (1, 2, 3, 5, 9, 16, 17, 40):  # plain-int windows up to 16 rows, numpy beyond
        rows = [es[k % len(es)] for k in range(r)]
        starts = [int(rng.integers(0, span - frames + 1)) for _ in rows]
        many = lufs.excerpt_loudness_many(rows, sr, starts, frames)
        one = [lufs.excerpt_loudness(e, sr, s, frames) for e, s in zip(rows, starts, strict=True)]
        assert np.array_equal(many, np.array(one)), r
        _close_to_reference(many, rows, sr, starts, frames)
    assert len(kern.gate_sums.signatures) == before == 1
    wide = np.repeat(es[1], 2)[::2]  # the same values, stride 2
    assert not wide.flags.c_contiguous
    starts = [0, 12345]
    assert np.array_equal(lufs.excerpt_loudness_many([wide, wide], sr, starts, frames),
                          lufs.excerpt_loudness_many([es[1], es[1]], sr, starts, frames))


def test_render_batch_equals_render_and_prepares_processed_sources_late(tmp_path, monkeypatch):
    """``render_batch``: the bytes, scale and peak of ``render`` per spec, into ``outs`` too;
    the stored-stem specs are prepared for the whole batch first, a spec whose sources need
    processing only just before its own pass; a bad ``outs`` entry is refused before any
    work."""
    from stemforge.mixing import render as R
    from stemforge.mixing.mixer import Mixer

    idx = _tiny_index(tmp_path, prepared=True)
    plain = Mixer(FOUR, idx, seed=2)
    rev = Mixer(dict(FOUR, augment=[{"step": "polarity", "p": 1.0, "stems": ["bass"]}]), idx,
                seed=2)
    specs = [plain.spec(0), rev.spec(1), plain.spec(2), rev.spec(3)]
    calls = []
    real = R.prepare

    def spy(spec, index, processed=None, keep_sources=False, stored_only=False):
        got = real(spec, index, processed, keep_sources, stored_only)
        calls.append((spec.item, stored_only, got is not None))
        return got

    monkeypatch.setattr(R, "prepare", spy)
    T = specs[0].frames
    mix, targets = np.empty((2, T), np.float32), np.empty((4, 2, T), np.float32)
    outs = [None, None, (mix, targets), None]
    got = R.render_batch(specs, idx, outs)
    assert calls[:4] == [(0, True, True), (1, True, False), (2, True, True), (3, True, False)]
    assert calls[4:] == [(1, False, True), (3, False, True)]  # each just before its pass
    assert np.shares_memory(got[2].mix, mix)
    for spec, r in zip(specs, got, strict=True):
        want = R.finish(real(spec, idx))
        assert r.mix.tobytes() == want.mix.tobytes() and (r.scale, r.peak) == (want.scale,
                                                                               want.peak)
    with pytest.raises(ValueError, match="render\\(out=...\\): mix must be"):
        R.render_batch(specs[:1], idx, [(np.empty((2, 3), np.float32), targets)])
