"""What each report builder returns: one section of the page plus what went wrong."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    """One input's part of the report.

    ``body`` is trusted HTML; ``problems`` are plain-text messages shown at the top of the
    section (each names the file and what was expected); ``rendered`` counts the items that
    could be shown (tracks, mixtures, result files): 0 means this input rendered nothing.
    """

    kind: str                    # "dataset" | "generated" | "results" | "unknown"
    path: Path
    title: str
    body: str = ""
    problems: list[str] = field(default_factory=list)
    rendered: int = 0
    bytes_per_item: float | None = None   # asset bytes per rendered item (audio + images)
    methods: dict = field(default_factory=dict)   # results: name -> MethodResults (comparison)
