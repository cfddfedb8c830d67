"""Host side of the CUDA backend without a GPU: a fake ``pycuda`` whose kernels
are NumPy emulations of the .cu files (reading their arguments by position from
a bounds-checked fake device memory).  This checks what a GPU run cannot show
cheaply: argument packing against the documented layouts, buffer sizes against
the plan, the graph / per-step fallback paths, chunked record draining, step
counting, error reporting and context push/pop balance.  The kernels' device
code itself is checked by tests/test_cuda.py on a GPU."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import pyproc as pp
from pyproc.backends import cuda as CU
from pyproc.backends.cpu import CPUSimulator
from pyproc.errors import BackendUnavailable, OverflowDetected
from pyproc.kernels import CooperativeUnavailable
from pyproc.models import balanced
from pyproc.rules import decoder

from fake_pycuda import FakeCooperative, FakeError, FakeGraphs, fake  # noqa: F401  (fake: a fixture)


# ---------------------------------------------------------------- networks
def _mixed():
    net = pp.Network(dt=0.1, seed=11)
    net.add_population("A", 300, pp.LIF(tau_syn_ex=2.0, tau_syn_in=5.0, t_ref=1.0),
                       v_init=pp.uniform(-70.0, -54.0))
    net.add_population("B", 60, pp.LIF(tau_syn_ex=1.0, tau_syn_in=1.0, t_ref=0.0),
                       v_init=pp.uniform(-70.0, -56.0))
    net.add_population("C", 40, pp.LIF(), record=False, v_init=pp.uniform(-70.0, -54.0))
    net.connect("A", "B", pp.fixed_total_number(2000), weight=pp.normal(60.0, 5.0), delay=1.0)
    net.connect("B", "A", pp.pairwise_bernoulli(0.3), weight=-40.0, delay=pp.normal(0.8, 0.3))
    net.connect("A", "A", pp.fixed_outdegree(20, allow_autapses=False), weight=50.0, delay=0.5)
    net.connect("A", "C", decoder(), weight=300.0, delay=0.2)
    net.connect("C", "A", pp.pairwise_bernoulli(0.5, allow_autapses=False), weight=30.0,
                delay=0.3)
    net.add_poisson("A", rate=8.0, K=1000, weight=40.0)
    net.add_poisson("B", rate=8.0, K=1000, weight=60.0)
    return pp.compile_network(net)


def _poisson_mix(n_a=300, n_b=60):
    """Several Poisson inputs per population: A (two channels; 2 neuron blocks) an
    excitatory and an inhibitory input, and one of mean 100 per step whose table (with
    the others) passes PP_POISSON_SHARED = 256 entries, so the resident phase reads it
    from global memory; B (one channel) four inputs, the third never firing, and a step
    current from 3 to 9 ms; S a Poisson
    source active from 2 to 8 ms, projecting into A and B; G a SpikeSourceArray onto A, H
    one shared train onto B."""
    net = pp.Network(dt=0.1, seed=5)
    net.add_population("A", n_a, pp.LIF(tau_syn_ex=2.0, tau_syn_in=5.0, t_ref=1.0),
                       v_init=pp.uniform(-70.0, -54.0))
    net.add_population("B", n_b, pp.LIF(tau_syn_ex=1.0, tau_syn_in=1.0),
                       v_init=pp.uniform(-70.0, -56.0))
    net.connect("A", "B", pp.fixed_total_number(20 * n_b * n_a // 300), weight=pp.normal(60.0, 5.0), delay=1.0)
    net.connect("B", "A", pp.pairwise_bernoulli(0.3), weight=-40.0, delay=pp.normal(0.8, 0.3))
    net.add_poisson("A", rate=8.0, K=1000, weight=40.0)
    net.add_poisson("A", rate=2.0, K=500, weight=-30.0)
    net.add_poisson("A", rate=10.0, K=200000, weight=0.05)
    net.add_poisson("B", rate=8.0, K=1000, weight=60.0)
    net.add_poisson("B", rate=2.0, K=500, weight=-30.0)
    net.add_poisson("B", rate=3.0, K=0, weight=5.0)
    net.add_poisson("B", rate=0.5, K=100, weight=100.0)
    net.add_dc("B", 150.0, start=3.0, stop=9.0)           # a step current from 3 to 9 ms
    # a Poisson source (PoissonSource) firing from 2 ms to 8 ms into both
    net.add_population("S", n_b, pp.PoissonSource(rate=300.0, start=2.0, stop=8.0))
    net.connect("S", "A", pp.fixed_outdegree(30), weight=pp.normal(80.0, 8.0),
                delay=pp.normal(1.0, 0.3))
    net.connect("S", "B", pp.pairwise_bernoulli(0.2), weight=-50.0, delay=0.6)
    # a SpikeSourceArray of 20 neurons, 8 spikes each (its table, 181 entries, fits the
    # resident phase's shared copy), onto A
    net.add_population("G", 20, pp.SpikeSourceArray(
        [[0.1 * (1 + (3 * i + 7 * j) % 150) for j in range(8)] for i in range(20)]))
    net.connect("G", "A", pp.fixed_outdegree(25), weight=120.0, delay=pp.normal(0.8, 0.2))
    # and one train that all its 10 neurons emit, onto B
    net.add_population("H", 10, pp.SpikeSourceArray([0.3, 1.1, 4.0, 9.5]))
    net.connect("H", "B", pp.fixed_total_number(100), weight=90.0, delay=0.5)
    return pp.compile_network(net)


def _cpu(cnet, steps):
    rec = []
    sim = CPUSimulator(cnet, "stored")
    sim.run_steps(steps, rec)
    return sim, _by_step(rec)


def _by_step(rec):
    out = {}
    for s, ids in rec:
        out.setdefault(int(s), []).append(np.asarray(ids))
    return {s: np.sort(np.concatenate(v)).tolist() for s, v in out.items()}


@pytest.mark.parametrize("loop", ["persistent", "graph"])
@pytest.mark.parametrize("connectivity,csr_build", [("procedural", "device"),
                                                    ("stored", "device"), ("stored", "host")])
def test_same_spikes_as_cpu(fake, connectivity, csr_build, loop):
    cnet = _mixed()
    steps = 230
    cpu, want = _cpu(cnet, steps)
    assert len(want) > 20 and cpu.n_events > 1000
    sim = CU.CUDASimulator(cnet, connectivity, record_chunk_steps=64, graph_steps=16,
                           csr_build=csr_build, persistent=(loop == "persistent"))
    assert fake.stack == []                       # the context is popped after set-up
    assert sim.allocated_bytes == sim.plan.total == fake.mem.live
    rec = []
    assert sim.run_steps(100, rec) == 100
    assert sim.run_steps(steps - 100, rec) == steps - 100
    assert fake.stack == []
    if loop == "persistent":
        # one cooperative launch per 16 steps, cut at the 64-step record chunks
        assert sim.loop_mode == "persistent" and sim.persistent_error is None
        assert sim.persistent_grid == 4 and fake.graphs.replayed == 0   # 4 neuron blocks, 4 SMs
        assert fake.coop.launches == 16
    else:
        assert sim.loop_mode == "graph" and fake.graphs.replayed > 0 and fake.coop.launches == 0
    # one tuple per step, ascending ids, global int64
    assert all(ids.dtype == np.int64 and np.all(np.diff(ids) > 0) for _, ids in rec)
    assert [s for s, _ in rec] == sorted(set(s for s, _ in rec))
    assert _by_step(rec) == want
    assert sim.step == steps and sim.n_events == cpu.n_events
    assert sim.n_spikes_total == cpu.n_spikes_total
    if connectivity == "stored":
        assert sim.n_synapses_stored == cpu.n_synapses_stored
    sim.close()
    assert fake.mem.live == 0 and fake.stack == [] and fake.made[0].detached
    sim.close()                                   # idempotent


def test_fallback_per_step(fake, monkeypatch):
    monkeypatch.setattr(CU, "GraphAPI", FakeGraphs(fake, fail=True))
    cnet = _mixed()
    _, want = _cpu(cnet, 120)
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=50, graph_steps=20,
                          persistent=False) as sim:
        rec = []
        sim.run_steps(120, rec)
        assert sim.loop_mode == "launch" and "capture refused" in sim.graph_error
        assert _by_step(rec) == want
    assert fake.mem.live == 0


def test_no_libcuda_and_debug_mode(fake, monkeypatch):
    monkeypatch.setattr(CU, "GraphAPI", FakeGraphs(fake, fail="load"))
    cnet = _mixed()
    _, want = _cpu(cnet, 40)
    with CU.CUDASimulator(cnet, "stored", persistent=False) as sim:
        assert sim.loop_mode == "launch"
        rec = []
        sim.run_steps(40, rec)
        assert _by_step(rec) == want
    with CU.CUDASimulator(cnet, "procedural", debug=True) as sim:
        rec = []
        sim.run_steps(40, rec)
        assert sim.loop_mode == "debug" and _by_step(rec) == want


@pytest.mark.parametrize("fail", ["load", "launch"])
def test_persistent_refused_falls_back_to_graph(fake, monkeypatch, fail):
    """A cooperative kernel that cannot be loaded (set-up) or whose launch is refused (first
    run) leaves the reason in persistent_error and runs the graph loop, same spikes."""
    monkeypatch.setattr(CU, "get_cooperative_kernel", FakeCooperative(fake, fail=fail))
    cnet = _mixed()
    _, want = _cpu(cnet, 90)
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=40, graph_steps=20) as sim:
        assert sim.loop_mode == ("graph" if fail == "load" else "persistent")
        rec = []
        sim.run_steps(90, rec)
        assert sim.loop_mode == "graph" and fake.graphs.replayed > 0
        assert ("cuLaunchCooperativeKernel" if fail == "launch" else "lacks") in \
            sim.persistent_error
        assert _by_step(rec) == want and sim.step == 90
    # both refused: per-step launches
    monkeypatch.setattr(CU, "GraphAPI", FakeGraphs(fake, fail="load"))
    with CU.CUDASimulator(cnet, "stored", record_chunk_steps=40) as sim:
        rec = []
        sim.run_steps(90, rec)
        assert sim.loop_mode == "launch" and sim.persistent_error and sim.graph_error
        assert _by_step(rec) == want


def test_default_blocks_per_sm():
    """The fewest blocks per SM that hold every neuron block, at least 1, all that fit
    when that is not enough: 4 neuron blocks on 132 SMs -> 1; the microcircuit's 301 and
    the 1e5 balanced network's 391 -> 3; 16,000 (multi-area model) -> all that fit."""
    assert CU.default_blocks_per_sm(4, 132, 3) == 1
    assert CU.default_blocks_per_sm(0, 132, 3) == 1
    assert CU.default_blocks_per_sm(132, 132, 3) == 1
    assert CU.default_blocks_per_sm(133, 132, 3) == 2
    assert CU.default_blocks_per_sm(301, 132, 3) == 3
    assert CU.default_blocks_per_sm(391, 132, 3) == 3
    assert CU.default_blocks_per_sm(16000, 132, 3) == 3
    assert CU.default_blocks_per_sm(301, 132, 2) == 2


def test_persistent_blocks_per_sm(fake):
    cnet = _mixed()                                  # 4 neuron blocks; the fake GPU: 4 SMs
    with CU.CUDASimulator(cnet, "procedural", persistent=True) as sim:
        assert sim.persistent_grid == 4              # default: 1 per SM holds them
    with CU.CUDASimulator(cnet, "procedural", persistent_blocks_per_sm=1) as sim:
        assert sim.persistent_grid == 4
    with CU.CUDASimulator(cnet, "procedural", persistent_blocks_per_sm=99) as sim:
        assert sim.persistent_grid == 4 * 3          # capped at what fits
    big = pp.compile_network(balanced(3000, dt=0.1))    # 10 + 3 = 13 neuron blocks
    with CU.CUDASimulator(big, "procedural", persistent=True) as sim:
        assert sim._n_blocks == 13 and sim.persistent_grid == 4 * 3
    with pytest.raises(ValueError, match="persistent_blocks_per_sm"):
        CU.CUDASimulator(cnet, "procedural", persistent_blocks_per_sm=0)
    assert fake.stack == [] and fake.mem.live == 0


def test_persistent_grid(fake):
    """persistent_grid: blocks in total instead of per SM, up to the 12 that fit the fake
    GPU (4 SMs x 3); the kernel launches on it and gives the CPU's spikes; a grid of 1
    (grid-stride neuron phase, __syncthreads for the barrier) as well.  Refused: 0, more
    than fit (naming the limit), and together with persistent_blocks_per_sm."""
    cnet = _mixed()                                  # 4 neuron blocks
    _, want = _cpu(cnet, 60)
    for grid in (1, 3, 12):
        with CU.CUDASimulator(cnet, "procedural", persistent=True, persistent_grid=grid,
                              graph_steps=20) as sim:
            assert sim.persistent_grid == grid and sim._tune_grids == (grid,)
            rec = []
            sim.run_steps(60, rec)
            assert sim.loop_mode == "persistent" and _by_step(rec) == want
    assert set(fake.coop.grids) == {1, 3, 12}
    with pytest.raises(ValueError, match=r"persistent_grid=13 exceeds the 12 blocks .*"
                                         r"\(4 SMs x 3"):
        CU.CUDASimulator(cnet, "procedural", persistent_grid=13)
    with pytest.raises(ValueError, match="persistent_grid must be >= 1"):
        CU.CUDASimulator(cnet, "procedural", persistent_grid=0)
    with pytest.raises(ValueError, match="not both"):
        CU.CUDASimulator(cnet, "stored", persistent_grid=4, persistent_blocks_per_sm=1)
    assert fake.stack == [] and fake.mem.live == 0


def test_one_block_option(fake, caplog):
    """one_block=True: the one-block build (ONE_BLOCK_BUILD) on a grid of 1 block of 512
    threads, launched with the ring and the spike list(s) as dynamic shared memory (the
    fake checks every launch: block 512, grid 1, one_block_smem_bytes); the CPU's spikes,
    auto included (it times the build against the graph loop).  Refused, naming the
    clash, before anything is allocated: with the other opt-in builds, forced tiles,
    persistent=False, another grid; a network whose ring does not fit a block's shared
    memory (the fake's 227 KiB, as an H100/H200) names the bytes.  tune_builds leaves the
    build out of networks above ONE_BLOCK_TUNE_MAX_NEURONS and of those that do not fit."""
    cnet = _mixed()
    _, want = _cpu(cnet, 60)
    for opt in ({"persistent": True}, {"persistent": True, "pipelined": False},
                {"persistent": "auto"}):
        with CU.CUDASimulator(cnet, "stored", graph_steps=20, one_block=True, **opt) as sim:
            assert sim.persistent_grid == 1 and sim._build.block == CU.ONE_BLOCK_THREADS
            assert sim.persistent_defines == CU.ONE_BLOCK_BUILD and sim.one_block
            assert sim.persistent_smem == CU.one_block_smem_bytes(cnet)
            rec = []
            sim.run_steps(60, rec)
            assert _by_step(rec) == want
    assert CU.one_block_smem_bytes(cnet) == -(-4 * cnet.ring_size // 8) * 8 + 24 * cnet.n_neurons
    for opt, word in (({"unit_map": True}, "unit_map"), ({"shared_tables": True}, "shared_tables"),
                      ({"throughput_build": True}, "throughput_build"),
                      ({"bernoulli_tiles": True}, "bernoulli_tiles"),
                      ({"persistent": False}, "persistent=False"),
                      ({"persistent_grid": 4}, "persistent_grid"),
                      ({"persistent_blocks_per_sm": 1}, "persistent_blocks_per_sm")):
        with pytest.raises(ValueError, match=word):
            CU.CUDASimulator(cnet, "procedural", one_block=True, **opt)
    big = pp.compile_network(balanced(20000, dt=0.1))       # ring 20,000 x 16 slots: 1.28 MB
    need = CU.one_block_smem_bytes(big)
    with pytest.raises(ValueError, match=rf"one_block=True: the delay ring \(1,280,000 bytes\), "
                                         rf"the spike list \(160,000\) and the neuron state "
                                         rf"\(320,000\) need {need:,d} bytes of shared "
                                         rf"memory; a block of Fake GPU has at most 232,448"):
        CU.CUDASimulator(big, "procedural", one_block=True)
    assert fake.stack == [] and fake.mem.live == 0
    # the compiled kernel's static __shared__ bytes count too: one byte too many
    fake.coop.static_shared = 232_448 - CU.one_block_smem_bytes(cnet) + 1
    with pytest.raises(ValueError, match=rf"the neuron state \({16 * cnet.n_neurons:,d}\), with "
                                         rf"the kernel's {fake.coop.static_shared:,d} static "
                                         rf"bytes, need 232,449 bytes of shared memory"):
        CU.CUDASimulator(cnet, "stored", one_block=True)
    assert fake.stack == [] and fake.mem.live == 0
    fake.coop.static_shared -= 1                            # exactly the limit: fits
    with CU.CUDASimulator(cnet, "stored", graph_steps=20, one_block=True) as sim:
        assert sim.one_block
    fake.coop.static_shared = None
    caplog.set_level("INFO", logger="pyproc.cuda")
    bal = pp.compile_network(balanced(9000, dt=1.0))        # above ONE_BLOCK_TUNE_MAX_NEURONS
    with CU.CUDASimulator(bal, "procedural", graph_steps=20, tune_builds=True) as sim:
        assert not any(b.one_block for b, _ in sim._tune_cands)
    bal = pp.compile_network(balanced(8000, dt=0.1))        # small, but its ring is 512 KB
    with CU.CUDASimulator(bal, "procedural", graph_steps=20, tune_builds=True) as sim:
        assert not any(b.one_block for b, _ in sim._tune_cands)
    assert "tune_builds: one_block left out: the delay ring (512,000 bytes)" in caplog.text
    assert fake.stack == [] and fake.mem.live == 0


def test_tune_candidates():
    """The grids persistent="auto" times: the default grid, plus one block per neuron block
    where those fill at most half of it (the 1,000-neuron network's 4 neuron blocks on
    132 SMs: 132 and 4; 1 neuron block: a one-block grid); the microcircuit (301 neuron
    blocks on 396) and a grid the user chose: the default alone."""
    assert CU.tune_candidates(132, 4) == (132, 4)
    assert CU.tune_candidates(4, 1) == (4, 1)
    assert CU.tune_candidates(4, 2) == (4, 2)
    assert CU.tune_candidates(4, 3) == (4,)
    assert CU.tune_candidates(396, 301) == (396,)
    assert CU.tune_candidates(132, 4, user_grid=True) == (132,)
    assert CU.tune_candidates(132, 0) == (132, 1)


def test_should_stop_and_existing_context(fake):
    cnet = _mixed()
    ctx = fake.Device(0).make_context()            # the caller's context stays current
    calls = []
    with CU.CUDASimulator(cnet, "procedural", graph_steps=10, persistent=True) as sim:
        assert fake.stack == [ctx]
        done = sim.run_steps(100, [], should_stop=lambda: len(calls) > 2 or calls.append(1))
        assert done == 30 and sim.step == 30
    assert fake.stack == [ctx] and not getattr(ctx, "detached", False)


def test_refuses_model_that_does_not_fit(fake):
    fake.free_bytes = 10_000
    with pytest.raises(BackendUnavailable) as e:
        CU.CUDASimulator(_mixed(), "stored")
    assert "does not fit" in str(e.value) and "csr_targets" in str(e.value)
    assert fake.stack == [] and fake.mem.live == 0


def test_input_overflow_raises(fake, monkeypatch):
    """A corrupted Poisson weight: refused before running (check_input_range); with that
    check switched off, the neuron kernel's own per-step check reports it."""
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("A", 5, pp.LIF())
    net.add_poisson("A", rate=100.0, K=1000, weight=10.0)
    cnet = pp.compile_network(net)
    cnet.pops["poisson_w"] = 2 ** 30                # corrupt: forces an overflow
    with pytest.raises(OverflowDetected, match="population 'A', channel ex"):
        CU.CUDASimulator(cnet, "procedural")
    monkeypatch.setattr(CU, "check_input_range", lambda cnet: None)
    with CU.CUDASimulator(cnet, "procedural") as sim:
        with pytest.raises(OverflowDetected, match="population 'A'"):
            sim.run_steps(10, [])


def test_no_pycuda_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    monkeypatch.setitem(sys.modules, "pycuda.compiler", None)
    with pytest.raises(BackendUnavailable, match=r"pip install pyproc\[cuda\].*CPU backend"):
        pp.Simulation(_mixed(), backend="cuda")


def test_graph_api_binds_libcuda_symbols():
    """GraphAPI only needs the documented driver symbols (checked on a stand-in lib whose
    cuStreamEndCapture / cuGraphInstantiateWithFlags hand out graph and exec handles), and
    destroy() / a failed capture release those handles with cuGraphExecDestroy and
    cuGraphDestroy."""
    GRAPH, EXEC = 0x6a0, 0xe7ec
    names = ["cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphLaunch",
             "cuGraphExecDestroy", "cuGraphDestroy", "cuGraphInstantiateWithFlags",
             "cuGetErrorString"]
    out_arg = {"cuStreamEndCapture": (1, GRAPH), "cuGraphInstantiateWithFlags": (0, EXEC)}
    calls = []

    def handle(a):
        return a if isinstance(a, int) or a is None else a.value

    def fn(name, rc=0):
        def f(*args):
            if name in out_arg:          # the driver writes the new handle through a pointer
                i, value = out_arg[name]
                args[i]._obj.value = value
            calls.append((name,) + tuple(handle(a) for a in args
                                         if name in ("cuGraphExecDestroy", "cuGraphDestroy",
                                                     "cuGraphLaunch")))
            return rc
        return f

    lib = types.SimpleNamespace(**{n: fn(n) for n in names})
    api = CU.GraphAPI(lib)
    g, e = api.capture(123, lambda: None, (RuntimeError,))
    assert (g.value, e.value) == (GRAPH, EXEC)
    api.replay(e, 123)
    assert calls == [("cuStreamBeginCapture_v2",), ("cuStreamEndCapture",),
                     ("cuGraphInstantiateWithFlags",), ("cuGraphLaunch", EXEC, 123)]
    calls.clear()
    api.destroy(g, e)
    assert calls == [("cuGraphExecDestroy", EXEC), ("cuGraphDestroy", GRAPH)]
    calls.clear()
    api.destroy(None, None)                          # nothing captured: nothing to free
    assert calls == []
    # a failed end of capture that still returned a graph frees it, and says why
    lib.cuStreamEndCapture = fn("cuStreamEndCapture", 900)
    api = CU.GraphAPI(lib)
    with pytest.raises(CU.GraphUnavailable, match="cuStreamEndCapture"):
        api.capture(123, lambda: None, (RuntimeError,))
    assert ("cuGraphDestroy", GRAPH) in calls
    assert "cuGraphInstantiateWithFlags" not in [c[0] for c in calls]
    # an instantiation failure frees the captured graph too
    lib.cuStreamEndCapture = fn("cuStreamEndCapture")
    lib.cuGraphInstantiateWithFlags = fn("cuGraphInstantiateWithFlags", 700)
    api = CU.GraphAPI(lib)
    calls.clear()
    with pytest.raises(CU.GraphUnavailable, match="cuGraphInstantiate"):
        api.capture(123, lambda: None, (RuntimeError,))
    assert ("cuGraphDestroy", GRAPH) in calls and ("cuGraphExecDestroy", EXEC) not in calls
    # an error that is not a refused launch (a bug in the recording) ends the capture --
    # a stream left capturing would fail every later call -- and propagates as it is
    calls.clear()

    def broken():
        raise struct_error("argument out of range")
    struct_error = type("StructError", (Exception,), {})
    with pytest.raises(struct_error, match="argument out of range"):
        api.capture(123, broken, (RuntimeError,))
    assert [c[0] for c in calls] == ["cuStreamBeginCapture_v2", "cuStreamEndCapture",
                                     "cuGraphDestroy"]


def test_refuses_input_beyond_int32_before_allocating(fake):
    """The device ring is int32: a table edited past the compile-time bound is refused
    (OverflowDetected naming the population) before any context or buffer is made."""
    cnet = _mixed()
    k = cnet.proj_index("A->B")
    cnet.projs["w_const"][k] = 2 ** 30
    cnet.projs["w_kind"][k] = 0                     # constant weight from now on
    with pytest.raises(OverflowDetected, match="population 'B'"):
        CU.CUDASimulator(cnet, "procedural")
    assert fake.made == [] and fake.mem.live == 0


@pytest.mark.parametrize("tiles", [True, False])
def test_persistent_tiles_same_spikes(fake, tiles):
    """With tile_min_spikes=1 every step with a spike delivers the tiled projections (C->A
    here) by tiles and the rest on the out tables without them: same spikes as the CPU.
    bernoulli_tiles=False: no tile table, no dynamic shared memory."""
    cnet = _mixed()
    _, want = _cpu(cnet, 150)
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=50, graph_steps=25,
                          tile_min_spikes=1, bernoulli_tiles=tiles, persistent=True) as sim:
        rec = []
        sim.run_steps(150, rec)
        assert sim.loop_mode == "persistent" and _by_step(rec) == want
        assert sim.n_tiles == (1 if tiles else 0)
        assert (fake.coop.tile_steps > 20) == tiles
        assert fake.coop.shared_asked == (4 * 32 * 33 if tiles else 0)   # width 32 (p = 0.5)
    with pytest.raises(ValueError, match="tile_min_spikes"):
        CU.CUDASimulator(cnet, "procedural", tile_min_spikes=0)


def test_graph_loop_tiles_same_spikes(fake):
    """bernoulli_tiles=True in the graph loop and in debug launches: every step runs the tile
    kernel (with its shared memory) and the per-spike kernel on the out tables without the
    tiled projection (C->A): the CPU's spikes.  Left at None: no tile kernel."""
    cnet = _mixed()
    _, want = _cpu(cnet, 120)
    for tiles, debug in ((True, False), (True, True), (None, False)):
        with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=60, graph_steps=20,
                              persistent=False, debug=debug, bernoulli_tiles=tiles) as sim:
            launched = []
            run = fake.run_kernel
            fake.run_kernel = lambda name, *a, **kw: (launched.append((name, a[3], a[0][0])),
                                                      run(name, *a, **kw))
            try:
                rec = []
                sim.run_steps(120, rec)
            finally:
                fake.run_kernel = run
            assert sim.loop_mode == ("debug" if debug else "graph") and sim.step_tiles == bool(tiles)
            assert _by_step(rec) == want
            names = [n for n, _, _ in launched]
            assert names.count("pp_propagate_procedural_tiles") == (120 if tiles else 0)
            assert {sh for n, sh, _ in launched if n == "pp_propagate_procedural_tiles"} <= {
                4 * 32 * 33}
            # each kernel on its own occupancy: 48 registers fit 5 blocks of 256 per SM,
            # the per-spike kernel's 64 fit 4 (4 SMs)
            grids = {n: {g for m, _, g in launched if m == n} for n in names}
            assert grids.get("pp_propagate_procedural_tiles", {20}) == {20}
            assert grids["pp_propagate_procedural_spikes"] == {16}
    for tiles in (True, None):              # the run's summary says whether tiles ran
        res = pp.Simulation(cnet, backend="cuda", persistent=False,
                            bernoulli_tiles=tiles).run(2.0)
        assert res.meta["bernoulli_tiles"] is bool(tiles) and res.meta["loop_mode"] == "graph"
    with pytest.raises(ValueError, match="bernoulli_tiles must be None, True or False"):
        CU.CUDASimulator(cnet, "procedural", bernoulli_tiles="yes")
    assert fake.stack == [] and fake.mem.live == 0


def test_propagation_grid():
    """Blocks per SM from registers (allocated per warp in units of 256) and, where given,
    shared memory (CUDA keeps 1 KiB per block): 64 registers -> 4 blocks of 256, 48 -> 5,
    33 -> 40 rounded up per warp -> 6; 100 KiB + 1 KiB per block in 228 KiB -> 2."""
    assert CU.propagation_grid(132, 64) == 4 * 132
    assert CU.propagation_grid(132, 48) == 5 * 132
    assert CU.propagation_grid(132, 33) == 6 * 132
    assert CU.propagation_grid(132, 48, smem_block=4 * 32 * 129 + 128,
                               smem_sm=228 * 1024) == 5 * 132
    assert CU.propagation_grid(132, 48, smem_block=100 * 1024, smem_sm=228 * 1024) == 2 * 132
    assert CU.propagation_grid(132, 48, smem_block=300 * 1024, smem_sm=228 * 1024) == 132
    assert CU.propagation_grid(132, 48, smem_block=100 * 1024) == 5 * 132   # SM size unknown


def test_tile_kernel_grid(fake):
    """The tile kernel runs on its own occupancy (5 blocks of 256 per SM for its 48
    registers), the per-spike kernel on its own (4); prop_blocks sets both."""
    cnet = _mixed()
    spikes = np.array([[0, i] for i in range(0, 300, 7)], np.uint32)
    for prop_blocks, want in ((None, (20, 16)), (7, (7, 7))):
        with CU.CUDASimulator(cnet, "procedural", bernoulli_tiles=True,
                              prop_blocks=prop_blocks) as sim:
            launched = []
            run = fake.run_kernel
            fake.run_kernel = lambda name, *a, **kw: (launched.append((name, a[0][0])),
                                                      run(name, *a, **kw))
            try:
                sim.time_propagation(spikes, repeats=1, tiles=True)
            finally:
                fake.run_kernel = run
            grids = dict(launched)
            assert (grids["pp_propagate_procedural_tiles"],
                    grids["pp_propagate_procedural_spikes"]) == want


def test_time_propagation_tiles_equal_per_spike(fake):
    """The propagation benchmark with tiles (tile kernel + per-spike kernel without the tiled
    projections) leaves the same ring and counts the same events as the per-spike kernel."""
    cnet = _mixed()
    spikes = np.array([[0, i] for i in range(0, 300, 7)] + [[2, i] for i in range(40)],
                      np.uint32)
    rings, events = [], []
    for tiles in (True, False):
        with CU.CUDASimulator(cnet, "procedural", bernoulli_tiles=True) as sim:
            sec, ev = sim.time_propagation(spikes, repeats=2, tiles=tiles)
            assert sim.last_propagation_tiles == tiles and ev > 0
            ring = fake.mem.arr(sim._state.buffers["ring"], np.int32, cnet.ring_size).copy()
            rings.append(ring)
            events.append(ev)
    assert events[0] == events[1] and np.array_equal(rings[0], rings[1]) and rings[0].any()


def _delay_graphs(monkeypatch, fake, seconds):
    """Make every graph replay of the fake sleep ``seconds`` (the time auto sees)."""
    import time
    replay = fake.graphs.replay

    def slow_replay(exe, handle):
        time.sleep(seconds)
        replay(exe, handle)
    monkeypatch.setattr(fake.graphs, "replay", slow_replay)


def _delay_kernels(monkeypatch, fake, delay):
    """Make every cooperative launch of the fake sleep ``delay(defines, grid)`` seconds
    (defines: the build's -D macros), or ``delay(defines, grid, shared)`` for a delay of
    three parameters (shared: the launch's dynamic shared bytes)."""
    import inspect
    import time
    make = fake.coop.__call__

    class Timed:
        def __init__(self, k, defines):
            self.k, self.defines = k, defines

        def __getattr__(self, name):
            return getattr(self.k, name)

        def launch_packed(self, grid, *a, **kw):
            extra = (kw.get("shared", 0),) if len(inspect.signature(delay).parameters) == 3 else ()
            time.sleep(delay(self.defines, grid, *extra))
            self.k.launch_packed(grid, *a, **kw)
    monkeypatch.setattr(CU, "get_cooperative_kernel",
                        lambda name, defines=None: Timed(make(name, defines), defines or {}))


def test_auto_loop_tunes_once(fake, monkeypatch):
    """persistent='auto' (the default): after 5 batches of warm-up, two batches with each
    loop (alternating) are timed and the faster kept (the fake graph is made slow here);
    the spikes are the CPU's whatever the choice.  A run too short to tune stays
    persistent; graph capture unavailable: no tuning."""
    cnet = _mixed()
    _, want = _cpu(cnet, 230)
    _delay_graphs(monkeypatch, fake, 0.05)
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=100, graph_steps=20) as sim:
        assert sim.loop_mode == "persistent" and sim.loop_tuning is None
        rec = []
        sim.run_steps(90, rec)                       # too short: no tuning yet
        assert sim.loop_tuning is None
        sim.run_steps(140, rec)                      # steps 110..229 tuned
        t = sim.loop_tuning
        assert t is not None and t["steps_each"] == 20
        assert t["graph_s_per_step"] > t["persistent_s_per_step"]
        assert sim.loop_mode == "persistent" and fake.graphs.replayed == 3
        assert _by_step(rec) == want and sim.step == 230
        assert t["untimed_batches_each"] == 1
    monkeypatch.setattr(CU, "GraphAPI", FakeGraphs(fake, fail="load"))
    with CU.CUDASimulator(cnet, "stored", graph_steps=20) as sim:
        sim.run_steps(200, [])
        assert sim.loop_mode == "persistent" and sim.loop_tuning is None
    with pytest.raises(ValueError, match="persistent must be"):
        CU.CUDASimulator(cnet, "stored", persistent="yes")


def test_auto_loop_prefers_graph_when_faster(fake, monkeypatch):
    cnet = _mixed()
    _, want = _cpu(cnet, 240)
    _delay_kernels(monkeypatch, fake, lambda defines, grid: 0.05)
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=200, graph_steps=20) as sim:
        rec = []
        sim.run_steps(240, rec)
        assert sim.loop_mode == "graph" and sim.loop_tuning["persistent_s_per_step"] > \
            sim.loop_tuning["graph_s_per_step"]
        assert _by_step(rec) == want


def test_auto_loop_times_the_small_grid(fake, monkeypatch):
    """A network of one neuron block on the fake GPU's default grid of 4: auto times the
    persistent loop on 4 blocks, on 1 block and the graph loop, an untimed and two timed
    batches each, taking turns, and keeps the one-block grid where that is the fastest (the fake makes bigger
    grids slow); the spikes are the CPU's, the rest of the run launches on 1 block."""
    cnet = pp.compile_network(balanced(200, dt=0.1))
    assert cnet.pops["n"].max() <= 256 and len(cnet.pops) == 2     # one block each...
    _, want = _cpu(cnet, 300)
    coop = fake.coop
    # the graph loop well behind (0.05 s per batch failed under CPU load: the fake's
    # emulation time, the same for every candidate, varies by more than the margin)
    _delay_graphs(monkeypatch, fake, 0.5)
    _delay_kernels(monkeypatch, fake, lambda defines, grid: 0.05 * grid)
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=300, graph_steps=20) as sim:
        n_blocks = sim._n_blocks
        assert sim.persistent_grid == 4 and sim._tune_grids == (4, n_blocks) and n_blocks <= 2
        rec = []
        sim.run_steps(300, rec)
        t = sim.loop_tuning
        assert t["grids"] == [4, n_blocks] and t["steps_each"] == 20
        assert t[f"persistent_grid_{n_blocks}_s_per_step"] < t["persistent_s_per_step"]
        assert sim.loop_mode == "persistent" and sim.persistent_grid == n_blocks
        assert fake.graphs.replayed == 3
        assert _by_step(rec) == want and sim.step == 300
    # warm-up 5 launches on 4, tuning 3 + 3 on 4 and n_blocks, the rest on n_blocks
    assert coop.grids[:5] == [4] * 5 and coop.grids[5:11] == [4, n_blocks] * 3
    assert set(coop.grids[11:]) == {n_blocks} and len(coop.grids) == 15 - 3


def test_auto_loop_tunes_builds(fake, monkeypatch):
    """tune_builds=True: auto also times the shared-tables, unit-map, both and throughput
    builds, the default build with the tile phase on (the mixed network tiles C->A) and,
    the network being small, the one-block build, compiled at set-up (each with its
    shared-table flags, dynamic shared memory, tile table and grid: the throughput build
    all 12 blocks that fit, the one-block build 1), an untimed and two timed batches each,
    taking turns with
    the user's build and the graph loop (also with the tile kernel), and keeps the
    fastest (the fake makes the unit-map build fast); the spikes are the CPU's across the
    switches.  The 27 tuning batches (540 steps) span several record chunks (60 steps)
    and two run_steps calls.  Refused with persistent=True."""
    cnet = _mixed()
    _, want = _cpu(cnet, 660)
    _delay_graphs(monkeypatch, fake, 0.05)
    _delay_kernels(monkeypatch, fake,
                   lambda defines, grid: 0.001 if defines == CU.UNIT_MAP_BUILD else 0.1)
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=60, graph_steps=20,
                          tune_builds=True) as sim:
        assert [(b.label, g) for b, g in sim._tune_cands] == [
            ("default", 4), ("shared", 4), ("units", 4), ("shared+units", 4), ("throughput", 12),
            ("tiles", 4), ("one_block", 1)]
        assert [b.smem_tables for b, _ in sim._tune_cands] == [0, 3, 0, 3, 0, 0, 0]
        tile_smem = 4 * 32 * 33                  # C->A: width 32 (p = 0.5)
        assert [b.smem for b, _ in sim._tune_cands][-2] == tile_smem
        assert sim._tune_cands[-1][0].smem == CU.one_block_smem_bytes(cnet)
        assert [b.tiles for b, _ in sim._tune_cands] == [False] * 5 + [True, False]
        assert [b.block for b, _ in sim._tune_cands] == [256] * 6 + [512]
        assert sim.persistent_defines == {} and not sim.unit_map and sim.n_tiles == 0
        rec = []
        sim.run_steps(250, rec)                  # 100 steps of warm-up, 7 tuning batches
        assert sim.loop_tuning is None and sum(sim._tune_state["batches"]) == 7
        sim.run_steps(410, rec)
        t = sim.loop_tuning
        assert {k for k in t if k.endswith("_s_per_step")} == {
            "persistent_s_per_step", "persistent_shared_s_per_step",
            "persistent_units_s_per_step", "persistent_shared_units_s_per_step",
            "persistent_throughput_s_per_step", "persistent_tiles_s_per_step",
            "persistent_one_block_s_per_step", "graph_s_per_step", "graph_tiles_s_per_step"}
        assert t["chosen"] == "persistent_units" and sim.loop_mode == "persistent", t
        assert sim.unit_map and not sim.shared_tables and sim.persistent_grid == 4
        assert sim.persistent_defines == CU.UNIT_MAP_BUILD and sim.persistent_smem == 0
        assert _by_step(rec) == want and sim.step == 660
    with pytest.raises(ValueError, match="tune_builds=True times the persistent builds"):
        CU.CUDASimulator(cnet, "procedural", persistent=True, tune_builds=True)
    # every delay >= 2 steps (balanced, 1.5 ms at dt 0.1 ms): the pipelined loop of the
    # default and shared-tables builds too, on spike lists planned for it, and of the
    # one-block build (two spike lists in its shared memory)
    bal = pp.compile_network(balanced(200, dt=0.1))
    _, want_b = _cpu(bal, 780)
    n_pipe = fake.coop.pipelined_launches
    with CU.CUDASimulator(bal, "stored", record_chunk_steps=100, graph_steps=20,
                          tune_builds=True) as sim:
        assert [b.label for b, _ in sim._tune_cands][-4:] == [
            "pipelined", "shared+pipelined", "one_block", "one_block+pipelined"]
        assert sim._tune_cands[-1][0].smem == CU.one_block_smem_bytes(bal, 2)
        assert sim.plan.buffers["spikes"] == 2 * 8 * bal.n_neurons
        rec = []
        sim.run_steps(780, rec)          # 100 warm-up + 3 x (10 + 1) x 20 tuning
        assert sim.loop_tuning is not None and "persistent_pipelined_s_per_step" in sim.loop_tuning
        assert _by_step(rec) == want_b and fake.coop.pipelined_launches >= n_pipe + 4
    # a grid that a build cannot hold at once leaves that build out, not the simulator:
    # 12 blocks fit the fake's 4 SMs x 3, but not the shared + unit-map build (x 2 here)
    timed = CU.get_cooperative_kernel

    def two_for_shared_units(name, defines=None):
        k = timed(name, defines)
        if defines and "PP_UNIT_MAP" in defines and "PP_SHARED_TABLES" in defines:
            k.max_blocks_per_sm = lambda block, shared=0: 2
        return k
    monkeypatch.setattr(CU, "get_cooperative_kernel", two_for_shared_units)
    with CU.CUDASimulator(cnet, "procedural", graph_steps=20, persistent_grid=12,
                          tune_builds=True) as sim:
        assert [b.label for b, _ in sim._tune_cands] == [
            "default", "shared", "units", "throughput", "tiles"]
    monkeypatch.setattr(CU, "get_cooperative_kernel", timed)
    # with bernoulli_tiles=True: every candidate runs the tile phase, the builds without
    # one (shared tables, throughput) are not candidates, and the pipelined loop is timed
    # with the default build only; with False no candidate has tiles
    for net, labels in ((cnet, ["tiles", "units+tiles"]),
                        (bal, ["tiles", "units+tiles", "pipelined+tiles"])):
        with CU.CUDASimulator(net, "procedural", graph_steps=20, tune_builds=True,
                              bernoulli_tiles=True) as sim:
            assert list(dict.fromkeys(b.label for b, _ in sim._tune_cands)) == labels
            assert all("PP_PERSISTENT_TILES" not in b.defines for b, _ in sim._tune_cands)
    with CU.CUDASimulator(bal, "procedural", graph_steps=20, tune_builds=True,
                          bernoulli_tiles=False) as sim:
        assert not any(b.tiles for b, _ in sim._tune_cands) and sim._n_tile_entries == 0
    assert fake.stack == [] and fake.mem.live == 0


def test_auto_loop_tunes_tiles(fake, monkeypatch):
    """tune_builds=True with bernoulli_tiles left at None: when the candidates with the tile
    phase are the fastest (the fake makes the default build fast with a tile accumulator), auto
    keeps one, launches it with the tile table and its shared memory from then on, and the
    tile phase delivers C->A in every step with a spike (tile_min_spikes=1): the CPU's
    spikes throughout; where the delays allow the pipelined loop its tile candidate is
    timed too (balanced, 1.5 ms at dt 0.1 ms)."""
    _delay_graphs(monkeypatch, fake, 0.15)
    # fast: the default build (no -D macros) launched with shared memory, i.e. the tiles
    _delay_kernels(monkeypatch, fake,
                   lambda defines, grid, shared: 0.001 if shared and not defines else 0.15)
    cnet = _mixed()
    _, want = _cpu(cnet, 660)
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=100, graph_steps=20,
                          tune_builds=True, tile_min_spikes=1) as sim:
        assert sim._tune_cands[-2][0].label == "tiles" and sim.n_tiles == 0
        assert sim._graph_cands == [(None, 0), (None, 1)]
        rec = []
        sim.run_steps(660, rec)             # 100 warm-up + 3 x 9 x 20 tuning + 20
        t = sim.loop_tuning
        assert t is not None and t["chosen"] == "persistent_tiles", t
        assert {"graph_s_per_step", "graph_tiles_s_per_step"} <= set(t)
        assert sim.n_tiles == 1 and sim.persistent_smem == 4 * 32 * 33
        tiled = fake.coop.tile_steps
        assert tiled > 20                   # the tuning's tile batches and the steps after
        assert _by_step(rec) == want and sim.step == 660
    # the graph loop with the tile kernel fastest: auto keeps it (its own captured graph)
    replay = fake.graphs.replay

    def replay_tiles_fast(exe, handle):
        import time
        time.sleep(0.001 if any(n == "pp_propagate_procedural_tiles" for n, *_ in exe)
                   else 0.15)
        replay(exe, handle)
    monkeypatch.setattr(fake.graphs, "replay", replay_tiles_fast)
    _delay_kernels(monkeypatch, fake, lambda defines, grid: 0.4)
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=100, graph_steps=20,
                          tune_builds=True) as sim:
        rec = []
        sim.run_steps(660, rec)
        t = sim.loop_tuning
        assert t["chosen"] == "graph_tiles" and sim.loop_mode == "graph", t
        assert sim.step_tiles and _by_step(rec) == want and sim.step == 660
    bal = pp.compile_network(balanced(200, dt=0.1))
    with CU.CUDASimulator(bal, "procedural", graph_steps=20, tune_builds=True) as sim:
        assert [b.label for b, _ in sim._tune_cands][-4:-2] == ["tiles", "pipelined+tiles"]
        assert all(b.smem > 0 for b, _ in sim._tune_cands[-4:-2])
    assert fake.stack == [] and fake.mem.live == 0


def test_auto_loop_drops_a_refused_candidate(fake, monkeypatch):
    """A tuning candidate whose cooperative launch is refused (the unit-map build here) is
    left out -- its time is inf, its turn ran on the graph loop -- and the others are
    still timed and one kept; if every persistent candidate is refused the graph loop is
    kept and persistent_error says why.  The spikes are the CPU's either way."""
    cnet = _mixed()
    _, want = _cpu(cnet, 700)
    make = fake.coop.__call__
    refuse = {"units"}

    class Refusing:
        def __init__(self, k, defines):
            self.k, self.label = k, ("units" if defines and "PP_UNIT_MAP" in defines
                                     else "other")

        def __getattr__(self, name):
            return getattr(self.k, name)

        def launch_packed(self, *a, **kw):
            if self.label in refuse or "all" in refuse:
                raise CooperativeUnavailable("cuLaunchCooperativeKernel (test): "
                                               "too many blocks in cooperative launch (CUresult 720)")
            self.k.launch_packed(*a, **kw)
    monkeypatch.setattr(CU, "get_cooperative_kernel",
                        lambda name, defines=None: Refusing(make(name, defines), defines))
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=100, graph_steps=20,
                          tune_builds=True) as sim:
        rec = []
        sim.run_steps(700, rec)
        t = sim.loop_tuning
        assert t is not None and t["persistent_units_s_per_step"] == float("inf")
        assert t["persistent_shared_units_s_per_step"] == float("inf")
        assert all(v < float("inf") for k, v in t.items()
                   if k.endswith("_s_per_step") and "units" not in k)
        assert "units" not in t["chosen"] and sim.persistent_error is None
        assert _by_step(rec) == want and sim.step == 700
    # plain auto: the 5 warm-up launches run, then the persistent loop is refused in the
    # tuning: the graph loop is kept, persistent_error says why
    launches = {"n": 0}

    class Late(Refusing):
        def launch_packed(self, *a, **kw):
            launches["n"] += 1
            if launches["n"] > 5:
                refuse.add("all")
            Refusing.launch_packed(self, *a, **kw)
    monkeypatch.setattr(CU, "get_cooperative_kernel",
                        lambda name, defines=None: Late(make(name, defines), defines))
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=100, graph_steps=20) as sim:
        rec = []
        sim.run_steps(300, rec)
        t = sim.loop_tuning
        assert t["chosen"] == "graph" and t["persistent_s_per_step"] == float("inf")
        assert sim.loop_mode == "graph" and "CUresult 720" in sim.persistent_error
        assert _by_step(rec) == {s: v for s, v in want.items() if s < 300}


def test_fault_before_a_refused_launch_is_reported_as_the_fault(fake, monkeypatch):
    """A device fault in one persistent launch makes the driver refuse every later launch
    with the fault's sticky error; the run reports a CUDAKernelError naming the persistent
    kernel and the steps queued since the last check, not a refusal of the cooperative
    launch followed by a failed stream capture at step 0."""
    cnet = pp.compile_network(balanced(1000, dt=0.1))
    state = {"n": 0, "dead": False}
    make = fake.coop.__call__

    class Faulting:
        def __init__(self, k):
            self.k = k

        def __getattr__(self, name):
            return getattr(self.k, name)

        def launch_packed(self, *a, **kw):
            state["n"] += 1
            if state["dead"]:
                raise CooperativeUnavailable("cuLaunchCooperativeKernel (x): an illegal memory "
                                               "access was encountered (CUresult 700)")
            if state["n"] == 2:
                state["dead"] = True          # this launch faults, asynchronously
            self.k.launch_packed(*a, **kw)
    monkeypatch.setattr(CU, "get_cooperative_kernel",
                        lambda name, defines=None: Faulting(make(name, defines)))

    def sync(self):
        if state["dead"]:
            raise FakeError("an illegal memory access was encountered")
    monkeypatch.setattr(fake.Stream, "synchronize", sync)
    with CU.CUDASimulator(cnet, "procedural", persistent=True, graph_steps=20,
                          record_chunk_steps=200) as sim:
        with pytest.raises(CU.CUDAKernelError, match=r"CUDA error in steps 0\.\.39 \(kernels "
                                                     r"pp_step_persistent_procedural; loop "
                                                     r"persistent\): an illegal memory access"):
            sim.run_steps(1000, [])
        assert sim.persistent_error is None


def test_cooperative_kernel_binds_libcuda_symbols():
    """CooperativeKernel drives the documented driver calls (on a stand-in lib): module load,
    function lookup, register count, occupancy with dynamic shared memory, a cooperative
    launch whose kernelParams point at the arguments in COOPERATIVE_KERNELS order and
    widths, a refused launch -> CooperativeUnavailable with the driver's words, a missing
    symbol -> CooperativeUnavailable, and __device__ variables by cuModuleGetGlobal."""
    import ctypes
    from pyproc import kernels as K
    MOD, FN = 0x111, 0x222
    calls, rc = [], {"cuLaunchCooperativeKernel": 0}

    def out(p, value):
        p._obj.value = value

    def h(x):                                   # a handle as the driver would see it
        return x.value if hasattr(x, "value") else x

    def load(pmod, image):
        calls.append(("load", image))
        out(pmod, MOD)
        return 0

    def getf(pfn, mod, name):
        calls.append(("getf", h(mod), name))
        out(pfn, FN)
        return 0

    def attr(pval, which, fn):
        assert which in (1, 4) and h(fn) == FN     # SHARED_SIZE_BYTES, NUM_REGS
        out(pval, {1: 640, 4: 78}[which])
        return 0

    def occ(pn, fn, block, smem):
        calls.append(("occ", h(fn), block, smem))
        out(pn, 3)
        return 0

    def launch(fn, gx, gy, gz, bx, by, bz, smem, stream, params):
        name = "pp_step_persistent_stored"
        fmt = K.COOPERATIVE_KERNELS[name][1]
        width = {"P": ctypes.c_uint64, "Q": ctypes.c_uint64, "I": ctypes.c_uint32}
        vals = [ctypes.cast(params[i], ctypes.POINTER(width[c])).contents.value
                for i, c in enumerate(fmt)]
        calls.append(("launch", h(fn), (gx, gy, gz), (bx, by, bz), smem, h(stream), vals))
        return rc["cuLaunchCooperativeKernel"]

    def errstr(code, ps):
        out(ps, b"too many blocks in cooperative launch")
        return 0

    def setattr_(fn, which, value):
        calls.append(("setattr", h(fn), which, value))
        return 0

    def getglobal(pptr, psize, mod, name):
        assert h(mod) == MOD and name == b"pp_phase_cycles"
        out(pptr, 0xdead0)
        out(psize, 32)
        return 0

    lib = types.SimpleNamespace(cuModuleLoadData=load, cuModuleGetFunction=getf,
                                cuFuncGetAttribute=attr,
                                cuOccupancyMaxActiveBlocksPerMultiprocessor=occ,
                                cuLaunchCooperativeKernel=launch, cuGetErrorString=errstr,
                                cuModuleGetGlobal_v2=getglobal, cuFuncSetAttribute=setattr_)
    k = K.CooperativeKernel("pp_step_persistent_stored", b"\x7fELF-cubin", lib)
    assert k.num_regs == 78 and k.static_shared == 640
    assert calls[:2] == [("load", b"\x7fELF-cubin"),
                         ("getf", MOD, b"pp_step_persistent_stored")]
    assert k.max_blocks_per_sm(256, 4096) == 3 and calls[-1] == ("occ", FN, 256, 4096)
    n_args = len(K.COOPERATIVE_KERNELS["pp_step_persistent_stored"][1])
    args = list(range(1, n_args + 1))
    args[0] = 2 ** 40 + 5                         # a pointer above 4 GiB keeps all 64 bits
    k.launch(396, 256, 0xabc, *args, shared=512)
    assert calls[-1] == ("launch", FN, (396, 1, 1), (256, 1, 1), 512, 0xabc, args)
    k.set_max_dynamic_shared(70000)               # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    assert calls[-1] == ("setattr", FN, 8, 70000)
    with pytest.raises(TypeError, match=f"takes {n_args} arguments"):
        k.launch(396, 256, 0xabc, *args[:-1])
    rc["cuLaunchCooperativeKernel"] = 720
    with pytest.raises(K.CooperativeUnavailable,
                       match=r"too many blocks in cooperative launch \(CUresult 720\)"):
        k.launch(396, 256, 0xabc, *args)
    assert k.global_address("pp_phase_cycles") == (0xdead0, 32)
    del lib.cuLaunchCooperativeKernel
    with pytest.raises(K.CooperativeUnavailable, match="lacks"):
        K.CooperativeKernel("pp_step_persistent_stored", b"x", lib)
    with pytest.raises(KeyError, match="no cooperative kernel"):
        K.CooperativeKernel("pp_nope", b"x", lib)


def test_simulation_meta_names_the_loop(fake, tmp_path):
    """Simulation(backend='cuda') results say which card and step loop ran; they survive
    save/load with the rest of the summary."""
    sim = pp.Simulation(_mixed(), backend="cuda", connectivity="procedural", persistent=True)
    try:
        res = sim.run(5.0)
    finally:
        sim.sim.close()
    m = res.meta
    assert m["device_name"] == "Fake GPU" and m["loop_mode"] == "persistent"
    assert m["loop_tuning"] is None and m["persistent_error"] is None
    res.save(str(tmp_path / "r"))
    back = pp.load_results(str(tmp_path / "r"))
    assert back.meta["loop_mode"] == "persistent"
    cpu = pp.Simulation(_mixed(), backend="cpu").run(1.0)
    assert "loop_mode" not in cpu.meta


def test_persistent_smem_layout():
    """The dynamic shared memory of a persistent block, part by part (8-byte aligned), as
    kernels/step_persistent.cu lays it out: tile accumulator, network tables, sampler
    tables."""
    from pyproc.compile import POP_DTYPE, PROJ_DTYPE
    cnet = _mixed()                                    # 3 populations, 5 projections
    r8 = lambda n: (n + 7) // 8 * 8                    # noqa: E731
    net = 5 * PROJ_DTYPE.itemsize + 3 * POP_DTYPE.itemsize
    outs = r8(4 * 4) + r8(4 * 5)
    assert CU.persistent_smem_bytes(cnet, "procedural", 0, 0) == 0
    assert CU.persistent_smem_bytes(cnet, "procedural", 4228, 0) == 4232
    assert CU.persistent_smem_bytes(cnet, "procedural", 0, 1) == net + 2 * outs
    assert CU.persistent_smem_bytes(cnet, "stored", 0, 1) == net + outs
    assert CU.persistent_smem_bytes(cnet, "procedural", 100, 3) == 104 + net + 2 * outs + 4 * 13762
    assert CU.persistent_smem_bytes(cnet, "stored", 0, 2) == 0     # no sampler tables


def _mixed_persistent(connectivity, **opt):
    """The mixed network, 60 steps on the persistent loop with the given options (launches
    of 20 steps, one record chunk): (its spikes by step, the CPU reference's, the closed
    simulator)."""
    cnet = _mixed()
    _, want = _cpu(cnet, 60)
    with CU.CUDASimulator(cnet, connectivity, persistent=True, graph_steps=20,
                          record_chunk_steps=60, **opt) as sim:
        rec = []
        sim.run_steps(60, rec)
    return _by_step(rec), want, sim


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
def test_shared_tables_option(fake, connectivity):
    """shared_tables=True: the PP_SHARED_TABLES build, the flags and the shared memory the
    launch asks for (opt-in above 48 KiB); same spikes (the host side only: the copy itself
    runs on a GPU, tests/test_cuda.py)."""
    got, want, sim = _mixed_persistent(connectivity, shared_tables=True)
    cnet = sim.cnet
    assert got == want and sim.loop_mode == "persistent"
    flags = 3 if connectivity == "procedural" else 1
    assert sim.smem_tables == flags
    assert sim.persistent_smem == CU.persistent_smem_bytes(cnet, connectivity, 0, flags)
    assert fake.coop.defines[-1] == {"PP_SHARED_TABLES": 1,       # 3 blocks per SM
                                     "PP_PERSISTENT_TILES": 0}
    assert fake.coop.shared_asked == sim.persistent_smem
    if sim.persistent_smem > 48 * 1024:
        assert fake.coop.max_dynamic == sim.persistent_smem
    with CU.CUDASimulator(cnet, connectivity, persistent=True) as sim:
        assert sim.smem_tables == 0 and sim.persistent_smem == 0
        assert fake.coop.defines[-1] is None


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
def test_unit_map_option(fake, connectivity):
    """unit_map=True: the PP_UNIT_MAP build of the persistent kernel (merged with the
    shared-tables build when both are asked for); same spikes (the host side only: the
    unit phase itself runs on a GPU, tests/test_cuda.py); off by default."""
    got, want, sim = _mixed_persistent(connectivity, unit_map=True)
    cnet = sim.cnet
    assert got == want and sim.loop_mode == "persistent" and sim.unit_map
    assert fake.coop.defines[-1] == {"PP_UNIT_MAP": 1}
    with CU.CUDASimulator(cnet, connectivity, persistent=True, unit_map=True,
                          shared_tables=True):
        assert fake.coop.defines[-1] == {"PP_SHARED_TABLES": 1, "PP_PERSISTENT_MIN_BLOCKS": 2,
                                         "PP_UNIT_MAP": 1, "PP_PERSISTENT_TILES": 0}
    with CU.CUDASimulator(cnet, connectivity, persistent=True) as sim:
        assert not sim.unit_map and fake.coop.defines[-1] is None


def test_static_shared_memory_counts_for_the_opt_in(fake):
    """A block may use 48 KiB of static + dynamic shared memory without raising the
    kernel's dynamic limit: the unit-map build's 24,048 static bytes with a 32,896-byte
    tile buffer (p = 0.05: segments of 256) need the opt-in although the dynamic bytes
    alone are under 48 KiB; without it the occupancy is 0 and the run fell back to the
    graph loop.  A kernel that fits without it is left as it is."""
    cnet = pp.compile_network(balanced(2000, p=0.05, dt=0.1))
    with CU.CUDASimulator(cnet, "procedural", persistent=True, unit_map=True,
                          bernoulli_tiles=True) as sim:
        assert sim.loop_mode == "persistent", sim.persistent_error
        assert fake.coop.shared_asked < 48 * 1024 < fake.coop.shared_asked + 24048
        assert fake.coop.max_dynamic == fake.coop.shared_asked
    fake.coop.max_dynamic = 0
    with CU.CUDASimulator(cnet, "procedural", persistent=True, bernoulli_tiles=True) as sim:
        assert sim.loop_mode == "persistent" and fake.coop.max_dynamic == 0


def test_throughput_build_option(fake):
    """throughput_build=True: the PP_WARP_SEGMENTS=0, 4-blocks-per-SM build of the
    persistent kernel, recorded in the run's meta; same spikes (host side; the kernel runs
    on the SIMT emulator and the GPU); with unit_map or shared_tables a ValueError that
    names both, before anything is compiled."""
    got, want, sim = _mixed_persistent("procedural", throughput_build=True)
    cnet = sim.cnet
    assert got == want and sim.throughput_build
    assert fake.coop.defines[-1] == {"PP_WARP_SEGMENTS": 0, "PP_PERSISTENT_MIN_BLOCKS": 4,
                                     "PP_PERSISTENT_TILES": 0}
    # all the blocks that fit (the fake's occupancy: 3 per SM), not the fewest that
    # hold the 4 neuron blocks (1 per SM, the default build's grid)
    assert sim.persistent_grid == 3 * sim.n_sm
    with CU.CUDASimulator(cnet, "procedural", persistent=True) as sim:
        assert sim.persistent_grid == sim.n_sm
    n = len(fake.coop.defines)
    for other in ("unit_map", "shared_tables"):
        with pytest.raises(ValueError, match=f"throughput_build=True .*unit_map or shared_tables"):
            CU.CUDASimulator(cnet, "procedural", throughput_build=True, **{other: True})
    # the throughput and shared-tables builds leave the tile phase out (registers)
    for build in ("throughput_build", "shared_tables"):
        with pytest.raises(ValueError, match=f"{build}=True cannot be combined with "
                                             f"bernoulli_tiles=True"):
            CU.CUDASimulator(cnet, "procedural", persistent=True, bernoulli_tiles=True,
                             **{build: True})
        with CU.CUDASimulator(cnet, "stored", persistent=True, bernoulli_tiles=True,
                              **{build: True}) as sim:   # stored: tiles do not apply
            assert sim.n_tiles == 0
    assert len(fake.coop.defines) == n + 2
    res = pp.Simulation(cnet, backend="cuda", persistent=True, throughput_build=True).run(2.0)
    assert res.meta["throughput_build"] is True


def _delays_net(delay_ms):
    net = pp.Network(dt=0.1, seed=4)
    net.add_population("E", 400, pp.LIF(), v_init=pp.uniform(-70.0, -54.0))
    net.add_population("I", 100, pp.LIF(), v_init=pp.uniform(-70.0, -54.0))
    net.connect("E", "I", pp.pairwise_bernoulli(0.2), weight=80.0, delay=delay_ms)
    net.connect("I", "E", pp.fixed_total_number(4000), weight=-120.0,
                delay=pp.normal(1.0, 0.2, low=0.2))
    net.add_poisson("E", rate=8.0, K=1500, weight=60.0)
    return pp.compile_network(net)


def test_min_delay_steps():
    """The shortest delay a projection can deliver after: the constant, or the truncated
    normal's smallest sample (low=0.2 ms -> 2 steps at dt 0.1 ms)."""
    k, d = CU.min_delay_steps(_delays_net(0.5))
    assert d == 2 and k == 1
    k, d = CU.min_delay_steps(_delays_net(0.1))
    assert (k, d) == (0, 1)
    _, d = CU.min_delay_steps(_mixed())               # B->A normal(0.8, 0.3): down to 1 step
    assert d == 1


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
def test_pipelined_option(fake, connectivity):
    """pipelined=True (every delay >= 2 steps): the flag reaches the kernel, the spike
    buffer holds two steps' lists, same spikes (emulated; the device loop is checked by
    tests/test_cuda.py).  A network with a 1-step delay is refused naming the projection."""
    cnet = _delays_net(0.5)
    want = _cpu(cnet, 120)[1]
    assert len(want) > 10
    with CU.CUDASimulator(cnet, connectivity, persistent=True, pipelined=True,
                          graph_steps=30, record_chunk_steps=60) as sim:
        rec = []
        sim.run_steps(120, rec)
        assert _by_step(rec) == want and fake.coop.pipelined_launches == 4
        assert sim.plan.buffers["spikes"] == 16 * cnet.n_neurons
    with pytest.raises(ValueError, match=r"pipelined=True needs every delay >= 2 steps; "
                                         r"projection 'E->I' can deliver after 1 step"):
        CU.CUDASimulator(_delays_net(0.1), connectivity, pipelined=True)
    assert fake.mem.live == 0


@pytest.mark.parametrize("loop,mode", [("graph", "graph"), ("persistent", "persistent")])
def test_cli_cuda_loop(fake, tmp_path, loop, mode):
    """pyproc run --backend cuda --cuda-loop LOOP runs that loop (fake driver) and
    summary.json says so."""
    import json
    from pyproc import cli
    out = tmp_path / "o"
    code = cli.main(["run", "balanced", "--neurons", "100", "--duration", "5", "--backend",
                     "cuda", "--cuda-loop", loop, "--out", str(out), "--quiet", "--no-plots"])
    assert code == 0
    with open(out / "summary.json") as f:
        meta = json.load(f)
    assert meta["backend"] == "cuda" and meta["loop_mode"] == mode


def test_cli_cuda_options(fake, tmp_path):
    """pyproc run --backend cuda --cuda-option NAME=VALUE reaches the CUDA simulator (the
    opt-in builds' -D macros, the grid) and summary.json records it."""
    import json
    from pyproc import cli
    out = tmp_path / "o"
    code = cli.main(["run", "balanced", "--neurons", "100", "--duration", "5", "--backend",
                     "cuda", "--cuda-loop", "persistent", "--cuda-option", "unit_map=1",
                     "--cuda-option", "pipelined=true", "--cuda-option",
                     "persistent_blocks_per_sm=2", "--out", str(out), "--quiet", "--no-plots"])
    assert code == 0
    assert fake.coop.defines[-1] == {"PP_UNIT_MAP": 1} and fake.coop.pipelined_launches > 0
    with open(out / "summary.json") as f:
        meta = json.load(f)
    assert meta["loop_mode"] == "persistent" and meta["unit_map"] is True
    assert meta["pipelined"] is True and meta["shared_tables"] is False
    assert meta["persistent_grid"] == 4 * 2


def test_cli_cuda_option_conflicts(fake, tmp_path, capsys):
    """CUDA options that do not go together are a one-line usage error naming
    --cuda-option and the simulator's reason, not a traceback."""
    from pyproc import cli
    base = ["run", "balanced", "--neurons", "100", "--duration", "5", "--backend", "cuda",
            "--out", str(tmp_path / "o"), "--quiet", "--no-plots"]
    for extra, words in ((["--cuda-loop", "persistent", "--cuda-option", "tune_builds=1"],
                          ["tune_builds=True times the persistent builds"]),
                         (["--cuda-option", "throughput_build=1", "--cuda-option",
                           "unit_map=1"], ["cannot be combined"]),
                         (["--cuda-option", "persistent_grid=2", "--cuda-option",
                           "persistent_blocks_per_sm=1"], ["not both"]),
                         (["--cuda-option", "shared_tables=1", "--cuda-option",
                           "bernoulli_tiles=1"], ["shared_tables=True", "bernoulli_tiles"])):
        code = cli.main(base + extra)
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == cli.EXIT_USAGE and len(lines) == 1 and "Traceback" not in err, err
        assert "--cuda-option" in lines[0] and all(w in lines[0] for w in words), err
    assert fake.stack == [] and fake.mem.live == 0


@pytest.mark.parametrize("loop", ["persistent", "graph"])
def test_kernel_error_keeps_the_steps_before_it(fake, monkeypatch, loop):
    _error_keeps_the_steps_before_it(monkeypatch, loop)


def _error_keeps_the_steps_before_it(monkeypatch, loop, **opt):
    """An input overflow at step t (a Poisson weight made huge after compiling, the pre-run
    check switched off: the first step in which B's Poisson count is 2, step 197, in the
    second record chunk of 150 steps): the CPU raises at
    t having recorded the spikes and state samples of steps < t; the CUDA backend finds
    the error only when it drains a chunk, but keeps the same spikes and samples and stops
    at the same step, so a partial run saves the same results on both backends."""
    net = pp.Network(dt=0.1, seed=5)
    net.add_population("B", 1)
    net.add_poisson("B", rate=3000.0, K=1, weight=10.0)             # 0.3 per step
    net.add_population("C", 50, pp.LIF(), v_init=pp.uniform(-70.0, -55.0))
    net.add_poisson("C", rate=8.0, K=2000, weight=40.0)            # spikes before that
    net.record_state("C", "V_m", neurons=[0, 7], interval=0.3)
    cnet = pp.compile_network(net)
    cnet.pops["poisson_w"][0][0] = 2 ** 31 - 1                     # a count of 2 overflows
    cpu = CPUSimulator(cnet, "stored")
    want = []
    with pytest.raises(OverflowDetected, match="population 'B'"):
        cpu.run_steps(300, want)
    t = cpu.step
    assert 150 < t < 300 and len(want) > 5 and cpu.state_blocks[0]
    monkeypatch.setattr(CU, "check_input_range", lambda cnet: None)
    with CU.CUDASimulator(cnet, "procedural", record_chunk_steps=150, graph_steps=16,
                          persistent=(loop == "persistent"), **opt) as sim:
        got = []
        with pytest.raises(OverflowDetected, match=rf"at step {t}: population 'B'"):
            sim.run_steps(300, got)
        assert sim.step == t
        assert _by_step(got) == _by_step(want)
        (cs, cv), = cpu.state_blocks[0]
        gs = np.concatenate([s for s, _ in sim.state_blocks[0]])
        gv = np.concatenate([v for _, v in sim.state_blocks[0]])
        assert np.array_equal(gs, cs) and np.array_equal(gv, cv)
