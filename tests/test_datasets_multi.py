"""Several datasets in one recipe (issue #20, item 1): the bundled real MUSDB excerpt plus a
made 4-stem dataset whose own stem names are mapped onto MUSDB's through a taxonomy."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import tone, write_wav
from stemforge import Index, render
from stemforge.cli import main
from stemforge.errors import RecipeError
from stemforge.indexset import IndexSet
from stemforge.mixing.mixer import Mixer
from stemforge.mixing.spec import MixSpec
from test_first_use import one_line_error

MADE = {"kick": "drums", "bassline": "bass", "keys": "other", "voice": "vocals"}
TARGETS = ["vocals", "drums", "bass", "other"]
RECIPE = {"name": "two", "targets": TARGETS, "duration": 1.0, "split": "all",
          "datasets": {"musdb": 0.5, "made": 0.5}, "dataset_mode": "across",
          "modes": {"coherent": 0.5, "incoherent": 0.5},
          "stems": {"default": {"snr": ["uniform", -3, 3]}}}


def make_made(root: Path, songs: int = 3, seconds: float = 4.0) -> Path:
    """``root/songK/{kick,bassline,keys,voice}.wav``: 4 stems under names of its own."""
    for i in range(songs):
        for j, s in enumerate(MADE):
            write_wav(root / f"song{i}" / f"{s}.wav",
                      tone(90 * (j + 1) + 13 * i, seconds, seed=10 * i + j, amp=0.2))
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import stempeg

    base = tmp_path_factory.mktemp("multi")
    src = Path(stempeg.example_stem_path())
    (base / "musdb18" / "test").mkdir(parents=True)
    shutil.copyfile(src, base / "musdb18" / "test" / src.name)
    make_made(base / "made")
    tax = base / "made.yaml"
    tax.write_text(yaml.safe_dump({v: [k] for k, v in MADE.items()}))
    musdb = Index.open(base / "musdb18", cache_dir=base / "c_musdb")
    made = Index.open(base / "made", layout="trackfolder", cache_dir=base / "c_made",
                      taxonomy=str(tax))
    assert made.stem_names == sorted(TARGETS)  # the taxonomy mapped kick -> drums, ...
    return {"base": base, "musdb": musdb, "made": made, "tax": tax}


def indexes(data):
    return {"musdb": data["musdb"], "made": data["made"]}


def test_one_recipe_draws_from_two_datasets(data):
    mixer = Mixer(RECIPE, indexes(data), seed=3)
    seen, mixed_items = set(), 0
    batch = mixer.mixtures(range(12))
    for i, m in enumerate(batch):
        one = mixer.mixture(i)
        assert one.mix.tobytes() == m.mix.tobytes()
        assert one.stacked().tobytes() == m.stacked().tobytes()
        names = {s.dataset for s in m.spec.sources}
        assert names <= {"musdb", "made"} and "" not in names
        seen |= names
        if m.spec.mode == "coherent":
            assert len(names) == 1 and len({s.track for s in m.spec.sources}) == 1
        mixed_items += len(names) > 1
        for s in m.spec.sources:  # each source's track is a track of the dataset it names
            assert s.track in {t.id for t in data[s.dataset].tracks}
        # the spec names each source's dataset and re-renders from it alone
        spec = MixSpec.from_json(m.spec.to_json())
        assert all('"dataset": "' in json.dumps(src) for src in m.spec.to_dict()["sources"])
        again = render(spec, mixer.index)
        assert again.mix.tobytes() == m.mix.tobytes()
        np.testing.assert_allclose(m.mix, m.stacked().sum(0), atol=1e-6)
    assert seen == {"musdb", "made"} and mixed_items > 0


def test_within_keeps_each_item_in_one_dataset(data):
    r = {**RECIPE, "dataset_mode": "within", "modes": {"incoherent": 1}}
    mixer = Mixer(r, indexes(data), seed=0)
    datasets = [{s.dataset for s in mixer.spec(i).sources} for i in range(30)]
    assert all(len(d) == 1 for d in datasets)
    assert {d.pop() for d in datasets} == {"musdb", "made"}


@pytest.mark.parametrize("weights,p_musdb", [
    ({"musdb": 0.9, "made": 0.1}, 0.9),
    # by_duration: 6 s of MUSDB against 3 x 4 s made songs
    ({"musdb": "by_duration", "made": "by_duration"}, None),
])
def test_dataset_weights(data, weights, p_musdb):
    r = {**RECIPE, "datasets": weights, "modes": {"coherent": 1}}
    mixer = Mixer(r, indexes(data), seed=1)
    if p_musdb is None:
        mus = data["musdb"].tracks[0].duration
        made = sum(t.duration for t in data["made"].tracks)
        p_musdb = mus / (mus + made)
    n = 600
    k = sum(mixer.spec(i).sources[0].dataset == "musdb" for i in range(n))
    sd = (n * p_musdb * (1 - p_musdb)) ** 0.5
    assert abs(k - n * p_musdb) < 4 * sd, (k, n * p_musdb)  # binomial, 4 sd: p < 1e-4


def test_one_dataset_recipes_name_no_dataset_and_one_name_binds_one_index(data):
    plain = {k: v for k, v in RECIPE.items() if k not in ("datasets", "dataset_mode")}
    spec = Mixer(plain, data["musdb"], seed=0).spec(0)
    assert all(s.dataset == "" for s in spec.sources)
    assert all("dataset" not in s for s in spec.to_dict()["sources"])
    # a dict of one index is that index
    assert Mixer(plain, {"musdb": data["musdb"]}, seed=0).spec(0) == spec
    named = {**plain, "datasets": {"musdb": 1}}
    spec2 = Mixer(named, data["musdb"], seed=0).spec(0)
    assert [s.dataset for s in spec2.sources] == ["musdb"] * 4
    assert [(s.track, s.start, s.gain) for s in spec2.sources] == \
        [(s.track, s.start, s.gain) for s in spec.sources]  # one dataset draws nothing more


@pytest.mark.parametrize("recipe,index,msg", [
    ({**RECIPE, "datasets": {"musdb": 1, "moises": 1}}, "both",
     r"recipe field 'datasets': names made, musdb, but the bound datasets are musdb, made "
     r"\(moises unbound\)|names moises, musdb"),
    (RECIPE, "musdb", r"'datasets': names made, musdb but one index is given"),
    ({k: v for k, v in RECIPE.items() if k not in ("datasets", "dataset_mode")}, "both",
     r"'datasets': missing, and 2 datasets are bound \(musdb, made\)"),
    ({**RECIPE, "datasets": {"musdb": 1, "made": "by_duration"}}, "both",
     r"'datasets': give every dataset a number or every dataset by_duration"),
    ({**RECIPE, "datasets": {"musdb": 0, "made": 1}}, "both",
     r"'datasets.musdb': expected a weight > 0 or by_duration, got 0"),
    ({**RECIPE, "datasets": {"a/b": 1}}, "both", r"'datasets.a/b': a dataset name is letters"),
    ({**RECIPE, "datasets": {"musdb": {"weight": 1, "splt": "x"}, "made": 1}}, "both",
     r"'datasets.musdb.splt': unknown field; known: weight, split"),
    ({**RECIPE, "datasets": {"musdb": {"split": "nope"}, "made": 1}}, "both",
     r"'datasets.musdb.split': split\(s\) \['nope'\] not in the index"),
    ({k: v for k, v in RECIPE.items() if k != "datasets"}, "musdb",
     r"'dataset_mode': only meaningful with datasets:"),
    ({**RECIPE, "stems": {"vocals": {"track": ["choose", ["song0"]]}}}, "both",
     r"'stems.vocals.track': names tracks, which several datasets cannot resolve"),
])
def test_bad_pairings_name_the_field(data, recipe, index, msg):
    ix = indexes(data) if index == "both" else data[index]
    with pytest.raises(RecipeError, match=msg):
        Mixer(recipe, ix)


def test_a_dataset_lacking_a_stem_names_the_taxonomy_option(data, tmp_path):
    raw = Index.open(data["base"] / "made", layout="trackfolder", cache_dir=tmp_path / "c",
                     taxonomy={"vocals": ["voice"], "drums": ["kick"], "bass": ["bassline"]})
    with pytest.raises(RecipeError, match=r"stem 'other' is not in the index of dataset 'made' "
                       r".*--taxonomy made=FILE.yaml"):
        Mixer(RECIPE, {"musdb": data["musdb"], "made": raw})


def test_torch_loader_bit_identical_at_0_and_2_workers(data):
    import torch
    from torch.utils.data import DataLoader

    from stemforge.torch import MixtureDataset

    # index files, as MixtureDataset(recipe, {"musdb": "/data/...", ...}) takes roots too
    files = {k: str(data[k].index_file) for k in ("musdb", "made")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = MixtureDataset(RECIPE, files, length=6, seed=5, return_spec=True)
        assert isinstance(ds.index, IndexSet)
        runs = []
        for workers in (0, 2):
            loader = DataLoader(ds, batch_size=3, num_workers=workers)
            runs.append([b for b in loader])
    for a, b in zip(*runs, strict=True):  # (mix, targets, spec) batches
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert list(a[2]["json"]) == list(b[2]["json"])
    spec = MixSpec.from_json(runs[0][0][2]["json"][0])
    assert {s.dataset for s in spec.sources} <= {"musdb", "made"}


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_regenerate_and_continue_check_every_dataset(data, tmp_path, capsys):
    base = data["base"]
    made = tmp_path / "made"
    shutil.copytree(base / "made", made)
    rp = tmp_path / "two.yaml"
    rp.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "set"
    binds = ["--index", f"musdb={base / 'musdb18'}", "--index", f"made={made}",
             "--layout", "made=trackfolder", "--taxonomy", f"made={data['tax']}",
             "--cache", f"musdb={base / 'c_musdb'}", "--cache", f"made={tmp_path / 'cm'}"]
    code, _, err = cli(capsys, "generate", rp, *binds, "--n", 6, "--out", out, "--no-progress")
    assert code == 0, err
    job = json.loads((out / "stemforge-job.json").read_text())
    assert set(job["index"]["datasets"]) == {"musdb", "made"}
    assert any(k.startswith("made/") for k in job["index"]["tracks"])
    specs = [MixSpec.load(out / f"{i:06d}" / "spec.json") for i in range(6)]
    assert {s.dataset for sp in specs for s in sp.sources} == {"musdb", "made"}
    # the files are the API's bytes: a Mixer over the same two indexes
    mixer = Mixer(RECIPE, {"musdb": data["musdb"],
                           "made": Index.open(made, cache_dir=tmp_path / "cm")}, seed=0)
    import soundfile as sf
    mix0, _ = sf.read(str(out / "000000" / "mixture.wav"), dtype="float32", always_2d=True)
    assert mix0.T.tobytes() == mixer.mixture(0).mix.tobytes()
    code, o, err = cli(capsys, "regenerate", out, "--verify", "--no-progress")
    assert code == 0 and "all 6 items re-render byte-identically" in o, err
    # every bound dataset is named on a re-run; one plain --index is refused
    code, _, err = cli(capsys, "regenerate", out, "--verify", "--no-progress",
                       "--index", base / "musdb18")
    assert code == 2 and "the set was drawn from datasets made, musdb; pass --index made=ROOT, "\
        "--index musdb=ROOT" in one_line_error(err, "regenerate")
    # grows with --continue from the same audio
    code, _, err = cli(capsys, "generate", rp, *binds[:4], "--n", 8, "--out", out,
                       "--no-progress", "--continue")
    assert code == 0, err
    # one stem of one dataset changes: continuing is refused with the track named
    write_wav(made / "song1" / "voice.wav", tone(300, 4.0, seed=99, amp=0.2))
    code, _, err = cli(capsys, "generate", rp, *binds[:4], "--n", 9, "--out", out,
                       "--no-progress", "--continue")
    line = one_line_error(err, "generate")
    assert code == 2 and "other audio" in line and "'made/song1'" in line, line
    assert not (out / "000008").exists()
    code, o, err = cli(capsys, "regenerate", out, "--verify", "--no-progress", *binds[:4])
    assert code == 1 and "made/song1" in err + o
    # a dataset's index file gone: the job file's datasets cannot be opened, one line says how
    (tmp_path / "cm" / "index.jsonl").rename(tmp_path / "moved.jsonl")
    code, _, err = cli(capsys, "regenerate", out, "--verify", "--no-progress")
    assert code == 2 and "pass --index made=ROOT for dataset 'made'" in \
        one_line_error(err, "regenerate")
