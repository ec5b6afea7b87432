"""Recipes shipped with stemforge (``stemforge/recipes/*.yaml``), found by name.

``stemforge generate musdb_vocals ...`` and ``Recipe.load("musdb_vocals")`` read them from the
installed package (package data, so a plain ``pip install`` has them); ``stemforge recipes``
lists them and ``stemforge recipes show NAME`` prints one.
"""
from __future__ import annotations

from importlib import resources

from ..errors import RecipeError

SUFFIX = ".yaml"
WIDTH = 110  # characters of a recipe's description in `stemforge recipes`


def _folder():
    return resources.files("stemforge") / "recipes"


def names() -> list[str]:
    """Names of the packaged recipes (file names without ``.yaml``), sorted."""
    return sorted(p.name[:-len(SUFFIX)] for p in _folder().iterdir()
                  if p.name.endswith(SUFFIX))


def text(name: str) -> str | None:
    """The YAML text of packaged recipe ``name`` (``musdb_vocals`` or ``musdb_vocals.yaml``),
    or None when there is none of that name."""
    stem = name[:-len(SUFFIX)] if name.endswith(SUFFIX) else name
    if "/" in stem or "\\" in stem or stem not in names():
        return None
    return (_folder() / f"{stem}{SUFFIX}").read_text()


def find(name: str) -> str:
    """:func:`text`, or a RecipeError saying that ``name`` is neither a file nor packaged."""
    got = text(name)
    if got is None:
        raise RecipeError("<file>", f"{name}: recipe file not found, and no packaged recipe has "
                          f"that name (packaged: {', '.join(names())}; `stemforge recipes` "
                          "lists them)")
    return got


def describe(name: str) -> str:
    """The first sentence of a packaged recipe's opening comment: what it is for."""
    words = []
    for line in (text(name) or "").splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("#").strip())
    text_ = " ".join(words)
    end = text_.find(". ")
    first = text_ if end < 0 else text_[:end + 1]
    if len(first) > WIDTH:
        first = first[:WIDTH].rsplit(" ", 1)[0] + " ..."
    return first
