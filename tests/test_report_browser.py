"""End to end: the report of the real MUSDB18 excerpt, a generated set and results, opened in
headless Chromium (Debian's ``chromium``, driven by Playwright; no browser is downloaded).

Every <audio> must reach readyState >= 2 (canplay), a muted play() must resolve, every <img>
must decode (naturalWidth > 0); a full-page screenshot is saved to tmp_path.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stemforge.index import Index
from stemforge.report import build_report
from test_report import Page, write_generated_set

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]

# For every <audio>: force loading, then wait for canplay (readyState >= 2) or error;
# for every <img>: wait for load/error, then report naturalWidth; finally play() one muted.
CHECK_JS = """
async () => {
  const audios = Array.from(document.querySelectorAll('audio'));
  const audio = await Promise.all(audios.map(a => new Promise(resolve => {
    const done = (why) => resolve({src: a.getAttribute('src'), ok: a.readyState >= 2, why,
                                   readyState: a.readyState, duration: a.duration});
    a.addEventListener('canplay', () => done('canplay'), {once: true});
    a.addEventListener('error', () => done('error ' + (a.error && a.error.code)), {once: true});
    setTimeout(() => done('timeout'), 15000);
    if (a.readyState >= 2) return done('ready');
    a.preload = 'auto'; a.load();
  })));
  const images = await Promise.all(Array.from(document.querySelectorAll('img')).map(
    i => new Promise(resolve => {
      const done = () => resolve({src: i.getAttribute('src'), width: i.naturalWidth});
      if (i.complete) return done();
      i.addEventListener('load', done, {once: true});
      i.addEventListener('error', done, {once: true});
    })));
  const played = await Promise.all(audios.map(async a => {
    a.muted = true;
    try { await a.play(); a.pause(); return true; } catch (e) { return String(e); }
  }));
  return {audio, images, played};
}
"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def check_page(index_html: Path, screenshot: Path) -> dict:
    """Open ``index_html`` from the file system; return CHECK_JS's findings plus failed
    requests and console errors; save a screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS,
                                     headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            failed, errors = [], []
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(Path(index_html).resolve().as_uri(), wait_until="load")
            found = page.evaluate(CHECK_JS)
            page.screenshot(path=str(screenshot), full_page=True)
            found["failed_requests"], found["errors"] = failed, errors
        finally:
            browser.close()
    return found


def test_report_plays_and_decodes_in_chromium(tmp_path, musdb_excerpt):
    assert _chromium() is not None, \
        "chromium is not installed (Debian package 'chromium'; .ci/run installs it)"
    import playwright.sync_api  # noqa: F401  (the dev extra's driver of chromium)
    index = Index.open(musdb_excerpt)
    gen = write_generated_set(tmp_path / "gen", index, n=2, recipe={
        "duration": 2.0, "targets": ["vocals", "accompaniment"],
        "groups": {"accompaniment": ["drums", "bass", "other"]},
        "modes": {"coherent": 0.5, "incoherent": 0.5}, "stems": {"default": {"snr": [
            "uniform", -5, 5]}}, "ref_db": ["uniform", -30, -10]})
    results = tmp_path / "results"
    results.mkdir()
    (results / "song.json").write_text(json.dumps({"targets": [
        {"name": t, "frames": [{"time": float(i), "duration": 1.0, "metrics": {
            "SDR": 3.0 + i, "SIR": 9.0 - i, "SAR": 4.0 + i, "ISR": 7.0}} for i in range(4)]}
        for t in ("vocals", "accompaniment")]}))

    res = build_report([musdb_excerpt, gen, results], tmp_path / "report", preview_seconds=3.0)
    assert res.problems == [] and res.rendered == 1 + 2 + 1
    html = Page(res.index_html)
    assert len(html.audio) == 5 + 2 * 3

    shot = tmp_path / "report.png"
    found = check_page(res.index_html, shot)
    assert len(found["audio"]) == len(html.audio)
    bad_audio = [a for a in found["audio"] if not a["ok"]]
    assert bad_audio == [], bad_audio
    for a in found["audio"]:
        assert a["duration"] == pytest.approx(3.0 if "0-dataset" in a["src"] else 2.0, abs=0.05)
    assert all(p is True for p in found["played"]), found["played"]
    assert len(found["images"]) == len(html.images) >= 10
    bad_img = [i for i in found["images"] if not i["width"] > 0]
    assert bad_img == [], bad_img
    assert found["failed_requests"] == [] and found["errors"] == [], found
    assert shot.stat().st_size > 50_000
