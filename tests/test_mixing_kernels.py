"""The compiled mixing kernels give exactly the bytes of the plain float32 NumPy formulation.

Reference (``_numpy_mix``): each target ``fl(x0*g0)`` then ``t += fl(xk*gk)`` in order; with a
scale ``t *= k``; mix ``((t0 + t1) + t2) + ...``; peak ``max(mix.max(), -mix.min())``.
Checked for the per-shape fused loops and the generic kernel, with groups, empty targets,
lengths that are not a multiple of the block, NaN propagation, the clip rescale, the plan
budget, and an unwritable kernel folder.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from stemforge.mixing import _kernels as K
from stemforge.mixing.render import _readonly

SHAPES = [(1,), (2,), (1, 1), (1, 3), (1, 1, 1, 1), (0, 2), (2, 0, 1), (3, 2, 1, 1, 2)]


def _numpy_mix(srcs, gains, counts, scale):
    """The reference: float32 NumPy, one operation per pass."""
    C, T = srcs[0].shape if srcs else (2, 0)
    targets = np.zeros((len(counts), C, T), np.float32)
    k = 0
    for j, n in enumerate(counts):
        for r in range(n):
            contrib = np.multiply(srcs[k], gains[k], dtype=np.float32)
            if r == 0:
                targets[j] = contrib
            else:
                targets[j] += contrib
            k += 1
    if scale != 1.0:
        targets *= np.float32(scale)
    mix = targets[0].copy()
    for j in range(1, len(counts)):
        mix += targets[j]
    peak = float(max(mix.max(), -mix.min())) if mix.size else 0.0
    return targets, mix, peak


def _data(counts, T, C=2, seed=0, hop=1):
    rng = np.random.default_rng(seed)
    K_ = sum(counts)
    big = [rng.standard_normal((C, T * hop + 7)).astype(np.float32) for _ in range(K_)]
    srcs = [b[:, 3:3 + T * hop:hop] if hop > 1 else b[:, 3:3 + T] for b in big]
    srcs = [np.ascontiguousarray(s) if hop > 1 else s for s in srcs]
    gains = rng.uniform(0.05, 2.0, K_).astype(np.float32)
    return srcs, gains


def _rows(srcs):
    return tuple(_readonly(s[c]) for s in srcs for c in range(s.shape[0]))


def _run(kind, srcs, gains, counts, scale):
    C, T = srcs[0].shape
    tb = np.full((len(counts), C, T), np.nan, np.float32)  # stale contents must not leak
    mx = np.full((C, T), np.nan, np.float32)
    if kind == "fused":
        plan = K.plan_kernels(tuple(counts))
        assert plan is not None
        peak = plan.mix(_rows(srcs), gains, tb, mx, np.float32(scale))
    else:
        peak = K.mix_generic(_rows(srcs), gains, np.array(counts, np.int64), tb, mx,
                             np.float32(scale))
    return tb, mx, float(peak)


def _same(a, b):
    return np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))


@pytest.mark.parametrize("kind", ["fused", "generic"])
@pytest.mark.parametrize("counts", SHAPES)
@pytest.mark.parametrize("T", [1, K.BLOCK - 1, 3 * K.BLOCK + 17])
def test_kernels_match_numpy_bit_for_bit(kind, counts, T):
    srcs, gains = _data(counts, T, seed=sum(counts) * 100 + T)
    for scale in (1.0, 0.37):
        want_t, want_m, want_p = _numpy_mix(srcs, gains, counts, scale)
        tb, mx, peak = _run(kind, srcs, gains, counts, scale)
        assert _same(tb, want_t), (counts, T, scale)
        assert _same(mx, want_m)
        assert np.float32(peak) == np.float32(want_p)


@pytest.mark.parametrize("kind", ["fused", "generic"])
def test_rescale_matches_numpy_scale_after_unscaled_mix(kind):
    counts = (1, 3)
    srcs, gains = _data(counts, 5000, seed=7)
    want_t, want_m, _ = _numpy_mix(srcs, gains, counts, 0.61)
    tb, mx, _ = _run(kind, srcs, gains, counts, 1.0)
    if kind == "fused":
        K.plan_kernels(counts).rescale(tb, mx, np.float32(0.61))
    else:
        K.rescale_generic(tb, mx, np.float32(0.61))
    assert _same(tb, want_t) and _same(mx, want_m)


@pytest.mark.parametrize("kind", ["fused", "generic"])
def test_peak_is_nan_when_a_source_holds_nan(kind):
    counts = (1, 1)
    srcs, gains = _data(counts, 3000, seed=3)
    srcs[1] = srcs[1].copy()
    srcs[1][1, 2500] = np.nan
    _, _, peak = _run(kind, srcs, gains, counts, 1.0)
    assert np.isnan(peak)


def test_abs_max_orders_by_magnitude_and_propagates_nan():
    x = np.array([0.5, -3.0, 2.0, -0.0], np.float32)
    assert K.abs_max(x) == np.float32(3.0)
    assert K.abs_max(np.array([np.inf, -1.0], np.float32)) == np.inf
    assert np.isnan(K.abs_max(np.array([1.0, np.nan, -np.inf], np.float32)))
    assert K.abs_max(np.zeros(0, np.float32)) == 0.0


def test_plan_budget_falls_back_to_generic(monkeypatch):
    monkeypatch.setattr(K, "_plans", {})
    monkeypatch.setattr(K, "MAX_PLANS", 1)
    assert K.plan_kernels((1, 1)) is not None
    assert K.plan_kernels((2, 1)) is None  # over budget: generic
    assert K.plan_kernels((1, 1)) is not None  # already compiled shapes stay in use
    monkeypatch.setattr(K, "MAX_PLANS", 10)
    monkeypatch.setattr(K, "_plans", {})
    assert K.plan_kernels((K.MAX_SOURCES + 1,)) is None  # too many sources for its own loop


def test_unwritable_kernel_dir_falls_back_to_generic(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        target = tmp_path / "file-not-dir"
        target.write_text("x")
        kdir = target / "kernels"  # mkdir under a regular file fails even for root
    else:
        kdir = tmp_path / "ro"
        kdir.mkdir()
        kdir.chmod(0o500)
    monkeypatch.setenv("STEMFORGE_KERNEL_DIR", str(kdir))
    monkeypatch.setattr(K, "_plans", {})
    assert K.plan_kernels((1, 2, 2)) is None


def test_generated_module_is_rewritten_when_its_text_differs(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMFORGE_KERNEL_DIR", str(tmp_path))
    monkeypatch.setattr(K, "_plans", {})
    counts = (2, 2)
    K.plan_kernels(counts)
    (path,) = tmp_path.glob("mix_*_2_2.py")
    assert path.read_text() == K._plan_source(counts)
    path.write_text("# tampered\n")
    monkeypatch.setattr(K, "_plans", {})
    assert K.plan_kernels(counts) is not None
    assert path.read_text() == K._plan_source(counts)


@pytest.mark.parametrize("prepared", [True, False])
def test_render_equals_numpy_reference_on_a_dataset(tmp_path, prepared):
    """End to end: ``render`` (fast memmap path or decoded reads) gives the NumPy reference's
    bytes for specs with a group target, dropped members and each clipping policy."""
    import copy

    from conftest import make_musdb18hq
    from stemforge.index import Index
    from stemforge.mixing.mixer import Mixer
    from stemforge.mixing.render import render
    from stemforge.mixing.sources import process_stem
    from stemforge.prepare import prepare

    root = make_musdb18hq(tmp_path / "hq", {f"T{k} - S": "train" for k in range(3)}, seconds=3.0)
    idx = Index.build(root, cache_dir=tmp_path / "c")
    if prepared:
        prepare(idx, workers=1)
    checked = set()
    for clipping, ref in (("fix_clipping", [-12, 0]), ("peak_normalize", [-30, -10]),
                          ("none", [-30, -20])):
        rec = {"name": "k", "duration": 1.0, "targets": ["vocals", "accompaniment"],
               "groups": {"accompaniment": ["drums", "bass", "other"]},
               "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", *ref],
               "stems": {"default": {"snr": ["uniform", -5, 5]}, "drums": {"drop": 0.5},
                         "bass": {"drop": 0.5}, "other": {"drop": 0.5}},
               "clipping": clipping}
        mixer = Mixer(rec, idx, seed=1)
        for i in range(12):
            spec = mixer.spec(i)
            got = render(copy.deepcopy(spec), idx)
            srcs, gains, counts = [], [], []
            for t in spec.targets:
                members = [s for s in spec.sources if s.target == t and not s.dropped]
                counts.append(len(members))
                for s in members:
                    srcs.append(process_stem(idx, s, spec.sample_rate, spec.channels, spec.frames))
                    gains.append(np.float32(s.gain))
            first = _numpy_mix(srcs, gains, counts, 1.0) if srcs else None
            peak = first[2] if srcs else 0.0
            scale = {"none": 1.0, "peak_normalize": 1.0 / (peak + 1e-10) if peak > 0 else 1.0,
                     "fix_clipping": 1.0 / (peak + 1e-10) if peak > 1 else 1.0}[clipping]
            if srcs:
                want_t, want_m, _ = _numpy_mix(srcs, gains, counts, scale)
            else:
                want_t = np.zeros((2, spec.channels, spec.frames), np.float32)
                want_m = want_t[0]
            assert _same(got.mix, want_m), (clipping, i)
            for j, t in enumerate(spec.targets):
                assert _same(got.targets[t], want_t[j]), (clipping, i, t)
            checked.add((clipping, tuple(counts), scale != 1.0))
    # the draws covered several shapes (drops) and both sides of the clip decision
    assert len({c[1] for c in checked}) >= 3
    assert any(c[2] for c in checked) and any(not c[2] for c in checked)


def test_generated_module_names_follow_the_kernels_file(tmp_path):
    """The generated modules import BLOCK and helpers from _kernels.py, and numba's disk cache
    keys their machine code on their own file only: the tag in their names hashes
    _kernels.py too, so editing it (a new BLOCK) never loads stale code."""
    import hashlib
    from pathlib import Path

    want = hashlib.sha256(K._plan_source((1, 2, 0)).encode()
                          + Path(K.__file__).read_bytes()).hexdigest()[:10]
    assert K._GEN_TAG == want
    edited = Path(K.__file__).read_bytes().replace(b"BLOCK = 8192", b"BLOCK = 4096")
    assert edited != Path(K.__file__).read_bytes()
    assert hashlib.sha256(K._plan_source((1, 2, 0)).encode() + edited).hexdigest()[:10] != want
