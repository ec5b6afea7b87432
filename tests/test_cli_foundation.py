"""CLI: index, info, prepare, demo; bad input gives exit 2 and a one-line message."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import cache_files, make_musdb18hq, tone, write_wav
from stemforge.cli import main


def run_cli(*args):
    return main([str(a) for a in args])


def test_index_info_prepare(hq_root, tmp_path, capsys):
    cache = tmp_path / "c"
    assert run_cli("index", hq_root, "--cache", cache, "--no-progress") == 0
    out = capsys.readouterr().out
    assert "indexed 2 tracks (test: 1, train: 1) with layout 'musdb18hq'" in out
    assert run_cli("info", hq_root, "--cache", cache, "--tracks") == 0
    out = capsys.readouterr().out
    assert "split train: 1 tracks" in out and "vocals" in out
    assert "real mixture vs stem sum residual" in out
    assert run_cli("prepare", hq_root, "--cache", cache, "--no-progress") == 0
    out = capsys.readouterr().out
    assert "8 stems decoded" in out  # the stems; mixtures only with --mixtures
    files = [f.name for f in (cache / "audio").glob("*.npy")]
    assert len([f for f in files if ".peaks" not in f]) == 8
    assert len([f for f in files if f.endswith(".peaks64x16.npy")]) == 8
    # info on the index file itself
    assert run_cli("info", cache / "index.jsonl") == 0


def test_user_group(hq_root, tmp_path, capsys):
    assert run_cli("index", hq_root, "--cache", tmp_path / "c", "--group", "rhythm=drums,bass") == 0
    assert "rhythm = drums + bass" in capsys.readouterr().out
    assert run_cli("index", hq_root, "--cache", tmp_path / "c2", "--group", "x=piano") == 2
    assert "group 'x': stems ['piano'] are not in" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["missing", "empty", "layout", "corrupt"])
def test_bad_input_exit_2_one_line(tmp_path, capsys, kind):
    cache = tmp_path / "cache"
    root = tmp_path / "root"
    extra = []
    if kind == "empty":
        root.mkdir()
    elif kind == "layout":
        make_musdb18hq(root, seconds=0.5)
        extra = ["--layout", "dsd1000"]
    elif kind == "corrupt":
        make_musdb18hq(root, seconds=0.5)
        (root / "train" / "A - One" / "vocals.wav").write_bytes(b"garbage" * 100)
    code = run_cli("index", root, "--cache", cache, *extra)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("stemforge index: error: ") == 1
    err = err.strip().splitlines()[-1]
    assert err.startswith("stemforge index: error: ")
    expect = {"missing": "does not exist", "empty": "is empty", "layout": "unknown layout 'dsd1000'",
              "corrupt": "vocals.wav: not a readable audio file"}[kind]
    assert expect in err
    assert cache_files(cache) == []


def test_unreadable_file_as_unprivileged_user(tmp_path):
    """A stem the user may not read: permission denied, named, exit 2, no index written."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the command as another user")
    base = Path(tempfile.mkdtemp(prefix="sf-perm-"))
    os.chmod(base, 0o777)
    root = make_musdb18hq(base / "root", seconds=0.5)
    for p in [base / "root", *(base / "root").rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    locked = root / "train" / "A - One" / "bass.wav"
    os.chmod(locked, 0o000)
    cache = base / "cache"
    # everything the command imports is loaded before dropping privileges (the interpreter's
    # own files may not be readable by 'nobody')
    import scipy.signal, soundfile, av, tqdm, stemforge.indexing, stemforge.commands.index  # noqa
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become 'nobody' and run the real CLI in-process
        try:
            os.close(err_r)
            sys.stderr = os.fdopen(err_w, "w")
            os.setgid(65534)
            os.setuid(65534)
            code = main(["index", str(root), "--cache", str(cache), "--workers", "1"])
            sys.stderr.flush()
        except BaseException:
            code = 99
        os._exit(code)
    os.close(err_w)
    err = os.fdopen(err_r).read()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 2, err
    assert "bass.wav: file is not readable (permission denied)" in err
    assert not cache.exists()


def test_cli_parser_is_light_and_oracle_methods_match():
    """Building the parser imports no heavy module (every `stemforge` start pays for it), and the
    oracle command's method list is the job module's."""
    import subprocess
    import sys

    from stemforge.commands.oracle import METHODS
    from stemforge.jobs.oracle import ALL_METHODS

    assert tuple(METHODS) == tuple(ALL_METHODS)
    code = ("import sys; from stemforge.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('scipy.signal', 'torch', 'pandas', 'matplotlib', 'distributed')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_program_exits_without_final_collections():
    """``stemforge`` (the console script, ``python -m stemforge.cli``) freezes the live objects
    before exiting, so Python's final garbage collections skip what the imports made (~0.4 s
    after an ``evaluate``); the exit code is main's, and the output is complete."""
    import subprocess

    code = ("import atexit, gc, sys; import stemforge.cli as c; "
            "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0)); "
            "sys.argv = ['stemforge'] + sys.argv[1:]; c.console()")
    ok = subprocess.run([sys.executable, "-c", code, "recipes"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("frozen True")
    assert "stemforge_recommended" in ok.stdout
    bad = subprocess.run([sys.executable, "-c", code, "info", "/nonexistent/root"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
