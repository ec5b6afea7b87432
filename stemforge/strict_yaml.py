"""YAML for user-written files (recipes, taxonomies): PyYAML's safe loader, but a key given twice
in one mapping is an error instead of the last one silently winning.

``load(text)`` returns the data; :class:`DuplicateKey` names the key's dotted path (``stems.
vocals.snr``, list positions as numbers) and its line.
"""
from __future__ import annotations

from typing import Any

import yaml


class DuplicateKey(ValueError):
    """``path`` (dotted, of the repeated key) was given twice in one mapping; ``line`` 1-based."""

    def __init__(self, path: str, line: int, first: int):
        self.path, self.line, self.first = path, line, first
        super().__init__(f"{path}: key given twice (lines {first} and {line})")


def _check(node: yaml.Node, path: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias: checked where its anchor was defined
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[Any, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                name = key.value
                where = f"{path}.{name}" if path else str(name)
                if name in lines:
                    raise DuplicateKey(where, key.start_mark.line + 1, lines[name])
                lines[name] = key.start_mark.line + 1
                _check(value, where, seen)
            else:
                _check(value, path, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check(item, f"{path}.{i}" if path else str(i), seen)


def load(text: str) -> Any:
    """Parse ``text`` like ``yaml.safe_load``; :class:`DuplicateKey` for a repeated key,
    ``yaml.YAMLError`` for a syntax error."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check(node, "", set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def describe(e: yaml.YAMLError) -> str:
    """A YAML error on one line: the problem and where (PyYAML's text spans several lines)."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(e).split())
