"""The doctor on planted defects: a made dataset (two datasets, ~22 music-like tracks) with one
defect of every kind (three duplicates, two silences) and clean tracks, scored per kind.

The table this prints is the small version of the one in docs/doctor.md (which comes from
``benchmarks/doctor.py --planted``, 47 tracks and 33 defects)."""
from __future__ import annotations

import pytest

from stemforge.doctor import planted
from stemforge.doctor.datasets import resolve
from stemforge.doctor.run import run_doctor


@pytest.fixture(scope="module")
def doctored(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted") / "set"
    ps = planted.make_planted(root, seed=1, plan=planted.SMALL_PLAN, clean=3,
                              seconds=(10.0, 11.0))
    refs = [resolve(r, name=n) for n, r in ps.datasets]
    report = run_doctor(refs, out=root / "doctor")
    return ps, report


def test_planted_defects_recall_and_precision(doctored):
    ps, report = doctored
    rows, _ = planted.score(report, ps)
    print("\n" + planted.score_table(rows))
    assert len(ps.defects) >= 16 and {r.kind for r in rows} >= set(planted.SMALL_PLAN)
    for r in rows:
        assert r.planted > 0, f"{r.kind}: findings of a kind that was not planted"
        assert r.recall >= 0.95, f"{r.kind}: recall {r.recall:.2f}"
        assert r.precision >= 0.95, f"{r.kind}: precision {r.precision:.2f}"


def test_nothing_above_info_on_clean_tracks(doctored):
    ps, report = doctored
    _, on_clean = planted.score(report, ps)
    clean = [t for t in ps.tracks if tuple(t) not in ps.involved()]
    assert len(clean) >= 3
    assert on_clean == []


def test_duplicates_carry_span_offset_similarity_and_leakage(doctored):
    ps, report = doctored
    dups = {(f.track, f.detail["other"]["track"]): f for f in report.findings
            if f.kind == "duplicate"}
    for p in (p for p in ps.defects if p.kind == "duplicate"):
        f = dups.get((p.other[1], p.track)) or dups.get((p.track, p.other[1]))
        assert f is not None, p
        # the shared stretch: 10 s or more, or (a copy cut short by its offset) most of it
        shared = min(r.get("seconds") for r in report.tracks
                     if r["track"] in (p.track, p.other[1]))
        assert f.spans and f.spans[0][1] - f.spans[0][0] >= min(10.0, 0.8 * shared) - 1.0
        assert 0 < f.detail["similarity"] <= 1 and f.detail["votes"] >= 10
        if "offset_s" in p.detail:  # the copy starts offset_s later in the original
            sign = -1 if f.track == p.other[1] else 1   # offset = time in other - in this one
            assert f.detail["offset_s"] == pytest.approx(sign * p.detail["offset_s"], abs=0.05)
        cross_split = p.dataset == "A" and p.track.split("/")[0] != p.other[1].split("/")[0]
        if cross_split:
            assert f.detail["leakage"] and f.severity == "error"
            assert f.track.startswith("train/")  # the training copy is the one to drop
