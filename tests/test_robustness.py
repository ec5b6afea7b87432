"""Robustness on real multitracks (issue 16): silent stems, content-stale caches, concurrent
runs, failed starts.

* digital silence of 0-100 % in every stem: ``generate`` completes; silent sources are recorded
  with ``loudness: null`` and 0 dB, every spec is strict JSON with finite numbers;
* a stem rewritten in place with size and mtime restored (``touch -r``) is noticed by the next
  ``index`` and by ``generate`` (the prepared memmap never serves the old audio), and an
  ``index.jsonl`` given directly rescans its root (new tracks are seen);
* ``--verify-content`` finds an edit that the stamps cannot see;
* concurrent ``index`` runs on one fresh cache all succeed; an interrupted one removes only
  its own files;
* ``generate`` checks the folder under its lock; a failed first run leaves nothing and a
  corrected rerun starts clean.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import make_musdb18hq, silent_dataset, tone, write_wav
from stemforge import Index
from stemforge.cli import main
from stemforge.jobs.generate import generate
from stemforge.mixing.recipe import Recipe
from stemforge.prepare import prepare

SR = 8000


def strict_json(text: str):
    """``json.loads`` that refuses NaN/Infinity literals (what strict JSON readers do)."""
    def refuse(name):
        raise ValueError(f"non-finite number {name} in JSON")
    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------------------- silence
def test_generate_over_random_digital_silence_completes(tmp_path, capsys):
    root = silent_dataset(tmp_path / "ds", tracks=6, seconds=3.0, sr=SR, seed=3)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("duration: 1.0\nsample_rate: 8000\ntargets: [vocals, drums, bass, other]\n"
                      "modes: {coherent: 0.5, incoherent: 0.5}\nref_db: [uniform, -30, -10]\n"
                      "stems:\n  default: {snr: [uniform, -5, 5]}\n")
    out = tmp_path / "out"
    code = main(["generate", str(recipe), "--index", str(root), "--cache", str(tmp_path / "c"),
                 "--n", "40", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    silent = loud = 0
    for i in range(40):
        spec = strict_json((out / f"{i:06d}" / "spec.json").read_text())
        for s in spec["sources"]:
            assert all(v is None or math.isfinite(v) for v in (s["gain_db"], s["gain"], s["snr"]))
            if s["loudness"] is None:  # a silent excerpt: not normalised
                silent += 1
                assert (s["gain_db"], s["gain"]) == (0.0, 1.0)
            else:
                loud += 1
                assert math.isfinite(s["loudness"])
        mix, _ = sf.read(str(out / f"{i:06d}" / "mixture.wav"), dtype="float32")
        assert np.isfinite(mix).all()
    assert silent >= 5 and loud >= 40  # both kinds really occur
    assert "nan" not in (out / "manifest.csv").read_text().lower()
    assert main(["regenerate", str(out), "--verify", "--no-progress"]) == 0


def test_index_json_has_null_for_silent_stems_and_exact_mixtures(tmp_path, monkeypatch):
    """-inf LUFS (a silent stem) and -inf dB (a mixture exactly the stem sum) are written as
    null (+ ``residual_exact``) and read back as -inf."""
    root = make_musdb18hq(tmp_path / "ds", {"A - One": "train"}, seconds=1.0, sr=SR)
    folder = root / "train" / "A - One"
    drums = tone(200, 1.0, SR)
    for stem in ("bass", "other", "vocals"):
        write_wav(folder / f"{stem}.wav", np.zeros((2, SR), np.float32), SR)
    write_wav(folder / "drums.wav", drums, SR)
    write_wav(folder / "mixture.wav", drums, SR)
    index = Index.build(root, cache_dir=tmp_path / "c")
    track = index.track("train/A - One")
    assert track.stems["vocals"].loudness == -math.inf and track.residual_db == -math.inf
    rows = [strict_json(line) for line in (tmp_path / "c" / "index.jsonl").read_text().splitlines()]
    assert rows[1]["stems"]["vocals"]["loudness"] is None
    assert (rows[1]["residual_db"], rows[1]["residual_exact"]) == (None, True)
    again = Index.load(tmp_path / "c" / "index.jsonl", refresh=False)
    assert again.track("train/A - One").stems["vocals"].loudness == -math.inf
    assert again.track("train/A - One").residual_db == -math.inf
    import stemforge.analyze

    def no_decoding(*args, **kw):
        raise AssertionError("an unchanged track was decoded again")

    monkeypatch.setattr(stemforge.analyze, "decode_source", no_decoding)
    again = Index.build(root, cache_dir=tmp_path / "c")  # the exact residual is reused
    assert again.track("train/A - One").residual_db == -math.inf


# ---------------------------------------------------------------------------- staleness
def _rewrite_keep_size_and_mtime(path: Path, audio: np.ndarray) -> None:
    """Write new samples into ``path`` in place (same format, so the same size), then put its
    mtime back, as ``touch -r`` would: only ctime (and the bytes) tell."""
    st = path.stat()
    with sf.SoundFile(str(path), "r+") as f:
        f.seek(0)
        f.write(audio.T)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns,
                                                                 st.st_ino)


ONE_TRACK = """\
duration: 1.0
sample_rate: 8000
targets: [vocals, accompaniment]
groups: {accompaniment: [drums, bass, other]}
stems:
  default: {gain_db: 0, track: [const, train/A - One]}
"""


def test_in_place_edit_with_size_and_mtime_kept_is_detected(tmp_path, capsys):
    root = make_musdb18hq(tmp_path / "ds", {"A - One": "train", "B - Two": "train"},
                          seconds=2.0, sr=SR)
    cache = tmp_path / "c"
    index = Index.build(root, cache_dir=cache)
    prepare(index, workers=1)  # the old audio is memory-mapped in the StemCache
    old_key = index.track("train/A - One").stems["vocals"].key
    old_loud = index.track("train/A - One").stems["vocals"].loudness
    (tmp_path / "r.yaml").write_text(ONE_TRACK)
    before = tmp_path / "before"
    assert main(["generate", str(tmp_path / "r.yaml"), "--index", str(root), "--cache",
                 str(cache), "--n", "2", "--out", str(before), "--no-progress"]) == 0

    vocals = root / "train" / "A - One" / "vocals.wav"
    new = tone(1234, 2.0, SR, amp=0.05, seed=9)
    _rewrite_keep_size_and_mtime(vocals, new)

    # generate (given the index file, not the root) renders the new audio
    after = tmp_path / "after"
    assert main(["generate", str(tmp_path / "r.yaml"), "--index", str(cache / "index.jsonl"),
                 "--n", "2", "--out", str(after), "--no-progress"]) == 0
    for i in range(2):
        spec = json.loads((after / f"{i:06d}" / "spec.json").read_text())
        src = next(s for s in spec["sources"] if s["stem"] == "vocals")
        got, _ = sf.read(str(after / f"{i:06d}" / "vocals.wav"), dtype="float32",
                         always_2d=True)
        want = new[:, src["start"]:src["start"] + SR]
        np.testing.assert_array_equal(got.T, want)
        old, _ = sf.read(str(before / f"{i:06d}" / "vocals.wav"), dtype="float32")
        assert not np.array_equal(old, got)
    # the set made from the old bytes no longer verifies
    assert main(["regenerate", str(before), "--verify", "--no-progress"]) == 1
    capsys.readouterr()

    # the next `index` reports the edit (here generate already re-analysed it) and the
    # index holds the new loudness under a new key
    _rewrite_keep_size_and_mtime(vocals, tone(777, 2.0, SR, amp=0.5, seed=2))
    assert main(["index", str(root), "--cache", str(cache), "--no-progress"]) == 0
    assert "content changed since the last index: " in capsys.readouterr().out
    again = Index.load(cache / "index.jsonl", refresh=False)
    stem = again.track("train/A - One").stems["vocals"]
    assert stem.key != old_key and abs(stem.loudness - old_loud) > 3
    assert again.cache.get(stem.key) is None  # the old memmap is under the old key only
    np.testing.assert_array_equal(again.read("train/A - One", "vocals"),
                                  tone(777, 2.0, SR, amp=0.5, seed=2))


def test_metadata_only_change_reanalyses_nothing(tmp_path):
    root = make_musdb18hq(tmp_path / "ds", {"A - One": "train"}, seconds=1.0, sr=SR)
    cache = tmp_path / "c"
    key = Index.build(root, cache_dir=cache).track("train/A - One").stems["bass"].key
    files = sorted((cache / "analysis").iterdir())
    bass = root / "train" / "A - One" / "bass.wav"
    os.chmod(bass, 0o600)
    os.utime(bass, ns=(0, 10**18))
    index = Index.build(root, cache_dir=cache)
    assert index.track("train/A - One").stems["bass"].key == key
    assert index.content_changed == []
    assert sorted((cache / "analysis").iterdir()) == files


def test_index_file_rescans_its_root(tmp_path):
    root = make_musdb18hq(tmp_path / "ds", {"A - One": "train"}, seconds=1.0, sr=SR)
    cache = tmp_path / "c"
    Index.build(root, cache_dir=cache, groups={"rhythm": ["drums", "bass"]})
    make_musdb18hq(root, {"N - New": "test"}, seconds=1.0, sr=SR, seed=5)
    index = Index.load(cache / "index.jsonl")
    assert [t.id for t in index.tracks] == ["test/N - New", "train/A - One"]
    assert index.groups["rhythm"] == ["drums", "bass"]  # the recorded options are kept
    recipe = Recipe.from_dict({"duration": 0.5, "sample_rate": SR, "split": "test",
                               "targets": ["vocals", "rhythm", "other"],
                               "groups": {"rhythm": ["drums", "bass"]}})
    res = generate(recipe, Index.load(cache / "index.jsonl"), 1, tmp_path / "o",
                   progress=False, fsync=False)
    assert res.written == 1
    spec = json.loads((tmp_path / "o" / "000000" / "spec.json").read_text())
    assert {s["track"] for s in spec["sources"]} == {"test/N - New"}


def test_verify_content_finds_an_edit_the_stamps_miss(tmp_path):
    """On a filesystem that keeps no ctime, an edit in the middle of a file that restores size
    and mtime keeps the stamp: only ``--verify-content`` (a full hash) can see it. Simulated by
    recording the edited file's new stamp in the index, as such a filesystem would show it."""
    from stemforge.stamps import file_stamp

    root = make_musdb18hq(tmp_path / "ds", {"A - One": "train"}, seconds=20.0, sr=SR)
    cache = tmp_path / "c"
    Index.build(root, cache_dir=cache)
    bass = root / "train" / "A - One" / "bass.wav"
    st = bass.stat()
    with open(bass, "r+b") as fh:  # the middle of the file: not in the stamp's 64 KiB edges
        fh.seek(st.st_size // 2)
        fh.write(np.full(4096, 0.9, np.float32).tobytes())
    os.utime(bass, ns=(st.st_atime_ns, st.st_mtime_ns))
    index_file = cache / "index.jsonl"
    rows = [json.loads(line) for line in index_file.read_text().splitlines()]
    rows[1]["stems"]["bass"]["stamps"] = [file_stamp(str(bass))]
    index_file.write_text("".join(json.dumps(r) + "\n" for r in rows))

    plain = Index.build(root, cache_dir=cache)
    assert plain.content_changed == []  # the documented limit of the stamps
    verified = Index.build(root, cache_dir=cache, verify_content=True)
    assert verified.content_changed == [str(bass)]
    assert verified.track("train/A - One").stems["bass"].key != \
        plain.track("train/A - One").stems["bass"].key
    assert verified.track("train/A - One").stems["bass"].peak == pytest.approx(0.9)


# ---------------------------------------------------------------------------- concurrency
def _index_cmd(root: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "stemforge.cli", "index", str(root), "--cache", str(cache),
            "--workers", "1", "--no-progress"]


def _complete(cache: Path, tracks: int) -> None:
    rows = [json.loads(line) for line in (cache / "index.jsonl").read_text().splitlines()]
    assert len(rows) == tracks + 1
    keys = {s["key"] for r in rows[1:] for s in [*r["stems"].values(), r.get("mixture")] if s}
    # every file (energies and their zero-state corrections) belongs to a referenced key
    assert {p.name.split(".")[0] for p in (cache / "analysis").iterdir()} == keys
    assert not [p for p in cache.rglob("*") if p.name.endswith((".part", ".tmp.npy"))]
    assert not (cache / ".stemforge.lock").exists()


def test_concurrent_index_runs_on_one_fresh_cache(tmp_path):
    root = make_musdb18hq(tmp_path / "ds", {f"T{k} - Song": "train" for k in range(4)},
                          seconds=2.0, sr=SR)
    for trial in range(2):
        cache = tmp_path / f"c{trial}"
        procs = [subprocess.Popen(_index_cmd(root, cache), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            assert "Traceback" not in err
        _complete(cache, 4)


PAUSED_RUN = """\
import pathlib, signal, sys, time
# Ctrl-C as in a terminal: a child inherits an ignored SIGINT (pytest-xdist workers may ignore it),
# and Python then installs no KeyboardInterrupt handler
signal.signal(signal.SIGINT, signal.default_int_handler)
import stemforge.analyze as an
real, calls = an.analyse_audio, []
def paused(audio, sr, path):  # the second analysis file written: hold here until interrupted
    out = real(audio, sr, path)
    calls.append(path)
    if len(calls) == 2:
        pathlib.Path(sys.argv[-1]).write_text("paused")
        while True:
            time.sleep(0.05)
    return out
an.analyse_audio = paused
from stemforge.cli import main
sys.exit(main(sys.argv[1:-1]))
"""


def _waiters(pid: int) -> int:
    """Whether process ``pid`` is blocked on a flock (a ``->`` line of /proc/locks naming it;
    other processes' locks on a shared machine do not count); -1 without /proc/locks."""
    try:
        return int(any("->" in line and "FLOCK" in line and str(pid) in line.split()
                       for line in open("/proc/locks")))
    except OSError:
        return -1


def test_interrupted_index_removes_only_its_own_files(tmp_path):
    """Run A creates the cache and is interrupted (a real SIGINT) while run B waits for its
    lock: A removes what it wrote (and the folder it made), B then builds the whole index."""
    root = make_musdb18hq(tmp_path / "ds", {f"T{k} - Song": "train" for k in range(3)},
                          seconds=1.0, sr=SR)
    cache, flag = tmp_path / "c", tmp_path / "paused"
    script = tmp_path / "paused_run.py"
    script.write_text(PAUSED_RUN)
    a = subprocess.Popen([sys.executable, str(script), *_index_cmd(root, cache)[3:], str(flag)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not flag.exists():
        assert a.poll() is None and time.monotonic() < deadline, a.communicate()
        time.sleep(0.02)
    assert len([p for p in (cache / "analysis").glob("*.npy") if ".zs1" not in p.name]) == 2
    b = subprocess.Popen(_index_cmd(root, cache), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    if _waiters(b.pid) < 0:
        time.sleep(3.0)  # no /proc/locks: give B the time to reach the lock
    while _waiters(b.pid) == 0:  # B blocked on A's lock
        assert b.poll() is None and time.monotonic() < deadline, b.communicate()
        time.sleep(0.02)
    a.send_signal(signal.SIGINT)
    _, err_a = a.communicate(timeout=120)
    _, err_b = b.communicate(timeout=300)
    assert a.returncode == 130 and err_a.strip() == "stemforge index: interrupted", err_a
    assert b.returncode == 0 and "Traceback" not in err_b, err_b
    _complete(cache, 3)


def test_generate_checks_the_folder_under_its_lock(tmp_path, monkeypatch):
    """Another run writes the folder between this run's start and its lock: the check, made
    under the lock, sees it and refuses (it was made before the lock and never repeated)."""
    import stemforge.jobs.generate as G
    from stemforge.jobs.layout import JobError

    root = make_musdb18hq(tmp_path / "ds", {"A - One": "train"}, seconds=2.0, sr=SR)
    index = Index.build(root, cache_dir=tmp_path / "c")
    recipe = Recipe.from_dict({"duration": 0.5, "sample_rate": SR,
                               "targets": ["vocals", "accompaniment"],
                               "groups": {"accompaniment": ["drums", "bass", "other"]}})
    out = tmp_path / "o"
    real = G.make_task

    def other_run_meanwhile(job, folder, fsync=True):
        monkeypatch.setattr(G, "make_task", real)
        generate(recipe, index, 2, out, seed=1, progress=False, fsync=False)
        return real(job, folder, fsync)

    monkeypatch.setattr(G, "make_task", other_run_meanwhile)
    with pytest.raises(JobError, match="holds the output of another job: seed 1"):
        generate(recipe, index, 2, out, seed=2, progress=False, fsync=False)
    job = json.loads((out / "stemforge-job.json").read_text())
    assert job["seed"] == 1
    assert {json.loads((out / f"{i:06d}" / "spec.json").read_text())["seed"]
            for i in range(2)} == {1}


def test_failed_first_run_leaves_nothing_and_rerun_starts_clean(tmp_path, capsys):
    root = make_musdb18hq(tmp_path / "ds", {"A - One": "train", "B - Two": "train"},
                          seconds=2.0, sr=SR)
    for name in ("A - One", "B - Two"):
        a = tone(300, 2.0, SR)
        a[:, : int(1.5 * SR)] = 0.0  # vocals silent for 1.5 of 2 s
        write_wav(root / "train" / name / "vocals.wav", a, SR)
    base = ("duration: 1.0\nsample_rate: 8000\ntargets: [vocals, accompaniment]\n"
            "groups: {accompaniment: [drums, bass, other]}\n")
    strict, lenient = tmp_path / "strict.yaml", tmp_path / "lenient.yaml"
    strict.write_text(base + "silence: {min_active: 0.9, max_retries: 3, on_exhausted: error}\n")
    lenient.write_text(base + "silence: {min_active: 0.2, max_retries: 50}\n")
    out = tmp_path / "sub" / "out"
    args = ["--index", str(root), "--cache", str(tmp_path / "c"), "--n", "6", "--out", str(out),
            "--no-progress"]
    assert main(["generate", str(strict), *args]) == 2
    assert "silence policy" in capsys.readouterr().err
    assert not (tmp_path / "sub").exists()  # the folders the run made are gone too
    assert main(["generate", str(lenient), *args]) == 0
    assert len(list(out.glob("0000*/spec.json"))) == 6
