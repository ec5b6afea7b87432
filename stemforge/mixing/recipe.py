"""Recipes: what mixtures to draw, validated on load with field-level messages.

YAML form (every field optional except ``targets``; see recipes/ for examples)::

    name: musdb-vocals
    duration: 5.0                 # seconds per mixture
    sample_rate: 44100
    channels: 2
    resample: false               # allow index tracks at another sample rate (soxr)
    split: train                  # index split(s) to draw from, or "all"; required when the
                                  # index has several splits (never train and test by accident)
    targets: [vocals, accompaniment]          # stems or group names; output order
    groups: {accompaniment: [drums, bass, other]}   # group targets (declared here: a recipe is self-contained)
    exclude: [piano]              # stems of the index left out on purpose (else a warning)
    pad: false                    # true: tracks shorter than duration are drawn, zero-padded
    datasets: {musdb: 0.6, moises: {weight: 0.4, split: train}}   # several datasets, bound
                                  # by name: Mixer(recipe, {"musdb": index, ...}), --index NAME=ROOT
    dataset_mode: within          # incoherent stems from the item's dataset (across: one each)
    master: [{step: limiter, threshold_db: [uniform, -6, -1], release_ms: 100}]  # mastering bus
                                  # ({linear: false, steps: [...]}: steps on the mix alone,
                                  # see stemforge.mixing.master)
    mixup: {p: [0.2, 0.02], gain_db: 0}   # MSST's mixup: with these independent probabilities
                                  # an extra stem of the same name from another track joins
                                  # each source slot (p may map stems/groups -> lists)
    balance: {max_presence: 0.4}  # class balance: every item anchored on a rare target (in at
                                  # most 40 % of a dataset's tracks), placed where it is active
    tracks: uniform               # by_duration: a track's probability is its number of valid
                                  # starts (excerpts uniform over all audio, Demucs/MSST-style)
    modes: {coherent: 0.5, incoherent: 0.5}
    ref_db: [uniform, -30, -10]               # Scaper's reference loudness (LUFS)
    stems:                                    # per-stem parameters
      default: {snr: [uniform, -5, 5]}        #   applies to every stem
      vocals: {boost: 3}                      #   a stem or a group name (applies to members)
    clipping: fix_clipping        # fix_clipping | peak_normalize | none
    silence: {min_active: 0.25, threshold_db: -60, max_retries: 20, on_exhausted: keep}
    augment: [...]                # see stemforge.augment.chain
    exclude_flagged: doctor.json  # drop what `stemforge doctor` flagged (stemforge.doctor.exclude);
                                  # `exclude: doctor.json` (a path, not a list) says the same

Per-stem parameters: ``track`` ([choose, []] = any track holding the stem), ``start`` (fraction
of the valid start range, [uniform, 0, 1] by default), exactly one of ``snr`` (LUFS relative to
``ref_db``, Scaper semantics) or ``gain_db`` (dB relative to the source; the default is ``gain_db: 0``, the original levels), ``boost`` (dB added
on top, e.g. a target boost), ``drop`` (probability of silencing a stem that is a member of a
group target, never a stand-alone target).

Open targets, resolved against the index by :meth:`Recipe.bind` (``Mixer`` does it):
``"*"`` stands for every stem of the index not named elsewhere, each its own target; ``rest``
(unless declared in ``groups``) is one group target collecting every stem not named elsewhere,
so ``targets: [vocals, rest]`` keeps ``mix == sum(targets)`` over all of the index's stems.

Overrides (``--set FIELD=VALUE``, ``overrides=``): dotted paths into the recipe
(``stems.vocals.snr``, ``augment.0.p``) set before validation, so an override is checked like the
file; the recipe's hash (recorded in every spec and job) is that of the effective recipe.
Packaged recipes (``stemforge/recipes/*.yaml``) load by name: ``Recipe.load("musdb_vocals")``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .. import strict_yaml
from ..augment.chain import Chain, parse_chain
from ..errors import RecipeError
from ..indexset import valid_dataset_name
from .. import distributions as D
from .master import UNMASTERED, parse_master
from ..distributions import Distribution

TOP_FIELDS = ("name", "duration", "sample_rate", "channels", "resample", "split", "targets",
              "groups", "modes", "ref_db", "stems", "clipping", "silence", "augment", "sources",
              "fade_in", "fade_out", "exclude", "pad", "datasets", "dataset_mode", "tracks",
              "master", "exclude_flagged", "mixup", "balance")
ALL_SPLITS = "all"   # split: all = every split of the index, said explicitly
WILDCARD = "*"       # targets: ["*"] = every stem of the index, each its own target
REST = "rest"        # targets: [vocals, rest] = one target of every other stem
STEM_FIELDS = ("track", "start", "snr", "gain_db", "boost", "drop",
               "source_time", "event_time", "event_duration", "events", "role")
ROLES = ("foreground", "background")
CLIPPING = ("fix_clipping", "peak_normalize", "none")
MODES = ("coherent", "incoherent")
SILENCE_FIELDS = ("min_active", "threshold_db", "max_retries", "on_exhausted")
BY_DURATION = "by_duration"   # a weight proportional to the audio there is to draw from
DATASET_FIELDS = ("weight", "split")
DATASET_MODES = ("within", "across")
TRACK_CHOICES = ("uniform", BY_DURATION)  # uniform over tracks, or over all audio (by length)
MIXUP_FIELDS = ("p", "gain_db")
BALANCE_FIELDS = ("max_presence", "threshold_db", "min_active")
MIXUP_MAX_EXTRAS = 4   # at most this many extra stems per slot (len(mixup.p))


@dataclass(frozen=True)
class StemParams:
    """Distributions for one stem. ``level`` is ``("snr", dist)`` or ``("gain_db", dist)``."""

    track: Distribution
    start: Distribution
    level: tuple[str, Distribution]
    boost: Distribution
    drop: float
    # Scaper's event model (None: the stem spans the whole mixture, one event, ``start``)
    source_time: Distribution | None = None     # seconds into the track (instead of ``start``)
    event_time: Distribution | None = None      # seconds into the mixture
    event_duration: Distribution | None = None  # seconds
    events: Distribution | None = None          # how many events of this stem per mixture
    role: str = "foreground"

    @property
    def is_event(self) -> bool:
        """True when a field of the event model is in use."""
        return (self.source_time is not None or self.event_time is not None
                or self.event_duration is not None or self.events is not None
                or self.role != "foreground")


@dataclass(frozen=True)
class Silence:
    min_active: float = 0.0
    threshold_db: float = -60.0
    max_retries: int = 20
    on_exhausted: str = "keep"  # keep (recorded in spec.warnings) | error


@dataclass(frozen=True)
class DatasetParams:
    """One dataset of a several-dataset recipe: its relative ``weight`` (None =
    ``by_duration``: proportional to the seconds of audio its candidate tracks hold) and
    ``split`` (None = the recipe's ``split``; ``all_splits``: ``split: all`` said for it)."""

    weight: float | None
    split: list[str] | None = None
    all_splits: bool = False


@dataclass(frozen=True)
class Mixup:
    """Mixup of same-class stems (MSST's ``mixup``): per source stem, the independent
    probabilities of each extra stem (``p[stem]``, a tuple; empty: no mixup for that stem)
    and ``gain_db``, a distribution added to each extra's level."""

    p: dict
    gain_db: Distribution


@dataclass(frozen=True)
class Balance:
    """Class balance (MSST's dataset type 7, activity-aware): every item is anchored on a
    target drawn uniformly among the *rare* ones, those present in at most ``max_presence``
    of a dataset's tracks, and placed so that it is active; ``threshold_db`` and
    ``min_active`` define activity and presence (:mod:`stemforge.mixing.activity`)."""

    max_presence: float
    threshold_db: float = -60.0
    min_active: float = 0.1


@dataclass
class Recipe:
    """A validated recipe. Build with :meth:`load` (YAML path), :meth:`from_dict` or
    :meth:`from_yaml`; ``raw`` keeps the normalised input for hashing and round trips."""

    targets: list[str]
    sources: list[str]
    groups: dict[str, list[str]]
    duration: float
    sample_rate: int
    channels: int
    resample: bool
    split: list[str] | None
    modes: dict[str, float]
    ref_db: Distribution
    stems: dict[str, StemParams]
    clipping: str
    silence: Silence
    augment: Chain
    name: str = "recipe"
    fade_in: float = 0.0   # seconds of Scaper's sine fade-in/out of every foreground event
    fade_out: float = 0.0
    raw: dict = field(default_factory=dict, repr=False)
    all_splits: bool = False            # split: all (said explicitly)
    exclude: tuple[str, ...] = ()       # stems left out on purpose
    pad: bool = False                   # short tracks drawn zero-padded (Demucs-style)
    #: several datasets, bound by name (None: the one index the recipe is given)
    datasets: dict[str, DatasetParams] | None = None
    dataset_mode: str = "within"        # incoherent stems: the item's dataset, or across
    tracks: str = "uniform"             # by_duration: track probability ∝ its valid starts
    #: mastering bus: (step, {param: Distribution}) for a gain computer, (step, ChainEntry)
    #: for a step on the mix alone (stemforge.mixing.master), in order
    master: tuple = ()
    #: master: {linear: false, ...}: the mix is the bus's output, not the sum of the targets
    master_linear: bool = True
    #: mixup of same-class stems (None: none)
    mixup: Mixup | None = None
    #: class balance (None: none)
    balance: Balance | None = None
    open: bool = False                  # targets hold "*" or rest: bind(index stems) first
    exclusions: Any = None   # what `stemforge doctor` flagged: doctor.exclude.ExclusionList

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, overrides=None) -> "Recipe":
        """A recipe file, or the name of a packaged recipe (``musdb_vocals``; a file of that
        name wins). ``overrides``: see :meth:`with_overrides`."""
        from .packaged import find

        p = Path(path)
        try:
            if p.is_file():
                text, stem, where = p.read_text(), p.stem, str(p)
            else:
                text, stem, where = find(str(path)), Path(str(path)).stem, f"packaged {path}"
        except OSError as e:
            raise RecipeError("<file>", f"{p}: cannot read the recipe ({e.strerror})") from e
        except UnicodeDecodeError as e:
            raise RecipeError("<file>", f"{p}: not a text file ({e.reason})") from e
        data = _parse_yaml(text, where)
        if p.is_file():  # doctor reports are named relative to the recipe file
            data = _embed_flagged(data, p.parent)
        r = cls.from_dict(data, overrides=overrides)
        if r.name == "recipe" and "name" not in (data or {}):
            r.name = stem
        return r

    @classmethod
    def from_yaml(cls, text: str, overrides=None) -> "Recipe":
        return cls.from_dict(_parse_yaml(text, "<text>"), overrides=overrides)

    def with_overrides(self, overrides) -> "Recipe":
        """This recipe with fields replaced, validated like a file: ``overrides`` is a mapping
        ``{"stems.vocals.snr": [uniform, -3, 3], ...}`` or a list of ``"FIELD=VALUE"`` strings
        (values parsed as YAML, as ``--set`` gives them)."""
        r = Recipe.from_dict(self.raw, overrides=overrides)
        if "name" not in self.raw:
            r.name = self.name
        return r

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], overrides=None) -> "Recipe":
        """Validate ``data`` (after ``overrides``, see :meth:`with_overrides`); every problem
        raises RecipeError naming the field (and the override that set it)."""
        if not isinstance(data, Mapping):
            raise RecipeError("<root>", f"a recipe is a mapping of fields, got {type(data).__name__}")
        if overrides:
            data, applied = apply_overrides(data, overrides)
            try:
                return cls.from_dict(data)
            except RecipeError as e:
                raise _blame(e, applied) from None
        raw = copy.deepcopy(dict(_embed_flagged(data, None)))
        _check_finite(raw, "")
        for k in raw:
            if k not in TOP_FIELDS:
                raise RecipeError(k, f"unknown field; known fields: {', '.join(TOP_FIELDS)}")
        if _is_open(raw):
            return _open_recipe(cls, raw)
        name = _typed(raw.get("name", "recipe"), str, "name")
        duration = _number(raw.get("duration", 5.0), "duration", low=0, strict=True)
        sample_rate = _int(raw.get("sample_rate", 44100), "sample_rate", low=1000)
        channels = _int(raw.get("channels", 2), "channels", low=1, high=8)
        resample = _typed(raw.get("resample", False), bool, "resample")
        split, all_splits = _split(raw.get("split"), "split")
        datasets = _datasets(raw.get("datasets"))
        dataset_mode = raw.get("dataset_mode", "within")
        if dataset_mode not in DATASET_MODES:
            raise RecipeError("dataset_mode", f"expected one of {', '.join(DATASET_MODES)}, got "
                              f"{dataset_mode!r}")
        if "dataset_mode" in raw and datasets is None:
            raise RecipeError("dataset_mode", "only meaningful with datasets: (several datasets "
                              "in one recipe)")
        pad = _typed(raw.get("pad", False), bool, "pad")
        master, master_linear = parse_master(raw.get("master"), channels, sample_rate)
        tracks = raw.get("tracks", "uniform")
        if tracks not in TRACK_CHOICES:
            raise RecipeError("tracks", f"expected one of {', '.join(TRACK_CHOICES)}, got "
                              f"{tracks!r}")

        groups = raw.get("groups") or {}
        if not isinstance(groups, Mapping):
            raise RecipeError("groups", f"expected a mapping group -> [stems], got {groups!r}")
        for g, members in groups.items():
            if not isinstance(members, list) or not members or \
                    not all(isinstance(m, str) for m in members):
                raise RecipeError(f"groups.{g}", f"expected a non-empty list of stem names, got {members!r}")
        groups = {str(g): list(m) for g, m in groups.items()}

        targets = raw.get("targets")
        if targets is None:
            raise RecipeError("targets", "missing; list the stems or groups to output, "
                              "e.g. [vocals, accompaniment]")
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not targets or \
                not all(isinstance(t, str) and t for t in targets):
            raise RecipeError("targets", f"expected a non-empty list of names, got {targets!r}")
        if len(set(targets)) != len(targets):
            raise RecipeError("targets", f"duplicate names in {targets}")
        if not master_linear and UNMASTERED in targets:
            raise RecipeError("targets", f"a target cannot be named {UNMASTERED!r} with "
                              "master linear: false (the un-mastered sum's file has that name)")

        sources = _sources(targets, groups, raw.get("sources"))
        exclude = raw.get("exclude") or []
        if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
            raise RecipeError("exclude", f"expected a list of stem names, got {exclude!r}")
        clash = [x for x in exclude if x in sources]
        if clash:
            raise RecipeError("exclude", f"stem(s) {clash} are in a target and cannot be excluded")

        modes = raw.get("modes", {"coherent": 1.0})
        if isinstance(modes, str):
            modes = {modes: 1.0}
        if not isinstance(modes, Mapping) or not modes:
            raise RecipeError("modes", f"expected e.g. {{coherent: 0.5, incoherent: 0.5}}, got {modes!r}")
        for m, p in modes.items():
            if m not in MODES:
                raise RecipeError(f"modes.{m}", f"unknown mode; expected one of {', '.join(MODES)}")
            _number(p, f"modes.{m}", low=0, high=1)
        if abs(sum(modes.values()) - 1) > 1e-6:
            raise RecipeError("modes", f"probabilities must sum to 1, got {sum(modes.values()):g}")
        modes = {m: float(modes[m]) for m in MODES if m in modes}

        ref_db = D.parse(raw.get("ref_db", -20.0), "ref_db", low=-70, high=0)
        stems = _stem_params(raw.get("stems") or {}, sources, groups, targets)
        clipping = raw.get("clipping", "fix_clipping")
        if clipping not in CLIPPING:
            raise RecipeError("clipping", f"expected one of {', '.join(CLIPPING)}, got {clipping!r}")
        silence = _silence(raw.get("silence") or {})
        chain = parse_chain(raw.get("augment"), "augment", channels=channels,
                            sample_rate=sample_rate)
        chain = chain.resolve(sources, groups, "augment")
        _check_gain_steps(chain, stems)
        fades = [_number(raw.get(k, 0.0), k, low=0, high=duration) for k in ("fade_in", "fade_out")]
        _check_events(stems, modes, silence, chain, fades)
        mixup = _mixup(raw.get("mixup"), sources, groups)
        balance = _balance(raw.get("balance"))
        exclusions = None
        if raw.get("exclude_flagged") is not None:  # embedded: the hash covers the list itself
            exclusions = _exclusions(raw["exclude_flagged"], None)
            raw["exclude_flagged"] = exclusions.to_raw()
        return cls(targets=list(targets), sources=sources, groups=groups, duration=duration,
                   sample_rate=sample_rate, channels=channels, resample=resample, split=split,
                   modes=modes, ref_db=ref_db, stems=stems, clipping=clipping, silence=silence,
                   augment=chain, name=name, raw=raw, fade_in=fades[0], fade_out=fades[1],
                   all_splits=all_splits, exclude=tuple(exclude), pad=pad,
                   datasets=datasets, dataset_mode=dataset_mode, tracks=tracks,
                   master=master, master_linear=master_linear, exclusions=exclusions,
                   mixup=mixup, balance=balance)

    def bind(self, stem_names) -> "Recipe":
        """The closed recipe for an index holding ``stem_names`` (its split's stems, in index
        order): ``"*"`` replaced by every stem not named elsewhere (or excluded), each its own
        target; ``rest`` declared as the group of those stems. A closed recipe is returned as
        is. The bound recipe (explicit targets and groups) is the effective one: its hash is
        what specs and jobs record."""
        if not self.open:
            return self
        raw = copy.deepcopy(self.raw)
        targets = [raw["targets"]] if isinstance(raw["targets"], str) else list(raw["targets"])
        groups = dict(raw.get("groups") or {})
        named = {m for t in targets if t not in (WILDCARD, REST) for m in groups.get(t, [t])}
        left = [s for s in stem_names if s not in named and s not in self.exclude]
        have = ", ".join(stem_names)
        if not left:
            which = f"'{WILDCARD}'" if WILDCARD in targets else REST
            raise RecipeError("targets", f"{which} matches no stem: every stem of the index "
                              f"({have}) is already named in the recipe or excluded")
        if WILDCARD in targets:
            k = targets.index(WILDCARD)
            targets[k:k + 1] = left
        else:
            groups[REST] = left
        raw["targets"], raw["groups"] = targets, groups
        r = Recipe.from_dict(raw)
        if "name" not in raw:
            r.name = self.name
        return r

    # ------------------------------------------------------------------ facts
    @property
    def frames(self) -> int:
        """Output length in frames."""
        return int(round(self.duration * self.sample_rate))

    def members(self, target: str) -> list[str]:
        return list(self.groups.get(target, [target]))

    def target_of(self, stem: str) -> str:
        for t in self.targets:
            if stem in self.members(t):
                return t
        raise AssertionError(stem)  # from_dict guarantees every source is in a target

    def to_dict(self) -> dict:
        return copy.deepcopy(self.raw)

    def hash(self) -> str:
        """sha256 of the canonical JSON of the recipe as written (first 16 hex digits)."""
        text = json.dumps(self.raw, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- open targets
def _is_open(raw: Mapping) -> bool:
    targets = raw.get("targets")
    targets = [targets] if isinstance(targets, str) else targets
    if not isinstance(targets, list):
        return False
    return WILDCARD in targets or (REST in targets and REST not in (raw.get("groups") or {}))


def _open_recipe(cls, raw: dict) -> "Recipe":
    """A recipe with ``"*"``/``rest`` targets, validated as far as it can be without an index:
    bound to a probe list of stems (every name the recipe mentions, plus one stand-in), so
    every field but the stem names is checked now; :meth:`Recipe.bind` checks the rest."""
    targets = [raw["targets"]] if isinstance(raw["targets"], str) else list(raw["targets"])
    if WILDCARD in targets and REST in targets:
        raise RecipeError("targets", f"use either '{WILDCARD}' (each other stem its own target) "
                          f"or {REST} (all other stems in one target), not both")
    if targets.count(WILDCARD) > 1:
        raise RecipeError("targets", f"'{WILDCARD}' given twice")
    groups = raw.get("groups") or {}
    mentioned = [str(n) for n in (raw.get("stems") or {}) if n != "default" and n not in groups]
    for e in raw.get("augment") or []:
        names = e.get("stems") if isinstance(e, Mapping) else None
        if isinstance(names, list):
            mentioned += [str(n) for n in names if n not in groups and n not in (WILDCARD, REST)]
    mix_p = (raw.get("mixup") or {}).get("p") if isinstance(raw.get("mixup"), Mapping) else None
    if isinstance(mix_p, Mapping):
        mentioned += [str(n) for n in mix_p if n != "default" and n not in groups]
    probe_stems = list(dict.fromkeys(mentioned + ["<a stem of the index>"]))
    probe = cls(targets=[], sources=[], groups={}, duration=0, sample_rate=0, channels=0,
                resample=False, split=None, modes={}, ref_db=None, stems={}, clipping="",
                silence=Silence(), augment=Chain(()), raw=raw, open=True,
                exclude=tuple(raw.get("exclude") or ()))
    bound = probe.bind(probe_stems)
    fields = {k: getattr(bound, k) for k in bound.__dataclass_fields__}
    named = [m for t in targets if t not in (WILDCARD, REST) for m in groups.get(t, [t])]
    fields.update(targets=targets, raw=raw, open=True, sources=named)
    return cls(**fields)


# ---------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple[str, Any]:
    """``"stems.vocals.snr=[uniform,-3,3]"`` -> ``("stems.vocals.snr", ["uniform", -3, 3])``."""
    key, sep, value = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError("<override>", f"{text!r}: expected FIELD=VALUE, e.g. split=test")
    try:
        return key, yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as e:
        raise RecipeError(key, f"override {text!r}: the value is not valid YAML ({e})") from None


def apply_overrides(data: Mapping, overrides) -> tuple[dict, list[tuple[str, str]]]:
    """``(data with each override set, [(field, the override as given)])``. ``overrides``: a
    mapping ``{dotted field: value}`` or ``FIELD=VALUE`` strings. A field path walks mappings
    (missing ones are created) and lists (by index: ``augment.0.p``)."""
    out = copy.deepcopy(dict(data))
    if isinstance(overrides, Mapping):
        items = [(str(k), v, f"{k}={v!r}") for k, v in overrides.items()]
    else:
        items = [(*parse_override(o), str(o)) for o in
                 ([overrides] if isinstance(overrides, str) else overrides)]
    for key, value, _ in items:
        parts = key.split(".")
        if not all(parts):
            raise RecipeError(key, "override: empty part in the field path")
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                try:
                    k = int(part)
                    node[k]
                except (ValueError, IndexError):
                    raise RecipeError(".".join(parts[:i + 1]), f"override: {part!r} is not an "
                                      f"index of this list of {len(node)} entries") from None
            elif isinstance(node, dict):
                k = part
                if not last and node.get(k) is None:
                    node[k] = {}
            else:
                raise RecipeError(".".join(parts[:i]), f"override {key}: cannot set {part!r} "
                                  f"inside {node!r}")
            if last:
                node[k] = value
            else:
                node = node[k]
    return out, [(key, given) for key, _, given in items]


def _blame(e: RecipeError, applied: list[tuple[str, str]]) -> RecipeError:
    """``e`` naming the override that set its field (or a field inside it), if one did."""
    for key, given in reversed(applied):
        if e.field == key or e.field.startswith(key + ".") or e.field.startswith(key + "[") \
                or key.startswith(e.field + "."):
            msg = str(e).split(": ", 1)[1] if ": " in str(e) else str(e)
            return RecipeError(e.field, f"{msg} (override {given})")
    return e


# ---------------------------------------------------------------------- helpers
def _parse_yaml(text: str, where: str):
    """YAML text -> data; a syntax error or a key given twice is a RecipeError."""
    try:
        return strict_yaml.load(text)
    except strict_yaml.DuplicateKey as e:
        raise RecipeError(e.path, f"given twice in {where} (lines {e.first} and {e.line}); "
                          "give each field once") from None
    except yaml.YAMLError as e:
        raise RecipeError("<file>", f"{where}: not valid YAML ({strict_yaml.describe(e)})") from e


def _check_finite(value, path: str) -> None:
    """Every number in a recipe is finite (YAML's .inf/.nan would reach specs and job files)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(path or "<root>", f"expected a finite number, got {value!r}")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}.{i}" if path else str(i))


def _split(split, f: str) -> tuple[list[str] | None, bool]:
    """``(splits, all_splits)`` of a ``split`` field: a name, a list of names, or ``all``."""
    all_splits = split == ALL_SPLITS or split == [ALL_SPLITS]
    if all_splits:
        return None, True
    if split is not None:
        split = [split] if isinstance(split, str) else split
        if not isinstance(split, list) or not split or \
                not all(isinstance(s, str) for s in split):
            raise RecipeError(f, f"expected a split name, a list of names or "
                              f"'{ALL_SPLITS}', got {split!r}")
    return split, False


def _datasets(raw) -> dict[str, DatasetParams] | None:
    """``datasets: {name: weight | by_duration | {weight:, split:}}`` -> DatasetParams per
    name (None when absent), in name order (what the sampler draws by: the recipe's hash, and
    job files, do not keep the order keys were written in). Weights are relative (normalised
    by the sampler); ``by_duration`` is given for every dataset or for none."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw:
        raise RecipeError("datasets", f"expected a mapping name -> weight, e.g. {{musdb: 0.6, "
                          f"moises: 0.4}} (or {BY_DURATION}), got {raw!r}")
    out = {}
    for name, v in raw.items():
        f = f"datasets.{name}"
        if not valid_dataset_name(name):
            raise RecipeError(f, "a dataset name is letters, digits, _, - or . (it binds a root: "
                              "--index NAME=ROOT)")
        split, all_splits = None, False
        if isinstance(v, Mapping):
            for k in v:
                if k not in DATASET_FIELDS:
                    raise RecipeError(f"{f}.{k}",
                                      f"unknown field; known: {', '.join(DATASET_FIELDS)}")
            split, all_splits = _split(v.get("split"), f"{f}.split")
            v, f = v.get("weight", 1.0), f"{f}.weight"
        if v == BY_DURATION:
            weight = None
        else:
            try:
                weight = _number(v, f, low=0, strict=True)
            except RecipeError:
                raise RecipeError(f, f"expected a weight > 0 or {BY_DURATION}, got {v!r}") from None
        out[str(name)] = DatasetParams(weight, split, all_splits)
    out = dict(sorted(out.items()))  # name order: job files store recipes with sorted keys
    kinds = {p.weight is None for p in out.values()}
    if len(kinds) > 1:
        raise RecipeError("datasets", f"give every dataset a number or every dataset "
                          f"{BY_DURATION}, not a mix of both")
    return out


def _mixup_probs(v, f: str) -> tuple:
    """A list of 1..MIXUP_MAX_EXTRAS probabilities in [0, 1] (or [] for none)."""
    if not isinstance(v, list) or len(v) > MIXUP_MAX_EXTRAS:
        raise RecipeError(f, f"expected a list of at most {MIXUP_MAX_EXTRAS} probabilities, "
                          f"one per extra stem (e.g. [0.2, 0.02]), got {v!r}")
    return tuple(_number(x, f"{f}.{i}", low=0, high=1) for i, x in enumerate(v))


def _mixup(raw, sources, groups) -> Mixup | None:
    """``mixup: {p: [0.2, 0.02], gain_db: ...}``; ``p`` may be a mapping keyed by stem, group
    or ``default`` (a stem's own entry wins over its group's, which wins over default)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise RecipeError("mixup", f"expected a mapping, e.g. {{p: [0.2, 0.02]}}, got {raw!r}")
    for k in raw:
        if k not in MIXUP_FIELDS:
            raise RecipeError(f"mixup.{k}", f"unknown field; known: {', '.join(MIXUP_FIELDS)}")
    if "p" not in raw:
        raise RecipeError("mixup.p", "missing; the probabilities of one, two... extra stems, "
                          "e.g. [0.2, 0.02]")
    p = raw["p"]
    if isinstance(p, Mapping):
        for k, v in p.items():
            if k != "default" and k not in sources and k not in groups:
                raise RecipeError(f"mixup.p.{k}", f"unknown stem or group; recipe sources are "
                                  f"{', '.join(sources)}")
        given = {k: _mixup_probs(v, f"mixup.p.{k}") for k, v in p.items()}
        per = {}
        for s in sources:
            probs = given.get("default", ())
            for g, members in groups.items():
                if s in members and g in given:
                    probs = given[g]
            per[s] = given.get(s, probs)
    else:
        probs = _mixup_probs(p, "mixup.p")
        per = dict.fromkeys(sources, probs)
    gain = D.parse(raw.get("gain_db", 0.0), "mixup.gain_db", low=-60, high=60)
    return Mixup({s: v for s, v in per.items() if any(x > 0 for x in v)}, gain)


def _balance(raw) -> Balance | None:
    """``balance: {max_presence: 0.4, threshold_db: -60, min_active: 0.1}``."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise RecipeError("balance", f"expected a mapping, e.g. {{max_presence: 0.4}}, "
                          f"got {raw!r}")
    for k in raw:
        if k not in BALANCE_FIELDS:
            raise RecipeError(f"balance.{k}", f"unknown field; known: "
                              f"{', '.join(BALANCE_FIELDS)}")
    if "max_presence" not in raw:
        raise RecipeError("balance.max_presence", "missing; the largest share of a dataset's "
                          "tracks a target may be present in and still be an anchor, e.g. 0.4")
    return Balance(
        max_presence=_number(raw["max_presence"], "balance.max_presence", low=0, high=1,
                             strict=True),
        threshold_db=_number(raw.get("threshold_db", -60.0), "balance.threshold_db", -120, 0),
        min_active=_number(raw.get("min_active", 0.1), "balance.min_active", low=0, high=1))


def _typed(v, t, f):
    if not isinstance(v, t) or (t is not bool and isinstance(v, bool)):
        raise RecipeError(f, f"expected {t.__name__}, got {v!r}")
    return v


def _number(v, f, low=None, high=None, strict=False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RecipeError(f, f"expected a number, got {v!r}")
    v = float(v)
    if low is not None and (v < low or (strict and v <= low)):
        raise RecipeError(f, f"must be {'>' if strict else '>='} {low:g}, got {v:g}")
    if high is not None and v > high:
        raise RecipeError(f, f"must be <= {high:g}, got {v:g}")
    return v


def _int(v, f, low=None, high=None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise RecipeError(f, f"expected an integer, got {v!r}")
    _number(v, f, low, high)
    return int(v)


def _sources(targets, groups, given) -> list[str]:
    derived = []
    for t in targets:
        for m in groups.get(t, [t]):
            if m in derived:
                raise RecipeError("targets", f"stem {m!r} belongs to more than one target")
            derived.append(m)
    if given is None:
        return derived
    if not isinstance(given, list) or not all(isinstance(s, str) for s in given):
        raise RecipeError("sources", f"expected a list of stem names, got {given!r}")
    orphans = [s for s in given if s not in derived]
    if orphans:
        raise RecipeError("sources", f"stem(s) {orphans} are in no target; every source must "
                          "belong to exactly one target (add a group such as accompaniment) so "
                          "that the mixture equals the sum of the targets")
    return [s for s in derived if s in given]


def _stem_params(raw, sources, groups, targets) -> dict[str, StemParams]:
    if not isinstance(raw, Mapping):
        raise RecipeError("stems", f"expected a mapping stem -> parameters, got {raw!r}")
    for name, params in raw.items():
        if name != "default" and name not in sources and name not in groups:
            raise RecipeError(f"stems.{name}", f"unknown stem or group; recipe sources are "
                              f"{', '.join(sources)}")
        if not isinstance(params, Mapping):
            raise RecipeError(f"stems.{name}", f"expected a mapping of parameters, got {params!r}")
        for k in params:
            if k not in STEM_FIELDS:
                raise RecipeError(f"stems.{name}.{k}", f"unknown parameter; known: {', '.join(STEM_FIELDS)}")
        if "snr" in params and "gain_db" in params:
            raise RecipeError(f"stems.{name}", "give either snr or gain_db, not both")
        if "start" in params and "source_time" in params:
            raise RecipeError(f"stems.{name}", "give either start (a fraction) or source_time "
                              "(seconds), not both")
    out = {}
    for s in sources:
        layers = [("default", raw.get("default", {}))]
        layers += [(g, raw[g]) for g, m in groups.items() if s in m and g in raw]
        layers += [(s, raw[s])] if s in raw else []
        merged, where = {}, {}
        for lname, params in layers:
            for pair in (("snr", "gain_db"), ("start", "source_time")):
                if any(k in params for k in pair):  # given later, it replaces both
                    for k in pair:
                        merged.pop(k, None)
            for k, v in params.items():
                merged[k], where[k] = v, f"stems.{lname}.{k}"
        level_key = "snr" if "snr" in merged else "gain_db"  # default: original levels
        level = D.parse(merged.get(level_key, 0.0), where.get(level_key, f"stems.default.{level_key}"),
                        low=-100, high=100)
        drop = _number(merged.get("drop", 0.0), where.get("drop", "stems.default.drop"), 0, 1)
        if drop > 0 and s in targets:
            raise RecipeError(where["drop"], f"stem {s!r} is itself a target and cannot be "
                              "dropped; only members of group targets can")
        out[s] = StemParams(
            track=D.parse(merged.get("track", ["choose", []]), where.get("track", "stems.default.track"),
                          numeric=False),
            start=D.parse(merged.get("start", ["uniform", 0, 1]), where.get("start", "stems.default.start"),
                          low=0, high=1),
            level=(level_key, level),
            boost=D.parse(merged.get("boost", 0.0), where.get("boost", "stems.default.boost"),
                          low=-60, high=60),
            drop=drop,
            **_event_params(merged, where),
        )
    return out


def _event_params(merged: Mapping, where: Mapping) -> dict:
    """The event-model fields of one stem's merged parameters (absent ones stay None)."""
    out = {}
    for k, low in (("source_time", 0), ("event_time", 0), ("event_duration", 0)):
        if k in merged:
            out[k] = D.parse(merged[k], where[k], low=low)
    if "events" in merged:
        d = D.parse(merged["events"], where["events"], low=0, high=1000)
        values = d.args[0] if d.kind in ("choose", "choose_weighted") else \
            d.args[:1] if d.kind == "const" else None
        if values is None or not values or \
                not all(float(v).is_integer() for v in values):
            raise RecipeError(where["events"], "expected a whole number of events or "
                              "[choose, [counts]] / [choose_weighted, [counts], [p]]")
        out["events"] = d
    role = merged.get("role", "foreground")
    if role not in ROLES:
        raise RecipeError(where.get("role", "stems.default.role"),
                          f"expected one of {', '.join(ROLES)}, got {role!r}")
    out["role"] = role
    return out


def _check_events(stems: dict, modes: dict, silence: "Silence", chain: Chain, fades) -> None:
    """The event model's combinations that have no defined meaning are refused."""
    for s, p in stems.items():
        if p.events is not None and modes.get("coherent", 0) > 0:
            raise RecipeError(f"stems.{s}.events", "several events of a stem come from "
                              "independent placements: use modes: {incoherent: 1}")
        if p.is_event and silence.min_active > 0:
            raise RecipeError("silence.min_active", f"stem {s!r} uses Scaper's event model "
                              "(events are placed where they are drawn); set min_active: 0")
        if p.role == "background" and any(e.targets(s, {}) for e in chain.entries):
            raise RecipeError(f"stems.{s}.role", "a background is looped as read; it takes "
                              "no augmentation steps (Scaper's backgrounds have none)")


def _silence(raw) -> Silence:
    if not isinstance(raw, Mapping):
        raise RecipeError("silence", f"expected a mapping, got {raw!r}")
    for k in raw:
        if k not in SILENCE_FIELDS:
            raise RecipeError(f"silence.{k}", f"unknown field; known: {', '.join(SILENCE_FIELDS)}")
    on = raw.get("on_exhausted", "keep")
    if on not in ("keep", "error"):
        raise RecipeError("silence.on_exhausted", f"expected keep or error, got {on!r}")
    return Silence(
        min_active=_number(raw.get("min_active", 0.0), "silence.min_active", 0, 1),
        threshold_db=_number(raw.get("threshold_db", -60.0), "silence.threshold_db", -120, 0),
        max_retries=_int(raw.get("max_retries", 20), "silence.max_retries", 0, 10000),
        on_exhausted=on,
    )


def _exclusions(value, base, field: str = "exclude_flagged"):
    """The recipe's ``exclude_flagged`` (doctor.json path(s) relative to ``base``, or the
    embedded list) as an ExclusionList."""
    from ..doctor.exclude import ExclusionList

    return ExclusionList.coerce(value, field, base)


def _embed_flagged(data, base):
    """``data`` with its doctor exclusions embedded under ``exclude_flagged``. ``exclude`` is a
    list of stem names; given a doctor report instead (a path, or the embedded mapping), it is
    read as ``exclude_flagged``. Paths are relative to ``base`` (the recipe's
    folder; None: the working directory)."""
    if not isinstance(data, Mapping):
        return data
    value, field = data.get("exclude_flagged"), "exclude_flagged"
    moved = isinstance(data.get("exclude"), (str, os.PathLike, Mapping))
    if moved:
        if value is not None:
            raise RecipeError("exclude", "a doctor report is given both as exclude and as "
                              "exclude_flagged; give it once")
        value, field = data["exclude"], "exclude"
    if value is None:
        return data
    out = {k: v for k, v in data.items() if not (moved and k == "exclude")}
    out["exclude_flagged"] = _exclusions(value, base, field).to_raw()
    return out


def _check_gain_steps(chain: Chain, stems: dict[str, StemParams]) -> None:
    """A gain step before loudness normalisation would be undone by it: refuse, don't ignore."""
    for e in chain.entries:
        if e.step.name != "gain":
            continue
        hit = [s for s in stems if e.targets(s, {}) and stems[s].level[0] == "snr"]
        if hit:
            raise RecipeError(f"{e.key}.step", f"a gain step on {hit} has no effect: those stems "
                              "are loudness-normalised (snr); use gain_db for them or vary snr")
