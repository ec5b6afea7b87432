"""The performance shortcuts return exactly what the straightforward code returns.

* stem.mp4 decoding takes planar-float frames as views of their planes and joins them once;
  the reference decodes every frame with PyAV's ``to_ndarray`` and concatenates.
* ``_join_chunks`` with a mix of plane tuples and ``(C, n)`` arrays keeps frame order.
* excerpt loudness from an energies memmap equals the value from an in-RAM copy.
* the render's target sum equals the sequential float32 sum ``((t0 + t1) + t2) + t3``.
"""
from __future__ import annotations

import numpy as np
import pytest

from stemforge.audio import io
from stemforge.audio import loudness as lufs
from stemforge.mixing.render import _sum


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
    for g, w in zip(got, want):
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


def test_render_sum_is_the_sequential_float32_sum():
    rng = np.random.default_rng(2)
    ts = {k: (rng.standard_normal((2, 1000)) * 10 ** rng.uniform(-3, 1)).astype(np.float32)
          for k in ("vocals", "drums", "bass", "other")}
    want = ts["vocals"].copy()
    for k in ("drums", "bass", "other"):
        want += ts[k]
    out = np.empty((2, 1000), np.float32)
    got = _sum(ts, out=out)
    assert got is out
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert np.array_equal(_sum(ts).view(np.uint32), want.view(np.uint32))
    one = {"mix": ts["bass"]}
    assert np.array_equal(_sum(one, out=np.empty((2, 1000), np.float32)), ts["bass"])
    assert _sum(one) is not ts["bass"]
