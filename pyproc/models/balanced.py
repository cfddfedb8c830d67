"""A Vogels–Abbott-style balanced network of iaf_psc_exp neurons.

80 % excitatory, 20 % inhibitory, pairwise_bernoulli(p) between all four
population pairs (autapses excluded), Poisson background.  Weights are scaled
as 1/sqrt(K) with the in-degree K = p N so that the balanced state holds from
1e3 to 1e6 neurons (van Vreeswijk & Sompolinsky 1996); at N = 1e4, p = 0.1 the
excitatory PSC is 87.8 pA (0.15 mV PSP, as Potjans & Diesmann 2014).
"""
from __future__ import annotations

import math

from ..dist import normal
from ..errors import ModelError, number
from ..network import LIF, Network
from ..rules import pairwise_bernoulli

__all__ = ["balanced"]


def balanced(neurons: int = 10000, p: float = 0.1, dt: float = 0.1, seed: int = 1,
             g: float = 5.0, w_E: float = 87.8, rate_ext: float = 8.0, K_ext: int = 1000,
             delay: float = 1.5, weight_sd: float = 0.1) -> Network:
    """Build the balanced network (``neurons`` in total).  ``g`` >= 0: an inhibitory
    weight is -g times the excitatory one (NEST's brunel example's convention; the
    microcircuit's ``g`` is negative, as in Potjans & Diesmann); ``w_E`` > 0 pA;
    ``weight_sd`` >= 0, relative to the weight (0: constant weights)."""
    try:
        ok = number("balanced: neurons", neurons).is_integer() and neurons >= 5
    except ModelError:
        ok = False
    if not ok:
        raise ModelError(f"balanced: neurons must be a whole number >= 5, got {neurons!r}")
    neurons = int(neurons)
    for name, v, low, strict in (("g", g, 0.0, False), ("w_E", w_E, 0.0, True),
                                 ("weight_sd", weight_sd, 0.0, False)):
        v = number(f"balanced: {name}", v)
        if v < low or (strict and v == low):
            raise ModelError(f"balanced: {name} must be {'>' if strict else '>='} {low:g}, "
                             f"got {v:g}" + (" (the inhibitory weight is -g * w_E)"
                                             if name == "g" else ""))
    n_e = int(round(0.8 * neurons))
    n_i = neurons - n_e
    params = LIF(C_m=250.0, tau_m=10.0, E_L=-65.0, V_th=-50.0, V_reset=-65.0, t_ref=2.0,
                 tau_syn_ex=0.5, tau_syn_in=0.5)
    net = Network(dt=dt, seed=seed)
    for name, n in (("E", n_e), ("I", n_i)):
        net.add_population(name, n, params, v_init=normal(-58.0, 5.0))
    k_ref = 0.1 * 10000 * 0.8
    scale = math.sqrt(k_ref / max(p * n_e, 1e-12)) if p > 0 else 1.0
    we = w_E * scale
    wi = -g * we
    for src, w in (("E", we), ("I", wi)):
        for tgt in ("E", "I"):
            wd = normal(w, abs(w) * weight_sd) if weight_sd > 0 else w
            net.connect(src, tgt, pairwise_bernoulli(p, allow_autapses=False), weight=wd,
                        delay=delay)
    for tgt in ("E", "I"):
        net.add_poisson(tgt, rate=rate_ext, K=K_ext, weight=w_E)
    return net
