"""The Schmidt et al. (2018) multi-area model of macaque visual cortex ("MAM").

Schmidt M, Bakker R, Hilgetag CC, Diesmann M, van Albada SJ (2018) Multi-scale
account of the network structure of macaque visual cortex. Brain Struct. Funct.
223:1409; Schmidt M, Bakker R, Shen K, Bezgin G, Diesmann M, van Albada SJ (2018)
A multi-scale layer-resolved spiking network model of resting-state dynamics in
macaque visual cortical areas. PLoS Comput. Biol. 14:e1006359.

Structure file
--------------
The neuron and synapse counts come from a JSON *structure file* built by the
authors' reference code (INM-6/multi-area-model, commit 355d940), which is
licensed CC BY-NC-SA 4.0: pyproc does not ship it.  A user produces it with
``validation/export_mam_structure.py`` (which imports the authors' package) and
gives its path: ``load_structure(path)`` or ``pyproc ... --structure PATH``.
Fields read (see :func:`load_structure`): ``areas``, ``populations_per_area``,
``pop_labels``, ``N`` (neurons per population), ``synapses`` (row = target,
column = source, pop_labels order), ``K_ext``, ``neuron``, ``weights``,
``delays`` (with ``distances_mm[target_area][source_area]``), ``external_input``
and, when present, ``totals`` (checked against the counts) and
``fullscale_rates_Hz`` (rates of a full-scale simulation, used for the DC
compensation of reduced models).

Model (as INM-6/multi-area-model builds it for NEST)
----------------------------------------------------
* One population of iaf_psc_exp neurons per (area, layer population), named
  like the file's labels (``"V1-23E"``); initial V_m normal(V0_mean, V0_sd)
  (not truncated).
* One ``fixed_total_number(synapses[t, s])`` projection per non-zero pair
  (autapses and multapses allowed, as NEST's defaults and GeNN's
  FixedNumberTotalWithReplacement).
* Weights: truncated normal (redrawn at 0 keeping the sign), sd = rel_sd |mean|.
  Within an area J_E (E sources), J_I (I sources), L4E -> L23E doubled
  (``J_4E_to_23E_intra_pA``).  Between areas (E sources only) J_E * chi, and
  J_E * chi * chi_I onto inhibitory targets.  The authors' states: ground
  chi = 1, chi_I = 1; metastable chi = 1.9, chi_I = 2 (the file's
  ``weights.<state>.chi``/``chi_I``; its ``W_mean_pA`` matrices agree).
* Delays: truncated normal (redrawn below dt), sd = 0.5 mean; within an area
  mean 1.5 ms (E sources) / 0.75 ms (I sources); between areas
  mean = distance / 3.5 mm/ms.  By default they are also truncated above
  mean + 3.719 sd (``delay_clip_sd=GENN_DELAY_CLIP_SD``), the 0.9999 quantile,
  as in GeNN's procedural MAM port (the single-GPU reference this model
  follows; the file's ``delays.rule`` note): it moves 1e-4 of the delays and
  sizes the delay rings (longest delay 51.4 ms).  ``delay_clip_sd=None`` gives
  the NEST reference's unbounded tail, where the largest delay a 32-bit
  uniform gives is about mean + 6.1 sd (730 steps, 73.0 ms): the full model's
  int32 delay ring then needs 9.07 GB instead of 6.39 GB, and the whole
  procedural plan 10.76 GB, over a 10 GB device budget.
* External input: K_ext Poisson inputs per neuron at 10 Hz
  (``external_input.rate_ext_Hz``), weight ``J_ext_pA`` (no sd).

Reduced versions (machines without a GPU)
-----------------------------------------
``areas`` selects a subset of areas (projections from the other areas are
dropped), ``scale`` multiplies every population size (rounded; as for the
microcircuit, a scale that leaves a simulated population without neurons is
refused), ``k_scale`` (default ``scale``) the in-degrees: a projection keeps
``round(synapses * k_scale * N'_t / N_t)`` synapses (the full-scale in-degree
times k_scale) and K_ext becomes K_ext * k_scale.  As in the NEST PD14 example
(``helpers.adjust_weights_and_input_to_synapse_scaling``) and the authors'
``K_scaling``, weights (recurrent and external) are divided by sqrt(k_scale),
which keeps the variance of the input, and the mean input lost is given back
as a DC current I_e per target population::

    I_DC[t] = 1e-3 * tau_syn * ( sum_s nu_s (K_ts J_ts - K'_ts J'_ts)
                                 + nu_ext (K_ext J_ext - K'_ext J'_ext) )

(pA; K full-scale in-degrees, K' and J' those of the reduced network, rates in
Hz, tau_syn in ms).  With ``missing_areas="dc"`` (default) the sum runs over
the sources of *all* areas, so the mean input from the areas left out is also
replaced by DC; with "none" it runs over the simulated areas only.  With
"poisson" the areas left out send Poisson input instead, as the authors'
``replace_non_simulated_areas='het_poisson_stat'``: each target population gets
one more Poisson input of K = sum_s K_ts k_scale inputs at their mean rate
sum_s K_ts nu_s / sum_s K_ts (s: the populations of the areas left out, all
excitatory; nu_s the rates below) with the mean cortico-cortical weight J_ts /
sqrt(k_scale) (a Poisson input has one weight: the weights' relative sd of 0.1,
1 % of the input's variance, is left out), and the DC covers only what the
k_scale leaves out, as for the external input.  The full
model (all areas, scale = k_scale = 1) gets no DC.  The rates nu_s of the
full-scale model are not in the structure file: pass them as ``rates`` (Hz; a
number, a dict label -> Hz or a sequence in ``pop_labels`` order), as the
authors' ``fullscale_rates``, or put them in the file as ``fullscale_rates_Hz``.
Without them, ``DEFAULT_RATES_HZ`` is used: per-layer rates measured by pyproc
on a reduced model with full in-degrees (V1, V2, V4, FEF at scale 0.01), a
stand-in, not a result of the full model.  Reduced models are for testing and
development on CPUs: their activity is not that of the full model.

Caveat (measured): the MAM's recurrent mean input is strongly inhibitory
(g = -11), so the DC standing for the in-degree lost is negative, and a model
with k_scale well below 1 has a silent fixed point: started from the file's
initial potentials (normal(-150, 50) mV) it stays silent after the first
spikes, because the DC assumes inhibition the silent network does not make
(V1 + V2 at scale 0.01 with k_scale 0.01, 0.03 and 0.1 all fell silent).  The
authors likewise warn that their 1 % model "will not yield reasonable
dynamical results".  For activity like the full model's on a CPU, scale the
neurons only (``k_scale=1``: no recurrent DC; ``validation/mam_reduced.py``
runs V1, V2, V4, FEF at scale 0.01, 6,396 neurons, 22.7 M synapses, 1 s).
``rates=0`` compensates only the external input, whose rate is known: a small,
active, not MAM-like network (the unit tests use it).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..dist import normal
from ..errors import ModelError, flag
from ..network import LIF, Network
from ..rules import FixedTotalNumber, fixed_total_number

__all__ = ["MAMStructure", "load_structure", "multiarea", "network_totals", "STATES",
           "GENN_DELAY_CLIP_SD", "DEFAULT_RATES_HZ"]

# (chi, chi_I) of the authors' two states (Schmidt et al. 2018, PLoS CB; the structure
# file's weights.ground_state / weights.metastable_state).
STATES = {"ground": (1.0, 1.0), "metastable": (1.9, 2.0)}

# Upper truncation of the delays in GeNN's MAM port: the 0.9999 quantile of the normal.
GENN_DELAY_CLIP_SD = 3.719016485455709   # scipy.stats.norm.ppf(0.9999)

# Stand-in full-scale rates (Hz) for the DC compensation of reduced models, per layer
# population (E / I for other names): the mean over areas of a pyproc run of V1, V2, V4
# and FEF at scale 0.01 with full in-degrees (k_scale = 1, so no recurrent DC), ground
# state, 0.2-1 s, whose left-out areas were compensated with E 2.5 / I 5 Hz.  Rerun with
# these values (validation/results/mam_cpu_reduced/ground_4areas_scale0.01_k1) it gives
# the same rates within 0.7 Hz.
DEFAULT_RATES_HZ = {"23E": 0.45, "23I": 2.6, "4E": 5.8, "4I": 5.0, "5E": 5.1, "5I": 7.6,
                    "6E": 1.2, "6I": 7.5, "E": 3.1, "I": 5.7}

_NEURON_FIELDS = ("E_L", "V_th", "V_reset", "C_m", "tau_m", "tau_syn_ex", "tau_syn_in", "t_ref",
                  "V0_mean_mV", "V0_sd_mV")
_WEIGHT_FIELDS = ("J_E_pA", "J_I_pA", "J_4E_to_23E_intra_pA", "J_ext_pA", "rel_sd")
_DELAY_FIELDS = ("delay_e_ms", "delay_i_ms", "delay_rel_sd", "interarea_speed_mm_per_ms")


@dataclass(frozen=True, eq=False)
class MAMStructure:
    """A validated structure file (see :func:`load_structure`)."""
    areas: Tuple[str, ...]
    layers: Dict[str, Tuple[str, ...]]     # area -> its populations ("23E", ...)
    pop_labels: Tuple[str, ...]            # "area-layer", area-major
    N: np.ndarray                          # int64 (n_pops,)
    synapses: np.ndarray                   # int64 (n_pops, n_pops), row = target
    K_ext: np.ndarray                      # float64 (n_pops,)
    distances: np.ndarray                  # float64 (n_areas, n_areas), [target, source], mm
    neuron: Dict[str, float]
    weights: Dict[str, float]
    delays: Dict[str, float]
    rate_ext: float                        # Hz
    totals: Dict[str, object] = field(default_factory=dict)
    source: str = "<dict>"
    fullscale_rates: Optional[np.ndarray] = None   # Hz, optional field fullscale_rates_Hz

    @property
    def n_pops(self) -> int:
        return len(self.pop_labels)

    @property
    def area_index(self) -> np.ndarray:
        """Area index of every population."""
        a = {name: i for i, name in enumerate(self.areas)}
        return np.array([a[lab.split("-", 1)[0]] for lab in self.pop_labels])

    @property
    def excitatory(self) -> np.ndarray:
        """True for excitatory populations (layer name ending in 'E')."""
        return np.array([lab.endswith("E") for lab in self.pop_labels])

    def counts(self) -> Dict[str, int]:
        """Totals of the full model held by the file."""
        same = self.area_index[:, None] == self.area_index[None, :]
        return {"populations": self.n_pops, "neurons": int(self.N.sum()),
                "projections": int(np.count_nonzero(self.synapses)),
                "synapses": int(self.synapses.sum()),
                "synapses_intra_area": int(self.synapses[same].sum()),
                "synapses_inter_area": int(self.synapses[~same].sum())}


# -- loading and validation ------------------------------------------------------------------
def _get(d: Mapping, key: str, where: str):
    if not isinstance(d, Mapping):
        raise ModelError(f"MAM structure: {where or 'top level'} must be an object, "
                         f"got {type(d).__name__}")
    if key not in d:
        raise ModelError(f"MAM structure: missing field {where + '.' if where else ''}{key}")
    return d[key]


def _array(value, name: str, shape: Tuple[int, ...], whole: bool, positive: bool = False
           ) -> np.ndarray:
    """Numeric array of ``shape``, finite, >= 0 (> 0 if ``positive``), integers if ``whole``."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelError(f"MAM structure: {name} must be a numeric array of shape {shape} "
                         f"(ragged or non-numeric entries)") from None
    if a.shape != shape:
        raise ModelError(f"MAM structure: {name} has shape {a.shape}, expected {shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ModelError(f"MAM structure: {name}{list(idx)} is {float(a[idx])} (must be finite)")
    neg = a <= 0 if positive else a < 0
    if neg.any():
        idx = tuple(int(i) for i in np.argwhere(neg)[0])
        raise ModelError(f"MAM structure: {name}{list(idx)} = {a[idx]:g} "
                         f"(must be {'> 0' if positive else '>= 0'})")
    if whole:
        frac = a != np.floor(a)
        if frac.any():
            idx = tuple(int(i) for i in np.argwhere(frac)[0])
            raise ModelError(f"MAM structure: {name}{list(idx)} = {float(a[idx])!r} is not a whole "
                             f"number")
        if (a >= 2.0 ** 53).any():
            raise ModelError(f"MAM structure: {name} holds counts >= 2^53")
        return a.astype(np.int64)
    return a


def _number(d: Mapping, key: str, where: str, positive: bool = False) -> float:
    v = _get(d, key, where)
    if isinstance(v, bool):
        v = None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ModelError(f"MAM structure: {where}.{key} must be a number, got {v!r}") from None
    if not math.isfinite(x):
        raise ModelError(f"MAM structure: {where}.{key} must be finite, got {x}")
    if positive and not x > 0:
        raise ModelError(f"MAM structure: {where}.{key} must be > 0, got {x}")
    return x


def load_structure(source: Union[str, os.PathLike, Mapping, MAMStructure]) -> MAMStructure:
    """Read and validate a MAM structure file (a path, or its already parsed dict).

    Raises :class:`pyproc.ModelError` naming the field for a missing field, a
    wrong shape, a negative, non-whole or non-finite count, labels that do not
    match ``areas`` x ``populations_per_area``, or declared ``totals`` that
    differ from what the file holds."""
    if isinstance(source, MAMStructure):
        return source
    where_from = "<dict>"
    if isinstance(source, (str, os.PathLike)):
        where_from = os.fspath(source)
        try:
            with open(where_from) as f:
                d = json.load(f)
        except FileNotFoundError:
            raise ModelError(f"MAM structure file not found: {where_from} (produce it with "
                             f"validation/export_mam_structure.py)") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"MAM structure file {where_from} is not readable JSON: {e}") from None
    elif isinstance(source, Mapping):
        d = source
    else:
        raise ModelError(f"MAM structure must be a path or a dict, got {type(source).__name__}")
    if not isinstance(d, Mapping):
        raise ModelError(f"MAM structure {where_from}: top level must be an object")

    areas = _get(d, "areas", "")
    if not (isinstance(areas, list) and areas and all(isinstance(a, str) and a for a in areas)):
        raise ModelError("MAM structure: areas must be a non-empty list of names")
    if len(set(areas)) != len(areas):
        raise ModelError("MAM structure: areas holds a name twice")
    ppa = _get(d, "populations_per_area", "")
    layers: Dict[str, Tuple[str, ...]] = {}
    for a in areas:
        lay = _get(ppa, a, "populations_per_area")
        if not (isinstance(lay, list) and lay and all(isinstance(x, str) and x for x in lay)):
            raise ModelError(f"MAM structure: populations_per_area.{a} must be a non-empty list "
                             f"of names")
        for x in lay:
            if x[-1] not in "EI":
                raise ModelError(f"MAM structure: population {a}-{x} must end in E or I")
        layers[a] = tuple(lay)
    labels = _get(d, "pop_labels", "")
    expected = [f"{a}-{x}" for a in areas for x in layers[a]]
    if not isinstance(labels, list) or list(labels) != expected:
        raise ModelError(f"MAM structure: pop_labels must list area-population for every area "
                         f"in areas order ({len(expected)} labels, starting "
                         f"{expected[:3]}), got {str(labels)[:120]}")
    n = len(labels)
    N = _array(_get(d, "N", ""), "N", (n,), whole=True, positive=False)
    if (N == 0).any():
        raise ModelError(f"MAM structure: N[{int(np.argmin(N))}] ({labels[int(np.argmin(N))]}) "
                         f"is 0 (every population needs >= 1 neuron)")
    S = _array(_get(d, "synapses", ""), "synapses", (n, n), whole=True)
    K_ext = _array(_get(d, "K_ext", ""), "K_ext", (n,), whole=False)

    neuron_d = _get(d, "neuron", "")
    neuron = {k: _number(neuron_d, k, "neuron") for k in _NEURON_FIELDS}
    neuron["I_e_pA"] = _number(neuron_d, "I_e_pA", "neuron") if "I_e_pA" in neuron_d else 0.0
    if neuron["V0_sd_mV"] < 0:
        raise ModelError(f"MAM structure: neuron.V0_sd_mV must be >= 0, got {neuron['V0_sd_mV']}")
    try:   # the LIF's own checks (tau_m > 0, V_reset < V_th, ...), named as the file's fields
        _lif(neuron, 0.0)
    except ModelError as e:
        msg = str(e)
        raise ModelError("MAM structure: neuron." + msg[len("LIF."):] if msg.startswith("LIF.")
                         else f"MAM structure: neuron: {msg}") from None
    weights_d = _get(d, "weights", "")
    weights = {k: _number(weights_d, k, "weights") for k in _WEIGHT_FIELDS}
    if weights["J_E_pA"] <= 0 or weights["J_4E_to_23E_intra_pA"] <= 0 or weights["J_ext_pA"] < 0:
        raise ModelError("MAM structure: weights.J_E_pA and J_4E_to_23E_intra_pA must be > 0 "
                         "and J_ext_pA >= 0")
    if weights["J_I_pA"] >= 0:
        raise ModelError(f"MAM structure: weights.J_I_pA must be < 0, got {weights['J_I_pA']}")
    if weights["rel_sd"] < 0:
        raise ModelError(f"MAM structure: weights.rel_sd must be >= 0, got {weights['rel_sd']}")
    delays_d = _get(d, "delays", "")
    delays = {k: _number(delays_d, k, "delays", positive=(k != "delay_rel_sd"))
              for k in _DELAY_FIELDS}
    if delays["delay_rel_sd"] < 0:
        raise ModelError("MAM structure: delays.delay_rel_sd must be >= 0")
    dist_d = _get(delays_d, "distances_mm", "delays")
    rows = []
    for t in areas:
        row_d = _get(dist_d, t, "delays.distances_mm")
        rows.append([_get(row_d, s, f"delays.distances_mm.{t}") for s in areas])
    dist = _array(rows, "delays.distances_mm", (len(areas), len(areas)), whole=False)
    rate_ext = _number(_get(d, "external_input", ""), "rate_ext_Hz", "external_input")
    if rate_ext < 0:
        raise ModelError(f"MAM structure: external_input.rate_ext_Hz must be >= 0, got {rate_ext}")

    rates = None
    if d.get("fullscale_rates_Hz") is not None:
        rates = _array(d["fullscale_rates_Hz"], "fullscale_rates_Hz", (n,), whole=False)
    st = MAMStructure(areas=tuple(areas), layers=layers, pop_labels=tuple(labels), N=N,
                      synapses=S, K_ext=K_ext, distances=dist, neuron=neuron, weights=weights,
                      delays=delays, rate_ext=rate_ext, totals=dict(d.get("totals", {}) or {}),
                      source=where_from, fullscale_rates=rates)
    ai = st.area_index
    cross = (ai[:, None] != ai[None, :]) & (S > 0)
    if cross.any():
        ta, sa = ai[:, None].repeat(n, 1)[cross], ai[None, :].repeat(n, 0)[cross]
        if (dist[ta, sa] <= 0).any():
            k = int(np.argmin(dist[ta, sa]))
            raise ModelError(f"MAM structure: delays.distances_mm.{areas[ta[k]]}.{areas[sa[k]]} "
                             f"must be > 0 (the areas are connected)")
    _check_totals(st)
    return st


def _check_totals(st: MAMStructure) -> None:
    """Compare the declared ``totals`` (where present) with the counts held."""
    c = st.counts()
    for key, ours in (("n_populations", c["populations"]), ("N_int", c["neurons"]),
                      ("synapses_int", c["synapses"]),
                      ("n_projections_nonzero_int", c["projections"]),
                      ("synapses_int_intra_area", c["synapses_intra_area"]),
                      ("synapses_int_inter_area", c["synapses_inter_area"])):
        if key in st.totals:
            declared = st.totals[key]
            if isinstance(declared, bool) or not isinstance(declared, (int, float)) or \
                    declared != ours:
                raise ModelError(f"MAM structure: totals.{key} declares {declared!r} but the "
                                 f"file holds {ours}")


# -- the model -------------------------------------------------------------------------------
def _rates(st: MAMStructure, rates) -> np.ndarray:
    """Full-scale rates (Hz) per population from a number, dict or sequence."""
    if rates is None:
        if st.fullscale_rates is not None:
            return st.fullscale_rates.copy()
        layer = [lab.split("-", 1)[1] for lab in st.pop_labels]
        return np.array([DEFAULT_RATES_HZ.get(x, DEFAULT_RATES_HZ[x[-1]]) for x in layer])
    if isinstance(rates, Mapping):
        unknown = set(rates) - set(st.pop_labels)
        if unknown:
            raise ModelError(f"multiarea: rates names unknown populations {sorted(unknown)[:5]}")
        default = _rates(st, None)
        r = np.array([float(rates.get(lab, default[i])) for i, lab in enumerate(st.pop_labels)])
    elif np.ndim(rates) == 0:
        r = np.full(st.n_pops, float(rates))
    else:
        r = np.asarray(rates, dtype=float)
        if r.shape != (st.n_pops,):
            raise ModelError(f"multiarea: rates must have {st.n_pops} entries (pop_labels order), "
                             f"got shape {r.shape}")
    if not (np.isfinite(r).all() and (r >= 0).all()):
        raise ModelError("multiarea: rates must be finite and >= 0 Hz")
    return r


def _positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"multiarea: {name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ModelError(f"multiarea: {name} must be > 0 and finite, got {value!r}")
    return v


# below this in-degree scale a reduced model with the default DC falls silent (measured:
# V1 + V2 at scale 0.01, 500 ms: all populations < 0.1 Hz at k_scale 0.1, active at 0.3)
SILENT_K_SCALE = 0.25
# how the input from the areas left out is replaced (multiarea's missing_areas)
MISSING_AREAS = ("dc", "poisson", "none")


def multiarea(structure, state: str = "ground", areas: Optional[Sequence[str]] = None,
              scale: float = 1.0, k_scale: Optional[float] = None, dt: float = 0.1, seed: int = 1,
              chi: Optional[float] = None, chi_I: Optional[float] = None, rates=None,
              missing_areas: Optional[str] = None,
              delay_clip_sd: Optional[float] = GENN_DELAY_CLIP_SD,
              compensate_missing: Optional[bool] = None) -> Network:
    """Build the multi-area model (see the module docstring).

    ``structure``: a path to the structure file, its parsed dict or a
    :class:`MAMStructure`.  ``state``: "ground" or "metastable" (sets chi and
    chi_I unless given).  ``areas``: names of the areas to simulate (default
    all).  ``scale`` / ``k_scale``: neuron and in-degree scale factors
    (``k_scale`` defaults to ``scale``), with DC compensation using ``rates``.
    ``delay_clip_sd``: upper truncation of the delays at mean + delay_clip_sd * sd
    (default ``GENN_DELAY_CLIP_SD`` = 3.719 as GeNN; None: no upper bound, as NEST).
    ``missing_areas``: the input from the areas ``areas`` leaves out, "dc" (the default:
    a DC of its mean), "poisson" (Poisson input at the stand-in rates, as the authors'
    ``replace_non_simulated_areas='het_poisson_stat'``) or "none" (dropped);
    ``compensate_missing`` (True / False) is the older spelling of "dc" / "none"."""
    st = load_structure(structure)
    if compensate_missing is not None:
        if missing_areas is not None:
            raise ModelError(f"multiarea: give missing_areas or the older compensate_missing, "
                             f"not both (got missing_areas={missing_areas!r}, "
                             f"compensate_missing={compensate_missing!r})")
        missing_areas = "dc" if flag("multiarea: compensate_missing", compensate_missing) else "none"
    elif missing_areas is None:
        missing_areas = "dc"
    if missing_areas not in MISSING_AREAS:
        raise ModelError(f"multiarea: missing_areas must be one of {', '.join(MISSING_AREAS)}, "
                         f"got {missing_areas!r}")
    if state not in STATES:
        raise ModelError(f"multiarea: state must be one of {', '.join(STATES)}, got {state!r}")
    chi = STATES[state][0] if chi is None else _positive("chi", chi)
    chi_I = STATES[state][1] if chi_I is None else _positive("chi_I", chi_I)
    scale = _positive("scale", scale)
    k_scale = scale if k_scale is None else _positive("k_scale", k_scale)
    if scale > 1 or k_scale > 1:
        raise ModelError(f"multiarea: scale and k_scale must be <= 1, got {scale}, {k_scale}")
    if delay_clip_sd is not None:
        delay_clip_sd = _positive("delay_clip_sd", delay_clip_sd)
    if areas is None:
        chosen = list(st.areas)
    else:
        if isinstance(areas, str):
            areas = [areas]
        chosen = list(areas)
        unknown = [a for a in chosen if a not in st.areas]
        if unknown:
            raise ModelError(f"multiarea: unknown area{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))} (areas must be distinct names "
                             f"among {', '.join(st.areas)})")
        if not chosen or len(set(chosen)) != len(chosen):
            raise ModelError(f"multiarea: areas must be distinct names among "
                             f"{', '.join(st.areas)}; got {chosen}")
        chosen = [a for a in st.areas if a in set(chosen)]   # keep the file's order
    rate = _rates(st, rates)

    ai, exc = st.area_index, st.excitatory
    sel = np.isin(np.array(st.areas)[ai], chosen)
    full = scale == 1.0 and k_scale == 1.0
    N_full = st.N
    N_red = N_full.copy() if scale == 1.0 else np.round(N_full * scale).astype(np.int64)
    empty = np.flatnonzero(sel & (N_red < 1))
    if empty.size:   # as microcircuit: a scale that empties a population is refused
        t = int(empty[0])
        raise ModelError(f"multiarea: scale={scale:g} leaves a population without neurons "
                         f"({st.pop_labels[t]}: {int(N_full[t])} x {scale:g} rounds to 0 "
                         f"neurons)")
    N_red = np.maximum(1, N_red)   # populations of areas not simulated: never built
    S_full = st.synapses
    if full:
        S_red = S_full.copy()
    else:
        S_red = np.round(S_full * k_scale * (N_red / N_full)[:, None]).astype(np.int64)
    w, nu = st.weights, st.neuron
    J = _mean_weights(st, chi, chi_I)
    w_div = math.sqrt(k_scale)

    net = Network(dt=dt, seed=seed)
    dc = np.zeros(st.n_pops)
    tau = np.where(exc, nu["tau_syn_ex"], nu["tau_syn_in"])          # by source type
    # in-degree from the areas left out, per (target, source), as Poisson input: scaled
    # like the external input (K k_scale inputs of weight J / sqrt(k_scale), the rest DC)
    K_pois = np.zeros((st.n_pops, st.n_pops))
    if missing_areas == "poisson":
        K_pois[np.ix_(sel, ~sel)] = (S_full / N_full[:, None])[np.ix_(sel, ~sel)] * k_scale
    for t in np.flatnonzero(sel):
        src_all = np.flatnonzero(sel) if missing_areas == "none" else np.arange(st.n_pops)
        K_full_t = S_full[t, src_all] / N_full[t]
        K_red_t = np.where(sel[src_all], S_red[t, src_all] / N_red[t], K_pois[t, src_all])
        lost = K_full_t * J[t, src_all] - K_red_t * (J[t, src_all] / w_div)
        dc[t] = 1e-3 * float(np.sum(tau[src_all] * rate[src_all] * lost))
        dc[t] += 1e-3 * nu["tau_syn_ex"] * st.rate_ext * (
            st.K_ext[t] * w["J_ext_pA"] - (st.K_ext[t] * k_scale) * (w["J_ext_pA"] / w_div))
    for t in np.flatnonzero(sel):
        params = _lif(nu, dc[t])
        v0 = normal(nu["V0_mean_mV"], nu["V0_sd_mV"])
        net.add_population(st.pop_labels[t], int(N_red[t]), params, v_init=v0)
    d, rel_w = st.delays, w["rel_sd"]
    for t in np.flatnonzero(sel):
        for s in np.flatnonzero(sel & (S_red[t] > 0)):
            mean_w = J[t, s] / w_div
            if ai[t] == ai[s]:
                d_mean = d["delay_e_ms"] if exc[s] else d["delay_i_ms"]
            else:
                d_mean = st.distances[ai[t], ai[s]] / d["interarea_speed_mm_per_ms"]
            d_sd = d["delay_rel_sd"] * d_mean
            high = None if delay_clip_sd is None or d_sd == 0 else d_mean + delay_clip_sd * d_sd
            net.connect(st.pop_labels[s], st.pop_labels[t], fixed_total_number(int(S_red[t, s])),
                        weight=normal(mean_w, abs(mean_w) * rel_w),
                        delay=normal(d_mean, d_sd, high=high))
    K_ext_red = st.K_ext * k_scale
    for t in np.flatnonzero(sel):
        if K_ext_red[t] > 0 and st.rate_ext > 0:
            net.add_poisson(st.pop_labels[t], rate=st.rate_ext, K=float(K_ext_red[t]),
                            weight=w["J_ext_pA"] / w_div)
        # the areas left out: one input per distinct weight (the cortico-cortical weight
        # of the target's type: one input), K inputs at their mean rate
        srcs = np.flatnonzero((K_pois[t] > 0) & (rate > 0))
        for Jm in sorted(set(J[t, srcs].tolist()), reverse=True):
            grp = srcs[J[t, srcs] == Jm]
            K_t = float(np.sum(K_pois[t, grp]))
            net.add_poisson(st.pop_labels[t], rate=float(np.sum(K_pois[t, grp] * rate[grp])) / K_t,
                            K=K_t, weight=Jm / w_div)
    if k_scale < SILENT_K_SCALE and rates is None:
        warnings.warn(f"multiarea: k_scale = {k_scale:g} (the default is scale): with the "
                      f"in-degrees scaled below {SILENT_K_SCALE:g} the DC standing for the "
                      f"lost input is inhibitory and the network falls silent (V1 + V2 at "
                      f"scale 0.01: every population < 0.1 Hz at k_scale 0.01 and 0.1, "
                      f"0.04-8 Hz at 0.3); k_scale=1 (--k-scale 1) keeps the full in-degrees",
                      stacklevel=2)
    return net


def _lif(nu: Mapping[str, float], dc: float) -> LIF:
    """The iaf_psc_exp parameters of the file's ``neuron`` fields, plus a DC current (pA)."""
    return LIF(C_m=nu["C_m"], tau_m=nu["tau_m"], E_L=nu["E_L"], V_th=nu["V_th"],
               V_reset=nu["V_reset"], t_ref=nu["t_ref"], tau_syn_ex=nu["tau_syn_ex"],
               tau_syn_in=nu["tau_syn_in"], I_e=nu["I_e_pA"] + dc)


def _mean_weights(st: MAMStructure, chi: float, chi_I: float) -> np.ndarray:
    """Mean weight (pA) of every (target, source) pair of the full model."""
    w = st.weights
    ai, exc = st.area_index, st.excitatory
    layer = np.array([lab.split("-", 1)[1] for lab in st.pop_labels])
    same = ai[:, None] == ai[None, :]
    J = np.where(exc[None, :], w["J_E_pA"], w["J_I_pA"]) * np.ones((st.n_pops, 1))
    J = np.where(same & (layer[:, None] == "23E") & (layer[None, :] == "4E"),
                 w["J_4E_to_23E_intra_pA"], J)
    inter = np.where(exc[:, None], chi, chi * chi_I) * J
    return np.where(same, J, inter)


def network_totals(net: Network) -> Dict[str, int]:
    """Populations, neurons, non-zero fixed_total_number projections and synapses of a
    network description (no compilation: the counts are the rules' N)."""
    syn = [p.rule.N for p in net.projections.values() if isinstance(p.rule, FixedTotalNumber)]
    return {"populations": len(net.populations), "neurons": net.n_neurons,
            "projections": sum(1 for n in syn if n > 0), "synapses": int(sum(syn))}
