"""CUDA backend: the step loop on the GPU (PyCUDA; a persistent cooperative kernel or a
CUDA graph per K steps).

Data flow (device buffers as planned by :mod:`pyproc.plan`)::

    host: CompiledNetwork --device_tables--> pops, projs, rowlen, poisson_tables,
          blocks, pop_flags, out_ptr, out_idx, sampler_tables (uploaded once)
          (+ stored: CSR built on the device)
    per step t, graph loop (kernels read t from ctrl.step; see kernels/step.cuh):
      pp_neuron_lif_update   ring slot t -> LIF -> spikes[] (+ rec_ids[] if recorded)
      pp_propagate_*_spikes  spikes[] x outgoing projections -> atomicAdd ring[t + delay]
      pp_record_advance      rec_end[step in chunk] = n_rec; n_spk = 0; step += 1
    per K steps, persistent loop: pp_step_persistent_* does the same three stages per
      step with grid barriers in between (kernels/step_persistent.cu)
    after a step that ends on a state sample (Network.record_state; batches of steps
      are split there): pp_record_state per interval and variable, the neurons' V / Iex
      / Iin -> state_out[sample in chunk] (pyproc.staterec)
    every record chunk (<= record_chunk_steps steps) and at the end of run_steps:
      host reads ctrl, rec_end[:rec_steps], rec_ids[:n_rec] -> record.append((step, ids))
      and state_out[:samples] -> state_blocks

The step loop is not a Python loop of launches.  Two loops, identical spikes:

* ``loop_mode == "persistent"``: K steps are one cooperative launch of
  ``pp_step_persistent_{procedural,stored}`` (kernels/step_persistent.cu): the
  same neuron and propagation code as the per-step kernels, with two grid-wide
  barriers per step instead of three kernel launches (driver API through ctypes
  on libcuda.so.1: PyCUDA has no cooperative launch).  Best where a step is
  latency-bound (small networks, few spikes per step: 7 us instead of 21 us per
  step for 1,000 neurons on an H200).
* ``loop_mode == "graph"``: the three launches of K steps captured once into a
  CUDA graph on the simulator's PyCUDA stream, launched per K steps.  Best where a
  step is throughput-bound (the 1e5-neuron balanced network at dt 1 ms, the
  multi-area model: full occupancy for the propagation kernel).

``persistent="auto"`` (the default) times two batches of K steps of each loop,
taking turns, after 5 K steps of warm-up, on the live network, and keeps the faster
for the rest of the simulator's life (``loop_tuning`` holds the timings; the timed
batches are ordinary steps of the run, so a run_steps call that ends before the tuning
does leaves the rest to the next call); ``True`` / ``False`` force one.  Where the
network's neuron blocks fill at most half of the default persistent grid (small
networks), the persistent loop on a grid of exactly one block per neuron block is a
third candidate (:func:`tune_candidates`): fewer blocks meet at each grid barrier.  Where a cooperative launch is refused (``persistent_error`` says why)
the graph loop runs; if capture is not possible either, prepared calls per step
(``"launch"``, the reason in ``graph_error``).  ``debug=True`` launches per step
and synchronises after every kernel, so that a fault names the kernel and the
step exactly.  All loops give identical spikes (the step's work is the same
pure functions and integer sums, tests/test_cuda.py).

Options (``Simulation(net, backend="cuda", **options)``): ``device`` (ordinal,
default 0), ``context`` (an existing PyCUDA context to use instead of making
one), ``record_chunk_steps`` (1000), ``graph_steps`` (100: steps per graph or
persistent launch), ``persistent`` ("auto", True or False, see above),
``persistent_blocks_per_sm`` (blocks of the persistent grid per SM; default: the fewest
that hold every neuron block at once, i.e. a resident neuron phase, up to as many as fit:
:func:`default_blocks_per_sm`; with ``throughput_build`` all that fit),
``persistent_grid`` (blocks of the persistent grid in total, instead of per SM: at most
as many as can be resident at once; a grid of 1 replaces the grid barrier by
``__syncthreads``; with fewer blocks than neuron blocks the neuron phase is
grid-stride, its state in global memory), ``use_graph`` (True), ``debug`` (False), ``bernoulli_tiles`` (None: True
makes the persistent kernel deliver pairwise_bernoulli projections with a constant
delay by shared-memory tiles in steps with at least ``tile_min_spikes`` (64) spikes,
kernels/phases.cuh pp_tile_phase, and the graph loop run the tile kernel in every step
(the host cannot see a step's spikes) -- exact, but slower than the per-spike path on an
H200 with truncated-normal weights and the floating-point samplers of the second
session; None: tiles only in the candidates that ``tune_builds`` times; False: never), ``csr_build`` ("device" or "host": stored CSR generated on the GPU, or
materialised by the NumPy twin and uploaded),
``prop_blocks`` (grid of the propagation kernels, the tile kernel's too; default: each
kernel's occupancy),
``pipelined`` (False: True runs the persistent loop with one grid barrier per step,
step t's neuron phase beside step t - 1's propagation; needs every delay >= 2 steps;
prepared, not yet run on a GPU), ``shared_tables`` (False: True makes every persistent
block copy the network tables,
when they fit 32 KiB, and the sampler tables into shared memory once per launch --
kernels/step_persistent.cu, a build with -DPP_SHARED_TABLES=1 -DPP_PERSISTENT_TILES=0;
not with bernoulli_tiles; prepared, not yet run on
a GPU), ``unit_map`` (False: True makes the persistent kernel resolve a step's (spike,
projection) items once per block and hand the grid's warps 32-synapse work units found
by binary search, in steps with at most 1,024 items -- kernels/step_persistent.cu
pp_unit_phase, a build with -DPP_UNIT_MAP=1, both connectivities; aimed at
latency-bound steps such as the full microcircuit's; prepared, not yet run on a GPU),
``throughput_build`` (False: True compiles the persistent kernel for 4 blocks of 256 per
SM -- 64 registers, without the whole-warp bernoulli walks of steps with few items; the
occupancy of the graph loop's propagation kernel, for throughput-bound runs such as the
1e5-neuron balanced network or the multi-area model; a build with -DPP_WARP_SEGMENTS=0
-DPP_PERSISTENT_MIN_BLOCKS=4 -DPP_PERSISTENT_TILES=0 (without the tile phase, whose
flat walk would spill its 64 registers); not with unit_map, shared_tables or
bernoulli_tiles; prepared, not yet run on a GPU), ``one_block`` (False: True runs the
persistent loop on a grid of one block of 512 threads that keeps the whole delay ring,
the spike list(s) and the neuron state in shared memory for the launch --
kernels/step_persistent.cu, a build with -DPP_ONE_BLOCK=1; for small networks, whose
step is a chain of latencies: no grid barrier and no L2 round trip on it; refused with
the bytes named where they do not fit a block's shared memory; not with the other opt-in
builds, bernoulli_tiles=True or another grid; prepared, not yet run on a GPU),
``tune_builds`` (False: True makes ``persistent="auto"`` compile the
shared-tables, unit-map, both and throughput builds at set-up and time them too -- and
where every delay is >= 2 steps the pipelined loop of the default and shared-tables
builds, and with ``bernoulli_tiles`` None the default build (and its pipelined loop)
and the graph loop with tiles, and for networks of up to 8,192 neurons that fit it the
one-block build (and its pipelined loop) -- an untimed and two timed batches each on the
live network, and keep
the fastest
candidate; ``loop_tuning`` names it in ``chosen``; prepared, not yet run on a GPU).
"""
from __future__ import annotations

import ctypes
import logging
import time
import weakref
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..compile import DC_DTYPE, POP_DTYPE, CompiledNetwork, check_input_range, dc_switches
from ..connectivity import materialise
from ..errors import BackendUnavailable, OverflowDetected
from ..kernels import (CTRL_DTYPE, ERROR_CODES, CooperativeUnavailable, cu_error_string,
                       forget_context, get_cooperative_kernel, get_kernels, import_pycuda,
                       load_libcuda)
from ..plan import NEURON_BLOCK, Plan, device_tables, fits, memory_reserve, plan_network
from ..staterec import chunk_samples, gather_plan, samples_in, steps_to_sample
from ..sampling import TABLES_LEN

__all__ = ["CUDASimulator", "CUDAKernelError", "device_tables", "GraphAPI", "propagation_grid",
           "persistent_smem_bytes", "min_delay_steps"]

log = logging.getLogger("pyproc.cuda")

STEP_KERNELS = ("pp_neuron_lif_update", "{prop}", "pp_record_advance")
TUNE_WARMUP_BATCHES = 5             # persistent="auto": batches before the loops are timed
TUNE_ROUNDS = 2                     # timed batches per candidate loop (after 1 untimed)


class CUDAKernelError(RuntimeError):
    """A kernel failed (device fault or a check inside a kernel); names kernel and step."""


# ---------------------------------------------------------------------------
# CUDA graphs through the driver API (PyCUDA wraps none of it)
CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1


class GraphUnavailable(RuntimeError):
    """Stream capture or graph instantiation failed (the backend falls back)."""


class GraphAPI:
    """The few driver functions needed to capture and replay a stream (ctypes)."""

    def __init__(self, lib=None):
        if lib is None:
            lib = load_libcuda(GraphUnavailable)
        vp, pvp = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
        try:
            self.begin = lib.cuStreamBeginCapture_v2
            self.end = lib.cuStreamEndCapture
            self.launch = lib.cuGraphLaunch
            self.exec_destroy = lib.cuGraphExecDestroy
            self.graph_destroy = lib.cuGraphDestroy
            inst = getattr(lib, "cuGraphInstantiateWithFlags", None)
        except AttributeError as e:
            raise GraphUnavailable(f"libcuda.so.1 lacks a graph function: {e}") from e
        self.begin.argtypes, self.begin.restype = [vp, ctypes.c_int], ctypes.c_int
        self.end.argtypes, self.end.restype = [vp, pvp], ctypes.c_int
        self.launch.argtypes, self.launch.restype = [vp, vp], ctypes.c_int
        self.exec_destroy.argtypes, self.exec_destroy.restype = [vp], ctypes.c_int
        self.graph_destroy.argtypes, self.graph_destroy.restype = [vp], ctypes.c_int
        if inst is not None:
            inst.argtypes, inst.restype = [pvp, vp, ctypes.c_ulonglong], ctypes.c_int
            self._inst, self._inst_flags = inst, True
        else:   # CUDA < 11.4: cuGraphInstantiate(exec, graph, errNode, logBuf, bufSize)
            inst = lib.cuGraphInstantiate
            inst.argtypes = [pvp, vp, pvp, ctypes.c_char_p, ctypes.c_size_t]
            inst.restype = ctypes.c_int
            self._inst, self._inst_flags = inst, False
        self._lib = lib

    def error_string(self, rc: int) -> str:
        return cu_error_string(self._lib, rc)

    def instantiate(self, graph) -> ctypes.c_void_p:
        exe = ctypes.c_void_p()
        if self._inst_flags:
            rc = self._inst(ctypes.byref(exe), graph, 0)
        else:
            rc = self._inst(ctypes.byref(exe), graph, None, None, 0)
        if rc != 0:
            raise GraphUnavailable(f"cuGraphInstantiate: {self.error_string(rc)}")
        return exe

    def capture(self, stream_handle: int, record_launches: Callable[[], None],
                launch_errors: Tuple[type, ...]):
        """Capture what ``record_launches()`` enqueues on the stream into an
        instantiated graph; returns (graph, exec)."""
        h = ctypes.c_void_p(int(stream_handle))
        rc = self.begin(h, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        if rc != 0:
            raise GraphUnavailable(f"cuStreamBeginCapture_v2: {self.error_string(rc)}")
        failure = None
        graph = ctypes.c_void_p()
        try:
            record_launches()
        except launch_errors as e:      # a launch refused during capture
            failure = e
        except BaseException:           # anything else: end the capture, then re-raise
            rc = self.end(h, ctypes.byref(graph))   # (a stream left capturing fails
            if graph.value:                         # every later call on it)
                self.graph_destroy(graph)
            raise
        rc = self.end(h, ctypes.byref(graph))
        if failure is not None or rc != 0:
            if graph.value:
                self.graph_destroy(graph)
            why = (f"launch during capture failed: {failure}" if failure is not None
                   else f"cuStreamEndCapture: {self.error_string(rc)}")
            raise GraphUnavailable(why)
        try:
            exe = self.instantiate(graph)
        except GraphUnavailable:
            self.graph_destroy(graph)
            raise
        return graph, exe

    def replay(self, exe, stream_handle: int) -> None:
        rc = self.launch(exe, ctypes.c_void_p(int(stream_handle)))
        if rc != 0:
            raise CUDAKernelError(f"cuGraphLaunch: {self.error_string(rc)}")

    def destroy(self, graph, exe) -> None:
        if exe is not None and exe.value:
            self.exec_destroy(exe)
        if graph is not None and graph.value:
            self.graph_destroy(graph)


SHARED_NET_TABLES_MAX = 32 * 1024   # shared_tables: network tables only up to this size
SHARED_TABLES_BUILD = {"PP_SHARED_TABLES": 1, "PP_PERSISTENT_TILES": 0}
UNIT_MAP_BUILD = {"PP_UNIT_MAP": 1}
THROUGHPUT_BUILD = {"PP_WARP_SEGMENTS": 0, "PP_PERSISTENT_MIN_BLOCKS": 4, "PP_PERSISTENT_TILES": 0}
# one_block: the whole network on one block of ONE_BLOCK_THREADS threads, ring, spike
# list(s) and neuron state in shared memory (kernels/step_persistent.cu, "the one-block
# build")
ONE_BLOCK_BUILD = {"PP_ONE_BLOCK": 1, "PP_PERSISTENT_MIN_BLOCKS": 1, "PP_PERSISTENT_TILES": 0,
                   "PP_PARTS_PER_WARP_PERSISTENT": 2}
ONE_BLOCK_THREADS = 512             # PP_ONE_BLOCK_THREADS
# tune_builds times the one-block build for networks up to this size (one SM updates
# every neuron: 16 passes of its 512 threads at most)
ONE_BLOCK_TUNE_MAX_NEURONS = 16 * ONE_BLOCK_THREADS


# The builds persistent="auto" times with tune_builds=True: (shared_tables, unit_map,
# throughput_build), each on its own default grid; where every delay is >= 2 steps also
# the pipelined loop (one barrier per step) of the default and the shared-tables builds.
TUNE_BUILDS = ((False, False, False), (True, False, False), (False, True, False),
               (True, True, False), (False, False, True))
TUNE_PIPELINED = ((False, False, False), (True, False, False))
# With bernoulli_tiles left at None (procedural, some projection tiled): the default build
# with the tile phase on (pp_tile_phase in steps with >= tile_min_spikes spikes), and where
# the pipelined loop is timed its pipelined loop too.  The tiles cut the global atomics of
# a throughput-bound step (the 1e5 balanced network: about 0.3-0.45 per synapse instead of
# 1); whether that pays on the live network is what the timing decides.
TUNE_TILES = ((False, False, False),)


def build_label(shared_tables: bool, unit_map: bool, throughput: bool,
                pipelined: bool = False, tiles: bool = False, one_block: bool = False) -> str:
    """'default', 'shared', 'units', 'shared+units', 'throughput', 'pipelined',
    'shared+pipelined', 'tiles', 'pipelined+tiles', 'one_block', ... (loop_tuning's
    keys)."""
    parts = [w for on, w in ((shared_tables, "shared"), (unit_map, "units"),
                             (throughput, "throughput"), (one_block, "one_block"),
                             (pipelined, "pipelined"), (tiles, "tiles")) if on]
    return "+".join(parts) or "default"


class PersistentBuild:
    """One compiled persistent kernel, ready to launch: its build (the three opt-in
    flags as asked), the -D macros, the shared-table flags (0 where shared tables were
    asked but nothing fits) and dynamic shared memory it is launched with, its packed
    arguments (with ``tiles`` the tile table: the tile phase runs in steps with at least
    tile_min_spikes spikes), the blocks per SM that fit (``occ``) and the grid it runs by
    default; ``one_block``: the one-block build (one block of ONE_BLOCK_THREADS)."""

    def __init__(self, kernel, packed, shared_tables: bool, unit_map: bool, throughput: bool,
                 defines: Dict[str, int], smem_tables: int, smem: int, occ: int, grid: int,
                 pipelined: bool = False, tiles: bool = False, one_block: bool = False):
        self.kernel, self.packed, self.pipelined = kernel, packed, pipelined
        self.shared_tables, self.unit_map, self.throughput = shared_tables, unit_map, throughput
        self.defines, self.smem_tables, self.smem = defines, smem_tables, smem
        self.occ, self.grid, self.tiles, self.one_block = occ, grid, tiles, one_block

    @property
    def block(self) -> int:
        """Threads per block of its launches."""
        return ONE_BLOCK_THREADS if self.one_block else NEURON_BLOCK

    @property
    def label(self) -> str:
        return build_label(self.shared_tables, self.unit_map, self.throughput, self.pipelined,
                           self.tiles, self.one_block)

    @property
    def key(self) -> tuple:
        """What makes two builds the same kernel launched the same way."""
        return build_key(self.defines, self.smem_tables, self.pipelined, self.tiles)


def build_key(defines: Dict[str, int], smem_tables: int, pipelined: bool,
              tiles: bool = False) -> tuple:
    return tuple(sorted(defines.items())), smem_tables, bool(pipelined), bool(tiles)


def persistent_build(shared_tables: bool, unit_map: bool, throughput: bool,
                     one_block: bool = False) -> Dict[str, int]:
    """The -D macros of the persistent kernels' build (empty: the default build).  The
    one-block build combines with none of the other three (ValueError).  Both
    the shared-tables and the unit-map builds fit 3 blocks of 256 per SM without a spill
    (80 registers) alone; together they would spill on sm_90, so they are compiled for 2
    (tests/test_kernels_compile.py checks the budgets).  The shared-tables and the
    throughput builds leave the tile phase out (bernoulli_tiles): with it they would
    spill."""
    if one_block:
        if shared_tables or unit_map or throughput:
            raise ValueError("the one-block build cannot be combined with shared_tables, "
                             "unit_map or throughput_build")
        return dict(ONE_BLOCK_BUILD)
    d = {**(SHARED_TABLES_BUILD if shared_tables else {}),
         **(UNIT_MAP_BUILD if unit_map else {}),
         **(THROUGHPUT_BUILD if throughput else {})}
    if shared_tables and unit_map:
        d["PP_PERSISTENT_MIN_BLOCKS"] = 2
    return d


SAMPLER_TABLES_BYTES = 4 * TABLES_LEN     # PP_TABLES_LEN int32


def default_blocks_per_sm(n_blocks: int, n_sm: int, fit: int) -> int:
    """Blocks per SM of the persistent grid when the user does not say: the fewest that
    give every neuron block a persistent block (the resident neuron phase), at least 1,
    and all that fit (``fit``, from occupancy) when even those are too few.  A smaller
    grid makes each grid barrier cheaper: on H200s (second session, bench (c), four
    runs) the 1,000-neuron network (4 neuron blocks) ran 3-8 % faster per step on 1
    block per SM than on 3 (7.15 vs 7.55, 7.37 vs 8.66, 9.0 vs 9.38, 7.17 vs 7.70 us).
    The microcircuit (301 neuron blocks) and the 1e5 balanced network (391) keep 3 on
    132 SMs; networks too large for a resident phase (multi-area model) take all."""
    need = max(1, -(-int(n_blocks) // max(int(n_sm), 1)))
    return need if need <= fit else fit


def tune_candidates(grid: int, n_blocks: int, user_grid: bool = False) -> Tuple[int, ...]:
    """The persistent grids that ``persistent="auto"`` times against the graph loop: the
    grid it would run (``grid``), and where the network's ``n_blocks`` neuron blocks fill
    at most half of it, also a grid of exactly ``n_blocks`` blocks (each still owns a
    neuron block -- the resident neuron phase -- and fewer blocks meet at each grid
    barrier; one neuron block: a one-block grid, whose barrier is ``__syncthreads``).
    The H200 runs of the second session saw the 1,000-neuron network (4 neuron blocks)
    3-8 % faster per step on 132 blocks than on 396; whether 4 beat 132 is what the
    timing decides.  Only ``grid`` where the user chose the grid."""
    n_blocks = max(1, int(n_blocks))
    if user_grid or 2 * n_blocks > int(grid):
        return (int(grid),)
    return (int(grid), n_blocks)


def _round8(n: int) -> int:
    return (int(n) + 7) // 8 * 8


def persistent_smem_bytes(cnet: CompiledNetwork, connectivity: str, tile_bytes: int,
                          flags: int) -> int:
    """Dynamic shared memory of a persistent block: the tile accumulator, then with
    ``flags & 1`` the network tables (projections, populations, out tables; procedural
    also the out tables without tiled projections), then with ``flags & 2`` the sampler
    tables -- each part rounded up to 8 bytes, as kernels/step_persistent.cu lays them out."""
    from ..compile import POP_DTYPE, PROJ_DTYPE
    n_pops, n_projs = int(cnet.n_pops), len(cnet.projs)
    total = _round8(tile_bytes)
    if flags & 1:
        outs = _round8(4 * (n_pops + 1)) + _round8(4 * n_projs)
        total += (_round8(n_projs * PROJ_DTYPE.itemsize) + _round8(n_pops * POP_DTYPE.itemsize)
                  + outs * (2 if connectivity == "procedural" else 1))
    if flags & 2 and connectivity == "procedural":
        total += SAMPLER_TABLES_BYTES
    return total


def one_block_smem_bytes(cnet: CompiledNetwork, spike_lists: int = 1) -> int:
    """Dynamic shared memory of the one-block build: the whole delay ring (int32, rounded
    up to 8 bytes), then ``spike_lists`` spike lists of one uint2 per neuron (two in the
    pipelined loop), then the neuron state (V, Iex, Iin, ref: 16 bytes a neuron), as
    kernels/step_persistent.cu lays them out."""
    n = int(cnet.n_neurons)
    return _round8(4 * int(cnet.ring_size)) + 8 * n * int(spike_lists) + 16 * n


def min_delay_steps(cnet: CompiledNetwork) -> Tuple[int, int]:
    """(projection, steps) of the shortest delay any synapse can have: the delay of the
    smallest uniform (a truncated normal's sample grows with its uniform), or the
    constant.  (-1, 2 ** 31) without projections."""
    from ..connectivity import delays_steps
    best = (-1, 2 ** 31)
    for k, pj in enumerate(cnet.projs):
        d = int(delays_steps(pj, np.zeros(1, np.uint32))[0])
        if d < best[1]:
            best = (k, d)
    return best


# shared memory CUDA keeps per block for itself (sm_80 and later:
# cudaDevAttrReservedSharedMemoryPerBlock)
SMEM_RESERVED_PER_BLOCK = 1024


def propagation_grid(n_sm: int, num_regs: int, block: int = 256, smem_block: int = 0,
                     smem_sm: Optional[int] = None) -> int:
    """Blocks for a grid-stride kernel: as many as fit on all SMs at once
    (registers allocated per warp in units of 256, 64K registers and 64 warps per SM;
    with ``smem_block`` bytes of shared memory per block, static + dynamic, also at most
    what ``smem_sm`` bytes per SM hold, counting CUDA's 1 KiB per block).
    The propagation kernels carry __launch_bounds__(256, 4), so ptxas keeps them at
    <= 64 registers and this gives 4 blocks of 256 per SM; the tile kernel needs 48
    registers (5 blocks).  The kernels size their work split (pp_split_for, step.cuh;
    the tile phase's grid stride) from the grid they are launched with, so the grid
    changes no result."""
    regs_warp = -(-max(int(num_regs), 1) * 32 // 256) * 256
    warps_sm = min(64, 65536 // regs_warp)
    per_sm = max(1, min(32, warps_sm // (block // 32)))
    if smem_block and smem_sm:
        per_sm = max(1, min(per_sm, int(smem_sm) // (int(smem_block) + SMEM_RESERVED_PER_BLOCK)))
    return int(n_sm) * per_sm


# ---------------------------------------------------------------------------
class _DeviceState:
    """Everything that must be released in the context (close() or garbage collection)."""

    def __init__(self, drv):
        self.drv = drv
        self.ctx = None
        self.own = False
        self.buffers: Dict[str, object] = {}
        self.graphs: Dict[tuple, tuple] = {}     # (steps, tiles) -> (graph, exec)
        self.graph_api: Optional[GraphAPI] = None
        self.stream = None

    def release(self) -> None:
        drv, ctx = self.drv, self.ctx
        if ctx is None:
            return
        self.ctx = None
        try:
            ctx.push()
        except drv.Error:
            return
        try:
            for graph, exe in self.graphs.values():
                self.graph_api.destroy(graph, exe)
            self.graphs.clear()
            for b in self.buffers.values():
                try:
                    b.free()
                except drv.Error:
                    pass        # the context is already broken (a kernel fault)
            self.buffers.clear()
            self.stream = None
            if self.own:
                forget_context(int(ctx.handle))
        finally:
            drv.Context.pop()
        if self.own:
            try:
                ctx.detach()
            except drv.Error:
                pass


class CUDASimulator:
    """Step loop on a CUDA GPU; same interface as :class:`~pyproc.backends.cpu.CPUSimulator`
    (``step``, ``n_events``, ``setup_time``, ``run_steps``).  Use as a context manager or
    call :meth:`close` to free the device."""

    def __init__(self, cnet: CompiledNetwork, connectivity: str = "procedural", *,
                 device: int = 0, context=None, record_chunk_steps: int = 1000,
                 graph_steps: int = 100, use_graph: bool = True, debug: bool = False,
                 csr_build: str = "device", prop_blocks: Optional[int] = None,
                 persistent="auto", persistent_blocks_per_sm: Optional[int] = None,
                 persistent_grid: Optional[int] = None,
                 bernoulli_tiles: Optional[bool] = None, tile_min_spikes: int = 64,
                 shared_tables: bool = False, pipelined: bool = False,
                 unit_map: bool = False, throughput_build: bool = False,
                 one_block: bool = False, tune_builds: bool = False):
        t0 = time.perf_counter()
        if connectivity not in ("stored", "procedural"):
            raise ValueError(f"connectivity must be 'stored' or 'procedural', got {connectivity!r}")
        if csr_build not in ("device", "host"):
            raise ValueError(f"csr_build must be 'device' or 'host', got {csr_build!r}")
        if int(record_chunk_steps) < 1 or int(graph_steps) < 1:
            raise ValueError("record_chunk_steps and graph_steps must be >= 1")
        if persistent not in ("auto", True, False):
            raise ValueError(f"persistent must be 'auto', True or False, got {persistent!r}")
        if persistent_blocks_per_sm is not None and int(persistent_blocks_per_sm) < 1:
            raise ValueError("persistent_blocks_per_sm must be >= 1 (or None: as many as fit)")
        if persistent_grid is not None:
            if int(persistent_grid) < 1:
                raise ValueError(f"persistent_grid must be >= 1 (or None: from the blocks per "
                                 f"SM), got {persistent_grid!r}")
            if persistent_blocks_per_sm is not None:
                raise ValueError("give persistent_grid (blocks in total) or "
                                 "persistent_blocks_per_sm (blocks per SM), not both")
        if bernoulli_tiles not in (None, True, False):
            raise ValueError(f"bernoulli_tiles must be None, True or False, got "
                             f"{bernoulli_tiles!r}")
        if not 1 <= int(tile_min_spikes) < 2 ** 32:
            raise ValueError(f"tile_min_spikes must be in [1, 2^32), got {tile_min_spikes!r}")
        check_input_range(cnet)          # int32 ring: refuse before anything runs
        drv, _ = import_pycuda()
        self._drv = drv
        self.cnet = cnet
        self.connectivity = connectivity
        self.record_chunk_steps = int(record_chunk_steps)
        self.graph_steps = min(int(graph_steps), self.record_chunk_steps)
        self.debug = bool(debug)
        self.step = 0
        self.n_events = 0
        self.n_spikes_total = 0
        self.n_synapses_stored = 0
        self.state_blocks: List[list] = [[] for _ in cnet.state]   # raw samples (staterec)
        self._queued = 0                  # steps enqueued since the last drain (run_steps)
        self._gathers: list = []   # (Gather, src, idx, out addresses), _setup
        self._intervals = sorted({g.interval for g in cnet.state})   # state sample intervals
        self._dc_switches: list = []      # (step, pops field address, dc_table address)
        self._dc_next = 0                 # the first switch not yet enqueued
        # the tuning's batch length: graph_steps, or the shortest state interval or gap
        # between step-current switches when those cut batches shorter (the batches the
        # run will have; a fixed length, as _tune_batch captures its graphs for it)
        self._switch_plan = dc_switches(cnet)   # (step, population, stretch)
        switch_steps = np.unique([s for s, _, _ in self._switch_plan])
        self._tune_m = int(min([self.graph_steps] + self._intervals
                               + np.diff(switch_steps).tolist()))
        self.n_tiles = 0                  # tile table entries the running build uses
        self._n_tile_entries = 0          # the tile table (0: tiles never run)
        self._tile_table_smem = 0         # its accumulator (dynamic shared bytes)
        self.step_tiles = False           # graph / per-step loops: the tile kernel each step
        self._launch_lists: Dict[bool, tuple] = {}      # _step_launches, per step_tiles
        self.last_propagation_tiles = False
        self._use_graph = bool(use_graph)
        self.loop_mode = ("debug" if debug else "persistent" if persistent
                          else "graph" if use_graph else "launch")
        self.graph_error: Optional[str] = None
        self.persistent_error: Optional[str] = None
        # auto: tune once both loops exist (graph capture possible, persistent kernel loaded)
        self._tune = persistent == "auto" and bool(use_graph) and not debug
        self.loop_tuning: Optional[Dict[str, float]] = None
        self.persistent_grid = 0
        self._persistent_bps = persistent_blocks_per_sm
        self._persistent_grid_req = None if persistent_grid is None else int(persistent_grid)
        self._tune_cands: List[Tuple[PersistentBuild, int]] = []   # (build, grid) it times
        self._main_build: Optional[PersistentBuild] = None     # the build the options ask
        self._tune_state: Optional[dict] = None    # the tuning under way (_tune_batch)
        # True: every persistent build runs the tile phase; None: only the candidates
        # that tune_builds times with it (below); False: never
        self._tiles_on = bool(bernoulli_tiles) and connectivity == "procedural"
        self._tiles_tuned = (bernoulli_tiles is None and connectivity == "procedural"
                             and bool(tune_builds))
        self._tiles_allowed = bernoulli_tiles is not False and connectivity == "procedural"
        self.shared_tables = bool(shared_tables)
        self.pipelined = bool(pipelined)
        self.unit_map = bool(unit_map)
        self.throughput_build = bool(throughput_build)
        self.one_block = bool(one_block)
        self.tune_builds = bool(tune_builds)
        if self.tune_builds and persistent != "auto":
            raise ValueError(f"tune_builds=True times the persistent builds in "
                             f"persistent='auto', not with persistent={persistent!r}")
        if self.throughput_build and (self.unit_map or self.shared_tables):
            raise ValueError("throughput_build=True (4 blocks per SM, 64 registers) cannot be "
                             "combined with unit_map or shared_tables (their builds need more "
                             "registers)")
        if self._tiles_on and (self.throughput_build or self.shared_tables):
            which = "throughput_build" if self.throughput_build else "shared_tables"
            raise ValueError(f"{which}=True cannot be combined with bernoulli_tiles=True (the "
                             f"{which} build leaves the tile phase out: with it the kernel "
                             f"would not fit its registers)")
        if self.one_block:
            clash = [n for n, on in (("unit_map", self.unit_map),
                                     ("shared_tables", self.shared_tables),
                                     ("throughput_build", self.throughput_build),
                                     ("bernoulli_tiles", self._tiles_on)) if on]
            if clash:
                raise ValueError(f"one_block=True cannot be combined with {clash[0]}=True (the "
                                 f"one-block build is the default build on one block of "
                                 f"{ONE_BLOCK_THREADS} threads, ring, spike lists and neuron "
                                 f"state in shared memory)")
            if persistent is False:
                raise ValueError("one_block=True is a build of the persistent loop: not with "
                                 "persistent=False")
            if persistent_blocks_per_sm is not None or persistent_grid not in (None, 1):
                raise ValueError("one_block=True runs a grid of one block: give neither "
                                 "persistent_blocks_per_sm nor persistent_grid (other than 1)")
        k, d = min_delay_steps(cnet)
        if self.pipelined and d < 2:
            raise ValueError(f"pipelined=True needs every delay >= 2 steps; projection "
                             f"{cnet.proj_names[k]!r} can deliver after {d} step(s)")
        # tune_builds also times the pipelined loop where the delays allow it
        self._tune_pipelined = self.tune_builds and not self.pipelined and d >= 2
        self.smem_tables = 0
        self.persistent_smem = 0
        self.persistent_defines: Dict[str, int] = {}
        self.tile_min_spikes = int(tile_min_spikes)
        self._state = _DeviceState(drv)
        self._finalizer = weakref.finalize(self, self._state.release)
        self._acquire_context(drv, device, context)
        try:
            self._setup(prop_blocks, csr_build)
        except BaseException:
            drv.Context.pop()
            self.close()
            raise
        drv.Context.pop()
        self.setup_time = time.perf_counter() - t0

    # -- context ------------------------------------------------------------
    def _acquire_context(self, drv, device, context) -> None:
        """Make (or push) the context; it is current when this returns."""
        try:
            drv.init()
        except drv.Error as e:
            raise BackendUnavailable(f"CUDA driver unavailable ({e}); check the NVIDIA driver, "
                                     "or use the CPU backend (backend='cpu')") from e
        if context is None:
            context = drv.Context.get_current()
        if context is not None:
            context.push()
            self._state.ctx, self._state.own = context, False
            return
        try:
            n = drv.Device.count()
        except drv.Error as e:
            raise BackendUnavailable(f"CUDA driver error while counting devices ({e}); "
                                     "the CPU backend (backend='cpu') is available") from e
        if n == 0 or not (0 <= int(device) < n):
            raise BackendUnavailable(f"no CUDA device {device} (found {n}); the CPU backend "
                                     "(backend='cpu') is available")
        try:
            ctx = drv.Device(int(device)).make_context()
        except drv.Error as e:
            raise BackendUnavailable(f"cannot create a CUDA context on device {device} ({e}); "
                                     "the CPU backend (backend='cpu') is available") from e
        self._state.ctx, self._state.own = ctx, True

    class _Active:
        def __init__(self, sim):
            self.sim = sim

        def __enter__(self):
            if self.sim._state.ctx is None:
                raise RuntimeError("CUDASimulator is closed")
            self.sim._state.ctx.push()

        def __exit__(self, *exc):
            self.sim._drv.Context.pop()
            return False

    def close(self) -> None:
        """Free every device buffer and graph; pop/destroy the context if it was made here."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def closed(self) -> bool:
        return self._state.ctx is None

    # -- set-up -------------------------------------------------------------
    def _setup(self, prop_blocks, csr_build) -> None:
        drv, cnet = self._drv, self.cnet
        plan = plan_network(cnet, self.connectivity, self.record_chunk_steps,
                            spike_lists=2 if self.pipelined or self._tune_pipelined else 1)
        self.plan: Plan = plan
        if plan.record_capacity >= 2 ** 32 - 1:
            raise BackendUnavailable(f"record buffer of {plan.record_capacity:,d} ids exceeds "
                                     "uint32: lower record_chunk_steps\n" + plan.format())
        free, total = drv.mem_get_info()
        reserve = memory_reserve(total)
        if not fits(plan, free, total):
            raise BackendUnavailable(
                f"model does not fit the GPU: needs {plan.total:,d} bytes, "
                f"{free:,d} of {total:,d} free ({reserve:,d} kept in reserve)\n" + plan.format())
        prop = ("pp_propagate_procedural_spikes" if self.connectivity == "procedural"
                else "pp_propagate_stored_spikes")
        names = ["pp_neuron_lif_update", prop, "pp_record_advance"]
        if self.connectivity == "procedural":
            names.append("pp_propagate_procedural_tiles")
        if self.connectivity == "stored" and csr_build == "device":
            names += ["pp_build_csr_count", "pp_build_csr_fill"]
        if cnet.state:
            names.append("pp_record_state")
        self._k = get_kernels(names)
        self._prop_name = prop
        dev = drv.Context.get_device()
        self.device_name = dev.name()
        self.n_sm = dev.get_attribute(drv.device_attribute.MULTIPROCESSOR_COUNT)
        self._prop_grid = int(prop_blocks) if prop_blocks else propagation_grid(
            self.n_sm, self._k[prop].num_regs)
        self._smem_optin = None          # shared memory a block may have (bytes), if known
        attr = getattr(drv.device_attribute, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", None)
        if attr is not None:
            self._smem_optin = int(dev.get_attribute(attr))
        self._smem_sm = None             # shared memory of an SM (bytes), if known
        attr = getattr(drv.device_attribute, "MAX_SHARED_MEMORY_PER_MULTIPROCESSOR", None)
        if attr is not None:
            self._smem_sm = int(dev.get_attribute(attr))
        if self.one_block:               # refuse before anything is allocated
            why = self._one_block_unfit(self.pipelined)
            if why:
                raise ValueError(f"one_block=True: {why}")

        # allocate exactly the plan
        buf = self._state.buffers
        for name, nbytes in plan.buffers.items():
            buf[name] = drv.mem_alloc(nbytes)
        self.allocated_bytes = int(sum(plan.buffers.values()))
        assert self.allocated_bytes == plan.total
        tabs = device_tables(cnet)
        self._tabs = tabs
        for name in ("pops", "projs", "rowlen", "sampler_tables", "poisson_tables", "blocks",
                     "pop_flags", "out_ptr", "out_idx"):
            self._upload(name, tabs[name])
        if self.connectivity == "procedural":
            for name in ("tiles", "gen_out_ptr", "gen_out_idx"):
                self._upload(name, tabs[name])
        self._n_tile_entries = int(tabs["tiles"].shape[0]) if self._tiles_allowed else 0
        self._tile_table_smem = int(tabs["tile_smem_bytes"]) if self._n_tile_entries else 0
        self._tile_grid = self._prop_grid   # the tile kernel's own occupancy (prop_blocks: that)
        if self._n_tile_entries and not prop_blocks:
            tk = self._k["pp_propagate_procedural_tiles"]
            self._tile_grid = propagation_grid(
                self.n_sm, tk.num_regs, smem_sm=self._smem_sm,
                smem_block=self._tile_table_smem + int(getattr(tk, "shared_size_bytes", 0)))
        self.n_tiles = self._n_tile_entries if self._tiles_forced else 0
        self.step_tiles = self._tiles_forced       # the per-step loops' tile kernel
        self._upload("V", cnet.v0.astype(np.float32))
        for name in ("Iex", "Iin", "ref", "ring", "rec_end"):
            drv.memset_d8(buf[name], 0, plan.buffers[name])
        self._ctrl_host = np.zeros(1, CTRL_DTYPE)
        self._upload("ctrl", self._ctrl_host)
        self._state.stream = drv.Stream()
        self._stream = self._state.stream
        if self.connectivity == "stored":
            self._upload("csr_row_base", tabs["row_base"])
            if csr_build == "device":
                self._build_csr_device()
            else:
                self._build_csr_host()
        self._chunk_step0 = 0
        self._pending = 0
        if "dc_table" in plan.buffers:   # step currents that change: their stretches
            many = [(i, seg) for i, seg in enumerate(cnet.dc) if seg.size > 1]
            self._upload("dc_table", np.concatenate([seg for _, seg in many]))
            first, at = {}, int(buf["dc_table"])
            for i, seg in many:
                first[i] = at
                at += DC_DTYPE.itemsize * seg.size
            field = int(buf["pops"]) + POP_DTYPE.fields["dc_amp"][1]
            self._dc_switches = [(step, field + i * POP_DTYPE.itemsize,
                                  first[i] + k * DC_DTYPE.itemsize)
                                 for step, i, k in self._switch_plan]
        if cnet.state:                   # state recordings: one gather per (interval, var)
            gathers = gather_plan(cnet.state)
            self._upload("state_idx", np.concatenate([g.ids for g in gathers]))
            i_off = o_off = 0
            for g in gathers:
                self._gathers.append((g, int(buf[("V", "Iex", "Iin")[g.variable]]),
                                      int(buf["state_idx"]) + 4 * i_off,
                                      int(buf["state_out"]) + 4 * o_off))
                i_off += g.ids.size
                o_off += g.ids.size * chunk_samples(g.interval, self.record_chunk_steps)
        N = cnet.n_neurons
        self._n_blocks = int(tabs["blocks"].shape[0])
        P = lambda n: int(buf[n])  # noqa: E731
        self._args_neuron = (P("pops"), P("blocks"), P("pop_flags"), P("poisson_tables"),
                             np.uint32(cnet.seed), P("V"), P("Iex"), P("Iin"), P("ref"),
                             P("ring"), P("spikes"), np.uint32(N), P("rec_ids"),
                             np.uint32(plan.record_capacity), P("ctrl"))
        max_out = np.uint32(tabs["max_out"])
        if self.connectivity == "procedural":
            self._args_prop = (P("projs"), P("pops"), P("rowlen"), P("sampler_tables"),
                               P("out_ptr"), P("out_idx"), max_out, P("spikes"),
                               np.uint32(cnet.seed), P("ring"), np.uint64(cnet.ring_size),
                               P("ctrl"))
        else:
            self._args_prop = (P("projs"), P("pops"), P("out_ptr"), P("out_idx"), max_out,
                               P("spikes"), P("csr_row_base"), P("csr_indptr"),
                               P("csr_targets"), P("csr_weights"), P("csr_delays"), P("ring"),
                               np.uint64(cnet.ring_size), P("ctrl"))
        self._args_adv = (P("ctrl"), P("rec_end"), np.uint32(self.record_chunk_steps))
        close = (np.uint32(self._n_blocks), P("rec_end"), np.uint32(self.record_chunk_steps))
        # shared_tables: the network tables if small enough, the sampler tables (procedural)
        self._net_fits = (persistent_smem_bytes(cnet, self.connectivity, 0, 1)
                          <= SHARED_NET_TABLES_MAX)
        self.smem_tables = self._smem_flags(self.shared_tables)
        self.persistent_smem = persistent_smem_bytes(cnet, self.connectivity,
                                                     self._tile_table_smem if self.n_tiles else 0,
                                                     self.smem_tables)
        flag_arg = np.uint32(self.smem_tables)       # a build's shared-table flags go here
        pipe_arg = np.uint32(self.pipelined)         # and its pipelined flag here
        tiles_arg = np.uint32(0)                     # and its tile table length and
        tile_bytes_arg = np.uint32(0)                # tile accumulator bytes here
        smem_args = (np.uint32(cnet.n_pops), np.uint32(len(cnet.projs)), flag_arg)
        if self.connectivity == "procedural":
            tail = (P("projs"), P("rowlen"), P("sampler_tables"), P("out_ptr"), P("out_idx"),
                    max_out, P("gen_out_ptr"), P("gen_out_idx"), np.uint32(tabs["gen_max_out"]),
                    P("tiles"), tiles_arg, np.uint32(self.tile_min_spikes),
                    *smem_args, tile_bytes_arg, pipe_arg,
                    np.uint64(cnet.ring_size))
            self._args_prop_gen = (P("projs"), P("pops"), P("rowlen"), P("sampler_tables"),
                                   P("gen_out_ptr"), P("gen_out_idx"),
                                   np.uint32(tabs["gen_max_out"]), P("spikes"),
                                   np.uint32(cnet.seed), P("ring"), np.uint64(cnet.ring_size),
                                   P("ctrl"))
            self._args_tiles = (P("projs"), P("pops"), P("sampler_tables"), P("tiles"),
                                np.uint32(self._n_tile_entries), P("spikes"),
                                np.uint32(cnet.seed),
                                P("ring"), np.uint64(cnet.ring_size), P("ctrl"))
        else:
            tail = (P("projs"), P("out_ptr"), P("out_idx"), max_out, P("csr_row_base"),
                    P("csr_indptr"), P("csr_targets"), P("csr_weights"), P("csr_delays"),
                    *smem_args, pipe_arg, np.uint64(cnet.ring_size))
        self._args_persist = self._args_neuron + close + tail     # + n_steps at launch
        at = {id(a): i for i, a in enumerate(self._args_persist)}
        self._smem_arg_at, self._pipe_arg_at = at[id(flag_arg)], at[id(pipe_arg)]
        self._tiles_arg_at = at.get(id(tiles_arg))                # procedural only
        self._tile_bytes_arg_at = at.get(id(tile_bytes_arg))
        self._persist_packed = None           # ctypes kernelParams, packed once (persistent)
        self._stream.synchronize()
        if self.loop_mode == "persistent":
            try:
                self._setup_persistent(dev)
            except CooperativeUnavailable as e:
                self._fall_back_persistent(str(e))
        if self._tune and self.loop_mode == "persistent":
            try:
                self._state.graph_api = GraphAPI()
            except GraphUnavailable as e:
                self.graph_error = str(e)
                self._tune = False
        if self.loop_mode == "graph":
            try:
                self._state.graph_api = GraphAPI()
            except GraphUnavailable as e:
                self._fall_back(str(e))

    def _one_block_unfit(self, pipelined: bool, static: int = 0) -> Optional[str]:
        """Why the one-block build cannot hold this network's ring, spike list(s) and neuron
        state in one block's shared memory, beside ``static`` bytes of the kernel's own
        (None: it can, as far as the device's limit is known)."""
        need = one_block_smem_bytes(self.cnet, 2 if pipelined else 1) + int(static)
        if self._smem_optin is not None and need > self._smem_optin:
            n = int(self.cnet.n_neurons)
            return (f"the delay ring ({4 * int(self.cnet.ring_size):,d} bytes), "
                    f"{'two spike lists' if pipelined else 'the spike list'} "
                    f"({8 * n * (2 if pipelined else 1):,d}) and the neuron state "
                    f"({16 * n:,d})" + (f", with the kernel's {static:,d} static bytes,"
                                        if static else "") +
                    f" need {need:,d} bytes of shared memory; a block of "
                    f"{self.device_name} has at most {self._smem_optin:,d}")
        return None

    def _smem_flags(self, shared_tables: bool) -> int:
        """The shared-table flags of a build: bit 0 the network tables (if they fit
        SHARED_NET_TABLES_MAX), bit 1 the sampler tables (procedural)."""
        if not shared_tables:
            return 0
        return (1 if self._net_fits else 0) | (2 if self.connectivity == "procedural" else 0)

    def _build_spec(self, shared_tables: bool, unit_map: bool, throughput: bool,
                    one_block: bool = False) -> Tuple[int, Dict[str, int]]:
        """(shared-table flags, -D macros) of a build as asked (shared tables that do not
        fit give the flags 0 and the default macros)."""
        flags = self._smem_flags(shared_tables and not one_block)
        return flags, persistent_build(bool(flags), unit_map, throughput, one_block)

    def _compile_build(self, shared_tables: bool, unit_map: bool, throughput: bool,
                       pipelined: Optional[bool] = None,
                       tiles: Optional[bool] = None, one_block: bool = False) -> PersistentBuild:
        """Compile (or take from the cache) and size one build of the persistent kernel;
        CooperativeUnavailable if no block of it fits an SM; ValueError for a
        persistent_grid larger than what can be resident, or a one-block build whose
        ring, lists and state exceed a block's shared memory.  ``pipelined``: the loop's
        flag, ``tiles``: whether the tile phase runs (launch arguments: the tile table's
        length and the accumulator's shared memory; defaults: the simulator's);
        ``one_block``: the one-block build (a grid of one block, no tiles)."""
        name = "pp_step_persistent_" + self.connectivity
        pipelined = self.pipelined if pipelined is None else bool(pipelined)
        tiles = ((self._tiles_on if tiles is None else bool(tiles)) and self._n_tile_entries > 0
                 and not one_block)
        tile_bytes = self._tile_table_smem if tiles else 0
        flags, defines = self._build_spec(shared_tables, unit_map, throughput, one_block)
        if one_block:
            why = self._one_block_unfit(pipelined)
            if why:
                raise ValueError(why)
            smem = one_block_smem_bytes(self.cnet, 2 if pipelined else 1)
        else:
            smem = persistent_smem_bytes(self.cnet, self.connectivity, tile_bytes, flags)
        block = ONE_BLOCK_THREADS if one_block else NEURON_BLOCK
        k = get_cooperative_kernel(name, defines=defines) if defines else get_cooperative_kernel(name)
        if one_block:       # the set-up check could not know the compiled static bytes
            why = self._one_block_unfit(pipelined, getattr(k, "static_shared", 0))
            if why:
                raise ValueError(why)
        # a block may use 48 KiB of static + dynamic shared memory without the opt-in
        # (the unit-map build has 24 KiB static: a 33 KiB tile buffer needs it)
        if smem + int(getattr(k, "static_shared", 0)) > 48 * 1024:
            k.set_max_dynamic_shared(smem)
        occ = k.max_blocks_per_sm(block, smem)
        if occ < 1:
            raise CooperativeUnavailable(f"{k.name}: no block of {block} threads fits "
                                         f"an SM ({k.num_regs} registers, "
                                         f"{smem} bytes of dynamic shared memory)")
        fit = int(self.n_sm) * occ
        if one_block:
            grid = 1
        elif self._persistent_grid_req is not None:
            if self._persistent_grid_req > fit:
                raise ValueError(
                    f"persistent_grid={self._persistent_grid_req} exceeds the {fit} blocks of "
                    f"{k.name} that can be resident at once on {self.device_name} "
                    f"({self.n_sm} SMs x {occ}: {k.num_regs} registers, "
                    f"{smem} bytes of dynamic shared memory)")
            grid = self._persistent_grid_req
        elif self._persistent_bps is not None:
            grid = int(self.n_sm) * min(int(self._persistent_bps), occ)
        elif throughput:                            # the point of that build: all that fit
            grid = fit
        else:
            grid = int(self.n_sm) * default_blocks_per_sm(self._n_blocks, self.n_sm, occ)
        args = list(self._args_persist)
        args[self._smem_arg_at] = np.uint32(flags)
        args[self._pipe_arg_at] = np.uint32(pipelined)
        if self._tiles_arg_at is not None:
            args[self._tiles_arg_at] = np.uint32(self._n_tile_entries if tiles else 0)
            args[self._tile_bytes_arg_at] = np.uint32(tile_bytes)
        packed = k.pack(tuple(args) + (np.uint32(0),))
        return PersistentBuild(k, packed, bool(shared_tables), unit_map, throughput, defines,
                               flags, smem, occ, grid, pipelined, tiles, one_block)

    def _use_build(self, b: PersistentBuild, grid: int = 0) -> None:
        """Launch the persistent loop with build b (on ``grid`` blocks, default its own)."""
        self._build = b
        self._persist, self._persist_packed = b.kernel, b.packed
        self.persistent_smem, self.smem_tables = b.smem, b.smem_tables
        self.n_tiles = self._n_tile_entries if b.tiles else 0
        self.persistent_defines = b.defines   # the build's -D macros (profiling adds to them)
        self.persistent_grid = grid or b.grid
        self.shared_tables, self.unit_map, self.throughput_build = (b.shared_tables, b.unit_map,
                                                                    b.throughput)
        self.pipelined, self.one_block = b.pipelined, b.one_block

    def _setup_persistent(self, dev) -> None:
        """Compile and size the persistent kernel (and with tune_builds the other builds
        auto times); CooperativeUnavailable if it cannot run."""
        drv = self._drv
        attr = getattr(drv.device_attribute, "COOPERATIVE_LAUNCH", None)
        if attr is not None and not dev.get_attribute(attr):
            raise CooperativeUnavailable(f"{self.device_name} does not support cooperative "
                                         "launches")
        main = self._compile_build(self.shared_tables, self.unit_map, self.throughput_build,
                                   one_block=self.one_block)
        self._main_build = main
        self._use_build(main)
        user_grid = self._persistent_grid_req is not None or self._persistent_bps is not None
        self._tune_cands = [(main, g) for g in tune_candidates(main.grid, self._n_blocks,
                                                               user_grid)]
        if self.tune_builds and self._tune:
            seen = {main.key}
            on = self._tiles_on
            # (shared tables, unit map, throughput, pipelined, tiles, one block)
            extra = [(sh, um, tp, self.pipelined, on, False) for sh, um, tp in TUNE_BUILDS]
            pls = (self.pipelined, True) if self._tune_pipelined else (self.pipelined,)
            if self._tune_pipelined:
                extra += [(sh, um, tp, True, on, False) for sh, um, tp in TUNE_PIPELINED]
            if self._tiles_tuned and self._n_tile_entries:
                extra += [(sh, um, tp, pl, True, False) for sh, um, tp in TUNE_TILES for pl in pls]
            # small networks: the one-block build (and its pipelined loop where timed),
            # unless the user fixed the grid or forced tiles (the build has neither)
            if (not self.one_block and not user_grid and not on
                    and self.cnet.n_neurons <= ONE_BLOCK_TUNE_MAX_NEURONS):
                extra += [(False, False, False, pl, False, True) for pl in pls]
            # the shared-tables and throughput builds have no tile phase: with tiles they
            # are not candidates
            extra = [c for c in extra if not ((c[0] or c[2]) and c[4])]
            for sh, um, tp, pl, tl, ob in extra:
                flags, defines = self._build_spec(sh, um, tp, ob)
                tl = tl and self._n_tile_entries > 0
                key = build_key(defines, flags, pl, tl)
                if key in seen:
                    continue              # the same kernel (e.g. shared tables that do not fit)
                seen.add(key)
                try:
                    b = self._compile_build(sh, um, tp, pl, tl, ob)
                except (CooperativeUnavailable, ValueError) as e:   # no block fits, not the
                    # persistent_grid asked for, or a one-block build too large: not a candidate
                    log.info("tune_builds: %s left out: %s",
                             build_label(sh, um, tp, pl, tl, ob), e)
                    continue
                self._tune_cands.append((b, b.grid))

    @property
    def bernoulli_tiles(self) -> bool:
        """Whether the loop that runs now delivers the tiled projections by shared-memory
        tiles (the persistent build with its tile table, or the graph loop's tile kernel)."""
        if self.loop_mode == "persistent":
            return bool(self.n_tiles)
        return bool(self.step_tiles)

    @property
    def _tiles_forced(self) -> bool:
        """bernoulli_tiles=True and a tile table: every loop tiles."""
        return self._tiles_on and self._n_tile_entries > 0

    @property
    def _graph_cands(self) -> List[Tuple[None, int]]:
        """The graph loop's tuning candidates, (None, tiles): the user's first (tiles 1
        with bernoulli_tiles=True), then with tune_builds and bernoulli_tiles None (and a
        tile table) the graph loop with the tile kernel in every step."""
        user = (None, 1 if self._tiles_forced else 0)
        if self._tiles_tuned and self._n_tile_entries:
            return [user, (None, 1)]
        return [user]

    @property
    def _tune_grids(self) -> Tuple[int, ...]:
        """The grids on which auto times the user's build (its own first)."""
        return tuple(g for b, g in self._tune_cands if b is self._main_build)

    def _fall_back_persistent(self, why: str) -> None:
        self.persistent_error = why
        self._tune = False
        self.loop_mode = "graph" if self._use_graph else "launch"
        self.persistent_grid = 0
        self._tune_cands = []
        log.warning("persistent step kernel unavailable, using the %s loop: %s",
                    self.loop_mode, why)
        if self.loop_mode == "graph" and self._state.graph_api is None:
            try:
                self._state.graph_api = GraphAPI()
            except GraphUnavailable as e:
                self._fall_back(str(e))

    def _upload(self, name: str, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr)
        if arr.nbytes > self.plan.buffers[name]:
            raise AssertionError(f"{name}: {arr.nbytes} bytes exceed the plan's "
                                 f"{self.plan.buffers[name]}")
        if arr.nbytes:
            self._drv.memcpy_htod(self._state.buffers[name], arr)

    def _build_csr_device(self) -> None:
        drv, cnet, buf = self._drv, self.cnet, self._state.buffers
        n_projs, rows = len(cnet.projs), self.plan.n_rows
        cap = self.plan.n_synapses_bound
        drv.memset_d8(buf["csr_indptr"], 0, self.plan.buffers["csr_indptr"])
        kc, kf = self._k["pp_build_csr_count"], self._k["pp_build_csr_fill"]
        grid = (propagation_grid(self.n_sm, kc.num_regs), 1)
        if rows:
            kc.prepared_async_call(grid, (256, 1, 1), self._stream, int(buf["projs"]),
                                   np.uint32(n_projs), int(buf["csr_row_base"]),
                                   int(buf["rowlen"]), int(buf["sampler_tables"]),
                                   np.uint32(cnet.seed), int(buf["csr_indptr"]),
                                   int(buf["ctrl"]))
        self._sync("pp_build_csr_count", 0, 0)
        self._check_errors(self._read_ctrl())
        indptr = np.empty(rows + 1, np.int64)
        drv.memcpy_dtoh(indptr, buf["csr_indptr"])
        np.cumsum(indptr, out=indptr)
        total = int(indptr[-1])
        if total > cap:
            raise CUDAKernelError(f"stored CSR: {total:,d} synapses exceed the planned bound "
                                  f"{cap:,d} (expected + 10 sd); this should never happen")
        drv.memcpy_htod(buf["csr_indptr"], indptr)
        if rows:
            grid = (propagation_grid(self.n_sm, kf.num_regs), 1)
            kf.prepared_async_call(grid, (256, 1, 1), self._stream, int(buf["projs"]),
                                   np.uint32(n_projs), int(buf["csr_row_base"]),
                                   int(buf["rowlen"]), int(buf["sampler_tables"]),
                                   np.uint32(cnet.seed), int(buf["csr_indptr"]), np.uint64(cap),
                                   int(buf["csr_targets"]), int(buf["csr_weights"]),
                                   int(buf["csr_delays"]), int(buf["ctrl"]))
        self._sync("pp_build_csr_fill", 0, 0)
        self._check_errors(self._read_ctrl())
        self.n_synapses_stored = total

    def _build_csr_host(self) -> None:
        cnet = self.cnet
        cap = self.plan.n_synapses_bound
        parts = [materialise(cnet, k) for k in range(len(cnet.projs))]
        counts = [np.diff(p[0]) for p in parts]
        indptr = np.concatenate([[0]] + counts).astype(np.int64) if parts else np.zeros(1, np.int64)
        np.cumsum(indptr, out=indptr)
        total = int(indptr[-1])
        if total > cap:
            raise CUDAKernelError(f"stored CSR: {total:,d} synapses exceed the planned bound {cap:,d}")
        self._upload("csr_indptr", indptr)
        if total:
            self._upload("csr_targets", np.concatenate([p[1] for p in parts]).astype(np.uint32))
            self._upload("csr_weights", np.concatenate([p[2] for p in parts]).astype(np.int32))
            self._upload("csr_delays", np.concatenate([p[3] for p in parts]).astype(np.uint16))
        self.n_synapses_stored = total

    def csr_host(self) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The device CSR per projection as (indptr, targets, weights, delays) --
        the layout of :func:`pyproc.connectivity.materialise` (stored only)."""
        if self.connectivity != "stored":
            raise ValueError("csr_host: only stored connectivity has a CSR")
        drv, buf = self._drv, self._state.buffers
        with self._Active(self):
            rows = self.plan.n_rows
            indptr = np.empty(rows + 1, np.int64)
            drv.memcpy_dtoh(indptr, buf["csr_indptr"])
            S = int(indptr[-1])
            tg, w, d = np.empty(S, np.uint32), np.empty(S, np.int32), np.empty(S, np.uint16)
            if S:
                drv.memcpy_dtoh(tg, buf["csr_targets"])
                drv.memcpy_dtoh(w, buf["csr_weights"])
                drv.memcpy_dtoh(d, buf["csr_delays"])
        out = []
        rb = self._tabs["row_base"].astype(np.int64)
        for k in range(len(self.cnet.projs)):
            ip = indptr[rb[k]:rb[k + 1] + 1]
            a, b = int(ip[0]), int(ip[-1])
            out.append((ip - a, tg[a:b], w[a:b], d[a:b].astype(np.int32)))
        return out

    # -- launching ----------------------------------------------------------
    def _step_launches(self) -> tuple:
        """The per-step loops' kernels of one step, (name, grid, block, args, shared):
        the neuron update, the propagation, the record advance; with ``step_tiles`` the
        tile kernel in every step (it returns at once on an empty spike list; there is no
        tile_min_spikes here: the host does not know a step's spikes when it enqueues it)
        and the per-spike kernel on the projections left out of the tiles.  Built once per
        setting (the per-step launch loop asks every step)."""
        cached = self._launch_lists.get(self.step_tiles)
        if cached is not None:
            return cached
        prop = ((self._prop_name, self._prop_grid, 256, self._args_prop, 0),)
        if self.step_tiles:
            prop = (("pp_propagate_procedural_tiles", self._tile_grid, 256, self._args_tiles,
                     self._tile_table_smem),
                    (self._prop_name, self._prop_grid, 256, self._args_prop_gen, 0))
        out = (("pp_neuron_lif_update", self._n_blocks, NEURON_BLOCK, self._args_neuron, 0),
               *prop, ("pp_record_advance", 1, 1, self._args_adv, 0))
        self._launch_lists[self.step_tiles] = out
        return out

    def _enqueue(self, name: str, grid: int, block: int, args, shared: int) -> None:
        kw = {"shared_size": shared} if shared else {}
        self._k[name].prepared_async_call((grid, 1), (block, 1, 1), self._stream, *args, **kw)

    def _launch_step(self) -> None:
        for launch in self._step_launches():
            self._enqueue(*launch)

    def _launch_step_debug(self, step: int) -> None:
        for launch in self._step_launches():
            self._enqueue(*launch)
            name = launch[0]
            self._sync(name, step, step + 1)
            self._check_errors(self._read_ctrl(), name)

    def _fall_back(self, why: str) -> None:
        self.loop_mode = "launch"
        self.graph_error = why
        log.warning("CUDA graph unavailable, launching per step: %s", why)

    def _graph(self, m: int):
        key = (m, self.step_tiles)
        g = self._state.graphs.get(key)
        if g is None:
            api = self._state.graph_api

            def record():
                for _ in range(m):
                    self._launch_step()
            g = api.capture(self._stream.handle, record, (self._drv.Error,))
            self._state.graphs[key] = g
        return g

    def _advance(self, m: int) -> None:
        """Enqueue m steps (persistent kernel, graph, per-step launches, or debug)."""
        if self.loop_mode == "persistent":
            try:
                self._persist_packed[1][-1].value = m            # n_steps, the last argument
                self._persist.launch_packed(self.persistent_grid, self._build.block,
                                            self._stream.handle, self._persist_packed,
                                            shared=self.persistent_smem)
            except CooperativeUnavailable as e:       # refused: nothing was enqueued
                # a fault in a launch queued before this one makes the driver refuse every
                # later launch with that fault's (sticky) error: report the fault, with
                # the steps it happened in, not a refusal
                self._sync("steps", self.step, self.step + self._queued)
                if self._tune_state is not None:   # a tuning candidate: this batch on
                    self._tune_state["refused"] = str(e)     # the graph (captured)
                    self.loop_mode = "graph"
                else:
                    self._fall_back_persistent(str(e))
            else:
                return
        if self.loop_mode == "graph":
            try:
                _, exe = self._graph(m)
            except GraphUnavailable as e:
                self._sync("steps", self.step, self.step + self._queued)
                self._fall_back(str(e))
            else:
                self._state.graph_api.replay(exe, self._stream.handle)
                return
        if self.loop_mode == "debug":
            for i in range(m):
                self._launch_step_debug(self.step + self._queued + i)
            return
        for _ in range(m):
            self._launch_step()

    def _sync(self, what: str, first: int, end: int) -> None:
        try:
            self._stream.synchronize()
        except self._drv.Error as e:
            where = (f"step {first}" if end <= first + 1 else f"steps {first}..{end - 1}")
            if what.startswith("graph") or what == "steps":
                names = ", ".join(n.format(prop=self._prop_name) for n in STEP_KERNELS)
                if self.loop_mode == "persistent":
                    names = self._persist.name
                if self._gathers or self._dc_switches:     # enqueued between the batches
                    names += ", pp_record_state and step-current copies"
                raise CUDAKernelError(
                    f"CUDA error in {where} (kernels {names}; loop {self.loop_mode}): {e}. "
                    "Rerun with debug=True to name the failing kernel and step") from e
            raise CUDAKernelError(f"CUDA error in kernel {what} at {where}: {e}") from e

    def _read_ctrl(self) -> np.ndarray:
        self._drv.memcpy_dtoh(self._ctrl_host, self._state.buffers["ctrl"])
        return self._ctrl_host[0]

    def _check_errors(self, ctrl, context: str = "") -> None:
        code = int(ctrl["err_code"])
        if code == 0:
            return
        step, info, aux = int(ctrl["err_step"]), int(ctrl["err_info"]), int(ctrl["err_aux"])
        kernel, what = ERROR_CODES.get(code, ("?", f"unknown error code {code}"))
        if code == 1:
            cnet = self.cnet
            i = int(np.searchsorted(cnet.pops["offset"].astype(np.int64), info, side="right")) - 1
            raise OverflowDetected(
                f"fixed-point input overflow at step {step}: population {cnet.pop_names[i]!r}, "
                f"neuron {info - int(cnet.pops[i]['offset'])}, channel "
                f"{'ex' if aux == 0 else 'in'}, exceeds int32 (kernel {kernel})")
        raise CUDAKernelError(f"kernel {kernel} failed at step {step}: {what} "
                              f"(info {info}, aux {aux})")

    # -- the loop -----------------------------------------------------------
    def run_steps(self, n_steps: int, record: List,
                  should_stop: Optional[Callable[[], bool]] = None) -> int:
        """Advance ``n_steps``; append (step, sorted global ids) of recorded spikes to
        ``record`` (one tuple per step with spikes, as the CPU backend's ids per step).
        ``should_stop()`` is polled before each graph of ``graph_steps`` steps.
        Returns the number of steps done."""
        n_steps = int(n_steps)
        done = 0
        self._queued = 0
        with self._Active(self):
            while done < n_steps:
                if should_stop is not None and should_stop():
                    break
                m = min(self.graph_steps, n_steps - done, self.record_chunk_steps - self._pending)
                m = min(m, steps_to_sample(self.step + self._queued, self._intervals) or m)
                if self._dc_switches:
                    m = min(m, self._switch_dc(self.step + self._queued) or m)
                if (self._tune and m == self._tune_m
                        and self.step + self._queued >= TUNE_WARMUP_BATCHES * m):
                    self._tune_batch(m)     # one timed batch of the next candidate
                else:
                    self._advance(m)
                if self._gathers:
                    self._sample_state(self.step + self._queued + m)
                self._queued += m
                self._pending += m
                done += m
                if self._pending >= self.record_chunk_steps:
                    self._drain(record)
            if self._queued or self._pending:
                self._drain(record)
        return done

    def _switch_dc(self, step: int) -> int:
        """Enqueue the step-current switches due before ``step`` runs (a copy of the new
        stretch into the population's dc fields, ordered on the stream between two
        batches); returns the steps to the next switch (0: none left)."""
        sw = self._dc_switches
        while self._dc_next < len(sw) and sw[self._dc_next][0] <= step:
            _, dest, src = sw[self._dc_next]
            self._drv.memcpy_dtod_async(dest, src, DC_DTYPE.itemsize, self._stream)
            self._dc_next += 1
        return sw[self._dc_next][0] - step if self._dc_next < len(sw) else 0

    def _sample_state(self, end: int) -> None:
        """Enqueue the state gathers of the samples after the step that ends at step count
        ``end`` (the batch just enqueued ends there), each into its row of the chunk."""
        k = self._k["pp_record_state"]
        for g, src, idx, out in self._gathers:
            if end % g.interval:
                continue
            row = samples_in(self._chunk_step0, end - self._chunk_step0, g.interval) - 1
            n = int(g.ids.size)
            k.prepared_async_call(((n + 255) // 256, 1), (256, 1, 1), self._stream, src, idx,
                                  np.uint32(n), out + 4 * row * n)

    def _drain_state(self, first: int, end: int) -> None:
        """Move the state samples of steps [first, end) (the stream is synchronised) to
        ``state_blocks``."""
        got = {}
        for g, _, _, out in self._gathers:
            k = samples_in(first, end - first, g.interval)
            if k:
                vals = np.empty((k, g.ids.size), np.float32)
                self._drv.memcpy_dtoh(vals, out)
                for gi, j, c0, c1 in g.parts:
                    got.setdefault(gi, np.empty((k, len(self.cnet.state[gi].raw),
                                                 c1 - c0), np.float32))[:, j, :] = vals[:, c0:c1]
        for gi, grp in enumerate(self.cnet.state):
            if gi in got:
                m = grp.interval
                steps = np.arange(first // m + 1, end // m + 1, dtype=np.int64) * m - 1
                self.state_blocks[gi].append((steps, got[gi]))

    def _tune_batch(self, m: int) -> None:
        """One timed batch of m steps of the loop tuning (persistent="auto").  The
        candidates -- the persistent loop with each (build, grid) of ``_tune_cands`` (the
        user's build on its grid and, for small networks, on one block per neuron block;
        with tune_builds the other builds on their grids), then the graph loop ((None,
        tiles): with tune_builds and bernoulli_tiles None also with the tile kernel) -- take
        turns, an untimed batch (one-time costs: a module's lazy load, a graph's upload)
        then TUNE_ROUNDS timed batches each, each with the device idle before it (taking
        turns cancels a slow drift of the activity); after the last batch the candidate
        with the smallest total is kept for the rest of the simulator's life.  A candidate
        whose cooperative launch is refused is left out (its turn ran on the graph loop);
        if every persistent candidate is, persistent_error gives the refusals.
        The batches are ordinary steps of the run (record chunks drain between them, a
        run_steps call may end between them); the spikes do not depend on the loop, the
        build or the grid, only the wall time does."""
        st = self._tune_state
        if st is None:
            graphs = self._graph_cands
            try:
                for _, tiles in graphs:      # capture first: not part of the timing
                    self.step_tiles = bool(tiles)
                    self._graph(m)
            except GraphUnavailable as e:
                self.graph_error = str(e)
                self._tune = False
                self.step_tiles = self._tiles_forced
                self._advance(m)
                return
            self.step_tiles = self._tiles_forced
            cands = list(self._tune_cands) + graphs
            st = self._tune_state = {"cands": cands, "times": [0.0] * len(cands),
                                     "batches": [0] * len(cands), "m": m, "refused": None}
        cands, times, batches = st["cands"], st["times"], st["batches"]
        # take turns: the candidate with the fewest batches (a refused one is out)
        live = [k for k in range(len(cands)) if times[k] != float("inf")]
        c = min(live, key=lambda k: (batches[k], k))
        build, grid = cands[c]
        if build is not None:
            self._use_build(build, grid)
        else:
            self.step_tiles = bool(grid)     # a graph candidate: (None, tiles)
        mode = "persistent" if build is not None else "graph"
        self._stream.synchronize()
        self.loop_mode = mode
        st["refused"] = None
        t0 = time.perf_counter()
        self._advance(m)
        self._stream.synchronize()
        dt = time.perf_counter() - t0
        if st["refused"] is not None:        # its cooperative launch refused: the graph ran
            times[c] = float("inf")
            st.setdefault("refusals", []).append(st["refused"])
            log.warning("loop tuning: %s refused, timing the others: %s",
                        self._tune_key(build, grid), st["refused"])
            live.remove(c)
        else:
            # a candidate's first batch is not timed: it pays one-time costs (a module's
            # lazy load, a graph's upload) that the run after the tuning does not
            if batches[c] > 0:
                times[c] += dt / (m * TUNE_ROUNDS)
            batches[c] += 1
        if all(batches[k] > TUNE_ROUNDS for k in live):
            self._finish_tuning(min(live, key=times.__getitem__))

    def _tune_key(self, build, grid) -> str:
        """A tuning candidate's name in loop_tuning."""
        if build is None:
            return "graph" if (build, grid) == self._graph_cands[0] else "graph_tiles"
        main = self._main_build
        k = "persistent" + ("" if build is main else "_" + build.label.replace("+", "_"))
        return k + ("" if grid == build.grid else f"_grid_{grid}")

    def _finish_tuning(self, best: int) -> None:
        """Keep candidate ``best`` of the tuning and record the timings in loop_tuning."""
        st, self._tune_state, self._tune = self._tune_state, None, False
        cands, times, main = st["cands"], st["times"], self._main_build
        build, grid = cands[best]
        self.step_tiles = self._tiles_forced
        if build is not None:
            self.loop_mode = "persistent"
            self._use_build(build, grid)
        else:
            self.loop_mode = "graph"
            self.step_tiles = bool(grid)
            if self.persistent_error is None:   # report the build and grid auto would run
                self._use_build(main, main.grid)
        key = self._tune_key
        if build is None and all(b is None or t == float("inf") for (b, _), t in zip(cands, times)):
            # every persistent candidate refused: as if the persistent loop were unavailable
            self.persistent_error = "; ".join(st.get("refusals", [])) or self.persistent_error
        self.loop_tuning = {key(*c) + "_s_per_step": t for c, t in zip(cands, times)}
        self.loop_tuning.update(steps_each=st["m"], untimed_batches_each=1,
                                chosen=key(build, grid),
                                grids=[g for b, g in cands if b is main])
        log.info("loop tuning over %d steps each: %s -> %s", st["m"],
                 ", ".join(f"{key(*c)} {t:.3g} s/step" for c, t in zip(cands, times)),
                 key(build, grid))

    def _drain(self, record: List) -> None:
        """Wait for the queued steps, check errors, move recorded spikes to ``record``.
        An error a kernel reports (an input overflow, a full spike list: not a fault)
        names its step; the steps before it ran as on the CPU, which stops at that same
        step, so their spikes and state samples are kept, as the CPU keeps them, and
        ``step`` is the error's step, before the error is raised.  ``n_events`` and
        ``n_spikes_total`` stay those of the last drain (the device's counts include
        steps after the error)."""
        drv, buf = self._drv, self._state.buffers
        first, end = self.step, self.step + self._queued
        self._sync("steps", first, end)
        ctrl = self._read_ctrl()
        if int(ctrl["err_code"]):
            stop = min(max(int(ctrl["err_step"]), first), end)
            self._move_spikes(record, ctrl, stop - first)
            if self._gathers:
                self._drain_state(first, stop)
            self.step = self._chunk_step0 = stop
            self._queued = self._pending = 0
            self._check_errors(ctrl)
        if int(ctrl["step"]) != end or int(ctrl["rec_steps"]) != self._pending:
            raise CUDAKernelError(f"device step counter {int(ctrl['step'])} / record steps "
                                  f"{int(ctrl['rec_steps'])} disagree with the host "
                                  f"({end} / {self._pending})")
        if int(ctrl["rec_lost"]):
            raise OverflowDetected(f"record buffer overflow in steps {self._chunk_step0}.."
                                   f"{end - 1}: {int(ctrl['rec_lost'])} spikes lost "
                                   "(cannot happen with the planned capacity)")
        self._move_spikes(record, ctrl, int(ctrl["rec_steps"]))
        if self._gathers:
            self._drain_state(first, end)
        # reset n_rec and rec_steps (offsets 36, 40) for the next chunk
        drv.memcpy_htod(int(buf["ctrl"]) + CTRL_DTYPE.fields["n_rec"][1],
                        np.zeros(2, np.uint32))
        self.n_events = int(ctrl["n_events"])
        self.n_spikes_total = int(ctrl["n_spikes"])
        self.step = end
        self._queued = 0
        self._pending = 0
        self._chunk_step0 = end

    def _move_spikes(self, record: List, ctrl, n_steps: int) -> None:
        """Append the recorded spikes of the chunk's first ``n_steps`` steps to ``record``
        (one (step, sorted global ids) per step with spikes)."""
        drv, buf = self._drv, self._state.buffers
        if n_steps <= 0 or not int(ctrl["n_rec"]):
            return
        ends = np.empty(n_steps, np.uint32)
        drv.memcpy_dtoh(ends, buf["rec_end"])
        ends = ends.astype(np.int64)
        n_rec = int(ends[-1])
        if n_rec:
            ids = np.empty(n_rec, np.uint32)
            drv.memcpy_dtoh(ids, buf["rec_ids"])
            starts = np.concatenate(([0], ends[:-1]))
            for i in np.flatnonzero(ends > starts):
                record.append((self._chunk_step0 + int(i),
                               np.sort(ids[starts[i]:ends[i]]).astype(np.int64)))

    # -- checkpoints ----------------------------------------------------------
    def get_state(self) -> dict:
        """The dynamic state at ``step`` (pyproc.checkpoint; between run_steps calls):
        V, Iex, Iin, ref (spike arrays' cursors in ref), the ring (int32), the counters."""
        n, drv, buf = self.cnet.n_neurons, self._drv, self._state.buffers
        out = {"step": self.step, "n_events": self.n_events, "n_spikes": self.n_spikes_total,
               "V": np.empty(n, np.float32), "Iex": np.empty(n, np.float32),
               "Iin": np.empty(n, np.float32), "ref": np.empty(n, np.int32)}
        ring = np.empty(self.cnet.ring_size, np.int32)
        with self._Active(self):
            self._sync("steps", self.step, self.step + self._queued)
            for name in ("V", "Iex", "Iin", "ref"):
                drv.memcpy_dtoh(out[name], buf[name])
            if ring.size:
                drv.memcpy_dtoh(ring, buf["ring"])
        out["ring"] = ring
        return out

    def set_state(self, st: dict) -> None:
        """Continue from ``st`` (get_state's layout, from either backend): the state
        arrays, the ring (int32 here: a checkpoint's values always fit, the CPU checks
        every step), the control block's step and counters, the population table with
        the step currents' first stretches (switched again up to ``step`` before the
        next batch)."""
        ring = np.asarray(st["ring"])
        if ring.size and np.abs(ring).max() > 2 ** 31 - 1:
            raise OverflowDetected("checkpoint ring holds input outside int32")
        ctrl = np.zeros(1, CTRL_DTYPE)
        ctrl["step"], ctrl["n_events"], ctrl["n_spikes"] = (int(st["step"]), int(st["n_events"]),
                                                            int(st["n_spikes"]))
        with self._Active(self):
            self._stream.synchronize()
            for name, dtype in (("V", np.float32), ("Iex", np.float32), ("Iin", np.float32),
                                ("ref", np.int32)):
                self._upload(name, np.asarray(st[name], dtype))
            self._upload("ring", ring.astype(np.int32))
            self._upload("ctrl", ctrl)
            self._upload("pops", self._tabs["pops"])
        self._dc_next = 0
        self.step = self._chunk_step0 = int(st["step"])
        self._queued = self._pending = 0
        self.n_events, self.n_spikes_total = int(st["n_events"]), int(st["n_spikes"])

    # -- benchmarks -----------------------------------------------------------
    def time_propagation(self, spikes: np.ndarray, repeats: int = 20,
                         tiles: Optional[bool] = None,
                         defines: Optional[Dict[str, int]] = None) -> Tuple[float, int]:
        """Time the propagation alone on a given spike list ((population, local) uint32
        pairs) at the current step; returns (seconds per propagation, events per
        propagation).  Procedural: with ``tiles`` (default: what the persistent kernel
        would do with that many spikes; True needs a tile table, i.e. bernoulli_tiles not
        False and a tiled projection) the tile kernel for the tiled projections
        followed by the per-spike kernel for the others, else the per-spike kernel for all.
        ``defines``: time the per-step kernels of a variant build instead (-D macros,
        e.g. ``{"PP_FLAT_WALK": 0}``: an A/B on the same spikes).  For benchmarks: each
        call delivers the spikes ``repeats + 1`` times into the ring, so the simulation
        state is spoiled (the simulator refuses run_steps afterwards)."""
        drv, buf = self._drv, self._state.buffers
        spikes = np.ascontiguousarray(spikes, dtype=np.uint32).reshape(-1, 2)
        if spikes.shape[0] > self.cnet.n_neurons:
            raise ValueError("more spikes than neurons")
        with self._Active(self):
            self._sync("steps", self.step, self.step)
            drv.memcpy_htod(buf["spikes"], spikes)
            ctrl = self._read_ctrl().copy()
            ev0 = int(ctrl["n_events"])
            drv.memcpy_htod(int(buf["ctrl"]) + CTRL_DTYPE.fields["n_spk"][1],
                            np.array([spikes.shape[0]], np.uint32))
            kk = (get_kernels([self._prop_name, "pp_propagate_procedural_tiles"]
                              if self.connectivity == "procedural" else [self._prop_name],
                              defines) if defines else self._k)
            k = kk[self._prop_name]
            if tiles is None:
                tiles = bool(self.n_tiles) and spikes.shape[0] >= self.tile_min_spikes
            tiles = bool(tiles) and self._n_tile_entries > 0
            self.last_propagation_tiles = tiles
            g, b = (self._prop_grid, 1), (256, 1, 1)

            def once():
                if tiles:
                    kk["pp_propagate_procedural_tiles"].prepared_async_call(
                        (self._tile_grid, 1), b, self._stream, *self._args_tiles,
                        shared_size=self._tile_table_smem)
                    k.prepared_async_call(g, b, self._stream, *self._args_prop_gen)
                else:
                    k.prepared_async_call(g, b, self._stream, *self._args_prop)
            start, stop = drv.Event(), drv.Event()
            once()                                            # warm-up
            start.record(self._stream)
            for _ in range(repeats):
                once()
            stop.record(self._stream)
            self._sync(self._prop_name, self.step, self.step + 1)
            sec = stop.time_since(start) * 1e-3 / repeats
            ctrl2 = self._read_ctrl()
            self._check_errors(ctrl2)
            events = (int(ctrl2["n_events"]) - ev0) // (repeats + 1)
        self.run_steps = self._spoiled          # type: ignore[method-assign]
        return sec, events

    def _spoiled(self, *a, **k):
        raise RuntimeError("time_propagation() changed the delay ring: make a new simulator")
