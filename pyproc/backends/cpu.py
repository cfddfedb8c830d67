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

from ..compile import INT32_MAX, CompiledNetwork
from ..connectivity import materialise, rows
from ..errors import OverflowDetected
from ..neuron import lif_step, poisson_counts

__all__ = ["CPUSimulator"]


class CPUSimulator:
    """Step loop on the CPU.  ``connectivity`` is ``"stored"`` or ``"procedural"``."""

    def __init__(self, cnet: CompiledNetwork, connectivity: str = "procedural"):
        if connectivity not in ("stored", "procedural"):
            raise ValueError(f"connectivity must be 'stored' or 'procedural', got {connectivity!r}")
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
        self.setup_time = time.perf_counter() - t0

    @property
    def n_synapses_stored(self) -> int:
        return sum(int(c[0][-1]) for c in self.csr) if self.csr is not None else 0

    def _synapses(self, k: int, pre: np.ndarray):
        if self.csr is None:
            _, t, w, d = rows(self.cnet, k, pre)
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

    def run_steps(self, n_steps: int, record: List, should_stop: Optional[Callable[[], bool]] = None
                  ) -> int:
        """Advance ``n_steps``; append (step, global ids) of recorded spikes to ``record``.
        Returns the number of steps done (fewer if ``should_stop()`` became true)."""
        cnet = self.cnet
        pops, projs = cnet.pops, cnet.projs
        for s in range(n_steps):
            if should_stop is not None and should_stop():
                return s
            t = self.step
            spiking = []
            for i in range(cnet.n_pops):
                pop = pops[i]
                n, off, nch = int(pop["n"]), int(pop["offset"]), int(pop["n_channels"])
                base = int(pop["ring_offset"]) + (t % int(pop["ring_slots"])) * nch * n
                acc = np.zeros(2 * n, np.int64)
                acc[:nch * n] = self.ring[base:base + nch * n]
                self.ring[base:base + nch * n] = 0
                if pop["poisson_len"]:
                    cnt = poisson_counts(pop, cnet.poisson_tables, cnet.seed, t)
                    ch = int(pop["poisson_channel"])
                    acc[ch * n:(ch + 1) * n] += cnt * int(pop["poisson_w"])
                if acc.size and np.abs(acc).max() > INT32_MAX:
                    bad = int(np.argmax(np.abs(acc)))
                    raise OverflowDetected(
                        f"fixed-point input overflow at step {t}: population "
                        f"{cnet.pop_names[i]!r}, neuron {bad % n}, channel "
                        f"{'ex' if bad < n else 'in'}, value {acc[bad]} exceeds int32")
                sl = slice(off, off + n)
                spk = lif_step(self.V[sl], self.Iex[sl], self.Iin[sl], self.ref[sl],
                               acc[:n], acc[n:], pop)
                local = np.flatnonzero(spk).astype(np.uint32)
                spiking.append(local)
                self.n_spikes_total += local.size
                if cnet.record[i] and local.size:
                    record.append((t, local.astype(np.int64) + off))
            for i in range(cnet.n_pops):
                pre = spiking[i]
                if pre.size == 0:
                    continue
                for k in self._out[i]:
                    pj = projs[k]
                    tgt, w, d = self._synapses(k, pre)
                    if tgt.size == 0:
                        continue
                    tp = pops[pj["tgt_pop"]]
                    n = int(tp["n"])
                    slot = (t + d.astype(np.int64)) % int(tp["ring_slots"])
                    idx = (int(tp["ring_offset"]) + (slot * int(tp["n_channels"]) + int(pj["channel"]))
                           * n + tgt)
                    np.add.at(self.ring, idx, w.astype(np.int64))
                    self.n_events += tgt.size
            self.step += 1
        return n_steps
