"""The compiled network: flat NumPy arrays that every backend reads.

``compile_network(net)`` turns a :class:`~pyproc.network.Network` into a
:class:`CompiledNetwork`: a population table (``POP_DTYPE``), a projection
table (``PROJ_DTYPE``), the row-length table of the fixed-number rules, the
Poisson threshold tables, the delay-ring geometry and the initial state.  The
two dtypes mirror ``pp_pop`` and ``pp_proj`` in ``kernels/network.cuh`` byte
for byte, so the CPU twin and the CUDA kernels read the very same structure.

Fixed point
-----------
Synaptic input is summed in integers: a weight of w pA becomes
round(|w| * scale) with the sign of w.  The scale is a power of two chosen per
(target population, input channel) so that a step's worst-case input fits in
int32: the sum over incoming projections of (largest weight) x (in-degree
bound), where the in-degree bound is min(exact maximum, mean + 10 sd + 10) of
its binomial distribution, plus the largest Poisson count times its weight.
A population whose tau_syn_ex equals tau_syn_in has a single input channel
(excitatory and inhibitory input summed in channel 0, which halves its delay
ring); otherwise channel 0 is excitatory and channel 1 inhibitory.
Backends still check and raise :class:`~pyproc.errors.OverflowDetected`
instead of wrapping around: the CPU backend sums in int64 and checks every
step; the CUDA backend's delay ring is int32 (the integer atomics wrap), so it
checks the bound itself before it runs (:func:`check_input_range`, on the
tables as they are then -- a table edited after compiling included) and every
step once the Poisson input is added.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from . import hostmem, sampling
from .dist import Constant, Normal, Uniform
from .errors import ModelError
from .network import LIF, MAX_POISSON, Network, PoissonSource, SpikeSourceArray
from .rng import TAG_INIT, philox_words
from .rowlen import draw_row_lengths
from .staterec import StateGroup, state_groups
from .rules import Decoder, FixedOutdegree, FixedTotalNumber, PairwiseBernoulli, segment_width

__all__ = ["POP_DTYPE", "PROJ_DTYPE", "DC_DTYPE", "CompiledNetwork", "compile_network",
           "dc_segments", "dc_switches",
           "worst_case_input", "check_input_range",
           "RULE_BERNOULLI", "RULE_FIXED", "RULE_DECODER", "DIST_CONST", "DIST_TNORM", "INT32_MAX"]

RULE_BERNOULLI = 1
RULE_FIXED = 2
RULE_DECODER = 3
DIST_CONST = 0
DIST_TNORM = 1
INT32_MAX = 2 ** 31 - 1
U32_MAX = 0xFFFFFFFF

PROJ_DTYPE = np.dtype([
    ("log1mp", "f8"),
    ("w_mean", "f8"), ("w_sd", "f8"), ("w_scale", "f8"), ("d_mean", "f8"), ("d_sd", "f8"),
    ("w_c0", "i8"), ("d_c0", "i8"), ("rowlen_offset", "u8"),
    ("rule", "u4"), ("stream", "u4"), ("pre_offset", "u4"), ("n_pre", "u4"),
    ("post_offset", "u4"), ("n_post", "u4"), ("src_pop", "u4"), ("tgt_pop", "u4"),
    ("seg_width", "u4"), ("n_seg", "u4"), ("autapses", "u4"), ("channel", "u4"),
    ("gmul", "u4"), ("gshift", "u4"),
    ("w_plo", "u4"), ("w_pwidth", "u4"), ("w_shift", "u4"),
    ("d_plo", "u4"), ("d_pwidth", "u4"), ("d_shift", "u4"),
    ("w_b", "i4"), ("d_b", "i4"),
    ("w_kind", "i4"), ("w_sign", "i4"), ("w_const", "i4"),
    ("d_kind", "i4"), ("d_const", "i4"), ("d_max", "i4"),
], align=True)

POP_DTYPE = np.dtype([
    ("ring_offset", "u8"),
    ("P11ex", "f4"), ("P11in", "f4"), ("P22", "f4"), ("P21ex", "f4"), ("P21in", "f4"),
    ("P20", "f4"), ("I_e", "f4"), ("V_th", "f4"), ("V_reset", "f4"),
    ("inv_scale_ex", "f4"), ("inv_scale_in", "f4"),
    ("ref_steps", "i4"), ("offset", "u4"), ("n", "u4"), ("stream", "u4"), ("ring_slots", "u4"),
    ("poisson_offset", "u4"), ("poisson_len", "u4"), ("poisson_n", "u4"),
    ("poisson_channels", "u4"), ("poisson_end", "u4", (MAX_POISSON,)),
    ("poisson_w", "i4", (MAX_POISSON,)), ("n_channels", "u4"),
    ("kind", "u4"), ("src_p", "u4"), ("src_start", "u8"), ("src_stop", "u8"),
    ("dc_amp", "f4"), ("dc_pad", "u4"), ("dc_start", "u8"), ("dc_stop", "u8"),
], align=True)
POP_LIF, POP_SOURCE, POP_ARRAY = 0, 1, 2       # pp_pop.kind


@dataclass
class CompiledNetwork:
    """Flat arrays describing a network; see the module docstring."""
    network: Network
    dt: float
    seed: int
    pop_names: List[str]
    proj_names: List[str]
    pops: np.ndarray            # POP_DTYPE, one per population
    projs: np.ndarray           # PROJ_DTYPE, one per projection
    rowlen: np.ndarray          # uint32, row lengths of fixed-number projections
    poisson_tables: np.ndarray  # uint32, Poisson threshold tables and spike-array tables
    ring_size: int              # total ring elements (int32 on the GPU)
    v0: np.ndarray              # float32 initial V_m relative to E_L, all neurons
    record: np.ndarray          # bool per population
    scale: np.ndarray           # float64 (n_pops, 2): fixed-point units per pA
    w_max_pA: np.ndarray        # float64 per projection: largest |weight|
    indegree_bound: np.ndarray  # float64 per projection: per-neuron in-degree bound used for scale
    info: Dict[str, object] = field(default_factory=dict)
    state: List[StateGroup] = field(default_factory=list)   # state recordings (staterec)
    # per population its step current's stretches of constant amplitude (DC_DTYPE, in
    # time order; pops holds the first); backends switch a population's dc fields to
    # stretch k + 1 between the steps dc_stop[k] - 1 and dc_stop[k] (dc_switches)
    dc: List[np.ndarray] = field(default_factory=list)

    @property
    def n_neurons(self) -> int:
        return int(self.pops["n"].sum())

    @property
    def n_pops(self) -> int:
        return len(self.pops)

    def pop_index(self, name: str) -> int:
        try:
            return self.pop_names.index(name)
        except ValueError:
            raise ModelError(f"unknown population {name!r} (known: {', '.join(self.pop_names)})"
                             ) from None

    def proj_index(self, name: str) -> int:
        try:
            return self.proj_names.index(name)
        except ValueError:
            raise ModelError(f"unknown projection {name!r}") from None

    def spike_pairs(self, ids) -> np.ndarray:
        """Global neuron ids as a spike list of (population, local index) uint32 pairs, the
        layout of the kernels' spike list (CUDASimulator.time_propagation)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        off = self.pops["offset"].astype(np.int64)
        pop = np.searchsorted(off, ids, side="right") - 1
        return np.stack([pop, ids - off[pop]], axis=1).astype(np.uint32)

    def rowlen_of(self, k: int) -> np.ndarray:
        """Row lengths of projection k (fixed-number rules only)."""
        pj = self.projs[k]
        off = int(pj["rowlen_offset"])
        return self.rowlen[off:off + int(pj["n_pre"])]

    def expected_synapses(self, k: int) -> float:
        """Synapses of projection k: exact for fixed-number rules, expected for bernoulli."""
        pj = self.projs[k]
        if pj["rule"] == RULE_FIXED:
            return float(self.rowlen_of(k).sum(dtype=np.int64))
        if pj["rule"] == RULE_DECODER:
            i = np.arange(1, int(pj["n_pre"]) + 1, dtype=np.uint64)
            return float(sum(int(((i >> np.uint64(j)) & np.uint64(1)).sum())
                             for j in range(min(32, int(pj["n_post"])))))
        p = self.info["p"][k]
        pairs = float(pj["n_pre"]) * float(pj["n_post"])
        if not pj["autapses"]:
            pairs -= float(pj["n_pre"])
        return p * pairs

    def synapse_count(self) -> Tuple[int, bool]:
        """(synapses of the whole network, exact): the sum of :meth:`expected_synapses`,
        exact unless a pairwise_bernoulli projection draws its count."""
        total = sum(self.expected_synapses(k) for k in range(len(self.projs)))
        return int(round(total)), bool((self.projs["rule"] != RULE_BERNOULLI).all())

    def max_delay_steps(self) -> int:
        return int(self.projs["d_max"].max()) if len(self.projs) else 0

    def ring_layout(self) -> "RingLayout":
        """Per projection, where its synapses land in the delay ring (pp_ring_index):
        entry off[k] + ((t + delay) % slots[k]) * stride[k] + target, for a spike at
        step t; see :func:`ring_index`."""
        tp = self.pops[self.projs["tgt_pop"].astype(np.int64)]
        n_tgt = tp["n"].astype(np.int64)
        return RingLayout(off=tp["ring_offset"].astype(np.int64) + self.projs["channel"] * n_tgt,
                          stride=tp["n_channels"].astype(np.int64) * n_tgt,
                          slots=tp["ring_slots"].astype(np.int64))


@dataclass(frozen=True)
class RingLayout:
    off: np.ndarray      # int64 per projection: its target population's ring and channel
    stride: np.ndarray   # int64: entries per slot (channels x target neurons)
    slots: np.ndarray    # int64: the target population's ring slots


def ring_index(layout: RingLayout, k, t: int, tgt: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Ring entries of synapses of projection(s) k (scalar, or one per synapse) with
    targets ``tgt`` (integers; int64 with the rest) and delays ``d`` (steps) from a spike
    at step t (twin of pp_ring_index)."""
    slot = (t + d.astype(np.int64)) % layout.slots[k]
    return layout.off[k] + slot * layout.stride[k] + tgt


def _propagators(par, dt):
    """NEST iaf_psc_exp propagators (computed in float64, stored as float32)."""
    P22 = math.exp(-dt / par.tau_m)
    P20 = par.tau_m / par.C_m * (1.0 - P22)

    def p21(tau_s):
        if tau_s == par.tau_m:
            return dt / par.C_m * P22
        return (tau_s * par.tau_m) / (par.C_m * (par.tau_m - tau_s)) * (P22 - math.exp(-dt / tau_s))

    return dict(P11ex=math.exp(-dt / par.tau_syn_ex), P11in=math.exp(-dt / par.tau_syn_in),
                P22=P22, P21ex=p21(par.tau_syn_ex), P21in=p21(par.tau_syn_in), P20=P20)


def _indegree_bound(n_draws: float, prob: float, cap: float) -> float:
    """mean + 10 sd + 10 of Binomial(n_draws, prob), at most ``cap``."""
    mean = n_draws * prob
    sd = math.sqrt(max(n_draws * prob * (1.0 - prob), 0.0))
    return float(min(cap, mean + 10.0 * sd + 10.0))


def worst_case_input(cnet: "CompiledNetwork") -> np.ndarray:
    """Largest input one step can bring to a neuron, per (population, channel), in
    fixed-point units, from the tables as they are now: the sum over incoming
    projections of (in-degree bound) x (largest fixed-point weight), plus the largest
    Poisson count times its weight.  Float64, shape (n_pops, 2)."""
    out = np.zeros((cnet.n_pops, 2))
    for k, pj in enumerate(cnet.projs):
        if int(pj["w_kind"]) == DIST_CONST:
            w = abs(float(pj["w_const"]))
        else:
            w = float(cnet.w_max_pA[k]) * float(pj["w_scale"])
        out[int(pj["tgt_pop"]), int(pj["channel"])] += float(cnet.indegree_bound[k]) * w
    for i, p in enumerate(cnet.pops):
        for k, (lo, hi) in enumerate(poisson_slices(p)):
            out[i, (int(p["poisson_channels"]) >> k) & 1] += (hi - lo) * abs(int(p["poisson_w"][k]))
    return out


def poisson_slices(pop) -> List[Tuple[int, int]]:
    """(start, end) of each Poisson input's threshold table in the population's tables
    (add ``pop["poisson_offset"]`` for the whole table array): input k's counts come from
    Philox word k."""
    ends = [int(e) for e in pop["poisson_end"][:int(pop["poisson_n"])]]
    return list(zip([0] + ends[:-1], ends))


def _fires(pin) -> bool:
    return pin.rate * pin.K > 0 and pin.weight != 0


def check_input_range(cnet: "CompiledNetwork") -> None:
    """Raise OverflowDetected, naming the population and channel, where a step's worst
    case input (:func:`worst_case_input`) can leave int32.  Half a unit of rounding per
    synapse of the in-degree bound is allowed: compile_network sizes the scale on the
    weights in pA, so a table it made always passes."""
    from .errors import OverflowDetected
    wc = worst_case_input(cnet)
    slack = np.zeros_like(wc)
    for k, pj in enumerate(cnet.projs):
        slack[int(pj["tgt_pop"]), int(pj["channel"])] += 0.5 * float(cnet.indegree_bound[k])
    bad = np.argwhere(wc > INT32_MAX + slack)
    if bad.size:
        i, ch = (int(x) for x in bad[0])
        raise OverflowDetected(
            f"fixed-point input of population {cnet.pop_names[i]!r}, channel "
            f"{'ex' if ch == 0 else 'in'}: a step can bring up to {wc[i, ch]:.4g} units, more "
            f"than int32 holds ({INT32_MAX:,d}); the CUDA ring is int32, so this network is "
            "refused before it runs (were the tables edited after compile_network?)")


# host bytes of compile_network: per neuron its initial V_m (float32) and per row of a
# fixed-number projection its length (uint32, drawn as int64), and the largest
# population's temporaries while its initial V_m is drawn (tracemalloc: 72 B per neuron
# at the peak of a 2e6-neuron population with normal v_init)
COMPILE_NEURON_BYTES = 4
COMPILE_ROW_BYTES = 12
COMPILE_PEAK_BYTES = 80


def whole_steps(ms: float, dt: float) -> int:
    """A constant delay or refractory period in steps: the nearest whole number of steps,
    halves rounded up as NEST rounds them (0.15 ms at dt 0.1 ms is 2 steps, 0.25 ms 3,
    0.35 ms 4), a half up to float rounding counting as a half (0.15 / 0.1 is
    1.4999999999999998)."""
    return int(math.floor(ms / dt + 0.5 + 1e-9))


DC_DTYPE = np.dtype([("dc_amp", "f4"), ("dc_pad", "u4"), ("dc_start", "u8"),
                     ("dc_stop", "u8")])       # the dc fields of POP_DTYPE, in its order


def dc_segments(windows, dt: float) -> np.ndarray:
    """The step currents ``windows`` (StepCurrent) of one population as stretches of
    constant total amplitude in steps [dc_start, dc_stop) (DC_DTYPE, in time order, no
    overlap, total 0 left out): the amplitudes active in a stretch summed in float64
    (``math.fsum``, exact) and rounded to float32 once (one window: its amplitude as
    float32, as before).  One sweep over the windows' edges: a step-current generator of
    n changes compiles in O(n log n)."""
    starts: Dict[int, List[int]] = {}
    ends: Dict[int, List[int]] = {}
    amps = []
    for w in windows:
        first, end = _step_window(w.start, w.stop, dt)
        if end > first:
            starts.setdefault(first, []).append(len(amps))
            ends.setdefault(end, []).append(len(amps))
            amps.append(w.amplitude)
    edges = sorted(set(starts) | set(ends))
    active: Dict[int, float] = {}
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        for j in ends.get(a, ()):
            del active[j]
        for j in starts.get(a, ()):
            active[j] = amps[j]
        amp32 = np.float32(math.fsum(active.values()))
        if amp32 == 0:                     # nothing on (or a total of 0): I_e alone
            continue
        if out and out[-1][3] == a and out[-1][0] == amp32:
            out[-1] = (amp32, 0, out[-1][2], b)        # the same total goes on
        else:
            out.append((amp32, 0, a, b))
    return np.array(out, dtype=DC_DTYPE)


def dc_switches(cnet: "CompiledNetwork") -> List[Tuple[int, int, int]]:
    """(step count, population, stretch) of every switch after the first stretch, in
    step order: before the step ``step`` runs, population ``population``'s dc fields
    must hold stretch ``stretch`` (its predecessor has ended by then)."""
    out = [(int(seg[k - 1]["dc_stop"]), i, k) for i, seg in enumerate(cnet.dc)
           for k in range(1, seg.size)]
    return sorted(out)


def _step_window(start: float, stop: float, dt: float) -> Tuple[int, int]:
    """Steps [first, end) of a window (start, stop] in ms (whole_steps), as uint64: end
    2^64 - 1 for stop = inf, and for steps past it (a stop meant as "never")."""
    first = min(whole_steps(start, dt), 2 ** 64 - 1)
    end = 2 ** 64 - 1 if stop == math.inf else min(max(first, whole_steps(stop, dt)),
                                                   2 ** 64 - 1)
    return first, end


def compile_network(net: Network) -> CompiledNetwork:
    """Build the flat-array form of ``net`` (validates cross-references once)."""
    if not isinstance(net, Network):
        raise ModelError(f"compile_network needs a pyproc Network, got {type(net).__name__}")
    if not net.populations:
        raise ModelError("network has no populations")
    dt, seed = net.dt, net.seed
    pops_py = net.population_list()
    pop_names = [p.name for p in pops_py]
    pidx = {n: i for i, n in enumerate(pop_names)}
    sizes = np.array([p.size for p in pops_py], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    if sizes.sum() >= 2 ** 32:
        raise ModelError(f"network has {sizes.sum()} neurons; at most 2^32 - 1 are supported")
    _unique_streams("population", {p.name: p.stream for p in pops_py})
    projs_py = list(net.projections.values())
    _unique_streams("projection", {p.name: p.stream for p in projs_py})
    fixed_rows = sum(int(sizes[pidx[pr.source]]) for pr in projs_py if pr.source in pidx and
                     isinstance(pr.rule, (FixedTotalNumber, FixedOutdegree)))
    hostmem.check(f"compiling the network ({int(sizes.sum()):,d} neurons)",
                  {"initial state": COMPILE_NEURON_BYTES * int(sizes.sum()),
                   "row lengths": COMPILE_ROW_BYTES * fixed_rows,
                   "set-up peak": COMPILE_PEAK_BYTES * int(sizes.max())},
                  "Use fewer neurons, or a machine with more memory.")

    projs = np.zeros(len(projs_py), dtype=PROJ_DTYPE)
    rowlens: List[np.ndarray] = []
    rowlen_tasks = []        # fixed_total_number: (projection, slot in rowlens, task)
    rl_off = 0
    w_max = np.zeros(len(projs_py))
    w_trunc = {}                     # k -> (lo, width) of a truncated-normal weight
    k_bound = np.zeros(len(projs_py))
    p_of = np.full(len(projs_py), np.nan)
    for k, pr in enumerate(projs_py):
        where = f"projection {pr.name!r}"
        s, t = pidx[pr.source], pidx[pr.target]
        n_pre, n_post = int(sizes[s]), int(sizes[t])
        row = projs[k]
        row["stream"] = pr.stream
        row["pre_offset"], row["n_pre"] = offsets[s], n_pre
        row["post_offset"], row["n_post"] = offsets[t], n_post
        row["src_pop"], row["tgt_pop"] = s, t
        no_autapse = (s == t) and not pr.rule.allow_autapses
        row["autapses"] = 0 if no_autapse else 1
        rule = pr.rule
        if isinstance(rule, PairwiseBernoulli):
            row["rule"] = RULE_BERNOULLI
            p = rule.p
            p_of[k] = p
            row["log1mp"] = 0.0 if p == 0.0 else (-np.inf if p == 1.0 else math.log1p(-p))
            # the geometric skip's integer constants (p = 0: never, p = 1: always)
            row["gmul"], row["gshift"] = sampling.geometric_params(p)
            w = segment_width(p)
            row["seg_width"], row["n_seg"] = w, -(-n_post // w)
            k_bound[k] = _indegree_bound(n_pre, p, n_pre)
        elif isinstance(rule, Decoder):
            row["rule"] = RULE_DECODER
            row["autapses"] = 1
            k_bound[k] = min(n_pre, 2 ** 32)
        else:
            row["rule"] = RULE_FIXED
            if isinstance(rule, FixedTotalNumber):
                total = rule.N
                if no_autapse and n_post < 2 and total > 0:
                    raise ModelError(f"{where}: fixed_total_number without autapses needs >= 2 "
                                     f"neurons in the population")
                lens = None          # drawn below for all projections at once (in parallel)
                rowlen_tasks.append((k, len(rowlens), (seed, pr.stream, total, n_pre)))
            else:
                assert isinstance(rule, FixedOutdegree)
                total = rule.k * n_pre
                lens = np.full(n_pre, rule.k, dtype=np.int64)
            if total > U32_MAX:
                raise ModelError(f"{where}: more than 2^32 - 1 synapses in one projection")
            row["rowlen_offset"] = rl_off
            rowlens.append(None if lens is None else lens.astype(np.uint32))
            rl_off += n_pre
            n_choice = n_post - 1 if no_autapse else n_post
            k_bound[k] = _indegree_bound(total, 1.0 / max(n_choice, 1), total)
        # weight (|w| distribution, sign kept)
        wd = pr.weight
        if isinstance(wd, Constant):
            row["w_kind"] = DIST_CONST
            row["w_sign"] = -1 if wd.value < 0 else 1
            w_max[k] = abs(wd.value)
        else:
            row["w_kind"] = DIST_TNORM
            row["w_sign"] = -1 if wd.mean < 0 else 1
            row["w_mean"], row["w_sd"] = abs(wd.mean), wd.sd
            w_trunc[k] = sampling.trunc_bounds(abs(wd.mean), wd.sd, 0.0)
            # w_max: below, for all projections at once; the sampler's constants once
            # the fixed-point scale is known
        row["channel"] = 1 if row["w_sign"] < 0 else 0
        # delay
        dd = pr.delay
        if isinstance(dd, Constant):
            steps = max(1, whole_steps(dd.value, dt))
            if steps >= 2 ** 16:
                raise ModelError(f"{where}: delay of {steps} steps exceeds 65535 steps")
            row["d_kind"], row["d_const"], row["d_max"] = DIST_CONST, steps, steps
        else:
            row["d_kind"] = DIST_TNORM
            row["d_mean"], row["d_sd"] = dd.mean, dd.sd
            d_low = dt if dd.low is None else max(dt, dd.low)
            d_high = np.inf if dd.high is None else dd.high
            lo, width = sampling.trunc_bounds(dd.mean, dd.sd, d_low, d_high)
            if not width > 0:
                raise ModelError(f"{where}: delay {dd.describe()} has no probability mass in "
                                 f"[{d_low:g}, {d_high:g}] ms")
            # sampled in steps (mean / dt and sd / dt): no division per synapse
            try:
                (row["d_plo"], row["d_pwidth"], row["d_c0"], row["d_b"],
                 row["d_shift"]) = sampling.trunc_normal_params(dd.mean / dt, dd.sd / dt, lo,
                                                                width)
            except ValueError as e:
                raise ModelError(f"{where}: delay {dd.describe()}: in steps of dt = {dt:g} "
                                 f"ms, {e}") from None
            # d_max: below, for all projections at once

    # The largest 32-bit word gives the largest weight and delay (the table quantile is
    # monotone): one vectorised twin evaluation for every truncated-normal projection.
    # Weights in pA here (the largest z, a bound for the fixed-point scale: the sampler
    # rounds to whole units below); delays in steps, exactly as the sampler gives them.
    top = np.uint32(U32_MAX)
    tn = projs["w_kind"] == DIST_TNORM
    if tn.any():
        plo, pwidth = np.array([sampling.prob_fx(*w_trunc[k]) for k in np.flatnonzero(tn)],
                               dtype=np.uint64).T
        z = sampling.quantile_fx(sampling.trunc_prob_fx(top, plo, pwidth))
        w_max[tn] = projs["w_mean"][tn] + projs["w_sd"][tn] * (z / float(1 << sampling.Z_FRAC))
    tn = projs["d_kind"] == DIST_TNORM
    if tn.any():
        dmax = sampling.trunc_normal_fx(top, *(projs[f][tn] for f in (
            "d_plo", "d_pwidth", "d_c0", "d_b", "d_shift")))
        steps = np.maximum(1, dmax)
        too_long = np.flatnonzero(tn)[steps >= 2 ** 16]
        if too_long.size:
            k = int(too_long[0])
            raise ModelError(f"projection {projs_py[k].name!r}: delays up to "
                             f"{int(steps[steps >= 2 ** 16][0])} steps exceed 65535 steps")
        projs["d_max"][tn] = steps

    # fixed_total_number row lengths: one stream per projection, so drawn in parallel
    for (_, slot, _), lens in zip(rowlen_tasks, draw_row_lengths([t for _, _, t in rowlen_tasks])):
        rowlens[slot] = lens

    # one input channel where the two synaptic time constants are equal
    n_ch = np.array([1 if isinstance(p.params, (PoissonSource, SpikeSourceArray))
                     or p.params.tau_syn_ex == p.params.tau_syn_in else 2 for p in pops_py])
    for k in range(len(projs_py)):
        if n_ch[projs[k]["tgt_pop"]] == 1:
            projs[k]["channel"] = 0

    # Poisson tables
    pops = np.zeros(len(pops_py), dtype=POP_DTYPE)
    tables: List[np.ndarray] = []
    t_off = 0
    bound = np.zeros((len(pops_py), 2))
    for k in range(len(projs_py)):
        bound[projs[k]["tgt_pop"], projs[k]["channel"]] += k_bound[k] * w_max[k]
    # a population's inputs: input k keeps Philox word k (an input that never fires, rate,
    # K or weight 0, keeps its place with an empty table), its tables one after the other
    pois = [list(net.poisson.get(p.name, ())) for p in pops_py]
    for i, inputs in enumerate(pois):
        par = pops_py[i].params
        if isinstance(par, SpikeSourceArray):
            # its spike steps, in the Poisson tables' buffer (no kernel argument more):
            # row starts, then the steps (SpikeSourceArray.table); poisson_n stays 0
            tab, shared = par.table(sizes[i], dt, f"population {pop_names[i]!r}")
            pops[i]["poisson_offset"], pops[i]["poisson_len"] = t_off, len(tab)
            pops[i]["src_p"] = int(shared)
            tables.append(tab)
            t_off += len(tab)
            continue
        while inputs and not _fires(inputs[-1]):
            inputs.pop()
        row, end = pops[i], 0
        row["poisson_offset"], row["poisson_n"] = t_off, len(inputs)
        for k, pin in enumerate(inputs):
            tab = (sampling.poisson_table(pin.K * pin.rate * dt * 1e-3) if _fires(pin)
                   else np.zeros(0, np.uint32))
            ch = 1 if (pin.weight < 0 and n_ch[i] == 2) else 0
            row["poisson_channels"] |= ch << k
            end += len(tab)
            row["poisson_end"][k] = end
            tables.append(tab)
            bound[i, ch] += len(tab) * abs(pin.weight)
        row["poisson_len"] = end
        t_off += end
    for i, p in enumerate(pops_py):          # Network.reserve_input: a floor on the bound
        bound[i] = np.maximum(bound[i], net.input_reserve.get(p.name, 0.0))
    scale = np.empty_like(bound)
    for i in range(len(pops_py)):
        for ch in range(2):
            b = float(bound[i, ch])
            r = math.inf if b == 0 else INT32_MAX / b   # inf also for a subnormal b
            if r < 2.0 ** -8:                            # also b = inf
                raise ModelError(f"population {pop_names[i]!r}: worst-case input per step "
                                 f"({b:.3g} pA) leaves no fixed-point resolution")
            # at most 2^64 units per pA (tiny weights): 2.0 ** big would overflow
            scale[i, ch] = 2.0 ** 16 if b == 0 else 2.0 ** min(
                math.floor(math.log2(r)) if math.isfinite(r) else 64, 64)
    # fixed-point weights
    for k in range(len(projs_py)):
        row = projs[k]
        sc = scale[row["tgt_pop"], row["channel"]]
        row["w_scale"] = sc
        if row["w_kind"] == DIST_CONST:
            row["w_const"] = row["w_sign"] * int(sampling.round_nonneg(w_max[k] * sc))
        else:                        # the magnitude in fixed-point units (pp_weight_fixed)
            (row["w_plo"], row["w_pwidth"], row["w_c0"], row["w_b"],
             row["w_shift"]) = sampling.trunc_normal_params(float(row["w_mean"]) * sc,
                                                            float(row["w_sd"]) * sc, *w_trunc[k])

    ring_off = 0
    dc_tab: List[np.ndarray] = []        # step-current stretches per LIF population
    for i, p in enumerate(pops_py):
        par = p.params
        row = pops[i]
        if not isinstance(par, LIF):
            dc_tab.append(np.zeros(0, DC_DTYPE))
        if isinstance(par, (PoissonSource, SpikeSourceArray)):
            # no LIF: the kernels branch on kind; these fields keep the CPU backend's
            # vectorised LIF step inert for it (V constant, never at threshold)
            row["P22"], row["V_th"] = 1.0, np.inf
        if isinstance(par, SpikeSourceArray):
            row["kind"] = POP_ARRAY
        elif isinstance(par, PoissonSource):
            row["kind"] = POP_SOURCE
            row["src_p"] = min(U32_MAX, int(round(par.rate * dt * 1e-3 * 2.0 ** 32)))
            row["src_start"], row["src_stop"] = _step_window(par.start, par.stop, dt)
        else:
            for key, val in _propagators(par, dt).items():
                row[key] = np.float32(val)
            row["I_e"] = par.I_e
            row["V_th"] = par.V_th - par.E_L
            row["V_reset"] = par.V_reset - par.E_L
            row["ref_steps"] = whole_steps(par.t_ref, dt)
            seg = dc_segments(net.dc.get(p.name, ()), dt)
            dc_tab.append(seg)
            if seg.size:                          # the first stretch, in steps [start, stop)
                for f in DC_DTYPE.names:
                    row[f] = seg[0][f]
        row["inv_scale_ex"] = np.float32(1.0 / scale[i, 0])
        row["inv_scale_in"] = np.float32(1.0 / scale[i, 1])
        row["offset"], row["n"], row["stream"] = offsets[i], sizes[i], p.stream
        incoming = projs["d_max"][projs["tgt_pop"] == i] if len(projs) else np.zeros(0)
        row["ring_slots"] = (int(incoming.max()) + 1) if incoming.size else 1
        row["ring_offset"] = ring_off
        row["n_channels"] = n_ch[i]
        ring_off += int(row["ring_slots"]) * int(n_ch[i]) * int(sizes[i])
        for k, pin in enumerate(pois[i]):
            sc = scale[i, (int(row["poisson_channels"]) >> k) & 1]
            row["poisson_w"][k] = (-1 if pin.weight < 0 else 1) * int(
                sampling.round_nonneg(abs(pin.weight) * sc))

    v0 = np.concatenate([_initial_v(p, seed) for p in pops_py]).astype(np.float32)
    return CompiledNetwork(
        network=net, dt=dt, seed=seed, pop_names=pop_names,
        proj_names=[p.name for p in projs_py], pops=pops, projs=projs,
        rowlen=np.concatenate(rowlens) if rowlens else np.zeros(0, np.uint32),
        poisson_tables=np.concatenate(tables) if tables else np.zeros(0, np.uint32),
        ring_size=ring_off, v0=v0, record=np.array([p.record for p in pops_py]),
        scale=scale, w_max_pA=w_max, indegree_bound=k_bound, info={"p": p_of},
        state=state_groups(net, pop_names, offsets), dc=dc_tab)


def _initial_v(p, seed) -> np.ndarray:
    """Initial V_m - E_L of population p (float64; counter (neuron, 0, 0, TAG_INIT))."""
    d, E_L = p.v_init, getattr(p.params, "E_L", 0.0)     # a PoissonSource: 0, unused
    if isinstance(d, Constant):
        return np.full(p.size, d.value - E_L)
    r = philox_words(np.arange(p.size, dtype=np.uint32), 0, 0, TAG_INIT, seed, p.stream)[0]
    if isinstance(d, Normal):
        v = d.mean + d.sd * sampling.norm_quantile(sampling.u01(r))
    else:
        assert isinstance(d, Uniform)
        v = d.low + sampling.u01(r) * (d.high - d.low)
    return v - E_L


def _unique_streams(kind: str, streams: Dict[str, int]) -> None:
    seen: Dict[int, str] = {}
    for name, s in streams.items():
        if s in seen:
            raise ModelError(f"{kind}s {seen[s]!r} and {name!r} share RNG stream id {s:#010x}; "
                             f"give one of them an explicit stream=")
        seen[s] = name
