"""Model description: populations, projections, Poisson inputs, recorders.

Units as NEST: ms, mV, pA, pF, Hz.  Each argument is checked here, when it is given,
with a message that names the field and the allowed range; what depends on the whole
network (delays in steps, stream collisions, the fixed-point range of a target's input,
memory) is checked by ``compile_network`` (which ``Simulation`` calls), before anything
is simulated.

Example::

    net = Network(dt=0.1, seed=42)
    net.add_population("E", 800, LIF(tau_syn_ex=0.5), v_init=normal(-58.0, 5.0))
    net.connect("E", "E", pairwise_bernoulli(0.1), weight=normal(87.8, 8.78), delay=1.5)
    net.add_poisson("E", rate=8.0, K=1000, weight=87.8)
"""
from __future__ import annotations

import math
import numbers
import re
import warnings
from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional, Union

from .dist import Constant, Normal, Uniform, as_dist
from .errors import ModelError, flag, number
from .rng import stream_id
from .rules import Decoder, FixedOutdegree, FixedTotalNumber, PairwiseBernoulli, from_conn_spec

__all__ = ["LIF", "PoissonSource", "SpikeSourceArray", "Population", "Projection", "PoissonInput",
           "StepCurrent", "StateRecorder", "STATE_VARIABLES", "Network"]

_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")
# largest mean Poisson count per neuron and step (the count's threshold table has about
# mean + 20 sd entries, 4 bytes each, on the host and the GPU)
POISSON_MAX_MEAN = 2 ** 20
# Poisson inputs per population: input k draws word k of the population's one Philox call
# per neuron and step (kernels/network.cuh PP_MAX_POISSON)
MAX_POISSON = 4
# what record_state samples: NEST iaf_psc_exp's recordables V_m (mV), I_syn_ex and
# I_syn_in (pA), and their sum I_syn (pA)
STATE_VARIABLES = ("V_m", "I_syn_ex", "I_syn_in", "I_syn")


@dataclass(frozen=True)
class LIF:
    """Parameters of NEST's ``iaf_psc_exp`` (defaults are NEST's)."""
    C_m: float = 250.0          # pF
    tau_m: float = 10.0         # ms
    E_L: float = -70.0          # mV
    V_th: float = -55.0         # mV
    V_reset: float = -70.0      # mV
    t_ref: float = 2.0          # ms (rounded to the nearest whole step, halves up)
    tau_syn_ex: float = 2.0     # ms
    tau_syn_in: float = 2.0     # ms
    I_e: float = 0.0            # pA

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, number(f"LIF.{f.name}", getattr(self, f.name)))
        for name in ("C_m", "tau_m", "tau_syn_ex", "tau_syn_in"):
            if getattr(self, name) <= 0:
                raise ModelError(f"LIF.{name} must be > 0, got {getattr(self, name)}")
        if self.t_ref < 0:
            raise ModelError(f"LIF.t_ref must be >= 0 ms, got {self.t_ref}")
        if self.C_m < 1.0:
            warnings.warn(f"LIF.C_m = {self.C_m:g} pF: NEST's unit is pF (PyNN's cm is in nF, "
                          f"0.25 nF = 250 pF); a capacitance this small makes each pA of "
                          f"input a large PSP", stacklevel=3)
        if not self.V_reset < self.V_th:
            raise ModelError(f"LIF.V_reset must be < V_th, got V_reset={self.V_reset}, "
                             f"V_th={self.V_th}")


def _stop_ms(field_: str, value) -> float:
    """The end of a time window in ms: a number, or +inf (any real type) for no end."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and \
            float(value) == math.inf:
        return math.inf
    return number(f"{field_} (ms, or math.inf)", value)


@dataclass(frozen=True)
class PoissonSource:
    """A population of independent Poisson spike trains, PyNN's ``SpikeSourcePoisson``
    (NEST: a ``poisson_generator`` into ``parrot_neuron``s; GeNN: ``PoissonNew``): each
    neuron spikes in a step with probability rate * dt, at most once per step, in the
    steps whose spike time (t + 1) dt lies in (start, stop] (ms, rounded to whole steps,
    halves up, as delays).  It has no membrane, takes no synaptic or Poisson input, and
    projects like any population."""
    rate: float                 # Hz
    start: float = 0.0          # ms
    stop: float = math.inf      # ms

    def __post_init__(self):
        for f in ("rate", "start"):
            object.__setattr__(self, f, number(f"PoissonSource.{f}", getattr(self, f)))
        object.__setattr__(self, "stop", _stop_ms("PoissonSource.stop", self.stop))
        if not 0 <= self.rate:
            raise ModelError(f"PoissonSource.rate must be >= 0 Hz, got {self.rate}")
        if not 0 <= self.start:
            raise ModelError(f"PoissonSource.start must be >= 0 ms, got {self.start}")
        if not self.stop >= self.start:
            raise ModelError(f"PoissonSource.stop must be >= start, got start={self.start}, "
                             f"stop={self.stop}")


@dataclass(frozen=True, eq=False)
class SpikeSourceArray:
    """A population that emits given spikes, PyNN's ``SpikeSourceArray`` (NEST: a
    ``spike_generator`` per neuron into a ``parrot_neuron``).  ``spike_times`` (ms): one
    sequence of times that every neuron emits (stored once), or a list with a sequence per
    neuron; copied when given (changing the caller's lists later has no effect), each
    sequence sorted.  A spike at T ms is emitted in the step that ends at T, so T must be
    a multiple of dt (> 0; as NEST, which refuses times off the grid), and a neuron has at
    most one spike per step.  It takes no input and projects like any population."""
    spike_times: object

    def __post_init__(self):
        import numpy as np
        st, what = self.spike_times, "SpikeSourceArray.spike_times"
        try:
            if isinstance(st, (str, bytes, dict)):
                raise TypeError
            seq = list(st)
        except TypeError:
            raise ModelError(f"{what} must be a sequence of times (ms) or one sequence per "
                             f"neuron, got {st!r}") from None
        nested = [not isinstance(x, (str, bytes)) and np.ndim(x) == 1 for x in seq]
        if any(nested) and not all(nested):
            raise ModelError(f"{what} must be one sequence of times (ms) or one sequence per "
                             f"neuron, not a mix of times and sequences")

        def numbers(x, i=None):
            try:
                a = np.array(x, dtype=np.float64)           # a copy
            except (TypeError, ValueError):
                a = None
            if a is None or a.ndim != 1 or np.asarray(x).dtype.kind not in "iuf":
                at = "" if i is None else f" of neuron {i}"
                raise ModelError(f"{what}{at} must be numbers (ms), got {x!r}")
            a.setflags(write=False)
            return a
        shared = not (seq and all(nested))
        object.__setattr__(self, "spike_times", numbers(seq) if shared else
                           tuple(numbers(x, i) for i, x in enumerate(seq)))
        object.__setattr__(self, "shared", shared)
        object.__setattr__(self, "_tables", {})

    def table(self, size: int, dt: float, where: str):
        """(table, shared): the uint32 table the kernels read (pp_array_spike) -- row
        starts (n + 1; shared: the 2 of the one train), then the spike steps t (the step
        that ends at T = (t + 1) dt), ascending per neuron -- or a ModelError naming the
        neuron and time."""
        import numpy as np
        key = (int(size), float(dt))
        if key in self._tables:
            return self._tables[key]
        rows = [self.spike_times] if self.shared else list(self.spike_times)
        if not self.shared and len(rows) != size:
            raise ModelError(f"{where}: SpikeSourceArray.spike_times has {len(rows)} sequences "
                             f"for {size} neurons (give one, or one per neuron)")
        lens = np.array([r.size for r in rows], dtype=np.int64)
        T = np.concatenate(rows) if rows else np.zeros(0)
        nid = np.repeat(np.arange(len(rows)), lens)
        k = np.round(T / dt)
        # a time on the grid is k dt up to the rounding of T / dt (~1e-16 of k)
        off = ~np.isfinite(T) | (np.abs(T / dt - k) > 1e-9 + 4e-16 * np.abs(k))
        for mask, why in ((~np.isfinite(T), "is not finite"),
                          (off, f"is not a multiple of dt = {dt:g} ms"),
                          (k < 1, f"is before the first step: spike times must be >= dt = "
                                  f"{dt:g} ms"),
                          (k > 2.0 ** 32, "is past 2^32 steps")):
            if mask.any():
                j = int(np.flatnonzero(mask)[0])
                who = "" if self.shared else f" of neuron {int(nid[j])}"
                raise ModelError(f"{where}: SpikeSourceArray spike time {float(T[j])} ms{who} "
                                 f"{why}")
        t = k.astype(np.int64) - 1
        order = np.lexsort((t, nid))
        t, nid = t[order], nid[order]
        dup = np.flatnonzero((np.diff(t) == 0) & (np.diff(nid) == 0))
        if dup.size:
            j = int(dup[0])
            who = "its neurons have" if self.shared else f"neuron {int(nid[j])} has"
            raise ModelError(f"{where}: SpikeSourceArray: {who} two spikes at "
                             f"{(t[j] + 1) * dt:g} ms (at most one per step)")
        starts = np.concatenate(([0], np.cumsum(lens)))
        tab = np.concatenate((starts, t)).astype(np.uint32)
        self._tables[key] = (tab, self.shared)
        return self._tables[key]


@dataclass
class Population:
    name: str
    size: int
    params: Union[LIF, PoissonSource, SpikeSourceArray]
    v_init: Union[Constant, Normal, Uniform]
    stream: int
    index: int
    record: bool = True


@dataclass
class Projection:
    name: str
    source: str
    target: str
    rule: Union[PairwiseBernoulli, FixedTotalNumber, FixedOutdegree, Decoder]
    weight: Union[Constant, Normal]
    delay: Union[Constant, Normal]
    stream: int


@dataclass
class PoissonInput:
    target: str
    rate: float    # Hz per input
    K: float       # number of inputs per neuron
    weight: float  # pA


@dataclass(frozen=True)
class StepCurrent:
    target: str
    amplitude: float   # pA
    start: float       # ms
    stop: float        # ms (math.inf: no end)


@dataclass(frozen=True)
class StateRecorder:
    """A population's state recording (NEST's multimeter): ``variables`` of
    ``neurons`` (local indices; None: all) every ``interval`` ms."""
    population: str
    variables: tuple             # of STATE_VARIABLES, in the order given
    neurons: Optional[tuple]     # local indices, in the order given; None: all
    interval: float              # ms, a whole number of steps


def grid_steps(value: float, dt: float, orig=None) -> Optional[int]:
    """``value`` ms as a whole number of steps of ``dt``, or None where it is not one: up
    to float64 rounding, or float32's where ``orig`` (the value as given) is a NumPy
    float32 (np.float32(0.3) is 0.30000001192092896)."""
    import numpy as np
    k = int(round(value / dt))
    tol = 1e-9 * max(1.0, abs(value))
    if isinstance(orig, np.floating) and np.finfo(orig.dtype).eps > 1e-12:
        tol = max(tol, 4 * float(np.finfo(orig.dtype).eps) * max(abs(value), dt))
    return k if abs(k * dt - value) <= tol else None


def _sequence(field_: str, value, what: str) -> list:
    """``value`` as a list: a list, tuple, range, 1-D NumPy array or other ordered
    iterable; a string, bytes, dict, set or 0-d array is refused (ModelError naming
    ``field_``), as its items are not what it looks like (or have no order)."""
    if isinstance(value, (str, bytes, dict, set, frozenset)) or not hasattr(value, "__iter__") \
            or getattr(value, "ndim", 1) != 1:
        raise ModelError(f"{field_} must be a sequence (list, tuple, range or 1-D array) of "
                         f"{what}, got {value!r}")
    return list(value)


def _local_indices(field_: str, value, size: int) -> tuple:
    """``value`` (a sequence, range or NumPy array of whole numbers) as a tuple of distinct
    local indices in [0, size), or a ModelError naming ``field_``."""
    value = _sequence(field_, value, "local indices")
    out = []
    for x in value:
        if isinstance(x, bool) or not isinstance(x, numbers.Integral):
            raise ModelError(f"{field_} must be whole numbers, got {x!r}")
        x = int(x)
        if not 0 <= x < size:
            raise ModelError(f"{field_}: index {x} is outside the population's [0, {size})")
        out.append(x)
    if not out:
        raise ModelError(f"{field_} is empty (record_state(..., variables=()) ends a "
                         f"recording)")
    if len(set(out)) != len(out):
        raise ModelError(f"{field_} holds an index more than once")
    return tuple(out)


@dataclass
class Network:
    """A network of LIF populations; ``dt`` in ms, ``seed`` an integer in [0, 2^32)."""
    dt: float = 0.1
    seed: int = 0
    populations: Dict[str, Population] = field(default_factory=dict)
    projections: Dict[str, Projection] = field(default_factory=dict)
    poisson: Dict[str, List[PoissonInput]] = field(default_factory=dict)  # by target, in call order
    dc: Dict[str, List[StepCurrent]] = field(default_factory=dict)   # by target, they add up
    input_reserve: Dict[str, float] = field(default_factory=dict)           # pA, by population
    state: Dict[str, StateRecorder] = field(default_factory=dict)           # by population

    def __post_init__(self):
        dt = number("Network.dt (ms)", self.dt)
        if not dt > 0:
            raise ModelError(f"Network.dt must be > 0 ms and finite, got {self.dt!r}")
        self.dt = dt
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not (
                0 <= self.seed < 2 ** 32):
            try:
                import numpy as np
                ok = isinstance(self.seed, np.integer) and 0 <= int(self.seed) < 2 ** 32
            except ImportError:  # pragma: no cover
                ok = False
            if not ok:
                raise ModelError(f"Network.seed must be an integer in [0, 2^32), got {self.seed!r}")
            self.seed = int(self.seed)

    # -- building ---------------------------------------------------------
    def add_population(self, name: str, size: int, params: Optional[LIF] = None,
                       v_init=None, stream: Optional[int] = None, record: bool = True) -> str:
        """Add ``size`` iaf_psc_exp neurons (``params`` a :class:`LIF`), or ``size``
        Poisson spike sources (``params`` a :class:`PoissonSource`, no ``v_init``);
        ``v_init`` (mV) a number or a distribution (default: E_L).  Returns the name."""
        name = self._check_name("population", name)
        if name in self.populations:
            raise ModelError(f"population {name!r} already exists")
        if isinstance(size, bool) or not isinstance(size, int):
            try:
                import numpy as np
                if isinstance(size, np.integer):
                    size = int(size)
                else:
                    raise TypeError
            except TypeError:
                raise ModelError(f"population {name!r}: size must be a whole number >= 1, "
                                 f"got {size!r}") from None
        if not (1 <= size < 2 ** 31):
            raise ModelError(f"population {name!r}: size must be in [1, 2^31), got {size}")
        params = LIF() if params is None else params
        if isinstance(params, (SpikeSourceArray, PoissonSource)):
            if v_init is not None:
                raise ModelError(f"population {name!r}: a {type(params).__name__} has no "
                                 f"membrane potential (v_init must not be given)")
            v_init = 0.0
        if isinstance(params, SpikeSourceArray):
            params.table(size, self.dt, f"population {name!r}")   # checked now, by name
        elif isinstance(params, PoissonSource):
            p_step = params.rate * self.dt * 1e-3
            if p_step >= 1.0:
                raise ModelError(f"population {name!r}: PoissonSource rate * dt = {p_step:g} "
                                 f"spikes per step; it must be < 1 (at most one spike per step)")
        elif not isinstance(params, LIF):
            raise ModelError(f"population {name!r}: params must be a pyproc.LIF, "
                             f"PoissonSource or SpikeSourceArray, got {params!r}")
        else:
            v_init = params.E_L if v_init is None else v_init
        v0 = as_dist(f"population {name!r}: v_init", v_init)
        if isinstance(v0, Normal) and (v0.low is not None or v0.high is not None):
            raise ModelError(f"population {name!r}: v_init normal(mean, sd) takes no low/high "
                             f"bounds")
        self.populations[name] = Population(
            name, size, params, v0, self._stream(f"population {name!r}", name, stream),
            len(self.populations), bool(record))
        return name

    def connect(self, source: str, target: str, rule, weight, delay, name: Optional[str] = None,
                stream: Optional[int] = None) -> str:
        """Add a projection ``source -> target`` with a rule (pairwise_bernoulli,
        fixed_total_number, fixed_outdegree, all_to_all; or a NEST conn_spec dict such as
        ``{"rule": "pairwise_bernoulli", "p": 0.1}``, see pyproc.rules.from_conn_spec), a weight in pA (negative: inhibitory) and a
        delay in ms (>= dt; a constant delay is rounded to the nearest whole step, halves
        up, as NEST does: 1.55 ms at dt 0.1 is 1.6 ms; a normal delay is sampled in steps,
        see pyproc.dist.normal).  ``name`` (default ``"source->target"``) fixes the RNG
        stream."""
        src = self._pop_name("connect: source", source)
        tgt = self._pop_name("connect: target", target)
        self._not_a_source(f"connect {src!r} -> {tgt!r}", tgt)
        name = self._check_name("projection", name if name is not None else f"{src}->{tgt}")
        if name in self.projections:
            raise ModelError(f"projection {name!r} already exists (give a distinct name=)")
        where = f"projection {name!r}"
        if isinstance(rule, (str, dict)):
            rule = from_conn_spec(rule, f"{where}: conn_spec")
        if not isinstance(rule, (PairwiseBernoulli, FixedTotalNumber, FixedOutdegree, Decoder)):
            raise ModelError(f"{where}: rule must be pairwise_bernoulli(p), fixed_total_number(N), "
                             f"fixed_outdegree(k), all_to_all() or a NEST conn_spec dict, "
                             f"got {rule!r}")
        if isinstance(rule, FixedOutdegree) and src == tgt and not rule.allow_autapses and \
                self.populations[tgt].size < 2:
            raise ModelError(f"{where}: fixed_outdegree without autapses needs >= 2 targets")
        w = as_dist(f"{where}: weight", weight)
        if isinstance(w, Uniform):
            raise ModelError(f"{where}: weight must be a number or normal(mean, sd)")
        if isinstance(w, Normal) and w.mean == 0:
            raise ModelError(f"{where}: weight normal(mean, sd) needs mean != 0 (its sign is kept)")
        if isinstance(w, Normal) and (w.low is not None or w.high is not None):
            raise ModelError(f"{where}: weight normal(mean, sd) takes no low/high bounds "
                             f"(it is truncated at 0, keeping the sign of mean)")
        d = as_dist(f"{where}: delay", delay)
        if isinstance(d, Uniform):
            raise ModelError(f"{where}: delay must be a number or normal(mean, sd)")
        dmean = d.value if isinstance(d, Constant) else d.mean
        if isinstance(d, Constant) and dmean < self.dt:
            raise ModelError(f"{where}: delay must be >= dt = {self.dt} ms, got {dmean} ms")
        if isinstance(d, Normal) and d.mean <= 0:
            raise ModelError(f"{where}: delay mean must be > 0 ms, got {d.mean}")
        if isinstance(d, Normal) and d.high is not None and not d.high > max(
                self.dt, d.low if d.low is not None else self.dt):
            raise ModelError(f"{where}: delay high must be > max(dt, low), got high={d.high} ms")
        self.projections[name] = Projection(name, src, tgt, rule, w, d,
                                            self._stream(where, name, stream))
        return name

    def add_poisson(self, target: str, rate: float, K: float, weight: float) -> None:
        """Poisson background onto every neuron of ``target``: K independent inputs at
        ``rate`` Hz, each event adding ``weight`` pA (one count per neuron per step), as
        NEST's ``poisson_generator`` at rate * K connected all-to-all.  A population takes
        up to four such inputs (e.g. an excitatory and an inhibitory background, or
        inputs of different weights); they are independent, and adding one leaves the
        counts of the earlier ones unchanged (input k draws word k of one Philox call)."""
        tgt = self._pop_name("add_poisson: target", target)
        self._not_a_source("add_poisson", tgt)
        vals = {f: number(f"Poisson input onto {tgt!r}: {f}", v)
                for f, v in (("rate", rate), ("K", K), ("weight", weight))}
        if vals["rate"] < 0:
            raise ModelError(f"Poisson input onto {tgt!r}: rate must be >= 0 Hz, got {vals['rate']}")
        if vals["K"] < 0:
            raise ModelError(f"Poisson input onto {tgt!r}: K must be >= 0, got {vals['K']}")
        lam = vals["rate"] * vals["K"] * self.dt * 1e-3
        if lam > POISSON_MAX_MEAN:
            raise ModelError(f"Poisson input onto {tgt!r}: rate * K * dt = {lam:.4g} events per "
                             f"neuron per step exceeds {POISSON_MAX_MEAN:,d} (its count table "
                             f"grows with it); model such a drive as DC (LIF I_e)")
        have = self.poisson.setdefault(tgt, [])
        if len(have) >= MAX_POISSON:
            raise ModelError(f"Poisson input onto {tgt!r}: a population takes at most "
                             f"{MAX_POISSON} Poisson inputs (one Philox call draws them all); "
                             f"inputs of the same weight add up: one input at rate_1 K_1 + "
                             f"rate_2 K_2 with K = 1")
        have.append(PoissonInput(tgt, vals["rate"], vals["K"], vals["weight"]))

    def add_dc(self, target: str, amplitude: float, start: float = 0.0,
               stop: float = math.inf) -> None:
        """A step current of ``amplitude`` pA into every neuron of ``target`` (NEST's
        ``dc_generator``, PyNN's ``DCSource``), added to its I_e in the steps whose
        interval lies in (start, stop] ms (rounded to whole steps, halves up): from the
        step after ``start`` to the step that ends at ``stop``.  Unlike NEST it acts from
        ``start`` itself: NEST's current reaches a neuron after the connection's delay,
        and iaf_psc_exp applies an input current from the step after it arrives, so a
        NEST trace lags this one by delay + dt (set start earlier by that much to
        compare).  Several step currents into one population add up (in float64,
        rounded to float32 once per stretch of constant total: compile.dc_segments)."""
        tgt = self._pop_name("add_dc: target", target)
        self._not_a_source("add_dc", tgt)
        where = f"step current into {tgt!r}"
        amp = number(f"{where}: amplitude (pA)", amplitude)
        t0 = number(f"{where}: start (ms)", start)
        t1 = _stop_ms(f"{where}: stop", stop)
        if t0 < 0 or not t1 >= t0:
            raise ModelError(f"{where}: need 0 <= start <= stop, got start={t0:g} ms, "
                             f"stop={t1:g} ms")
        self.dc.setdefault(tgt, []).append(StepCurrent(tgt, amp, t0, t1))

    def add_step_current(self, target: str, times, amplitudes) -> None:
        """A piecewise-constant current into every neuron of ``target`` (NEST's
        ``step_current_generator``): ``amplitudes[i]`` pA from ``times[i]`` to
        ``times[i + 1]`` ms, the last one for the rest of the run, nothing before
        ``times[0]``.  Times are strictly increasing, >= 0, on the dt grid (as NEST's
        default).  As :meth:`add_dc` (which it is, one window per amplitude): it acts from
        ``times[i]``, NEST's from ``times[i]`` + delay + dt, and it adds to the
        population's other step currents.  On the GPU the host writes each new amplitude
        between two batches of steps (no kernel work): every change cuts the step loop
        once."""
        tgt = self._pop_name("add_step_current: target", target)
        self._not_a_source("add_step_current", tgt)
        where = f"step current generator into {tgt!r}"
        times = _sequence(f"{where}: times", times, "numbers (ms)")
        amplitudes = _sequence(f"{where}: amplitudes", amplitudes, "numbers (pA)")
        if not times or len(times) != len(amplitudes):
            raise ModelError(f"{where}: times and amplitudes must have the same length >= 1, "
                             f"got {len(times)} and {len(amplitudes)}")
        ts = [number(f"{where}: times[{i}] (ms)", t) for i, t in enumerate(times)]
        amps = [number(f"{where}: amplitudes[{i}] (pA)", a) for i, a in enumerate(amplitudes)]
        for i, t in enumerate(ts):
            if t < 0 or grid_steps(t, self.dt, times[i]) is None:
                raise ModelError(f"{where}: times[{i}] = {t:g} ms is not >= 0 on the grid of "
                                 f"dt = {self.dt:g} ms")
            if i and not t > ts[i - 1]:
                raise ModelError(f"{where}: times must be strictly increasing, got "
                                 f"times[{i - 1}] = {ts[i - 1]:g} and times[{i}] = {t:g} ms")
        stops = ts[1:] + [math.inf]
        self.dc.setdefault(tgt, []).extend(StepCurrent(tgt, a, t0, t1)
                                           for a, t0, t1 in zip(amps, ts, stops))

    def reserve_input(self, population: str, max_pA: float) -> None:
        """Size the fixed-point scale of ``population``'s input (both channels) for a
        worst case of at least ``max_pA`` pA per step, whatever its inputs are.  Synaptic
        input is summed in integers at a power-of-two scale per population and channel,
        chosen from the largest input a step can bring (see pyproc.compile); a new
        projection or Poisson input onto a population with a much larger weight lowers
        that scale and re-rounds its other inputs, so its spikes can change before the
        new input acts.  With a reserve at least as large as the worst case of every
        variant, runs with and without such an input round the same way (a larger
        reserve: coarser rounding, 2^-k pA per unit)."""
        name = self._pop_name("reserve_input: population", population)
        v = number(f"reserve_input {name!r}: max_pA", max_pA)
        if not v > 0:
            raise ModelError(f"reserve_input {name!r}: max_pA must be > 0 pA, got {v:g}")
        self.input_reserve[name] = v

    def record(self, population: str, on: bool = True) -> None:
        """Record (or stop recording) the spikes of a population (all are recorded by default)."""
        name = self._pop_name("record: population", population)
        self.populations[name].record = flag("record: on", on)

    def record_state(self, population: str, variables=("V_m",), neurons=None,
                     interval: float = 1.0) -> None:
        """Sample state variables of ``population`` (NEST's ``multimeter``; PyNN's
        ``record('v')``): ``variables``, a name or a sequence of names of
        ``STATE_VARIABLES`` ("V_m" in mV; "I_syn_ex", "I_syn_in" and their sum "I_syn" in
        pA; a population with tau_syn_ex == tau_syn_in sums both in one current, so it has
        "I_syn" only), of ``neurons`` (local indices, default all), every ``interval`` ms
        (a whole number of steps; default 1 ms as NEST's).  As NEST's multimeter, the samples are the state at the
        end of the steps that end at ``interval``, 2 ``interval``, ... ms; a run's results
        hold them in ``Results.state[population]``.  The values are the simulation's own
        float32 state, so procedural and stored runs, and the CPU and CUDA backends, give
        identical samples.  Calling it again for a population replaces its recording;
        ``variables=()`` ends it.  On the GPU each sample is one small gather launch between
        batches of steps, which splits the step loop at every sample: recording every step
        costs a launch per step."""
        name = self._pop_name("record_state: population", population)
        where = f"record_state {name!r}"
        par = self.populations[name].params
        if isinstance(par, (PoissonSource, SpikeSourceArray)):
            raise ModelError(f"{where}: population {name!r} is a {type(par).__name__}, which "
                             f"has no state variables (record its spikes)")
        if isinstance(variables, str):
            variables = (variables,)
        try:
            variables = tuple(_sequence(f"{where}: variables", variables, "names"))
        except ModelError:
            raise ModelError(f"{where}: variables must be a name or a sequence of names of "
                             f"{', '.join(STATE_VARIABLES)}, got {variables!r}") from None
        for v in variables:
            if v not in STATE_VARIABLES:
                raise ModelError(f"{where}: unknown variable {v!r} (known: "
                                 f"{', '.join(STATE_VARIABLES)})")
        if len(set(variables)) != len(variables):
            raise ModelError(f"{where}: variables {variables!r} name one twice")
        split = [v for v in variables if v in ("I_syn_ex", "I_syn_in")]
        if split and par.tau_syn_ex == par.tau_syn_in:
            raise ModelError(f"{where}: {split[0]!r} is not a state of population {name!r}: "
                             f"its tau_syn_ex equals tau_syn_in ({par.tau_syn_ex:g} ms), so "
                             f"excitatory and inhibitory input sum in one current; record "
                             f"'I_syn'")
        if not variables:
            self.state.pop(name, None)
            return
        size = self.populations[name].size
        if neurons is not None:
            neurons = _local_indices(f"{where}: neurons", neurons, size)
        iv = number(f"{where}: interval (ms)", interval)
        k = grid_steps(iv, self.dt, interval) if iv > 0 else None
        if not k:
            raise ModelError(f"{where}: interval must be a whole number >= 1 of steps of dt = "
                             f"{self.dt:g} ms, got {iv:g} ms")
        self.state[name] = StateRecorder(name, variables, neurons, iv)

    # -- queries ----------------------------------------------------------
    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self.populations.values())

    def population_list(self) -> List[Population]:
        return sorted(self.populations.values(), key=lambda p: p.index)

    # -- helpers ----------------------------------------------------------
    def _check_name(self, kind: str, name) -> str:
        if not isinstance(name, str) or not _NAME.match(name):
            if not (isinstance(name, str) and kind == "projection" and name and
                    all(c.isprintable() for c in name)):
                raise ModelError(f"{kind} name must be a non-empty string of letters, digits, "
                                 f"'_', '.', ':', '-', got {name!r}")
        return name

    def _pop_name(self, field_: str, value) -> str:
        name = value.name if isinstance(value, Population) else value
        if name not in self.populations:
            raise ModelError(f"{field_}: unknown population {name!r} "
                             f"(known: {', '.join(self.populations) or 'none'})")
        return name

    def _not_a_source(self, where: str, target: str) -> None:
        par = self.populations[target].params
        if isinstance(par, (PoissonSource, SpikeSourceArray)):
            raise ModelError(f"{where}: population {target!r} is a {type(par).__name__}, "
                             f"which takes no input (it can only be a source)")

    def _stream(self, where: str, name: str, explicit: Optional[int]) -> int:
        if explicit is None:
            return stream_id(name)
        if isinstance(explicit, bool) or not isinstance(explicit, int) or not (
                0 <= explicit < 2 ** 32):
            raise ModelError(f"{where}: stream must be an integer in [0, 2^32), got {explicit!r}")
        return explicit
