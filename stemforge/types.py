"""Unit aliases used in signatures throughout stemforge.

Audio arrays are always ``float32`` shaped ``(channels, frames)`` unless a docstring says
otherwise.
"""
from __future__ import annotations

Seconds = float
Decibels = float
LUFS = float
Frames = int
Hz = int
