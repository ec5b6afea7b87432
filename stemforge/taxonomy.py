"""Instrument taxonomy: map dataset labels to training targets.

Datasets label their stems with instrument names: MedleyDB instrument labels
(``electric bass``), Slakh ``inst_class`` (``Bass``), MoisesDB stem types (``bass``). A taxonomy
maps targets to the labels they claim::

    bass: [electric bass, double bass, Bass]
    vocals: [female singer, male singer, vocals]
    rest: "*"            # the catch-all: every label no other target claims

Matching is case-insensitive and ignores surrounding whitespace. At most one target may be the
catch-all ``"*"``; a label claimed by two targets is an error. A stem's label is its
``SourceRef.label`` when the layout sets one, else its stem name (so a taxonomy also renames
plain stems, e.g. ``{music: [accompaniment]}``).

:func:`Taxonomy.apply` rewrites one track: each stem is renamed to its target, stems of one target
are summed (their files become one source's paths), stems no target claims are dropped and listed
in ``meta["unclaimed"]``. Summing is only possible between separate files (not two streams of one
MP4 or two channels of one file: use index groups for those). The recipe can reuse the same
mapping through :meth:`Taxonomy.from_mapping`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .errors import IndexError_, RecipeError
from .layouts.base import SourceRef, TrackEntry

CATCH_ALL = "*"


def _norm(label: str) -> str:
    return " ".join(str(label).split()).casefold()


@dataclass(frozen=True)
class Taxonomy:
    """``targets`` maps target name -> claimed labels; ``catch_all`` takes the other labels."""

    targets: dict[str, tuple[str, ...]]
    catch_all: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_mapping(cls, mapping, where: str = "taxonomy") -> "Taxonomy":
        """Validate ``{target: [labels] | "*"}``; errors name ``where.<target>``."""
        if not isinstance(mapping, dict) or not mapping:
            raise RecipeError(where, f"expected a non-empty mapping target -> [labels] or '*', "
                                     f"got {type(mapping).__name__}")
        targets: dict[str, tuple[str, ...]] = {}
        catch_all = None
        owner: dict[str, str] = {}
        for target, labels in mapping.items():
            field = f"{where}.{target}"
            if not isinstance(target, str) or not target.strip() or target == "mixture":
                raise RecipeError(field, "target names must be non-empty strings other than "
                                         "'mixture'")
            if labels == CATCH_ALL:
                if catch_all is not None:
                    raise RecipeError(field, f"only one target may be the catch-all '*' "
                                             f"('{catch_all}' already is)")
                catch_all = target
                continue
            if isinstance(labels, str):
                labels = [labels]
            if not isinstance(labels, (list, tuple)) or not labels or not all(
                    isinstance(x, str) and x.strip() for x in labels):
                raise RecipeError(field, "expected a non-empty list of label strings or '*'")
            for label in labels:
                other = owner.get(_norm(label))
                if other is not None and other != target:
                    raise RecipeError(field, f"label {label!r} is already claimed by target "
                                             f"'{other}'")
                owner[_norm(label)] = target
            targets[target] = tuple(labels)
        return cls(targets, catch_all)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Taxonomy":
        """Read a taxonomy from a YAML or JSON file (a top-level ``taxonomy:`` key is allowed)."""
        import yaml

        from . import strict_yaml

        p = Path(path)
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or "not a text file"
            raise RecipeError("taxonomy", f"{p}: cannot read taxonomy file ({why})") from e
        try:
            data = json.loads(text) if p.suffix == ".json" else strict_yaml.load(text)
        except strict_yaml.DuplicateKey as e:
            raise RecipeError(f"taxonomy.{e.path}", f"{p}: given twice (lines {e.first} and "
                              f"{e.line}); give each target once") from None
        except yaml.YAMLError as e:
            raise RecipeError("taxonomy", f"{p}: not valid YAML/JSON "
                              f"({strict_yaml.describe(e)})") from e
        except ValueError as e:
            raise RecipeError("taxonomy", f"{p}: not valid JSON ({e})") from e
        if isinstance(data, dict) and set(data) == {"taxonomy"}:
            data = data["taxonomy"]
        return cls.from_mapping(data, where=f"taxonomy ({p})")

    @classmethod
    def coerce(cls, value) -> "Taxonomy | None":
        """None, a Taxonomy, a mapping, or a path to a YAML/JSON file."""
        if value is None or isinstance(value, Taxonomy):
            return value
        if isinstance(value, dict):
            return cls.from_mapping(value)
        return cls.load(value)

    def to_mapping(self) -> dict:
        out: dict = {t: list(labels) for t, labels in self.targets.items()}
        if self.catch_all is not None:
            out[self.catch_all] = CATCH_ALL
        return out

    # ------------------------------------------------------------------ queries
    def target_of(self, label: str) -> str | None:
        """The target claiming ``label`` (the catch-all if none does), or None."""
        key = _norm(label)
        for target, labels in self.targets.items():
            if any(_norm(x) == key for x in labels):
                return target
        return self.catch_all

    def unclaimed(self, labels) -> list[str]:
        """The labels of ``labels`` no target claims (always empty with a catch-all)."""
        return sorted({x for x in labels if self.target_of(x) is None})

    # ------------------------------------------------------------------ application
    def apply(self, entry: TrackEntry) -> TrackEntry:
        """``entry`` with stems renamed to targets, same-target stems summed, others dropped.

        ``meta["labels"]`` records which labels went into each target, ``meta["unclaimed"]``
        the dropped labels.
        """
        members: dict[str, list[tuple[str, SourceRef]]] = {}
        unclaimed = []
        for name, ref in entry.stems.items():
            label = ref.label or name
            target = self.target_of(label)
            if target is None:
                unclaimed.append(label)
            else:
                members.setdefault(target, []).append((label, ref))
        stems = {t: _merge(entry, t, refs) for t, refs in members.items()}
        meta = {**entry.meta, "labels": {t: [lb for lb, _ in refs] for t, refs in members.items()}}
        if unclaimed:
            meta["unclaimed"] = sorted(set(unclaimed))
        return dataclasses.replace(entry, stems=stems, meta=meta)

    def apply_all(self, entries: list[TrackEntry]) -> tuple[list[TrackEntry], dict[str, int]]:
        """Apply to every track; drop tracks left without stems.

        Returns the new entries and ``{unclaimed label: number of tracks holding it}``.
        """
        out, counts = [], Counter()
        for e in entries:
            new = self.apply(e)
            counts.update(new.meta.get("unclaimed", []))
            if new.stems:
                out.append(new)
        return out, dict(sorted(counts.items()))


def _merge(entry: TrackEntry, target: str, refs: list[tuple[str, SourceRef]]) -> SourceRef:
    if len(refs) == 1:
        label, ref = refs[0]
        return dataclasses.replace(ref, label=label)
    first = refs[0][1]
    for label, ref in refs[1:]:
        if (ref.stream, ref.channel) != (first.stream, first.channel) or (
                first.stream is not None or first.channel is not None):
            raise IndexError_(
                f"track '{entry.id}': taxonomy target '{target}' would sum "
                f"{', '.join(lb for lb, _ in refs)}, which are single streams/channels of a file "
                f"({first.path}); only whole files can be summed, use a group instead")
    paths = [p for _, r in refs for p in r.paths]
    labels = list(dict.fromkeys(lb for lb, _ in refs))
    return SourceRef(paths[0], first.stream, ", ".join(labels), tuple(paths[1:]), first.channel)
