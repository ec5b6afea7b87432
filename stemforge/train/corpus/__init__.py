"""A realistic multitrack corpus for experiments: scores rendered with sampled instruments.

``write_corpus(root, songs, seed)`` arranges scores of music21's bundled corpus into four-stem
songs (:mod:`.scores`), plays them through FluidSynth with a General MIDI soundfont and processes
each stem like a mixing engineer (:mod:`.render`), and writes them in the MUSDB18-HQ layout::

    <root>/{train,valid,test}/<NNN composer - title>/{drums,bass,other,vocals,mixture}.wav
    <root>/corpus.json     seed, versions, and per song its score, tempo, programs, excerpt

(float WAV; ``mixture.wav`` is the float32 sum of the four stems). ``stemforge index`` reads it
with the ``musdb18hq`` layout, the ``valid`` folder as split ``valid``.

Song ``k`` is a pure function of ``(seed, k)`` and the installed music21 corpus, FluidSynth and
soundfont: its generator is ``SeedSequence([seed, k])``, and it takes its score from its own
slice of one seeded, composer-balanced order of the candidate scores (slices are disjoint, so
no score is used twice and no score is shared between splits). Songs render in parallel
processes; the same seed gives the same bytes at any number of workers. The Bach chorales (every
file of music21's ``bach`` folder) are never used: they are reserved as a held-out check.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ...errors import StemforgeError
from ...jobs.layout import wav_float32
from ...types import Hz, Seconds
from .render import DEFAULT_SOUNDFONT, STEMS, check_soundfont, render_song
from .scores import COMPOSERS, arrange, candidate_order, candidate_scores, parse_score

__all__ = ["write_corpus", "make_song", "split_counts", "COMPOSERS", "DEFAULT_SOUNDFONT"]
MAX_CANDIDATES = 40   # scores a song tries before giving up


def split_counts(songs: int, valid: int | None = None, test: int | None = None
                 ) -> dict[str, int]:
    """Songs per split: by default 20 % valid and 40 % test (at least 1 each), the rest train."""
    if songs < 3:
        raise StemforgeError(f"corpus: need at least 3 songs (train, valid, test), got {songs}")
    v = max(1, round(0.2 * songs)) if valid is None else int(valid)
    t = max(1, round(0.4 * songs)) if test is None else int(test)
    if v < 0 or t < 0 or songs - v - t < 1:
        raise StemforgeError(f"corpus: {songs} songs cannot hold {v} valid + {t} test songs "
                             "and at least one training song")
    return {"train": songs - v - t, "valid": v, "test": t}


def _title(rel: str) -> str:
    parts = Path(rel).with_suffix("").parts
    composer, rest = parts[0], " ".join(parts[1:])
    safe = "".join(ch if ch.isalnum() or ch in " ._-" else "_" for ch in rest)
    return f"{composer} - {safe}"


def make_song(seed: int, k: int, candidates: list[str], seconds: tuple[Seconds, Seconds],
              sample_rate: Hz, soundfont: str) -> tuple[str, dict[str, np.ndarray], dict]:
    """Song ``k``: ``(name, {stem: float32 (2, T)}, meta)`` from the first of ``candidates``
    that arranges (see :func:`.scores.arrange`)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(k)]))
    tried = []
    for rel in candidates[:MAX_CANDIDATES]:
        score = parse_score(rel)
        name = f"{k:03d} {_title(rel)}"
        song = arrange(score, rng, seconds, name, rel) if score is not None else None
        if song is not None:
            stems = render_song(song, sample_rate, rng, soundfont)
            meta = dict(song.meta, name=name, seconds=round(stems["vocals"].shape[1] / sample_rate, 3),
                        skipped=tried)
            return name, stems, meta
        tried.append(rel)
    raise StemforgeError(f"corpus song {k}: none of {len(tried)} candidate scores could be "
                         f"arranged (first: {tried[:3]})")


def _song_job(seed, k, candidates, seconds, sample_rate, soundfont, folder) -> dict:
    name, stems, meta = make_song(seed, k, candidates, seconds, sample_rate, soundfont)
    d = Path(folder) / name
    d.mkdir(parents=True)
    mix = stems["drums"] + stems["bass"] + stems["other"] + stems["vocals"]
    for stem, audio in (*((s, stems[s]) for s in STEMS), ("mixture", mix)):
        # float WAV without libsndfile's PEAK chunk (it holds a time stamp): same seed, same bytes
        (d / f"{stem}.wav").write_bytes(wav_float32(audio, sample_rate))
    return meta


def write_corpus(root: str | Path, songs: int = 40, seed: int = 0,
                 seconds: tuple[Seconds, Seconds] = (30.0, 90.0), sample_rate: Hz = 44100,
                 valid: int | None = None, test: int | None = None, composers=COMPOSERS,
                 soundfont: str | Path = DEFAULT_SOUNDFONT, workers: int | None = None,
                 progress: bool = True) -> Path:
    """Write the corpus (see module docstring) to ``root`` (must not exist or be empty); returns
    ``root``. Written into a temporary sibling folder renamed at the end, so a failure leaves
    nothing behind. ``seconds``: song length range; ``workers``: processes (default: CPUs, at
    most 2)."""
    root = Path(root)
    counts = split_counts(songs, valid, test)
    lo, hi = float(seconds[0]), float(seconds[1])
    if not 0 < lo <= hi:
        raise StemforgeError(f"corpus: --seconds needs 0 < MIN <= MAX, got {lo} {hi}")
    if not 8000 <= int(sample_rate) <= 96000:
        raise StemforgeError(f"corpus: sample rate {sample_rate} Hz outside 8000..96000")
    soundfont = str(check_soundfont(soundfont))
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise StemforgeError(f"{root}: exists and is not an empty folder; choose a new folder")
    pool = candidate_scores(tuple(composers))
    if len(pool) < songs:
        raise StemforgeError(f"corpus: {len(pool)} candidate scores for {songs} songs")
    order = candidate_order(pool, np.random.default_rng(np.random.SeedSequence([int(seed)])))
    splits = [s for s in ("train", "valid", "test") for _ in range(counts[s])]
    workers = max(1, min(workers or os.cpu_count() or 1, 2, songs))

    from tqdm.auto import tqdm

    import music21

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".partial", dir=root.parent))
    metas: dict[int, dict] = {}
    try:
        args = [(int(seed), k, order[k::songs], (lo, hi), int(sample_rate), soundfont,
                 str(tmp / splits[k])) for k in range(songs)]
        with tqdm(total=songs, desc="corpus", unit="song", disable=not progress) as bar:
            if workers == 1:
                for k, a in enumerate(args):
                    metas[k] = _song_job(*a)
                    bar.update(1)
            else:
                with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
                    futs = {ex.submit(_song_job, *a): k for k, a in enumerate(args)}
                    for f in as_completed(futs):
                        metas[futs[f]] = f.result()
                        bar.update(1)
        manifest = {"generator": "stemforge experiment corpus", "seed": int(seed),
                    "songs": songs, "splits": counts, "seconds": [lo, hi],
                    "sample_rate": int(sample_rate), "soundfont": Path(soundfont).name,
                    "music21": music21.__version__, "composers": list(composers),
                    "excluded": "every score under music21's 'bach' folder (held-out check)",
                    "tracks": [dict(metas[k], split=splits[k]) for k in range(songs)]}
        (tmp / "corpus.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, root)  # also replaces an empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
