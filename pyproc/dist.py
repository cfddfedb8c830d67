"""Distributions for weights, delays and initial membrane potentials.

A plain number means a constant.  ``normal(mean, sd)`` is a *truncated*
normal sampled by inverse CDF (one 32-bit word per value, no redraw loop; the
inverse CDF in integer arithmetic, piecewise linear on 4096 equal-probability
intervals with knots from Acklam's approximation, the two outermost intervals
(probability 2^-11 together) on 32 intervals per octave of p -- see
``pyproc.sampling.quantile_fx``):

* as a weight it is truncated at 0 keeping the sign of ``mean`` (what NEST
  and GeNN call "clipped by redraw" has the same distribution);
* as a delay it is truncated below at ``dt`` (then rounded to steps), or to
  ``[max(low, dt), high]`` when ``normal(mean, sd, low=..., high=...)`` gives
  bounds (the largest delay a 32-bit uniform can give without ``high`` is about
  mean + 6.2 sd, and it sizes the target population's delay ring);
* as an initial membrane potential it is not truncated (and sampled with
  Acklam's approximation itself, on the host).

``uniform(low, high)`` is available for initial potentials.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .errors import ModelError, number

__all__ = ["Constant", "Normal", "Uniform", "normal", "uniform", "as_dist"]


def _finite(name: str, value) -> float:
    return number(name, value)


@dataclass(frozen=True)
class Constant:
    value: float

    def describe(self) -> str:
        return f"{self.value:g}"


@dataclass(frozen=True)
class Normal:
    mean: float
    sd: float
    low: Optional[float] = None    # optional truncation bounds (delays only)
    high: Optional[float] = None

    def describe(self) -> str:
        bounds = "".join(f", {k}={v:g}" for k, v in (("low", self.low), ("high", self.high))
                         if v is not None)
        return f"normal(mean={self.mean:g}, sd={self.sd:g}{bounds})"


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def describe(self) -> str:
        return f"uniform({self.low:g}, {self.high:g})"


def normal(mean: float, sd: float, low: Optional[float] = None,
           high: Optional[float] = None) -> Normal:
    """Normal distribution (truncated where used as a weight or delay, see module doc).
    ``low`` / ``high`` (optional, delays only) truncate it to [low, high]; the
    interval must hold some probability mass (low < high)."""
    mean = _finite("normal: mean", mean)
    sd = _finite("normal: sd", sd)
    if sd < 0:
        raise ModelError(f"normal: sd must be >= 0, got {sd}")
    low = None if low is None else _finite("normal: low", low)
    high = None if high is None else _finite("normal: high", high)
    if low is not None and high is not None and not low < high:
        raise ModelError(f"normal: low must be < high, got low={low}, high={high}")
    return Normal(mean, sd, low, high)


def uniform(low: float, high: float) -> Uniform:
    """Uniform distribution on [low, high) (initial potentials only)."""
    low = _finite("uniform: low", low)
    high = _finite("uniform: high", high)
    if not high > low:
        raise ModelError(f"uniform: high must be > low, got low={low}, high={high}")
    return Uniform(low, high)


def as_dist(field: str, value):
    """Normalise a user value (number or distribution) for ``field``."""
    if isinstance(value, (Constant, Normal, Uniform)):
        if isinstance(value, Normal) and value.sd == 0:
            if (value.low is not None and value.mean < value.low) or (
                    value.high is not None and value.mean > value.high):
                raise ModelError(f"{field}: {value.describe()} with sd = 0 lies outside its "
                                 f"bounds")
            return Constant(value.mean)
        return value
    return Constant(_finite(field, value))
