"""``export-jams``: one JAMS file per generated item, in Scaper's ``scaper`` namespace, that
Scaper 1.6.5's ``generate_from_jams(path)`` renders as it is (no other argument) to the item's
audio: same gains (to ~1e-6 dB), sample-exact alignment, the mix to float rounding.

``DIR/<id>/mixture.jams`` holds one annotation (namespace ``scaper``) with one observation per
source that was mixed (dropped stems are left out, as Scaper never instantiates them):

=================  ===========================================================================
value field        stemforge source
=================  ===========================================================================
``label``          stem name (Scaper: the foreground folder's label)
``source_file``    the stem's file (with ``--materialize DIR``: ``DIR/<stem>/<track>.wav``)
``source_time``    ``(start + 0.5) / track_sample_rate``: Scaper reads ``int(t * sr)``, which
                   gives back ``start`` exactly (``start / sr`` lands on ``start - 1`` for some
                   starts through float rounding)
``event_time``     the event's first output frame, written the same way (0 for whole-mixture
                   stems)
``event_duration`` the source span Scaper reads, in source seconds: the event's frames, and
                   for a ``time_stretch``/``pitch_tempo`` step the span *before* stretching
``snr``            the level that makes Scaper apply our gain: ``gain_db + L - ref_db`` with
                   ``L`` the source's loudness as Scaper measures it (its processed event,
                   pyloudnorm semantics, floored at -70), for ``snr`` and ``gain_db`` stems
                   alike (for ``snr`` stems it is the drawn ``snr + boost`` up to the error of
                   the stored-energy look-up, see docs/scaper.md); 0 for backgrounds
``role``           ``foreground`` or ``background``
``pitch_shift``    semitones of a ``pitch_shift``/``pitch_tempo`` step, else ``null``
``time_stretch``   Scaper's factor (output length / input length) = ``1 / rate``, else ``null``
=================  ===========================================================================

The sandbox has ``scaper`` (Scaper's synthesis fields: duration, sr, ref_db (-20 when every
stem is levelled by ``gain_db``), n_channels, fades, fix_clipping / peak_normalization and the
scale applied; ``fg_path``/``bg_path`` are existing folders, the common grandparent of the
source files, so that ``generate_from_jams(path, fg_path=NEW)`` relocates ``<label>/<file>``
trees), ``stemforge`` (the complete MixSpec, so the JAMS alone re-renders the item with
``stemforge.render``) and ``stemforge_sources`` (per source, in the observations' order: track id, file, stream index).
Observations are in time order (the ``jams`` package sorts them so; equal times keep the
spec's order), which is the order of Scaper's per-event audio.

What Scaper cannot render is said at export, as warnings: ``.stem.mp4`` streams, summed or
channel-split stems (``--materialize DIR`` writes them as WAV files), sources not laid out as
``<fg_path>/<folder>/<file>`` (renderable, but not relocatable with ``fg_path``).

Written without the ``jams`` package (plain JSON in the JAMS 0.3 schema); the tests validate the
files with ``jams`` and render them with Scaper.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .. import __version__
from ..audio import io, loudness
from ..atomic import write_bytes_atomic, write_text_atomic
from ..errors import StemforgeError
from ..mixing.sample import LOUDNESS_FLOOR
from ..mixing.sources import event_audio
from ..mixing.spec import MixSpec
from .layout import MIX_NAME, SPEC_FILE, JobError, audio_names, item_dir, wav_float32
from .manifest import load_complete

JAMS_FILE = f"{MIX_NAME}.jams"
JAMS_VERSION = "0.3.4"
REF_DB = -20.0
"""``ref_db`` written for items without one (every stem levelled by ``gain_db``)."""


def scaper_time(frames: int, sr: int) -> float:
    """Seconds that Scaper 1.6.5 reads back (``int(t * sr)``) as exactly ``frames``:
    ``(frames + 0.5) / sr``, the middle of the frame, half a frame from either rounding edge.
    A ``source_time`` so written also gives the exact stop ``int((t + n / sr) * sr)`` for a
    span of ``n`` frames (0.0 would not: ``int(n / sr * sr)`` can be ``n - 1``)."""
    return (frames + 0.5) / sr


def _offset_time(frames: int, sr: int) -> float:
    """An ``event_time`` (or fade length) Scaper reads as ``frames``; 0 as 0.0 (Scaper only
    truncates it, nothing is added to it)."""
    return 0.0 if frames == 0 else scaper_time(frames, sr)


def scaper_duration(frames: int, sr: int) -> float:
    """A duration ``d`` with ``int(d * sr) == frames``: ``frames / sr`` when that holds (the
    readable value), else :func:`scaper_time`."""
    d = frames / sr
    return d if int(d * sr) == frames else scaper_time(frames, sr)


def _pitch_stretch(steps: list[dict]) -> tuple[float | None, float | None]:
    """Scaper's ``pitch_shift`` (semitones) and ``time_stretch`` (duration factor, the
    reciprocal of our speed) of a source's steps, as applied: a ``cached`` step contributes the
    grid point it read (``variant``), not the drawn value; a ``quick`` (tape) step moves pitch
    and tempo together."""
    pitch = stretch = None

    def add(semitones: float | None, speed: float | None) -> None:
        nonlocal pitch, stretch
        if semitones is not None:
            pitch = (pitch or 0.0) + float(semitones)
        if speed:
            stretch = (stretch or 1.0) / float(speed)

    for st in steps:
        kind = st.get("step")
        if kind not in ("pitch_shift", "time_stretch", "pitch_tempo"):
            continue
        mode = st.get("mode")
        if mode == "cached" and isinstance(st.get("variant"), dict):
            v = st["variant"]
            add(v.get("semitones") if kind != "time_stretch" else None,
                v.get("tempo") if kind != "pitch_shift" else None)
        elif mode == "quick":  # a tape speed change: both move
            if kind == "pitch_shift" and st.get("semitones") is not None:
                s = float(st["semitones"])
                add(s, 2.0 ** (s / 12.0))
            elif kind == "time_stretch" and st.get("rate"):
                r = float(st["rate"])
                add(12.0 * math.log2(r), r)
        else:
            add(st.get("semitones") if kind != "time_stretch" else None,
                st.get("tempo") if kind == "pitch_tempo" else
                st.get("rate") if kind == "time_stretch" else None)
    return pitch, stretch


class _Sources:
    """Where each (track, stem) is read from in the JAMS: its own file, or with ``materialize``
    a decoded WAV ``<materialize>/<stem>/<track id, '/' -> '__'>.wav`` (Scaper's layout),
    written once per export."""

    def __init__(self, index, materialize: Path | None):
        self.index, self.dir = index, materialize
        self.written: dict[tuple[str, str], str] = {}
        self.warnings: list[str] = []

    def path(self, track_id: str, stem_name: str) -> tuple[str, object]:
        stem = self.index.track(track_id).stems[stem_name]
        if self.dir is None:
            if stem.stream is not None or io.is_mp4(stem.path):
                self._warn(f"{stem.path}: a .stem.mp4 stream, which Scaper (libsndfile) cannot "
                           "read; these JAMS are not Scaper-renderable (use --materialize DIR)")
            elif stem.extra_paths or stem.channel is not None:
                self._warn(f"{stem.path}: stem {stem_name!r} of track {track_id!r} is "
                           f"{'summed from several files' if stem.extra_paths else 'one channel of a file'}"
                           "; Scaper reads the file as it is (use --materialize DIR)")
            return str(stem.path), stem
        key = (track_id, stem_name)
        if key not in self.written:
            path = self.dir / stem_name / (track_id.replace("/", "__") + ".wav")
            track = self.index.track(track_id)
            audio = self.index.read(track_id, stem_name, 0, track.frames)
            write_bytes_atomic(path, wav_float32(audio, stem.sample_rate), fsync=False)
            self.written[key] = str(path)
        return self.written[key], stem

    def _warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)


def _root(files: list[str], what: str, warn) -> str:
    """The folder Scaper's ``fg_path``/``bg_path`` should name: the files' common grandparent
    (``<root>/<folder>/<file>``, what Scaper relocates); else their common folder, with a
    warning."""
    grand = {os.path.dirname(os.path.dirname(os.path.abspath(f))) for f in files}
    if len(grand) == 1:
        return grand.pop()
    common = os.path.commonpath([os.path.abspath(f) for f in files])
    common = common if os.path.isdir(common) else os.path.dirname(common)
    warn(f"{what} sources are not all <{what}_path>/<folder>/<file> under one folder "
         f"(Scaper renders the JAMS as they are, but cannot relocate them with {what}_path; "
         "--materialize DIR lays them out so)")
    return common


def spec_to_jams(spec: MixSpec, index, mixture_path: str = "", sources: _Sources | None = None,
                 ) -> dict:
    """One item's spec -> a JAMS document (plain dict in the JAMS 0.3 schema). Reads each
    source's event audio to measure its loudness as Scaper will (see the module doc)."""
    sources = sources or _Sources(index, None)
    sr, C, T = spec.sample_rate, spec.channels, spec.frames
    ref_db = REF_DB if spec.ref_db is None else float(spec.ref_db)
    data, where, files = [], [], {"foreground": [], "background": []}
    fades = set()
    for s in spec.sources:
        if s.dropped:
            continue
        try:
            source_file, stem = sources.path(s.track, s.stem)
        except (KeyError, StemforgeError) as e:
            raise JobError(f"item {spec.item}: stem {s.stem!r} of track {s.track!r} is not in "
                           f"the index of {index.root} ({e})") from None
        where.append({"stem": s.stem, "track": s.track, "path": str(stem.path),
                      "stream": stem.stream})
        files[s.role].append(source_file)
        sr_t = s.track_sample_rate or sr
        n_out = s.frames_out(T)
        pitch, stretch = _pitch_stretch(s.steps)
        n_src = n_out / (stretch or 1.0) * sr_t / sr  # the span Scaper reads, before stretching
        level = max(loudness.event_loudness(event_audio(index, s, sr, C, T), sr), LOUDNESS_FLOOR)
        if s.role == "background":
            snr = 0.0
            if abs(s.gain_db - (ref_db - level)) > 1e-3:
                sources._warn(f"item {spec.item}: background {s.key!r} is not at ref_db "
                              f"(Scaper normalises backgrounds to ref_db; it renders it "
                              f"{ref_db - level - s.gain_db:+.3f} dB off)")
        else:
            snr = s.gain_db + level - ref_db
            fades.add((s.fade_in, s.fade_out))
        value = {"label": s.stem, "source_file": source_file,
                 "source_time": scaper_time(s.start, sr_t),
                 "event_time": _offset_time(s.offset, sr),
                 "event_duration": round(n_src) / sr_t if s.role == "foreground"
                 else scaper_duration(T, sr),
                 "snr": snr, "role": s.role, "pitch_shift": pitch, "time_stretch": stretch}
        data.append({"time": s.offset / sr, "duration": n_out / sr, "value": value,
                     "confidence": 1.0})
    # in time order, as the jams package keeps observations (stable for equal times): Scaper's
    # per-event audio then comes in this order
    order = sorted(range(len(data)), key=lambda k: data[k]["time"])
    data, where = [data[k] for k in order], [where[k] for k in order]
    if len(fades) > 1:
        sources._warn(f"item {spec.item}: foreground events have different fades "
                      f"{sorted(fades)}; Scaper applies one fade to all (the first's is written)")
    fade_in, fade_out = min(fades) if fades else (0, 0)
    change = 20 * math.log10(spec.scale) if spec.scale and spec.scale > 0 else None
    fg_path = _root(files["foreground"], "fg", sources._warn) if files["foreground"] else None
    bg_path = _root(files["background"], "bg", sources._warn) if files["background"] else None
    dur = scaper_duration(T, sr)
    scaper = {
        "duration": dur, "original_duration": dur,
        "fg_path": fg_path or bg_path or str(index.root),
        "bg_path": bg_path or fg_path or str(index.root),  # Scaper lists both: existing folders
        "fg_labels": sorted({s.stem for s in spec.sources if s.role == "foreground"}),
        "bg_labels": sorted({s.stem for s in spec.sources if s.role == "background"}),
        "protected_labels": [], "sr": sr, "ref_db": ref_db,
        "n_channels": C, "fade_in_len": _offset_time(fade_in, sr),
        "fade_out_len": _offset_time(fade_out, sr),
        "n_events": len(data), "polyphony_max": len(data), "reverb": None,
        "fix_clipping": spec.clipping == "fix_clipping",
        "peak_normalization": spec.clipping == "peak_normalize", "quick_pitch_time": False,
        "peak_normalization_scale_factor": spec.scale, "ref_db_change": change,
        "ref_db_generated": None if change is None else ref_db + change,
        "soundscape_audio_path": mixture_path, "scaper_version": None,
    }
    ann = {
        "annotation_metadata": {
            "curator": {"name": "", "email": ""}, "annotator": {}, "version": __version__,
            "corpus": "", "annotation_tools": f"stemforge {__version__}",
            "annotation_rules": "", "validation": "", "data_source": "stemforge generate"},
        "namespace": "scaper", "data": data,
        "sandbox": {"scaper": scaper, "stemforge": spec.to_dict(), "stemforge_sources": where},
        "time": 0.0, "duration": T / sr,
    }
    return {"annotations": [ann],
            "file_metadata": {"title": f"{spec.recipe_name} item {spec.item}", "artist": "",
                              "release": "", "duration": T / sr, "identifiers": {},
                              "jams_version": JAMS_VERSION},
            "sandbox": {}}


def export_jams(out, *, index=None, materialize=None, layout: str | None = None,
                progress: bool = False) -> tuple[list[Path], list[str]]:
    """Write ``<id>/mixture.jams`` for every item of the set in ``out``. All items must be
    complete (checked before anything is written). ``materialize``: a folder for the sources
    as WAV files in Scaper's ``<label>/<file>`` layout, which the JAMS then name. Returns the
    files written and the warnings (what Scaper cannot render or relocate). ``index``: the
    dataset to use instead of the job file's (root, index file or Index; ``layout`` as in
    ``Index.open``); ``progress``: progress bar or lines on stderr."""
    from ..index import Index
    from ..progress import progress as progress_bar

    out = Path(out)
    job = load_complete(out)
    if index is None:
        if not Path(job.index_file).is_file():
            raise JobError(f"{out}: the index named in its job file is missing "
                           f"({job.index_file}); pass --index with the dataset root or index file")
        index = Index.load(job.index_file, refresh=False)
    elif not hasattr(index, "tracks"):
        index = Index.open(Path(index), layout=layout)
    sources = _Sources(index, None if materialize is None else Path(materialize).resolve())
    docs = []
    try:
        with progress_bar(job.n, "export-jams (read specs)", "item", enabled=progress) as bar:
            for i in range(job.n):
                spec = MixSpec.load(item_dir(out, i) / SPEC_FILE)
                mix = audio_names(spec.targets, job.format)[0]
                docs.append(spec_to_jams(spec, index, str(item_dir(out, i).resolve() / mix),
                                         sources))
                bar.update(1)
        written = []
        with progress_bar(job.n, "export-jams", "item", enabled=progress) as bar:
            for i, doc in enumerate(docs):
                written.append(write_text_atomic(
                    item_dir(out, i) / JAMS_FILE, json.dumps(doc, indent=1, allow_nan=False)
                    + "\n"))
                bar.update(1)
    except OSError as e:
        from .generate import io_error

        raise io_error(e, out) from e
    return written, sources.warnings
