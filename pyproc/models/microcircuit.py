"""The Potjans & Diesmann (2014) cortical microcircuit.

Potjans TC, Diesmann M (2014) The cell-type specific cortical microcircuit:
relating structure and activity in a full-scale spiking network model.
Cereb. Cortex 24:785-806, doi:10.1093/cercor/bhs358 ("PD14" below).

Eight populations of iaf_psc_exp neurons (L23E, L23I, L4E, L4I, L5E, L5I,
L6E, L6I; 77,169 neurons at full scale) connected by ``fixed_total_number``
(sources and targets drawn with replacement: autapses and multapses allowed)
with the synapse counts of PD14 Eq. 1, ``Q = ln(1 - C) / ln(1 - 1/(N_pre N_post))``,
rounded with ``np.round`` as the PyNEST example does (298,880,968 synapses).
Weights are truncated normals (87.8 pA, relative sd 0.1, g = -4, L4E -> L23E
doubled; truncated at 0 keeping the sign), delays truncated normals
(1.5 ms from excitatory, 0.75 ms from inhibitory sources, relative sd 0.5,
truncated at dt, rounded to steps).  Background: K_ext Poisson inputs at 8 Hz
per neuron (weight 87.8 pA), or with ``poisson=False`` its DC equivalent
``I = 8 Hz * K_ext * 87.8 pA * tau_syn``.

Down-scaling follows the NEST PD14 example (nest-simulator
``pynest/examples/Potjans_2014``, ``helpers.adjust_weights_and_input_to_synapse_scaling``):
``scale`` multiplies the population sizes, ``k_scale`` (default ``scale``)
the in-degrees (synapse counts are ``round(Q * scale * k_scale)``, external
in-degrees ``round(K_ext * k_scale)``).  Weights are divided by
``sqrt(k_scale)`` and the lost mean input is restored by a DC current
``tau_syn * (1 - sqrt(k_scale)) * sum_x w_yx K_yx nu_x`` computed from the
full-scale in-degrees K and the full-scale mean rates nu of the NEST example
(plus the same term for the Poisson background when it is Poisson).
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np

from ..dist import normal
from ..errors import ModelError, flag, number
from ..network import LIF, Network, PoissonSource
from ..rules import fixed_total_number

__all__ = ["microcircuit", "POPULATIONS", "N_FULL", "CONN_PROBS", "K_EXT", "FULL_MEAN_RATES",
           "V0_OPTIMIZED_MEAN", "V0_OPTIMIZED_SD", "NEURON", "synapses_float", "derived",
           "TH_N", "TH_CONN_PROBS", "thalamic_synapses_float", "DC_AMP"]

# --- published parameters (PD14 Tables 4-5; NEST PyNEST example network_params.py) ----------
POPULATIONS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")

# PD14 Table 5, "Population size, N".
N_FULL = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948], dtype=np.int64)

# PD14 Table 5, connection probabilities C_yx: row = target y, column = source x.
CONN_PROBS = np.array([
    # L23E    L23I    L4E     L4I     L5E     L5I     L6E     L6I      <- source
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0,    0.0076, 0.0],     # L23E
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0,    0.0042, 0.0],     # L23I
    [0.0077, 0.0059, 0.0497, 0.1350, 0.0067, 0.0003, 0.0453, 0.0],     # L4E
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0,    0.1057, 0.0],     # L4I
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],     # L5E
    [0.0548, 0.0269, 0.0257, 0.0022, 0.0600, 0.3158, 0.0086, 0.0],     # L5I
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],  # L6E
    [0.0364, 0.0010, 0.0034, 0.0005, 0.0277, 0.0080, 0.0658, 0.1443],  # L6I
])

# PD14 Table 5, external (background) in-degrees K_ext, layer-specific version.
K_EXT = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100], dtype=np.int64)

# Full-scale mean rates (spikes/s) of the NEST PyNEST example (network_params.py
# 'full_mean_rates', "obtained by running this PyNEST microcircuit with 12 MPI
# processes and both N_scaling and K_scaling set to 1"); used only for the DC
# compensation of down-scaled in-degrees.
FULL_MEAN_RATES = np.array([0.943, 3.026, 4.368, 5.882, 7.733, 8.664, 1.096, 7.851])

# Initial membrane potentials, NEST example 'V0_type': 'optimized' (per-population
# mean and sd in mV, chosen to shorten the initial transient) or 'original' (PD14:
# N(-58 mV, 10 mV) for every population).
V0_OPTIMIZED_MEAN = np.array([-68.28, -63.16, -63.33, -63.45, -63.11, -61.66, -66.72, -61.43])
V0_OPTIMIZED_SD = np.array([5.36, 4.57, 4.74, 4.94, 4.94, 4.55, 5.46, 4.48])
V0_ORIGINAL = (-58.0, 10.0)

# PD14 Table 5, neuron model iaf_psc_exp (NEST units).
NEURON = dict(C_m=250.0, tau_m=10.0, E_L=-65.0, V_th=-50.0, V_reset=-65.0, t_ref=2.0,
              tau_syn_ex=0.5, tau_syn_in=0.5)

# PD14 Table 5: w = 87.8 pA (PSP 0.15 mV; the NEST example converts 0.15 mV to
# 87.81 pA), relative sd 0.1, g = -4, L4E -> L23E doubled; delays 1.5 / 0.75 ms
# (E / I source), relative sd 0.5; background rate 8 Hz.
W_E = 87.8
G = -4.0
W_REL_SD = 0.1
D_E, D_I, D_REL_SD = 1.5, 0.75, 0.5
BG_RATE = 8.0
_EXC = np.array([True, False] * 4)

# Optional thalamic input (PD14 "Thalamic input"; NEST example stimulus_params.py): 902
# thalamic neurons (not scaled), Poisson spike trains at 120 Hz from 700 to 710 ms, PSP
# 0.15 mV (the same 87.8 pA as w_E), delays 1.5 ms with relative sd 0.5; connection
# probabilities to the 8 populations (only layers 4 and 6 receive it).
TH_N = 902
TH_CONN_PROBS = np.array([0.0, 0.0, 0.0983, 0.0619, 0.0, 0.0, 0.0512, 0.0196])
TH_START, TH_DURATION, TH_RATE = 700.0, 10.0, 120.0

# Optional transient DC stimulus (NEST example stimulus_params.py 'dc_input'): a step
# current of DC_AMP x K_ext pA into each population (its external in-degree, full scale)
# from 650 to 750 ms.
DC_START, DC_DURATION, DC_AMP = 650.0, 100.0, 0.3


def synapses_float() -> np.ndarray:
    """Full-scale synapse numbers Q_yx of PD14 Eq. 1 (float, row = target, column = source).

    Written as in PD14 and the NEST example, ``log(1 - 1/(N_pre N_post))``: the more
    accurate ``log1p`` would change four published rounded counts by one."""
    prod = np.outer(N_FULL, N_FULL).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.log(1.0 - CONN_PROBS) / np.log(1.0 - 1.0 / prod)


def thalamic_synapses_float() -> np.ndarray:
    """Full-scale thalamic synapse numbers of PD14 Eq. 1 per target population (float):
    ``ln(1 - C_th) / ln(1 - 1/(902 N_post))``, written as synapses_float."""
    with np.errstate(divide="ignore"):
        return np.log(1.0 - TH_CONN_PROBS) / np.log(1.0 - 1.0 / (TH_N * N_FULL.astype(np.float64)))


def _scale_arg(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"microcircuit: {name} must be a number in (0, 1], got {value!r}") from None
    if not (0.0 < v <= 1.0) or not math.isfinite(v):
        raise ModelError(f"microcircuit: {name} must be in (0, 1], got {value!r}")
    return v


def derived(scale: float = 1.0, k_scale=None, poisson: bool = True, w_E: float = W_E,
            g: float = G, bg_rate: float = BG_RATE) -> Dict[str, np.ndarray]:
    """All scale-dependent numbers of the model (NumPy arrays, population order):

    ``N`` neurons, ``synapses`` (target x source, int64), ``W`` mean weights (pA,
    target x source, already divided by sqrt(k_scale)), ``K_ext`` external in-degrees,
    ``w_ext`` external weight (pA), ``I_e`` DC input (pA)."""
    scale = _scale_arg("scale", scale)
    k_scale = scale if k_scale is None else _scale_arg("k_scale", k_scale)
    w_E, g, bg_rate = (number(f"microcircuit: {n}", v) for n, v in
                       (("w_E", w_E), ("g", g), ("bg_rate", bg_rate)))
    if not w_E > 0:
        raise ModelError(f"microcircuit: w_E must be > 0 pA, got {w_E:g}")
    if g > 0:
        raise ModelError(f"microcircuit: g must be <= 0 (an inhibitory weight is g * w_E, "
                         f"g = -4 in Potjans & Diesmann), got {g:g}")
    if bg_rate < 0:
        raise ModelError(f"microcircuit: bg_rate must be >= 0 Hz, got {bg_rate:g}")
    tau_syn = NEURON["tau_syn_ex"]
    N = np.round(N_FULL * scale).astype(np.int64)
    if (N < 1).any():
        t = int(np.flatnonzero(N < 1)[0])
        raise ModelError(f"microcircuit: scale={scale:g} leaves a population without neurons "
                         f"({POPULATIONS[t]}: {int(N_FULL[t])} x {scale:g} rounds to 0 neurons)")
    Q = synapses_float()
    syn = np.round(Q * scale * k_scale).astype(np.int64)
    W_full = np.where(np.tile(_EXC, (8, 1)), w_E, g * w_E)
    W_full[0, 2] = 2.0 * w_E                       # L4E -> L23E doubled (PD14)
    # DC equivalent of the (full) Poisson background: nu K_ext w tau_syn (rates in 1/ms)
    dc = np.zeros(8) if poisson else 1e-3 * bg_rate * K_EXT * w_E * tau_syn
    K_ext = np.round(K_EXT * k_scale).astype(np.int64)
    sq = math.sqrt(k_scale)
    W, w_ext = W_full / sq, w_E / sq
    if k_scale != 1.0:
        K_full = Q / N_FULL[:, None]
        input_rec = (W_full * K_full * FULL_MEAN_RATES[None, :]).sum(axis=1)
        dc = dc + 1e-3 * tau_syn * (1.0 - sq) * input_rec
        if poisson:
            dc = dc + 1e-3 * tau_syn * (1.0 - sq) * w_E * K_EXT * bg_rate
    return {"N": N, "synapses": syn, "W": W, "K_ext": K_ext, "w_ext": np.float64(w_ext),
            "I_e": dc, "scale": scale, "k_scale": k_scale}


def microcircuit(scale: float = 1.0, k_scale=None, dt: float = 0.1, seed: int = 1,
                 poisson: bool = True, v_init: str = "optimized", w_E: float = W_E,
                 g: float = G, weight_rel_sd: float = W_REL_SD, delay_E: float = D_E,
                 delay_I: float = D_I, delay_rel_sd: float = D_REL_SD,
                 bg_rate: float = BG_RATE, thalamic: bool = False,
                 th_start: float = TH_START, th_duration: float = TH_DURATION,
                 th_rate: float = TH_RATE, dc_stimulus: bool = False,
                 dc_start: float = DC_START, dc_duration: float = DC_DURATION,
                 dc_amp: float = DC_AMP) -> Network:
    """Build the PD14 microcircuit (see the module docstring).

    ``scale`` in (0, 1] scales the neuron numbers, ``k_scale`` (default ``scale``) the
    in-degrees, compensated by DC input; ``poisson=False`` replaces the Poisson
    background by its DC equivalent; ``v_init`` is ``"optimized"`` (per-population
    normal of the NEST example) or ``"original"`` (N(-58, 10) mV, PD14).

    ``thalamic=True`` adds PD14's thalamic input: a population "TH" of 902
    :class:`~pyproc.PoissonSource` neurons at ``th_rate`` Hz from ``th_start`` for
    ``th_duration`` ms, projecting onto L4 and L6 by ``fixed_total_number`` with the
    Eq. 1 counts times scale * k_scale (the in-degree times k_scale, as the cortical
    projections; the NEST example multiplies by K_scaling only, which at N_scaling < 1
    gives each neuron 1/N_scaling times the thalamic in-degree), weights 87.8 pA /
    sqrt(k_scale) with the cortical relative sd, delays 1.5 ms with the excitatory
    relative sd; no DC stands for its lost in-degree (a transient, as in NEST).

    ``dc_stimulus=True`` adds the NEST example's transient DC input: a step current of
    ``dc_amp`` x K_ext pA (full-scale K_ext, not scaled, as there) into every population
    from ``dc_start`` for ``dc_duration`` ms (``Network.add_dc``; no connection delay)."""
    if v_init not in ("optimized", "original"):
        raise ModelError(f"microcircuit: v_init must be 'optimized' or 'original', got {v_init!r}")
    for name, v in (("weight_rel_sd", weight_rel_sd), ("delay_rel_sd", delay_rel_sd)):
        if number(f"microcircuit: {name}", v) < 0:
            raise ModelError(f"microcircuit: {name} must be a number >= 0, got {v!r}")
    p = derived(scale, k_scale, poisson, w_E, g, bg_rate)
    net = Network(dt=dt, seed=seed)
    for i, name in enumerate(POPULATIONS):
        par = LIF(I_e=float(p["I_e"][i]), **NEURON)
        if v_init == "optimized":
            v0 = normal(V0_OPTIMIZED_MEAN[i], V0_OPTIMIZED_SD[i])
        else:
            v0 = normal(*V0_ORIGINAL)
        net.add_population(name, int(p["N"][i]), par, v_init=v0)
    for t, tgt in enumerate(POPULATIONS):
        for s, src in enumerate(POPULATIONS):
            n_syn = int(p["synapses"][t, s])
            if n_syn == 0:
                continue
            w = float(p["W"][t, s])
            d = delay_E if _EXC[s] else delay_I
            net.connect(src, tgt, fixed_total_number(n_syn),
                        weight=normal(w, abs(w) * weight_rel_sd),
                        delay=normal(d, d * delay_rel_sd))
    if poisson:
        for i, tgt in enumerate(POPULATIONS):
            net.add_poisson(tgt, rate=bg_rate, K=int(p["K_ext"][i]), weight=float(p["w_ext"]))
    if flag("microcircuit: dc_stimulus", dc_stimulus):
        dc_start, dc_duration, dc_amp = (number(f"microcircuit: {n}", v) for n, v in (
            ("dc_start", dc_start), ("dc_duration", dc_duration), ("dc_amp", dc_amp)))
        if dc_start < 0 or dc_duration < 0:
            raise ModelError(f"microcircuit: dc_start and dc_duration must be >= 0, got "
                             f"{dc_start:g} ms, {dc_duration:g} ms")
        for i, tgt in enumerate(POPULATIONS):
            net.add_dc(tgt, dc_amp * float(K_EXT[i]), start=dc_start, stop=dc_start + dc_duration)
    if flag("microcircuit: thalamic", thalamic):
        th_start, th_duration, th_rate = (number(f"microcircuit: {n}", v) for n, v in (
            ("th_start", th_start), ("th_duration", th_duration), ("th_rate", th_rate)))
        if th_start < 0 or th_duration < 0 or th_rate < 0:
            raise ModelError(f"microcircuit: th_start, th_duration and th_rate must be >= 0, "
                             f"got {th_start:g} ms, {th_duration:g} ms, {th_rate:g} Hz")
        net.add_population("TH", TH_N, PoissonSource(th_rate, th_start, th_start + th_duration))
        n_th = np.round(thalamic_synapses_float() * p["scale"] * p["k_scale"]).astype(np.int64)
        w = w_E / math.sqrt(p["k_scale"])
        for t, tgt in enumerate(POPULATIONS):
            if n_th[t] > 0:
                net.connect("TH", tgt, fixed_total_number(int(n_th[t])),
                            weight=normal(w, w * weight_rel_sd),
                            delay=normal(delay_E, delay_E * delay_rel_sd))
    return net
