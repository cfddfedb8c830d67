"""Memory planner: the bytes of every device buffer of the CUDA backend,
computed from a :class:`~pyproc.compile.CompiledNetwork` alone (no GPU, no
synapse materialised), and the host-side tables those buffers hold.

Entry points (the CLI ``pyproc plan MODEL [options]`` calls one of them)::

    plan_network(cnet, connectivity, record_chunk_steps=1000, spike_lists=1) -> Plan
        Plan.buffers   dict name -> bytes allocated on the device
        Plan.total     sum of Plan.buffers
        Plan.format()  printable table
    report(cnet, record_chunk_steps=1000) -> str
        model totals and both plans (procedural and stored) side by side
    main(args) -> int
        prints report(); ``args`` is an argparse.Namespace with ``cnet`` (a
        CompiledNetwork) or ``network`` (a pyproc.Network), and optionally
        ``record_chunk_steps`` (int) and ``json`` (path: also write the plans
        as JSON).  Returns 0.

The CUDA backend (:mod:`pyproc.backends.cuda`) allocates exactly
``Plan.buffers`` (one allocation per entry, same bytes) and refuses a model
whose ``Plan.total`` does not fit the free device memory, with the plan in the
message.  Every buffer is at least ``MIN_ALLOC`` bytes so that an empty table
still has a valid device pointer; the driver rounds each allocation up to its
own granularity (512 B), which the plan does not count.

Buffers
-------
=================  =========================================================
pops, projs        the population / projection tables (POP_DTYPE, PROJ_DTYPE)
rowlen             row lengths of the fixed-number rules (uint32)
sampler_tables     the samplers' normal quantile and log2 tables, int32 x
                   PP_TABLES_LEN (pyproc.sampling.sampler_tables; 53 KiB, the
                   same for every model)
poisson_tables     Poisson threshold tables and spike-array tables (uint32)
blocks             neuron-kernel block table: (population, first local) uint32
                   pairs, ceil(n / 256) blocks per population
pop_flags          uint32 per population (bit 0: recorded)
out_ptr, out_idx   outgoing projections of each population (uint32 CSR)
tiles              procedural only: (projection, tile) uint32 pairs of the projections
                   delivered by shared-memory tiles (tile_projections), ceil(n_seg / 32)
                   tiles each
gen_out_ptr,       procedural only: out_ptr / out_idx without the tiled projections
gen_out_idx        (the per-spike work of a step that uses tiles)
V, Iex, Iin, ref   neuron state, 4 bytes per neuron each
ring               delay ring, int32 x ring_size
spikes             spike list of one step: (population, local) uint32 pairs, N; two
                   steps' lists (2 N) with spike_lists=2 (the pipelined persistent loop
                   appends step t to one while it propagates step t - 1 from the other)
rec_ids            record buffer: uint32 global ids, capacity sum over recorded
                   populations of n * ceil(C / (ref_steps + 1)) for a chunk of
                   C = record_chunk_steps steps -- a neuron cannot spike more
                   often (refractoriness), so no spike can be lost
rec_end            uint32 per step of a chunk: end of that step's ids
ctrl               the control block (64 bytes, CTRL_DTYPE)
state_idx          state recordings only (Network.record_state): uint32 global ids
                   of each gather (pyproc.staterec.gather_plan: one per interval and
                   variable)
dc_table           step currents that change more than once only (add_step_current,
                   several add_dc): every stretch of constant amplitude (24 bytes,
                   compile.DC_DTYPE), copied into the population table between batches
state_out          state recordings only: float32, each gather's ids x the most samples
                   of its interval in a record chunk (C // interval + 1)
csr_row_base       stored only: first CSR row of each projection (uint64)
csr_indptr         stored only: int64 per row + 1
csr_targets        stored only: uint32 per synapse
csr_weights        stored only: int32 per synapse
csr_delays         stored only: uint16 per synapse
=================  =========================================================

Synapse counts of the stored CSR: exact for the fixed-number rules (row-length
table) and the decoder; for pairwise_bernoulli the expected count plus 10
standard deviations of its binomial (rounded up), per projection, so the
allocation is an upper bound that the device build checks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .compile import DC_DTYPE, POP_DTYPE, PROJ_DTYPE, RULE_BERNOULLI, CompiledNetwork
from .hostmem import human
from .sampling import TABLES_LEN, sampler_tables
from .staterec import chunk_samples, gather_plan

__all__ = ["Plan", "plan_network", "report", "device_tables", "record_capacity",
           "synapse_bound", "tile_projections", "neuron_blocks", "NEURON_BLOCK", "MIN_ALLOC",
           "DEFAULT_RECORD_CHUNK_STEPS", "CTRL_BYTES", "TILE_SEGMENTS", "TILE_MAX_WIDTH",
           "cpu_bytes"]

NEURON_BLOCK = 256                 # threads per neuron-kernel block (PP_NEURON_BLOCK)
MIN_ALLOC = 8                      # smallest device allocation, bytes
DEFAULT_RECORD_CHUNK_STEPS = 1000  # steps per drain of the record buffer
CTRL_BYTES = 64                    # sizeof(pp_ctrl)
TILE_SEGMENTS = 32                 # segments per shared-memory tile (one per lane)
TILE_MAX_WIDTH = 256               # PP_TILE_MAX_WIDTH (kernels/phases.cuh)


def _alloc(nbytes: int) -> int:
    return max(int(nbytes), MIN_ALLOC)


def neuron_blocks(cnet: CompiledNetwork) -> np.ndarray:
    """Neuron-kernel blocks per population: ceil(n / NEURON_BLOCK) (int64); their sum is
    the length of the block table (``device_tables``' ``blocks``)."""
    return -(-cnet.pops["n"].astype(np.int64) // NEURON_BLOCK)


def record_capacity(cnet: CompiledNetwork, chunk_steps: int) -> int:
    """Most ids a chunk of ``chunk_steps`` steps can record: a neuron spikes at most
    once per ref_steps + 1 steps (it cannot cross threshold while refractory, as
    V_reset < V_th; if float32 rounding made V_reset >= V_th it could spike every step)."""
    if chunk_steps < 1:
        raise ValueError(f"record_chunk_steps must be >= 1, got {chunk_steps}")
    pops = cnet.pops
    cap = 0
    for i in range(cnet.n_pops):
        if not cnet.record[i]:
            continue
        ref = int(pops[i]["ref_steps"])
        if np.float32(pops[i]["V_reset"]) >= np.float32(pops[i]["V_th"]):
            ref = 0
        cap += int(pops[i]["n"]) * (-(-chunk_steps // (ref + 1)))
    return cap


def synapse_bound(cnet: CompiledNetwork) -> np.ndarray:
    """Per projection: an upper bound on its synapse count (int64; exact except
    pairwise_bernoulli: expected + 10 sd, rounded up)."""
    projs = cnet.projs
    out = np.zeros(len(projs), np.int64)
    for k in range(len(projs)):
        pj = projs[k]
        if pj["rule"] == RULE_BERNOULLI:
            p = float(cnet.info["p"][k])
            pairs = float(pj["n_pre"]) * float(pj["n_post"])
            if not pj["autapses"]:
                pairs -= float(pj["n_pre"])
            mean = p * pairs
            sd = math.sqrt(max(pairs * p * (1.0 - p), 0.0))
            out[k] = min(int(math.ceil(mean + 10.0 * sd)), int(pairs))
        else:
            out[k] = int(round(cnet.expected_synapses(k)))
    return out


# --- host memory of the CPU backends (pyproc.backends.cpu, pyproc.connectivity) ---------
# materialise() keeps per synapse a uint32 target, an int32 weight and an int32 delay, and
# builds each projection from chunks of about 2^20 synapses that are concatenated at the
# end (so the largest projection exists twice for a moment, besides one chunk's
# temporaries); the ring is int64 on the CPU.  Per neuron: the state (16 B) and the
# per-neuron tables of the vectorised step loop; measured with tracemalloc 30-118 B per
# neuron besides the ring and the CSR (balanced 2e4, microcircuit 5 %), and
# 16.4 B per synapse at the peak of a stored set-up (balanced 2e4: 40 M synapses).
CPU_STORED_BYTES_PER_SYNAPSE = 12
CPU_ROW_BYTES = 8                       # int64 indptr per row
CPU_NEURON_BYTES = 128
CPU_RING_BYTES = 8                      # int64 per ring element
CPU_CHUNK_BYTES = 128 * 2 ** 20         # rows() temporaries of one materialise chunk


def cpu_bytes(cnet: CompiledNetwork, connectivity: str) -> Dict[str, int]:
    """Host bytes the CPU backend allocates for ``cnet`` (by part): neuron state and the
    delay ring, and for ``connectivity`` 'stored' the CSR of every projection (synapse
    counts bounded as the GPU plan does) with the peak of its set-up."""
    parts = {"neuron state": CPU_NEURON_BYTES * int(cnet.n_neurons),
             "delay ring": CPU_RING_BYTES * int(cnet.ring_size),
             # Poisson thresholds and spike-array tables (uint32)
             "input tables": 4 * int(cnet.poisson_tables.size)}
    if connectivity == "stored" and len(cnet.projs):
        per = synapse_bound(cnet)
        rows = int(cnet.projs["n_pre"].astype(np.int64).sum())
        parts["stored synapses"] = CPU_STORED_BYTES_PER_SYNAPSE * int(per.sum()) + \
            CPU_ROW_BYTES * rows
        parts["set-up peak"] = CPU_STORED_BYTES_PER_SYNAPSE * int(per.max()) + CPU_CHUNK_BYTES
    return parts


def tile_projections(cnet: CompiledNetwork) -> np.ndarray:
    """Which projections the procedural kernels can deliver by shared-memory tiles
    (kernels/phases.cuh pp_tile_phase): pairwise_bernoulli with a constant delay (a
    tile adds into one ring slot) and a segment width of at most TILE_MAX_WIDTH (the
    accumulator, 32 x (width + 1) int32, must fit shared memory).  Bool per projection."""
    pj = cnet.projs
    if not len(pj):
        return np.zeros(0, bool)
    return ((pj["rule"] == RULE_BERNOULLI) & (pj["d_kind"] == 0) & (pj["n_seg"] > 0)
            & (pj["seg_width"] <= TILE_MAX_WIDTH))


def _out_tables(src: np.ndarray, keep: np.ndarray, n_pops: int):
    idx = np.flatnonzero(keep)
    order = idx[np.argsort(src[idx], kind="stable")].astype(np.uint32)
    counts = np.bincount(src[idx], minlength=n_pops) if idx.size else np.zeros(n_pops, np.int64)
    ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.uint32)
    return ptr, order, int(counts.max()) if idx.size else 0


def device_tables(cnet: CompiledNetwork) -> Dict[str, object]:
    """Host arrays uploaded to the device (see the module docstring), plus
    ``max_out`` (most outgoing projections of one population), ``gen_max_out`` (the
    same without the tiled projections) and ``tile_smem_bytes`` (dynamic shared
    memory of a block that runs tiles: 4 x 32 x (largest tiled width + 1); 0 without
    tiles)."""
    n_pops, n_projs = cnet.n_pops, len(cnet.projs)
    nb = neuron_blocks(cnet)
    blocks = np.zeros((int(nb.sum()), 2), np.uint32)
    b = 0
    for i in range(n_pops):
        m = int(nb[i])
        blocks[b:b + m, 0] = i
        blocks[b:b + m, 1] = np.arange(m, dtype=np.uint32) * NEURON_BLOCK
        b += m
    src = cnet.projs["src_pop"].astype(np.int64)
    out_ptr, out_idx, max_out = _out_tables(src, np.ones(n_projs, bool), n_pops)
    tiled = tile_projections(cnet)
    gen_ptr, gen_idx, gen_max = _out_tables(src, ~tiled, n_pops)
    tiles = [(k, j) for k in np.flatnonzero(tiled)
             for j in range(-(-int(cnet.projs["n_seg"][k]) // TILE_SEGMENTS))]
    tiles = np.array(tiles, np.uint32).reshape(-1, 2)
    wmax = int(cnet.projs["seg_width"][tiled].max()) if tiled.any() else 0
    row_base = np.concatenate(([0], np.cumsum(cnet.projs["n_pre"].astype(np.int64)))
                              ).astype(np.uint64)
    return {
        "pops": np.ascontiguousarray(cnet.pops, dtype=POP_DTYPE),
        "projs": np.ascontiguousarray(cnet.projs, dtype=PROJ_DTYPE),
        "rowlen": np.ascontiguousarray(cnet.rowlen, dtype=np.uint32),
        "sampler_tables": np.ascontiguousarray(sampler_tables(), dtype=np.int32),
        "poisson_tables": np.ascontiguousarray(cnet.poisson_tables, dtype=np.uint32),
        "blocks": blocks,
        "pop_flags": cnet.record.astype(np.uint32),
        "out_ptr": out_ptr,
        "out_idx": out_idx,
        "row_base": row_base,
        "max_out": max_out,
        "tiles": tiles,
        "gen_out_ptr": gen_ptr,
        "gen_out_idx": gen_idx,
        "gen_max_out": gen_max,
        "tile_smem_bytes": 4 * TILE_SEGMENTS * (wmax + 1) if tiles.size else 0,
    }


@dataclass
class Plan:
    """Bytes of every device buffer for one connectivity (see the module docstring)."""
    connectivity: str
    buffers: Dict[str, int]
    record_chunk_steps: int
    record_capacity: int
    n_pops: int
    n_neurons: int
    n_projs: int
    n_synapses: int            # exact, or expected for pairwise_bernoulli
    n_synapses_bound: int      # what the stored CSR is sized for
    n_rows: int                # CSR rows (sum of n_pre over projections)
    notes: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return int(sum(self.buffers.values()))

    def format(self) -> str:
        lines = [f"device memory plan, {self.connectivity} connectivity",
                 f"  {'buffer':<16} {'bytes':>18} {'':>10}"]
        for name, nb in self.buffers.items():
            lines.append(f"  {name:<16} {nb:>18,d} {_human(nb):>10}")
        lines.append(f"  {'total':<16} {self.total:>18,d} {_human(self.total):>10}")
        lines.append(f"  record chunk {self.record_chunk_steps} steps, "
                     f"capacity {self.record_capacity:,d} spikes")
        lines.extend("  " + n for n in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, object]:
        return {"connectivity": self.connectivity, "buffers": dict(self.buffers),
                "total": self.total, "record_chunk_steps": self.record_chunk_steps,
                "record_capacity": self.record_capacity, "populations": self.n_pops,
                "neurons": self.n_neurons, "projections": self.n_projs,
                "synapses": self.n_synapses, "synapses_bound": self.n_synapses_bound}


def _human(n: int) -> str:
    return human(n, digits=2)


def plan_network(cnet: CompiledNetwork, connectivity: str = "procedural",
                 record_chunk_steps: int = DEFAULT_RECORD_CHUNK_STEPS,
                 spike_lists: int = 1) -> Plan:
    """The device buffers of ``cnet`` for ``connectivity`` ('procedural' or 'stored');
    ``spike_lists`` 2 for the pipelined persistent loop."""
    if spike_lists not in (1, 2):
        raise ValueError(f"spike_lists must be 1 or 2, got {spike_lists!r}")
    if connectivity not in ("procedural", "stored"):
        raise ValueError(f"connectivity must be 'procedural' or 'stored', got {connectivity!r}")
    record_chunk_steps = int(record_chunk_steps)
    n_pops, n_projs, N = cnet.n_pops, len(cnet.projs), cnet.n_neurons
    n_blocks = int(neuron_blocks(cnet).sum())
    rec_cap = record_capacity(cnet, record_chunk_steps)
    bound = synapse_bound(cnet)
    expected = cnet.synapse_count()[0]
    n_rows = int(cnet.projs["n_pre"].astype(np.int64).sum()) if n_projs else 0
    S = int(bound.sum())
    raw = [
        ("pops", n_pops * POP_DTYPE.itemsize),
        ("projs", n_projs * PROJ_DTYPE.itemsize),
        ("rowlen", 4 * cnet.rowlen.size),
        ("sampler_tables", 4 * TABLES_LEN),
        ("poisson_tables", 4 * cnet.poisson_tables.size),
        ("blocks", 8 * n_blocks),
        ("pop_flags", 4 * n_pops),
        ("out_ptr", 4 * (n_pops + 1)),
        ("out_idx", 4 * n_projs),
        ("V", 4 * N), ("Iex", 4 * N), ("Iin", 4 * N), ("ref", 4 * N),
        ("ring", 4 * int(cnet.ring_size)),
        ("spikes", 8 * N * int(spike_lists)),
        ("rec_ids", 4 * rec_cap),
        ("rec_end", 4 * record_chunk_steps),
        ("ctrl", CTRL_BYTES),
    ]
    notes = []
    n_dc = sum(int(seg.size) for seg in cnet.dc if seg.size > 1)
    if n_dc:
        raw.append(("dc_table", DC_DTYPE.itemsize * n_dc))
    gathers = gather_plan(cnet.state)
    if gathers:
        raw += [("state_idx", 4 * sum(g.ids.size for g in gathers)),
                ("state_out", 4 * sum(g.ids.size * chunk_samples(g.interval, record_chunk_steps)
                                      for g in gathers))]
        notes.append(f"state recording: {len(cnet.state)} population(s), {len(gathers)} "
                     f"gather(s) per sample")
    if connectivity == "procedural":
        tiled = tile_projections(cnet)
        n_tiles = int((-(-cnet.projs["n_seg"][tiled].astype(np.int64) // TILE_SEGMENTS)).sum())
        raw += [("tiles", 8 * n_tiles), ("gen_out_ptr", 4 * (n_pops + 1)),
                ("gen_out_idx", 4 * int((~tiled).sum()))]
        if n_tiles:
            notes.append(f"{int(tiled.sum())} projection(s) in {n_tiles:,d} shared-memory tiles "
                         "(pairwise_bernoulli, constant delay)")
    if connectivity == "stored":
        raw += [("csr_row_base", 8 * (n_projs + 1)), ("csr_indptr", 8 * (n_rows + 1)),
                ("csr_targets", 4 * S), ("csr_weights", 4 * S), ("csr_delays", 2 * S)]
        notes.append(f"CSR sized for {S:,d} synapses" + (
            "" if S == expected else f" (expected {expected:,d}; pairwise_bernoulli draws "
                                     f"the count: + 10 sd)"))
    return Plan(connectivity=connectivity, buffers={k: _alloc(v) for k, v in raw},
                record_chunk_steps=record_chunk_steps, record_capacity=rec_cap,
                n_pops=n_pops, n_neurons=N, n_projs=n_projs, n_synapses=expected,
                n_synapses_bound=S, n_rows=n_rows, notes=notes)


# left free on the device for modules, graphs and the driver (at most 1/20 of the device)
MEMORY_RESERVE = 256 * 2 ** 20


def memory_reserve(total: int) -> int:
    """Bytes the CUDA backend keeps free on a device of ``total`` bytes."""
    return min(MEMORY_RESERVE, int(total) // 20)


def fits(plan: "Plan", free: int, total: int) -> bool:
    """Whether ``plan`` fits ``free`` bytes of a device of ``total``, the reserve kept (the
    CUDA backend's check before it allocates)."""
    return plan.total <= int(free) - memory_reserve(total)


def report(cnet: CompiledNetwork, record_chunk_steps: int = DEFAULT_RECORD_CHUNK_STEPS,
           gpu_bytes: Optional[int] = None, gpu_name: Optional[str] = None) -> str:
    """Model totals and the procedural and stored plans, as printable text; with
    ``gpu_bytes`` (a device's memory; ``gpu_name`` says whose) also whether each fits it
    (all of it free, the reserve kept)."""
    pr = plan_network(cnet, "procedural", record_chunk_steps)
    st = plan_network(cnet, "stored", record_chunk_steps)
    lines = [f"populations {pr.n_pops:,d}   neurons {pr.n_neurons:,d}   "
             f"projections {pr.n_projs:,d}   synapses {pr.n_synapses:,d}   dt {cnet.dt} ms",
             f"record chunk {pr.record_chunk_steps} steps "
             f"(capacity {pr.record_capacity:,d} spikes)",
             "",
             f"  {'buffer':<16} {'procedural':>14} {'stored':>14}"]
    names = list(pr.buffers) + [n for n in st.buffers if n not in pr.buffers]
    for name in names:
        a, b = pr.buffers.get(name), st.buffers.get(name)
        lines.append(f"  {name:<16} {(_human(a) if a is not None else '-'):>14} "
                     f"{(_human(b) if b is not None else '-'):>14}")
    lines.append(f"  {'total':<16} {_human(pr.total):>14} {_human(st.total):>14}")
    lines.append(f"  {'total bytes':<16} {pr.total:>14,d} {st.total:>14,d}")
    lines.extend("  " + n for n in st.notes)
    host = [sum(cpu_bytes(cnet, c).values()) for c in ("procedural", "stored")]
    lines.append(f"  {'CPU backend':<16} {_human(host[0]):>14} {_human(host[1]):>14}   "
                 f"(host memory: state, ring; stored: the synapses and their set-up peak)")
    if gpu_bytes is not None:
        yes = {True: "fits", False: "does NOT fit"}
        lines.append(f"  {'fit':<16} {yes[fits(pr, gpu_bytes, gpu_bytes)]:>14} "
                     f"{yes[fits(st, gpu_bytes, gpu_bytes)]:>14}   ({_human(gpu_bytes)}"
                     f"{' (' + gpu_name + ')' if gpu_name else ''}, "
                     f"{_human(memory_reserve(gpu_bytes))} kept in reserve)")
    return "\n".join(lines)
