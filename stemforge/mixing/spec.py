"""MixSpec: every value drawn for one mixture — the contract between sampling and rendering.

``render(spec, index)`` needs nothing else. ``to_json``/``from_json`` round-trip exactly (floats
are written with Python's shortest round-trip repr).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_text_atomic

SPEC_FORMAT = "stemforge-mixspec/1"


@dataclass
class SourceSpec:
    """One stem's contribution.

    ``start`` and ``source_frames`` are in the track's own sample rate: the renderer reads
    ``source_frames`` frames from ``start``, resamples to the spec's rate if needed, converts
    channels, applies ``steps`` (yielding exactly the spec's ``frames``), multiplies by ``gain``.
    """

    stem: str
    target: str
    track: str
    start: int
    source_frames: int
    gain_db: float
    gain: float
    loudness: float | None = None     # LUFS measured before gain (snr mode), None if unused
    level: str = "gain_db"            # "snr" or "gain_db": how gain_db was decided
    snr: float | None = None
    boost: float = 0.0
    dropped: bool = False
    track_sample_rate: int = 0
    active_fraction: float | None = None
    steps: list[dict] = field(default_factory=list)


@dataclass
class MixSpec:
    sample_rate: int
    channels: int
    frames: int
    mode: str
    targets: list[str]
    sources: list[SourceSpec]
    ref_db: float | None
    clipping: str
    scale: float = 1.0
    peak: float = 0.0                 # max |mix| before clip scaling
    seed: int | None = None
    epoch: int | None = None
    item: int | None = None
    recipe_name: str = ""
    recipe_hash: str = ""
    version: str = ""
    attempts: int = 1
    warnings: list[str] = field(default_factory=list)
    format: str = SPEC_FORMAT
    exclusions: dict | None = None    # the doctor exclusion list applied (recipe `exclude`)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["exclusions"] is None:   # absent unless used: specs without it stay as they were
            del d["exclusions"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MixSpec":
        d = dict(d)
        if d.get("format") != SPEC_FORMAT:
            from ..errors import StemforgeError

            raise StemforgeError(f"not a stemforge mix spec (format {d.get('format')!r}, "
                                 f"expected {SPEC_FORMAT!r})")
        d["sources"] = [SourceSpec(**s) for s in d["sources"]]
        return cls(**d)

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "MixSpec":
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(Path(path), self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "MixSpec":
        from ..errors import StemforgeError

        p = Path(path)
        try:
            return cls.from_json(p.read_text())
        except FileNotFoundError:
            raise StemforgeError(f"{p}: spec file not found") from None
        except (ValueError, TypeError, KeyError) as e:
            raise StemforgeError(f"{p}: not a valid mix spec ({e})") from e
