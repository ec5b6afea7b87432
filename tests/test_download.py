"""`stemforge download musdb18-sample`: against a local HTTP server on 127.0.0.1 only.

The server (threaded http.server, honouring Range) serves a zip built here from tiny 5-stream
stem.mp4 files; it can cut a transfer short, ignore Range, or serve a corrupted archive.
"""
from __future__ import annotations

import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import tone, write_stem_mp4
from stemforge.cli import main
from stemforge.download import (MUSDB_SAMPLE_URL, URL_ENV, DownloadError, SampleSpec,
                                download_musdb18_sample)
from stemforge.index import Index

TRACKS = {"train": ["Leaf - Summerghost", "X - Train"], "test": ["Y - Test"]}


def small_spec(url: str, **kw) -> SampleSpec:
    return SampleSpec(url=url, tracks={"train": 2, "test": 1},
                      required=frozenset({"Leaf - Summerghost"}), **kw)


def build_zip(tmp: Path, tracks=TRACKS, streams: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for split, names in tracks.items():
            for i, name in enumerate(names):
                n = (streams or {}).get(name, 5)
                p = write_stem_mp4(tmp / split / f"{name}.stem.mp4",
                                   [tone(200 + 30 * j + i, 0.2) for j in range(n)])
                z.write(p, f"{split}/{p.name}")
        z.writestr("README.md", "7 s excerpts")
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        srv = self.server
        data = srv.payload
        rng = self.headers.get("Range")
        srv.ranges_seen.append(rng)
        start = 0
        if rng and srv.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if srv.cut_after is not None:
            body, srv.cut_after = body[:srv.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.payload, srv.ranges_seen, srv.cut_after, srv.honour_range = b"", [], None, True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/MUSDB18-7-STEMS.zip"
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_official_address_is_musdbs():
    import yaml
    import musdb

    cfg = Path(musdb.__file__).parent / "configs" / "mus.yaml"
    assert yaml.safe_load(cfg.read_text())["sample-url"] == MUSDB_SAMPLE_URL


def test_download_verify_unpack_and_index(server, tmp_path):
    server.payload = build_zip(tmp_path / "src")
    dest = tmp_path / "musdb"
    download_musdb18_sample(dest, url=server.url, spec=small_spec(server.url), progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["test", "train"]  # archive removed
    assert (dest / "train" / "X - Train.stem.mp4").read_bytes() == \
        (tmp_path / "src" / "train" / "X - Train.stem.mp4").read_bytes()
    idx = Index.build(dest, cache_dir=tmp_path / "c")
    assert idx.layout == "musdb18"
    assert {t.name: t.split for t in idx.tracks} == {
        "Leaf - Summerghost": "valid", "X - Train": "train", "Y - Test": "test"}
    # already complete: no new request
    n = len(server.ranges_seen)
    download_musdb18_sample(dest, url=server.url, spec=small_spec(server.url), progress=False)
    assert len(server.ranges_seen) == n


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    server.payload = build_zip(tmp_path / "src")
    cut = len(server.payload) // 3
    server.cut_after = cut
    dest = tmp_path / "musdb"
    spec = small_spec(server.url)
    with pytest.raises(DownloadError, match=rf"transfer interrupted after {cut} of "
                                            rf"{len(server.payload)} bytes.*run the command "
                                            r"again to resume"):
        download_musdb18_sample(dest, url=server.url, spec=spec, progress=False)
    part = dest / "MUSDB18-7-STEMS.zip.part"
    assert part.stat().st_size == cut and not (dest / "train").exists()
    download_musdb18_sample(dest, url=server.url, spec=spec, progress=False, keep_archive=True)
    assert server.ranges_seen == [None, f"bytes={cut}-"]
    assert (dest / "MUSDB18-7-STEMS.zip").read_bytes() == server.payload
    assert len(list((dest / "train").glob("*.stem.mp4"))) == 2


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.payload = build_zip(tmp_path / "src")
    server.cut_after, server.honour_range = 1000, False
    dest = tmp_path / "musdb"
    with pytest.raises(DownloadError, match="interrupted after 1000 of"):
        download_musdb18_sample(dest, url=server.url, spec=small_spec(server.url), progress=False)
    download_musdb18_sample(dest, url=server.url, spec=small_spec(server.url), progress=False,
                            keep_archive=True)
    assert (dest / "MUSDB18-7-STEMS.zip").read_bytes() == server.payload


def test_corrupt_archive_is_refused_and_deleted(server, tmp_path):
    data = bytearray(build_zip(tmp_path / "src"))
    member = (tmp_path / "src/train/X - Train.stem.mp4").read_bytes()
    at = bytes(data).index(member) + len(member) // 2
    data[at] ^= 0xFF
    server.payload = bytes(data)
    dest = tmp_path / "musdb"
    with pytest.raises(DownloadError, match=r"CRC check failed for member "
                                            r"'train/X - Train.stem.mp4'.*archive was deleted"):
        download_musdb18_sample(dest, url=server.url, spec=small_spec(server.url), progress=False)
    assert list(dest.iterdir()) == []


def test_truncated_zip_is_not_a_zip(server, tmp_path):
    server.payload = build_zip(tmp_path / "src")[:-200]  # central directory cut off
    with pytest.raises(DownloadError, match=r"MUSDB18-7-STEMS.zip: not a valid zip archive"):
        download_musdb18_sample(tmp_path / "d", url=server.url, spec=small_spec(server.url),
                                progress=False)


@pytest.mark.parametrize("tracks, streams, match", [
    ({"train": ["Leaf - Summerghost"], "test": ["Y - Test"]}, None,
     r"expected 2 train tracks \(\*.stem.mp4\), found 1"),
    ({"train": ["A - B", "X - Train"], "test": ["Y - Test"]}, None,
     r"train/ lacks expected track\(s\) Leaf - Summerghost"),
    (TRACKS, {"Y - Test": 4}, r"Y - Test.stem.mp4: expected 5 audio streams .* found 4"),
])
def test_incomplete_archive(server, tmp_path, tracks, streams, match):
    server.payload = build_zip(tmp_path / "src", tracks, streams)
    dest = tmp_path / "musdb"
    with pytest.raises(DownloadError, match=match):
        download_musdb18_sample(dest, url=server.url, spec=small_spec(server.url), progress=False)
    assert list(dest.iterdir()) == []  # nothing half-unpacked, archive deleted


def test_size_check_and_unreachable(server, tmp_path):
    server.payload = build_zip(tmp_path / "src")
    spec = small_spec(server.url, expected_size=len(server.payload) + 1)
    with pytest.raises(DownloadError, match=rf"server declares {len(server.payload)} bytes, "
                                            rf"expected {len(server.payload) + 1}"):
        download_musdb18_sample(tmp_path / "a", url=server.url, spec=spec, progress=False)
    dead = "http://127.0.0.1:1/MUSDB18-7-STEMS.zip"
    with pytest.raises(DownloadError, match=r"127.0.0.1:1/MUSDB18-7-STEMS.zip: cannot connect"):
        download_musdb18_sample(tmp_path / "b", url=dead, spec=small_spec(dead), progress=False)


def test_env_var_and_cli_override(server, tmp_path, monkeypatch, capsys):
    server.payload = build_zip(tmp_path / "src")
    monkeypatch.setenv(URL_ENV, server.url)
    # the spec's own address is an unreachable loopback one: only the env var can succeed
    spec = small_spec("http://127.0.0.1:1/never.zip")
    download_musdb18_sample(tmp_path / "env", spec=spec, progress=False)
    assert len(list((tmp_path / "env" / "train").glob("*.stem.mp4"))) == 2
    # the CLI checks the full MUSDB18 track counts, so the 3-track test zip is refused
    rc = main(["download", "musdb18-sample", str(tmp_path / "cli"), "--url", server.url,
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "expected 100 train tracks (*.stem.mp4), found 2" in err
