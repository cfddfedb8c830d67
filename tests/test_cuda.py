"""The CUDA backend on a GPU (marker ``gpu``; skipped with the reason without
PyCUDA or a device).  Exactness: with the same seed, CUDA procedural, CUDA
stored and CPU stored emit identical spikes (step by step) and deliver the same
number of synaptic events; the device CSR equals the NumPy materialisation;
Philox on the device matches the known answers."""
from __future__ import annotations

import os

import numpy as np
import pytest

import pyproc as pp
from pyproc import kernels
from pyproc.backends.cpu import CPUSimulator
from pyproc.connectivity import materialise
from pyproc.models import balanced
from pyproc.rules import decoder

from test_cuda_host import _poisson_mix

pytestmark = pytest.mark.gpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def cuda_ctx():
    """One CUDA context for the whole session; always popped and destroyed."""
    import pycuda.driver as drv
    drv.init()
    ctx = drv.Device(0).make_context()
    try:
        yield ctx
    finally:
        import gc
        gc.collect()
        kernels.forget_context(int(ctx.handle))
        drv.Context.pop()
        ctx.detach()


def _by_step(rec):
    out = {}
    for s, ids in rec:
        out.setdefault(int(s), []).append(np.asarray(ids, np.int64))
    return {s: np.sort(np.concatenate(v)).tolist() for s, v in out.items()}


_CPU_CACHE = {}


def _cpu_ref(key, cnet, steps):
    """The CPU reference's spikes by step, events and spike count (cached per process; and
    on disk in $PYPROC_TEST_REF_CACHE where set -- validation/gpu_flagships.sh sets a fresh
    folder per run, so its two pytest stages compute each reference once)."""
    if key not in _CPU_CACHE:
        import hashlib
        import pickle
        folder = os.environ.get("PYPROC_TEST_REF_CACHE")
        path = None
        if folder:
            h = hashlib.sha256(f"{key} {steps} {cnet.seed}".encode())
            for arr in (cnet.pops, cnet.projs, cnet.v0):
                h.update(np.ascontiguousarray(arr).tobytes())
            path = os.path.join(folder, h.hexdigest()[:24] + ".pkl")
            if os.path.exists(path):
                with open(path, "rb") as f:
                    _CPU_CACHE[key] = pickle.load(f)
                return _CPU_CACHE[key]
        sim = CPUSimulator(cnet, "stored")
        rec = []
        sim.run_steps(steps, rec)
        _CPU_CACHE[key] = (_by_step(rec), sim.n_events, sim.n_spikes_total)
        if path:
            os.makedirs(folder, exist_ok=True)
            with open(path + ".tmp", "wb") as f:
                pickle.dump(_CPU_CACHE[key], f)
            os.replace(path + ".tmp", path)
    return _CPU_CACHE[key]


def _cuda(cnet, connectivity, steps, ctx, **opt):
    from pyproc.backends.cuda import CUDASimulator
    with CUDASimulator(cnet, connectivity, context=ctx, **opt) as sim:
        rec = []
        done = sim.run_steps(steps, rec)
        assert done == steps and sim.step == steps
        why = sim.persistent_error or sim.graph_error
        return _by_step(rec), sim.n_events, sim.n_spikes_total, sim.loop_mode, why


def _decoder_net():
    net = pp.Network(dt=0.1, seed=5)
    net.add_population("S", 64, pp.LIF(tau_syn_ex=0.5, tau_syn_in=2.0),
                       v_init=pp.uniform(-70.0, -56.0))
    net.add_population("T", 32, pp.LIF(tau_syn_ex=1.0, tau_syn_in=3.0),
                       v_init=pp.uniform(-70.0, -56.0))
    net.connect("S", "T", decoder(), weight=pp.normal(120.0, 20.0), delay=pp.normal(1.0, 0.4))
    net.connect("T", "S", decoder(), weight=-60.0, delay=0.7)
    net.add_poisson("S", rate=8.0, K=2000, weight=87.8)
    return pp.compile_network(net)


def _mixed_net():
    """Every rule, constant and normal weights/delays, one- and two-channel targets,
    an unrecorded population."""
    net = pp.Network(dt=0.1, seed=11)
    net.add_population("A", 700, pp.LIF(tau_syn_ex=2.0, tau_syn_in=5.0, t_ref=1.0),
                       v_init=pp.uniform(-70.0, -54.0))
    net.add_population("B", 300, pp.LIF(tau_syn_ex=1.0, tau_syn_in=1.0, t_ref=0.0),
                       v_init=pp.uniform(-70.0, -56.0))
    net.add_population("C", 40, pp.LIF(), record=False, v_init=pp.uniform(-70.0, -54.0))
    net.connect("A", "B", pp.fixed_total_number(20000), weight=pp.normal(60.0, 5.0), delay=1.0)
    net.connect("B", "A", pp.pairwise_bernoulli(0.3), weight=-40.0, delay=pp.normal(0.8, 0.3))
    net.connect("A", "A", pp.fixed_outdegree(50, allow_autapses=False), weight=50.0, delay=0.5)
    net.connect("A", "C", decoder(), weight=300.0, delay=0.2)
    net.connect("C", "A", pp.pairwise_bernoulli(0.5, allow_autapses=False), weight=30.0,
                delay=0.3)
    net.connect("B", "B", pp.pairwise_bernoulli(0.05, allow_autapses=False),
                weight=pp.normal(-30.0, 3.0), delay=pp.normal(1.5, 0.5))
    net.add_poisson("A", rate=8.0, K=1000, weight=40.0)
    net.add_poisson("B", rate=8.0, K=1000, weight=60.0)
    return pp.compile_network(net)


def _kat_rows():
    path = os.path.join(ROOT, "tests", "data", "philox_kat.txt")
    if os.path.exists(path):
        out = []
        with open(path) as f:
            for line in f:
                line = line.split("#", 1)[0].split()
                if len(line) == 10:
                    out.append([int(x, 16) for x in line])
        if out:
            return np.array(out, np.uint32)
    # Random123 kat_vectors, philox4x32_10
    return np.array([[0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
                     [0xffffffff] * 6 + [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
                    np.uint32)


def test_philox_known_answers_on_device(cuda_ctx):
    import pycuda.driver as drv
    from pycuda.compiler import SourceModule
    src = ('#include "philox.cuh"\n'
           'extern "C" __global__ void kat(const uint32_t *in, uint32_t *out, int n) {\n'
           '  int i = blockIdx.x * blockDim.x + threadIdx.x; if (i >= n) return;\n'
           '  const uint32_t *c = in + 10 * i;\n'
           '  pp_u32x4 r = pp_philox4x32_10(c[0], c[1], c[2], c[3], c[4], c[5]);\n'
           '  for (int k = 0; k < 4; ++k) out[4 * i + k] = r.v[k];\n}\n')
    mod = SourceModule(src, no_extern_c=True, include_dirs=[kernels.kernel_dir()],
                       options=kernels.compile_options())
    kat = _kat_rows()
    out = np.zeros((len(kat), 4), np.uint32)
    mod.get_function("kat")(drv.In(np.ascontiguousarray(kat)), drv.Out(out),
                            np.int32(len(kat)), block=(64, 1, 1), grid=(1, 1))
    assert (out == kat[:, 6:]).all()


def test_device_csr_equals_materialise(cuda_ctx):
    from pyproc.backends.cuda import CUDASimulator
    cnet = _mixed_net()
    with CUDASimulator(cnet, "stored", context=cuda_ctx) as sim:
        got = sim.csr_host()
        assert sim.n_synapses_stored == sum(int(g[0][-1]) for g in got)
    for k in range(len(cnet.projs)):
        want = materialise(cnet, k)
        for a, b, what in zip(got[k], want, ("indptr", "targets", "weights", "delays")):
            assert np.array_equal(a.astype(np.int64), b.astype(np.int64)), \
                f"projection {cnet.proj_names[k]}: {what} differ"


CASES = {
    "decoder": (_decoder_net, 3000),
    "mixed": (_mixed_net, 2000),
    "balanced2000": (lambda: pp.compile_network(balanced(2000, dt=0.1)), 10000),
}


def _microcircuit():
    try:
        from pyproc.models import microcircuit
    except ImportError:
        pytest.skip("pyproc.models.microcircuit not available")
    return pp.compile_network(microcircuit(0.05, dt=0.1))


CASES["microcircuit5"] = (_microcircuit, 10000)
# up to four Poisson inputs per population, one input's tables past the shared copy
CASES["poisson_mix"] = (lambda: _poisson_mix(3000, 600), 3000)


@pytest.mark.parametrize("loop", ["persistent", "graph"])
@pytest.mark.parametrize("case", list(CASES))
def test_identical_spikes(cuda_ctx, case, loop):
    build, steps = CASES[case]
    cnet = build()
    want, ev, nspk = _cpu_ref(case, cnet, steps)
    assert nspk > 0
    modes = []
    for conn in ("procedural", "stored"):
        got, ev_g, nspk_g, mode, why = _cuda(cnet, conn, steps, cuda_ctx,
                                             persistent=(loop == "persistent"))
        modes.append((mode, why))
        assert nspk_g == nspk, f"{case} {conn}: {nspk_g} spikes, CPU {nspk}"
        if got != want:
            bad = min(s for s in set(got) | set(want) if got.get(s) != want.get(s))
            pytest.fail(f"{case} {conn}: first difference at step {bad}: "
                        f"GPU {got.get(bad)} CPU {want.get(bad)}")
        assert ev_g == ev, f"{case} {conn}: {ev_g} events, CPU {ev}"
    # exact either way; but the loop asked for should be the loop that ran (a persistent
    # cooperative kernel, or a CUDA graph), not a fallback to per-step launches
    assert all(m == loop for m, _ in modes), f"{loop} loop not used: {modes}"


def test_loop_modes_agree(cuda_ctx):
    cnet = _mixed_net()
    want, ev, _ = _cpu_ref("mixed", cnet, 2000)
    short = {s: v for s, v in want.items() if s < 300}
    for opt in ({"use_graph": False, "persistent": False}, {"debug": True},
                {"record_chunk_steps": 7, "graph_steps": 3},
                {"record_chunk_steps": 7, "graph_steps": 3, "persistent": False},
                {"persistent_blocks_per_sm": 1}, {"persistent_blocks_per_sm": 99},
                {"prop_blocks": 5, "persistent": False},
                {"persistent": "auto", "graph_steps": 20, "record_chunk_steps": 100}):
        got, _, _, mode, why = _cuda(cnet, "procedural", 300, cuda_ctx, **opt)
        assert got == short, (opt, mode, why)


@pytest.mark.parametrize("case", ["mixed", "balanced2000"])
def test_tiles_identical_spikes(cuda_ctx, case):
    """tile_min_spikes=1: every step with a spike delivers the bernoulli projections with a
    constant delay by shared-memory tiles (persistent kernel); spikes and events equal the
    CPU reference.  Also without tiles, and on a smaller grid (another work split); and
    the graph loop with the tile kernel in every step."""
    build, steps = CASES[case]
    cnet = build()
    want, ev, _ = _cpu_ref(case, cnet, steps)
    for opt in ({"tile_min_spikes": 1, "bernoulli_tiles": True}, {"bernoulli_tiles": False},
                {"tile_min_spikes": 1, "bernoulli_tiles": True, "persistent_blocks_per_sm": 1},
                {"tile_min_spikes": 1, "bernoulli_tiles": True, "persistent_blocks_per_sm": 99}):
        got, ev_g, _, mode, why = _cuda(cnet, "procedural", steps, cuda_ctx, persistent=True,
                                        **opt)
        assert mode == "persistent", why
        assert got == want and ev_g == ev, opt
    got, ev_g, _, mode, why = _cuda(cnet, "procedural", steps, cuda_ctx, persistent=False,
                                    bernoulli_tiles=True)
    assert mode == "graph", why
    assert got == want and ev_g == ev, "graph loop with tiles"


@pytest.mark.parametrize("case", ["mixed", "balanced2000", "microcircuit5"])
def test_shared_tables_identical_spikes(cuda_ctx, case):
    """shared_tables=True (the PP_SHARED_TABLES build: network and sampler tables copied to
    shared memory by every persistent block): spikes and events equal the CPU reference,
    both connectivities, also with small launches and record chunks (mixed)."""
    build, steps = CASES[case]
    cnet = build()
    want, ev, _ = _cpu_ref(case, cnet, steps)
    for conn in ("procedural", "stored"):
        got, ev_g, _, mode, why = _cuda(cnet, conn, steps, cuda_ctx, persistent=True,
                                        shared_tables=True)
        assert mode == "persistent", why
        assert got == want and ev_g == ev, conn
    if case == "mixed":
        got, ev_g, _, mode, why = _cuda(cnet, "procedural", steps, cuda_ctx, persistent=True,
                                        shared_tables=True, record_chunk_steps=7, graph_steps=3)
        assert mode == "persistent", why
        assert got == want and ev_g == ev


@pytest.mark.parametrize("opt", [{}, {"shared_tables": True}, {"graph_steps": 7}])
def test_pipelined_identical_spikes(cuda_ctx, opt):
    """pipelined=True (one barrier per step: step t's neuron phase beside step t - 1's
    propagation; balanced 2,000 has 15-step delays): spikes and events equal the CPU
    reference, both connectivities, with launches of odd lengths."""
    build, steps = CASES["balanced2000"]
    cnet = build()
    want, ev, _ = _cpu_ref("balanced2000", cnet, steps)
    for conn in ("procedural", "stored"):
        got, ev_g, _, mode, why = _cuda(cnet, conn, steps, cuda_ctx, persistent=True,
                                        pipelined=True, **opt)
        assert mode == "persistent", why
        assert got == want and ev_g == ev, (conn, opt)


@pytest.mark.parametrize("case", ["decoder", "mixed", "balanced2000", "microcircuit5"])
def test_unit_map_identical_spikes(cuda_ctx, case):
    """unit_map=True (the PP_UNIT_MAP build: every block resolves the step's items, warps take
    32-synapse units by binary search): spikes and events equal the CPU reference, both
    connectivities, on all the blocks that fit and (procedural) on one block per SM
    (another unit distribution)."""
    build, steps = CASES[case]
    cnet = build()
    want, ev, _ = _cpu_ref(case, cnet, steps)
    for conn, opt in (("procedural", {"persistent_blocks_per_sm": 99}),
                      ("procedural", {"persistent_blocks_per_sm": 1}), ("stored", {})):
        got, ev_g, _, mode, why = _cuda(cnet, conn, steps, cuda_ctx, persistent=True,
                                        unit_map=True, **opt)
        assert mode == "persistent", why
        assert got == want and ev_g == ev, (conn, opt)


@pytest.mark.parametrize("case", ["mixed", "balanced2000"])
def test_persistent_grid_identical_spikes(cuda_ctx, case):
    """persistent_grid: one block (the barrier is __syncthreads; the neuron phase
    grid-stride) and one block per neuron block (resident), both connectivities, pipelined
    on one block where the delays allow; and persistent="auto", which times the grid of
    one block per neuron block too (balanced 2,000: 9 neuron blocks against the default
    grid of one block per SM): spikes and events equal the CPU reference."""
    from pyproc.backends.cuda import CUDASimulator
    build, steps = CASES[case]
    cnet = build()
    want, ev, _ = _cpu_ref(case, cnet, steps)
    from pyproc.plan import neuron_blocks
    n_blocks = int(neuron_blocks(cnet).sum())
    runs = [(conn, {"persistent_grid": g}) for conn in ("procedural", "stored")
            for g in (1, n_blocks)]
    if case == "balanced2000":
        runs.append(("procedural", {"persistent_grid": 1, "pipelined": True}))
    for conn, opt in runs:
        got, ev_g, _, mode, why = _cuda(cnet, conn, steps, cuda_ctx, persistent=True, **opt)
        assert mode == "persistent", why
        assert got == want and ev_g == ev, (conn, opt)
    with CUDASimulator(cnet, "procedural", context=cuda_ctx, graph_steps=50) as sim:
        assert n_blocks in sim._tune_grids
        rec = []
        sim.run_steps(steps, rec)
        assert sim.loop_tuning is not None and sim.loop_tuning["grids"] == list(sim._tune_grids)
        assert _by_step(rec) == want and sim.n_events == ev


@pytest.mark.parametrize("case", ["mixed", "balanced2000", "microcircuit5"])
def test_tune_builds_identical_spikes(cuda_ctx, case):
    """persistent="auto" with tune_builds=True: the default, shared-tables, unit-map, both
    and throughput builds, procedural also the default build and the graph loop with
    tiles, and the graph loop take turns mid-run on the same device state, and the run
    goes on with the fastest: spikes and events equal the CPU reference, both
    connectivities."""
    from pyproc.backends.cuda import CUDASimulator
    build, steps = CASES[case]
    cnet = build()
    want, ev, _ = _cpu_ref(case, cnet, steps)
    for conn in ("procedural", "stored"):
        with CUDASimulator(cnet, conn, context=cuda_ctx, graph_steps=50,
                           tune_builds=True) as sim:
            assert len(sim._tune_cands) >= 4, [b.label for b, _ in sim._tune_cands]
            rec = []
            sim.run_steps(steps, rec)
            assert sim.loop_tuning is not None, (sim.persistent_error, sim.graph_error)
            assert _by_step(rec) == want and sim.n_events == ev, (conn, sim.loop_tuning)


@pytest.mark.parametrize("case", ["mixed", "balanced2000", "microcircuit5"])
def test_throughput_build_identical_spikes(cuda_ctx, case):
    """throughput_build=True (the persistent kernel at 64 registers, 4 blocks per SM, lane
    walks only): spikes and events equal the CPU reference, both connectivities, on the
    grid it picks and on all the blocks that fit (4 per SM: the register budget holds on
    the card), pipelined too where the delays allow (balanced 2,000)."""
    from pyproc.backends.cuda import CUDASimulator
    build, steps = CASES[case]
    cnet = build()
    want, ev, _ = _cpu_ref(case, cnet, steps)
    runs = [("procedural", {}), ("procedural", {"persistent_blocks_per_sm": 99}),
            ("stored", {})]
    if case == "balanced2000":
        runs.append(("procedural", {"pipelined": True}))
    for conn, opt in runs:
        with CUDASimulator(cnet, conn, context=cuda_ctx, persistent=True,
                           throughput_build=True, **opt) as sim:
            rec = []
            sim.run_steps(steps, rec)
            assert sim.loop_mode == "persistent", sim.persistent_error
            assert _by_step(rec) == want and sim.n_events == ev, (conn, opt)
            if "persistent_blocks_per_sm" in opt:
                assert sim.persistent_grid == 4 * sim.n_sm, (sim.persistent_grid, sim.n_sm)


@pytest.mark.parametrize("case", ["decoder", "mixed", "balanced2000", "balanced1000"])
def test_one_block_identical_spikes(cuda_ctx, case):
    """one_block=True (the whole network on one block of 512 threads, ring, spike lists and
    neuron state in shared memory, copied in and out at every launch): spikes and events
    equal the CPU reference, both connectivities, pipelined too where the delays allow
    (balanced 2,000 and 1,000), and with launches of 7 steps (many copies in and out).
    A network that does not fit the device's shared memory per block (the mixed network
    needs 233,040 bytes, an H100/H200 block has 232,448) is refused with a ValueError
    before anything runs -- checked against the device's own limit."""
    import pycuda.driver as drv
    from pyproc.backends.cuda import CUDASimulator, one_block_smem_bytes
    if case == "balanced1000":           # bench (c)'s network
        build, steps = (lambda: pp.compile_network(balanced(1000, dt=0.1))), 10000
    else:
        build, steps = CASES[case]
    cnet = build()
    limit = cuda_ctx.get_device().get_attribute(
        drv.device_attribute.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
    pipelined = case.startswith("balanced")
    if one_block_smem_bytes(cnet, 2 if pipelined else 1) > limit:
        with pytest.raises(ValueError, match="one_block=True: the delay ring"):
            CUDASimulator(cnet, "procedural", context=cuda_ctx, persistent=True,
                          one_block=True)
        return
    want, ev, _ = _cpu_ref(case, cnet, steps)
    runs = [("procedural", {}), ("stored", {}), ("procedural", {"graph_steps": 7})]
    if pipelined:
        runs += [("procedural", {"pipelined": True}), ("stored", {"pipelined": True})]
    for conn, opt in runs:
        with CUDASimulator(cnet, conn, context=cuda_ctx, persistent=True, one_block=True,
                           **opt) as sim:
            rec = []
            sim.run_steps(steps, rec)
            assert sim.loop_mode == "persistent", sim.persistent_error
            assert sim.persistent_grid == 1 and sim.one_block
            assert _by_step(rec) == want and sim.n_events == ev, (conn, opt)


def test_unit_map_both_bernoulli_modes(cuda_ctx):
    """Balanced 10,000 at dt 1 ms on one block per SM (1 to ~500 spikes per step): some
    unit-mapped steps have few enough bernoulli segments for whole-warp segments, others
    not (lane walks), and the largest steps exceed 1,024 items (pp_procedural_phase) --
    checked from the reference's spike counts; the spikes and events equal the CPU
    reference through all three."""
    from pyproc.backends.cuda import CUDASimulator
    cnet = pp.compile_network(balanced(10000, dt=1.0))
    steps = 300
    want, ev, _ = _cpu_ref("balanced10k_dt1", cnet, steps)
    with CUDASimulator(cnet, "procedural", context=cuda_ctx, persistent=True, unit_map=True,
                       persistent_blocks_per_sm=1) as sim:
        rec = []
        sim.run_steps(steps, rec)
        assert sim.loop_mode == "persistent", sim.persistent_error
        assert _by_step(rec) == want and sim.n_events == ev
        n_warps = sim.persistent_grid * 256 // 32
    segs = int(cnet.projs["n_seg"][cnet.projs["src_pop"] == 0].sum())   # E spikes' segments
    ns = np.array([len(v) for v in want.values()])
    unit = 2 * ns <= 4 * 256                                # items <= PP_UNIT_MAX_ITEMS
    assert (unit & (ns * segs > 4 * n_warps)).any() and (unit & (ns * segs <= 4 * n_warps)).any()
    assert (~unit).any()


def test_time_propagation_tiles_equal_per_spike(cuda_ctx):
    """The propagation benchmark: tile kernel + per-spike kernel on the rest leave the same
    ring and count the same events as the per-spike kernel on everything (1,024 spikes),
    and so does the tile kernel that takes spikes from the global list (PP_TILE_COMPACT=0,
    bench (b)'s A/B)."""
    import pycuda.driver as drv
    from pyproc.backends.cuda import CUDASimulator
    cnet = pp.compile_network(balanced(20000, dt=1.0))
    rng = np.random.default_rng(3)
    spikes = cnet.spike_pairs(np.sort(rng.choice(cnet.n_neurons, 1024, replace=False)))
    rings, events = [], []
    for tiles, defines in ((True, None), (True, {"PP_TILE_COMPACT": 0}), (False, None)):
        with CUDASimulator(cnet, "procedural", context=cuda_ctx, bernoulli_tiles=True) as sim:
            sec, ev = sim.time_propagation(spikes, repeats=3, tiles=tiles, defines=defines)
            assert sim.last_propagation_tiles == tiles and sim.n_tiles > 0
            cuda_ctx.push()
            try:
                rings.append(drv.from_device(sim._state.buffers["ring"], (cnet.ring_size,),
                                             np.int32))
            finally:
                drv.Context.pop()
            events.append(ev)
    assert events[0] == events[1] == events[2] > 0
    assert np.array_equal(rings[0], rings[2]) and np.array_equal(rings[1], rings[2])


def test_bernoulli_lane_walk_several_segments(cuda_ctx):
    """Lanes that walk several bernoulli segments each (the flat constant-delay walk and
    the segment-by-segment walk of random delays; one block of 8 warps) leave the NumPy
    twin's ring and count its synapses, and so does the old walk (PP_FLAT_WALK=0, bench
    (b)'s A/B).  The flagship networks' GPU tests give a lane one segment at most."""
    import pycuda.driver as drv
    from pyproc.backends.cuda import CUDASimulator
    from kernel_example import long_bernoulli, twin_ring
    cnet, spikes = long_bernoulli()
    want, n_syn = twin_ring(cnet, spikes)
    for defines in (None, {"PP_FLAT_WALK": 0}):
        with CUDASimulator(cnet, "procedural", context=cuda_ctx, persistent=False,
                           prop_blocks=1) as sim:
            _, ev = sim.time_propagation(spikes, repeats=2, tiles=False, defines=defines)
            cuda_ctx.push()
            try:
                ring = drv.from_device(sim._state.buffers["ring"], (cnet.ring_size,), np.int32)
            finally:
                drv.Context.pop()
        assert ev == n_syn > 100_000, defines
        np.testing.assert_array_equal(ring, 3 * want, err_msg=str(defines))


def test_simulation_front_end(cuda_ctx):
    net = balanced(500, dt=0.1)
    a = pp.Simulation(net, backend="cpu", connectivity="stored").run(200.0)
    sim = pp.Simulation(net, backend="cuda", connectivity="procedural", context=cuda_ctx)
    try:
        b = sim.run(200.0)
    finally:
        sim.sim.close()
    assert np.array_equal(a.senders, b.senders) and np.array_equal(a.times, b.times)
    assert a.meta["synaptic_events"] == b.meta["synaptic_events"]


@pytest.mark.parametrize("opt", [{"persistent": True}, {"persistent": False},
                                 {"one_block": True, "persistent": True},
                                 {"shared_tables": True, "persistent": True},
                                 {"persistent": "auto"}])
def test_state_recording_identical(cuda_ctx, opt):
    """Network.record_state and changing step currents on the GPU: V_m, I_syn_ex,
    I_syn_in, I_syn samples equal the CPU reference's bit for bit (pp_record_state between
    batches cut at sample steps, step-current stretches copied into the population table
    between batches), in the persistent loop (resident phase), the graph loop, the
    one-block and shared-tables builds, and with the loop tuning (batches of 1 step)."""
    from test_state import _assert_same_state, _recorded
    cnet = _recorded()
    want = pp.Simulation(cnet, backend="cpu", connectivity="stored").run(300.0)
    sim = pp.Simulation(cnet, backend="cuda", connectivity="procedural", context=cuda_ctx,
                        **opt)
    try:
        got = sim.run(300.0)
        mode = sim.sim.loop_mode
    finally:
        sim.sim.close()
    if opt["persistent"] != "auto":
        assert mode == ("persistent" if opt["persistent"] else "graph"), mode
    _assert_same_state(got.state, want.state)
    assert np.array_equal(got.senders, want.senders) and np.array_equal(got.times, want.times)


@pytest.mark.parametrize("persistent", [True, False])
def test_checkpoint_across_backends(cuda_ctx, tmp_path, persistent):
    """Simulation.checkpoint / restore on the GPU: a CPU checkpoint at 61.3 ms continued
    on the GPU to 150 ms, checkpointed there and continued on the CPU to 300 ms, gives
    the spikes, samples and events of one uninterrupted CPU run."""
    from test_checkpoint import _same
    from test_state import _recorded
    cnet = _recorded()
    want = pp.Simulation(cnet, backend="cpu", connectivity="stored").run(300.0)
    a = pp.Simulation(cnet, backend="cpu", connectivity="procedural")
    a.run(61.3)
    a.checkpoint(str(tmp_path / "a.npz"))
    b = pp.Simulation(cnet, backend="cuda", connectivity="procedural", context=cuda_ctx,
                      persistent=persistent)
    try:
        b.restore(str(tmp_path / "a.npz"))
        b.run(88.7)
        b.checkpoint(str(tmp_path / "b.npz"))
    finally:
        b.sim.close()
    c = pp.Simulation(cnet, backend="cpu", connectivity="stored")
    c.restore(str(tmp_path / "b.npz"))
    _same(c.run(150.0), want)


def test_kernel_check_names_kernel_and_step(cuda_ctx):
    from pyproc.backends.cuda import CUDAKernelError, CUDASimulator
    import pycuda.driver as drv
    cnet = _decoder_net()
    with CUDASimulator(cnet, "procedural", context=cuda_ctx) as sim:
        bad = cnet.projs.copy()
        bad["rule"][0] = 9                           # an unknown rule id, on the device only
        cuda_ctx.push()
        try:
            drv.memcpy_htod(sim._state.buffers["projs"], bad)
        finally:
            drv.Context.pop()
        with pytest.raises(CUDAKernelError, match=r"pp_propagate.*step \d+"):
            sim.run_steps(500, [])


def test_readme_example_runs(cuda_ctx):
    """The module docstring of pyproc.kernels (README example) runs and its ring equals
    the NumPy twin's."""
    from kernel_example import run_example, twin_ring
    ns = run_example()
    ring, n = twin_ring(ns["cnet"], ns["spikes"])
    assert np.array_equal(ns["ring_host"].astype(np.int64), ring) and n > 0
