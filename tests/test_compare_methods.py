"""End to end on the real MUSDB18 excerpt: separate its test split with the oracle IRM (a
Python callable) and with the "mixture" baseline (a shell command copying the input), evaluate
both in one ``evaluate`` call, build the report and check in headless Chromium that both
methods appear, the page's players and figures work, tables sort, and the oracle beats the
mixture on every target."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from stemforge.cli import main
from test_report import Page
from test_report_browser import CHECK_JS, CHROMIUM_FLAGS

ORACLE = '''
import numpy as np
from stemforge import Index
from stemforge.metrics import oracle


def make():
    """The oracle IRM1 as a separator: it knows the dataset's stems, finds the track by its
    mixture."""
    index = Index.open({root!r})
    known = [(index.read_mixture(t.id), {{s: index.read(t.id, s) for s in t.stems}})
             for t in index.tracks]

    def separate(mix, sr):
        for m, sources in known:
            if m.shape == mix.shape and np.array_equal(m, mix):
                return oracle("irm1", mix, sources)
        raise ValueError("not a mixture of the dataset")
    return separate
'''
COPY = "for t in drums bass other vocals; do cp {input} {outdir}/$t.wav; done"
TARGETS = ["bass", "drums", "other", "vocals"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _sorted_methods(page, table_index: int) -> list[str]:
    return page.evaluate(f"""() => Array.from(document.querySelectorAll('table.sortable')
        [{table_index}].rows).slice(1).map(r => r.cells[0].textContent)""")


def test_oracle_and_mixture_compared_in_the_browser(tmp_path, musdb_excerpt, capsys):
    assert chromium() is not None, \
        "chromium is not installed (Debian package 'chromium'; .ci/run installs it)"
    import museval
    from playwright.sync_api import sync_playwright
    module = tmp_path / "oracle_sep.py"
    module.write_text(ORACLE.format(root=str(musdb_excerpt)))
    est = tmp_path / "est"
    assert main(["separate", "--index", str(musdb_excerpt), "--split", "test", "--out",
                 str(est / "irm1"), "--model", f"{module}:make", "--no-progress"]) == 0
    assert main(["separate", "--index", str(musdb_excerpt), "--split", "test", "--out",
                 str(est / "mixture"), "--command", COPY, "--no-progress"]) == 0
    res = tmp_path / "res"
    assert main(["evaluate", "--index", str(musdb_excerpt), "--estimates",
                 f"irm1={est / 'irm1'}", f"mixture={est / 'mixture'}", "--out", str(res),
                 "--no-progress"]) == 0

    summary = pd.read_csv(res / "summary.csv")
    score = summary.set_index(["method", "target", "metric"])["score"]
    store = museval.MethodStore()
    for m in ("irm1", "mixture"):
        store.add_eval_dir(res / m)
    agg = store.agg_frames_tracks_scores()
    assert len(agg) == 2 * 4 * 4
    for key, value in agg.items():
        assert score[key] == pytest.approx(value, abs=1e-6), key
    for t in TARGETS:
        for metric in ("SDR", "SI-SDR", "MDX-SDR", "cSDR"):
            assert score[("irm1", t, metric)] > score[("mixture", t, metric)] + 5, (t, metric)
    # the oracle separation is sigsep-mus-oracle's IRM1 (docs/evaluation.md: 9.21 drums SDR)
    assert score[("irm1", "drums", "SDR")] == pytest.approx(9.21, abs=0.01)

    capsys.readouterr()
    assert main(["report", str(res), "--out", str(tmp_path / "rep"), "--excerpt", "4",
                 "--no-progress"]) == 0
    html = Page(tmp_path / "rep" / "index.html")
    assert html.problems == []
    assert len(html.audio) == 4 * 4  # per target: mixture, reference, irm1, mixture excerpts

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS,
                                     headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900},
                                    device_scale_factor=2)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto((tmp_path / "rep" / "index.html").resolve().as_uri(), wait_until="load")
            found = page.evaluate(CHECK_JS)
            text = page.inner_text("body")
            tables = page.evaluate("document.querySelectorAll('table.sortable').length")
            order = {}
            for t in range(tables):  # the per-target tables of aggregates: method column 0
                head = page.evaluate(f"Array.from(document.querySelectorAll('table.sortable')"
                                     f"[{t}].rows[0].cells).map(c => c.textContent)")
                if head[:2] == ["method", "SDR"]:
                    cell = page.locator("table.sortable").nth(t).locator("th").nth(1)
                    cell.click()
                    first = _sorted_methods(page, t)
                    cell.click()
                    order[t] = (first, _sorted_methods(page, t))
            page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
        finally:
            browser.close()
    assert errors == [], errors
    assert all(a["ok"] for a in found["audio"]) and all(p is True for p in found["played"])
    assert found["images"] and all(i["width"] > 0 for i in found["images"])
    assert text.count("worst and best track for irm1") == 4  # one track: one card per target
    assert all(t in text for t in TARGETS) and "mixture" in text
    assert len(order) == 4  # one table per target; SDR descending: the oracle first
    assert all(v == (["irm1", "mixture"], ["mixture", "irm1"]) for v in order.values()), order
