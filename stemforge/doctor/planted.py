"""Datasets with planted defects, and how well the doctor finds them.

:func:`make_planted` writes two datasets in the MUSDB18-HQ layout (16-bit WAV, like the real
one) from :mod:`stemforge.doctor.songs`: ``A`` (train/test) and ``B`` (a second dataset), with
known defects planted in some tracks and the rest left clean, and records the ground truth in
``planted.json``. :func:`score` compares a :class:`~stemforge.doctor.findings.DoctorReport`
with it: per kind, how many planted defects were found (recall) and how many findings at
``warning`` or above were right (precision), plus the findings above ``info`` on clean tracks.

Defects (one per track; the mixture stays the sum of the stems unless the defect is about
the mixture or a broken file):

==================  ==========================================================================
duplicate           a copy of another track in another split (or dataset) with a gain change,
                    an offset of 0-5 s, resampling to 48 or 22.05 kHz and an MP3 or AAC round
                    trip; also a partial copy (11-12 s of a track inside another song) and a
                    song whose vocals are another track's vocals
bleed               a stem plus another stem at -30..-10 dB, delayed 0-5 ms, low-passed (8 kHz)
silence             a digitally silent stem, a near-silent stem (-90 dBFS noise), a 1-2 s
                    dropout inside a stem (the mixture keeps the sound)
clipping            a stem driven into a hard clip at half its peak
dc_offset           a constant 0.01-0.03 added to a stem
stem_copy           a stem replaced by a copy of another stem (the mixture keeps the original)
polarity            a stem inverted (mixture unchanged)
channel_swap        a stem's left and right swapped (mixture unchanged)
channel_sum         one stem's left channel replaced by a shifted copy of itself ("PR - Oh No")
mixture_residual    an instrument missing from the stems added to the mixture over 6-8 s
length_mismatch     a stem cut 1-3 s short
rate_mismatch       a stem resampled to 48 kHz
label_mismatch      two stems' files swapped (drums/vocals, drums/bass, vocals/other)
==================  ==========================================================================
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import dsp
from ..errors import StemforgeError
from ..types import Seconds
from . import songs
from .findings import DoctorReport, Finding

SR = 44100
STEMS = songs.STEMS
FULL_PLAN = {  # kind -> count (the >= 40-track, >= 30-defect set of docs/doctor.md)
    "duplicate": 6, "bleed": 3, "silence": 3, "clipping": 2, "dc_offset": 2, "stem_copy": 2,
    "polarity": 2, "channel_swap": 2, "channel_sum": 2, "mixture_residual": 2,
    "length_mismatch": 2, "rate_mismatch": 2, "label_mismatch": 3,
}
SMALL_PLAN = {k: 1 for k in FULL_PLAN} | {"duplicate": 3, "silence": 2}
LABEL_SWAPS = (("drums", "vocals"), ("drums", "bass"), ("vocals", "other"))


@dataclass
class Planted:
    """One planted defect: ``stems`` it concerns (empty = the track); for duplicates
    ``other`` is ``[dataset, track]`` of the original."""

    kind: str
    dataset: str
    track: str
    stems: list[str] = field(default_factory=list)
    other: list[str] | None = None
    detail: dict = field(default_factory=dict)


@dataclass
class PlantedSet:
    root: str
    datasets: list[list[str]]            # [name, root]
    defects: list[Planted]
    tracks: list[list[str]]              # every [dataset, track]

    def save(self) -> Path:
        p = Path(self.root) / "planted.json"
        p.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return p

    @classmethod
    def load(cls, root: str | Path) -> "PlantedSet":
        d = json.loads((Path(root) / "planted.json").read_text())
        return cls(d["root"], d["datasets"], [Planted(**x) for x in d["defects"]], d["tracks"])

    def involved(self) -> set[tuple[str, str]]:
        out = set()
        for p in self.defects:
            out.add((p.dataset, p.track))
            if p.other:
                out.add((p.other[0], p.other[1]))
        return out


def _write(d: Path, stems: dict[str, np.ndarray], mixture: np.ndarray, sr=SR, rates=None):
    d.mkdir(parents=True, exist_ok=True)
    rates = rates or {}
    for name, a in stems.items():
        sf.write(str(d / f"{name}.wav"), np.clip(a, -1, 1).T, rates.get(name, sr),
                 subtype="PCM_16")
    sf.write(str(d / "mixture.wav"), np.clip(mixture, -1, 1).T, sr, subtype="PCM_16")


def _active_edges(x: np.ndarray, rng, dur: Seconds) -> int:
    """A start frame such that ``x`` is loud (within 6 dB of its median active 20 ms level) in
    the 20 ms before the start and after the end of a ``dur`` s stretch."""
    blk = SR // 50
    m = x.mean(axis=0)
    nb = len(m) // blk
    rms = np.sqrt((m[: nb * blk].reshape(nb, blk) ** 2).mean(axis=1))
    act = rms > 1e-3
    ref = np.median(rms[act])
    d = int(dur * 50)
    ok = [b for b in range(50, nb - d - 50) if rms[b - 1] > ref / 2 and rms[b + d] > ref / 2]
    if not ok:
        raise StemforgeError("planted: no loud enough stretch for a dropout")
    return int(rng.choice(ok)) * blk


def _codec(x: np.ndarray, sr: int, which: str) -> np.ndarray:
    from ..augment.codec import AAC, MP3

    if which == "mp3":
        return MP3.apply(x, sr, {"vbr_quality": 4.0})
    return AAC.apply(x, sr, {"bitrate_kbps": 128})


def _copy_of(src: dict, mix: np.ndarray, rng, rate: int, codec: str, offset: Seconds,
             gain_db: float):
    """``src``/``mix`` transformed as a distributed copy: offset (head cut), gain, resampled
    to ``rate``, lossy round trip."""
    o = int(offset * SR)
    g = 10 ** (gain_db / 20)

    peak = float(np.abs(mix[:, o:]).max()) * g
    g = g * min(1.0, 0.8 / max(peak, 1e-9))  # no clipping from the gain or the codec

    def tr(a):
        a = a[:, o:] * g
        a = dsp.resample(a.astype(np.float32), SR, rate)
        return _codec(a, rate, codec)

    return {k: tr(v) for k, v in src.items()}, tr(mix)


def _song(rng, seconds):
    st = songs.song(rng, seconds, SR)
    return st, sum(st.values())


def make_planted(root: str | Path, seed: int = 0, plan: dict | None = None, clean: int = 8,
                 seconds: tuple[Seconds, Seconds] = (20.0, 26.0)) -> PlantedSet:
    """Write the planted datasets under ``root`` (must not exist or be empty); see the module
    docstring. ``plan``: kind -> number of defects (default :data:`FULL_PLAN`); ``clean``:
    tracks of dataset A left untouched."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise StemforgeError(f"{root}: exists and is not empty")
    plan = dict(FULL_PLAN if plan is None else plan)
    rng = np.random.default_rng(seed)
    A, B = root / "A", root / "B"
    defects: list[Planted] = []
    tracks: list[list[str]] = []
    k = 0

    def new(split="train", ds=A):
        nonlocal k
        k += 1
        name = f"Song {k:03d}"
        tracks.append([ds.name, f"{split}/{name}"])
        return name, ds / split / name

    def dur():
        return float(rng.uniform(*seconds))

    for _ in range(clean):
        name, d = new(str(rng.choice(["train", "test"])))
        st, mix = _song(rng, dur())
        _write(d, st, mix)
    kinds = [kd for kd, n in plan.items() for _ in range(n) if kd != "duplicate"]
    for i, kind in enumerate(kinds):
        name, d = new("train" if i % 3 else "test")
        st, mix = _song(rng, dur())
        tid = f"{d.parent.name}/{name}"
        p = Planted(kind, "A", tid)
        rates = {}
        if kind == "bleed":
            into, src = rng.choice(STEMS, 2, replace=False)
            g = float(rng.uniform(-30, -10))
            delay = int(rng.integers(0, int(0.005 * SR)))
            a = np.exp(-2 * np.pi * 8000 / SR)
            from scipy.signal import lfilter
            lp = lfilter([1 - a], [1, -a], st[src], axis=1)
            leak = np.zeros_like(st[src])
            leak[:, delay:] = lp[:, : lp.shape[1] - delay]
            st[into] = (st[into] + 10 ** (g / 20) * leak).astype(np.float32)
            mix = sum(st.values())
            p.stems, p.detail = [str(into)], {"source": str(src), "gain_db": g,
                                              "delay_ms": 1000 * delay / SR}
        elif kind == "silence":
            s = str(rng.choice(STEMS))
            variant = ["digital", "near", "dropout"][sum(1 for q in defects if q.kind == kind) % 3]
            if variant == "dropout":
                length = float(rng.uniform(1.0, 2.0))
                a0 = _active_edges(st[s], rng, length)
                st[s] = st[s].copy()
                st[s][:, a0:a0 + int(length * SR)] = 0.0
                p.detail = {"variant": variant, "span": [a0 / SR, a0 / SR + length]}
            else:
                n = st[s].shape[1]
                st[s] = (np.zeros((2, n), np.float32) if variant == "digital" else
                         (10 ** (-90 / 20) * rng.standard_normal((2, n))).astype(np.float32))
                mix = sum(st.values())
                p.detail = {"variant": variant}
            p.stems = [s]
        elif kind == "clipping":
            s = str(rng.choice(STEMS))
            c = 0.5 * float(np.abs(st[s]).max())
            st[s] = np.clip(st[s], -c, c)
            mix = sum(st.values())
            p.stems = [s]
        elif kind == "dc_offset":
            s = str(rng.choice(STEMS))
            dc = float(rng.uniform(0.01, 0.03)) * float(rng.choice([-1, 1]))
            st[s] = st[s] + np.float32(dc)
            mix = sum(st.values())
            p.stems, p.detail = [s], {"dc": dc}
        elif kind == "stem_copy":
            a_, b_ = rng.choice(STEMS, 2, replace=False)
            st[b_] = st[a_].copy()
            p.stems = [str(a_), str(b_)]
        elif kind == "polarity":
            s = str(rng.choice(STEMS))
            st[s] = -st[s]
            p.stems = [s]
        elif kind == "channel_swap":
            s = str(rng.choice(STEMS))
            st[s] = st[s][::-1].copy()
            p.stems = [s]
        elif kind == "channel_sum":
            s = str(rng.choice(("other", "vocals", "drums")))
            st[s] = st[s].copy()
            st[s][0] = np.roll(st[s][0], int(2.0 * SR))
            p.stems, p.detail = [s], {"channel": "left"}
        elif kind == "mixture_residual":
            extra, _ = _song(rng, mix.shape[1] / SR)
            span = float(rng.uniform(6, 8))
            a0 = int(rng.uniform(2, mix.shape[1] / SR - span - 2) * SR)
            e = np.zeros_like(mix)
            e[:, a0:a0 + int(span * SR)] = extra["other"][:, a0:a0 + int(span * SR)]
            seg = slice(a0, a0 + int(span * SR))
            ratio = np.sqrt((mix[:, seg] ** 2).mean() / max((e[:, seg] ** 2).mean(), 1e-12))
            mix = mix + e * ratio * 10 ** (float(rng.uniform(-6, -3)) / 20)
            p.detail = {"span": [a0 / SR, a0 / SR + span]}
        elif kind == "length_mismatch":
            s = str(rng.choice(STEMS))
            cut = float(rng.uniform(1, 3))
            st[s] = st[s][:, : st[s].shape[1] - int(cut * SR)]
            p.stems, p.detail = [s], {"cut_s": cut}
        elif kind == "rate_mismatch":
            s = str(rng.choice(STEMS))
            st[s] = dsp.resample(st[s], SR, 48000)
            rates[s] = 48000
            p.stems, p.detail = [s], {"rate": 48000}
        elif kind == "label_mismatch":
            a_, b_ = LABEL_SWAPS[sum(1 for q in defects if q.kind == kind) % len(LABEL_SWAPS)]
            st[a_], st[b_] = st[b_], st[a_]
            p.stems = [a_, b_]
        else:
            raise StemforgeError(f"planted: unknown kind {kind!r}")
        _write(d, st, mix, rates=rates)
        defects.append(p)

    # duplicates: originals in A/train, copies elsewhere
    n_dup = plan.get("duplicate", 0)
    variants = ["full-48k-mp3", "partial", "cross-dataset-aac", "vocals", "full-22k-aac",
                "full-48k-mp3"]
    for i in range(n_dup):
        v = variants[i % len(variants)]
        oname, od = new("train")
        st, mix = _song(rng, 24.0 if v == "partial" else dur())
        _write(od, st, mix)
        orig = ["A", f"train/{oname}"]
        gain = float(rng.uniform(3, 9)) * float(rng.choice([-1, 1]))
        offset = float(rng.uniform(0, 5))
        if v.startswith("full"):
            rate, codec = (48000, "mp3") if "48k" in v else (22050, "aac")
            cname, cd = new("test")
            cst, cmix = _copy_of(st, mix, rng, rate, codec, offset, gain)
            _write(cd, cst, cmix, sr=rate)
            defects.append(Planted("duplicate", "A", f"test/{cname}", other=orig,
                                   detail={"variant": v, "gain_db": gain, "offset_s": offset}))
        elif v == "cross-dataset-aac":
            cname, cd = new("train", B)
            cst, cmix = _copy_of(st, mix, rng, 44100, "aac", offset, gain)
            _write(cd, cst, cmix)
            defects.append(Planted("duplicate", "B", f"train/{cname}", other=orig,
                                   detail={"variant": v, "gain_db": gain, "offset_s": offset}))
        elif v == "partial":
            cname, cd = new("test")
            pre, _ = _song(rng, 6.0)
            a0 = int(rng.uniform(2, 10) * SR)
            part = int(11.5 * SR)
            g = min(10 ** (gain / 20), 0.8 / float(np.abs(mix).max()))
            cst = {s: np.concatenate([pre[s], st[s][:, a0:a0 + part] * g], axis=1)
                   for s in STEMS}
            cst = {s: _codec(x.astype(np.float32), SR, "mp3") for s, x in cst.items()}
            _write(cd, cst, sum(cst.values()))
            defects.append(Planted("duplicate", "A", f"test/{cname}", other=orig,
                                   detail={"variant": v, "overlap_s": part / SR}))
        else:  # the same vocals in a new song of dataset B
            cname, cd = new("test", B)
            cst, _ = _song(rng, st["vocals"].shape[1] / SR)
            cst["vocals"] = st["vocals"] * np.float32(min(10 ** (gain / 20), 1.5))
            _write(cd, cst, sum(cst.values()))
            defects.append(Planted("duplicate", "B", f"test/{cname}", stems=["vocals"],
                                   other=orig, detail={"variant": v}))
    if not B.exists():  # dataset B always exists (one clean track at least)
        name, d = new("train", B)
        st, mix = _song(rng, dur())
        _write(d, st, mix)
    ps = PlantedSet(str(root), [["A", str(A)], ["B", str(B)]], defects, tracks)
    ps.save()
    return ps


def _matches(f: Finding, p: Planted) -> bool:
    if f.kind != p.kind:
        return False
    if p.kind == "duplicate":
        other = f.detail.get("other", {})
        pair = {(f.dataset, f.track), (other.get("dataset"), other.get("track"))}
        return pair == {(p.dataset, p.track), tuple(p.other or ())}
    if (f.dataset, f.track) != (p.dataset, p.track):
        return False
    if p.kind == "bleed" and f.detail.get("source") != p.detail.get("source"):
        return False
    if f.stem is None or f.stem == "mixture" or not p.stems:
        return True
    return f.stem in p.stems


@dataclass
class KindScore:
    kind: str
    planted: int
    found: int
    findings: int
    correct: int

    @property
    def recall(self) -> float:
        return self.found / self.planted if self.planted else float("nan")

    @property
    def precision(self) -> float:
        return self.correct / self.findings if self.findings else float("nan")


def score(report: DoctorReport, ps: PlantedSet, min_severity: str = "warning"
          ) -> tuple[list[KindScore], list[Finding]]:
    """Per-kind recall/precision of ``report`` against the planted set, and the findings at
    ``min_severity`` or above on tracks no defect involves (they should be none)."""
    from .findings import SEVERITIES

    floor = SEVERITIES.index(min_severity)
    fs = [f for f in report.findings if f.rank >= floor]
    kinds = sorted({p.kind for p in ps.defects} | {f.kind for f in fs},
                   key=lambda k: list(FULL_PLAN).index(k) if k in FULL_PLAN else 99)
    out = []
    for kd in kinds:
        pl = [p for p in ps.defects if p.kind == kd]
        fk = [f for f in fs if f.kind == kd]
        found = sum(1 for p in pl if any(_matches(f, p) for f in fk))
        correct = sum(1 for f in fk if any(_matches(f, p) for p in pl))
        out.append(KindScore(kd, len(pl), found, len(fk), correct))
    involved = ps.involved()
    on_clean = [f for f in fs if (f.dataset, f.track) not in involved]
    return out, on_clean


def score_table(rows: list[KindScore]) -> str:
    """Markdown table of :func:`score`'s rows, with a total line."""
    lines = ["| kind | planted | found | recall | findings | correct | precision |",
             "|---|---:|---:|---:|---:|---:|---:|"]

    def pct(x):
        return "–" if x != x else f"{100 * x:.0f} %"

    for r in rows:
        lines.append(f"| {r.kind} | {r.planted} | {r.found} | {pct(r.recall)} | {r.findings} | "
                     f"{r.correct} | {pct(r.precision)} |")
    tot = KindScore("all", sum(r.planted for r in rows), sum(r.found for r in rows),
                    sum(r.findings for r in rows), sum(r.correct for r in rows))
    lines.append(f"| **all** | {tot.planted} | {tot.found} | {pct(tot.recall)} | {tot.findings} "
                 f"| {tot.correct} | {pct(tot.precision)} |")
    return "\n".join(lines)
