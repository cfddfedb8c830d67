"""State recording (NEST's multimeter): which neurons' V_m, I_syn_ex, I_syn_in are
sampled at which steps, and how the backends' raw samples become ``Results.state``.

Sample times: a recording with an interval of m steps samples the state at the end of
every step t with (t + 1) % m == 0, i.e. at (t + 1) dt = m dt, 2 m dt, ... ms, as
NEST's multimeter with ``interval`` = m dt.

Raw samples: every backend keeps, per group (one per recorded population, in the order
of :func:`state_groups`), blocks ``(steps, values)``: ``steps`` int64 (k,), ``values``
float32 (k, len(group.raw), n_neurons) copied from the simulation's state arrays
(``group.raw`` indexes (V relative to E_L, Iex, Iin)), so the CPU and CUDA backends'
samples are equal bit for bit.  :func:`assemble` turns them into ``Results.state``:
V_m = V + E_L (mV), I_syn_ex = Iex, I_syn_in = Iin, I_syn = Iex + Iin (pA; a population
with one input channel, tau_syn_ex == tau_syn_in, has all its input in Iex).

The CUDA backend gathers a sample with one launch of ``pp_record_state`` per (interval,
state array) combination (:func:`gather_plan`) into a device buffer of one record
chunk's samples, read back with the spikes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .results import step_times

__all__ = ["StateGroup", "state_groups", "samples_in", "steps_to_sample",
           "Gather", "gather_plan", "chunk_samples", "assemble", "host_bytes"]

V, IEX, IIN = 0, 1, 2                # the state arrays a sample copies from


@dataclass(frozen=True)
class StateGroup:
    """One population's recording: ``variables`` (names), ``raw`` (the state arrays they
    need, ascending indices into (V, Iex, Iin)), ``neurons`` (local, int64), ``ids``
    (global, int64), ``interval`` (steps), ``E_L`` (mV)."""
    pop: int
    name: str
    variables: Tuple[str, ...]
    raw: Tuple[int, ...]
    neurons: np.ndarray
    ids: np.ndarray
    interval: int
    E_L: float


def state_groups(net, pop_names: Sequence[str], offsets: np.ndarray) -> List[StateGroup]:
    """The recordings of ``net`` (a pyproc Network) in population order."""
    out = []
    for i, name in enumerate(pop_names):
        rec = net.state.get(name)
        if rec is None:
            continue
        size = net.populations[name].size
        local = (np.arange(size, dtype=np.int64) if rec.neurons is None
                 else np.asarray(rec.neurons, dtype=np.int64))
        par = net.populations[name].params
        two = par.tau_syn_ex != par.tau_syn_in
        need = {"V_m": (V,), "I_syn_ex": (IEX,), "I_syn_in": (IIN,),
                "I_syn": (IEX, IIN) if two else (IEX,)}
        raw = tuple(sorted({j for v in rec.variables for j in need[v]}))
        out.append(StateGroup(i, name, tuple(rec.variables), raw, local, local + int(offsets[i]),
                              int(round(rec.interval / net.dt)),   # checked on the grid
                              float(net.populations[name].params.E_L)))
    return out


def samples_in(first: int, n_steps: int, interval: int) -> int:
    """Sample steps of an interval of ``interval`` steps among steps [first, first + n)."""
    return (first + n_steps) // interval - first // interval


def steps_to_sample(step: int, intervals: Sequence[int]) -> int:
    """Steps from ``step`` (the next step to run) to the end of the next sample step of
    any of ``intervals``: a batch of that many steps ends on a sample (0: none)."""
    return min((m - step % m for m in intervals), default=0)


@dataclass(frozen=True)
class Gather:
    """One ``pp_record_state`` launch per sample of ``interval``: ``ids`` (global, uint32)
    of state array ``variable`` (index into (V, Iex, Iin)) of the groups ``parts``
    ((group, position of the array in the group's raw, first column, end column))."""
    interval: int
    variable: int
    ids: np.ndarray
    parts: Tuple[Tuple[int, int, int, int], ...]


def gather_plan(groups: Sequence[StateGroup]) -> List[Gather]:
    """The gathers of the CUDA backend: one per (interval, state array) that a group
    needs, the ids of every such group concatenated (in group order)."""
    out = []
    for m in sorted({g.interval for g in groups}):
        for j in (V, IEX, IIN):
            parts, ids, col = [], [], 0
            for gi, g in enumerate(groups):
                if g.interval == m and j in g.raw:
                    parts.append((gi, g.raw.index(j), col, col + g.ids.size))
                    ids.append(g.ids)
                    col += g.ids.size
            if parts:
                out.append(Gather(m, j, np.concatenate(ids).astype(np.uint32), tuple(parts)))
    return out


def chunk_samples(interval: int, chunk_steps: int) -> int:
    """Most samples of one interval in any ``chunk_steps`` consecutive steps."""
    return chunk_steps // interval + 1


def host_bytes(groups: Sequence[StateGroup], first: int, n_steps: int) -> int:
    """Host bytes of the raw samples of steps [first, first + n_steps) (values and step
    numbers; the backends keep them in blocks of a record chunk or a run_steps call)."""
    return sum((4 * len(g.raw) * g.ids.size + 8) * samples_in(first, n_steps, g.interval)
               for g in groups)


def assemble(groups: Sequence[StateGroup], blocks: Sequence[List], dt: float
             ) -> Dict[str, Dict[str, np.ndarray]]:
    """``Results.state``: per recorded population ``{"times": ms (k,), "neurons": local
    indices, variable: float32 (k, n_neurons) ...}`` from the raw blocks of each group."""
    out = {}
    for g, grp in enumerate(groups):
        got = list(blocks[g]) or [(np.zeros(0, np.int64),
                                   np.zeros((0, len(grp.raw), grp.ids.size), np.float32))]
        steps = np.concatenate([s for s, _ in got])
        pos = {j: p for p, j in enumerate(grp.raw)}

        def each(fn):                  # fn(block values) per block, then one concatenate
            return np.concatenate([fn(v) for _, v in got])
        d = {"times": step_times(steps + 1, dt), "neurons": grp.neurons.copy()}
        for var in grp.variables:
            if var == "V_m":
                d[var] = each(lambda v: (v[:, pos[V]].astype(np.float64) + grp.E_L)
                              .astype(np.float32))
            elif var == "I_syn" and IIN in pos:
                d[var] = each(lambda v: v[:, pos[IEX]] + v[:, pos[IIN]])
            else:
                j = IIN if var == "I_syn_in" else IEX
                d[var] = each(lambda v, j=j: v[:, pos[j]])
        out[grp.name] = d
    return out
