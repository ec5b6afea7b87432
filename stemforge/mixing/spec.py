"""MixSpec: every value drawn for one mixture — the contract between sampling and rendering.

``render(spec, index)`` needs nothing else. ``to_json``/``from_json`` round-trip exactly (floats
are written with Python's shortest round-trip repr).

Specs are records: frozen dataclasses that nothing changes after they are made (their lists are
never mutated either). The sampler makes a spec with ``scale``/``peak`` None (not rendered yet);
rendering returns the clip scale and peak it found, and the caller records them in a new spec
with :meth:`MixSpec.rendered` (``dataclasses.replace``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..atomic import write_text_atomic

SPEC_FORMAT = "stemforge-mixspec/1"


class EventPlacement:
    """Scaper's event model on a source-like record with ``stem``, ``event``, ``offset``,
    ``event_frames``, ``fade_in``, ``fade_out`` and ``role`` (a :class:`SourceSpec`, or the
    sampler's draft of one)."""

    __slots__ = ()

    @property
    def key(self) -> str:
        """Unique name of this source in its spec: the stem, ``stem#k`` for its k-th event,
        ``stem+k`` for the k-th extra stem mixup added to its slot."""
        mixup = getattr(self, "mixup", 0)
        if mixup:
            return f"{self.stem}+{mixup}"
        return self.stem if self.event == 0 else f"{self.stem}#{self.event}"

    def placed(self, frames: int) -> bool:
        """True when the source is an event: not the whole mixture, faded, or a background."""
        return (self.offset != 0 or self.fade_in != 0 or self.fade_out != 0
                or self.role != "foreground"
                or (self.event_frames is not None and self.event_frames != frames))

    def frames_out(self, frames: int) -> int:
        """Output frames of the event itself (``frames`` = the mixture's length)."""
        return frames - self.offset if self.event_frames is None else self.event_frames


@dataclass(frozen=True)
class SourceSpec(EventPlacement):
    """One stem's contribution.

    ``start`` and ``source_frames`` are in the track's own sample rate: the renderer reads
    ``source_frames`` frames from ``start`` of ``track`` (in ``dataset``, when the recipe draws
    from several: the index bound to that name), appends ``pad_frames`` zeros (a track shorter than
    the excerpt, recipe ``pad: true``), resamples to the spec's rate if needed, converts
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
    # Scaper's event model; at these defaults (a stem spanning the whole mixture) the fields are
    # left out of the JSON, so plain specs keep their bytes (see ``EVENT_DEFAULTS``)
    event: int = 0                    # index among the events of the same stem (see ``key``)
    offset: int = 0                   # output frame where the event starts (Scaper: event_time)
    event_frames: int | None = None   # output frames of the event; None = to the mixture's end
    fade_in: int = 0                  # frames of Scaper's sine fade-in / fade-out of the event
    fade_out: int = 0
    role: str = "foreground"          # "background": Scaper's background (excerpt looped)
    pad_frames: int = 0               # zeros appended after the read (pad: true, short tracks)
    dataset: str = ""                 # the dataset of a several-dataset recipe (datasets:)
    # mixup of same-class stems (recipe mixup:): k > 0 for the k-th extra stem added to the
    # slot of ``stem`` (from another track), and the drawn ``mixup.gain_db`` in its gain_db
    mixup: int = 0
    mixup_db: float = 0.0


#: SourceSpec fields written only when they differ from these values (plain specs keep their
#: bytes)
EVENT_DEFAULTS = {"event": 0, "offset": 0, "event_frames": None, "fade_in": 0, "fade_out": 0,
                  "role": "foreground", "pad_frames": 0, "dataset": "", "mixup": 0,
                  "mixup_db": 0.0}


@dataclass(frozen=True)
class MixSpec:
    """Every value drawn for one mixture (see the module docstring); ``scale``: the clip
    scale applied to mix and targets, ``peak``: max ``|mix|`` before it (both None until the
    spec is rendered, then recorded by :meth:`rendered`)."""

    sample_rate: int
    channels: int
    frames: int
    mode: str
    targets: list[str]
    sources: list[SourceSpec]
    ref_db: float | None
    clipping: str
    scale: float | None = None
    peak: float | None = None         # max |mix| before clip scaling
    seed: int | None = None
    epoch: int | None = None
    item: int | None = None
    recipe_name: str = ""
    recipe_hash: str = ""
    version: str = ""
    attempts: int = 1
    warnings: list[str] = field(default_factory=list)
    format: str = SPEC_FORMAT
    #: mastering bus (recipe ``master:``): the drawn steps in order, ``{"step": ..., params}``;
    #: left out of the JSON when empty (other specs keep their bytes)
    master: list[dict] = field(default_factory=list)
    #: False when the bus holds steps on the mix alone (recipe ``master: {linear: false}``):
    #: the mix is then not the sum of the targets (render returns that sum as ``unmastered``);
    #: left out of the JSON when True
    master_linear: bool = True
    exclusions: dict | None = None    # the doctor exclusion list applied (recipe `exclude`)
    #: class balance (recipe ``balance:``): the rare target the item is anchored on; left
    #: out of the JSON when None
    anchor: str | None = None

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def rendered(self, scale: float, peak: float | None) -> "MixSpec":
        """This spec with the clip ``scale`` and ``peak`` a render found recorded (itself when
        they are already recorded: a re-render applies the recorded scale)."""
        if self.scale is not None:
            return self
        return replace(self, scale=float(scale), peak=None if peak is None else float(peak))

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["master"]:
            del d["master"]
        if d["master_linear"]:
            del d["master_linear"]
        for src in d["sources"]:
            for k, v in EVENT_DEFAULTS.items():
                if src[k] == v:
                    del src[k]
        if d["exclusions"] is None:   # absent unless used: specs without it stay as they were
            del d["exclusions"]
        if d["anchor"] is None:
            del d["anchor"]
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
