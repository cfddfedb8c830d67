"""Connection rules, in NEST's vocabulary.

pairwise_bernoulli(p)
    Each (pre, post) pair is connected with probability p.  Sampled by
    geometric skipping: the gap to the next target is floor(log u / log(1-p))
    (inversion of the geometric distribution; Devroye 1986, ch. X.2).  The
    postsynaptic population is cut into fixed-width *segments* (width a power of
    two >= 8/p, from 32 to 65,536, a function of p alone) and every
    (pre, segment) pair has its own counter stream, so the synapses do not
    depend on how a GPU splits a row across threads.  No multapses.
fixed_total_number(N)
    Exactly N synapses between the two populations, sources and targets drawn
    with replacement (multapses allowed).  Row lengths (synapses per source
    neuron) are a multinomial split of N, drawn once on the host from the seed
    (NumPy's sequential-binomial multinomial); targets are uniform.
fixed_outdegree(k)
    Exactly k synapses per source neuron, targets uniform with replacement.

decoder()
    A deterministic test rule: source i -> target j exactly when bit j of
    i + 1 is set (j < 32).  It exercises spike delivery, delays and weights
    independently of the connectivity RNG.

``allow_autapses=False`` (only meaningful when source and target are the same
population) removes i -> i: pairwise_bernoulli skips the pair, the
fixed-number rules draw targets uniformly among the other n - 1 neurons.

all_to_all() is pairwise_bernoulli(1.0).  ``Network.connect`` also takes NEST's
conn_spec dicts and strings (:func:`from_conn_spec`).  Not available:
fixed_indegree (a source neuron regenerates its outgoing synapses alone, and a fixed
in-degree ties every target's count to all sources' draws; fixed_total_number with
N = K x targets gives binomial in-degrees of mean K, as the microcircuit uses),
one_to_one, symmetric_pairwise_bernoulli and pairwise_poisson.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ModelError, flag, number

__all__ = ["PairwiseBernoulli", "FixedTotalNumber", "FixedOutdegree", "Decoder",
           "pairwise_bernoulli", "fixed_total_number", "fixed_outdegree", "decoder",
           "all_to_all", "from_conn_spec", "segment_width"]


@dataclass(frozen=True)
class PairwiseBernoulli:
    p: float
    allow_autapses: bool = True
    name = "pairwise_bernoulli"


@dataclass(frozen=True)
class FixedTotalNumber:
    N: int
    allow_autapses: bool = True
    allow_multapses: bool = True
    name = "fixed_total_number"


@dataclass(frozen=True)
class FixedOutdegree:
    k: int
    allow_autapses: bool = True
    allow_multapses: bool = True
    name = "fixed_outdegree"


@dataclass(frozen=True)
class Decoder:
    allow_autapses: bool = True
    name = "decoder"


def decoder() -> Decoder:
    """Deterministic test connectivity: i -> j iff bit j of i + 1 is set (j < 32)."""
    return Decoder()


def _count(field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
            isinstance(value, float) and value.is_integer()):
        try:
            import numpy as np
            if isinstance(value, np.integer):
                value = int(value)
            else:
                raise TypeError
        except TypeError:
            raise ModelError(f"{field} must be a whole number >= 0, got {value!r}") from None
    value = int(value)
    if value < 0:
        raise ModelError(f"{field} must be a whole number >= 0, got {value}")
    return value


def pairwise_bernoulli(p: float, allow_autapses: bool = True) -> PairwiseBernoulli:
    p = number("pairwise_bernoulli: p", p, "in [0, 1]")
    if not (0.0 <= p <= 1.0):
        raise ModelError(f"pairwise_bernoulli: p must be in [0, 1], got {p}")
    return PairwiseBernoulli(p, flag("pairwise_bernoulli: allow_autapses", allow_autapses))


def fixed_total_number(N: int, allow_autapses: bool = True, allow_multapses: bool = True
                       ) -> FixedTotalNumber:
    N = _count("fixed_total_number: N", N)
    if not flag("fixed_total_number: allow_multapses", allow_multapses):
        raise ModelError("fixed_total_number: allow_multapses=False is not supported "
                         "(targets are drawn with replacement)")
    return FixedTotalNumber(N, flag("fixed_total_number: allow_autapses", allow_autapses), True)


def fixed_outdegree(k: int, allow_autapses: bool = True, allow_multapses: bool = True
                    ) -> FixedOutdegree:
    k = _count("fixed_outdegree: k", k)
    if not flag("fixed_outdegree: allow_multapses", allow_multapses):
        raise ModelError("fixed_outdegree: allow_multapses=False is not supported "
                         "(targets are drawn with replacement)")
    return FixedOutdegree(k, flag("fixed_outdegree: allow_autapses", allow_autapses), True)


def all_to_all(allow_autapses: bool = True) -> PairwiseBernoulli:
    """Every source to every target once: pairwise_bernoulli(1.0) (NEST's all_to_all)."""
    return pairwise_bernoulli(1.0, allow_autapses)


# NEST rule name -> (constructor, {NEST parameter: constructor argument})
_NEST_RULES = {
    "pairwise_bernoulli": (pairwise_bernoulli, {"p": "p"}),
    "fixed_total_number": (fixed_total_number, {"N": "N"}),
    "fixed_outdegree": (fixed_outdegree, {"outdegree": "k"}),
    "all_to_all": (all_to_all, {}),
}
_NOT_AVAILABLE = {
    "fixed_indegree": "a source neuron regenerates its outgoing synapses alone, and a fixed "
                      "in-degree ties each target's count to every source's draws; "
                      "{'rule': 'fixed_total_number', 'N': indegree * targets} gives "
                      "binomial in-degrees of that mean (the microcircuit's rule)",
    "one_to_one": "not implemented",
    "symmetric_pairwise_bernoulli": "not implemented",
    "pairwise_poisson": "not implemented (pairwise_bernoulli allows no multapses)",
}


def from_conn_spec(spec, where: str = "conn_spec"):
    """A rule from a NEST conn_spec: a dict such as ``{"rule": "pairwise_bernoulli",
    "p": 0.1, "allow_autapses": False}`` or ``{"rule": "fixed_outdegree", "outdegree":
    100}``, or a rule name without parameters (``"all_to_all"``).  NEST's defaults:
    autapses and multapses allowed.  Unknown rules and keys are named in the error."""
    if isinstance(spec, str):
        spec = {"rule": spec}
    if not isinstance(spec, dict):
        raise ModelError(f"{where}: a conn_spec is a dict with a 'rule' key or a rule "
                         f"name, got {spec!r}")
    if "rule" not in spec:
        raise ModelError(f"{where}: a conn_spec needs a 'rule' key, got keys "
                         f"{', '.join(map(repr, spec)) or 'none'}")
    rule = spec["rule"]
    if rule in _NOT_AVAILABLE:
        raise ModelError(f"{where}: rule {rule!r} is not available: {_NOT_AVAILABLE[rule]}")
    if rule not in _NEST_RULES:
        raise ModelError(f"{where}: unknown rule {rule!r}; available: "
                         + ", ".join(sorted(_NEST_RULES)))
    make, names = _NEST_RULES[rule]
    # every NEST rule takes allow_multapses; pairwise rules never make a multapse, so
    # either value means the same there
    allowed = set(names) | {"rule", "allow_autapses", "allow_multapses"}
    unknown = sorted(set(spec) - allowed, key=str)
    if unknown:
        raise ModelError(f"{where}: {rule} takes no {', '.join(map(repr, unknown))}; its "
                         f"keys: {', '.join(sorted(allowed))}")
    missing = [k for k in names if k not in spec]
    if missing:
        raise ModelError(f"{where}: {rule} needs {', '.join(map(repr, missing))}")
    kwargs = {arg: spec[key] for key, arg in names.items()}
    kwargs.update({k: spec[k] for k in ("allow_autapses", "allow_multapses") if k in spec})
    if rule in ("pairwise_bernoulli", "all_to_all") and "allow_multapses" in kwargs:
        flag(f"{where}: allow_multapses", kwargs.pop("allow_multapses"))
    return make(**kwargs)


def segment_width(p: float) -> int:
    """Segment width of pairwise_bernoulli(p): the smallest power of two >= 8/p,
    clipped to [32, 65536].  Part of the connectivity's definition."""
    if p <= 0.0 or 8.0 / p >= 65536:   # also a tiny p, whose 8/p is inf
        return 65536
    w = 1 << max(0, math.ceil(math.log2(8.0 / p)))
    return int(min(max(w, 32), 65536))
