"""stemforge.train: training loop, resume, checkpoints, separation, evaluation, experiment, CLI.

Everything runs on tiny synthetic songs (stemforge.train.synth, 8 kHz, ~3 s) and a tiny model
(n_fft 256, hidden 16) so the whole file stays well under a minute of CPU.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile as sf

import torch

from conftest import cache_files, write_wav  # noqa: E402
from stemforge import Index  # noqa: E402
from stemforge.cli import main  # noqa: E402
from stemforge.errors import AudioError, StemforgeError  # noqa: E402
from stemforge.mixing.recipe import Recipe  # noqa: E402
from stemforge.torch import ValidationDataset  # noqa: E402
from stemforge.train import synth  # noqa: E402
from stemforge.train.checkpoint import CheckpointError, load_checkpoint, load_model  # noqa: E402
from stemforge.train.evaluate import oracle_estimator, score_tracks, summarize  # noqa: E402
from stemforge.train.experiment import condition_recipe  # noqa: E402
from stemforge.train.loop import TrainConfig, train, validation_loss  # noqa: E402
from stemforge.train.model import ModelConfig, build  # noqa: E402
from stemforge.train.separate import separate_array, separate_file  # noqa: E402

SR = 8000
TARGETS = ["drums", "bass", "other", "vocals"]
MODEL = dict(n_fft=256, hop=64, hidden=16)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 OpenMP threads spin and cost ~3x CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("train")
    root = synth.write_dataset(base / "synth", np.random.default_rng(7), n_train=2, n_test=1,
                               seconds=(3.0, 3.5), sample_rate=SR)
    index = Index.build(root, cache_dir=base / "cache", workers=1)
    return base, root, index


def recipe(**kw) -> Recipe:
    raw = {"name": "tiny", "targets": TARGETS, "sample_rate": SR, "channels": 2,
           "duration": 1.0, "split": ["train"], "modes": {"coherent": 0.5, "incoherent": 0.5},
           "stems": {"default": {"gain_db": ["uniform", -6, 6]}}, "clipping": "fix_clipping"}
    raw.update(kw)
    return Recipe.from_dict(raw)


def mcfg() -> ModelConfig:
    return ModelConfig(targets=TARGETS, channels=2, sample_rate=SR, **MODEL)


def cfg(**kw) -> TrainConfig:
    base = dict(steps=8, batch_size=4, batches_per_epoch=3, lr=3e-3, valid_every=4,
                checkpoint_every=4, valid_split="test")  # synthetic data has no valid split
    base.update(kw)
    return TrainConfig(**base)


def states_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------- training
def test_loss_decreases_and_run_files(data):
    base, _, index = data
    r = recipe()
    valid = ValidationDataset(index, r, split="test")
    before = validation_loss(build(mcfg(), 0), valid, "cpu")
    res = train(r, index, base / "run-loss", cfg(steps=40, valid_every=20, checkpoint_every=20),
                mcfg(), progress=False)
    assert res.step == 40 and [h["step"] for h in res.history] == [20, 40]
    after = res.history[-1]["valid_loss"]
    assert after < 0.8 * before, (before, after)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] * 1.05
    ck = load_checkpoint(base / "run-loss" / "checkpoint.pt")
    assert ck["step"] == 40 and ck["recipe_hash"] == r.hash() and ck["recipe"] == r.raw
    assert ck["model_config"] == mcfg().to_dict() and ck["train_config"]["steps"] == 40
    assert ck["best_valid"] == pytest.approx(min(h["valid_loss"] for h in res.history))
    assert (base / "run-loss" / "best.pt").is_file()
    lines = (base / "run-loss" / "history.csv").read_text().splitlines()
    assert lines[0] == "step,train_loss,valid_loss" and len(lines) == 3
    assert res.model.n_parameters() < 300_000


def test_resume_continues_bit_for_bit(data):
    base, _, index = data
    r = recipe()
    full = train(r, index, base / "run-full", cfg(), mcfg(), progress=False)
    train(r, index, base / "run-split", cfg(steps=4), mcfg(), progress=False)
    assert load_checkpoint(base / "run-split" / "checkpoint.pt")["step"] == 4
    # resume mid-epoch (step 4 = epoch 1, batch 1) with one loader worker: same weights
    resumed = train(r, index, base / "run-split", cfg(num_workers=1), mcfg(), resume=True,
                    progress=False)
    assert resumed.step == 8
    assert states_equal(full.model.state_dict(), resumed.model.state_dict())
    a = load_checkpoint(base / "run-full" / "checkpoint.pt")
    b = load_checkpoint(base / "run-split" / "checkpoint.pt")
    assert a["history"] == b["history"]
    assert states_equal(a["optimizer"]["state"][0], b["optimizer"]["state"][0])
    # and a different seed really gives other weights (the comparison can fail)
    other = train(r, index, base / "run-seed", cfg(seed=1), mcfg(), progress=False)
    assert not states_equal(full.model.state_dict(), other.model.state_dict())


def test_resume_refusals_leave_the_run_untouched(data):
    base, _, index = data
    r = recipe()
    run = base / "run-guard"
    train(r, index, run, cfg(steps=2), mcfg(), progress=False)
    before = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: a run already exists"):
        train(r, index, run, cfg(steps=4), mcfg(), progress=False)
    with pytest.raises(CheckpointError, match="recipe hash"):
        train(recipe(duration=0.5), index, run, cfg(steps=4), mcfg(), resume=True, progress=False)
    with pytest.raises(CheckpointError, match="batch_size: 4 -> 2"):
        train(r, index, run, cfg(steps=4, batch_size=2), mcfg(), resume=True, progress=False)
    with pytest.raises(CheckpointError, match="model config"):
        train(r, index, run, cfg(steps=4), ModelConfig(targets=TARGETS, sample_rate=SR, n_fft=256,
                                                       hop=64, hidden=8), resume=True, progress=False)
    with pytest.raises(CheckpointError, match="beyond the requested 1 steps"):
        train(r, index, run, cfg(steps=1), mcfg(), resume=True, progress=False)
    assert (run / "checkpoint.pt").read_bytes() == before
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(r, index, base / "run-none", cfg(), mcfg(), resume=True, progress=False)
    assert not (base / "run-none").exists()


def test_config_errors(data):
    base, _, index = data
    with pytest.raises(StemforgeError, match="'batch_size'"):
        train(recipe(), index, base / "x", cfg(batch_size=0), mcfg(), progress=False)
    with pytest.raises(StemforgeError, match="does not fit recipe 'tiny'"):
        train(recipe(), index, base / "x", cfg(), ModelConfig(targets=["vocals"], sample_rate=SR),
              progress=False)
    assert not (base / "x").exists()


# ---------------------------------------------------------------------------- checkpoints
def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a readable PyTorch checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)  # another model's weights
    with pytest.raises(CheckpointError, match=r"other\.pt: not a stemforge separator checkpoint"):
        load_model(other)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "someone.else", "state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="format 'someone.else'"):
        load_checkpoint(foreign)


# ---------------------------------------------------------------------------- separation
@pytest.fixture(scope="module")
def trained(data):
    base, _, index = data
    res = train(recipe(), index, base / "run-sep", cfg(steps=4), mcfg(), progress=False)
    return base / "run-sep" / "checkpoint.pt", res.model


def test_separate_file_any_rate_and_channels(data, trained, tmp_path):
    _, root, _ = data
    ckpt, model = trained
    mix, rate = sf.read(str(next((root / "test").iterdir()) / "mixture.wav"), always_2d=True)
    mono = mix.mean(axis=1)[None, :].astype(np.float32)
    from stemforge.audio.dsp import resample

    src = write_wav(tmp_path / "song.flac", resample(mono, SR, 11025), 11025, subtype="PCM_24")
    assert main(["separate", str(ckpt), str(src), "--out", str(tmp_path / "out")]) == 0
    frames = sf.info(str(src)).frames
    for t in TARGETS:
        info = sf.info(str(tmp_path / "out" / f"{t}.wav"))
        assert (info.samplerate, info.channels, info.frames) == (11025, 1, frames)
        y, _ = sf.read(str(tmp_path / "out" / f"{t}.wav"))
        assert np.isfinite(y).all() and np.abs(y).max() > 1e-4


def test_separate_dataset_with_a_checkpoint(data, trained, tmp_path, capsys):
    """``separate --index ROOT --checkpoint``: every test track, the same numbers as the
    single-file form on that track's mixture."""
    _, root, index = data
    ckpt, _ = trained
    est = tmp_path / "est"
    assert main(["separate", "--index", str(index.index_file), "--out", str(est),
                 "--checkpoint", str(ckpt), "--no-progress"]) == 0
    tests = [t for t in index.tracks if t.split == "test"]
    assert sorted(p.name for p in est.iterdir() if p.is_dir()) == [t.name for t in tests]
    one = tmp_path / "one"
    assert main(["separate", str(ckpt), str(root / "test" / tests[0].name / "mixture.wav"),
                 "--out", str(one)]) == 0
    for t in TARGETS:
        a, _ = sf.read(str(est / tests[0].name / f"{t}.wav"), dtype="float32")
        b, _ = sf.read(str(one / f"{t}.wav"), dtype="float32")
        np.testing.assert_array_equal(a, b)
    assert main(["separate", "--index", str(index.index_file), "--out", str(tmp_path / "x"),
                 "--checkpoint", str(ckpt), "--targets", "piano", "--no-progress"]) == 2
    assert "separates drums, bass, other, vocals" in capsys.readouterr().err


def test_separate_array_chunks_cross_fade(trained):
    _, model = trained
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((2, 3 * SR))).astype(np.float32)
    whole = separate_array(model, x, chunk=30.0)
    chunked = separate_array(model, x, chunk=0.5, overlap=0.1)
    assert whole.shape == chunked.shape == (4, 2, 3 * SR)
    err = np.sum((whole - chunked) ** 2) / np.sum(whole ** 2)
    assert 0 < err < 0.05  # not identical (other LSTM context), but no seams or gain errors
    with pytest.raises(AudioError, match="shorter than one STFT window"):
        separate_array(model, x[:, :100])


def test_separate_errors_write_nothing(trained, tmp_path, capsys):
    ckpt, _ = trained
    out = tmp_path / "out"
    with pytest.raises(AudioError, match=r"missing\.wav: audio file not found"):
        separate_file(ckpt, tmp_path / "missing.wav", out)
    with pytest.raises(CheckpointError, match=r"gone\.pt: checkpoint not found"):
        separate_file(tmp_path / "gone.pt", tmp_path / "missing.wav", out)
    three = write_wav(tmp_path / "three.wav", np.zeros((3, SR), np.float32), SR)
    with pytest.raises(AudioError, match=r"three\.wav: 3-channel audio"):
        separate_file(ckpt, three, out)
    assert cache_files(out) == []
    assert main(["separate", str(ckpt), str(tmp_path / "missing.wav"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.wav: audio file not found" in err[0]


# ---------------------------------------------------------------------------- evaluation
def test_score_tracks_wiring(data):
    _, _, index = data
    test = index.subset("test")
    perfect = lambda mix, refs: refs  # noqa: E731
    rolled = lambda mix, refs: dict(zip(refs, np.roll(np.stack(list(refs.values())), 1, 0), strict=True))  # noqa: E731
    s = score_tracks(test, TARGETS, {"perfect": perfect, "rolled": rolled,
                                     "irm2": oracle_estimator("irm2")}, SR, 2)
    assert len(s) == 3 * len(TARGETS) and set(s["track"]) == {t.id for t in test.tracks}
    summary = summarize(s).set_index(["method", "target"])
    for t in TARGETS:
        assert summary.loc[("perfect", t), "SDR"] > 60 and summary.loc[("rolled", t), "SDR"] < 0
        assert summary.loc[("rolled", t), "SDR"] + 3 < summary.loc[("irm2", t), "SDR"] < 60
        assert summary.loc[("irm2", t), "SI-SDR"] > 5
        assert summary.loc[("perfect", t), "tracks"] == 1


def test_condition_recipes():
    tut = condition_recipe("tutorial", TARGETS, SR, 2, 1.5)
    assert tut.targets == TARGETS and tut.duration == 1.5 and tut.sample_rate == SR
    assert tut.modes == {"coherent": 0.5, "incoherent": 0.5}
    assert tut.raw["stems"]["default"]["snr"] == ["uniform", -5, 5]
    assert tut.raw["augment"][0]["step"] == "pitch_tempo" and "mode" not in tut.raw["augment"][0]
    fast = condition_recipe("tutorial", TARGETS, SR, 2, 1.5, pitch_mode="fast")
    assert fast.raw["augment"][0]["mode"] == "fast" and fast.hash() != tut.hash()
    plain = condition_recipe("plain", TARGETS, SR, 2, 1.5)
    assert plain.modes == {"coherent": 1.0} and len(plain.augment) == 0
    ours = condition_recipe("recommended", TARGETS, SR, 2, 1.5)
    assert ours.targets == TARGETS and ours.duration == 1.5
    with pytest.raises(StemforgeError, match="unknown row 'fancy'"):
        condition_recipe("fancy", TARGETS, SR, 2, 1.5)


def test_experiment_synth_refuses_existing_data(data, capsys):
    _, root, _ = data
    assert main(["experiment", "synth", str(root)]) == 2  # never writes into existing data
    assert "exists and is not an empty folder" in capsys.readouterr().err


def test_train_cli_and_refusal(data, capsys, tmp_path):
    base, root, _ = data
    rp = tmp_path / "r.yaml"
    import yaml

    rp.write_text(yaml.safe_dump(recipe().raw))
    argv = ["train", "--index", str(root), "--recipe", str(rp), "--steps", "2", "--out",
            str(tmp_path / "run"), "--batch-size", "2", "--hidden", "16", "--n-fft", "256",
            "--hop", "64", "--no-progress", "--cache", str(base / "cache"),
            "--valid-split", "test", "--select-on-test"]
    assert main(argv) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a run already exists here" in err[0]
    assert main([*argv, "--resume", "--steps", "3"]) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 3


# ---------------------------------------------------------------------------- synthetic data
def test_synth_songs_deterministic_and_consistent(tmp_path):
    a = synth.render_song(np.random.default_rng(3), 6.0, SR)
    b = synth.render_song(np.random.default_rng(3), 6.0, SR)
    assert list(a) == list(synth.STEMS)
    for s in synth.STEMS:
        assert a[s].shape == (2, 6 * SR) and a[s].dtype == np.float32
        np.testing.assert_array_equal(a[s], b[s])
        assert 10 * math.log10(np.mean(a[s] ** 2)) > -40  # audible, not the noise floor only
    assert np.abs(sum(a.values())).max() <= 0.95 + 1e-6
    c = synth.render_song(np.random.default_rng(4), 6.0, SR)
    assert not np.array_equal(a["vocals"], c["vocals"])
    with pytest.raises(StemforgeError, match="sample_rate >= 8000"):
        synth.render_song(np.random.default_rng(0), 1.0, 4000)
    root = synth.write_dataset(tmp_path / "s", np.random.default_rng(0), 1, 1, (1.0, 1.0), SR)
    d = root / "test" / "Synth - 001"
    mix, _ = sf.read(str(d / "mixture.wav"), always_2d=True)
    stems = sum(sf.read(str(d / f"{s}.wav"), always_2d=True)[0] for s in synth.STEMS)
    np.testing.assert_allclose(mix, stems, atol=1e-6)


def test_synth_dataset_failure_leaves_nothing(tmp_path, monkeypatch):
    real, calls = synth.render_song, []

    def fail_second(*a, **kw):  # a crash while the second song is rendered
        calls.append(1)
        if len(calls) == 2:
            raise StemforgeError("synthetic failure")
        return real(*a, **kw)

    monkeypatch.setattr(synth, "render_song", fail_second)
    with pytest.raises(StemforgeError, match="synthetic failure"):
        synth.write_dataset(tmp_path / "s", np.random.default_rng(0), 1, 1, (1.0, 1.0), SR)
    assert cache_files(tmp_path) == [] and list(tmp_path.iterdir()) == []
    (tmp_path / "empty").mkdir()  # an empty folder is fine and gets filled
    monkeypatch.setattr(synth, "render_song", real)
    synth.write_dataset(tmp_path / "empty", np.random.default_rng(0), 1, 0, (1.0, 1.0), SR)
    assert len(cache_files(tmp_path / "empty")) == 5


def test_checkpoint_roundtrip_in_memory(trained):
    """The saved dict loads with weights_only=True (no pickled classes)."""
    ckpt, model = trained
    raw = torch.load(io.BytesIO(ckpt.read_bytes()), weights_only=True)
    assert raw["format"] == "stemforge.separator" and raw["model"] == "MaskSeparator"
    m, data = load_model(ckpt, "cpu")
    assert states_equal(m.state_dict(), model.state_dict()) and not m.training
