"""What the doctor reports: findings, their kinds, severities and suggested actions, and the
``doctor.json`` file that holds them.

A :class:`Finding` names the dataset, the track, the stem (``"mixture"`` for the real mixture,
None for the whole track), the time spans it concerns (seconds from the start of the track's
files; empty = all of it), a severity, a suggested action and a one-line message; ``detail``
holds the measured numbers. Actions ``exclude_track``, ``exclude_stem`` and ``exclude_span``
are what a recipe's ``exclude: doctor.json`` (or ``--exclude``) applies; ``fix`` and ``review``
are for a person.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import StemforgeError

FORMAT = "stemforge-doctor/1"
SEVERITIES = ("info", "warning", "error")
ACTIONS = ("exclude_track", "exclude_stem", "exclude_span", "fix", "review", "none")
EXCLUDING = ("exclude_track", "exclude_stem", "exclude_span")

# kind -> what it means (the order of the summary table)
KINDS = {
    "unreadable": "a file cannot be decoded",
    "rate_mismatch": "sources of one track at different sample rates",
    "length_mismatch": "sources of one track of different lengths",
    "channel_count": "sources of one track with different channel counts",
    "silence": "a silent stem, or a dropout (digital silence cutting into sound)",
    "clipping": "runs of samples stuck at the peak value",
    "dc_offset": "a constant offset in a channel",
    "stem_copy": "a stem that is a copy of another stem of the track",
    "polarity": "a stem (or the mixture) inverted relative to the mixture",
    "channel_swap": "a stem with left and right swapped relative to the mixture",
    "channel_sum": "one channel of the stems does not sum to the mixture",
    "mixture_residual": "the real mixture differs from the sum of the stems",
    "bleed": "a stem holds a copy of another stem (leakage)",
    "label_mismatch": "a stem whose content does not fit its label",
    "duplicate": "the same audio in two tracks (leakage when across splits)",
}


class DoctorError(StemforgeError):
    """A doctor input or output is unusable (names the file or option)."""


@dataclass
class Finding:
    """One problem (or note) about one track; see the module docstring."""

    kind: str
    severity: str
    dataset: str
    track: str
    stem: str | None
    message: str
    action: str = "none"
    spans: list[list[float]] = field(default_factory=list)
    detail: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}")

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Finding":
        return cls(kind=d["kind"], severity=d["severity"], dataset=d["dataset"],
                   track=d["track"], stem=d.get("stem"), message=d.get("message", ""),
                   action=d.get("action", "none"),
                   spans=[[float(a), float(b)] for a, b in d.get("spans", [])],
                   detail=dict(d.get("detail", {})))


def merge_spans(spans: list[tuple[float, float]], gap: float = 0.0) -> list[list[float]]:
    """Sorted, merged ``[start, end]`` spans (spans closer than ``gap`` seconds joined)."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([float(a), float(b)])
    return [[round(a, 3), round(b, 3)] for a, b in out]


def overlaps(spans_a, spans_b) -> float:
    """Seconds of overlap between two span lists."""
    total = 0.0
    for a0, a1 in spans_a:
        for b0, b1 in spans_b:
            total += max(0.0, min(a1, b1) - max(a0, b0))
    return total


@dataclass
class DoctorReport:
    """The content of ``doctor.json``: the datasets checked, the options, every finding, and
    per-track facts (sources, measurements)."""

    datasets: list[dict]
    options: dict
    findings: list[Finding]
    tracks: list[dict]
    version: str = ""
    format: str = FORMAT

    def to_dict(self) -> dict:
        return {"format": self.format, "version": self.version, "datasets": self.datasets,
                "options": self.options, "summary": self.summary(),
                "findings": [f.to_dict() for f in self.findings], "tracks": self.tracks}

    def summary(self) -> dict:
        """``{kind: {severity: count}}`` for kinds with findings."""
        out: dict[str, dict[str, int]] = {}
        for f in self.findings:
            out.setdefault(f.kind, dict.fromkeys(SEVERITIES, 0))[f.severity] += 1
        return {k: out[k] for k in KINDS if k in out}

    def worst(self) -> str | None:
        if not self.findings:
            return None
        return SEVERITIES[max(f.rank for f in self.findings)]

    def save(self, path: str | Path) -> Path:
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        return write_text_atomic(Path(path), text + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "DoctorReport":
        p = Path(path)
        if p.is_dir():
            p = p / "doctor.json"
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise DoctorError(f"{p}: doctor report not found (run `stemforge doctor ROOT "
                              f"--out DIR` first)") from None
        except (OSError, ValueError) as e:
            raise DoctorError(f"{p}: not a readable doctor report ({e})") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DoctorError(f"{p}: not a stemforge doctor report (format "
                              f"{data.get('format') if isinstance(data, dict) else None!r}, "
                              f"expected {FORMAT!r})")
        try:
            findings = [Finding.from_dict(f) for f in data.get("findings", [])]
        except (KeyError, TypeError, ValueError) as e:
            raise DoctorError(f"{p}: a finding is malformed ({e})") from e
        return cls(datasets=data.get("datasets", []), options=data.get("options", {}),
                   findings=findings, tracks=data.get("tracks", []),
                   version=data.get("version", ""))
