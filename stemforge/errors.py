"""Error types. Every user-facing failure is a :class:`StemforgeError`.

The CLI turns a ``StemforgeError`` into a one-line message on stderr and exit code 2.
Messages name the file, track or recipe field at fault and say what was expected.
"""
from __future__ import annotations

import operator


class StemforgeError(Exception):
    """Base class for errors caused by the user's input (data, recipe, arguments)."""


class AudioError(StemforgeError):
    """An audio file cannot be read, is corrupt, or holds invalid samples."""


class LayoutError(StemforgeError):
    """A dataset root does not match the expected layout."""


class IndexError_(StemforgeError):
    """An index is inconsistent, missing, or does not hold what was asked for."""


class RecipeError(StemforgeError):
    """A recipe field is unknown, of the wrong type, or out of range.

    ``field`` is the dotted path of the offending field, e.g. ``stems.vocals.snr``.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"recipe field '{field}': {message}")


class SamplingError(StemforgeError):
    """A bounded re-draw loop ran out of attempts."""


class ArgumentError(StemforgeError, ValueError):
    """An argument of an API call is out of range (e.g. a negative seed, epoch or item)."""


def check_count(value, name: str) -> int:
    """``value`` as an int >= 0 (seeds, epochs and items, which feed ``SeedSequence``), else
    :class:`ArgumentError` naming ``name``."""
    try:
        v = operator.index(value)
    except TypeError:
        v = -1
    if v < 0 or isinstance(value, bool):
        raise ArgumentError(f"{name} {value!r}: expected an integer >= 0")
    return v


class StemforgeWarning(UserWarning):
    """Something was left out or chosen silently (stems in no target, tracks too short to be
    drawn, ...). The CLI prints it as one ``warning:`` line."""
