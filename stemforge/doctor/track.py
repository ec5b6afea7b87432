"""Every check of one track, from its raw files.

The doctor reads a track's files as the layout lists them (:class:`~stemforge.layouts.base.
TrackEntry`), not through the Index: the index trims stems of slightly different lengths and
refuses tracks whose stems differ in rate or length, and those are exactly what the doctor must
report. :func:`check_track` decodes every source once, then

1. compares the sources' rates, channel counts and lengths;
2. scans each source on its own (silence, dropouts, clipping, DC; :mod:`.source`);
3. brings every source to the track's common rate and channel count (only sources that differ
   are converted) and computes, from the decimated signals, the short-time spectra
   (:mod:`.frames`), the relations between stems and mixture (:mod:`.relation`), bleed
   (:mod:`.bleed`), label rules (:mod:`.labels`) and fingerprints (:mod:`.fingerprint`);
4. turns the measurements into findings; a finding another one explains (a mixture residual
   where a stem drops out, or because a stem is a copy of another) is kept as ``info``.

Duplicates need every track's fingerprints at once; :mod:`.run` matches them afterwards.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..analyze import LENGTH_TOLERANCE, decode_source
from ..audio import dsp, io
from ..errors import AudioError
from ..layouts.base import TrackEntry
from . import bleed as bleed_mod
from . import frames as fr
from . import labels
from .fingerprint import Fingerprint, landmarks
from .findings import Finding, merge_spans, overlaps
from .options import Options
from .relation import STATE_NAMES, relate
from .scan import scan
from .source import SourceFacts, check_source

MIXTURE = "mixture"
BASE_PERCENTILE = 20
REVERSE_RATIO = 0.25  # bleed k <- j is dropped when j <- k has 4x its significance


@dataclass
class TrackResult:
    """Findings, facts (plain JSON data) and fingerprints of one track."""

    dataset: str
    track: str
    split: str | None
    findings: list[Finding] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    prints: dict[str, Fingerprint] = field(default_factory=dict)
    seconds: float = 0.0


def block_size(sr: int, q: int) -> int:
    """The 20 ms scan block at ``sr``, a multiple of the decimation ``q``."""
    return q * max(1, int(round(sr / (fr.FPS * q))))


class _Track:
    """State of one track's check (used only inside :func:`check_track`)."""

    def __init__(self, entry: TrackEntry, dataset: str, opts: Options):
        self.entry = entry
        self.dataset = dataset
        self.opts = opts
        self.res = TrackResult(dataset, entry.id, entry.split)

    def add(self, kind, severity, stem, message, action="none", spans=None, **detail):
        self.res.findings.append(Finding(kind, severity, self.dataset, self.entry.id, stem,
                                         message, action, spans or [], detail))


@dataclass
class Samples:
    """A source's samples as stored: ``data (T, C)`` (int16, int32 or float32), ``scale`` to
    full scale 1.0, and the rate."""

    data: np.ndarray
    scale: float
    rate: int

    @property
    def frames(self) -> int:
        return self.data.shape[0]

    @property
    def channels(self) -> int:
        return self.data.shape[1]

    def float_planar(self) -> np.ndarray:
        """float32 ``(C, T)`` at full scale (a copy)."""
        return np.ascontiguousarray((self.data.astype(np.float32) * np.float32(self.scale)).T)


PCM = {"PCM_16": (np.int16, 2.0 ** -15), "PCM_S8": (np.int16, 2.0 ** -15),
       "PCM_U8": (np.int16, 2.0 ** -15), "PCM_24": (np.int32, 2.0 ** -31),
       "PCM_32": (np.int32, 2.0 ** -31)}


def read_source(ref, mp4: dict) -> Samples:
    """A source's samples. A plain WAV/FLAC/... file is read with one soundfile call in its own
    sample type (16-bit PCM as int16, 24/32-bit as int32, else float32; the scan converts and
    checks finiteness); anything else (stem.mp4 streams, summed files, one channel of a file)
    goes through the index's decoder."""
    if not ref.extra_paths and ref.channel is None and not io.is_mp4(ref.path):
        import soundfile as sf

        try:
            info = sf.info(ref.path)
            dtype, scale = PCM.get(info.subtype, (np.float32, 1.0))
            data, sr = sf.read(ref.path, dtype=np.dtype(dtype).name, always_2d=True)
        except Exception as e:  # soundfile raises LibsndfileError / RuntimeError
            raise AudioError(f"{ref.path}: not a readable audio file ({e})") from e
        return Samples(data, scale, int(sr))
    a, sr = decode_source(ref, mp4)
    return Samples(np.ascontiguousarray(a.T, dtype=np.float32), 1.0, int(sr))


def _decode(t: _Track) -> dict[str, Samples]:
    sources = dict(t.entry.stems)
    if t.entry.mixture is not None:
        sources[MIXTURE] = t.entry.mixture
    audio, mp4 = {}, {}
    for name, ref in sources.items():
        try:
            a = read_source(ref, mp4)
            if a.frames == 0:
                raise AudioError(f"{ref.path}: holds no samples")
            audio[name] = a
        except AudioError as e:
            t.add("unreadable", "error", name, str(e), "exclude_track", path=ref.path)
    return audio


def _consistency(t: _Track, audio) -> int:
    """Rate, channel and length findings; returns the track's working rate."""
    rates = {n: a.rate for n, a in audio.items()}
    common = Counter(rates.values()).most_common()
    top = max(c for _, c in common)
    work = max(r for r, c in common if c == top)
    if len(common) > 1:
        for n, r in rates.items():
            if r != work:
                t.add("rate_mismatch", "error", n,
                      f"{n} is at {r} Hz, the rest of the track at {work} Hz (the index refuses "
                      "this track; resample the file)", "exclude_track", rate=r, track_rate=work)
    chans = {n: a.channels for n, a in audio.items()}
    if len(set(chans.values())) > 1:
        t.add("channel_count", "warning", None,
              "sources have different channel counts: " + ", ".join(f"{n}={c}" for n, c in
                                                                     chans.items()),
              "review", channels=chans)
    secs = {n: a.frames / a.rate for n, a in audio.items()}
    frames_at_work = {n: int(round(s * work)) for n, s in secs.items()}
    lo, hi = min(frames_at_work.values()), max(frames_at_work.values())
    if hi > lo:
        short = [n for n, f in frames_at_work.items() if f == lo]
        if hi - lo > LENGTH_TOLERANCE:
            t.add("length_mismatch", "error", short[0] if len(short) == 1 else None,
                  f"sources differ in length by {(hi - lo) / work:.3f} s "
                  f"({', '.join(f'{n}={s:.3f} s' for n, s in secs.items())}); the index refuses "
                  "this track", "exclude_track", seconds=secs)
        else:
            t.add("length_mismatch", "info", short[0] if len(short) == 1 else None,
                  f"sources differ in length by {hi - lo} frames (the index trims them)",
                  "none", seconds=secs)
    return work


def _source_findings(t: _Track, name: str, f: SourceFacts) -> None:
    o = t.opts
    is_mix = name == MIXTURE
    if f.silent:
        what = "digitally silent" if f.digital_silence else f"silent (peak {f.peak_db:.1f} dBFS)"
        if is_mix:
            t.add("silence", "error", name, f"the mixture is {what}", "exclude_track",
                  digital=f.digital_silence, peak_db=f.peak_db)
        else:
            t.add("silence", "warning", name, f"stem {name} is {what} over the whole track",
                  "exclude_stem", digital=f.digital_silence, peak_db=f.peak_db)
        return
    if f.dropouts:
        total = sum(b - a for a, b in f.dropouts)
        t.add("silence", "warning", name,
              f"{name}: {len(f.dropouts)} dropout(s) of digital silence cutting into sound "
              f"({total:.2f} s)", "exclude_span", f.dropouts, dropouts=len(f.dropouts))
    if f.clip_spans:
        covered = sum(b - a for a, b in f.clip_spans)
        dur = f.frames / f.sample_rate
        action = "review" if is_mix else ("exclude_stem" if covered > 0.5 * dur else "exclude_span")
        t.add("clipping", "warning", name,
              f"{name}: {f.clip_runs} runs of samples stuck at the peak ({f.peak_db:.1f} dBFS)",
              action, f.clip_spans, runs=f.clip_runs, peak_db=f.peak_db)
    worst = max(f.dc, key=abs) if f.dc else 0.0
    if abs(worst) >= o.dc_offset:
        t.add("dc_offset", "warning", name,
              f"{name}: DC offset {worst:+.4f} ({20 * np.log10(abs(worst)):.1f} dBFS)", "fix",
              dc=[round(v, 6) for v in f.dc])


def check_track(entry: TrackEntry, dataset: str, opts: Options | None = None) -> TrackResult:
    """Run every per-track check on ``entry`` (see the module docstring)."""
    opts = opts or Options()
    t = _Track(entry, dataset, opts)
    audio = _decode(t)
    stems = [n for n in entry.stems if n in audio]
    if not audio:
        return t.res
    work = _consistency(t, audio)
    q = fr.decimation(work)
    rate_d = work / q
    facts: dict[str, SourceFacts] = {}
    decs: dict[str, np.ndarray] = {}
    for name, a in list(audio.items()):
        sr = a.rate
        s = scan(a.data, block_size(sr, fr.decimation(sr)), fr.decimation(sr), a.scale)
        if not np.isfinite(s.squares).all():
            t.add("unreadable", "error", name, f"{_path(entry, name)}: holds NaN or infinite "
                  "samples", "exclude_track", path=_path(entry, name))
            del audio[name]
            continue
        facts[name] = check_source(name, a.data, a.scale, sr, s, opts)
        _source_findings(t, name, facts[name])
        if sr != work:  # bring it to the track's rate for the joint checks
            res = dsp.resample(a.float_planar(), sr, work)
            s = scan(np.ascontiguousarray(res.T), block_size(work, q), q)
        decs[name] = s.dec
    if not audio:
        return t.res
    stems = [k for k in stems if k in audio]
    t.res.seconds = max(a.frames / a.rate for a in audio.values())
    t.res.facts["sources"] = {n: {**f.to_dict(), **_where(entry, n)} for n, f in facts.items()}
    C = max(d.shape[0] for d in decs.values())
    decs = {n: (np.repeat(d, C, axis=0) if d.shape[0] == 1 and C > 1 else d)
            for n, d in decs.items()}
    if any(d.shape[0] != C for d in decs.values()):
        decs = {n: np.repeat(d.mean(axis=0, keepdims=True), C, axis=0) for n, d in decs.items()}
    n = min(d.shape[1] for d in decs.values())
    rows = np.empty((len(decs), n), np.float32)
    mono = {k: _channel_mean(d, n, rows[i]) for i, (k, d) in enumerate(decs.items())}
    r = int(round(rate_d))
    nbins = max(fr.grid_bins(r), bleed_mod.bins_needed(fr.plan(r).bin_hz))
    spectra = fr.stft_many(rows, r)     # (K, F, bins): one array, see _joint's bleed
    specs = {k: spectra[i] for i, k in enumerate(mono)}
    powers = {k: fr.power(s, nbins) for k, s in specs.items()}
    grids = {k: fr.grid_power(p, r) for k, p in powers.items()}
    # fingerprints: the real mixture (else the stem sum) and every stem
    if MIXTURE in grids:
        t.res.prints[MIXTURE] = landmarks(grids[MIXTURE])
    elif stems:
        total = np.sum([mono[k] for k in stems], axis=0)
        t.res.prints[MIXTURE] = landmarks(fr.grid_power(fr.power(fr.stft(total, r), nbins), r))
    if opts.fingerprint_stems:
        for k in stems:
            if not facts[k].silent:
                t.res.prints[k] = landmarks(grids[k])
    _joint(t, stems, decs, n, rate_d, (spectra, list(mono)), specs, powers, grids, mono, facts)
    _explain(t, facts)
    return t.res


def _channel_mean(d: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """Mean of the channels of ``d (C, T)`` over the first ``n`` samples, written to ``out``
    float32 ``(n,)`` and returned (row by row: NumPy's ``mean(axis=0)`` is three times slower
    here)."""
    m = out
    m[:] = d[0, :n]
    for c in range(1, d.shape[0]):
        m += d[c, :n]
    if d.shape[0] > 1:
        m *= np.float32(1.0 / d.shape[0])
    return m


def _where(entry: TrackEntry, name: str) -> dict:
    """Where a source lives (for listening to a finding in the report)."""
    ref = entry.mixture if name == MIXTURE else entry.stems[name]
    d = {"path": ref.path}
    if ref.stream is not None:
        d["stream"] = ref.stream
    if ref.extra_paths or ref.channel is not None:
        d["summed"] = bool(ref.extra_paths)
        d["channel"] = ref.channel
    return d


def _path(entry: TrackEntry, name: str) -> str:
    return (entry.mixture if name == MIXTURE else entry.stems[name]).path


def _joint(t: _Track, stems, decs, n, rate_d, spectra, specs, powers, grids, mono,
           facts) -> None:
    """The checks across sources: copies, polarity/channel swaps, sums, bleed, labels.
    ``spectra`` is ``(array (K, F, bins), names of its rows)``; ``specs`` maps each name to its
    row."""
    o = t.opts
    live = [k for k in stems if not facts[k].silent]
    mix = decs.get(MIXTURE)
    rel = relate([decs[k][:, :n] for k in live],
                 mix[:, :n] if mix is not None and not facts[MIXTURE].silent else None,
                 rate_d, o.copy_correlation, o.silence_db, o.relation_gain_db)
    copies = set()
    for k, j, r in rel.copies:
        a, b = live[k], live[j]
        copies.add((k, j))
        t.add("stem_copy", "error", b,
              f"stems {a} and {b} are copies of each other (correlation {r:+.3f})",
              "exclude_track", other=a, correlation=round(r, 4))
    rf: dict = {}
    if rel.states:
        rf = {"plain_db": [round(v, 2) for v in rel.plain_db],
              "best_db": [round(v, 2) for v in rel.best_db],
              "gain": [round(v, 4) for v in rel.gain],
              "states": {live[k]: STATE_NAMES[s] for k, s in enumerate(rel.states)}}
        gain_db = sum(rel.plain_db) / len(rel.plain_db) - sum(rel.best_db) / len(rel.best_db)
        if gain_db >= o.relation_gain_db:
            for k, s in enumerate(rel.states):
                if s in (1, 3):
                    t.add("polarity", "error", live[k],
                          f"stem {live[k]} is inverted relative to the mixture (residual "
                          f"{np.mean(rel.plain_db):.1f} -> {np.mean(rel.best_db):.1f} dB)",
                          "exclude_track", improvement_db=round(gain_db, 2))
                if s in (2, 3):
                    t.add("channel_swap", "error", live[k],
                          f"stem {live[k]} has left and right swapped relative to the mixture "
                          f"(residual {np.mean(rel.plain_db):.1f} -> "
                          f"{np.mean(rel.best_db):.1f} dB)", "exclude_track",
                          improvement_db=round(gain_db, 2))
        if all(g < 0 for g in rel.gain):
            t.add("polarity", "error", MIXTURE, "the mixture is inverted relative to the stems",
                  "exclude_track", gain=rf["gain"])
        _residual_findings(t, rel, rf)
    t.res.facts["relation"] = rf
    # bleed
    if len(live) >= 2:
        every, names = spectra
        bin_hz = fr.plan(int(round(rate_d))).bin_hz
        band = bleed_mod.band_slice(every.shape[2], bin_hz)
        rows = [names.index(k) for k in live]
        if rows == list(range(rows[0], rows[0] + len(rows))):   # the usual case: a view
            X = every[rows[0]:rows[0] + len(rows), :, band]
        else:
            X = every[rows][:, :, band]
        b_list = bleed_mod.estimate(X, bin_hz, band.start, fr.FPS, skip=copies)
        bf = {}
        z = {(b.into, b.source): b.gain / b.stderr for b in b_list}
        for b in b_list:
            into, src = live[b.into], live[b.source]
            bf[f"{src}->{into}"] = round(b.gain_db, 1)
            # the reverse direction of a strong bleed looks like a weak one: keep the stronger
            weaker = z.get((b.source, b.into), 0.0) * REVERSE_RATIO > z[(b.into, b.source)]
            if b.gain_db >= o.bleed_db and z[(b.into, b.source)] >= o.bleed_z and b.bands >= 3 \
                    and not weaker:
                action = "exclude_stem" if b.gain_db >= o.bleed_review_db else "review"
                t.add("bleed", "warning", into,
                      f"{into} holds {src} at {b.gain_db:.1f} dB (relative to {src})", action,
                      merge_spans([tuple(s) for s in b.spans]), source=src,
                      gain_db=round(b.gain_db, 2), stderr_db=round(10 * np.log10(
                          max(b.stderr, 1e-30)), 1))
        t.res.facts["bleed_db"] = bf
    # labels
    lf = {}
    for k in stems:
        if facts[k].silent:
            continue
        cls = labels.label_class(k, t.entry.stems[k].label)
        if cls == "vocals":
            m, act = labels.voiced_fraction(specs[k], powers[k], rate_d, o.silence_db)
            lf[k] = {"class": cls, "voiced_fraction": round(m, 3), "active_s": round(act, 1)}
            if act >= o.label_min_active and m < o.voiced_fraction:
                t.add("label_mismatch", "warning", k,
                      f"{k} is labelled vocals but only {100 * m:.0f} % of its active frames "
                      "are voiced in the singing range", "exclude_stem", voiced_fraction=m)
        elif cls == "drums":
            m, act = labels.onset_rate(grids[k])
            lf[k] = {"class": cls, "onsets_per_s": round(m, 2), "active_s": round(act, 1)}
            if act >= o.label_min_active and m < o.onset_rate:
                t.add("label_mismatch", "warning", k,
                      f"{k} is labelled drums but has {m:.2f} percussive onsets per active "
                      "second", "exclude_stem", onsets_per_s=m)
    t.res.facts["labels"] = lf


def _residual_findings(t: _Track, rel, rf: dict) -> None:
    o = t.opts
    w = rel.window_db
    if w is None or not np.isfinite(w).any():
        return
    C = w.shape[1]
    med = [float(np.nanmedian(w[:, c])) if np.isfinite(w[:, c]).any() else -60.0
           for c in range(C)]
    # the track's usual residual: a low percentile, so that a defect covering most of the
    # track does not raise its own threshold
    base = [float(np.nanpercentile(w[:, c], BASE_PERCENTILE)) if np.isfinite(w[:, c]).any()
            else -60.0 for c in range(C)]
    rf["median_db"] = [round(m, 2) for m in med]
    rf["base_db"] = [round(m, 2) for m in base]
    ws = rel.window_seconds
    channel_names = ("left", "right") if C == 2 else tuple(f"channel {c}" for c in range(C))
    whole = [b >= o.residual_track_db for b in base]
    if any(whole):
        bad = [c for c in range(C) if whole[c]]
        good = [c for c in range(C) if not whole[c]]
        if len(bad) == 1 and good and all(base[g] <= base[bad[0]] - o.channel_sum_db
                                          for g in good):
            c = bad[0]
            t.add("channel_sum", "error", None,
                  f"the {channel_names[c]} channel of the stems does not sum to the mixture "
                  f"(residual {base[c]:.1f} dB over the whole track; other channel(s) "
                  f"{', '.join(f'{base[d]:.1f}' for d in good)} dB)", "exclude_track",
                  channel=c, base_db=rf["base_db"])
        else:
            t.add("mixture_residual", "error", None,
                  f"the mixture does not match the sum of the stems (residual "
                  f"{max(base):.1f} dB over the whole track)", "exclude_track",
                  base_db=rf["base_db"])
        return
    thr = [max(o.residual_db, m + o.residual_rise_db) for m in base]
    bad = np.zeros(w.shape, bool)
    for c in range(C):
        bad[:, c] = np.nan_to_num(w[:, c], nan=-200.0) >= thr[c]
    flagged = bad.any(axis=1)
    if flagged.any():
        spans = merge_spans([(i * ws, (i + 1) * ws) for i in np.flatnonzero(flagged)])
        peak = float(np.nanmax(np.where(bad, w, np.nan)))
        one_sided = [c for c in range(C) if C > 1 and bad[:, c].any()
                     and not bad[:, [d for d in range(C) if d != c]].any()
                     and all(np.nanmedian(w[bad[:, c], d]) <= np.nanmedian(w[bad[:, c], c])
                             - o.channel_sum_db for d in range(C) if d != c)]
        if len(one_sided) == 1:
            c = one_sided[0]
            t.add("channel_sum", "error", None,
                  f"the {channel_names[c]} channel of the stems does not sum to the mixture in "
                  f"{len(spans)} span(s) (residual up to {peak:.1f} dB)", "exclude_track", spans,
                  channel=c, base_db=rf["base_db"])
        else:
            t.add("mixture_residual", "warning", None,
                  f"the mixture differs from the sum of the stems by up to {peak:.1f} dB in "
                  f"{len(spans)} span(s) (usual level {max(base):.1f} dB)", "exclude_span", spans,
                  peak_db=round(peak, 2), base_db=rf["base_db"])
    elif max(med) > -30.0:
        t.add("mixture_residual", "info", None,
              f"the mixture is not the plain sum of the stems (median residual "
              f"{max(med):.1f} dB: mastered or lossy-coded?)", "none", median_db=rf["median_db"])


def _explain(t: _Track, facts: dict[str, SourceFacts]) -> None:
    """Downgrade findings another finding explains to ``info`` (see the module docstring)."""
    fs = t.res.findings
    dropouts = [s for f in fs if f.kind == "silence" and f.spans for s in f.spans]
    copies = [f for f in fs if f.kind == "stem_copy"]
    copied = {f.stem for f in copies} | {f.detail.get("other") for f in copies}
    for f in fs:
        if f.kind == "label_mismatch" and f.stem in copied and f.severity != "info":
            f.severity, f.action = "info", "none"   # the copy is the finding to act on
            f.detail["explained_by"] = "stem copy"
        if f.kind in ("mixture_residual", "channel_sum") and f.severity != "info":
            why = None
            if copies:
                why = f"stem copy ({copies[0].stem})"
            elif dropouts and f.spans and overlaps(f.spans, dropouts) >= 0.5 * min(
                    sum(b - a for a, b in f.spans), sum(b - a for a, b in dropouts)):
                why = "dropout"
            if why:
                f.severity, f.action = "info", "none"
                f.detail["explained_by"] = why
        if f.kind == "dc_offset" and f.stem == MIXTURE and f.severity != "info":
            stems_dc = np.sum([facts[k].dc for k in t.entry.stems if k in facts
                               and len(facts[k].dc) == len(facts[MIXTURE].dc)], axis=0)
            if np.all(np.abs(np.asarray(stems_dc) - np.asarray(facts[MIXTURE].dc))
                      < t.opts.dc_offset / 2):
                f.severity, f.action = "info", "none"
                f.detail["explained_by"] = "the stems' DC"
