"""README.md runs as written: every ``bash`` block, in order, in an empty folder.

Placeholders become made data (tiny, so the test stays fast):

* ``/data/musdb18``: a musdb18 (stem.mp4) tree, one 1.2 s test track;
* ``/data/musdb18hq``: a MUSDB18-HQ tree, two train tracks and one test track of 6.5 s;
* ``/fast/cache``: a folder in the test's temp dir; ``song.wav``: a made recording;
* ``/data/DSD100``: a DSD100 tree of two 10 s music-like songs (``stemforge.doctor.songs``), which
  ``stemforge doctor`` finds clean;
* ``/data/scaper_fg``: Scaper's ``<label>/<song>.wav`` folder, and ``scaper/*.jams``: Scaper JAMS
  of mixtures of it (written by ``stemforge generate`` + ``export-jams`` on that folder);
* ``stemforge download``'s server: a local one serving a made archive of 150 tracks.

Only sizes shrink (``SCALE``: mixture counts, training steps, song counts, worker processes);
every command, option and recipe is run as the README gives it. ``pip install`` and the
``pytest`` command (this suite) are the only lines not run, and the test fails if any other
line is not a ``stemforge`` command.
"""
from __future__ import annotations

import glob
import io
import re
import shlex
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import numpy as np

from conftest import make_musdb18hq, tone, write_stem_mp4, write_wav
from stemforge.cli import main
from stemforge.doctor import DoctorReport, songs
from stemforge.download import URL_ENV
from stemforge.layouts.musdb18 import VALIDATION_TRACKS
from test_tutorial import fenced_blocks, shell_commands

README = Path(__file__).resolve().parent.parent / "README.md"
#: (README text, what the test runs instead): sizes only
SCALE = [("--n 20000", "--n 2"), ("--n 50", "--n 1"), ("--steps 2000", "--steps 2"),
         ("--steps 300", "--steps 1"), ("--train 24 --test 6", "--train 5 --test 2"),
         ("--quick --rows plain remix", "--quick --rows plain remix --steps 4 --valid-every 2 --eval-seconds 2"),
         ("--workers 2", "--workers 1")]
NOT_RUN = ("pip install", "python -m pytest")
#: commands that exit 1 here by design: the doctor ran and found problems (the made musdb18
#: track's mixture stream is a tone of its own, not the sum of its stems)
EXIT_CODES = {"doctor": 1}


def readme_commands(text: str) -> list[tuple[int, str]]:
    """``(line of the block, command)`` of every bash block; ``a && b`` gives two commands."""
    out = []
    for b in fenced_blocks(text):
        if b.kind != "bash":
            continue
        for cmd in shell_commands(b.code):
            for part in cmd.split("&&"):
                out.append((b.line, part.strip()))
    return out


class _Archive(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        data = self.server.payload
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def sample_archive(tmp: Path) -> bytes:
    """A zip shaped like the MUSDB18 7 s preview (100 train tracks with the 14 validation
    tracks among them, 50 test tracks), every file a copy of one tiny 5-stream stem.mp4."""
    one = write_stem_mp4(tmp / "one.stem.mp4", [tone(220 + 40 * j, 0.1) for j in range(5)])
    data = one.read_bytes()
    train = sorted(VALIDATION_TRACKS) + [f"Train {k:02d}" for k in range(86)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for split, names in (("train", train), ("test", [f"Test {k:02d}" for k in range(50)])):
            for name in names:
                z.writestr(f"MUSDB18-7-STEMS/{split}/{name}.stem.mp4", data)
    return buf.getvalue()


@pytest.fixture
def archive_server(tmp_path):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Archive)
    srv.payload = sample_archive(tmp_path / "archive-src")
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/MUSDB18-7-STEMS.zip"
    srv.shutdown()
    srv.server_close()


def made_data(tmp: Path) -> dict[str, str]:
    """The README's placeholder paths -> made data."""
    musdb = tmp / "data" / "musdb18"
    write_stem_mp4(musdb / "test" / "A - Song.stem.mp4",
                   [tone(110 * (j + 1), 1.2, seed=j) for j in range(5)])
    hq = make_musdb18hq(tmp / "data" / "musdb18hq",
                        {"A - One": "train", "B - Two": "train", "C - Three": "test"},
                        seconds=6.5)
    write_wav(tmp / "work" / "song.wav", tone(330, 3.0, sr=22050), 22050)
    dsd = tmp / "data" / "DSD100"
    for k, name in enumerate(("Dev/001 - One", "Test/002 - Two")):
        st = songs.song(np.random.default_rng(k), 10.0, 44100)
        for stem, audio in st.items():
            write_wav(dsd / "Sources" / name / f"{stem}.wav", audio, subtype="PCM_16")
        write_wav(dsd / "Mixtures" / name / "mixture.wav", sum(st.values()), subtype="PCM_16")
    fg = tmp / "data" / "scaper_fg"
    for k in range(4):
        for j, label in enumerate(("vocals", "drums", "bass")):
            write_wav(fg / label / f"song{k}.wav", tone(150 * (j + 1) + 9 * k, 0.8, seed=k + j))
    made = tmp / "scaper-made"
    assert main(["generate", "all_stems", "--index", str(fg), "--set", "split=all", "--set",
                 "duration=0.5", "--n", "2", "--out", str(made), "--no-progress"]) == 0
    assert main(["export-jams", str(made), "--no-progress"]) == 0
    for jams in sorted(made.glob("*/mixture.jams")):
        (tmp / "work" / "scaper").mkdir(exist_ok=True)
        shutil.copyfile(jams, tmp / "work" / "scaper" / f"{jams.parent.name}.jams")
    return {"/data/musdb18hq": str(hq), "/data/musdb18": str(musdb),
            "/data/scaper_fg": str(fg), "/data/DSD100": str(dsd), "/fast/cache": str(tmp / "fast" / "cache")}


def substitute(cmd: str, paths: dict[str, str]) -> str:
    for a, b in SCALE:
        cmd = cmd.replace(a, b)
    for a, b in paths.items():  # longest first: /data/musdb18hq before /data/musdb18
        cmd = re.sub(re.escape(a) + r"(?![\w-])", b, cmd)
    return cmd


@pytest.mark.slow
def test_readme_shell_blocks_run(tmp_path, monkeypatch, capsys, archive_server):
    paths = made_data(tmp_path)
    work = tmp_path / "work"
    monkeypatch.chdir(work)
    monkeypatch.setenv(URL_ENV, archive_server)
    ran = []
    for line, cmd in readme_commands(README.read_text()):
        if cmd.startswith(NOT_RUN):
            continue
        argv = shlex.split(substitute(cmd, paths), comments=True)
        argv = [a for w in argv for a in (sorted(glob.glob(w)) if "*" in w else [w])]  # as sh
        assert argv and argv[0] == "stemforge", f"README.md:{line}: not a stemforge command: {cmd}"
        rc = main(argv[1:])
        out, err = capsys.readouterr()
        want = EXIT_CODES.get(argv[1], 0)
        assert rc == want, f"README.md:{line}: `{cmd}` exited {rc}, not {want}:\n{err[-2000:]}"
        assert "Traceback" not in err, err
        ran.append(argv[1])
    # the README's promises, checked on what the commands left
    assert (work / "stemforge-demo" / "report" / "index.html").is_file()
    assert (work / "train-set" / "manifest.csv").is_file() and (work / "test-set").is_dir()
    assert (work / "stems" / "vocals.wav").is_file() and (work / "run" / "best.pt").is_file()
    assert (work / "results" / "summary.csv").is_file()
    assert (work / "report" / "index.html").is_file()
    assert (tmp_path / "fast" / "cache" / "index.jsonl").is_file()
    assert sorted(p.name for p in (work / "musdb18-sample").iterdir()) == ["test", "train"]
    one = DoctorReport.load(work / "doctor-musdb")
    assert {(f.kind, f.track) for f in one.findings} == {("mixture_residual", "test/A - Song")}
    both = DoctorReport.load(work / "doctor-all")
    assert [d["name"] for d in both.datasets] == ["musdb", "dsd"]
    assert [d["tracks"] for d in both.datasets] == [1, 2]
    assert {(f.dataset, f.kind) for f in both.findings} == {("musdb", "mixture_residual")}
    for c in ("index", "info", "prepare", "download", "recipes", "generate", "regenerate",
              "export-jams", "export-shards", "demo", "report", "experiment", "train",
              "separate", "oracle", "evaluate", "import-jams", "doctor"):
        assert c in ran, c


def test_readme_commands_are_all_checked():
    """Only install and test-suite lines are skipped; nothing else in a bash block."""
    cmds = [c for _, c in readme_commands(README.read_text())]
    skipped = [c for c in cmds if c.startswith(NOT_RUN)]
    assert skipped and all(c.split()[0] in ("pip", "python") for c in skipped)
    assert all(shlex.split(c, comments=True)[0] == "stemforge" for c in cmds if c not in skipped)
    kinds = {b.kind for b in fenced_blocks(README.read_text())}
    assert kinds <= {"bash", "python", "yaml"}, kinds
