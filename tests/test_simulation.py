"""Neuron update and spike delivery: the NumPy twin == the gcc-built header, and the
stored (SciPy CSR) reference == the procedural twin, spike for spike."""
import ctypes
import math

import numpy as np
import pytest

import pyproc as pp
from pyproc.compile import compile_network
from pyproc.models import balanced
from pyproc.neuron import (array_spikes, i_e_at, lif_params, lif_step, poisson_counts, poisson_input,
                           source_spikes)
from conftest import ptr


def _lif_net(**kw):
    net = pp.Network(dt=0.1, seed=3)
    net.add_population("P", 1000, pp.LIF(**kw), v_init=pp.uniform(-70.0, -50.0))
    net.add_poisson("P", rate=10.0, K=500, weight=50.0)
    return compile_network(net)


@pytest.mark.parametrize("kw", [dict(tau_syn_ex=0.5, tau_syn_in=0.5, I_e=100.0),
                                dict(tau_syn_ex=2.0, tau_syn_in=5.0, tau_m=5.0, t_ref=0.5),
                                dict(tau_syn_ex=10.0, tau_syn_in=3.0, tau_m=10.0, t_ref=0.0)])
def test_lif_twin_equals_gcc_header_bit_for_bit(shim, kw):
    cnet = _lif_net(**kw)
    pop = np.ascontiguousarray(cnet.pops[0:1])
    n, steps = 1000, 400
    rng = np.random.default_rng(0)
    acc = rng.integers(-40000, 60000, size=(steps, 2, n)).astype(np.int32)
    V0 = cnet.v0.copy()
    Vc, Ec, Ic, Rc = V0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.int32)
    spk_c = np.zeros((steps, n), np.uint8)
    shim.shim_lif(ctypes.c_size_t(n), ctypes.c_size_t(steps), ptr(Vc), ptr(Ec), ptr(Ic), ptr(Rc),
                  ptr(acc), ptr(pop), ptr(spk_c))
    Vn, En, In, Rn = V0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.int32)
    spk_n = np.zeros((steps, n), np.uint8)
    for s in range(steps):
        spk_n[s] = lif_step(Vn, En, In, Rn, acc[s, 0].astype(np.int64), acc[s, 1].astype(np.int64),
                            cnet.pops[0])
    assert spk_c.sum() > 100
    np.testing.assert_array_equal(spk_c, spk_n)
    for a, b in ((Vc, Vn), (Ec, En), (Ic, In)):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    np.testing.assert_array_equal(Rc, Rn)


def _multi_poisson_net(tau_in=0.5):
    """One population with four Poisson inputs: two excitatory (one of them tiny), an
    inhibitory one, and one that never fires (K = 0) but keeps its word."""
    net = pp.Network(dt=0.1, seed=3)
    net.add_population("P", 1000, pp.LIF(tau_syn_ex=0.5, tau_syn_in=tau_in))
    net.add_poisson("P", rate=10.0, K=500, weight=50.0)
    net.add_poisson("P", rate=4.0, K=3000, weight=-120.0)
    net.add_poisson("P", rate=5.0, K=0, weight=10.0)
    net.add_poisson("P", rate=1e-3, K=1, weight=300.0)
    return compile_network(net)


@pytest.mark.parametrize("make", [_lif_net, lambda: _multi_poisson_net(0.5),
                                  lambda: _multi_poisson_net(3.0)])
def test_poisson_input_twin_equals_gcc_header(shim, make):
    cnet = make()
    pop = np.ascontiguousarray(cnet.pops[0:1])
    tab = np.ascontiguousarray(cnet.poisson_tables)
    for step in (0, 1, 12345, 2 ** 32 + 7):
        ex, inh = np.full(1000, -1, np.int64), np.full(1000, -1, np.int64)
        shim.shim_poisson_input(ctypes.c_size_t(1000), ptr(pop), ptr(tab), ctypes.c_uint32(cnet.seed),
                                ctypes.c_uint64(step), ptr(ex), ptr(inh))
        tex, tin = poisson_input(cnet.pops[0], tab, cnet.seed, step)
        np.testing.assert_array_equal(ex, tex)
        np.testing.assert_array_equal(inh, tin)
    p = cnet.pops[0]
    assert ex.any() and inh.any() == (int(p["poisson_n"]) > 1 and int(p["n_channels"]) == 2)


def test_several_poisson_inputs_layout_and_counts():
    """Input k draws Philox word k: adding inputs leaves the first one's counts as they
    were; each input's counts have its own mean (rate K dt); channels and weights by sign."""
    from scipy import stats
    one, multi = _lif_net(), _multi_poisson_net(3.0)
    p1, p = one.pops[0], multi.pops[0]
    assert int(p["poisson_n"]) == 4 and int(p["poisson_channels"]) == 0b0010
    ends = [int(e) for e in p["poisson_end"]]
    assert ends[1] - ends[0] > 0 and ends[2] == ends[1] and ends[3] > ends[2]   # K = 0: empty
    assert int(p["poisson_len"]) == ends[3] == multi.poisson_tables.size
    assert int(p["poisson_w"][1]) < 0 < int(p["poisson_w"][0])
    steps = np.arange(2000, dtype=np.uint64)
    first = poisson_counts(p1, one.poisson_tables, one.seed, steps)
    np.testing.assert_array_equal(poisson_counts(p, multi.poisson_tables, multi.seed, steps, 0),
                                  first)
    n = first.size
    for k, lam in ((0, 0.5), (1, 1.2), (2, 0.0), (3, 1e-7)):
        c = poisson_counts(p, multi.poisson_tables, multi.seed, steps, k)
        if lam == 0:
            assert not c.any()
            continue
        # the count sum of n independent Poisson(lam) draws is Poisson(n lam): two-sided
        # test at significance 1e-3
        s = int(c.sum())
        assert stats.poisson.cdf(s, n * lam) > 5e-4 and stats.poisson.sf(s - 1, n * lam) > 5e-4, k
    # independence of inputs 0 and 1 (same neuron, same step): |r| < 4 / sqrt(n)
    c0 = poisson_counts(p, multi.poisson_tables, multi.seed, steps, 0).ravel()
    c1 = poisson_counts(p, multi.poisson_tables, multi.seed, steps, 1).ravel()
    assert abs(np.corrcoef(c0, c1)[0, 1]) < 4 / np.sqrt(c0.size)
    ex, inh = poisson_input(p, multi.poisson_tables, multi.seed, steps)
    w = [int(x) for x in p["poisson_w"]]
    c3 = poisson_counts(p, multi.poisson_tables, multi.seed, steps, 3)
    np.testing.assert_array_equal(ex, c0.reshape(ex.shape) * w[0] + c3 * w[3])
    np.testing.assert_array_equal(inh, c1.reshape(inh.shape) * w[1])


def test_one_channel_population_sums_its_poisson_inputs_in_channel_0():
    """tau_syn_ex == tau_syn_in: one input channel, the inhibitory input enters channel 0
    with its negative weight."""
    cnet = _multi_poisson_net(0.5)
    p = cnet.pops[0]
    assert int(p["n_channels"]) == 1 and int(p["poisson_channels"]) == 0
    ex, inh = poisson_input(p, cnet.poisson_tables, cnet.seed, 17)
    assert not inh.any() and (ex < 0).any() and (ex > 0).any()


def test_poisson_inputs_past_four_or_silent_ones():
    net = pp.Network(dt=0.1, seed=3)
    net.add_population("P", 10, pp.LIF())
    for _ in range(4):
        net.add_poisson("P", rate=1.0, K=10, weight=1.0)
    with pytest.raises(pp.ModelError, match=r"Poisson input onto 'P': a population takes at "
                                            r"most 4 Poisson inputs"):
        net.add_poisson("P", rate=1.0, K=10, weight=1.0)
    assert len(net.poisson["P"]) == 4
    # trailing inputs that never fire are left out; one before a firing one keeps its word
    net = pp.Network(dt=0.1, seed=3)
    net.add_population("P", 10, pp.LIF())
    net.add_poisson("P", rate=0.0, K=10, weight=1.0)
    net.add_poisson("P", rate=1.0, K=10, weight=0.0)
    p = compile_network(net).pops[0]
    assert int(p["poisson_n"]) == 0 and int(p["poisson_len"]) == 0
    net.add_poisson("P", rate=1.0, K=10, weight=2.0)
    p = compile_network(net).pops[0]
    assert int(p["poisson_n"]) == 3 and list(p["poisson_end"][:3]) == [0, 0, p["poisson_len"]]


def test_poisson_counts_for_many_steps_equal_one_step_at_a_time():
    """The CPU backend draws Poisson input for many steps in one Philox call: the same
    counts as one call per step, also across the 2^32-step boundary of the counter."""
    cnet = _lif_net()
    steps = np.array([0, 1, 2, 977, 2 ** 32 - 2, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5], np.uint64)
    many = poisson_counts(cnet.pops[0], cnet.poisson_tables, cnet.seed, steps)
    assert many.shape == (steps.size, 1000) and many.sum() > 1000
    for i, step in enumerate(steps):
        np.testing.assert_array_equal(many[i], poisson_counts(cnet.pops[0], cnet.poisson_tables,
                                                              cnet.seed, int(step)))


def test_lif_step_of_all_populations_equals_one_per_population():
    """One lif_step over the per-neuron fields of every population (what the CPU backend
    runs) is bit for bit the update of each population with its own record."""
    from pyproc.models import microcircuit
    cnet = compile_network(microcircuit(0.02))
    n, pops = cnet.n_neurons, cnet.pops
    rng = np.random.default_rng(1)
    state = [cnet.v0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.int32)]
    per_pop = [a.copy() for a in state]
    params = lif_params(pops)
    spikes = 0
    for _ in range(300):
        pa = rng.normal([[300.0], [-150.0]], 300.0, size=(2, n))        # pA per step
        acc = np.round(pa / np.stack([params["inv_scale_ex"], params["inv_scale_in"]])
                       ).astype(np.int64)
        spk = lif_step(*state, acc[0], acc[1], params)
        for i in range(cnet.n_pops):
            sl = slice(int(pops[i]["offset"]), int(pops[i]["offset"] + pops[i]["n"]))
            spk_i = lif_step(*(a[sl] for a in per_pop), acc[0, sl], acc[1, sl], pops[i])
            np.testing.assert_array_equal(spk[sl], spk_i)
        spikes += int(spk.sum())
    assert spikes > 500
    for a, b in zip(state, per_pop):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
def test_run_in_uneven_pieces_equals_one_run(connectivity):
    """Poisson input drawn ahead in chunks of steps does not depend on how the run is cut
    into run_steps calls (pieces shorter and longer than a chunk)."""
    from pyproc.backends.cpu import CPUSimulator
    cnet = compile_network(balanced(600, seed=5))
    whole, pieces = [], []
    CPUSimulator(cnet, connectivity).run_steps(700, whole)
    sim = CPUSimulator(cnet, connectivity)
    sim._pois_chunk = 64
    for n in (1, 7, 130, 3, 64, 495):
        assert sim.run_steps(n, pieces) == n
    flat = lambda rec: (np.concatenate([np.full(g.size, t) for t, g in rec]),
                        np.concatenate([g for _, g in rec]))
    assert sum(g.size for _, g in whole) > 500
    for a, b in zip(flat(whole), flat(pieces)):
        np.testing.assert_array_equal(a, b)


def test_lif_refractory_and_reset_as_nest():
    """A neuron driven above threshold by I_e fires, is clamped for t_ref, then integrates."""
    net = pp.Network(dt=0.1, seed=0)
    net.add_population("P", 1, pp.LIF(I_e=1000.0, t_ref=2.0, E_L=-70.0, V_reset=-70.0,
                                      V_th=-55.0))
    sim = pp.Simulation(net)
    res = sim.run(100.0)
    isi = np.diff(res.times)
    assert res.times.size >= 3 and np.allclose(isi, isi[0])
    # integrate 1000 pA into 250 pF, tau 10 ms from E_L to 15 mV above: t = -tau ln(1 - 15/40)
    t_int = -10.0 * np.log(1 - 15.0 / (1000.0 / 250.0 * 10.0))
    assert abs(isi[0] - (2.0 + t_int)) <= 0.1 + 1e-9


def _compare(net, duration):
    out = {}
    for conn in ("stored", "procedural"):
        sim = pp.Simulation(net, connectivity=conn)
        res = sim.run(duration)
        out[conn] = (res, sim.sim.n_events)
    (a, ea), (b, eb) = out["stored"], out["procedural"]
    assert a.times.size > 0
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.senders, b.senders)
    assert ea == eb > 0
    return a


def test_stored_equals_procedural_balanced():
    res = _compare(balanced(1000, seed=9), 150.0)
    assert 1.0 < res.rates().mean() < 100.0


def test_stored_equals_procedural_fixed_number_rules_and_delays():
    net = pp.Network(dt=0.1, seed=21)
    p = pp.LIF(tau_syn_ex=1.0, tau_syn_in=3.0, E_L=-65.0, V_th=-50.0, V_reset=-65.0)
    net.add_population("E", 400, p, v_init=pp.normal(-58.0, 5.0))
    net.add_population("I", 100, p, v_init=pp.normal(-58.0, 5.0))
    net.connect("E", "E", pp.fixed_total_number(16000), weight=pp.normal(80.0, 8.0),
                delay=pp.normal(1.5, 0.75))
    net.connect("E", "I", pp.fixed_outdegree(10), weight=80.0, delay=pp.normal(1.5, 0.75))
    net.connect("I", "E", pp.fixed_total_number(8000, allow_autapses=False),
                weight=pp.normal(-320.0, 32.0), delay=pp.normal(0.75, 0.375))
    net.connect("I", "I", pp.pairwise_bernoulli(0.2, allow_autapses=False), weight=-320.0,
                delay=0.8)
    net.add_poisson("E", rate=8.0, K=2000, weight=87.8)
    net.add_poisson("I", rate=8.0, K=1800, weight=87.8)
    _compare(net, 200.0)


def test_decoder_delivery_known_answer():
    """Decoder connectivity: A_i -> B_j iff bit j of i+1 is set.  All of A fire in the same
    step; B_j's current right after the delay is exactly count_j * w (fixed point)."""
    n_a, n_b, w, delay = 20, 5, 25.0, 1.3
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("A", n_a, pp.LIF(I_e=2000.0), v_init=-70.0)
    net.add_population("B", n_b, pp.LIF(V_th=1e6, tau_syn_ex=2.0, tau_syn_in=2.0), v_init=-70.0)
    net.connect("A", "B", pp.rules.decoder(), weight=w, delay=delay)
    for conn in ("stored", "procedural"):
        sim = pp.Simulation(net, connectivity=conn)
        cpu = sim.sim
        first = None
        while first is None:
            rec = []
            cpu.run_steps(1, rec)
            if rec:
                first = rec[0][0]
                assert rec[0][1].tolist() == list(range(n_a))   # all of A in one step
        d = int(round(delay / 0.1))
        cnet = sim.cnet
        b = slice(n_a, n_a + n_b)
        while cpu.step < first + d:
            cpu.run_steps(1, [])
            assert (cpu.Iex[b] == 0).all()
        cpu.run_steps(1, [])           # step first + d: the input arrives
        counts = np.array([sum(((i + 1) >> j) & 1 for i in range(n_a)) for j in range(n_b)])
        wf = int(cnet.projs[0]["w_const"])
        expect = (counts * wf).astype(np.float32) * np.float32(cnet.pops[1]["inv_scale_ex"])
        np.testing.assert_array_equal(cpu.Iex[b], expect)
        assert np.allclose(cpu.Iex[b], counts * w, rtol=1e-6)
        # A fired once so far (refractory 2 ms > delay): events = number of decoder synapses
        assert cpu.n_events == counts.sum() == cnet.expected_synapses(0)


def test_overflow_is_detected_not_wrapped():
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("A", 50, pp.LIF(I_e=3000.0), v_init=-70.0)
    net.add_population("B", 2, pp.LIF(V_th=1e6), v_init=-70.0)
    net.connect("A", "B", pp.pairwise_bernoulli(1.0), weight=100.0, delay=1.0)
    cnet = compile_network(net)
    cnet.projs["w_const"][0] = 2 ** 30          # sabotage the scale: 50 spikes overflow int32
    sim = pp.Simulation(cnet)
    with pytest.raises(pp.OverflowDetected, match="population 'B'"):
        sim.run(50.0)


@pytest.mark.parametrize("chunk", [0, -1, 2.5, True])
def test_run_refuses_bad_chunk_steps(chunk):
    sim = pp.Simulation(balanced(50, seed=1))
    with pytest.raises(pp.ModelError, match="chunk_steps"):
        sim.run(1.0, chunk_steps=chunk)


@pytest.mark.parametrize("duration", ["10", float("nan"), -1.0, 0.05])
def test_run_refuses_bad_duration(duration):
    sim = pp.Simulation(balanced(50, seed=1))
    with pytest.raises(pp.ModelError, match="duration"):
        sim.run(duration)


def test_spike_times_are_the_decimal_grid():
    """Spike times in ms are the doubles nearest k * dt as a decimal (9.2, not
    9.200000000000001), so they compare equal to times typed or read from NEST's text
    output; a dt that is no short decimal falls back to k * dt."""
    from fractions import Fraction
    from pyproc.results import step_times
    k = np.arange(0, 100001)
    for dt in (0.1, 0.025, 0.3, 1.0):
        exact = np.array([float(int(i) * Fraction(repr(dt))) for i in k[::97]])
        np.testing.assert_array_equal(step_times(k, dt)[::97], exact)
    assert 92 * 0.1 != 9.2 and step_times(92, 0.1) == 9.2
    assert step_times(5, 1 / 3) == 5 * (1 / 3)
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("A", 50, pp.LIF(I_e=600.0))
    res = pp.Simulation(net, "cpu").run(30.0)
    assert res.times.size > 50 and res.duration == 30.0
    steps = np.rint(res.times * 10).astype(np.int64)
    np.testing.assert_array_equal(res.times, steps / 10.0)


def test_changing_the_network_after_simulation_warns_once():
    """A Simulation compiles its network once; a later change (here: recording turned off,
    a population resized) does not apply to it, and run() says so, once."""
    import warnings
    from pyproc.models import balanced
    net = balanced(200)
    sim = pp.Simulation(net, backend="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = sim.run(5.0)                         # unchanged: no warning
    net.record("I", False)
    with pytest.warns(UserWarning, match="changed after this Simulation compiled it"):
        res = sim.run(5.0)
    assert res.recorded.all() and res.duration == 10.0       # the compiled network ran
    net.populations["E"].size += 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim.run(5.0)                                 # said once
    assert first.times.size <= res.times.size
    other = pp.Simulation(pp.compile_network(balanced(200)), backend="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other.run(5.0)                               # a compiled network cannot change


def test_capacitance_in_nf_warns():
    """LIF.C_m is in pF as in NEST; PyNN's cm is in nF, and C_m=0.25 would be 1000x too
    small a capacitance: a warning, not an error (it is a valid value)."""
    import warnings
    with pytest.warns(UserWarning, match=r"LIF.C_m = 0.25 pF: NEST's unit is pF"):
        assert pp.LIF(C_m=0.25).C_m == 0.25
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pp.LIF(C_m=250.0)


def _same_spikes_both_connectivities(net, ms):
    """The procedural run's results, after checking the stored run's spikes are the same."""
    res = {c: pp.Simulation(net, connectivity=c).run(ms) for c in ("procedural", "stored")}
    np.testing.assert_array_equal(res["procedural"].times, res["stored"].times)
    np.testing.assert_array_equal(res["procedural"].senders, res["stored"].senders)
    return res["procedural"]


def _source_net(rate=50.0, start=10.0, stop=60.0, dt=0.1):
    net = pp.Network(dt=dt, seed=9)
    net.add_population("S", 2000, pp.PoissonSource(rate=rate, start=start, stop=stop))
    net.add_population("E", 200, pp.LIF(), v_init=pp.uniform(-70.0, -60.0))
    net.connect("S", "E", pp.fixed_outdegree(20), weight=pp.normal(150.0, 15.0),
                delay=pp.normal(1.0, 0.3))
    return net


def test_poisson_source_twin_equals_gcc_header(shim):
    cnet = compile_network(_source_net())
    pop = np.ascontiguousarray(cnet.pops[0:1])
    assert int(pop[0]["kind"]) == 1 and (int(pop[0]["src_start"]), int(pop[0]["src_stop"])) == \
        (100, 600)
    for step in (99, 100, 345, 599, 600, 2 ** 33):
        out = np.full(2000, 7, np.uint8)
        shim.shim_source_spikes(ctypes.c_size_t(2000), ptr(pop), ctypes.c_uint32(cnet.seed),
                                ctypes.c_uint64(step), ptr(out))
        np.testing.assert_array_equal(out.astype(bool), source_spikes(cnet.pops[0], cnet.seed, step))
        assert out.any() == (100 <= step < 600)
    many = source_spikes(cnet.pops[0], cnet.seed, np.arange(90, 610, dtype=np.uint64))
    for i, step in enumerate(range(90, 610)):
        np.testing.assert_array_equal(many[i], source_spikes(cnet.pops[0], cnet.seed, step))


def test_poisson_source_spikes_in_its_window_at_its_rate():
    """Spike times in (start, stop] (ms: steps [100, 600) end at 10.1 .. 60.0 ms), the
    count Poisson-distributed with mean N rate (stop - start) (two-sided, significance
    1e-3); at most one spike per neuron and step; procedural == stored for the synapses
    it drives; the source's V_m stays constant."""
    from scipy import stats
    net = _source_net()
    r = _same_spikes_both_connectivities(net, 80.0)
    s = r.senders < 2000
    t = r.times[s]
    assert t.min() > 10.0 and t.max() <= 60.0 + 1e-9 and t.max() > 59.0
    n = int(s.sum())
    mean = 2000 * 50.0 * 0.05
    assert stats.poisson.cdf(n, mean) > 5e-4 and stats.poisson.sf(n - 1, mean) > 5e-4
    assert len(set(zip(r.senders[s].tolist(), np.round(t, 6).tolist()))) == n
    assert (~s).sum() > 20                         # E is driven by it
    cnet = compile_network(net)
    from pyproc.backends.cpu import CPUSimulator
    sim = CPUSimulator(cnet, "procedural")
    sim.run_steps(700, [])
    np.testing.assert_array_equal(sim.V[:2000], cnet.v0[:2000])


def test_poisson_source_refusals():
    net = _source_net()
    with pytest.raises(pp.ModelError, match=r"connect 'E' -> 'S': population 'S' is a "
                                            r"PoissonSource, which takes no input"):
        net.connect("E", "S", pp.fixed_outdegree(2), weight=1.0, delay=1.0)
    with pytest.raises(pp.ModelError, match=r"add_poisson: population 'S' is a PoissonSource"):
        net.add_poisson("S", rate=1.0, K=1, weight=1.0)
    with pytest.raises(pp.ModelError, match=r"population 'T': a PoissonSource has no membrane"):
        net.add_population("T", 5, pp.PoissonSource(5.0), v_init=-65.0)
    with pytest.raises(pp.ModelError, match=r"population 'T': PoissonSource rate \* dt = 1 "
                                            r"spikes per step; it must be < 1"):
        net.add_population("T", 5, pp.PoissonSource(10000.0))
    for kw, msg in (({"rate": -1.0}, r"PoissonSource.rate must be >= 0 Hz, got -1"),
                    ({"rate": 1.0, "start": 5.0, "stop": 2.0},
                     r"PoissonSource.stop must be >= start, got start=5.0, stop=2.0"),
                    ({"rate": "5"}, r"PoissonSource.rate must be a number, got '5'"),
                    ({"rate": 1.0, "stop": float("nan")}, r"PoissonSource.stop \(ms, or math.inf\)")):
        with pytest.raises(pp.ModelError, match=msg):
            pp.PoissonSource(**kw)
    with pytest.raises(pp.ModelError, match=r"params must be a pyproc.LIF, PoissonSource or "
                                            r"SpikeSourceArray"):
        net.add_population("T", 5, {"rate": 5.0})
    # no window given: from step 0 on, for ever
    cnet = compile_network(_source_net(start=0.0, stop=float("inf")))
    assert (int(cnet.pops[0]["src_start"]), int(cnet.pops[0]["src_stop"])) == (0, 2 ** 64 - 1)


def _array_net(times=None, dt=0.1):
    net = pp.Network(dt=dt, seed=4)
    per = times if times is not None else [[0.1, 0.5, 2.0], [], [5.0], [0.2, 0.3, 0.4, 9.9]]
    net.add_population("G", 4, pp.SpikeSourceArray(per))
    net.add_population("E", 50, pp.LIF(), v_init=pp.uniform(-70.0, -60.0))
    net.connect("G", "E", pp.all_to_all(), weight=500.0, delay=pp.normal(1.0, 0.3))
    return net


@pytest.mark.parametrize("shared", [False, True])
def test_spike_source_array_twin_equals_gcc_header(shim, shared):
    cnet = compile_network(_array_net([0.5, 2.0, 9.9]) if shared else _array_net())
    pop = np.ascontiguousarray(cnet.pops[0:1])
    off, ln = int(pop[0]["poisson_offset"]), int(pop[0]["poisson_len"])
    tab = np.ascontiguousarray(cnet.poisson_tables[off:off + ln])
    assert int(pop[0]["kind"]) == 2 and int(pop[0]["poisson_n"]) == 0
    assert int(pop[0]["src_p"]) == shared
    assert tab.tolist() == ([0, 3, 4, 19, 98] if shared else     # one train: starts 0, 3
                            [0, 3, 3, 4, 8, 0, 4, 19, 49, 1, 2, 3, 98])   # starts, then steps
    cur_c, cur_n = np.zeros(4, np.int32), np.zeros(4, np.int32)
    for step in range(120):
        out = np.zeros(4, np.uint8)
        shim.shim_array_spikes(ctypes.c_size_t(4), ptr(pop), ptr(tab), ctypes.c_uint64(step),
                               ptr(cur_c), ptr(out))
        np.testing.assert_array_equal(out.astype(bool),
                                      array_spikes(cnet.pops[0], cnet.poisson_tables, step, cur_n))
        np.testing.assert_array_equal(cur_c, cur_n)
    assert cur_n.tolist() == ([3] * 4 if shared else [3, 0, 1, 4])


def test_spike_source_array_emits_its_spikes():
    """Each given time T is a spike at T (the step that ends there); one sequence for all
    neurons or one per neuron, unsorted input sorted; procedural == stored; the targets
    respond."""
    r = _same_spikes_both_connectivities(_array_net(), 12.0)
    g = r.senders < 4
    got = sorted(zip(r.senders[g].tolist(), np.round(r.times[g], 9).tolist()))
    assert got == [(0, 0.1), (0, 0.5), (0, 2.0), (2, 5.0), (3, 0.2), (3, 0.3), (3, 0.4),
                   (3, 9.9)]
    assert (~g).sum() > 0
    shared = pp.Simulation(_array_net([3.0, 1.0]), connectivity="procedural").run(5.0)
    s = shared.senders < 4
    assert sorted(zip(shared.senders[s].tolist(), np.round(shared.times[s], 9).tolist())) == \
        [(i, t) for i in range(4) for t in (1.0, 3.0)]


def test_spike_source_array_refusals():
    """Times off the dt grid are refused however late (the tolerance is the rounding of
    T / dt, not a fraction of T), quoted in full; bad structures are refused when the
    SpikeSourceArray is made, naming the neuron."""
    for times, msg in (([0.15], r"spike time 0.15 ms is not a multiple of dt = 0.1"),
                       ([10000.05], r"spike time 10000.05 ms is not a multiple of dt = 0.1"),
                       ([123456.78], r"spike time 123456.78 ms is not a multiple"),
                       ([0.0], r"spike time 0.0 ms is before the first step"),
                       ([[1.0], [2.0]], r"has 2 sequences for 4 neurons"),
                       ([[1.0], [2.0, 2.0], [], []], r"neuron 1 has two spikes at 2 ms"),
                       ([2.0, 2.0], r"its neurons have two spikes at 2 ms"),
                       ([[1.0], [float("nan")], [], []], r"spike time nan ms of neuron 1 is "
                                                         r"not finite")):
        with pytest.raises(pp.ModelError, match=r"population 'G': SpikeSourceArray" + r".*" + msg):
            _array_net(times)
    for times, msg in (([["a"], [], [], []], r"spike_times of neuron 0 must be numbers"),
                       ([[1.0], 2.0], r"not a mix of times and sequences"),
                       (5.0, r"spike_times must be a sequence of times"),
                       ("1.0", r"spike_times must be a sequence of times")):
        with pytest.raises(pp.ModelError, match=r"SpikeSourceArray.*" + msg):
            pp.SpikeSourceArray(times)
    # on the grid, late and in float arithmetic: accepted
    tab, shared = pp.SpikeSourceArray([123456.8, 0.1 * 7, 1e6]).table(1, 0.1, "x")
    assert shared and tab.tolist() == [0, 3, 6, 1234567, 9999999]
    # a copy: changing the caller's list afterwards changes nothing
    times = [[1.0], [2.0], [3.0], [4.0]]
    src = pp.SpikeSourceArray(times)
    times[0].append(5.0)
    assert src.spike_times[0].tolist() == [1.0] and not src.shared
    # one train for many neurons is stored once
    tab, shared = pp.SpikeSourceArray(np.arange(1, 1001) * 0.1).table(100000, 0.1, "x")
    assert shared and tab.size == 2 + 1000
    net = _array_net()
    with pytest.raises(pp.ModelError, match=r"population 'G' is a SpikeSourceArray, which takes "
                                            r"no input"):
        net.connect("E", "G", pp.all_to_all(), weight=1.0, delay=1.0)
    with pytest.raises(pp.ModelError, match=r"a SpikeSourceArray has no membrane"):
        net.add_population("H", 2, pp.SpikeSourceArray([1.0]), v_init=-65.0)


def test_step_current_twin_equals_gcc_header(shim):
    """pp_i_e / i_e_at: I_e + amplitude (one float32 add) in steps [start, stop), I_e
    elsewhere; the LIF step with it equals the gcc-built header bit for bit."""
    net = pp.Network(dt=0.1, seed=3)
    net.add_population("P", 500, pp.LIF(I_e=120.0), v_init=pp.uniform(-70.0, -50.0))
    net.add_dc("P", 333.3, start=10.0, stop=30.0)
    cnet = compile_network(net)
    p = cnet.pops[0]
    assert (int(p["dc_start"]), int(p["dc_stop"])) == (100, 300)
    assert i_e_at(p, 99) == np.float32(120.0) and i_e_at(p, 300) == np.float32(120.0)
    assert i_e_at(p, 100) == np.float32(120.0) + np.float32(333.3)
    pop = np.ascontiguousarray(cnet.pops[0:1])
    n, steps = 500, 400
    acc = np.random.default_rng(1).integers(-20000, 30000, size=(steps, 2, n)).astype(np.int32)
    Vc, Ec, Ic, Rc = cnet.v0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32), \
        np.zeros(n, np.int32)
    spk_c = np.zeros((steps, n), np.uint8)
    shim.shim_lif(ctypes.c_size_t(n), ctypes.c_size_t(steps), ptr(Vc), ptr(Ec), ptr(Ic), ptr(Rc),
                  ptr(acc), ptr(pop), ptr(spk_c))
    Vn, En, In, Rn = cnet.v0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32), \
        np.zeros(n, np.int32)
    spk_n = np.zeros((steps, n), np.uint8)
    for s in range(steps):
        spk_n[s] = lif_step(Vn, En, In, Rn, acc[s, 0].astype(np.int64),
                            acc[s, 1].astype(np.int64), p, i_e_at(p, s))
    np.testing.assert_array_equal(spk_c, spk_n)
    np.testing.assert_array_equal(Vc.view(np.uint32), Vn.view(np.uint32))
    rate = spk_n.reshape(steps, n).sum(1)
    assert rate[100:300].sum() > 3 * rate[:100].sum() + 10      # the window drives it


def test_step_current_fires_where_theory_says():
    """A neuron without input and a 500 pA step current from 20 to 50 ms: V_inf = 20 mV
    above E_L against a 15 mV threshold, so it fires at 20 + tau ln(V_inf / (V_inf - 15))
    = 33.86 ms and again one t_ref + 13.86 ms later (49.73 ms), then never (it decays
    from reset after 50 ms); the step current adds nothing before 20 ms."""
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("P", 3, pp.LIF(E_L=-70.0, V_th=-55.0, V_reset=-70.0, t_ref=2.0,
                                      tau_m=10.0, C_m=250.0))
    net.add_dc("P", 500.0, start=20.0, stop=50.0)
    r = _same_spikes_both_connectivities(net, 100.0)
    t1 = 20.0 + 10.0 * math.log(20.0 / 5.0)
    for i in range(3):
        t = r.times[r.senders == i]
        assert t.size == 2 and abs(t[0] - t1) <= 0.1 + 1e-9 and abs(t[1] - (t1 + 2.0 + t1 - 20.0)) \
            <= 0.2 + 1e-9, t


def test_step_currents_add_up_and_change():
    """Two overlapping add_dc windows and a step-current generator add up: the stretches
    of constant total (summed in float64, rounded once), and the membrane follows the
    piecewise analytic solution V(t) = V_inf + (V(t0) - V_inf) exp(-(t - t0) / tau)."""
    from pyproc.compile import dc_segments, dc_switches
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("P", 2, pp.LIF(E_L=-70.0, V_th=0.0, tau_m=10.0, C_m=250.0))
    net.add_dc("P", 100.0, start=2.0, stop=6.0)
    net.add_dc("P", 0.1, start=4.0, stop=8.0)
    net.add_step_current("P", [5.0, 10.0, 12.0], [50.0, -50.0, -50.0])
    cnet = compile_network(net)
    seg = cnet.dc[0]
    # stretches: [20, 40) 100, [40, 50) 100.1, [50, 60) 150.1, [60, 80) 50.1, [80, 100)
    # 50, [100, inf) -50 (the two -50 stretches are one)
    assert seg["dc_start"].tolist() == [20, 40, 50, 60, 80, 100]
    assert seg["dc_stop"].tolist() == [40, 50, 60, 80, 100, 2 ** 64 - 1]
    assert seg["dc_amp"].tolist() == [np.float32(x) for x in (100, 100.1, 150.1, 50.1, 50, -50)]
    assert [(int(p), k) for p, _, k in dc_switches(cnet)] == [(40, 1), (50, 2), (60, 3),
                                                             (80, 4), (100, 5)]
    assert (int(cnet.pops[0]["dc_start"]), float(cnet.pops[0]["dc_amp"])) == (20, 100.0)
    assert dc_segments([], 0.1).size == 0
    # a generator of 100,000 changes (compiled in one sweep, under a second; it took
    # minutes when every stretch summed every window): alternating 1 and 2 pA, none merged
    big = pp.Network(dt=0.1)
    big.add_population("E", 2, pp.LIF())
    big.add_step_current("E", np.arange(100_000) * 0.1, 1.0 + np.arange(100_000) % 2)
    seg = compile_network(big).dc[0]
    assert seg.size == 100_000 and seg["dc_amp"][:4].tolist() == [1.0, 2.0, 1.0, 2.0]
    net.record_state("P", "V_m", interval=0.1)
    st = pp.Simulation(net).run(20.0).state["P"]
    v, t, want = -70.0, 0.0, []
    for end, amp in ((2.0, 0.0), (4.0, 100.0), (5.0, 100.1), (6.0, 150.1), (8.0, 50.1),
                     (10.0, 50.0), (20.0, -50.0)):
        ts = np.arange(round(t / 0.1) + 1, round(end / 0.1) + 1) * 0.1
        v_inf = -70.0 + amp * 10.0 / 250.0
        want.extend(v_inf + (v - v_inf) * np.exp(-(ts - t) / 10.0))
        v, t = want[-1], end
    assert np.abs(st["V_m"][:, 0] - np.array(want)).max() < 1e-4


def test_step_current_generator_refusals():
    net = _source_net()
    for kw, msg in [
            (dict(times=[1.0, 1.0], amplitudes=[1.0, 2.0]), "strictly increasing"),
            (dict(times=[1.0], amplitudes=[1.0, 2.0]), "same length >= 1, got 1 and 2"),
            (dict(times=[], amplitudes=[]), "same length >= 1"),
            (dict(times=[0.25], amplitudes=[1.0]), "times[0] = 0.25 ms is not >= 0 on the grid"),
            (dict(times=[-1.0], amplitudes=[1.0]), "times[0] = -1 ms is not >= 0"),
            (dict(times=[1.0], amplitudes=["1"]), "amplitudes[0] (pA) must be a number"),
            (dict(times=5.0, amplitudes=[1.0]), "times must be a sequence"),
            (dict(times="0,1", amplitudes=[1.0, 2.0]), "times must be a sequence"),
            (dict(times={0.0: 1.0}, amplitudes={0.0: 1.0}), "times must be a sequence")]:
        with pytest.raises(pp.ModelError) as e:
            net.add_step_current("E", **kw)
        assert msg in str(e.value) and "step current generator into 'E'" in str(e.value), e.value
    with pytest.raises(pp.ModelError, match=r"add_step_current: population 'S' is a "):
        net.add_step_current("S", [1.0], [1.0])
    assert net.dc == {}


def test_step_current_refusals():
    net = _source_net()
    net.add_dc("E", 10.0)
    with pytest.raises(pp.ModelError, match=r"add_dc: population 'S' is a PoissonSource"):
        net.add_dc("S", 5.0)
    with pytest.raises(pp.ModelError, match=r"need 0 <= start <= stop, got start=5 ms, stop=2 ms"):
        net.add_dc("E", 5.0, start=5.0, stop=2.0)
    with pytest.raises(pp.ModelError, match=r"step current into 'E': amplitude \(pA\) must be a "
                                            r"number"):
        net.add_dc("E", "5")
    with pytest.raises(pp.ModelError, match=r"add_dc: target"):
        net.add_dc("nope", 5.0)


def test_reserve_input_keeps_the_rounding_when_a_stimulus_is_added():
    """A late stimulus with a very large weight lowers E's fixed-point scale (its other
    inputs are re-rounded); with Network.reserve_input at least as large as both worst
    cases, the scale is the same with and without it, and so are the spikes before it
    starts (40 ms).  (Without it, whether spikes differ depends on the network: the
    rounding moves by at most half a unit of 2^-7 pA here.)"""
    def net(stimulus, reserve=None):
        n = pp.Network(dt=0.1, seed=2)
        n.add_population("E", 300, pp.LIF(), v_init=pp.uniform(-70.0, -56.0))
        n.connect("E", "E", pp.pairwise_bernoulli(0.1), weight=pp.normal(60.0, 6.0),
                  delay=pp.normal(1.5, 0.5))
        n.add_poisson("E", rate=10.0, K=1000, weight=50.0)
        if stimulus:
            n.add_population("S", 50, pp.PoissonSource(200.0, start=40.0))
            n.connect("S", "E", pp.fixed_outdegree(10), weight=30000.0, delay=1.0)
        if reserve:
            n.reserve_input("E", reserve)
        return n
    plain, stim = compile_network(net(False)), compile_network(net(True))
    assert stim.pop_names[0] == "E" and stim.scale[0, 0] < plain.scale[0, 0]   # re-scaled
    a, b = compile_network(net(False, 1e7)), compile_network(net(True, 1e7))
    assert a.scale[0, 0] == b.scale[0, 0] < plain.scale[0, 0]
    ra = pp.Simulation(a).run(40.0)
    rb = pp.Simulation(b).run(40.0)
    e = rb.senders < 300                                        # E: ids 0..299
    assert ra.times.size > 50 and not (~e).any()                # S silent before 40 ms
    np.testing.assert_array_equal(ra.times, rb.times)
    np.testing.assert_array_equal(ra.senders, rb.senders)
    with pytest.raises(pp.ModelError, match=r"reserve_input 'E': max_pA must be > 0 pA"):
        net(False).reserve_input("E", 0.0)
