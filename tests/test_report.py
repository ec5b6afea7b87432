"""The HTML report: datasets, generated sets, results, bad input, CLI exit codes, figure API."""
from __future__ import annotations

import io as io_module
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import make_musdb18hq, tone, write_wav
from stemforge.audio import io
from stemforge.cli import main
from stemforge.errors import AudioError, StemforgeError
from stemforge.index import Index
from stemforge.mixing.mixer import Mixer
from stemforge.mixing.spec import MixSpec
from stemforge.report.html import encode_preview, preview_codec
from stemforge.report import (build_report, dataset_figures, detect_kind, generated_figures,
                              mixture_figure, results_figures, track_warnings)

RECIPE = {
    "name": "report-test", "duration": 1.0, "split": "all", "sample_rate": 44100, "channels": 2,
    "targets": ["vocals", "accompaniment"], "groups": {"accompaniment": ["drums", "bass", "other"]},
    "modes": {"coherent": 0.5, "incoherent": 0.5}, "ref_db": ["uniform", -30, -10],
    "stems": {"default": {"snr": ["uniform", -5, 5]}},
}


def write_generated_set(out: Path, index, n: int = 3, recipe=None, seed: int = 0) -> Path:
    """What ``stemforge generate`` writes: <id>/mixture.wav, <id>/<target>.wav, <id>/spec.json,
    manifest.csv, stemforge-job.json (built here with the Mixer API)."""
    m = Mixer(recipe or RECIPE, index, seed=seed)
    rows = ["id,mode"]
    for i in range(n):
        x = m.mixture(i)
        d = out / f"{i:06d}"
        io.write(d / "mixture.wav", x.mix, x.spec.sample_rate)
        for t, a in x.targets.items():
            io.write(d / f"{t}.wav", a, x.spec.sample_rate)
        x.spec.save(d / "spec.json")
        rows.append(f"{d.name},{x.spec.mode}")
    (out / "manifest.csv").write_text("\n".join(rows) + "\n")
    (out / "stemforge-job.json").write_text(json.dumps({"recipe": RECIPE, "seed": seed, "n": n}))
    return out


class Page(HTMLParser):
    """Collects <audio>/<img> sources, .problem texts and all visible text of a page."""

    def __init__(self, path: Path):
        super().__init__()
        self.audio, self.images, self.problems, self.text = [], [], [], []
        self._in_problem = False
        self.feed(Path(path).read_text())

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "audio":
            self.audio.append(a["src"])
        if tag == "img":
            self.images.append(a["src"])
        if tag == "div" and a.get("class") == "problem":
            self._in_problem = True
            self.problems.append("")

    def handle_endtag(self, tag):
        if tag == "div":
            self._in_problem = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_problem:
            self.problems[-1] += data

    @property
    def all_text(self) -> str:
        return " ".join(self.text)


@pytest.fixture
def index(hq_root):
    return Index.open(hq_root)


@pytest.fixture
def gen_set(tmp_path, index):
    return write_generated_set(tmp_path / "gen", index)


# ---------------------------------------------------------------------------- previews
@pytest.mark.parametrize("codec", ["OPUS", "VORBIS"])
def test_preview_keeps_the_signal_and_is_compact(codec, monkeypatch):
    """A preview decodes to the same tone at the same level (Opus resampled to 48 kHz); clipped
    input is clipped, not wrapped; 5 s of stereo stay well under 64 KB. VORBIS: what
    libsndfile builds without Opus get."""
    if codec == "VORBIS":
        monkeypatch.setattr(sf, "available_subtypes", lambda fmt=None: {"VORBIS": "Vorbis"})
    x = tone(440, 5.0, amp=0.5, noise=0.0)
    x[1] *= 2.4  # right channel peaks at 1.2: clipped to 1.0 in the preview
    data = encode_preview(x, 44100)
    assert len(data) < 64_000
    y, sr = sf.read(io_module.BytesIO(data), dtype="float32", always_2d=True)
    assert sr == (48000 if codec == "OPUS" else 44100)
    assert codec_name(data) == codec
    left = y[sr // 2: 4 * sr, 0]
    spectrum = np.abs(np.fft.rfft(left * np.hanning(len(left))))
    assert np.argmax(spectrum) * sr / len(left) == pytest.approx(440, abs=1)
    assert np.sqrt(np.mean(left ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.06)
    right = y[sr // 2: 4 * sr, 1]
    assert np.abs(right).max() < 1.15  # a wrapped integer path would jump sign instead
    assert np.mean(np.abs(right) > 0.9) > 0.2  # flat tops where the input exceeded 1.0
    assert preview_codec().startswith("Ogg/Opus" if codec == "OPUS" else "Ogg/Vorbis")
    with pytest.raises(AudioError, match=r"no audio to preview \(shape \(2, 0\)"):
        encode_preview(np.zeros((2, 0), np.float32), 44100)


def codec_name(data: bytes) -> str:
    return sf.info(io_module.BytesIO(data)).subtype


# ---------------------------------------------------------------------------- datasets
def test_dataset_report_tables_warnings_players(tmp_path):
    root = make_musdb18hq(tmp_path / "hq", {"A - One": "train", "B - Two": "test",
                                            "C - Three": "train"}, seconds=1.5)
    # A: silent vocals; B: clipping drums; C: bass 1000 frames short (within tolerance) and a
    # real mixture unrelated to the stems (large residual)
    write_wav(root / "train/A - One/vocals.wav", np.zeros((2, 66150), np.float32))
    write_wav(root / "test/B - Two/drums.wav", tone(220, 1.5, amp=1.3))
    write_wav(root / "train/C - Three/bass.wav", tone(330, 1.5, seed=5)[:, :-1000])
    write_wav(root / "train/C - Three/mixture.wav", tone(97, 1.5, amp=0.5, seed=9))
    index = Index.open(root)
    w = {t.name: track_warnings(t) for t in index}
    assert any("stem 'vocals' is silent" in x for x in w["A - One"])
    assert any("stem 'drums' clips (peak 1.3" in x for x in w["B - Two"])
    assert any("stem lengths differ by 1000 frames" in x for x in w["C - Three"])
    assert any("real mixture differs from the stem sum" in x for x in w["C - Three"])

    res = build_report(root, tmp_path / "rep", preview_seconds=1.0)
    assert res.rendered == 3 and res.problems == []
    page = Page(res.index_html)
    text = page.all_text
    assert "split train: 2 tracks" in text and "split test: 1 tracks" in text
    for x in [*w["A - One"], *w["B - Two"], *w["C - Three"]]:
        assert x in text
    # real mixture + 4 stems per track, each a decodable 1 s Ogg/Opus excerpt (48 kHz)
    assert len(page.audio) == 3 * 5
    for src in page.audio:
        info = sf.info(str(tmp_path / "rep" / src))
        assert (info.format, info.subtype, info.samplerate) == ("OGG", "OPUS", 48000)
        assert abs(info.frames - 48000) <= 1
    for src in page.images:
        assert (tmp_path / "rep" / src).stat().st_size > 1000
    # figures are rendered at twice the size the page shows them (high-DPI screens)
    from PIL import Image

    html = res.index_html.read_text()
    for src, width in re.findall(r'<img src="([^"]+)" alt="[^"]*" width="(\d+)"', html):
        assert Image.open(tmp_path / "rep" / src).size[0] == 2 * int(width)


def test_exact_mixture_residual_is_shown(tmp_path, capsys):
    """A mixture that is exactly the stem sum has residual -inf: `info` and the report say
    "exact" instead of hiding it."""
    root = make_musdb18hq(tmp_path / "hq", {"A - One": "test"}, seconds=1.0, with_mixture=False)
    stems = {}
    for s in ("drums", "bass", "other", "vocals"):  # multiples of 2^-12: float sums are exact
        a = np.round(tone(200 + 50 * len(stems), 1.0, seed=len(stems)) * 4096) / 4096
        stems[s] = a.astype(np.float32)
        write_wav(root / "test" / "A - One" / f"{s}.wav", stems[s])
    write_wav(root / "test" / "A - One" / "mixture.wav", sum(stems.values()))
    assert main(["info", str(root), "--tracks", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "residual: median exact" in out and "1 of 1 tracks exact" in out
    assert "residual exact" in out
    res = build_report(root, tmp_path / "rep", max_items=0)
    assert Index.open(root).tracks[0].residual_db == -math.inf
    assert "exact" in Page(res.index_html).all_text


def test_dataset_figures_use_index_values(index):
    figs = dataset_figures(index)
    assert set(figs) == {"loudness", "activity", "durations"}
    ax = figs["loudness"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == index.stem_names
    # the scatter overlay holds exactly the per-track loudness values of each stem
    pts = [c.get_offsets()[:, 1] for c in ax.collections]
    for name, ys in zip(index.stem_names, pts, strict=True):
        want = sorted(t.stems[name].loudness for t in index.tracks_with(name))
        assert np.allclose(sorted(ys), want)


# ---------------------------------------------------------------------------- generated sets
def test_generated_report_players_params_histograms(tmp_path, gen_set):
    res = build_report(gen_set, tmp_path / "rep")
    assert res.problems == [] and res.rendered == 3
    page = Page(res.index_html)
    assert len(page.audio) == 3 * 3  # mix + vocals + accompaniment
    for src in page.audio:
        assert sf.info(str(tmp_path / "rep" / src)).frames == pytest.approx(48000, abs=1)
    text = page.all_text
    for i in range(3):
        spec = MixSpec.load(gen_set / f"{i:06d}" / "spec.json")
        assert spec.mode in text
        for s in spec.sources:
            assert f"{s.gain_db:.1f}" in text and f"{s.snr:.1f}" in text
    names = {Path(s).stem.split("-", 1)[1] for s in page.images}
    assert {"gen-gains", "gen-snrs", "gen-modes", "gen-ref_db", "gen-scale"} <= names
    assert sum(s.endswith("-spec.webp") for s in page.images) == 3
    sec = res.sections[0]
    assert 10_000 < sec.bytes_per_item < 200_000  # 1 s mixtures, 3 previews + 1 image
    assert f"{sec.bytes_per_item / 1024:.0f} KiB of audio and images per mixture" in text


def test_generated_figures_count_every_source(gen_set):
    specs = [MixSpec.load(p) for p in sorted(gen_set.glob("*/spec.json"))]
    figs = generated_figures(gen_set)
    assert set(figs) == {"gains", "snrs", "ref_db", "scale", "modes"}
    heights = sum(p.get_height() for p in figs["gains"].axes[0].patches)
    assert heights == sum(len(s.sources) for s in specs)
    modes = {}
    for s in specs:
        modes[s.mode] = modes.get(s.mode, 0) + 1
    bars = figs["modes"].axes[0].patches
    assert sorted(int(b.get_height()) for b in bars) == sorted(modes.values())
    fig = mixture_figure(gen_set / "000000")
    assert [a.get_ylabel().split("\n")[0] for a in fig.axes[:3]] == ["mix", "vocals",
                                                                     "accompaniment"]
    # log-frequency axis: octave-spaced ticks are evenly spaced
    ax = fig.axes[0]
    ticks = dict(zip([t.get_text() for t in ax.get_yticklabels()], ax.get_yticks()))
    assert {"100", "1k", "10k"} <= set(ticks)
    assert ticks["1k"] - ticks["100"] == pytest.approx(ticks["10k"] - ticks["1k"])
    # gains per stem, in the recipe's (the specs') order, not merged per target
    legend = [t.get_text().split(" (")[0] for t in
              figs["gains"].axes[0].get_legend().get_texts()]
    assert legend == list(dict.fromkeys(src.stem for s in specs for src in s.sources))
    assert len(legend) == 4


def test_missing_spec_and_unreadable_audio_are_shown(tmp_path, gen_set):
    (gen_set / "000001" / "spec.json").unlink()
    (gen_set / "000002" / "mixture.wav").write_bytes(b"this is not audio")
    res = build_report(gen_set, tmp_path / "rep")
    page = Page(res.index_html)
    assert res.rendered == 3  # every mixture still has something to listen to
    assert any(f"{gen_set / '000001' / 'spec.json'}: spec file not found" in p
               for p in page.problems)
    assert any("mixture 000002: cannot read mix" in p and "not a readable audio file" in p
               for p in page.problems)
    # 000001 without a spec: its wav files still play; 000002 lost only its mix
    assert len(page.audio) == 3 + 3 + 2


def test_empty_audio_file_is_reported(tmp_path, gen_set):
    """A 0-frame target file: a problem naming the mixture, the other players still work."""
    write_wav(gen_set / "000001" / "vocals.wav", np.zeros((2, 0), np.float32))
    res = build_report(gen_set, tmp_path / "rep")
    page = Page(res.index_html)
    vocals = gen_set / "000001" / "vocals.wav"
    assert any(f"mixture 000001: cannot read vocals: {vocals}: audio file holds no samples" in p
               for p in page.problems)
    assert len(page.audio) == 3 * 3 - 1 and res.rendered == 3
    for src in page.audio:
        assert sf.info(str(tmp_path / "rep" / src)).frames > 0


def test_invalid_spec_is_reported(tmp_path, gen_set):
    (gen_set / "000000" / "spec.json").write_text('{"format": "something else"}')
    page = Page(build_report(gen_set, tmp_path / "rep").index_html)
    assert any("not a stemforge mix spec (format 'something else'" in p for p in page.problems)


def test_empty_generated_set_exits_nonzero(tmp_path, capsys):
    empty = tmp_path / "gen"
    empty.mkdir()
    (empty / "stemforge-job.json").write_text("{}")
    assert detect_kind(empty) == "generated"
    rc = main(["report", str(empty), "--out", str(tmp_path / "rep")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "nothing could be rendered" in err
    page = Page(tmp_path / "rep" / "index.html")
    assert any("the generated set is empty" in p for p in page.problems)
    assert any(f"{empty}: nothing could be rendered" in p for p in page.problems)


def test_missing_and_empty_paths(tmp_path, capsys):
    (tmp_path / "void").mkdir()
    rc = main(["report", str(tmp_path / "nope"), str(tmp_path / "void"),
               "--out", str(tmp_path / "rep")])
    assert rc == 1
    page = Page(tmp_path / "rep" / "index.html")
    assert any(f"{tmp_path / 'nope'}: does not exist" in p for p in page.problems)
    assert any(f"{tmp_path / 'void'}: is an empty folder" in p for p in page.problems)


def test_unopenable_dataset_is_reported(tmp_path):
    bad = tmp_path / "notadataset"
    bad.mkdir()
    (bad / "readme.txt").write_text("hello")
    res = build_report(bad, tmp_path / "rep", kind="dataset")
    assert res.rendered == 0
    assert any(p.startswith(f"{bad}: cannot open as a dataset") for p in res.problems)


def test_bad_kind_names_the_option(tmp_path):
    with pytest.raises(StemforgeError, match="--kind 'nonsense': expected one of auto, "):
        build_report(tmp_path, tmp_path / "rep", kind="nonsense")


# ---------------------------------------------------------------------------- results
def _museval(values: dict[str, dict[str, list[float]]]) -> dict:
    return {"targets": [{"name": t, "frames": [
        {"time": float(i), "duration": 1.0,
         "metrics": {m: values[t][m][i] for m in ("SDR", "SIR", "SAR", "ISR")}}
        for i in range(len(values[t]["SDR"]))]} for t in values]}


def test_results_tables_and_boxplots(tmp_path, capsys):
    rng = np.random.default_rng(3)
    res_dir = tmp_path / "results"
    res_dir.mkdir()
    truth = {}
    for track in ("song-a", "song-b", "song-c"):
        vals = {t: {m: list(np.round(rng.normal(5, 3, 4), 5)) for m in ("SDR", "SIR", "SAR", "ISR")}
                for t in ("vocals", "accompaniment")}
        vals["vocals"]["SDR"][0] = math.nan  # a silent frame: NaN is skipped
        truth[track] = vals
        (res_dir / f"{track}.json").write_text(json.dumps(_museval(vals), allow_nan=True))
    (res_dir / "summary.csv").write_text("target,SDR\nvocals,1.0\n")
    (res_dir / "broken.json").write_text("{not json")
    assert detect_kind(res_dir) == "results"
    rc = main(["report", str(res_dir), "--out", str(tmp_path / "rep")])
    assert rc == 0
    page = Page(tmp_path / "rep" / "index.html")
    assert any("broken.json: not a readable museval JSON" in p for p in page.problems)
    text = page.all_text
    for target in ("vocals", "accompaniment"):
        for m in ("SDR", "SIR", "SAR", "ISR"):
            per_track = [np.nanmedian(truth[tr][target][m]) for tr in truth]
            assert f"{np.median(per_track):.2f}" in text
    assert "CSV summary summary.csv (1 rows)" in text
    assert len(page.images) == 8  # per-frame and per-track boxplots for 4 metrics
    figs = results_figures(res_dir)
    ax = figs["SDR_tracks"].axes[0]
    # targets in the files' order (the evaluation's), not alphabetical
    assert [t.get_text() for t in ax.get_xticklabels()] == ["vocals", "accompaniment"]


def test_dataset_from_index_file_is_titled_by_its_root(tmp_path, index):
    res = build_report(index.index_file, tmp_path / "rep", max_items=0)
    assert res.sections[0].title == f"Dataset {index.root.name}"
    assert f"Dataset {index.root.name}" in Page(res.index_html).all_text


def test_report_of_stemforge_evaluate_output(tmp_path, hq_root, capsys):
    """What `stemforge oracle` + `stemforge evaluate` write is read as results: the medians on
    the page are the ones in evaluate's own summary CSV."""
    import pandas as pd

    est, res_dir = tmp_path / "est", tmp_path / "res"
    assert main(["oracle", str(hq_root), "--method", "irm1", "--targets", "vocals", "bass",
                 "--split", "all", "--out", str(est), "--no-progress"]) == 0
    assert main(["evaluate", "--references", str(hq_root), "--estimates", str(est),
                 "--split", "all", "--metrics", "bsseval", "--out", str(res_dir),
                 "--no-progress"]) == 0
    assert detect_kind(res_dir) == "results"
    assert main(["report", str(res_dir), "--out", str(tmp_path / "rep"), "--no-progress"]) == 0
    page = Page(tmp_path / "rep" / "index.html")
    assert page.problems == []
    summary = pd.read_csv(res_dir / "summary_targets.csv")
    text = page.all_text
    for _, row in summary.iterrows():
        assert f"{row['SDR']:.2f}" in text and f"{row['SIR']:.2f}" in text
    assert len(page.images) == 8
    capsys.readouterr()


def test_whole_track_metrics_are_shown_and_labelled(tmp_path, hq_root, capsys):
    """Results without BSS Eval frames (SI-SDR, MDX SDR, cSDR only) are shown, labelled
    whole-track / over chunks, never "median over frames"."""
    import pandas as pd

    est, res_dir = tmp_path / "est", tmp_path / "res"
    assert main(["oracle", str(hq_root), "--method", "irm1", "--targets", "vocals", "bass",
                 "--split", "all", "--out", str(est), "--no-progress"]) == 0
    assert main(["evaluate", "--index", str(hq_root), "--estimates", str(est), "--split",
                 "all", "--metrics", "sisdr,mdx,csdr", "--out", str(res_dir),
                 "--no-progress"]) == 0
    res = build_report(res_dir, tmp_path / "rep")
    assert res.problems == [] and res.rendered == 2
    text = Page(res.index_html).all_text
    summary = pd.read_csv(res_dir / "summary.csv")
    for _, row in summary.iterrows():
        assert f"{row['score']:.2f}" in text
    assert "SI-SDR : whole track, median over tracks" in text
    assert "MDX-SDR : whole track (SDX uSDR), mean over tracks" in text
    assert "median over frames" not in text.replace("BSS Eval the median over frames", "")
    figs = results_figures(res_dir)
    assert set(figs) == {"SI-SDR_tracks", "MDX-SDR_tracks", "cSDR_tracks"}
    assert figs["SI-SDR_tracks"].axes[0].get_title() == "SI-SDR per track (whole track)"
    capsys.readouterr()


def test_several_result_folders_side_by_side(tmp_path):
    """Two museval folders (no audio recorded) given as NAME=PATH: a comparison section with
    both methods per target, their medians, a sortable per-track table and scatter plots."""
    rng = np.random.default_rng(4)
    truth = {}
    for method, shift in (("alpha", 0.0), ("beta", 2.0)):
        d = tmp_path / f"folder-{method}" / "test"
        d.mkdir(parents=True)
        truth[method] = {}
        for track in ("song-a", "song-b", "song-c"):
            vals = {t: {m: list(np.round(rng.normal(3 + shift, 2, 5), 5))
                        for m in ("SDR", "SIR", "SAR", "ISR")} for t in ("vocals", "bass")}
            truth[method][track] = vals
            (d / f"{track}.json").write_text(json.dumps(_museval(vals)))
    res = build_report([f"alpha={tmp_path / 'folder-alpha'}", f"beta={tmp_path / 'folder-beta'}"],
                       tmp_path / "rep")
    assert [s.kind for s in res.sections] == ["results", "results", "comparison"]
    assert res.sections[0].title == "Results alpha" and res.problems == []
    cmp = res.sections[2]
    assert cmp.title == "Comparison of 2 methods" and cmp.rendered == 3
    page = Page(res.index_html)
    text = page.all_text
    for method in ("alpha", "beta"):
        for target in ("vocals", "bass"):
            per_track = [np.median(truth[method][tr][target]["SDR"]) for tr in truth[method]]
            assert f"{np.median(per_track):.2f}" in text
    assert "alpha SDR" in text and "beta SDR" in text  # per-track table columns
    assert "no players: listening needs two methods with estimates" in text
    html = res.index_html.read_text()
    assert html.count('class="sortable"') >= 2 * 2 and "<script>" in html
    assert sum("all-vocals-scatter" in i for i in page.images) == 1


def test_detect_kind(tmp_path, hq_root, index, gen_set):
    assert detect_kind(hq_root) == "dataset"
    assert detect_kind(index.index_file) == "dataset"
    assert detect_kind(gen_set) == "generated"
    assert detect_kind(tmp_path / "missing") == "missing"


def test_cli_report_prints_path(tmp_path, gen_set, hq_root, capsys, monkeypatch):
    monkeypatch.setenv("STEMFORGE_PROGRESS_EVERY", "0")  # progress lines off a terminal
    rc = main(["report", str(hq_root), str(gen_set), "--out", str(tmp_path / "rep"),
               "--excerpt", "0.5", "--max-items", "1"])
    assert rc == 0
    cap = capsys.readouterr()
    assert f"report: {tmp_path / 'rep' / 'index.html'}" in cap.out
    assert "report tracks: 1/1 items (100%)" in cap.err and "report mixtures" in cap.err
    assert main(["report", str(gen_set), "--out", str(tmp_path / "rep2"), "--excerpt", "0.5",
                 "--max-items", "1", "--no-progress"]) == 0
    assert "report mixtures" not in capsys.readouterr().err
    page = Page(tmp_path / "rep" / "index.html")
    assert len(page.audio) == 5 + 3  # one track, one mixture
    assert "mixtures: listen and look (1 of 3)" in page.all_text


# ---------------------------------------------------------------------------- output folder
def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_nothing_renderable_exits_nonzero(tmp_path, gen_set, capsys):
    """Every mixture unreadable and without a spec: the page lists each, the command exits 1."""
    for d in sorted(gen_set.glob("0*")):
        (d / "spec.json").unlink()
        for w in d.glob("*.wav"):
            w.write_bytes(b"RIFF garbage")
    rc = main(["report", str(gen_set), "--out", str(tmp_path / "rep")])
    assert rc == 1
    assert "nothing could be rendered" in capsys.readouterr().err
    page = Page(tmp_path / "rep" / "index.html")
    assert page.audio == [] and page.images == []  # no spec, no audio: nothing to draw
    for i in range(3):
        assert any(f"mixture {i:06d}: cannot read mix" in p for p in page.problems)
        assert any(f"{gen_set / f'{i:06d}' / 'spec.json'}: spec file not found" in p
                   for p in page.problems)
    assert any(f"{gen_set}: nothing could be rendered" in p for p in page.problems)


def test_out_is_a_file_or_a_foreign_folder(tmp_path, gen_set, capsys):
    f = tmp_path / "taken.txt"
    f.write_text("mine")
    assert main(["report", str(gen_set), "--out", str(f)]) == 2
    assert f"stemforge report: error: {f}: exists and is not a folder" in capsys.readouterr().err
    assert f.read_text() == "mine"

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>my page</html>")
    assert main(["report", str(gen_set), "--out", str(site)]) == 2
    assert f"{site / 'index.html'}: exists and is not a stemforge report" in \
        capsys.readouterr().err
    assert _tree(site) == {"index.html": b"<html>my page</html>"}

    (site / "index.html").unlink()
    (site / "assets").mkdir()
    (site / "assets" / "logo.png").write_bytes(b"png")
    assert main(["report", str(gen_set), "--out", str(site)]) == 2
    assert f"{site / 'assets'}: exists but {site / 'index.html'} does not" in \
        capsys.readouterr().err
    assert _tree(site) == {"assets/logo.png": b"png"}


def test_rewrite_leaves_no_stale_assets(tmp_path, gen_set):
    out = tmp_path / "rep"
    build_report(gen_set, out)
    res = build_report(gen_set, out, max_items=1)
    page = Page(res.index_html)
    referenced = {str(Path(s)) for s in page.audio + page.images}
    on_disk = {f"assets/{k}" for k in _tree(out / "assets")}
    assert on_disk == referenced and len(page.audio) == 3
    assert sorted(p.name for p in out.iterdir()) == ["assets", "index.html"]


def test_write_failure_keeps_the_previous_report(tmp_path, gen_set, monkeypatch):
    """Disk full half way (injected in the image writer): ReportError naming the folder, the
    earlier report byte-identical, no staging folder left."""
    import errno

    from stemforge.report import ReportError
    from stemforge.report import html as html_mod

    out = tmp_path / "rep"
    build_report(gen_set, out)
    before = _tree(out)
    real, calls = html_mod.image_bytes, []

    def fill_up(*a, **k):
        calls.append(1)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(out / "assets"))
        return real(*a, **k)

    monkeypatch.setattr(html_mod, "image_bytes", fill_up)
    with pytest.raises(ReportError, match=rf"{out}: cannot write the report \(No space left on "
                       r"device: .*\); any previous report there is unchanged"):
        build_report(gen_set, out)
    assert _tree(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["assets", "index.html"]
