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


def test_export_warns_for_mp4_sources(musdb_excerpt, tmp_path, capsys):
    from stemforge.cli import main

    index = Index.build(musdb_excerpt, cache_dir=tmp_path / "cache")
    (tmp_path / "r.yaml").write_text("duration: 1.0\ntargets: [vocals, drums]\n")
    generate(Recipe.load(tmp_path / "r.yaml"), index, 1, tmp_path / "set", progress=False)
    assert main(["export-jams", str(tmp_path / "set")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("warning: ") for line in err)
    assert "a .stem.mp4 stream, which Scaper (libsndfile) cannot read" in err[0]
