"""Scaper 1.6.5 both ways, checked against real Scaper run in its own venv (numpy<2; made by
``benchmarks/peers/setup_scaper.sh``, which ``.ci/run`` runs): our exported JAMS rendered by
``scaper.generate_from_jams`` as they are, and JAMS that Scaper generated imported by us.

Where the venv is missing the tests skip, except under CI (``CI`` set), where they fail.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import write_wav
from stemforge.index import Index
from stemforge.jobs.generate import generate
from stemforge.jobs.jams_export import export_jams, scaper_duration, scaper_time
from stemforge.mixing.recipe import Recipe
from stemforge.mixing.render import render
from stemforge.mixing.spec import MixSpec

PEER = Path(__file__).resolve().parents[1] / "benchmarks" / "peers" / "scaper_jams.py"
SR = 22050


@pytest.fixture(scope="module")
def scaper_python() -> str:
    py = os.environ.get("STEMFORGE_SCAPER_PYTHON") or str(
        Path(os.environ.get("STEMFORGE_PEERS_DIR", "/tmp/stemforge-peers"))
        / "scaper-venv" / "bin" / "python")
    if not Path(py).is_file():
        msg = f"Scaper venv missing ({py}): bash benchmarks/peers/setup_scaper.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return py


def peer(py: str, *args) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    r = subprocess.run([py, str(PEER), *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]


def music(seconds: float, seed: int, channels: int = 2) -> np.ndarray:
    """Music-like ``(C, T)`` float32: notes with onsets and decays over noise, some silence."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = np.zeros((channels, n))
    t = np.arange(n) / SR
    for _ in range(int(seconds * 4)):
        at = int(rng.uniform(0, n - 1))
        f = rng.uniform(50, 2000)
        env = np.exp(-np.clip(t - at / SR, 0, None) * rng.uniform(2, 12)) * (t >= at / SR)
        x += rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * env
    x += 0.003 * rng.standard_normal((channels, n))
    x[:, int(0.4 * n):int(0.5 * n)] = 0.0  # a silence
    return x.astype(np.float32)


STEMS = ("vocals", "drums", "bass", "other")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six 4 s tracks of four stems in a MUSDB18-HQ tree (one split) and its index."""
    root = tmp_path_factory.mktemp("scaper") / "hq"
    for k in range(6):
        for j, s in enumerate(STEMS):
            write_wav(root / "train" / f"T{k}" / f"{s}.wav", music(4.0, 100 * k + j), SR)
    return Index.build(root, cache_dir=root.parent / "cache")


BASE = f"""
duration: 1.5
sample_rate: {SR}
channels: 2
targets: [vocals, accompaniment]
groups: {{accompaniment: [drums, bass, other]}}
"""
RECIPES = {
    # snr levels, boost, loud ref_db (clips), both modes
    "snr": BASE + """
modes: {coherent: 0.5, incoherent: 0.5}
ref_db: [uniform, -14, -4]
stems: {default: {snr: [uniform, -5, 5]}, vocals: {boost: 2}}
clipping: fix_clipping
""",
    # gain_db levels (no ref_db), peak normalisation
    "gain_db": BASE + """
modes: {incoherent: 1}
stems: {default: {gain_db: [uniform, -6, 6]}}
clipping: peak_normalize
""",
    # pitch and tempo (Scaper stretches what it reads: event_duration is the pre-stretch span)
    "pitch_tempo": BASE + """
ref_db: -25
stems: {default: {snr: [uniform, -5, 5]}}
augment:
  - {step: pitch_tempo, mode: hq, semitones: [uniform, -2, 2], tempo: [uniform, 0.9, 1.1]}
""",
    # Scaper's event model: times, durations, several events, a background, fades, seconds
    "events": BASE + """
modes: {incoherent: 1}
ref_db: -18
fade_in: 0.01
fade_out: 0.01
stems:
  default: {snr: [uniform, -5, 5], event_time: [uniform, 0, 1.5],
            event_duration: [uniform, 0.5, 1.0], source_time: [uniform, 0, 3.0]}
  vocals: {events: [choose, [1, 2, 3]]}
  bass: {role: background, snr: 0, event_time: 0, event_duration: 1.5, source_time: 0.3}
clipping: fix_clipping
""",
}


def test_scaper_times_round_trip_exactly():
    """Scaper reads ``int(t * sr)`` (and ``int((t + d) * sr)`` for the stop): our times give
    back every frame exactly, over millions of starts, lengths and rates."""
    for sr in (8000, 16000, 22050, 44100, 48000, 96000):
        start = np.arange(0, 3_000_000, dtype=np.int64)
        t = (start + 0.5) / sr
        assert np.array_equal((t * sr).astype(np.int64), start)
        assert scaper_time(12345, sr) == t[12345]
        for n in (1, 441, sr // 3, 5 * sr + 7, 30 * sr):
            stop = ((t + n / sr) * sr).astype(np.int64)
            assert np.array_equal(stop, start + n), (sr, n)
            d = scaper_duration(n, sr)
            assert int(d * sr) == n
    # the naive start / sr does land one frame early for some starts
    start = np.arange(1, 1_000_000, dtype=np.int64)
    assert ((start / 44100 * 44100).astype(np.int64) != start).any()


def _ours(spec: MixSpec, index) -> tuple[np.ndarray, list[np.ndarray]]:
    """Our mix ``(T, C)`` float64 and each mixed source after gain and clip scale."""
    r = render(MixSpec.from_dict(spec.to_dict()), index, keep_sources=True)
    assert r.scale == spec.scale  # the recorded scale is applied
    srcs = [r.sources[s.key].astype(np.float64).T * spec.scale for s in _live(spec)]
    return r.mix.astype(np.float64).T, srcs


def _live(spec: MixSpec) -> list:
    """The mixed sources in the JAMS observations' order (by event time, stable)."""
    return sorted((s for s in spec.sources if not s.dropped), key=lambda s: s.offset)


def _lufs(x: np.ndarray) -> float:
    import pyloudnorm

    return pyloudnorm.Meter(SR).integrated_loudness(x)


@pytest.mark.parametrize("name", list(RECIPES))
def test_export_renders_in_scaper_as_is(name, dataset, tmp_path, scaper_python):
    index = dataset
    out = tmp_path / "set"
    (tmp_path / "r.yaml").write_text(RECIPES[name])
    n = 6 if name != "pitch_tempo" else 3
    generate(Recipe.load(tmp_path / "r.yaml"), index, n, out, seed=3, progress=False)
    files, warnings = export_jams(out)
    assert warnings == []
    peer(scaper_python, "render", tmp_path / "scaper", *files)
    clipped = 0
    for i, f in enumerate(files):
        spec = MixSpec.load(out / f"{i:06d}" / "spec.json")
        got = np.load(tmp_path / "scaper" / f"{i}.npz")
        mix, srcs = _ours(spec, index)
        live = _live(spec)
        assert got["events"].shape == (len(live), *mix.shape)
        clipped += spec.scale != 1.0
        assert math.isclose(float(got["scale"]), spec.scale, rel_tol=1e-5)
        for s, ours, theirs in zip(live, srcs, got["events"], strict=True):
            if s.steps:  # Scaper stretches with sox, we with Rubber Band: compare levels
                assert abs(_lufs(theirs) - _lufs(ours)) < 0.01, s.key
                # event_duration is the span before stretching: Scaper's stretched event fills
                # the mixture (with the mixture's length there, its last 5-10 % were silent)
                k = len(ours) // 20
                if np.sum(ours[-k:] ** 2) > 1e-4 * np.sum(ours ** 2):
                    assert np.sum(theirs[-k:] ** 2) > 0.25 * np.sum(ours[-k:] ** 2), s.key
                continue
            g = float(np.vdot(theirs, ours) / np.vdot(ours, ours))
            assert abs(20 * np.log10(g)) < 0.01, (s.key, 20 * np.log10(g))
            # sample-exact: the residual is float rounding (a one-frame shift is ~-10 dB)
            res = 10 * np.log10(np.sum((theirs - ours) ** 2) / np.sum(ours ** 2))
            assert res < -100, (s.key, res)
        if not any(s.steps for s in live):
            assert np.abs(got["mix"] - mix).max() <= 1e-6 * max(np.abs(mix).max(), 1e-3)
    if name in ("snr", "events"):
        assert clipped > 0  # fix_clipping was exercised
    if name == "events":
        specs = [MixSpec.load(out / f"{i:06d}" / "spec.json") for i in range(n)]
        keys = {s.key for sp in specs for s in sp.sources}
        assert "vocals#1" in keys and any(s.role == "background" for sp in specs
                                          for s in sp.sources)
        for sp in specs:  # recorded in the spec: fades, source_time in seconds, placements
            for s in sp.sources:
                if s.role == "background":
                    assert (s.start, s.offset, s.fade_in) == (int(0.3 * SR), 0, 0)
                else:
                    assert s.fade_in == s.fade_out == int(0.01 * SR)
                    assert s.offset + s.frames_out(sp.frames) <= sp.frames
                    assert int(0.5 * SR) - 1 <= s.frames_out(sp.frames) <= SR + 1


def test_export_materialize_writes_scaper_layout(dataset, tmp_path, scaper_python):
    """stem.mp4-like sources are decoded: --materialize writes <stem>/<track>.wav and the JAMS
    name them (relocatable with fg_path); without it an mp4 source gets a warning."""
    from stemforge.cli import main

    index = dataset
    out = tmp_path / "set"
    (tmp_path / "r.yaml").write_text(RECIPES["snr"])
    generate(Recipe.load(tmp_path / "r.yaml"), index, 2, out, seed=1, progress=False)
    mat = tmp_path / "fg"
    assert main(["export-jams", str(out), "--materialize", str(mat)]) == 0
    doc = json.loads((out / "000000" / "mixture.jams").read_text())
    ann = doc["annotations"][0]
    assert ann["sandbox"]["scaper"]["fg_path"] == str(mat.resolve())
    for obs in ann["data"]:
        p = Path(obs["value"]["source_file"])
        assert p.parent.parent == mat.resolve() and p.parent.name == obs["value"]["label"]
        assert sf.info(str(p)).samplerate == SR
    peer(scaper_python, "render", tmp_path / "scaper", out / "000000" / "mixture.jams")
    got = np.load(tmp_path / "scaper" / "0.npz")
    mix, _ = _ours(MixSpec.load(out / "000000" / "spec.json"), index)
    assert np.abs(got["mix"] - mix).max() <= 1e-6 * np.abs(mix).max()


def test_export_mp4_sources_warn_or_materialize(musdb_excerpt, tmp_path, capsys,
                                               scaper_python):
    """stem.mp4 streams: a warning at export; with --materialize, decoded WAVs that Scaper
    renders to our item."""
    from stemforge.cli import main

    index = Index.build(musdb_excerpt, cache_dir=tmp_path / "cache")
    (tmp_path / "r.yaml").write_text("duration: 1.0\ntargets: [vocals, drums]\n"
                                     "stems: {default: {snr: [uniform, -5, 5]}}\n")
    generate(Recipe.load(tmp_path / "r.yaml"), index, 1, tmp_path / "set", progress=False)
    assert main(["export-jams", str(tmp_path / "set")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("warning: ") for line in err)
    assert "a .stem.mp4 stream, which Scaper (libsndfile) cannot read" in err[0]
    assert main(["export-jams", str(tmp_path / "set"), "--materialize",
                 str(tmp_path / "fg")]) == 0
    assert capsys.readouterr().err == ""
    assert sorted(p.parent.name for p in (tmp_path / "fg").rglob("*.wav")) == ["drums", "vocals"]
    peer(scaper_python, "render", tmp_path / "scaper", tmp_path / "set" / "000000" / "mixture.jams")
    got = np.load(tmp_path / "scaper" / "0.npz")
    mix, srcs = _ours(MixSpec.load(tmp_path / "set" / "000000" / "spec.json"), index)
    for ours, theirs in zip(srcs, got["events"], strict=True):
        res = 10 * np.log10(np.sum((theirs - ours) ** 2) / np.sum(ours ** 2))
        assert res < -100
    assert np.abs(got["mix"] - mix).max() <= 1e-6 * np.abs(mix).max()


@pytest.mark.parametrize("stems,modes,field,msg", [
    ({"vocals": {"start": 0.5, "source_time": 1.0}}, "incoherent", "stems.vocals",
     "either start (a fraction) or source_time"),
    ({"vocals": {"events": 2}}, "coherent", "stems.vocals.events", "use modes: {incoherent: 1}"),
    ({"vocals": {"events": 1.5}}, "incoherent", "stems.vocals.events", "whole number of events"),
    ({"vocals": {"role": "back"}}, "incoherent", "stems.vocals.role", "foreground, background"),
])
def test_event_model_recipe_errors_name_the_field(stems, modes, field, msg):
    from stemforge.errors import RecipeError

    with pytest.raises(RecipeError) as e:
        Recipe.from_dict({"targets": ["vocals", "drums"], "modes": {modes: 1}, "stems": stems})
    assert f"'{field}'" in str(e.value) and msg in str(e.value)


# ---------------------------------------------------------------------------- import-jams
@pytest.fixture(scope="module")
def scaper_root(tmp_path_factory):
    """Scaper's fg_path layout with the nussl trick: <root>/<label>/<song>.wav, the same six
    songs in every label folder (``bg`` too: the backgrounds of the events style)."""
    root = tmp_path_factory.mktemp("scaperfg") / "fg"
    for k in range(6):
        for j, label in enumerate((*STEMS, "bg")):
            write_wav(root / label / f"song{k}.wav", music(4.0, 7 + 100 * k + j), SR)
    return root


@pytest.mark.parametrize("style", ["tutorial", "events"])
def test_import_reproduces_scaper(style, scaper_root, tmp_path, scaper_python):
    """JAMS that Scaper generated (coherent and incoherent items, fix_clipping; Scaper's event
    model with fades and a background) are reproduced source by source."""
    from stemforge.cli import main

    cfg = {"fg": str(scaper_root), "bg": str(scaper_root), "n": 6 if style == "tutorial" else 4,
           "duration": 1.5, "sr": SR, "channels": 2, "labels": list(STEMS), "style": style}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    peer(scaper_python, "generate", tmp_path / "cfg.json", tmp_path / "sc")
    jams_files = [tmp_path / "sc" / f"{k}.jams" for k in range(cfg["n"])]
    out = tmp_path / "set"
    assert main(["import-jams", *map(str, jams_files), "--index", str(scaper_root),
                 "--out", str(out)]) == 0
    index = Index.open(scaper_root)
    assert index.layout == "scaper" and len(index) == 6
    clipped, coherent = 0, 0
    for k in range(cfg["n"]):
        spec = MixSpec.load(out / f"{k:06d}" / "spec.json")
        got = np.load(tmp_path / "sc" / f"{k}.npz")
        mix, srcs = _ours(spec, index)
        assert len(srcs) == len(got["events"])
        clipped += got["scale"] != 1.0
        coherent += len({s.track for s in spec.sources}) == 1
        assert math.isclose(spec.scale, float(got["scale"]), rel_tol=1e-5)
        for s, ours, theirs in zip(_live(spec), srcs, got["events"], strict=True):
            g = float(np.vdot(theirs, ours) / np.vdot(ours, ours))
            assert abs(20 * np.log10(g)) < 0.01, (k, s.key, 20 * np.log10(g))
            res = 10 * np.log10(np.sum((theirs - ours) ** 2) / np.sum(ours ** 2))
            assert res < -100, (k, s.key, res)
        assert np.abs(got["mix"] - mix).max() <= 1e-6 * max(np.abs(mix).max(), 1e-3)
        # what was written is what the spec renders, and the mixture is the sum of the labels
        written = sf.read(str(out / f"{k:06d}" / "mixture.wav"), dtype="float32")[0].T
        assert np.array_equal(written, mix.T.astype(np.float32))
    assert clipped > 0
    if style == "tutorial":
        assert coherent == 3  # even items are coherent (one song), odd ones incoherent
    else:
        specs = [MixSpec.load(out / f"{k:06d}" / "spec.json") for k in range(cfg["n"])]
        assert any(s.role == "background" for sp in specs for s in sp.sources)
        assert all(s.fade_in == int(0.01 * SR) for sp in specs for s in sp.sources
                   if s.role == "foreground")


def test_import_errors_are_one_line(scaper_root, tmp_path, capsys):
    from stemforge.cli import main

    bad = tmp_path / "x.jams"
    bad.write_text(json.dumps({"annotations": [{"namespace": "beat", "data": []}]}))
    out = tmp_path / "out"
    assert main(["import-jams", str(bad), "--index", str(scaper_root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no annotation in the 'scaper' namespace" in err
    assert not out.exists()
    doc = {"annotations": [{"namespace": "scaper", "sandbox": {"scaper": {
        "sr": SR, "n_channels": 2, "duration": 1.0, "ref_db": -20}},
        "data": [{"time": 0, "duration": 1, "value": {
            "label": "vocals", "role": "foreground", "source_file": "/nowhere/vocals/zz.wav",
            "source_time": 0, "event_time": 0, "event_duration": 1, "snr": 0}}]}]}
    bad.write_text(json.dumps(doc))
    assert main(["import-jams", str(bad), "--index", str(scaper_root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not in the index of" in err and not out.exists()


def test_scaper_layout_detection_needs_clear_evidence(tmp_path):
    from stemforge import layouts

    a = tmp_path / "a"  # labels x songs: scaper
    for label in ("vocals", "drums"):
        for song in ("s1", "s2", "s3"):
            write_wav(a / label / f"{song}.wav", music(0.1, 1), SR)
    assert layouts.detect(a).name == "scaper"
    b = tmp_path / "b"  # tracks x stems: still a trackfolder
    for track in ("t1", "t2", "t3"):
        for stem in ("vocals", "drums"):
            write_wav(b / track / f"{stem}.wav", music(0.1, 1), SR)
    assert layouts.detect(b).name == "trackfolder"
    c = tmp_path / "c"  # unaligned labels (no shared names): labelfolder
    for label, song in (("vocals", "x"), ("drums", "y")):
        write_wav(c / label / f"{song}.wav", music(0.1, 1), SR)
    assert layouts.detect(c).name == "labelfolder"


def test_zero_events_give_a_silent_mixture(dataset):
    from stemforge.mixing.mixer import Mixer

    r = Recipe.from_dict({"targets": ["vocals", "drums"], "modes": {"incoherent": 1},
                          "duration": 1.0, "sample_rate": SR,
                          "stems": {"default": {"events": ["choose", [0, 1]]}}})
    m = Mixer(r, dataset, seed=0)
    counts = set()
    for i in range(12):
        x = m.mixture(i)
        counts.add(len(x.spec.sources))
        assert np.array_equal(x.mix, sum(x.targets.values()))
        if not x.spec.sources:
            assert not x.mix.any() and "silent mixture" in x.spec.warnings[0]
    assert 0 in counts and 2 in counts
