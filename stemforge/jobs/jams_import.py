"""``import-jams``: Scaper JAMS -> MixSpecs -> a rendered set (the audio Scaper would render).

Each JAMS's ``scaper`` annotation becomes one spec, read as Scaper 1.6.5's
``generate_from_jams`` reads it:

* ``duration``/``sr``/``n_channels``/``ref_db``/``fade_in_len``/``fade_out_len``/
  ``fix_clipping``/``peak_normalization`` of the sandbox: the spec's length (``int(duration *
  sr)`` frames), format, fades (``int(len * sr)`` frames, foreground events only), clipping;
* per observation: the source file is found in the index (by path, else as Scaper relocates:
  ``<label folder>/<file name>`` under the index root, so ``--index ROOT`` plays Scaper's
  ``fg_path``/``bg_path``); it reads ``int(source_time * sr)`` .. ``int((source_time +
  event_duration) * sr)`` (cut at the file's end), places the event at ``int(sr * event_time)``;
  a background is looped to the mixture's length;
* the gain is Scaper's: ``ref_db + snr - max(L, -70)`` (backgrounds: ``ref_db - max(L, -70)``),
  ``L`` the event's loudness measured on its audio (pyloudnorm semantics, events under 0.5 s
  tiled as Scaper does);
* every label is a target (its events summed), in the order labels first appear.

``pitch_shift``/``time_stretch`` become a ``pitch_tempo`` step (Rubber Band, mode hq): the
same parameters, but not Scaper's sox audio. Sources at another sample rate are resampled with
soxr (Scaper: sox). Scaper's reverb is refused.

Output: ``OUT/<id>/mixture.wav``, ``<label>.wav`` per label, ``spec.json`` (re-renders with
``stemforge.render``) and ``source.jams`` (a copy of the input), one item per JAMS in the order
given.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import replace
from pathlib import Path

from .. import __version__
from ..audio import loudness
from ..augment.chain import source_frames
from ..errors import StemforgeError
from ..mixing.render import render
from ..mixing.sample import LOUDNESS_FLOOR
from ..mixing.sources import event_audio
from ..mixing.spec import MixSpec, SourceSpec
from .generate import write_item
from .layout import JobError, item_arrays, item_dir


class JamsError(StemforgeError):
    """A JAMS file that is not a Scaper annotation this importer can render."""


def _load(path: Path) -> tuple[dict, list[dict]]:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise JamsError(f"{path}: file not found") from None
    except (OSError, ValueError) as e:
        raise JamsError(f"{path}: not a readable JAMS file ({e})") from None
    anns = [a for a in doc.get("annotations", []) if a.get("namespace") == "scaper"]
    if not anns:
        raise JamsError(f"{path}: no annotation in the 'scaper' namespace")
    ann = anns[0]
    sandbox = (ann.get("sandbox") or {}).get("scaper")
    if not isinstance(sandbox, dict):
        raise JamsError(f"{path}: the scaper annotation has no sandbox.scaper fields")
    data = ann.get("data") or []
    if isinstance(data, dict):  # the jams column layout
        keys = list(data)
        data = [dict(zip(keys, row)) for row in zip(*(data[k] for k in keys))]
    return sandbox, data


class _Finder:
    """Source file -> (track id, stem) of the index: by real path, else by Scaper's relocation
    rule (``<parent folder name>/<file name>``)."""

    def __init__(self, index):
        self.by_path, self.by_tail = {}, {}
        for t in index.tracks:
            for name, s in t.stems.items():
                if s.stream is not None or s.extra_paths or s.channel is not None:
                    continue  # not a file Scaper could name
                self.by_path[os.path.realpath(s.path)] = (t, name)
                p = Path(s.path)
                self.by_tail[(p.parent.name, p.name)] = (t, name)
        self.root = index.root

    def __call__(self, source_file: str, where: str):
        got = self.by_path.get(os.path.realpath(source_file))
        if got is None:
            p = Path(source_file)
            got = self.by_tail.get((p.parent.name, p.name))
        if got is None:
            raise JamsError(f"{where}: source_file {source_file!r} is not in the index of "
                            f"{self.root} (looked for it and for <label>/<file> under the root)")
        return got


def _num(v, name: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise JamsError(f"{where}: {name} must be a number, got {v!r}")
    return float(v)


def jams_to_spec(path: Path, index, item: int = 0) -> MixSpec:
    """One Scaper JAMS -> a MixSpec with Scaper's gains (see the module doc)."""
    sandbox, data = _load(path)
    where = str(path)
    if sandbox.get("reverb") not in (None, 0, 0.0):
        raise JamsError(f"{where}: reverb {sandbox['reverb']!r} is Scaper's sox reverb on the "
                        "mixture; not supported (it breaks mixture = sum of sources)")
    sr = int(_num(sandbox.get("sr", 44100), "sr", where))
    C = int(_num(sandbox.get("n_channels", 1), "n_channels", where))
    dur = _num(sandbox.get("original_duration", sandbox.get("duration")), "duration", where)
    T = int(dur * sr)
    ref_db = _num(sandbox.get("ref_db"), "ref_db", where)
    fade_in = int(_num(sandbox.get("fade_in_len", 0.0), "fade_in_len", where) * sr)
    fade_out = int(_num(sandbox.get("fade_out_len", 0.0), "fade_out_len", where) * sr)
    clipping = "peak_normalize" if sandbox.get("peak_normalization") else \
        "fix_clipping" if sandbox.get("fix_clipping") else "none"
    find = _Finder(index)
    sources, labels, count = [], [], {}
    for k, obs in enumerate(data):
        v = obs.get("value") or {}
        at = f"{where}: observation {k}"
        label, role = v.get("label"), v.get("role")
        if role not in ("foreground", "background") or not isinstance(label, str):
            raise JamsError(f"{at}: expected a label and role foreground/background, got "
                            f"{label!r}/{role!r}")
        track, stem_name = find(str(v.get("source_file")), at)
        stem = track.stems[stem_name]
        sr_t = stem.sample_rate
        st = _num(v.get("source_time"), "source_time", at)
        ed = _num(v.get("event_duration"), "event_duration", at)
        start = int(st * sr_t)
        n_src = min(int((st + ed) * sr_t), track.frames) - start
        if start < 0 or n_src < 1:
            raise JamsError(f"{at}: source_time {st} + event_duration {ed} is outside "
                            f"{stem.path} ({track.frames / sr_t:.3f} s)")
        steps, offset, frames = [], 0, T
        if role == "foreground":
            pitch, stretch = v.get("pitch_shift"), v.get("time_stretch")
            frames = int(n_src * sr / sr_t)
            if pitch is not None or stretch is not None:
                tempo = 1.0 / _num(stretch, "time_stretch", at) if stretch is not None else 1.0
                steps = [{"step": "pitch_tempo", "mode": "hq",
                          "semitones": 0.0 if pitch is None else _num(pitch, "pitch_shift", at),
                          "tempo": tempo}]
                frames = int(n_src * sr / sr_t / tempo)
            offset = int(sr * _num(v.get("event_time", 0.0), "event_time", at))
        if steps:
            n_src = source_frames(steps, frames)
            if start + n_src > track.frames:
                raise JamsError(f"{at}: pitch/tempo needs {n_src} frames of {stem.path} from "
                                f"{start}; it has {track.frames}")
        if label not in labels:
            labels.append(label)
        event = count.get(label, 0)
        count[label] = event + 1
        sources.append(SourceSpec(
            stem=stem_name, target=label, track=track.id, start=start, source_frames=n_src,
            gain_db=0.0, gain=1.0, level="snr", track_sample_rate=sr_t, steps=steps,
            event=event, offset=min(offset, T), event_frames=None if offset + frames == T
            else frames, fade_in=fade_in if role == "foreground" else 0,
            fade_out=fade_out if role == "foreground" else 0, role=role,
            snr=0.0 if role == "background" else _num(v.get("snr"), "snr", at)))
    if not sources:
        raise JamsError(f"{where}: the annotation has no events")
    if any(s.stem != s.target for s in sources):
        raise JamsError(f"{where}: labels must be stems of the index (Scaper's label folders); "
                        f"got {sorted({(s.target, s.stem) for s in sources if s.stem != s.target})}")
    for k, s in enumerate(sources):
        level = float(loudness.event_loudness(event_audio(index, s, sr, C, T), sr))
        gain_db = ref_db + s.snr - max(level, LOUDNESS_FLOOR)
        sources[k] = replace(s, loudness=level, gain_db=gain_db,
                             gain=float(10.0 ** (gain_db / 20.0)))
    return MixSpec(sample_rate=sr, channels=C, frames=T, mode="scaper", targets=labels,
                   sources=sources, ref_db=ref_db, clipping=clipping, scale=None, item=item,
                   recipe_name=f"scaper:{Path(path).name}", version=__version__)


def import_jams(paths, index, out, fmt: str = "wav") -> list[Path]:
    """Render every JAMS of ``paths`` into ``out`` (one item each, in order). Returns the item
    folders. Every JAMS is read and checked before anything is written."""
    from ..index import Index

    if not hasattr(index, "tracks"):
        index = Index.open(Path(index))
    out = Path(out)
    specs = [jams_to_spec(Path(p), index, i) for i, p in enumerate(paths)]
    if out.exists() and any(out.iterdir()):
        raise JobError(f"{out}: output folder is not empty")
    dirs = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for i, (p, spec) in enumerate(zip(paths, specs, strict=True)):
            r = render(spec, index)
            write_item(out, i, spec.rendered(r.scale, r.peak),
                       item_arrays(spec, r), fmt, fsync=False)
            shutil.copyfile(p, item_dir(out, i) / "source.jams")
            dirs.append(item_dir(out, i))
    except OSError as e:
        from .generate import io_error

        raise io_error(e, out) from e
    return dirs
