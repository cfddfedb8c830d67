"""The persistent step kernels' real CUDA source (kernels/step_persistent.cu) run on the
CPU by the SIMT emulator (tests/simt.py, tests/csrc/simt/): the same spikes and synaptic
events as the CPU reference, for the default build and every opt-in build (unit map,
shared tables, pipelined, tiles, throughput), both connectivities, resident and non-resident neuron
phases.  This checks the kernels' logic -- indices, work split, barriers, warp-uniform
warp operations (a warp operation reached by part of a warp deadlocks the emulator, which
reports it) -- on a machine without a GPU; the GPU tests (tests/test_cuda.py) check the
same on the hardware."""
from __future__ import annotations

import numpy as np
import pytest

import pyproc as pp
from pyproc.backends import cuda as CU
from pyproc.models import balanced

import simt
from simt import fake, simt_fake, simt_order  # noqa: F401  (fixtures)
from test_cuda_host import _by_step, _cpu, _mixed, _poisson_mix

_REF = {}


def _ref(key, build, steps):
    if key not in _REF:
        cnet = build()
        sim, want = _cpu(cnet, steps)
        _REF[key] = (cnet, want, sim.n_events)
    return _REF[key]


def _bal2000():
    return pp.compile_network(balanced(2000, dt=0.1))


def _run(cnet, connectivity, steps, **opt):
    if "persistent_grid" not in opt:
        opt.setdefault("persistent_blocks_per_sm", 1)     # 4 blocks (the fake GPU has 4 SMs)
    with CU.CUDASimulator(cnet, connectivity, persistent=True, graph_steps=50,
                          record_chunk_steps=100, **opt) as sim:
        rec = []
        sim.run_steps(steps, rec)
        assert sim.loop_mode == "persistent", sim.persistent_error
        return _by_step(rec), sim.n_events, sim


BUILDS = {
    "default": {},
    "throughput": {"throughput_build": True},
    "unit_map": {"unit_map": True},
    "shared_tables": {"shared_tables": True},
    "unit_map+shared_tables": {"unit_map": True, "shared_tables": True},
}


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
@pytest.mark.parametrize("build", list(BUILDS))
def test_mixed_network(simt_fake, build, connectivity):
    """Every rule, one- and two-channel targets, an unrecorded population; 4 neuron blocks
    on a 4-block grid: the resident neuron phase.  Launches of 50 steps, chunks of 100."""
    cnet, want, ev = _ref("mixed", _mixed, 160)
    got, ev_g, sim = _run(cnet, connectivity, 160, **BUILDS[build])
    assert sim.persistent_defines == CU.persistent_build("shared" in build, "unit" in build,
                                                         "throughput" in build)
    assert got == want and ev_g == ev


def _long_rows():
    """Rows of 100-300 synapses (several 32-synapse units per item), truncated-normal
    weights and delays, like the microcircuit's fixed_total_number projections."""
    net = pp.Network(dt=0.1, seed=21)
    net.add_population("E", 400, pp.LIF(), v_init=pp.uniform(-70.0, -52.0))
    net.add_population("I", 100, pp.LIF(tau_syn_in=1.0), v_init=pp.uniform(-70.0, -52.0))
    net.connect("E", "E", pp.fixed_total_number(80000), weight=pp.normal(30.0, 3.0),
                delay=pp.normal(1.5, 0.75))
    net.connect("E", "I", pp.fixed_outdegree(100), weight=pp.normal(40.0, 4.0),
                delay=pp.normal(0.8, 0.4))
    net.connect("I", "E", pp.fixed_total_number(30000), weight=pp.normal(-120.0, 12.0),
                delay=pp.normal(0.8, 0.4))
    net.add_poisson("E", rate=8.0, K=1200, weight=60.0)
    net.add_poisson("I", rate=8.0, K=1200, weight=60.0)
    return pp.compile_network(net)


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
@pytest.mark.parametrize("build", ["default", "unit_map"])
def test_long_rows(simt_fake, build, connectivity):
    """Items of several units (fixed-number rows of 100-300 synapses, stored CSR rows as
    long); 3 neuron blocks on a 4-block grid."""
    cnet, want, ev = _ref("long", _long_rows, 150)
    assert sum(len(v) for v in want.values()) > 100
    got, ev_g, _ = _run(cnet, connectivity, 150, **BUILDS[build])
    assert got == want and ev_g == ev


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
@pytest.mark.parametrize("build", ["default", "unit_map", "throughput"])
def test_balanced_non_resident(simt_fake, build, connectivity):
    """Balanced 2,000: 10 neuron blocks on 4 blocks (the grid-stride neuron phase); with the
    unit map its steps take both bernoulli modes (checked from the reference)."""
    cnet, want, ev = _ref("bal2000", _bal2000, 150)
    got, ev_g, sim = _run(cnet, connectivity, 150, **BUILDS[build])
    assert got == want and ev_g == ev
    if build == "unit_map" and connectivity == "procedural":
        n_warps = sim.persistent_grid * 256 // 32
        segs = int(cnet.projs["n_seg"][cnet.projs["src_pop"] == 0].sum())
        ns = np.array([len(v) for v in want.values()])
        assert (ns * segs > 4 * n_warps).any() and (ns * segs <= 4 * n_warps).any()


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
@pytest.mark.parametrize("build", ["default", "unit_map+shared_tables", "throughput"])
def test_pipelined(simt_fake, build, connectivity):
    """pipelined=True (one grid barrier per step, two spike lists; balanced 2,000 has
    15-step delays), with launches of an odd length."""
    cnet, want, ev = _ref("bal2000", _bal2000, 150)
    got, ev_g, _ = _run(cnet, connectivity, 150, pipelined=True, **BUILDS[build])
    assert got == want and ev_g == ev


def _mam_metastable():
    """The multi-area model's metastable state on a two-area toy structure: four
    populations, fixed_total_number with truncated-normal weights and delays (the
    inter-area delays 6 ms longer, clipped as GeNN's port), the only multi-area
    configuration not yet run on a GPU."""
    from mam_structures import two_areas
    from pyproc.models import multiarea
    return pp.compile_network(multiarea(two_areas(), state="metastable", seed=5, rates=0.0))


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
def test_multiarea_metastable(simt_fake, connectivity):
    """The metastable multi-area toy through the persistent kernel, 4 neuron blocks on 4,
    30 ms (spikes of the first 24 ms reach the other area)."""
    cnet, want, ev = _ref("mam", _mam_metastable, 300)
    assert sum(len(v) for v in want.values()) > 200 and cnet.pops["ring_slots"].max() > 60
    got, ev_g, _ = _run(cnet, connectivity, 300)
    assert got == want and ev_g == ev


def test_tiles_every_step(simt_fake):
    """bernoulli_tiles with tile_min_spikes=1: the shared-memory tile phase delivers the
    constant-delay bernoulli projection (C -> A) in every step with a spike."""
    cnet, want, ev = _ref("mixed", _mixed, 160)
    got, ev_g, _ = _run(cnet, "procedural", 160, bernoulli_tiles=True, tile_min_spikes=1)
    assert got == want and ev_g == ev


def test_three_blocks_per_sm(simt_fake):
    """All the blocks that fit (3 per SM: 12 blocks, more blocks than neuron blocks)."""
    cnet, want, ev = _ref("mixed", _mixed, 160)
    got, ev_g, sim = _run(cnet, "procedural", 160, persistent_blocks_per_sm=99,
                          unit_map=True)
    assert sim.persistent_grid == 12
    assert got == want and ev_g == ev


def _one_block():
    """One population of 200 neurons (one neuron block), recurrent bernoulli and
    fixed-number projections: the whole network in one persistent block."""
    net = pp.Network(dt=0.1, seed=8)
    net.add_population("E", 200, pp.LIF(), v_init=pp.uniform(-70.0, -52.0))
    net.connect("E", "E", pp.pairwise_bernoulli(0.1, allow_autapses=False),
                weight=pp.normal(40.0, 4.0), delay=1.0, name="ex")
    net.connect("E", "E", pp.fixed_outdegree(10), weight=-30.0, delay=pp.normal(0.8, 0.3),
                name="in")
    net.add_poisson("E", rate=8.0, K=1200, weight=50.0)
    return pp.compile_network(net)


@pytest.mark.parametrize("net,grid,pipelined,connectivity", [
    ("mixed", 1, False, "procedural"), ("mixed", 1, False, "stored"),
    ("mixed", 2, False, "procedural"), ("one_block", 1, False, "procedural"),
    ("one_block", 1, False, "stored"), ("bal2000", 1, True, "procedural")])
def test_small_grids(simt_fake, net, grid, pipelined, connectivity):
    """persistent_grid smaller than the default: 1 block (the barrier is __syncthreads:
    the mixed network's 4 neuron blocks grid-stride, the one-block network resident;
    both connectivities), 2 blocks (grid barrier, grid-stride), and pipelined on 1
    block."""
    cnet, want, ev = {"mixed": lambda: _ref("mixed", _mixed, 160),
                      "one_block": lambda: _ref("one", _one_block, 160),
                      "bal2000": lambda: _ref("bal2000", _bal2000, 150)}[net]()
    steps = 150 if net == "bal2000" else 160
    assert sum(len(v) for v in want.values()) > 50
    got, ev_g, sim = _run(cnet, connectivity, steps, persistent_grid=grid, pipelined=pipelined)
    assert sim.persistent_grid == grid
    assert (sim._n_blocks <= grid) == (net == "one_block")      # resident neuron phase
    assert got == want and ev_g == ev


@pytest.mark.parametrize("net,pipelined,connectivity", [
    ("mixed", False, "procedural"), ("mixed", False, "stored"),
    ("one_block", False, "procedural"), ("one_block", False, "stored"),
    ("long", False, "procedural"), ("long", False, "stored"),
    ("bal2000", False, "procedural"), ("bal2000", True, "procedural"),
    ("bal2000", True, "stored")])
def test_one_block_build(simt_fake, net, pipelined, connectivity):
    """one_block=True: the whole network on one block of 512 threads, the ring and the
    spike list(s) in shared memory, copied in and out at every launch of 50 steps (the
    ring carries synapses due in later launches).  The mixed network's 4 neuron blocks
    and balanced 2,000's 10 take 2 and 5 passes of the block's threads; a single neuron
    block (200 neurons) leaves 312 threads idle; balanced 2,000 also pipelined (two
    shared spike lists); the long rows' fixed-number items take several units."""
    cnet, want, ev = {"mixed": lambda: _ref("mixed", _mixed, 160),
                      "one_block": lambda: _ref("one", _one_block, 160),
                      "long": lambda: _ref("long", _long_rows, 150),
                      "bal2000": lambda: _ref("bal2000", _bal2000, 150)}[net]()
    steps = 150 if net in ("bal2000", "long") else 160
    assert sum(len(v) for v in want.values()) > 50
    got, ev_g, sim = _run(cnet, connectivity, steps, one_block=True, pipelined=pipelined,
                          persistent_grid=1)
    assert sim.persistent_grid == 1 and sim.one_block and sim._build.block == 512
    assert sim.persistent_defines == CU.ONE_BLOCK_BUILD
    assert sim.persistent_smem == CU.one_block_smem_bytes(cnet, 2 if pipelined else 1)
    assert simt_fake.coop.launches == -(-steps // 50)
    assert got == want and ev_g == ev


@pytest.mark.parametrize("net,connectivity", [("mixed", "procedural"), ("mixed", "stored"),
                                              ("bal2000", "procedural")])
def test_auto_tunes_builds(simt_fake, net, connectivity):
    """persistent="auto" with tune_builds=True: after the warm-up, the default,
    shared-tables, unit-map, both and throughput builds (and where every delay is >= 2
    steps, balanced 2,000, the pipelined loop of the default and shared-tables builds),
    procedural also the default build with the tile phase on (and its pipelined loop),
    the one-block build (and its pipelined loop), and the graph loop (procedural also
    with the tile kernel) each run an untimed and two timed batches in
    turns, mid-run, on the same device state
    (tile_min_spikes=1: the tile batches run the tile phase in every step with a spike),
    and the run goes on with one of them: the CPU reference's spikes and events
    throughout."""
    labels = ["default", "shared", "units", "shared+units", "throughput"]
    if net == "bal2000":
        labels += ["pipelined", "shared+pipelined"]
    graphs = ["graph"]
    if connectivity == "procedural":            # the tile phase on (bernoulli_tiles None)
        labels += ["tiles", "pipelined+tiles"] if net == "bal2000" else ["tiles"]
        graphs += ["graph_tiles"]
    # small networks: the one-block build (ring in shared memory, copied in and out)
    labels += ["one_block", "one_block+pipelined"] if net == "bal2000" else ["one_block"]
    steps = 50 + 3 * (len(labels) + len(graphs)) * 10 + 10   # warm-up, tuning, 10 after
    cnet, want, ev = _ref(f"{net}{steps}", {"mixed": _mixed, "bal2000": _bal2000}[net], steps)
    with CU.CUDASimulator(cnet, connectivity, graph_steps=10, record_chunk_steps=100,
                          tune_builds=True, tile_min_spikes=1) as sim:
        assert [b.label for b, _ in sim._tune_cands] == labels
        rec = []
        sim.run_steps(steps, rec)
        assert sim.loop_tuning is not None
        assert len(sim.loop_tuning) == len(labels) + len(graphs) + 4
        assert all(g + "_s_per_step" in sim.loop_tuning for g in graphs)
        assert _by_step(rec) == want and sim.n_events == ev


def test_emulator_sees_a_broken_kernel(simt_fake, monkeypatch):
    """The emulator runs the kernel source: a profiling build without the propagation phase
    (PP_PROFILE_SKIP=1) delivers no event and changes the spikes."""
    import simt
    orig = simt.SimtCoopKernel.__init__

    def init(self, owner, name, defines):
        orig(self, owner, name, {**(defines or {}), "PP_PROFILE_SKIP": 1})
    monkeypatch.setattr(simt.SimtCoopKernel, "__init__", init)
    cnet, want, ev = _ref("mixed", _mixed, 160)
    got, ev_g, _ = _run(cnet, "procedural", 160)
    assert ev_g == 0 and ev > 0 and got != want


@pytest.mark.parametrize("connectivity,csr_build,tiles", [
    ("procedural", "device", None), ("procedural", "device", True),
    ("stored", "device", None), ("stored", "host", None)])
def test_graph_loop_kernels(simt_fake, connectivity, csr_build, tiles):
    """The per-step kernels (neuron update, propagation, record advance; the device CSR
    build; with bernoulli_tiles=True the tile kernel in every step and the per-spike
    kernel on the rest) from their source: the graph loop gives the CPU reference's
    spikes."""
    cnet, want, ev = _ref("mixed", _mixed, 160)
    with CU.CUDASimulator(cnet, connectivity, persistent=False, graph_steps=50,
                          record_chunk_steps=100, prop_blocks=4, csr_build=csr_build,
                          bernoulli_tiles=tiles) as sim:
        rec = []
        sim.run_steps(160, rec)
        assert sim.loop_mode == "graph" and sim.step_tiles == bool(tiles)
        assert _by_step(rec) == want and sim.n_events == ev


@pytest.mark.parametrize("how", ["resident", "grid_stride", "one_block", "graph"])
def test_several_poisson_inputs(simt_fake, how):
    """Up to four Poisson inputs per population (pp_poisson_input), a step current
    (pp_i_e), a Poisson source population (pp_source_spike) and a spike-array population
    (pp_array_spike, its cursor in the neuron's ref) in every neuron phase:
    the persistent kernel's resident phase (A's tables past the shared copy), its
    grid-stride phase (one block for 3 neuron blocks), the one-block build and the graph
    loop's neuron kernel give the CPU reference's spikes."""
    cnet, want, ev = _ref("poisson_mix", _poisson_mix, 120)
    pa, pb, ps, pg, ph = cnet.pops
    assert int(pg["kind"]) == 2 and int(pg["poisson_len"]) == 181 and int(pg["src_p"]) == 0
    assert int(ph["kind"]) == 2 and int(ph["poisson_len"]) == 6 and int(ph["src_p"]) == 1
    assert (int(pb["dc_start"]), int(pb["dc_stop"])) == (30, 90)
    assert int(ps["kind"]) == 1 and (int(ps["src_start"]), int(ps["src_stop"])) == (20, 80)
    lo, hi = int(ps["offset"]), int(ps["offset"]) + int(ps["n"])
    src = {s for s, ids in want.items() if any(lo <= i < hi for i in ids)}
    assert src and min(src) >= 20 and max(src) < 80            # the source's window
    assert int(pa["poisson_len"]) > 256 >= int(pb["poisson_len"]) and int(pb["poisson_n"]) == 4
    assert sum(len(v) for v in want.values()) > 50
    if how == "graph":
        with CU.CUDASimulator(cnet, "procedural", persistent=False, graph_steps=50,
                              record_chunk_steps=100, prop_blocks=4) as sim:
            rec = []
            sim.run_steps(120, rec)
            got, ev_g = _by_step(rec), sim.n_events
    else:
        opt = {"resident": {"persistent_grid": 6}, "grid_stride": {"persistent_grid": 1},
               "one_block": {"one_block": True, "persistent_grid": 1}}[how]
        got, ev_g, sim = _run(cnet, "procedural", 120, **opt)
        assert (sim._n_blocks <= sim.persistent_grid) == (how == "resident")
    assert got == want and ev_g == ev


@pytest.mark.parametrize("n_spikes", [300, 700])
def test_propagation_tiles_equal_per_spike(simt_fake, n_spikes):
    """The per-step tile kernel (dynamic shared memory) + the per-spike kernel on the rest
    leave the same delay ring and count the same events as the per-spike kernel on
    everything (the propagation benchmark's path; spikes of balanced 3,000 at dt 1 ms,
    whose 4 bernoulli projections are one tile each, on 4 blocks: 2 chunks of 150 spikes,
    or, with 700, 3 chunks of 234, since a chunk's spike list holds at most 256), and so
    does the tile kernel that takes spikes from the global list (PP_TILE_COMPACT=0, the
    bench's A/B: 2 chunks of 350).  The ring, a NumPy-twin delivery of the same rows, is
    the reference."""
    from kernel_example import twin_ring
    cnet = pp.compile_network(balanced(3000, dt=1.0))
    rng = np.random.default_rng(3)
    spikes = cnet.spike_pairs(np.sort(rng.choice(cnet.n_neurons, n_spikes, replace=False)))
    rings, events = [], []
    for tiles, defines in ((True, None), (True, {"PP_TILE_COMPACT": 0}), (False, None)):
        with CU.CUDASimulator(cnet, "procedural", persistent=False, prop_blocks=4,
                              bernoulli_tiles=True) as sim:
            sec, ev = sim.time_propagation(spikes, repeats=1, tiles=tiles, defines=defines)
            assert sim.last_propagation_tiles == tiles and sim.n_tiles == 4
            ring = np.empty(cnet.ring_size, np.int32)
            simt_fake.memcpy_dtoh(ring, sim._state.buffers["ring"])
            rings.append(ring)
            events.append(ev)
    assert ("propagate_procedural.cu", (("PP_TILE_COMPACT", "0"),)) in simt._LIBS
    want, n_syn = twin_ring(cnet, spikes)
    assert events[0] == events[1] == events[2] == n_syn > 0
    for ring in rings:                                      # warm-up + 1 timed propagation
        np.testing.assert_array_equal(ring, 2 * want)


def test_bernoulli_lane_walk_several_segments(simt_fake):
    """The per-spike kernel's lane walk over several segments per lane (the flat
    constant-delay walk: a lane moves to its next segment while the others are still in
    theirs; and the segment-by-segment walk of random delays) leaves the ring of the
    NumPy twin, and counts its synapses; so does the build with the old walk
    (PP_FLAT_WALK=0, the bench's A/B).  One block: lane l walks segments l, l + 32, ..."""
    from kernel_example import long_bernoulli, twin_ring
    cnet, spikes = long_bernoulli()
    assert sorted(cnet.projs["n_seg"].tolist()) == [2, 47, 188]
    with CU.CUDASimulator(cnet, "procedural", persistent=False, prop_blocks=1) as sim:
        _, ev = sim.time_propagation(spikes, repeats=1, tiles=False)
        ring = np.empty(cnet.ring_size, np.int32)
        simt_fake.memcpy_dtoh(ring, sim._state.buffers["ring"])
        # the bench's A/B: the build that walks every segment separately adds the same
        _, ev_ab = sim.time_propagation(spikes, repeats=1, tiles=False,
                                        defines={"PP_FLAT_WALK": 0})
        ring_ab = np.empty(cnet.ring_size, np.int32)
        simt_fake.memcpy_dtoh(ring_ab, sim._state.buffers["ring"])
    assert ("propagate_procedural.cu", (("PP_FLAT_WALK", "0"),)) in simt._LIBS
    want, n_syn = twin_ring(cnet, spikes)
    assert ev == ev_ab == n_syn > 100_000
    np.testing.assert_array_equal(ring, 2 * want)       # warm-up + 1 timed propagation
    np.testing.assert_array_equal(ring_ab, 4 * want)


def _burst():
    """Every neuron above threshold at step 0: a first step of 1,200 (spike, projection)
    items (more than the unit map's 1,024: pp_procedural_phase / pp_stored_phase), then
    quiet steps (unit-mapped)."""
    net = pp.Network(dt=0.1, seed=5)
    net.add_population("E", 600, pp.LIF(V_th=-50.0), v_init=-49.0)
    net.add_population("I", 150, pp.LIF(V_th=-50.0), v_init=pp.uniform(-70.0, -60.0))
    net.connect("E", "E", pp.fixed_outdegree(40), weight=pp.normal(20.0, 2.0), delay=1.0)
    net.connect("E", "I", pp.pairwise_bernoulli(0.2), weight=30.0, delay=pp.normal(1.0, 0.3))
    net.add_poisson("E", rate=8.0, K=1000, weight=50.0)
    return pp.compile_network(net)


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
def test_unit_map_falls_back_on_large_steps(simt_fake, connectivity):
    cnet, want, ev = _ref("burst", _burst, 80)
    first = min(want)
    assert len(want[first]) * 2 > 1024 and max(len(v) for s, v in want.items() if s > first) < 512
    got, ev_g, _ = _run(cnet, connectivity, 80, unit_map=True)
    assert got == want and ev_g == ev


def test_documented_gpu_commands_on_the_emulator(simt_fake, tmp_path, monkeypatch, capsys):
    """The README / docs/cli.md console lines marked `# needs a GPU`, run in-process with
    the CUDA backend on the fake driver and every kernel from its source in the emulator:
    exit 0, the run's files written, the summary naming the cuda backend."""
    import json
    import shlex

    from pyproc import cli
    from test_cli import MARK_GPU, documented_commands
    lines = [p.values[0] for p in documented_commands() if p.values[0].endswith("# " + MARK_GPU)]
    assert len(lines) >= 2
    monkeypatch.chdir(tmp_path)
    for line in lines:
        argv = shlex.split(line.partition("  # ")[0])
        code = cli.main(argv[1:])
        err = capsys.readouterr().err
        assert code == 0, (line, err)
        out = tmp_path / argv[argv.index("--out") + 1]
        assert (out / "spikes.npz").is_file()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["backend"] == "cuda" and summary["partial"] is False, line
        assert summary["device_name"] == "Fake GPU"


@pytest.mark.parametrize("order", [(1, 1), (2, 7), (2, 8)], ids=["reversed", "shuffle7",
                                                                  "shuffle8"])
@pytest.mark.parametrize("opt", [{}, {"unit_map": True}, {"unit_map": True, "pipelined": True},
                                 {"bernoulli_tiles": True, "tile_min_spikes": 1},
                                 {"one_block": True, "persistent_grid": 1},
                                 {"one_block": True, "persistent_grid": 1, "pipelined": True}],
                         ids=["default", "unit_map", "unit_map+pipelined", "tiles", "one_block",
                              "one_block+pipelined"])
def test_scheduling_orders(simt_fake, simt_order, order, opt):
    """Other interleavings of each block's threads (reversed, shuffled every pass): a
    shared-memory read that a missing __syncthreads leaves before its write would show
    here, and the tile phase's column queues hand out spikes in other orders; the one-block
    build's copies into and out of shared memory meet its first and last barriers.
    Balanced 2,000 (pipelined needs its 15-step delays), procedural."""
    simt_order(*order)
    cnet, want, ev = _ref("bal2000", _bal2000, 150)
    got, ev_g, _ = _run(cnet, "procedural", 150, **opt)
    assert got == want and ev_g == ev


def test_kernels_module_example_on_the_emulator(simt_fake):
    """The pyproc.kernels docstring (the README's "call a kernel on your own device arrays"
    example) runs on the fake driver, its prepared_call executing the propagation kernel's
    source in the emulator, and its ring equals the NumPy twin's delivery of the same two
    spikes (what tests/test_cuda.py::test_readme_example_runs checks on a GPU)."""
    from kernel_example import run_example, twin_ring
    ns = run_example()
    ring, n = twin_ring(ns["cnet"], ns["spikes"])
    assert np.array_equal(ns["ring_host"].astype(np.int64), ring) and n > 0
    assert ns["n_gpu"] == ns["n_twin"] == n          # the example's own comparison


def _bal2000_recorded():
    net = balanced(2000, dt=0.1)
    net.add_step_current("E", [1.0, 4.0, 6.5], [400.0, -300.0, 150.0])
    net.record_state("E", ("V_m", "I_syn"), neurons=range(0, 1600, 37), interval=0.1)
    net.record_state("I", "V_m", interval=0.7)
    return pp.compile_network(net)


@pytest.mark.parametrize("case", ["resident", "one_block", "non_resident_pipelined"])
def test_state_recording(simt_fake, case):
    """State samples (Network.record_state) read between persistent launches equal the
    CPU's bit for bit: the resident phase (state in shared memory during a launch), the
    one-block build (state, ring and spike list in shared memory) and the pipelined
    grid-stride loop all leave the state in global memory at the end of a launch, which
    the host cuts at every sample step.  Step currents that change (add_step_current,
    overlapping add_dc) are written into the population table between launches, which
    each build reads afresh at a launch's start."""
    from test_state import _assert_same_state, _recorded
    cnet = _bal2000_recorded() if case == "non_resident_pipelined" else _recorded()
    steps = 120
    want = pp.Simulation(cnet, "cpu", "stored").run(steps * cnet.dt)
    opt = {"resident": dict(persistent_blocks_per_sm=1),
           "one_block": dict(one_block=True, persistent_grid=1),
           "non_resident_pipelined": dict(persistent_blocks_per_sm=1, pipelined=True)}[case]
    sim = pp.Simulation(cnet, "cuda", "procedural", persistent=True, graph_steps=50,
                        record_chunk_steps=100, **opt)
    got = sim.run(steps * cnet.dt)
    assert sim.sim.loop_mode == "persistent", sim.sim.persistent_error
    _assert_same_state(got.state, want.state)
    assert np.array_equal(got.senders, want.senders) and np.array_equal(got.times, want.times)
    sim.sim.close()


@pytest.mark.parametrize("opt", [{}, {"one_block": True, "persistent_grid": 1}])
def test_kernel_error_keeps_the_steps_before_it(simt_fake, monkeypatch, opt):
    """The real persistent kernel after a reported input overflow at step 197: the spikes
    and state samples of the steps before it are the CPU's (tests/test_cuda_host.py)."""
    from test_cuda_host import _error_keeps_the_steps_before_it
    _error_keeps_the_steps_before_it(monkeypatch, "persistent", **opt)


@pytest.mark.parametrize("opt", [{"persistent_blocks_per_sm": 1},
                                 {"one_block": True, "persistent_grid": 1}])
def test_restore_a_cpu_checkpoint(simt_fake, tmp_path, opt):
    """The real persistent kernel continues a CPU checkpoint (Simulation.restore) cut at
    6.1 ms: the spikes, samples and events of an uninterrupted CPU run."""
    from test_checkpoint import _same
    from test_state import _recorded
    cnet = _recorded()
    want = pp.Simulation(cnet, "cpu", "stored").run(16.0)
    a = pp.Simulation(cnet, "cpu", "stored")
    a.run(6.1)
    a.checkpoint(str(tmp_path / "a.npz"))
    b = pp.Simulation(cnet, "cuda", "procedural", persistent=True, graph_steps=50,
                      record_chunk_steps=100, **opt)
    b.restore(str(tmp_path / "a.npz"))
    _same(b.run(9.9), want)
    assert b.sim.loop_mode == "persistent"
    b.sim.close()
