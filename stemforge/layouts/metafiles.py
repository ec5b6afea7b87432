"""Reading dataset metadata files (YAML, JSON) with errors that name the file at fault."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import LayoutError


def read_yaml(path: Path) -> dict:
    """A YAML file whose top level is a mapping; LayoutError naming the file otherwise."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as e:
        raise LayoutError(f"{path}: cannot read metadata file ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise LayoutError(f"{path}: malformed YAML metadata ({_first_line(e)})") from e
    return _mapping(path, data)


def read_json(path: Path) -> dict:
    """A JSON file whose top level is an object; LayoutError naming the file otherwise."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as e:
        raise LayoutError(f"{path}: cannot read metadata file ({e.strerror})") from e
    except ValueError as e:
        raise LayoutError(f"{path}: malformed JSON metadata ({e})") from e
    return _mapping(path, data)


def _first_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _mapping(path: Path, data) -> dict:
    if not isinstance(data, dict):
        raise LayoutError(f"{path}: expected a mapping at the top level of the metadata, "
                          f"got {type(data).__name__}")
    return data


def field(path: Path, data: dict, key: str, kind: type | tuple, where: str = "") -> object:
    """``data[key]`` checked for type; the error names the metadata file and the key."""
    at = f"{where}.{key}" if where else key
    if key not in data:
        raise LayoutError(f"{path}: metadata lacks '{at}'")
    value = data[key]
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise LayoutError(f"{path}: metadata '{at}' should be a {want}, "
                          f"got {type(value).__name__}")
    return value


def existing(meta: Path, audio: Path, what: str = "") -> Path:
    """``audio`` if it is a file; else a LayoutError naming the metadata and the missing file."""
    if not audio.is_file():
        raise LayoutError(f"{meta}: lists {what + ' ' if what else ''}{audio}, "
                          "which does not exist")
    return audio
