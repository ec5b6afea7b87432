"""Batch generation (in-process): layout, determinism, resume, refusals, I/O failures,
regenerate --verify / repair, export-jams.

Dask (LocalCluster, external scheduler, killed worker) is in test_generate_dask.py; the SIGKILL
crash test in test_generate_crash.py. Both import the helpers below.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import make_musdb18hq
from stemforge.cli import main
from stemforge.index import Index
from stemforge.jobs.generate import generate, job_lock
from stemforge.jobs.layout import JobError, encode, wav_float32
from stemforge.jobs.regenerate import repair, verify
from stemforge.mixing.recipe import Recipe

SR = 16000
RECIPE_YAML = """\
name: gen-test
duration: 1.0
sample_rate: 16000
channels: 2
split: [train]
targets: [vocals, accompaniment]
groups: {accompaniment: [drums, bass, other]}
modes: {coherent: 0.5, incoherent: 0.5}
ref_db: [uniform, -30, -10]
stems:
  default: {snr: [uniform, -5, 5]}
  vocals: {boost: 2}
clipping: fix_clipping
"""


def make_dataset(root: Path) -> Path:
    """Four short 16 kHz tracks (dataset root ``root/hq``) and ``root/recipe.yaml``."""
    names = {f"T{k} - Song": "train" for k in range(4)}
    make_musdb18hq(root / "hq", names, seconds=3.0, sr=SR)
    (root / "recipe.yaml").write_text(RECIPE_YAML)
    return root


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def final_files(folder: Path) -> dict[str, bytes]:
    """Files under their final names (no hidden temp files)."""
    return {k: v for k, v in tree(folder).items()
            if not any(part.startswith(".") for part in Path(k).parts)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("gen"))
    index = Index.build(root / "hq", cache_dir=root / "cache")
    recipe = Recipe.load(root / "recipe.yaml")
    ref = root / "ref"
    generate(recipe, index, 6, ref, seed=7, progress=False)
    return root, index, recipe, ref


def cli(*args) -> int:
    return main([str(a) for a in args])


def gen_args(root: Path, out: Path, n: int = 6, seed: int = 7, *extra):
    return ["generate", root / "recipe.yaml", "--index", root / "cache" / "index.jsonl",
            "--n", n, "--out", out, "--seed", seed, "--no-progress", *extra]


# ---------------------------------------------------------------------------- layout, bytes
def test_layout_manifest_job_file(data):
    root, index, recipe, ref = data
    names = sorted(final_files(ref))
    assert names[:2] == ["000000/accompaniment.wav", "000000/mixture.wav"]
    assert {n.split("/")[0] for n in names} == {f"{i:06d}" for i in range(6)} | {
        "manifest.csv", "stemforge-job.json"}
    assert not [n for n in tree(ref) if n.endswith(".part")]
    job = json.loads((ref / "stemforge-job.json").read_text())
    assert (job["seed"], job["n"], job["format"], job["recipe_name"]) == (7, 6, "wav", "gen-test")
    rows = list(csv.DictReader(io.StringIO((ref / "manifest.csv").read_text())))
    assert [r["id"] for r in rows] == [f"{i:06d}" for i in range(6)]
    spec = json.loads((ref / "000003" / "spec.json").read_text())
    by = {s["stem"]: s for s in spec["sources"]}
    assert float(rows[3]["gain_db_vocals"]) == by["vocals"]["gain_db"]
    assert float(rows[3]["loudness_drums"]) == by["drums"]["loudness"]
    assert rows[3]["mode"] == spec["mode"] and float(rows[3]["duration"]) == 1.0
    # the audio is the Mixer's output, bit-exact, and mix == sum(targets)
    from stemforge import Mixer

    m = Mixer(recipe, index, seed=7).mixture(3)
    mix, _ = sf.read(ref / "000003" / "mixture.wav", dtype="float32", always_2d=True)
    voc, _ = sf.read(ref / "000003" / "vocals.wav", dtype="float32", always_2d=True)
    assert np.array_equal(mix.T, m.mix) and np.array_equal(voc.T, m.targets["vocals"])


def test_wav_encoding_is_deterministic_and_exact():
    """libsndfile stamps float WAVs with the time (PEAK chunk); ours carries no clock."""
    a = np.random.default_rng(0).standard_normal((2, 999)).astype(np.float32)
    b1 = encode(a, SR, "wav")
    time.sleep(1.05)
    assert encode(a, SR, "wav") == b1 and b"PEAK" not in b1
    back, sr = sf.read(io.BytesIO(b1), dtype="float32", always_2d=True)
    assert sr == SR and np.array_equal(back.T, a) and sf.info(io.BytesIO(b1)).subtype == "FLOAT"
    with pytest.raises(JobError, match=r"\(channels, frames\)"):
        wav_float32(a[0], SR)


def test_same_job_same_bytes_later_and_flac(data, tmp_path):
    root, index, recipe, ref = data
    time.sleep(1.05)  # another second on the clock: nothing time-dependent in the files
    assert cli(*gen_args(root, tmp_path / "again")) == 0
    assert tree(tmp_path / "again") == tree(ref)
    generate(recipe, index, 2, tmp_path / "f1", seed=7, fmt="flac", progress=False)
    time.sleep(1.05)
    generate(recipe, index, 2, tmp_path / "f2", seed=7, fmt="flac", progress=False)
    assert tree(tmp_path / "f1") == tree(tmp_path / "f2")
    x, sr = sf.read(tmp_path / "f1" / "000001" / "mixture.flac", dtype="float32")
    w, _ = sf.read(ref / "000001" / "mixture.wav", dtype="float32")
    assert sr == SR and sf.info(tmp_path / "f1" / "000001" / "mixture.flac").subtype == "PCM_24"
    assert np.max(np.abs(x - w)) < 2 ** -22


def test_resume_skips_complete_items_and_grows(data, tmp_path):
    root, index, recipe, ref = data
    out = tmp_path / "o"
    res = generate(recipe, index, 3, out, seed=7, progress=False)
    assert (res.written, res.skipped) == (3, 0)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("00000[0-2]/*")}
    # an interrupted item: audio there, no spec; plus a leftover temp file
    shutil.copytree(ref / "000003", out / "000003")
    (out / "000003" / "spec.json").unlink()
    (out / "000003" / ".vocals.wav.abc.part").write_bytes(b"partial")
    res = generate(recipe, index, 6, out, seed=7, progress=False)
    assert (res.written, res.skipped) == (3, 3)
    assert {p: p.stat().st_mtime_ns for p in out.glob("00000[0-2]/*")} == stamps
    assert tree(out) == tree(ref)


# ---------------------------------------------------------------------------- refusals
def test_other_recipe_seed_or_smaller_n_refused_nothing_changed(data, tmp_path, capsys):
    root, index, recipe, ref = data
    out = tmp_path / "o"
    shutil.copytree(ref, out)
    before = tree(out)
    assert cli(*gen_args(root, out, seed=8)) == 2
    err = capsys.readouterr().err
    assert f"{out} holds the output of another job" in err and "seed 7 (this run: 8)" in err
    other = root / "other.yaml"
    other.write_text(RECIPE_YAML.replace("name: gen-test", "name: other").replace(
        "boost: 2", "boost: 4"))
    args = gen_args(root, out, 6, 7, "--continue")
    args[1] = other
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert "recipe 'gen-test' hash" in err and "this run: recipe 'other'" in err
    assert "even with --continue" in err
    assert cli(*gen_args(root, out, n=4)) == 2
    assert "a set can grow but not shrink" in capsys.readouterr().err
    assert tree(out) == before


def test_other_index_location_needs_continue(data, tmp_path, capsys):
    root, index, recipe, ref = data
    out = tmp_path / "o"
    shutil.copytree(ref, out)
    moved = tmp_path / "moved"
    shutil.copytree(root / "hq", moved)
    args = gen_args(root, out)
    args[3] = moved
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert "generated from another index" in err and "--continue" in err
    assert cli(*args, "--continue") == 0
    assert final_files(out).keys() == final_files(ref).keys()
    assert all(final_files(out)[k] == v for k, v in final_files(ref).items()
               if k != "stemforge-job.json")


def test_not_a_set_folder_refused(data, tmp_path, capsys):
    root, *_ = data
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli(*gen_args(root, out)) == 2
    assert f"{out}: folder is not empty (notes.txt" in capsys.readouterr().err
    assert tree(out) == {"notes.txt": b"mine"}


def test_second_run_on_same_folder_refused(data, tmp_path):
    root, index, recipe, ref = data
    out = tmp_path / "o"
    generate(recipe, index, 1, out, seed=7, progress=False)
    with job_lock(out):
        with pytest.raises(JobError, match="another stemforge job is writing"):
            generate(recipe, index, 2, out, seed=7, progress=False)
    assert not (out / "000001").exists()


def test_bad_arguments(data, tmp_path):
    root, index, recipe, ref = data
    with pytest.raises(JobError, match="--n 0"):
        generate(recipe, index, 0, tmp_path / "o", progress=False)
    with pytest.raises(JobError, match="--format 'mp3'"):
        generate(recipe, index, 1, tmp_path / "o", fmt="mp3", progress=False)
    with pytest.raises(JobError, match="--workers 0"):
        generate(recipe, index, 1, tmp_path / "o", workers=0, progress=False)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------- I/O failures
def test_unwritable_dir_parent_is_a_file(data, tmp_path, capsys):
    root, *_ = data
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli(*gen_args(root, blocker / "out")) == 2
    err = capsys.readouterr().err
    assert f"{blocker / 'out'}: cannot create the output folder" in err
    assert blocker.read_text() == "x" and sorted(os.listdir(tmp_path)) == ["file"]


def _fail_after(monkeypatch, calls: int, err: int):
    """Make the write layer fail with ``err`` from its ``calls``-th fsync on (the temp file
    exists then, so the cleanup path is exercised)."""
    real, count = os.fsync, [0]

    def fsync(fd):
        count[0] += 1
        if count[0] >= calls:
            raise OSError(err, os.strerror(err))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("err,msg", [(errno.ENOSPC, "disk full"),
                                     (errno.EROFS, "output folder is not writable")])
def test_injected_write_errors_leave_complete_items_intact(data, tmp_path, monkeypatch, capsys,
                                                           err, msg):
    root, index, recipe, ref = data
    out = tmp_path / "o"
    # 1 fsync for the job file, then per item 3 audio + 1 dir + 1 spec: fail inside item 2
    _fail_after(monkeypatch, 1 + 5 * 2 + 2, err)
    assert cli(*gen_args(root, out)) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"stemforge generate: error: {out}: {msg}")
    assert "2 of 6 items are complete and intact" in line and "\n" not in line
    files = tree(out)
    assert not [k for k in files if k.endswith(".part")]
    assert {k.split("/")[0] for k in final_files(out)} == {
        "000000", "000001", "stemforge-job.json"}
    assert all(files[k] == v for k, v in tree(ref).items() if k in files)
    monkeypatch.undo()
    assert cli(*gen_args(root, out)) == 0  # space freed: the same command resumes
    assert tree(out) == tree(ref)


def _mount_tmpfs(path: Path, opts: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                           capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def test_disk_full_on_a_tiny_filesystem(data, tmp_path, capsys):
    root, index, recipe, ref = data
    mnt = tmp_path / "tiny"
    item = sum(len(v) for k, v in tree(ref).items() if k.startswith("000000/"))
    if not _mount_tmpfs(mnt, f"size={(5 * item) // 2 // 1024 + 8}k"):
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-ENOSPC test covers it")
    try:
        out = mnt / "o"
        assert cli(*gen_args(root, out)) == 2
        err = capsys.readouterr().err
        assert f"{out}: disk full (no space left on device)" in err
        done = sorted({k.split("/")[0] for k in final_files(out) if k[0].isdigit()})
        assert 1 <= len(done) < 6 and f"{len(done)} of 6 items are complete" in err
        files = tree(out)
        assert not [k for k in files if k.endswith(".part")]
        assert all(files[k] == tree(ref)[k] for k in files if k in tree(ref))
        assert all((out / d / "spec.json").is_file() for d in done)  # no half items
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        assert cli(*gen_args(root, out)) == 0
        assert tree(out) == tree(ref)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_read_only_filesystem(data, tmp_path, capsys):
    root, index, recipe, ref = data
    mnt = tmp_path / "ro"
    if not _mount_tmpfs(mnt, "size=4m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-EROFS test covers it")
    try:
        shutil.copytree(ref, mnt / "o")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        assert cli(*gen_args(root, mnt / "o", n=8)) == 2
        err = capsys.readouterr().err
        assert f"{mnt / 'o'}: output folder is not writable (Read-only file system" in err
        assert tree(mnt / "o") == tree(ref)
        assert cli("regenerate", mnt / "o", "--verify", "--no-progress") == 0  # read-only ok
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ---------------------------------------------------------------------------- regenerate
def test_regenerate_verify_reports_every_mismatch(data, tmp_path, capsys):
    root, index, recipe, ref = data
    out = tmp_path / "o"
    shutil.copytree(ref, out)
    assert cli("regenerate", out, "--verify", "--no-progress") == 0
    assert "all 6 items re-render byte-identically" in capsys.readouterr().out
    # tamper: one sample of a target, a missing mixture, an edited spec, a missing spec
    p = out / "000002" / "vocals.wav"
    b = bytearray(p.read_bytes())
    b[-8:-4] = np.float32(0.5).tobytes()
    p.write_bytes(bytes(b))
    (out / "000004" / "mixture.wav").unlink()
    s = out / "000001" / "spec.json"
    s.write_text(s.read_text().replace('"mode": "', '"mode": "x', 1))
    (out / "000005" / "spec.json").unlink()
    assert cli("regenerate", out, "--verify", "--no-progress") == 1
    cap = capsys.readouterr()
    lines = [l for l in cap.out.splitlines() if l.startswith("MISMATCH")]
    assert lines[0].startswith("MISMATCH 000001/spec.json: differs from a fresh draw")
    assert lines[1].startswith("MISMATCH 000002/vocals.wav: differs: 1 of 16000 frames differ")
    assert lines[2:] == ["MISMATCH 000004/mixture.wav: missing",
                         "MISMATCH 000005/spec.json: missing: the item is incomplete "
                         "(no spec.json)"]
    assert "4 mismatch(es) in 4 of 6 items" in cap.err
    # repair: audio from the specs on disk, the spec-less item drawn again
    (out / "000001" / "spec.json").write_bytes((ref / "000001" / "spec.json").read_bytes())
    (out / "manifest.csv").unlink()
    res = repair(out, progress=False)
    assert res.rewritten == ["000002/vocals.wav", "000004/mixture.wav", "000005/accompaniment.wav",
                             "000005/mixture.wav", "000005/spec.json", "000005/vocals.wav",
                             "manifest.csv"]
    assert tree(out) == tree(ref)
    assert verify(out, progress=False).ok


def test_regenerate_uses_the_index_of_the_job_file_or_override(data, tmp_path, capsys):
    root, index, recipe, ref = data
    out = tmp_path / "o"
    shutil.copytree(ref, out)
    job = json.loads((out / "stemforge-job.json").read_text())
    job["index"]["index_file"] = str(tmp_path / "gone" / "index.jsonl")
    (out / "stemforge-job.json").write_text(json.dumps(job))
    assert cli("regenerate", out, "--verify", "--no-progress") == 2
    assert f"{out}: the index named in its job file is missing" in capsys.readouterr().err
    assert cli("regenerate", out, "--verify", "--no-progress", "--index",
               root / "cache" / "index.jsonl") == 0
    assert cli("regenerate", tmp_path / "nothing", "--verify") == 2
    assert "no such folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------- export-jams
def test_export_jams_validates_with_jams(data, tmp_path):
    import jams
    root, index, recipe, ref = data
    out = tmp_path / "o"
    shutil.copytree(ref, out)
    assert cli("export-jams", out) == 0
    for i in range(6):
        jam = jams.load(str(out / f"{i:06d}" / "mixture.jams"), validate=True)
        jam.validate()
        ann = jam.search(namespace="scaper")[0]
        spec = json.loads((out / f"{i:06d}" / "spec.json").read_text())
        obs = {o.value["label"]: o.value for o in ann.data}
        live = [s for s in spec["sources"] if not s["dropped"]]
        assert set(obs) == {s["stem"] for s in live} and ann.duration == 1.0
        for s in live:
            v = obs[s["stem"]]
            assert int(v["source_time"] * s["track_sample_rate"]) == s["start"]  # Scaper's read
            # the level Scaper must apply: the drawn one up to the stored-energy look-up error
            assert v["snr"] == pytest.approx(s["snr"] + s["boost"], abs=0.05)
            assert v["role"] == "foreground"
            assert v["source_file"] == index.track(s["track"]).stems[s["stem"]].path
        sb = ann.sandbox.scaper
        assert sb["ref_db"] == spec["ref_db"] and sb["sr"] == SR and sb["fix_clipping"] is True
        assert ann.sandbox.stemforge == spec  # the JAMS alone re-renders the item
        assert [(w["stem"], w["track"], w["stream"]) for w in ann.sandbox.stemforge_sources] \
            == [(s["stem"], s["track"], None) for s in live]
    # vocals were boosted by 2 dB: the recorded snr says so
    assert [o.value["snr"] - 2 for o in ann.data if o.value["label"] == "vocals"] == \
        pytest.approx([s["snr"] for s in spec["sources"] if s["stem"] == "vocals"], abs=0.05)


def test_export_jams_refuses_incomplete_set_writes_nothing(data, tmp_path, capsys):
    root, index, recipe, ref = data
    out = tmp_path / "o"
    shutil.copytree(ref, out)
    (out / "000003" / "spec.json").unlink()
    before = tree(out)
    assert cli("export-jams", out) == 2
    assert f"{out}: 1 of 6 items are incomplete (first: 000003)" in capsys.readouterr().err
    assert tree(out) == before


# ---------------------------------------------------------------------------- runner details
def test_chunk_size_balances_and_caps():
    from stemforge.jobs.dask_runner import chunk_size

    assert chunk_size(3, 2) == 1 and chunk_size(40, 2) == 5 and chunk_size(10_000, 2) == 8
    assert chunk_size(0, 0) == 1


def test_malloc_tuning_only_under_dask_nanny_env(tmp_path):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_; only then do workers re-tune glibc malloc
    (checked in fresh processes: the setting is process-wide)."""
    import sys

    code = ("import resource, numpy as np\n"
            "from stemforge.jobs.dask_runner import tune_worker_malloc\n"
            "from stemforge.jobs.layout import encode\n"
            "changed = tune_worker_malloc()\n"
            "a = np.ones((2, 220500), np.float32)\n"
            "encode(a, 44100, 'wav')\n"
            "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(20): encode(a, 44100, 'wav')\n"
            "print(changed, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) // 20)\n")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout.split()
    dask_env = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**env, "MALLOC_TRIM_THRESHOLD_": "65536"},
                              check=True).stdout.split()
    assert plain[0] == "False" and dask_env[0] == "True"
    # a 1.7 MB buffer per encode: without the tuning every one is ~430 fresh pages
    assert int(dask_env[1]) < 100, dask_env


# ---------------------------------------------------------------------------- shards
def test_export_shards_webdataset_layout_deterministic(data, tmp_path):
    import hashlib
    import tarfile

    root, index, recipe, ref = data
    out = tmp_path / "o"
    shutil.copytree(ref, out)
    assert cli("export-shards", out, "--per-shard", 4) == 0
    shards = sorted((out / "shards").glob("*.tar"))
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar"]
    with tarfile.open(shards[1]) as tar:
        names = tar.getnames()
        assert names == [f"00000{i}.{f}" for i in (4, 5) for f in
                         ("spec.json", "mixture.wav", "vocals.wav", "accompaniment.wav")]
        for m in tar.getmembers():
            key, rest = m.name.split(".", 1)
            assert tar.extractfile(m).read() == (ref / key / rest).read_bytes()
            assert (m.mtime, m.uid, m.uname) == (0, 0, "")
    index_doc = json.loads((out / "shards" / "shards.json").read_text())
    assert [(s["first"], s["count"]) for s in index_doc["shards"]] == [(0, 4), (4, 2)]
    for s, p in zip(index_doc["shards"], shards, strict=True):
        assert s["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
        assert s["bytes"] == p.stat().st_size
    first = tree(out / "shards")
    assert cli("export-shards", out, "--per-shard", 4, "--dest", tmp_path / "s2") == 0
    assert tree(tmp_path / "s2") == first  # byte-identical on every export
    assert cli("export-shards", out, "--per-shard", 6) == 0
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["shard-000000.tar",
                                                                   "shards.json"]
    import webdataset as wds
    samples = list(wds.WebDataset(str(out / "shards" / "shard-000000.tar"),
                                  shardshuffle=False))
    assert [s["__key__"] for s in samples] == [f"{i:06d}" for i in range(6)]
    assert samples[2]["vocals.wav"] == (ref / "000002" / "vocals.wav").read_bytes()


def test_export_shards_refuses_incomplete_set_or_bad_size(data, tmp_path, capsys):
    root, index, recipe, ref = data
    out = tmp_path / "o"
    shutil.copytree(ref, out)
    (out / "000001" / "vocals.wav").unlink()
    assert cli("export-shards", out) == 2
    assert f"{out}: item 000001 lacks vocals.wav" in capsys.readouterr().err
    (out / "000002" / "spec.json").unlink()
    assert cli("export-shards", out) == 2
    assert "1 of 6 items are incomplete (first: 000002)" in capsys.readouterr().err
    assert cli("export-shards", out, "--per-shard", 0) == 2
    assert "--per-shard 0" in capsys.readouterr().err
    assert not (out / "shards").exists()


def test_regenerate_refuses_edited_job_file_and_flags_foreign_specs(data, tmp_path, capsys):
    root, index, recipe, ref = data
    out = tmp_path / "o"
    shutil.copytree(ref, out)
    shutil.copy(ref / "000001" / "spec.json", out / "000002" / "spec.json")
    assert cli("regenerate", out, "--verify", "--no-progress") == 1
    assert ("MISMATCH 000002/spec.json: spec belongs to another item or job (item 1"
            in capsys.readouterr().out)
    job = json.loads((out / "stemforge-job.json").read_text())
    job["recipe"]["ref_db"] = [str(x) for x in job["recipe"]["ref_db"]][:1] + [-20, -10]
    (out / "stemforge-job.json").write_text(json.dumps(job))
    before = tree(out)
    assert cli("regenerate", out, "--no-progress") == 2
    err = capsys.readouterr().err
    assert f"{out}: job file recipe hashes to" in err and "the job file was edited" in err
    assert tree(out) == before
    (out / "stemforge-job.json").write_text("{not json")
    assert cli("regenerate", out, "--verify") == 2
    assert f"{out / 'stemforge-job.json'}: not valid JSON" in capsys.readouterr().err


def test_no_fsync_same_bytes_and_only_set_files_synced(data, tmp_path, monkeypatch):
    root, index, recipe, ref = data
    real, calls = os.fsync, []
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    assert cli(*gen_args(root, tmp_path / "fast", 6, 7, "--no-fsync")) == 0
    assert len(calls) == 2  # the job file and the manifest only
    assert tree(tmp_path / "fast") == tree(ref)
    calls.clear()
    generate(recipe, index, 2, tmp_path / "safe", seed=7, progress=False)
    assert len(calls) == 2 + 2 * 5  # per item: 3 audio files, the folder, the spec


def test_jams_pitch_and_stretch_are_the_applied_values():
    """Scaper's pitch_shift / time_stretch fields: hq steps as drawn; a cached step reports the
    grid point it read, not the drawn value; a quick (tape) step moves both."""
    import math

    from stemforge.jobs.jams_export import _pitch_stretch

    assert _pitch_stretch([]) == (None, None)
    assert _pitch_stretch([{"step": "pitch_shift", "semitones": 1.3, "mode": "hq"}]) == (1.3, None)
    assert _pitch_stretch([{"step": "time_stretch", "rate": 1.25, "mode": "hq"}]) == (None, 0.8)
    assert _pitch_stretch([{"step": "pitch_tempo", "semitones": -1.0, "tempo": 0.5,
                            "mode": "fast"}]) == (-1.0, 2.0)
    cached = {"step": "pitch_tempo", "semitones": 1.4, "tempo": 1.07, "mode": "cached",
              "variant": {"semitones": 1.0, "tempo": 1.1}}
    p, s = _pitch_stretch([cached])
    assert p == 1.0 and s == pytest.approx(1 / 1.1)
    only_pitch = {"step": "pitch_shift", "semitones": -0.6, "mode": "cached",
                  "variant": {"semitones": -1.0, "tempo": 1.0}}
    assert _pitch_stretch([only_pitch]) == (-1.0, None)
    p, s = _pitch_stretch([{"step": "pitch_shift", "semitones": 12.0, "mode": "quick"}])
    assert p == 12.0 and s == pytest.approx(0.5)  # an octave up on tape: half as long
    p, s = _pitch_stretch([{"step": "time_stretch", "rate": 2.0, "mode": "quick"}])
    assert p == pytest.approx(12.0) and s == pytest.approx(0.5)
    p, s = _pitch_stretch([{"step": "pitch_shift", "semitones": 12.0, "mode": "quick"},
                           {"step": "gain", "db": 3.0}])
    assert p == 12.0 and math.isclose(s, 0.5)
