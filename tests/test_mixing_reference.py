"""The compiled mixing kernels give exactly the bytes of the reference,
:mod:`stemforge.mixing.reference` (plain float32 NumPy): each target ``fl(x0*g0)`` then
``t += fl(xk*gk)`` in order; with a scale ``t *= k``; mix ``((t0 + t1) + t2) + ...``; peak
``max |mix|``. Checked for the per-shape fused loops and the generic kernels, with groups, empty
targets, lengths that are not a multiple of the block, NaN propagation, the clip rescale, the
plan budget, an unwritable kernel folder, and whole renders (``render`` vs ``render_reference``).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stemforge.mixing import _kernels as K
from stemforge.mixing import reference as R
from stemforge.mixing.render import _readonly

SHAPES = [(1,), (2,), (1, 1), (1, 3), (1, 1, 1, 1), (0, 2), (2, 0, 1), (3, 2, 1, 1, 2)]


def _reference(srcs, gains, counts, scale):
    """The reference with a given scale: ``(targets, mix, peak of the returned mix)``."""
    C, T = srcs[0].shape if srcs else (2, 0)
    groups, k = [], 0
    for n in counts:
        groups.append([(srcs[k + r], gains[k + r]) for r in range(n)])
        k += n
    targets, mix, _, _ = R.mix_reference(groups, C, T, "none", scale)
    return targets, mix, R.peak_of(mix)


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
def test_kernels_match_the_reference_bit_for_bit(kind, counts, T):
    srcs, gains = _data(counts, T, seed=sum(counts) * 100 + T)
    for scale in (1.0, 0.37):
        want_t, want_m, want_p = _reference(srcs, gains, counts, scale)
        tb, mx, peak = _run(kind, srcs, gains, counts, scale)
        assert _same(tb, want_t), (counts, T, scale)
        assert _same(mx, want_m)
        assert np.float32(peak) == np.float32(want_p)


@pytest.mark.parametrize("kind", ["fused", "generic"])
def test_rescale_matches_the_reference_scale_after_unscaled_mix(kind):
    counts = (1, 3)
    srcs, gains = _data(counts, 5000, seed=7)
    want_t, want_m, _ = _reference(srcs, gains, counts, 0.61)
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


def test_reference_clip_policies_and_recorded_scale():
    """Step 4: fix_clipping scales only a clipping mix, peak_normalize always, none never; a
    recorded scale is applied as is; the peak is the unscaled mix's."""
    x = np.full((2, 8), 0.75, np.float32)
    groups = [[(x, 1.0)], [(x, 1.0)]]  # mix 1.5
    t, m, k, p = R.mix_reference(groups, 2, 8, "fix_clipping")
    assert p == 1.5 and k == 1.0 / (1.5 + R.CLIP_EPS)
    assert np.array_equal(m, t[0] + t[1]) and float(np.abs(m).max()) <= 1.0
    assert R.mix_reference(groups, 2, 8, "none")[2] == 1.0
    quiet = [[(x, 0.1)], [(x, 0.1)]]
    assert R.mix_reference(quiet, 2, 8, "fix_clipping")[2] == 1.0
    assert R.mix_reference(quiet, 2, 8, "peak_normalize")[2] > 1.0
    assert R.mix_reference(groups, 2, 8, "fix_clipping", scale=0.5)[2] == 0.5
    silent = R.mix_reference([[], []], 2, 8, "peak_normalize")
    assert silent[2] == 1.0 and not silent[1].any()


@pytest.mark.parametrize("prepared", [True, False])
def test_render_equals_the_reference_on_a_dataset(tmp_path, prepared):
    """End to end: ``render`` (fast memmap path with the peak bound, or decoded reads) gives
    ``render_reference``'s bytes, scale and peak for specs with a group target, dropped
    members and each clipping policy; and a re-render from the recorded scale too."""
    from conftest import make_musdb18hq
    from stemforge.index import Index
    from stemforge.mixing.mixer import Mixer
    from stemforge.mixing.render import render
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
            want_m, want_t, scale, peak = R.render_reference(spec, idx)
            got = render(spec, idx)
            assert _same(got.mix, want_m), (clipping, i)
            for t in spec.targets:
                assert _same(got.targets[t], want_t[t]), (clipping, i, t)
            assert got.scale == scale and np.float32(got.peak) == np.float32(peak)
            recorded = spec.rendered(got.scale, got.peak)
            again = R.render_reference(recorded, idx)  # the recorded scale, applied
            assert _same(again[0], want_m) and _same(render(recorded, idx).mix, want_m)
            counts = tuple(sum(1 for s in spec.sources if s.target == t and not s.dropped)
                           for t in spec.targets)
            checked.add((clipping, counts, scale != 1.0))
    # the draws covered several shapes (drops) and both sides of the clip decision
    assert len({c[1] for c in checked}) >= 3
    assert any(c[2] for c in checked) and any(not c[2] for c in checked)


def test_generated_module_names_change_when_the_kernels_file_changes(tmp_path):
    """The generated modules import BLOCK and helpers from _kernels.py, and numba's disk cache
    keys their machine code on their own file only: editing _kernels.py (here: another BLOCK)
    must give the generated modules new names, so no stale machine code ever loads. Checked
    on copies of the package imported in fresh interpreters."""
    import shutil

    import stemforge

    names = {}
    for variant, edit in (("same", None), ("edited", (b"BLOCK = 8192", b"BLOCK = 4096"))):
        pkg = tmp_path / variant / "stemforge"
        shutil.copytree(Path(stemforge.__file__).parent, pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
        if edit:
            f = pkg / "mixing" / "_kernels.py"
            text = f.read_bytes()
            assert edit[0] in text
            f.write_bytes(text.replace(*edit))
        code = ("import stemforge.mixing._kernels as K, sys; "
                "assert K.__file__.startswith(sys.argv[1]); print(K._GEN_TAG)")
        out = subprocess.run([sys.executable, "-c", code, str(pkg)], capture_output=True,
                             text=True, cwd=tmp_path, check=True,
                             env={**os.environ, "PYTHONPATH": str(pkg.parent)})
        names[variant] = out.stdout.strip()
    assert names["same"] == K._GEN_TAG
    assert names["edited"] != K._GEN_TAG
