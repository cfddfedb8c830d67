"""The memory planner: exact byte arithmetic of every device buffer on a small
network, derived here by hand from the model (not from the planner's code)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import pyproc as pp
from pyproc.plan import MIN_ALLOC, device_tables, plan_network, record_capacity, report
from pyproc.rules import decoder


def _net():
    net = pp.Network(dt=0.1, seed=7)
    # A: two channels (tau_syn differ), t_ref 2 ms = 20 steps; B: one channel, t_ref 0.5 ms
    net.add_population("A", 300, pp.LIF(tau_syn_ex=2.0, tau_syn_in=5.0, t_ref=2.0))
    net.add_population("B", 100, pp.LIF(tau_syn_ex=1.0, tau_syn_in=1.0, t_ref=0.5))
    net.add_population("C", 3, pp.LIF(), record=False)
    net.connect("A", "B", pp.fixed_total_number(1234), weight=20.0, delay=1.0)    # 10 steps
    net.connect("B", "A", pp.pairwise_bernoulli(0.2), weight=-50.0, delay=0.3)     # 3 steps
    net.connect("A", "A", pp.fixed_outdegree(7, allow_autapses=False), weight=pp.normal(5.0, 1.0),
                delay=pp.normal(1.5, 0.2))
    net.connect("A", "C", decoder(), weight=1.0, delay=0.2)                        # 2 steps
    net.add_poisson("A", rate=10.0, K=100, weight=30.0)
    return net


def test_buffers_exact():
    cnet = pp.compile_network(_net())
    C = 500
    pl = plan_network(cnet, "procedural", record_chunk_steps=C)
    st = plan_network(cnet, "stored", record_chunk_steps=C)
    N = 403
    dmax_AA = int(cnet.projs["d_max"][2])
    slots_A = max(3, dmax_AA) + 1            # incoming: B->A 3 steps, A->A normal
    ring = slots_A * 2 * 300 + 11 * 1 * 100 + 3 * 1 * 3
    assert cnet.ring_size == ring
    # record: A 300 x ceil(500/21), B 100 x ceil(500/6), C not recorded
    rec = 300 * math.ceil(C / 21) + 100 * math.ceil(C / 6)
    assert record_capacity(cnet, C) == rec
    want = {
        "pops": 3 * pp.compile.POP_DTYPE.itemsize,
        "projs": 4 * pp.compile.PROJ_DTYPE.itemsize,
        "rowlen": 4 * (300 + 300),            # fixed_total_number A->B and fixed_outdegree A->A
        "sampler_tables": 4 * 13762,          # PP_TABLES_LEN int32, any model
        "poisson_tables": 4 * int(cnet.pops[0]["poisson_len"]),
        "blocks": 8 * (2 + 1 + 1),            # ceil(300/256) + ceil(100/256) + ceil(3/256)
        "pop_flags": 4 * 3,
        "out_ptr": 4 * 4,
        "out_idx": 4 * 4,
        "V": 4 * N, "Iex": 4 * N, "Iin": 4 * N, "ref": 4 * N,
        "ring": 4 * ring,
        "spikes": 8 * N,
        "rec_ids": 4 * rec,
        "rec_end": 4 * C,
        "ctrl": 64,
    }
    # procedural only: B->A (pairwise_bernoulli 0.2, constant delay) goes by tiles:
    # segment width 64 (the power of two >= 8 / 0.2), 300 / 64 -> 5 segments = 1 tile
    tiles = {"tiles": 8 * 1, "gen_out_ptr": 4 * 4, "gen_out_idx": 4 * 3}
    assert pl.buffers == {**want, **tiles}
    assert pl.total == sum(want.values()) + sum(tiles.values())
    # stored: CSR sized exactly for the fixed rules and the decoder, + 10 sd for bernoulli
    pairs = 100 * 300
    bern = math.ceil(0.2 * pairs + 10 * math.sqrt(pairs * 0.2 * 0.8))
    dec = sum(bin(i + 1)[2:].count("1") for i in range(300)) - \
        sum(((i + 1) >> j) & 1 for i in range(300) for j in range(3, 32))
    S = 1234 + bern + 7 * 300 + dec
    assert st.n_synapses_bound == S
    rows = 300 + 100 + 300 + 300
    extra = {"csr_row_base": 8 * 5, "csr_indptr": 8 * (rows + 1), "csr_targets": 4 * S,
             "csr_weights": 4 * S, "csr_delays": 2 * S}
    assert st.buffers == {**want, **extra}
    assert st.total == pl.total - sum(tiles.values()) + sum(extra.values())
    assert (pl.n_pops, pl.n_neurons, pl.n_projs, pl.n_rows) == (3, N, 4, rows)
    assert pl.record_chunk_steps == C and pl.record_capacity == rec


def test_two_spike_lists():
    """spike_lists=2 (the pipelined persistent loop) doubles the spike buffer, nothing else."""
    cnet = pp.compile_network(_net())
    one, two = plan_network(cnet, "procedural"), plan_network(cnet, "procedural", spike_lists=2)
    assert two.buffers["spikes"] == 2 * one.buffers["spikes"] == 16 * 403
    assert two.total - one.total == 8 * 403
    with pytest.raises(ValueError, match="spike_lists"):
        plan_network(cnet, "procedural", spike_lists=3)


def test_bernoulli_bound_holds():
    """The stored CSR bound is never below the real synapse count."""
    cnet = pp.compile_network(_net())
    from pyproc.connectivity import materialise
    st = plan_network(cnet, "stored")
    real = sum(int(materialise(cnet, k)[0][-1]) for k in range(len(cnet.projs)))
    assert real <= st.n_synapses_bound
    assert abs(real - st.n_synapses) < 0.05 * real


def test_min_alloc_and_no_recording():
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("X", 10, record=False)
    cnet = pp.compile_network(net)
    pl = plan_network(cnet, "procedural")
    for name in ("projs", "rowlen", "poisson_tables", "out_idx", "rec_ids"):
        assert pl.buffers[name] == MIN_ALLOC
    assert pl.record_capacity == 0
    st = plan_network(cnet, "stored")
    assert st.buffers["csr_targets"] == MIN_ALLOC and st.buffers["csr_indptr"] == 8


def test_refractory_zero_and_reset_at_threshold():
    net = pp.Network(dt=1.0, seed=1)
    net.add_population("X", 10, pp.LIF(t_ref=0.0))
    assert record_capacity(pp.compile_network(net), 7) == 70


def test_device_tables():
    cnet = pp.compile_network(_net())
    t = device_tables(cnet)
    assert t["blocks"].tolist() == [[0, 0], [0, 256], [1, 0], [2, 0]]
    # outgoing projections per source population: A has 3 (A->B, A->A, A->C), B 1
    assert t["out_ptr"].tolist() == [0, 3, 4, 4]
    assert sorted(t["out_idx"][:3].tolist()) == [0, 2, 3] and t["out_idx"][3] == 1
    assert t["max_out"] == 3
    assert t["row_base"].tolist() == [0, 300, 400, 700, 1000]
    assert t["pops"].tobytes() == cnet.pops.tobytes()
    assert t["pop_flags"].tolist() == [1, 1, 0]
    # tiles: B->A only (bernoulli, constant delay, width 64 <= 256): one tile of 5 segments
    assert t["tiles"].tolist() == [[1, 0]] and t["tile_smem_bytes"] == 4 * 32 * 65
    assert t["gen_out_ptr"].tolist() == [0, 3, 3, 3] and t["gen_max_out"] == 3
    assert sorted(t["gen_out_idx"].tolist()) == [0, 2, 3]


def test_tile_projections():
    """Tiles take pairwise_bernoulli with a constant delay and a segment width <= 256
    (p >= 1/32); a distributed delay, a wider segment or another rule stays per spike."""
    from pyproc.plan import tile_projections
    net = pp.Network(dt=0.1, seed=3)
    net.add_population("A", 5000)
    net.add_population("B", 300)
    net.connect("A", "B", pp.pairwise_bernoulli(0.1), weight=1.0, delay=1.0)       # 128: yes
    net.connect("A", "A", pp.pairwise_bernoulli(0.05), weight=1.0, delay=1.0)      # 256: yes
    net.connect("B", "A", pp.pairwise_bernoulli(0.02), weight=1.0, delay=1.0)      # 512: no
    net.connect("B", "B", pp.pairwise_bernoulli(0.5), weight=1.0,
                delay=pp.normal(1.0, 0.2))                                         # no
    net.connect("B", "A", pp.fixed_total_number(100), weight=1.0, delay=1.0, name="B->A fixed")
    cnet = pp.compile_network(net)
    assert cnet.projs["seg_width"][:3].tolist() == [128, 256, 512]
    assert tile_projections(cnet).tolist() == [True, True, False, False, False]
    t = device_tables(cnet)
    # A->B: 300 / 128 -> 3 segments, 1 tile; A->A: 5000 / 256 -> 20 segments, 1 tile
    assert t["tiles"].tolist() == [[0, 0], [1, 0]]
    assert t["tile_smem_bytes"] == 4 * 32 * 257
    assert plan_network(cnet).buffers["tiles"] == 16


def test_report(capsys):
    cnet = pp.compile_network(_net())
    text = report(cnet, 100)
    assert "procedural" in text and "stored" in text and "csr_targets" in text
    assert "neurons 403" in text and "projections 4" in text
    # every buffer of either plan has a row; a buffer one plan lacks shows '-'
    rows = {l.split()[0]: l.split()[1:] for l in text.splitlines() if l.startswith("  ")}
    for name in list(plan_network(cnet, "procedural", 100).buffers) + \
            list(plan_network(cnet, "stored", 100).buffers):
        assert name in rows, name
    assert rows["tiles"][-1] == "-" and rows["csr_targets"][0] == "-"
    # the CSR's margin is named only where a count is drawn (pairwise_bernoulli)
    assert "pairwise_bernoulli draws the count: + 10 sd" in text
    net = pp.Network(dt=0.1, seed=7)
    net.add_population("A", 30, pp.LIF())
    net.connect("A", "A", pp.fixed_total_number(100), weight=1.0, delay=1.0)
    fixed = report(pp.compile_network(net), 100)
    assert "CSR sized for 100 synapses\n" in fixed + "\n" and "10 sd" not in fixed


def test_plans_large_model_without_synapses():
    """Planning needs no synapses: a 4e6-neuron model with 8,000 projections and 3.2e10
    synapses (far more than this machine's memory could hold) is planned from the
    compiled tables alone."""
    net = pp.Network(dt=0.1, seed=3)
    for i in range(200):
        net.add_population(f"P{i}", 20000, pp.LIF(tau_syn_ex=0.5, tau_syn_in=0.5))
    rng = np.random.default_rng(0)
    for i in range(200):
        for j in rng.choice(200, 40, replace=False):
            net.connect(f"P{i}", f"P{j}", pp.pairwise_bernoulli(0.01), weight=10.0, delay=1.0)
    cnet = pp.compile_network(net)
    for c in ("procedural", "stored"):
        pl = plan_network(cnet, c)
    assert pl.n_neurons == 4_000_000 and pl.n_projs == 8000
    assert pl.n_synapses == pytest.approx(8000 * 0.01 * 20000 * 20000, rel=1e-3)


def test_report_says_whether_each_variant_fits_a_gpu(capsys):
    """With a device size the report ends with the fit of each variant, by the backend's
    own rule (free bytes minus the reserve >= the plan's total)."""
    from pyproc.plan import fits, memory_reserve
    cnet = pp.compile_network(pp.models.balanced(2000, seed=1))
    pr, st = plan_network(cnet, "procedural"), plan_network(cnet, "stored")
    assert pr.total < st.total
    total = 10 ** 8                                     # reserve 5e6 bytes
    assert memory_reserve(total) == 5 * 10 ** 6
    free = st.total + memory_reserve(total) - 1        # one byte short for stored
    assert fits(pr, free, total) and not fits(st, free, total)
    assert fits(st, free + 1, total)
    size = st.total + memory_reserve(st.total) - 1     # whole device free, short for stored
    assert not fits(st, size, size) and fits(pr, size, size)
    text = report(cnet, gpu_bytes=size, gpu_name="test GPU").splitlines()
    last = text[-1].split()
    assert last[:4] == ["fit", "fits", "does", "NOT"] and "(test" in last
    # the CPU backend's host memory (pyproc.plan.cpu_bytes), procedural and stored
    from pyproc.plan import _human, cpu_bytes
    cpu = text[-2].split("(")[0].split()
    assert cpu == ["CPU", "backend", *_human(sum(cpu_bytes(cnet, "procedural").values())).split(),
                   *_human(sum(cpu_bytes(cnet, "stored").values())).split()]
    assert memory_reserve(80 * 2 ** 30) == 256 * 2 ** 20 and memory_reserve(2 ** 30) == 2 ** 30 // 20
    from pyproc import cli
    assert cli.main(["plan", "balanced", "--neurons", "2000", "--gpu-memory", "1e-9"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].split()[:5] == ["fit", "does", "NOT", "fit", "does"]
