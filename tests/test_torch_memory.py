"""Worker memory stays flat as the dataset grows (issue 5).

What a DataLoader worker holds is (a) the unpickled dataset (recipe + track metadata, no
audio, no analysis arrays) and (b) what it accumulates while rendering: memmaps of the
StemCache and of the analysis energies (file-backed mappings, shared page cache, not heap)
plus small per-track bookkeeping. These tests bound both, per track, on real prepared datasets
of 8 and 64 tracks, so a regression that pickles audio/analysis into the workers or caches
decoded audio on the heap fails here. The RSS/PSS/USS of real workers at 10/100/1,000 tracks is
measured by ``benchmarks/loader.py`` (docs/benchmarks.md, "Loader").

Bounds: pickle <= 1 KB per track (measured ~0.35 KB); heap retained by a worker after
rendering from every track <= 8 KB per track (measured ~4.7 KB: the numpy memmap + pathlib
objects of each stem's audio and analysis memmaps, ~1.2 KB each). 8 KB is half of ONE stem's
audio here (0.5 s stereo at 8 kHz float32 = 16 KB), so keeping any decoded audio per track on
the heap fails the test; the bound does not depend on track length.
"""
from __future__ import annotations

import gc
import pickle
import tracemalloc

import numpy as np
import pytest

import torch  # noqa: F401  (a test dependency: fail, never skip)

from stemforge.index import Index  # noqa: E402
from stemforge.prepare import prepare  # noqa: E402
from stemforge.torch import MixtureDataset  # noqa: E402

from conftest import write_wav  # noqa: E402

SR = 8000
SECONDS = 0.5
RECIPE = {"name": "memory", "targets": ["vocals", "drums"], "sample_rate": SR, "duration": 0.25,
          "modes": {"incoherent": 1.0}, "ref_db": ["uniform", -30, -10],
          "stems": {"default": {"snr": ["uniform", -5, 5]}}}
PICKLE_PER_TRACK = 1024
#: heap kept per track: per stem the handles of two memory maps (the audio and its peak
#: envelopes) and the views on them, ~4.5 KB; the audio itself is 16x more in this test
HEAP_PER_TRACK = 12288
AUDIO_PER_TRACK = 2 * 2 * int(SR * SECONDS) * 4  # 2 stereo stems, float32


def _dataset(root, tracks: int) -> Index:
    for i in range(tracks):
        rng = np.random.default_rng(np.random.SeedSequence([3, i]))
        for s in ("vocals", "drums"):
            x = (0.1 * rng.standard_normal((2, int(SR * SECONDS)))).astype(np.float32)
            write_wav(root / "train" / f"t{i:03d}" / f"{s}.wav", x, SR, subtype="PCM_16")
    index = Index.build(root, layout="trackfolder", cache_dir=root / "cache")
    prepare(index, workers=1)
    return index


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    base = tmp_path_factory.mktemp("mem")
    return {n: _dataset(base / f"n{n}", n) for n in (8, 64)}


def _worker_retained(index, tracks: int) -> tuple[int, int, int]:
    """Unpickle the dataset as a worker does, render items until every (track, stem) has been
    used, drop the outputs; return (retained heap bytes, (track, stem) pairs used, StemCache
    maps open)."""
    blob = pickle.dumps(MixtureDataset(RECIPE, index, length=40 * tracks, seed=0))
    gc.collect()
    tracemalloc.start()
    try:
        ds = pickle.loads(blob)
        base = tracemalloc.get_traced_memory()[0]
        used = set()  # (track, stem) pairs rendered
        i = 0
        while len(used) < 2 * tracks and i < ds.length:
            mix, targets = ds[i]
            used.update((s.track, s.stem) for s in ds.mixer.spec(i).sources)
            del mix, targets
            i += 1
        ds[i]  # one more, so the last item's temporaries are freed too
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    maps = ds.index.cache._maps  # name -> memmap; ("peaks", key) -> a stem's envelopes
    stems = [k for k in maps if isinstance(k, str)]
    assert len([k for k in maps if isinstance(k, tuple)]) == len(stems)  # each stem's envelopes
    return retained, len(used), len(stems)


def test_pickled_dataset_grows_by_metadata_only(indexes):
    sizes = {n: len(pickle.dumps(MixtureDataset(RECIPE, ix, length=100, seed=0)))
             for n, ix in indexes.items()}
    per_track = (sizes[64] - sizes[8]) / (64 - 8)
    assert 0 < per_track <= PICKLE_PER_TRACK, sizes
    assert sizes[8] < 20_000, sizes  # recipe + metadata, no arrays
    assert sizes[64] < 64 * AUDIO_PER_TRACK / 20  # not the audio


def test_worker_heap_stays_flat_as_tracks_grow(indexes):
    small, used_small, maps_small = _worker_retained(indexes[8], 8)
    large, used_large, maps_large = _worker_retained(indexes[64], 64)
    # every track was read, through the StemCache memmaps (2 stems each)
    assert (used_small, used_large) == (16, 128)
    assert (maps_small, maps_large) == (16, 128)
    # what stays on the heap after rendering from every track: per-track bookkeeping only
    assert large <= HEAP_PER_TRACK * 64, (small, large)
    assert large - small <= HEAP_PER_TRACK * (64 - 8), (small, large)
    assert HEAP_PER_TRACK < AUDIO_PER_TRACK / 2 / 2  # i.e. below one stem's decoded audio


def test_targets_tensor_is_a_view_of_the_render_buffer(indexes):
    """No per-item copy of the targets: the (S, C, T) tensor is the render buffer's rows; a
    Mixture whose targets are separate arrays is stacked instead. Same values either way."""
    from stemforge.mixing.mixer import Mixture
    from stemforge.torch.convert import to_tensors

    ds = MixtureDataset(RECIPE, indexes[8], length=4, seed=0)
    m = ds.mixer.mixture(2)
    mix, targets = to_tensors(m, False)
    np.testing.assert_array_equal(targets.numpy(), m.stacked())
    assert np.shares_memory(targets.numpy(), m.targets["vocals"])
    assert targets.shape == (2, 2, ds.frames) and mix.shape == (2, ds.frames)
    loose = Mixture(m.mix, {t: m.targets[t].copy() for t in reversed(m.spec.targets)}, m.spec)
    _, stacked = to_tensors(loose, False)
    np.testing.assert_array_equal(stacked.numpy(), m.stacked())
    assert not np.shares_memory(stacked.numpy(), m.targets["vocals"])
