"""Per-thread reusable buffers (:mod:`stemforge.metrics.scratch`) and what uses them: the same
scores with and without reuse, whatever the order and length of the tracks scored."""
from __future__ import annotations

import json
import threading

import numpy as np

from stemforge.metrics import scratch
from stemforge.metrics.validate import silent_sources


def test_buffers_are_kept_per_thread_and_name_only_inside_reuse():
    a = scratch.empty("t.a", (3, 4))
    b = scratch.empty("t.a", (3, 4))
    assert not np.shares_memory(a, b)  # outside reuse: plain np.empty
    with scratch.reuse():
        x = scratch.empty("t.a", (3, 4))
        y = scratch.empty("t.a", (2, 3), np.complex128)  # same name: the same memory, any dtype
        z = scratch.empty("t.b", (3, 4))
        assert np.shares_memory(x, y) and not np.shares_memory(x, z)
        assert y.shape == (2, 3) and y.dtype == np.complex128 and y.flags.c_contiguous
        assert y.flags.aligned
        big = scratch.empty("t.a", (1000, 1000))  # grows when a longer track needs more
        assert big.shape == (1000, 1000) and not np.shares_memory(big, x)
        assert np.shares_memory(big, scratch.empty("t.a", (10,)))
        other = {}
        th = threading.Thread(target=lambda: other.setdefault("v", scratch.empty("t.a", (10,))))
        th.start()
        th.join()
        assert not np.shares_memory(other["v"], big)  # each thread has its own
        with scratch.reuse():  # nested: the outer scope's buffers stay
            assert np.shares_memory(scratch.empty("t.a", (10,)), big)
        assert np.shares_memory(scratch.empty("t.a", (10,)), big)
    c = scratch.empty("t.a", (10,))
    assert not np.shares_memory(c, big)  # released with the outermost scope


def _track(rng, n, nsrc=3, channels=2):
    refs = {f"s{i}": (0.1 * rng.standard_normal((channels, n))).astype(np.float32)
            for i in range(nsrc)}
    ests = {t: (r + 0.05 * rng.standard_normal(r.shape)).astype(np.float32)
            for t, r in refs.items()}
    return refs, ests


def test_reused_buffers_change_no_score():
    """Tracks of different lengths and source counts scored one after another in one reuse
    scope (as ``stemforge evaluate``'s threads do) give exactly the scores of separate calls:
    no stale samples of a longer earlier track leak into a later one."""
    from stemforge.jobs.evaluate import score_track

    rng = np.random.default_rng(5)
    tracks = [_track(rng, 5 * 8000), _track(rng, 3 * 8000 + 77), _track(rng, 4 * 8000, nsrc=2)]
    metrics = ("bsseval", "sisdr", "mdx", "csdr")

    def score(refs, ests):
        return json.dumps(score_track(refs, ests, [list(refs)], metrics, 8000), sort_keys=True)

    alone = [score(*t) for t in tracks]
    with scratch.reuse():
        reused = [score(*t) for t in tracks + tracks[::-1]]
    assert reused == alone + alone[::-1]


def test_silent_sources_reads_blocks_with_the_same_rule():
    """The block-wise silence check equals museval's rule (channel sum zero at every sample)
    on silent, nearly silent (one sample at any place), cancelling-channel and noisy sources."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        nsrc, ch = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        n = int(rng.integers(1, 3 * (1 << 16)))
        x = np.zeros((nsrc, ch, n))
        for i in range(nsrc):
            kind = rng.integers(0, 4)
            if kind == 1:
                x[i, rng.integers(0, ch), rng.integers(0, n)] = 1e-30
            elif kind == 2 and ch > 1:
                x[i, 0] = rng.standard_normal(n)
                x[i, 1] = -x[i, 0]
            elif kind == 3:
                x[i] = rng.standard_normal((ch, n))
        assert (silent_sources(x) == np.all(x.sum(axis=1) == 0, axis=-1)).all()


def test_scoring_a_track_holds_little_beside_its_reused_buffers(tmp_path):
    """Fresh memory costs CPU (the OS zeroes each new page), so ``stemforge evaluate`` keeps a
    track's large arrays in reused buffers and reads each file straight into its stack: beside
    those, scoring holds little more than the summed cross-spectra (one row per pair of
    channels, at the 1 s chunks' bins) at any time — no per-file float32 copies held, no
    full-length inverse transforms (before: +2 x the files' float32 size + 36 MB here)."""
    import shutil
    import tracemalloc

    from conftest import make_musdb18hq
    from stemforge.index import Index
    from stemforge.jobs import evaluate as ev

    root = make_musdb18hq(tmp_path / "hq", {"A - One": "test"}, seconds=6.0)
    est = tmp_path / "est"
    (est / "A - One").mkdir(parents=True)
    for stem in ("vocals", "drums", "bass", "other"):
        shutil.copy(root / "test" / "A - One" / f"{stem}.wav", est / "A - One" / f"{stem}.wav")
    index = Index.open(root)
    task = ev.plan(index, str(est), None, ev.METRICS, 1.0, 1.0)
    ev.seed_state(task.index.key, index)
    with scratch.reuse():
        ev.score_item(0, task)  # buffers made
        tracemalloc.start()
        try:
            ev.score_item(0, task)
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        kept = sum(b.nbytes for pool in scratch._pools.values() for b in pool.values())
    from stemforge.metrics.toeplitz import fast_len

    m = 4 * 2  # sources x channels
    sums = (m * (m + 1) // 2 + m * m) * (fast_len(44100 + 511) // 2 + 1) * 16
    assert kept > 0 and current < 0.05 * kept
    assert peak < sums + (8 << 20), (peak / 2**20, sums / 2**20)
