"""``export-jams``: one JAMS file per generated item, in Scaper's ``scaper`` namespace.

``DIR/<id>/mixture.jams`` holds one annotation (namespace ``scaper``) with one observation per
stem that was mixed (dropped stems are left out, as Scaper never instantiates them):

=================  ===========================================================================
value field        stemforge source
=================  ===========================================================================
``label``          stem name (Scaper: the foreground folder's label)
``source_file``    the stem's file in the index (for ``.stem.mp4`` the container; its stream
                   index is in the sandbox's ``stemforge_sources``)
``source_time``    ``start / track_sample_rate`` seconds
``event_time``     0 (every stem spans the whole mixture, as in the seed tutorial)
``event_duration`` the mixture's duration
``snr``            loudness relative to ``ref_db`` after gain: ``snr + boost`` (Scaper adds the
                   target boost to the SNR); absent for stems levelled by ``gain_db``
``role``           ``foreground``
``pitch_shift``    semitones of a ``pitch_shift``/``pitch_tempo`` step, else ``null``
``time_stretch``   Scaper's factor (output length / input length) = ``1 / rate``, else ``null``
=================  ===========================================================================

The annotation sandbox has ``scaper`` (Scaper's synthesis fields: duration, sr, ref_db,
n_channels, fix_clipping / peak_normalization and the scale applied, ...), ``stemforge`` (the
complete MixSpec, so the JAMS file alone re-renders the item with ``stemforge.render``) and
``stemforge_sources`` (per mixed stem: track id, file, stream index inside a container).

Written without the ``jams`` package (plain JSON in the JAMS 0.3 schema); the tests validate the
files with ``jams``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .. import __version__
from ..errors import StemforgeError
from ..mixing.spec import MixSpec
from ..atomic import write_text_atomic
from .layout import MIX_NAME, SPEC_FILE, JobError, audio_names, item_dir
from .manifest import load_complete

JAMS_FILE = f"{MIX_NAME}.jams"
JAMS_VERSION = "0.3.4"


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


def spec_to_jams(spec: MixSpec, index, mixture_path: str = "") -> dict:
    """One item's spec -> a JAMS document (plain dict in the JAMS 0.3 schema)."""
    dur = spec.duration
    data, where = [], []
    for s in spec.sources:
        if s.dropped:
            continue
        try:
            stem = index.track(s.track).stems[s.stem]
            source_file = str(stem.path)
            where.append({"stem": s.stem, "track": s.track, "path": source_file,
                          "stream": stem.stream})
        except (KeyError, StemforgeError) as e:
            raise JobError(f"item {spec.item}: stem {s.stem!r} of track {s.track!r} is not in "
                           f"the index of {index.root} ({e})") from None
        pitch, stretch = _pitch_stretch(s.steps)
        value = {"label": s.stem, "source_file": source_file,
                 "source_time": s.start / (s.track_sample_rate or spec.sample_rate),
                 "event_time": 0.0, "event_duration": dur, "role": "foreground",
                 "pitch_shift": pitch, "time_stretch": stretch}
        if s.level == "snr" and s.snr is not None:
            value["snr"] = float(s.snr) + float(s.boost)
        data.append({"time": 0.0, "duration": dur, "value": value, "confidence": 1.0})
    change = 20 * math.log10(spec.scale) if spec.scale > 0 else None
    scaper = {
        "duration": dur, "original_duration": dur, "fg_path": str(index.root), "bg_path": None,
        "fg_labels": sorted({s.stem for s in spec.sources}), "bg_labels": [],
        "protected_labels": [], "sr": spec.sample_rate, "ref_db": spec.ref_db,
        "n_channels": spec.channels, "fade_in_len": 0.0, "fade_out_len": 0.0,
        "n_events": len(data), "polyphony_max": len(data), "reverb": None,
        "fix_clipping": spec.clipping == "fix_clipping",
        "peak_normalization": spec.clipping == "peak_normalize",
        "peak_normalization_scale_factor": spec.scale, "ref_db_change": change,
        "ref_db_generated": None if spec.ref_db is None or change is None
        else spec.ref_db + change,
        "soundscape_audio_path": mixture_path, "scaper_version": None,
    }
    ann = {
        "annotation_metadata": {
            "curator": {"name": "", "email": ""}, "annotator": {}, "version": __version__,
            "corpus": "", "annotation_tools": f"stemforge {__version__}",
            "annotation_rules": "", "validation": "", "data_source": "stemforge generate"},
        "namespace": "scaper", "data": data,
        "sandbox": {"scaper": scaper, "stemforge": spec.to_dict(), "stemforge_sources": where},
        "time": 0.0, "duration": dur,
    }
    return {"annotations": [ann],
            "file_metadata": {"title": f"{spec.recipe_name} item {spec.item}", "artist": "",
                              "release": "", "duration": dur, "identifiers": {},
                              "jams_version": JAMS_VERSION},
            "sandbox": {}}


def export_jams(out, *, index=None, layout: str | None = None,
                progress: bool = False) -> list[Path]:
    """Write ``<id>/mixture.jams`` for every item of the set in ``out``. All items must be
    complete (checked before anything is written). Returns the files written. ``index``: the
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
    docs = []
    with progress_bar(job.n, "export-jams (read specs)", "item", enabled=progress) as bar:
        for i in range(job.n):
            spec = MixSpec.load(item_dir(out, i) / SPEC_FILE)
            mix = audio_names(spec.targets, job.format)[0]
            docs.append(spec_to_jams(spec, index, str(item_dir(out, i).resolve() / mix)))
            bar.update(1)
    written = []
    try:
        with progress_bar(job.n, "export-jams", "item", enabled=progress) as bar:
            for i, doc in enumerate(docs):
                written.append(write_text_atomic(
                    item_dir(out, i) / JAMS_FILE, json.dumps(doc, indent=1, allow_nan=False)
                    + "\n"))
                bar.update(1)
    except OSError as e:
        from .generate import io_error

        raise io_error(e, out) from e
    return written
