"""``stemforge separate --index ROOT``: any separator over a dataset split, written in the
layout ``evaluate`` reads; resumable, atomic per track, on Dask, errors naming the track (a
command's with its stderr tail) and nothing partial of a failing track."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import cache_files, make_musdb18hq
from stemforge.cli import main
from stemforge.index import Index

TRACKS = {"A - One": "test", "B - Two": "test", "C - Three": "train"}
COPY = "for t in drums bass other vocals; do cp {input} {outdir}/$t.wav; done"

# a callable separator: a fixed fraction of the mixture per target; while the file MARKER
# exists its second call raises (tracks finished before a failure stay, a rerun resumes)
MODULE = '''
import os
calls = []
MARKER = {marker!r}

def make():
    def separate(mix, sr):
        calls.append(mix.shape)
        if len(calls) == 2 and os.path.exists(MARKER):
            raise RuntimeError("model exploded")
        return {{t: g * mix for t, g in (("drums", 0.1), ("bass", 0.2), ("other", 0.3),
                                        ("vocals", 0.4))}}
    return separate

def bad_shape():
    return lambda mix, sr: {{t: mix[0] for t in ("drums", "bass", "other", "vocals")}}
'''


@pytest.fixture
def root(tmp_path):
    return make_musdb18hq(tmp_path / "hq", TRACKS, seconds=1.2)


def _run(capsys, *argv):
    rc = main(["separate", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _module(tmp_path, name="sep_mod.py", marker="none"):
    path = tmp_path / name
    path.write_text(MODULE.format(marker=str(marker)))
    return path


def _read(path):
    a, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return a.T, sr


def _fails(capsys, *argv, match):
    rc, out, err = _run(capsys, *argv)
    assert rc == 2, (out, err)
    assert match in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_callable_writes_the_evaluate_layout_and_resumes(root, tmp_path, capsys):
    est = tmp_path / "est"
    marker = tmp_path / "fail"
    marker.write_text("")
    mod = _module(tmp_path, marker=marker)
    _fails(capsys, "--index", root, "--out", est, "--model", f"{mod}:make", "--no-progress",
           match="track 'B - Two': the separator raised RuntimeError: model exploded")
    # the first test track is complete, the failing one left nothing (no staging folder)
    assert cache_files(est) == ["A - One/bass.wav", "A - One/drums.wav", "A - One/other.wav",
                                "A - One/vocals.wav", "stemforge-separate.json"]
    marker.unlink()  # "fixed"
    rc, out, err = _run(capsys, "--index", root, "--out", est, "--model", f"{mod}:make",
                        "--no-progress")
    assert rc == 0, err
    assert "skipped 1 track(s) already separated" in out and "separated 1 track(s)" in out
    index = Index.open(root)
    mix = index.read_mixture("test/B - Two")
    for t, g in (("drums", 0.1), ("vocals", 0.4)):
        a, sr = _read(est / "B - Two" / f"{t}.wav")
        assert sr == 44100 and np.array_equal(a, (g * mix).astype(np.float32))
    assert not (est / "C - Three").exists()  # the test split only (the default)
    job = json.loads((est / "stemforge-separate.json").read_text())
    assert job["separator"] == {"kind": "callable", "value": f"{mod}:make"}
    # the estimates are what evaluate reads
    assert main(["evaluate", "--index", str(root), "--estimates", str(est), "--out",
                 str(tmp_path / "res"), "--metrics", "mdx", "--no-progress"]) == 0
    # another separator into the same folder is refused, nothing changes
    before = cache_files(est)
    _fails(capsys, "--index", root, "--out", est, "--command", COPY, "--no-progress",
           match="holds estimates of another run (separator")
    assert cache_files(est) == before


def test_command_baseline_its_failures_and_dask(root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STEMFORGE_PROGRESS_EVERY", "0")  # progress lines off a terminal
    est = tmp_path / "mix"
    rc, out, err = _run(capsys, "--index", root, "--out", est, "--command", COPY, "--split",
                        "all")
    assert rc == 0, err
    assert "separate: 3/3 tracks (100%)" in err  # progress, also off a terminal
    index = Index.open(root)
    for track in index.tracks:
        a, _ = _read(est / track.name / "vocals.wav")
        assert np.array_equal(a, index.read_mixture(track.id))
    # the same on a local Dask cluster: identical bytes
    dask_est = tmp_path / "mix-dask"
    rc, _, err = _run(capsys, "--index", root, "--out", dask_est, "--command", COPY, "--split",
                      "all", "--workers", "2", "--no-progress")
    assert rc == 0, err
    for f in cache_files(est):
        assert (dask_est / f).read_bytes() == (est / f).read_bytes(), f

    bad = tmp_path / "bad"
    err = _fails(capsys, "--index", root, "--out", bad, "--no-progress", "--command",
                 "echo starting; echo 'CUDA out of memory' >&2; exit 3",
                 match="track 'A - One': command exited with status 3")
    assert "stderr: CUDA out of memory" in err
    assert cache_files(bad) == ["stemforge-separate.json"]  # nothing of the track, no staging
    err = _fails(capsys, "--index", root, "--out", tmp_path / "bad2", "--no-progress",
                 "--command", "cp {input} {outdir}/vocals.wav", "--pattern",
                 "{outdir}/{stem}/{target}.wav",
                 match="track 'A - One': the command wrote no bass.wav for target 'bass'")
    assert "expected {outdir}/mixture/bass.wav" in err and "it wrote vocals.wav" in err
    assert cache_files(tmp_path / "bad2") == ["stemforge-separate.json"]
    _fails(capsys, "--index", root, "--out", tmp_path / "bad3", "--no-progress", "--command",
           "x ${HOME}", match="bad placeholder 'HOME'")
    assert not (tmp_path / "bad3").exists()
    _fails(capsys, "--index", root, "--out", tmp_path / "bad4", "--no-progress", "--command",
           "sleep 5", "--timeout", "0.5", match="track 'A - One': command timed out after 0.5 s")


def test_argument_and_callable_errors(root, tmp_path, capsys):
    mod = _module(tmp_path, name="other_mod.py")
    out = tmp_path / "e"
    _fails(capsys, "--index", root, "--out", out, "--no-progress",
           match="--index needs exactly one separator")
    _fails(capsys, "--index", root, "--out", out, "--model", "x:y", "--command", "true",
           "--no-progress", match="--index needs exactly one separator")
    _fails(capsys, "--out", out, match="expected CHECKPOINT AUDIO --out DIR")
    _fails(capsys, "--index", root, "--out", out, "--model", "no_such_module_xyz:make",
           "--no-progress", match="cannot import no_such_module_xyz (ModuleNotFoundError")
    _fails(capsys, "--index", root, "--out", out, "--model", f"{mod}:nothing",
           "--no-progress", match="has no callable 'nothing'")
    _fails(capsys, "--index", root, "--out", out, "--model", f"{mod}:bad_shape",
           "--no-progress", match="track 'A - One': estimate 'bass' has shape (52920,)")
    _fails(capsys, "--index", root, "--out", out, "--model", f"{mod}:make", "--targets",
           "vocals", "piano", "--no-progress",
           match="track 'A - One': the separator returned no 'piano'")
    assert cache_files(out) == ["stemforge-separate.json"]
