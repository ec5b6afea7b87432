"""StemCache format 2: 16-bit sources stored as int16 (their PCM size), float sources as float32,
the same rendered bytes either way; old float32 caches read as they are and compacted by
prepare; real mixtures decoded only when asked for."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import MUSDB_STEMS, tone, write_wav
from stemforge.audio.cache import (FORMAT, FORMAT_FILE, PCM16_UNIT, StemCache, as_float32,
                                   pcm16)
from stemforge.index import Index
from stemforge.mixing import _kernels as K
from stemforge.mixing import reference as R
from stemforge.mixing.mixer import Mixer
from stemforge.mixing.render import _readonly
from stemforge.prepare import prepare

RECIPE = {"name": "c", "duration": 1.0, "targets": ["vocals", "accompaniment"],
          "groups": {"accompaniment": ["drums", "bass", "other"]},
          "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", -14, 0],
          "stems": {"default": {"snr": ["uniform", -5, 5]}, "drums": {"drop": 0.3}},
          "clipping": "fix_clipping"}
# polarity on some stems only: items mixing int16 cache rows with processed float32 audio
AUGMENTED = {**RECIPE, "augment": [{"step": "polarity", "p": 0.5, "shared": False}]}


def _dataset(root, subtype="PCM_16", seconds=3.0, mixture=True):
    for i, name in enumerate(["A - One", "B - Two", "C - Three"]):
        stems = {s: tone(110 * (j + 1) * (i + 1), seconds, seed=10 * i + j, amp=0.2)
                 for j, s in enumerate(MUSDB_STEMS)}
        for s, a in stems.items():
            write_wav(root / "train" / name / f"{s}.wav", a, subtype=subtype)
        if mixture:
            write_wav(root / "train" / name / "mixture.wav", sum(stems.values()) * 0.5,
                      subtype=subtype)
    return root


def _pcm_bytes(index) -> int:
    """Sample bytes of the indexed stems' sources (what a 16-bit file holds besides its header)."""
    total = 0
    for t in index.tracks:
        for s in t.stems.values():
            info = sf.info(s.path)
            total += info.frames * info.channels * 2
    return total


def _cache_bytes(folder) -> tuple[int, int]:
    """(bytes of stem entries, bytes of everything else: envelopes, format file)."""
    stems = sum(p.stat().st_size for p in folder.glob("*.npy") if p.name.count(".") == 1)
    other = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) - stems
    return stems, other


def test_pcm16_is_lossless_or_refused():
    x = (np.arange(-32768, 32768, 7, dtype=np.int64).astype(np.float32) / 32768)[None, :]
    q = pcm16(x)
    assert q is not None and q.dtype == np.int16 and np.array_equal(as_float32(q), x)
    assert as_float32(q).tobytes() == x.tobytes()
    for bad in (x + np.float32(2 ** -20),            # off the 16-bit grid (24-bit, float)
                np.array([[1.0]], np.float32),       # 32768 is out of int16's range
                np.array([[-0.0, 0.5]], np.float32),  # -0.0 would come back as +0.0
                np.array([[np.nan, 0.5]], np.float32),
                np.array([[np.inf]], np.float32)):
        assert pcm16(bad) is None, bad
    assert pcm16(np.array([[-1.0, 0.0]], np.float32)) is not None


@pytest.mark.parametrize("subtype,dtype", [("PCM_16", np.int16), ("FLOAT", np.float32),
                                           ("PCM_24", np.float32)])
def test_prepare_stores_int16_for_16_bit_sources_only(tmp_path, subtype, dtype):
    root = _dataset(tmp_path / "d", subtype)
    idx = Index.build(root, cache_dir=tmp_path / "c")
    st = prepare(idx, workers=1)
    assert st.stems_written == 12  # the stems; no mixture without mixtures=True
    for t in idx.tracks:
        for name, s in t.stems.items():
            stored = idx.cache.get(s.key)
            assert stored.dtype == dtype
            decoded = sf.read(s.path, dtype="float32", always_2d=True)[0].T
            assert idx.read(t.id, name).tobytes() == np.ascontiguousarray(decoded).tobytes()
        assert not idx.cache.has(t.mixture.key)
    assert (idx.cache.folder / FORMAT_FILE).read_text().strip() == str(FORMAT)
    if subtype == "PCM_16":
        stems, other = _cache_bytes(idx.cache.folder)
        src = _pcm_bytes(idx)
        # the entries are the PCM plus a 128-byte npy header; with the peak envelopes (1/32 +
        # 1/512 of a float32 copy = ~6.6 % of int16) the folder stays under 1.1x
        assert stems <= 1.001 * src and (stems + other) <= 1.08 * src, (stems, other, src)


def _render_all(idx, recipe, items=range(16)):
    mixer = Mixer(recipe, idx, seed=3)
    out = []
    for m in mixer.mixtures(list(items)):
        out.append((m.spec.to_json() if hasattr(m.spec, "to_json") else repr(m.spec),
                    m.mix.tobytes(), {k: v.tobytes() for k, v in m.targets.items()}))
    return out


@pytest.mark.parametrize("recipe", [RECIPE, AUGMENTED], ids=["plain", "augmented"])
def test_int16_and_float32_caches_render_identical_bytes(tmp_path, monkeypatch, recipe):
    """Same 16-bit data, same recipe and seed: a format-2 (int16) cache, a float32 cache and no
    cache at all give byte-identical specs, mixes and targets (fix_clipping: the peak bound
    runs on int16 rows; polarity: items mix int16 rows with processed float32 audio)."""
    root = _dataset(tmp_path / "d")
    i16 = Index.build(root, cache_dir=tmp_path / "c16")
    prepare(i16, workers=1)
    monkeypatch.setattr(StemCache, "COMPACT", False)
    f32 = Index.build(root, cache_dir=tmp_path / "c32")
    prepare(f32, workers=1)
    monkeypatch.undo()
    none = Index.build(root, cache_dir=tmp_path / "c0")
    key = i16.tracks[0].stems["vocals"].key
    assert i16.cache.get(key).dtype == np.int16 and f32.cache.get(key).dtype == np.float32
    want = _render_all(f32, recipe)
    assert _render_all(i16, recipe) == want
    assert _render_all(none, recipe) == want
    # the items rendered both clip-scaled and unscaled mixes
    scales = {m.spec.scale != 1.0 for m in Mixer(recipe, i16, seed=3).mixtures(list(range(16)))}
    assert scales == {True, False}


@pytest.mark.parametrize("kind", ["fused", "generic"])
@pytest.mark.parametrize("counts", [(1,), (1, 3), (2, 0, 1)])
def test_kernels_on_int16_rows_match_the_reference(kind, counts):
    """int16 rows (sample k read as fl32(k) * 2**-15) give the reference's bytes on the float32
    values, for the mixing kernels and the peak bound."""
    rng = np.random.default_rng(5)
    C, T = 2, 3 * K.BLOCK + 17
    ints = [rng.integers(-32768, 32768, (C, T)).astype(np.int16) for _ in range(sum(counts))]
    floats = [as_float32(a) for a in ints]
    gains = rng.uniform(0.05, 2.0, len(ints)).astype(np.float32)
    groups, k = [], 0
    for n in counts:
        groups.append([(floats[k + r], gains[k + r]) for r in range(n)])
        k += n
    want_t, want_m, _, peak = R.mix_reference(groups, C, T, "none", None)
    rows = tuple(_readonly(a[c]) for a in ints for c in range(C))
    tb = np.full((len(counts), C, T), np.nan, np.float32)
    mx = np.full((C, T), np.nan, np.float32)
    if kind == "fused":
        got = K.plan_kernels(counts).mix(rows, gains, tb, mx, np.float32(1.0))
    else:
        got = K.mix_generic(rows, gains, np.array(counts, np.int64), tb, mx, np.float32(1.0))
    assert tb.tobytes() == want_t.tobytes() and mx.tobytes() == want_m.tobytes()
    assert np.float32(got) == np.float32(peak)
    from stemforge.audio.cache import coarse_envelope, peak_envelope

    fine = tuple(_readonly(peak_envelope(a)) for a in ints)
    coarse = tuple(_readonly(coarse_envelope(f)) for f in fine)
    assert fine[0].tobytes() == peak_envelope(floats[0]).tobytes()
    b = K.bounded_peak(rows, gains, np.array(counts, np.int64), fine, coarse,
                       np.zeros(len(ints), np.int64), 64, 16, 0.0, 10 ** 9)
    assert np.float32(b) == np.float32(peak)
    assert float(PCM16_UNIT) == 2.0 ** -15


def test_old_float32_cache_is_read_then_compacted(tmp_path, monkeypatch):
    """A format-1 cache (float32 entries, no format file) renders the same bytes; the next
    prepare rewrites its 16-bit entries as int16 and records the format."""
    root = _dataset(tmp_path / "d")
    monkeypatch.setattr(StemCache, "COMPACT", False)
    old = Index.build(root, cache_dir=tmp_path / "c")
    prepare(old, workers=1)
    monkeypatch.undo()
    (old.cache.folder / FORMAT_FILE).unlink()  # what format-1 code left
    before, _ = _cache_bytes(old.cache.folder)
    want = _render_all(old, RECIPE)
    idx = Index.build(root, cache_dir=tmp_path / "c")
    assert idx.cache.format() == 1
    assert _render_all(idx, RECIPE) == want
    st = prepare(idx, workers=1)
    assert st.stems_written == 0 and st.stems_skipped == 12
    after, _ = _cache_bytes(idx.cache.folder)
    assert st.bytes_compacted == before - after and after < 0.51 * before
    assert idx.cache.format() == FORMAT
    assert all(idx.cache.get(s.key).dtype == np.int16 for t in idx.tracks for s in t.stems.values())
    assert _render_all(Index.build(root, cache_dir=tmp_path / "c"), RECIPE) == want


def test_mixtures_are_cached_only_when_asked_and_read_either_way(tmp_path):
    root = _dataset(tmp_path / "d")
    idx = Index.build(root, cache_dir=tmp_path / "c")
    prepare(idx, workers=1)
    t = idx.tracks[0]
    from_file = sf.read(t.mixture.path, dtype="float32", always_2d=True)[0].T
    assert not idx.cache.has(t.mixture.key)
    assert idx.read_mixture(t.id).tobytes() == np.ascontiguousarray(from_file).tobytes()
    assert idx.read_input(t.id, real=True).tobytes() == np.ascontiguousarray(from_file).tobytes()
    st = prepare(idx, workers=1, mixtures=True)
    assert st.stems_written == 3 and st.stems_skipped == 12
    assert idx.cache.get(t.mixture.key).dtype == np.int16
    assert idx.read_mixture(t.id, 100, 1000).tobytes() == \
        np.ascontiguousarray(from_file[:, 100:1100]).tobytes()


def test_prepare_cli_mixtures_flag_and_info(tmp_path):
    import subprocess
    import sys

    root = _dataset(tmp_path / "d")
    run = [sys.executable, "-m", "stemforge.cli"]
    p = subprocess.run([*run, "prepare", str(root), "--cache", str(tmp_path / "c"),
                        "--no-progress"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "12 stems decoded" in p.stdout
    p = subprocess.run([*run, "info", str(root), "--cache", str(tmp_path / "c")],
                       capture_output=True, text=True)
    assert "(12 of 12 stems prepared; 0 of 3 real mixtures)" in p.stdout, p.stdout
    p = subprocess.run([*run, "prepare", str(root), "--cache", str(tmp_path / "c"),
                        "--mixtures", "--no-progress"], capture_output=True, text=True)
    assert p.returncode == 0 and "3 stems decoded" in p.stdout, (p.stdout, p.stderr)


def test_cache_format_file_missing_is_format_1_and_a_bad_one_is_an_error(tmp_path):
    from stemforge.errors import IndexError_

    cache = StemCache(tmp_path / "audio")
    (tmp_path / "audio").mkdir()
    assert cache.format() == 1  # written before formats were recorded
    (tmp_path / "audio" / FORMAT_FILE).write_text("garbage\n")
    with pytest.raises(IndexError_, match=f"{FORMAT_FILE}: not a stem cache format number"):
        cache.format()
    (tmp_path / "audio" / FORMAT_FILE).write_text(f"{FORMAT}\n")
    assert cache.format() == FORMAT
