"""Parameter distributions written like Scaper's tuples.

In YAML a distribution is a list whose first item names it::

    snr: [uniform, -5, 5]
    ref_db: [normal, -20, 3]
    gain_db: [truncnorm, 0, 3, -6, 6]       # mu, sd, lo, hi
    track: [choose, []]                     # empty list = every candidate
    mode: [choose_weighted, [coherent, incoherent], [0.5, 0.5]]
    duration: 5.0                           # a bare value means [const, 5.0]

``parse(value, field)`` validates and returns a :class:`Distribution`; ``dist.sample(rng)``
draws one value with an explicit ``numpy.random.Generator``. ``sample_valid`` re-draws until a
predicate holds, at most ``max_tries`` times, then raises :class:`SamplingError` naming the field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dfield
from typing import Any, Callable, Sequence

import numpy as np

from .errors import RecipeError, SamplingError

KINDS = ("const", "choose", "choose_weighted", "uniform", "normal", "truncnorm")
CATEGORICAL = ("const", "choose", "choose_weighted")


@dataclass(frozen=True)
class Distribution:
    """One parsed distribution. ``args`` holds the tuple's arguments after the name."""

    kind: str
    args: tuple = ()
    field: str = dfield(default="", compare=False)
    #: (low, high) limits of the field; ``normal`` draws outside them are re-drawn (bounded)
    limits: tuple = dfield(default=(None, None), compare=False)
    max_tries: int = dfield(default=100, compare=False)

    # ------------------------------------------------------------------ drawing
    def sample(self, rng: np.random.Generator, choices: Sequence[Any] | None = None) -> Any:
        """Draw one value with ``rng``.

        ``choices`` fills an empty ``choose`` list (Scaper: empty list = all labels/files).
        The draw is :meth:`drawer`'s, built once per instance.
        """
        draw = self.__dict__.get("_draw")
        if draw is None:
            draw = self.drawer()
            object.__setattr__(self, "_draw", draw)  # a cache, not a field (frozen dataclass)
        return draw(rng, choices)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_draw", None)  # closures do not pickle; rebuilt on first use
        return state

    def drawer(self) -> Callable[..., Any]:
        """``f(rng, choices=None)`` drawing one value: the kind's dispatch and the argument
        conversions done once (the sampler keeps one per recipe field for its hot loop;
        :meth:`sample` uses it too, so there is one implementation of every kind)."""
        k, a = self.kind, self.args
        if k == "const":
            v = a[0]
            return lambda rng, choices=None: v
        if k == "uniform":
            # exactly ``rng.uniform(lo, hi)`` (numpy computes lo + (hi - lo) * next_double;
            # tested), without its argument broadcasting
            lo = float(a[0])
            width = float(a[1]) - lo
            return lambda rng, choices=None: lo + width * rng.random()
        if k == "choose" and a[0]:
            pool, n = a[0], len(a[0])
            return lambda rng, choices=None: pool[int(rng.integers(n))]
        if k == "choose":
            where = self.field

            def choose_from(rng, choices=None):
                if not choices:
                    raise SamplingError(f"recipe field '{where}': nothing to choose from")
                return choices[int(rng.integers(len(choices)))]  # indexed in place: no copy
            return choose_from
        if k == "choose_weighted":
            values = a[0]
            p = np.asarray(a[1], dtype=np.float64)
            p = p / p.sum()
            return lambda rng, choices=None: values[int(rng.choice(len(values), p=p))]
        if k == "normal":
            mu, sd = a
            lo, hi = self.limits
            tries, describe, where = self.max_tries, self.describe(), self.field

            def normal(rng, choices=None):
                for _ in range(tries):
                    v = float(rng.normal(mu, sd))
                    if (lo is None or v >= lo) and (hi is None or v <= hi):
                        return v
                raise SamplingError(f"recipe field '{where}': {describe} drew no value within "
                                    f"[{lo}, {hi}] in {tries} tries")
            return normal
        if k == "truncnorm":
            mu, sd, lo, hi = a
            if sd == 0:
                v = float(min(max(mu, lo), hi))
                return lambda rng, choices=None: v
            # inverse-CDF sampling: exact, no rejection loop
            from scipy.special import ndtr, ndtri

            cdf_lo, cdf_hi = ndtr((lo - mu) / sd), ndtr((hi - mu) / sd)

            def truncnorm(rng, choices=None):
                x = mu + sd * float(ndtri(rng.uniform(cdf_lo, cdf_hi)))
                return float(min(max(x, lo), hi))
            return truncnorm
        raise AssertionError(k)  # parse() guarantees a known kind

    def sample_valid(
        self,
        rng: np.random.Generator,
        valid: Callable[[Any], bool],
        what: str,
        max_tries: int = 100,
        choices: Sequence[Any] | None = None,
    ) -> Any:
        """Draw until ``valid(value)``; after ``max_tries`` failures raise SamplingError."""
        for _ in range(max_tries):
            v = self.sample(rng, choices)
            if valid(v):
                return v
        raise SamplingError(
            f"recipe field '{self.field}': {self.describe()} gave no valid value ({what}) "
            f"in {max_tries} draws"
        )

    # ------------------------------------------------------------------ facts
    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of the support; infinite for ``normal``. Numeric kinds only."""
        k, a = self.kind, self.args
        if k == "const":
            return (float(a[0]), float(a[0]))
        if k == "uniform":
            return (float(a[0]), float(a[1]))
        if k == "normal":
            if a[1] == 0:
                return (float(a[0]), float(a[0]))
            lo, hi = self.limits
            return (-math.inf if lo is None else lo, math.inf if hi is None else hi)
        if k == "truncnorm":
            return (float(a[2]), float(a[3]))
        vals = list(a[0])
        return (float(min(vals)), float(max(vals)))

    def describe(self) -> str:
        return "[" + ", ".join([self.kind, *map(repr, self.args)]) + "]"

    def to_yaml(self) -> Any:
        if self.kind == "const":
            return self.args[0]
        return [self.kind, *[list(x) if isinstance(x, tuple) else x for x in self.args]]


def _num(x: Any, field_: str, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise RecipeError(field_, f"{what} must be a number, got {x!r}")
    if not math.isfinite(float(x)):
        raise RecipeError(field_, f"{what} must be finite, got {x!r}")
    return float(x)


def parse(
    value: Any,
    field_: str,
    *,
    numeric: bool = True,
    allowed: Sequence[str] | None = None,
    low: float | None = None,
    high: float | None = None,
) -> Distribution:
    """Validate a YAML/Python value as a distribution for recipe field ``field_``.

    ``numeric``: values must be numbers (else labels/strings are allowed).
    ``allowed``: restrict the kinds (Scaper allows only const/choose/choose_weighted for labels).
    ``low``/``high``: every value the distribution can produce must lie within these bounds.
    """
    if isinstance(value, Distribution):
        return value
    if not isinstance(value, (list, tuple)):
        value = ["const", value]
    if not value:
        raise RecipeError(field_, "empty distribution; expected e.g. [uniform, -5, 5]")
    kind, *args = value
    if not isinstance(kind, str) or kind not in KINDS:
        raise RecipeError(
            field_, f"unknown distribution {kind!r}; expected one of {', '.join(KINDS)}"
        )
    allowed = allowed or (KINDS if numeric else CATEGORICAL)
    if kind not in allowed:
        raise RecipeError(
            field_, f"distribution {kind!r} not allowed here; expected one of {', '.join(allowed)}"
        )
    nargs = {"const": 1, "choose": 1, "choose_weighted": 2, "uniform": 2, "normal": 2,
             "truncnorm": 4}[kind]
    if len(args) != nargs:
        raise RecipeError(field_, f"{kind} takes {nargs} argument(s), got {len(args)}: {value!r}")

    def check(v: Any) -> Any:
        if not numeric:
            return v
        v = _num(v, field_, "value")
        if low is not None and v < low:
            raise RecipeError(field_, f"value {v:g} is below the minimum {low:g}")
        if high is not None and v > high:
            raise RecipeError(field_, f"value {v:g} is above the maximum {high:g}")
        return v

    if kind == "const":
        return Distribution(kind, (check(args[0]),), field_)
    if kind == "choose":
        if not isinstance(args[0], (list, tuple)):
            raise RecipeError(field_, f"choose takes a list, got {args[0]!r}")
        return Distribution(kind, (tuple(check(v) for v in args[0]),), field_)
    if kind == "choose_weighted":
        vals, probs = args
        if not isinstance(vals, (list, tuple)) or not isinstance(probs, (list, tuple)):
            raise RecipeError(field_, "choose_weighted takes a list of values and a list of probabilities")
        if len(vals) != len(probs) or not vals:
            raise RecipeError(field_, f"choose_weighted: {len(vals)} values but {len(probs)} probabilities")
        ps = [_num(p, field_, "probability") for p in probs]
        if any(p < 0 for p in ps) or sum(ps) <= 0:
            raise RecipeError(field_, f"choose_weighted probabilities must be >= 0 and not all 0, got {probs!r}")
        if abs(sum(ps) - 1.0) > 1e-6:
            raise RecipeError(field_, f"choose_weighted probabilities must sum to 1, got {sum(ps):g}")
        return Distribution(kind, (tuple(check(v) for v in vals), tuple(ps)), field_)
    nums = [_num(v, field_, f"{kind} argument") for v in args]
    if kind == "uniform":
        lo, hi = nums
        if lo > hi:
            raise RecipeError(field_, f"uniform low {lo:g} is greater than high {hi:g}")
        check(lo), check(hi)
        return Distribution(kind, (lo, hi), field_)
    if kind == "normal":
        mu, sd = nums
        if sd < 0:
            raise RecipeError(field_, f"normal standard deviation must be >= 0, got {sd:g}")
        check(mu)  # the mean must be valid; draws outside the limits are re-drawn (bounded)
        return Distribution(kind, (mu, sd), field_, limits=(low, high))
    mu, sd, lo, hi = nums
    if sd < 0:
        raise RecipeError(field_, f"truncnorm standard deviation must be >= 0, got {sd:g}")
    if lo > hi:
        raise RecipeError(field_, f"truncnorm low {lo:g} is greater than high {hi:g}")
    check(lo), check(hi)
    return Distribution(kind, (mu, sd, lo, hi), field_)
