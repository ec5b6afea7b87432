"""Several datasets in one recipe: :class:`IndexSet`, named indexes a recipe's ``datasets:``
draw from (``Mixer(recipe, {"musdb": index, "moises": index2})``, ``--index NAME=ROOT``).

Track ids are only unique within one dataset, so every source of a spec drawn from an IndexSet
records its ``dataset``; :func:`source_index` gives the index a source reads from (the index
itself for a plain :class:`~stemforge.index.Index`). Fingerprints key each track as
``dataset/track``.
"""
from __future__ import annotations

import re
from typing import Mapping

from .errors import IndexError_
from .manifest import fingerprint, keyed_fingerprint


def valid_dataset_name(name) -> bool:
    """A dataset name binds a root on the command line (``--index NAME=ROOT``): letters,
    digits, ``_``, ``-`` and ``.``, starting with a letter or ``_`` (never a path)."""
    return isinstance(name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name) is not None


class IndexSet:
    """Named indexes (``name -> Index``, in the order given). See the module docstring."""

    def __init__(self, indexes: Mapping[str, object]):
        if not indexes:
            raise IndexError_("no datasets given: bind at least one name to an index")
        self.datasets = dict(indexes)

    @property
    def root(self) -> str:
        """``name=root, ...``: where the datasets live (for messages)."""
        return ", ".join(f"{n}={ix.root}" for n, ix in self.datasets.items())

    @property
    def stem_names(self) -> list[str]:
        return sorted({s for ix in self.datasets.values() for s in ix.stem_names})

    def __len__(self) -> int:
        return sum(len(ix) for ix in self.datasets.values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={ix!r}" for n, ix in self.datasets.items())
        return f"IndexSet({inner})"

    def dataset(self, name: str):
        """The index bound to ``name`` (IndexError_ naming the bound ones otherwise)."""
        try:
            return self.datasets[name]
        except KeyError:
            raise IndexError_(f"dataset {name!r} is not bound (bound: "
                              f"{', '.join(self.datasets)})") from None

    def fingerprint_tracks(self) -> tuple[str, dict[str, str]]:
        """``(fingerprint, {dataset/track: digest})`` over every dataset's tracks."""
        return keyed_fingerprint({f"{n}/{t.id}": t for n, ix in self.datasets.items()
                                  for t in ix.tracks})


def source_index(index, src):
    """The index ``src`` (a spec source, or the sampler's draft of one) reads from: its
    ``dataset``'s in an :class:`IndexSet`, else ``index`` itself."""
    if isinstance(index, IndexSet):
        name = getattr(src, "dataset", "")
        if not name:
            raise IndexError_(f"source {src.stem!r} of track {src.track!r} names no dataset, but "
                              f"several are bound ({', '.join(index.datasets)}): a spec of a "
                              "one-dataset recipe renders from its one index")
        return index.dataset(name)
    return index


def fingerprint_of(index) -> tuple[str, dict[str, str]]:
    """``(fingerprint, per-track digests)`` of an Index or an IndexSet (see
    :func:`stemforge.manifest.fingerprint`)."""
    if isinstance(index, IndexSet):
        return index.fingerprint_tracks()
    return fingerprint(index.tracks)
