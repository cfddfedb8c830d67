"""CPU backends: the SciPy stored reference and the NumPy procedural twin.

Both share one step loop (:class:`CPUSimulator`) and differ only in how a
spiking neuron's synapses are found: ``stored`` gathers CSR rows materialised
once (:func:`pyproc.connectivity.materialise`), ``procedural`` regenerates the
rows of this step's spiking neurons with the NumPy twin of the kernels.
Synaptic input is summed in int64 and checked against the int32 range the GPU
uses, so an overflow raises instead of wrapping.
"""
from __future__ import annotations

import time
from typing import Callable, List, Optional

import numpy as np

from .. import hostmem
from ..compile import INT32_MAX, POP_ARRAY, POP_SOURCE, RULE_FIXED, CompiledNetwork, ring_index
from ..connectivity import fixed_rows_many, materialise, rows
from ..errors import OverflowDetected
from ..neuron import (array_spikes, i_e_at, lif_params, lif_step, poisson_input,
                      source_spikes)
from ..plan import cpu_bytes
from ..staterec import samples_in

__all__ = ["CPUSimulator"]


class CPUSimulator:
    """Step loop on the CPU.  ``connectivity`` is ``"stored"`` or ``"procedural"``."""

    def __init__(self, cnet: CompiledNetwork, connectivity: str = "procedural"):
        if connectivity not in ("stored", "procedural"):
            raise ValueError(f"connectivity must be 'stored' or 'procedural', got {connectivity!r}")
        # refuse before allocating what this machine cannot hold (pyproc.hostmem)
        hostmem.check(f"connectivity={connectivity!r} on the CPU", cpu_bytes(cnet, connectivity),
                      "Use connectivity='procedural' (no stored synapses), a smaller network, "
                      "or a machine with more memory." if connectivity == "stored" else
                      "Use a smaller network, or a machine with more memory.")
        self.cnet = cnet
        self.connectivity = connectivity
        t0 = time.perf_counter()
        n = cnet.n_neurons
        self.V = cnet.v0.copy()
        self.Iex = np.zeros(n, np.float32)
        self.Iin = np.zeros(n, np.float32)
        self.ref = np.zeros(n, np.int32)
        self.ring = np.zeros(cnet.ring_size, np.int64)
        self.step = 0
        self.n_events = 0
        self.n_spikes_total = 0
        self.csr = None
        if connectivity == "stored":
            self.csr = [materialise(cnet, k) for k in range(len(cnet.projs))]
        # projections grouped by source population
        self._out = [np.flatnonzero(cnet.projs["src_pop"] == i) for i in range(cnet.n_pops)]
        self._setup_neuron_phase()
        self.setup_time = time.perf_counter() - t0

    def _setup_neuron_phase(self) -> None:
        """Per-neuron tables so that a step's neuron phase is a few array operations over
        all populations at once (the model's 8 or 254 populations are not a Python loop
        per step): LIF fields, where each neuron's input sits in the delay ring, which
        neurons are recorded."""
        cnet, pops = self.cnet, self.cnet.pops
        n = pops["n"].astype(np.int64)
        self._lif = lif_params(pops)
        local = np.arange(cnet.n_neurons, dtype=np.int64) - np.repeat(
            pops["offset"].astype(np.int64), n)
        # ring index of channel 0 at slot s: base + s * stride; channel 1 is n further
        self._ring_base = np.repeat(pops["ring_offset"].astype(np.int64), n) + local
        self._ring_stride = np.repeat(pops["n_channels"].astype(np.int64) * n, n)
        self._ring_slots = np.repeat(pops["ring_slots"].astype(np.int64), n)
        self._two = np.flatnonzero(np.repeat(pops["n_channels"] == 2, n))
        self._two_off = np.repeat(n, n)[self._two]
        self._recorded = np.repeat(np.asarray(cnet.record, dtype=bool), n)
        self._pop_ends = (pops["offset"].astype(np.int64) + n)
        self._poisson = [i for i in range(cnet.n_pops) if pops[i]["poisson_n"]]
        sl = [slice(int(p["offset"]), int(p["offset"] + p["n"])) for p in pops]
        self._sources = [(i, sl[i]) for i in range(cnet.n_pops) if pops[i]["kind"] == POP_SOURCE]
        # step currents: per population its stretches (compile.dc_segments), their starts
        # and ends
        self._dc = [(i, sl[i], seg, seg["dc_start"].astype(np.int64),
                     seg["dc_stop"].astype(np.uint64))
                    for i, seg in enumerate(cnet.dc) if seg.size]
        self._arrays = [(i, sl[i], np.zeros(int(pops[i]["n"]), np.int32))
                        for i in range(cnet.n_pops) if pops[i]["kind"] == POP_ARRAY]
        self._pois_t0, self._pois = 0, None
        # state recordings: per group (interval, variable indices, global ids); the raw
        # samples in self.state_blocks (pyproc.staterec)
        self._state = [(g.interval, list(g.raw), g.ids) for g in cnet.state]
        self.state_blocks = [[] for _ in cnet.state]
        # delivery: where a projection's synapses land in the ring (compile.ring_index)
        projs = cnet.projs
        self._ring_layout = cnet.ring_layout()
        # procedural: a population's fixed-number projections are regenerated together
        # (one Philox call per step); their row lengths are read from cnet.rowlen at
        # rowlen_offset[k] + pre
        self._fixed = [np.zeros(0, np.int64)] * cnet.n_pops
        if self.connectivity == "procedural":
            for i in range(cnet.n_pops):
                self._fixed[i] = np.array([k for k in self._out[i]
                                           if projs[k]["rule"] == RULE_FIXED], np.int64)
        self._rowlen_off = projs["rowlen_offset"].astype(np.int64)
        # steps of Poisson input drawn per Philox call: ~32k draws for the largest
        # population (arrays that stay in cache; measured on the 2-core VM: microcircuit
        # 5 % 29 steps, 2.8x faster than 1, balanced 1e4 4 steps, 1 and 4 alike, 104
        # steps 2x slower), at most 128
        big = int(pops["n"].max()) if len(pops) else 1
        self._pois_chunk = int(min(128, max(1, (1 << 15) // max(1, big))))

    def _poisson_input(self, t: int, n_ahead: int):
        """(ex, in) fixed-point Poisson input of every neuron at step ``t`` (int64, or None
        without Poisson input), drawn for up to ``n_ahead`` steps at a time."""
        if not self._poisson:
            return None, None
        j = t - self._pois_t0
        if self._pois is None or not 0 <= j < self._pois[0].shape[0]:
            c = max(1, min(self._pois_chunk, n_ahead))
            cnet, pops = self.cnet, self.cnet.pops
            steps = np.arange(t, t + c, dtype=np.uint64)
            ex = np.zeros((c, cnet.n_neurons), np.int64)
            inh = np.zeros((c, cnet.n_neurons), np.int64)
            for i in self._poisson:
                pop = pops[i]
                sl = slice(int(pop["offset"]), int(pop["offset"]) + int(pop["n"]))
                ex[:, sl], inh[:, sl] = poisson_input(pop, cnet.poisson_tables, cnet.seed, steps)
            self._pois_t0, self._pois, j = t, (ex, inh), 0
        return self._pois[0][j], self._pois[1][j]

    def _overflow(self, t: int, acc_ex: np.ndarray, acc_in: np.ndarray) -> OverflowDetected:
        """The error for the first population (in order) whose input exceeds int32."""
        cnet = self.cnet
        for i in range(cnet.n_pops):
            off, n = int(cnet.pops[i]["offset"]), int(cnet.pops[i]["n"])
            acc = np.concatenate([acc_ex[off:off + n], acc_in[off:off + n]])
            if acc.size and np.abs(acc).max() > INT32_MAX:
                bad = int(np.argmax(np.abs(acc)))
                return OverflowDetected(
                    f"fixed-point input overflow at step {t}: population "
                    f"{cnet.pop_names[i]!r}, neuron {bad % n}, channel "
                    f"{'ex' if bad < n else 'in'}, value {acc[bad]} exceeds int32")
        raise AssertionError("no population overflows")

    def get_state(self) -> dict:
        """The dynamic state at ``step`` (pyproc.checkpoint): copies of V, Iex, Iin, ref
        (a spike array's cursor in its neurons' ref, the GPU's layout), the ring, and the
        counters."""
        ref = self.ref.copy()
        for _, sl, cur in self._arrays:
            ref[sl] = cur
        return {"step": self.step, "n_events": self.n_events, "n_spikes": self.n_spikes_total,
                "V": self.V.copy(), "Iex": self.Iex.copy(), "Iin": self.Iin.copy(), "ref": ref,
                "ring": self.ring.copy()}

    def set_state(self, st: dict) -> None:
        """Continue from ``st`` (get_state's layout, from either backend)."""
        for name in ("V", "Iex", "Iin", "ref", "ring"):
            getattr(self, name)[:] = st[name]
        for _, sl, cur in self._arrays:
            cur[:] = st["ref"][sl]
            self.ref[sl] = 0
        self.step, self.n_events = int(st["step"]), int(st["n_events"])
        self.n_spikes_total = int(st["n_spikes"])
        self._pois_t0, self._pois = 0, None

    @property
    def n_synapses_stored(self) -> int:
        return sum(int(c[0][-1]) for c in self.csr) if self.csr is not None else 0

    def _synapses(self, k: int, pre: np.ndarray):
        if self.csr is None:                 # the order of a step's synapses is free
            _, t, w, d = rows(self.cnet, k, pre, ordered=False)
            return t, w, d
        indptr, tgt, wt, dl = self.csr[k]
        starts = indptr[pre]
        counts = indptr[pre + 1] - starts
        total = int(counts.sum())
        if total == 0:
            return tgt[:0], wt[:0], dl[:0]
        idx = np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(counts) - counts),
                                                           counts)
        return tgt[idx], wt[idx], dl[idx]

    def _ring_index(self, k, t: int, tgt: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Ring entries of synapses of projection(s) k (scalar, or one per synapse) with
        targets ``tgt`` and delays ``d`` (steps) from a spike at step t."""
        return ring_index(self._ring_layout, k, t, tgt, d)

    def run_steps(self, n_steps: int, record: List, should_stop: Optional[Callable[[], bool]] = None
                  ) -> int:
        """Advance ``n_steps``; append (step, global ids) of recorded spikes to ``record``,
        and the state samples of the call to ``state_blocks`` (one block per group, into
        arrays sized for the call's samples; kept for the steps done if a step raises).
        Returns the number of steps done (fewer if ``should_stop()`` became true)."""
        bufs = [(np.empty(samples_in(self.step, n_steps, m), np.int64),
                 np.empty((samples_in(self.step, n_steps, m), len(var), sid.size), np.float32),
                 [0]) for m, var, sid in self._state]
        try:
            return self._steps(n_steps, record, should_stop, bufs)
        finally:
            for g, (steps, vals, filled) in enumerate(bufs):
                if filled[0]:
                    self.state_blocks[g].append((steps[:filled[0]], vals[:filled[0]]))

    def _steps(self, n_steps: int, record: List, should_stop, bufs) -> int:
        cnet = self.cnet
        pops, projs = cnet.pops, cnet.projs
        V, Iex, Iin, ref, ring = self.V, self.Iex, self.Iin, self.ref, self.ring
        for s in range(n_steps):
            if should_stop is not None and should_stop():
                return s
            t = self.step
            # neuron phase of every population at once: this step's ring slot (cleared),
            # Poisson input, the int32 check, the LIF update
            idx = self._ring_base + (t % self._ring_slots) * self._ring_stride
            idx_in = idx[self._two] + self._two_off
            acc_ex = ring[idx]
            acc_in = np.zeros_like(acc_ex)
            acc_in[self._two] = ring[idx_in]
            ring[idx] = 0
            ring[idx_in] = 0
            p_ex, p_in = self._poisson_input(t, n_steps - s)
            if p_ex is not None:
                acc_ex += p_ex
                acc_in += p_in
            if acc_ex.size and max(np.abs(acc_ex).max(), np.abs(acc_in).max()) > INT32_MAX:
                raise self._overflow(t, acc_ex, acc_in)
            ie = None
            for i, sl, seg, first, end in self._dc:   # step currents: the stretch of t
                k = int(np.searchsorted(first, t, side="right")) - 1
                if k >= 0 and t < end[k]:
                    if ie is None:
                        ie = self._lif["I_e"].copy()
                    ie[sl] = i_e_at(pops[i], t, seg[k])
            spk = lif_step(V, Iex, Iin, ref, acc_ex, acc_in, self._lif, ie)
            for i, sl in self._sources:      # Poisson sources (their LIF fields are inert)
                spk[sl] = source_spikes(pops[i], cnet.seed, t)
            for i, sl, cur in self._arrays:   # spike arrays (the GPU keeps cur in ref)
                spk[sl] = array_spikes(pops[i], cnet.poisson_tables, t, cur)
            for g, (m, var, sid) in enumerate(self._state):   # state samples, end of step
                if (t + 1) % m == 0:
                    steps, vals, filled = bufs[g]
                    r = filled[0]
                    steps[r] = t
                    for p, j in enumerate(var):
                        np.take((V, Iex, Iin)[j], sid, out=vals[r, p])
                    filled[0] = r + 1
            ids = np.flatnonzero(spk)
            self.n_spikes_total += ids.size
            rec = ids[self._recorded[ids]]
            if rec.size:
                record.append((t, rec.astype(np.int64)))
            # propagation, per spiking population (its fixed-number projections together
            # when procedural, the others one by one); one scatter-add for the step
            ends = np.searchsorted(ids, self._pop_ends)
            starts = np.r_[0, ends[:-1]]
            idx_parts, w_parts = [], []
            for i in np.flatnonzero(ends > starts):
                pre = (ids[starts[i]:ends[i]] - int(pops[i]["offset"])).astype(np.uint32)
                ks = self._fixed[i]
                if ks.size:
                    lens = cnet.rowlen[self._rowlen_off[ks][:, None] + pre[None, :]]
                    q, _, tgt, w, d = fixed_rows_many(cnet.seed, projs[ks], pre, lens)
                    idx_parts.append(self._ring_index(ks[q], t, tgt, d))
                    w_parts.append(w)
                for k in self._out[i]:
                    if k in ks:
                        continue
                    tgt, w, d = self._synapses(k, pre)
                    idx_parts.append(self._ring_index(k, t, tgt, d))
                    w_parts.append(w)
            if idx_parts:
                idx = np.concatenate(idx_parts)
                np.add.at(ring, idx, np.concatenate(w_parts).astype(np.int64))
                self.n_events += idx.size
            self.step += 1
        return n_steps
