"""Download the official MUSDB18 7-second preview set and unpack it as a ``musdb18`` root.

The address is the one the ``musdb`` package uses (its ``configs/mus.yaml`` ``sample-url``);
``$STEMFORGE_MUSDB_SAMPLE_URL`` or an explicit ``url`` overrides it (tests point it at a local
server). Steps, each failing with a :class:`DownloadError` that says what to do:

1. fetch into ``<dest>/<archive>.part``, resuming an interrupted transfer with an HTTP ``Range``
   request, with a tqdm progress bar; the size must equal the server's declared length (and
   ``expected_size`` when given);
2. verify the zip: readable central directory, every member's CRC-32, the expected number of
   ``.stem.mp4`` tracks per split and the required (validation) track names;
3. unpack into a hidden temp folder under ``<dest>``, check every file holds the expected number
   of audio streams, then move ``train/`` and ``test/`` into ``<dest>`` (so a failed run never
   leaves a half-unpacked dataset). A corrupt archive is deleted so the next run starts afresh.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from .errors import StemforgeError
from .layouts.musdb18 import SUFFIX, VALIDATION_TRACKS

MUSDB_SAMPLE_URL = ("https://github.com/sigsep/sigsep-mus-db/releases/download/v0.4.0/"
                    "MUSDB18-7-STEMS.zip")
URL_ENV = "STEMFORGE_MUSDB_SAMPLE_URL"
CHUNK = 1 << 16


class DownloadError(StemforgeError):
    """A download failed, was interrupted, or its archive does not hold what it should."""


@dataclass(frozen=True)
class SampleSpec:
    """What the archive must hold: tracks per split, audio streams per file, required names."""

    url: str = MUSDB_SAMPLE_URL
    tracks: dict[str, int] = field(default_factory=lambda: {"train": 100, "test": 50})
    streams: int = 5
    required: frozenset[str] = VALIDATION_TRACKS  # must be in train/
    expected_size: int | None = None  # bytes; None = trust the server's declared length


# ---------------------------------------------------------------------------- fetch
def _total_from(resp, have: int) -> tuple[int | None, bool]:
    """(total size, resumed?) from a 200/206 response."""
    if resp.status == 206:
        cr = resp.headers.get("Content-Range", "")
        try:
            unit, rng = cr.split(" ", 1)
            span, total = rng.split("/")
            start = int(span.split("-")[0])
        except ValueError:
            raise DownloadError(f"server sent a malformed Content-Range {cr!r}") from None
        if unit != "bytes" or start != have:
            raise DownloadError(f"server resumed at {cr!r}, expected byte {have}")
        return (int(total) if total != "*" else None), True
    length = resp.headers.get("Content-Length")
    return (int(length) if length else None), False


def fetch(url: str, dest: Path, expected_size: int | None = None, progress: bool = True,
          timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming a previous partial download."""
    from tqdm import tqdm

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "stemforge"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the part file is already whole
            os.replace(part, dest)
            return dest
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except (URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{url}: cannot connect ({reason})") from e
    with resp:
        total, resumed = _total_from(resp, have)
        if not resumed:
            have = 0
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(f"{url}: server declares {total} bytes, expected {expected_size}")
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=dest.name, disable=None if progress else True)
        try:
            with open(part, "ab" if resumed else "wb") as fh:
                while True:
                    buf = resp.read(CHUNK)
                    if not buf:
                        break
                    fh.write(buf)
                    bar.update(len(buf))
        except (OSError, HTTPException) as e:
            got = part.stat().st_size
            raise DownloadError(f"{url}: transfer interrupted after {got} of {total or '?'} "
                                f"bytes ({e}); run the command again to resume") from e
        finally:
            bar.close()
    got = part.stat().st_size
    want = expected_size if expected_size is not None else total
    if want is not None and got != want:
        if got < want:
            raise DownloadError(f"{url}: transfer interrupted after {got} of {want} bytes; "
                                "run the command again to resume")
        part.unlink()
        raise DownloadError(f"{url}: received {got} bytes, more than the expected {want}; "
                            "the partial file was deleted, run the command again")
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------------------- verify
def _split_and_name(member: str) -> tuple[str, str] | None:
    p = PurePosixPath(member)
    if len(p.parts) >= 2 and p.name.endswith(SUFFIX):
        return p.parts[-2], p.name[: -len(SUFFIX)]
    return None


def verify_archive(archive: Path, spec: SampleSpec) -> dict[str, str]:
    """Check the zip's CRCs and track list; return ``{member: 'split/name.stem.mp4'}``."""
    try:
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DownloadError(f"{archive}: not a valid zip archive ({e})") from e
    except zipfile.LargeZipFile as e:  # pragma: no cover - zip64 is supported by default
        raise DownloadError(f"{archive}: {e}") from e
    if bad is not None:
        raise DownloadError(f"{archive}: CRC check failed for member {bad!r} (corrupt archive)")
    out, found = {}, {s: set() for s in spec.tracks}
    for m in names:
        if m.startswith("/") or ".." in PurePosixPath(m).parts:
            raise DownloadError(f"{archive}: unsafe member path {m!r}")
        sn = _split_and_name(m)
        if sn and sn[0] in found:
            found[sn[0]].add(sn[1])
            out[m] = f"{sn[0]}/{sn[1]}{SUFFIX}"
    for split, n in spec.tracks.items():
        if len(found[split]) != n:
            raise DownloadError(f"{archive}: expected {n} {split} tracks (*{SUFFIX}), "
                                f"found {len(found[split])}")
    missing = sorted(spec.required - found.get("train", set()))
    if missing:
        raise DownloadError(f"{archive}: train/ lacks expected track(s) "
                            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    return out


def _check_streams(path: Path, want: int) -> None:
    import av

    try:
        with av.open(str(path)) as c:
            n = len(c.streams.audio)
    except Exception as e:  # PyAV raises several error types for unreadable containers
        raise DownloadError(f"{path.name}: not a readable MP4 ({e})") from e
    if n != want:
        raise DownloadError(f"{path.name}: expected {want} audio streams (mixture, drums, bass, "
                            f"other, vocals), found {n}")


def unpack(archive: Path, dest: Path, members: dict[str, str], spec: SampleSpec) -> None:
    """Extract ``members`` into ``dest/{train,test}``, checking streams before moving in."""
    dest = Path(dest)
    tmp = Path(tempfile.mkdtemp(prefix=".stemforge-unpack-", dir=dest))
    try:
        with zipfile.ZipFile(archive) as z:
            for m, rel in members.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(m) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                _check_streams(target, spec.streams)
        for split in spec.tracks:
            final = dest / split
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp / split, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- all steps
def is_complete(dest: Path, spec: SampleSpec) -> bool:
    return all((Path(dest) / s).is_dir()
               and len(list((Path(dest) / s).glob(f"*{SUFFIX}"))) == n
               for s, n in spec.tracks.items())


def download_musdb18_sample(dest: str | os.PathLike, url: str | None = None,
                            spec: SampleSpec | None = None, progress: bool = True,
                            keep_archive: bool = False) -> Path:
    """Fetch, verify and unpack the MUSDB18 7 s preview into ``dest`` (a musdb18 root)."""
    spec = spec or SampleSpec()
    url = url or os.environ.get(URL_ENV) or spec.url
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if is_complete(dest, spec):
        return dest
    archive = dest / (PurePosixPath(url.split("?")[0]).name or "musdb18-sample.zip")
    if not archive.exists():
        fetch(url, archive, spec.expected_size, progress)
    try:
        members = verify_archive(archive, spec)
        unpack(archive, dest, members, spec)
    except DownloadError as e:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{e}; the archive was deleted, run the command again to download "
                            "it afresh") from e
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return dest
