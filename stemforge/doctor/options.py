"""The doctor's thresholds, in one place (recorded in ``doctor.json``; docs/doctor.md explains
each and what was measured with them)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..types import Decibels, Seconds
from .findings import DoctorError


@dataclass(frozen=True)
class Options:
    """Thresholds of every check (defaults are the ones measured in docs/doctor.md)."""

    silence_db: Decibels = -60.0          # a 20 ms block below this RMS (dBFS) is silent
    dropout_min: Seconds = 0.1            # shortest digital-silence run taken as a dropout
    dropout_edge_db: Decibels = -12.0     # both 1 ms edges this close to the typical level
    clip_min_run: int = 3                 # samples in a row at the peak value
    clip_min_runs: int = 3                # such runs needed to call a source clipped
    dc_offset: float = 0.002              # |mean| of a channel (full scale = 1)
    copy_correlation: float = 0.98        # |correlation| of two stems that makes a copy
    relation_gain_db: Decibels = 6.0      # residual improvement that makes a polarity/swap call
    residual_db: Decibels = -15.0         # 1 s windows with a larger residual are flagged ...
    residual_rise_db: Decibels = 10.0     # ... when also this far above the track's usual level
    residual_track_db: Decibels = -10.0   # a channel whose usual level is above: the whole track
    channel_sum_db: Decibels = 10.0       # channel residuals this far apart: one channel is off
    bleed_db: Decibels = -35.0            # bleed gain flagged from here (relative to the source)
    bleed_review_db: Decibels = -20.0     # from here the suggested action is exclude_stem
    bleed_z: float = 8.0                  # and the estimate must be this many standard errors
    voiced_fraction: float = 0.5          # a vocals stem voiced in less of its active time
    onset_rate: float = 1.5               # a drums stem with fewer percussive onsets per second
    label_min_active: Seconds = 3.0       # label rules need this much active audio
    fingerprint_stems: bool = True        # fingerprint every stem, not only the mixtures
    min_votes: int = 10                   # landmarks agreeing on one offset for a duplicate
    min_votes_stems: int = 40             # the same for stems, which repeat more
    min_overlap: Seconds = 8.0            # shortest matched span (a 10 s overlap measures ~9 s)
    min_coverage: float = 0.5             # share of the span's seconds holding a matched landmark

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Options":
        d = dict(d or {})
        known = {f.name: f for f in fields(cls)}
        bad = [k for k in d if k not in known]
        if bad:
            raise DoctorError(f"unknown doctor option(s) {bad}; known: {', '.join(known)}")
        return cls(**d)
