"""State recording (Network.record_state, NEST's multimeter): known answers on the CPU,
the same samples with either connectivity and from every CUDA loop (fake driver), the
files, and the refusals."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

import pyproc as pp
from pyproc import hostmem
from pyproc.backends import cuda as CU
from pyproc.backends.cpu import CPUSimulator
from pyproc.errors import InsufficientMemory
from pyproc.results import load_results
from pyproc.staterec import samples_in, steps_to_sample

from fake_pycuda import fake  # noqa: F401  (a fixture)
from test_cuda_host import _mixed


def _one(lif, dt=0.1, **kw):
    net = pp.Network(dt=dt, seed=3)
    net.add_population("N", 3, lif)
    net.record_state("N", **kw)
    return net


# ---------------------------------------------------------------- known answers
def test_membrane_charging_curve():
    """A constant current I_e into a neuron at rest: V_m(t) = E_L + I_e tau_m / C_m
    (1 - exp(-t / tau_m)), sampled at interval, 2 interval, ... ms (NEST's times)."""
    lif = pp.LIF(C_m=250.0, tau_m=10.0, E_L=-70.0, V_th=-40.0, I_e=300.0)
    res = pp.Simulation(_one(lif, variables=("V_m", "I_syn"), interval=0.5)).run(20.0)
    st = res.state["N"]
    assert st["times"].tolist() == [0.5 * k for k in range(1, 41)]
    assert st["neurons"].tolist() == [0, 1, 2]
    assert st["V_m"].dtype == np.float32 and st["V_m"].shape == (40, 3)
    want = -70.0 + 300.0 * 10.0 / 250.0 * (1.0 - np.exp(-st["times"] / 10.0))
    assert np.abs(st["V_m"] - want[:, None]).max() < 2e-4        # float32 state
    assert (st["I_syn"] == 0).all()


def test_rest_and_refractory_clamp():
    """No input: V_m stays E_L exactly.  A neuron driven above threshold: after each
    spike V_m is V_reset for t_ref (the refractory clamp), sampled every step."""
    rest = pp.Simulation(_one(pp.LIF(E_L=-65.0), variables="V_m", interval=0.1)).run(5.0)
    assert (rest.state["N"]["V_m"] == np.float32(-65.0)).all()
    lif = pp.LIF(E_L=-70.0, V_th=-55.0, V_reset=-75.0, t_ref=2.0, I_e=1000.0)
    res = pp.Simulation(_one(lif, variables="V_m", interval=0.1)).run(30.0)
    v, t = res.state["N"]["V_m"][:, 0], res.state["N"]["times"]
    spikes = res.times[res.senders == 0]
    assert len(spikes) >= 3
    for s in spikes:            # the step ending at s and the 20 of t_ref: V_reset
        k = int(round(s / 0.1)) - 1
        assert (v[k:k + 21] == np.float32(-75.0)).all()
        if k + 21 < len(v):
            assert v[k + 21] > -75.0
    assert v.max() < -55.0 and np.isclose(t[-1], 30.0)


def test_synaptic_current_decays_exponentially():
    """One input spike of w pA: I_syn_ex jumps to w (up to the fixed-point unit) when it
    arrives (sent at 1.0 ms, delay 1.5 ms) and decays as exp(-t / tau_syn_ex); I_syn_in
    stays 0; I_syn is their sum."""
    net = pp.Network(dt=0.1, seed=4)
    net.add_population("S", 1, pp.SpikeSourceArray([1.0]))
    net.add_population("N", 2, pp.LIF(tau_syn_ex=2.0, tau_syn_in=5.0))
    net.connect("S", "N", pp.all_to_all(), weight=50.0, delay=1.5)
    net.record_state("N", ("I_syn_ex", "I_syn_in", "I_syn"), neurons=[1], interval=0.1)
    st = pp.Simulation(net).run(10.0).state["N"]
    ex = st["I_syn_ex"][:, 0].astype(np.float64)
    k0 = int(np.flatnonzero(ex)[0])
    assert np.isclose(st["times"][k0], 2.5)               # spike at 1.0 ms + 1.5 ms delay
    assert abs(ex[k0] - 50.0) < 1e-3
    tail = ex[k0:]
    assert np.allclose(tail, 50.0 * np.exp(-0.1 * np.arange(tail.size) / 2.0), rtol=1e-5)
    assert (st["I_syn_in"] == 0).all() and (st["I_syn"] == st["I_syn_ex"]).all()


# ---------------------------------------------------------------- the same samples
def _recorded(cnet_fn=_mixed):
    """The mixed test network with three recordings: A's V_m and both currents of 7
    neurons every step, B's I_syn (one channel) of all every 0.3 ms, C (not spike-recorded)
    V_m every 1 ms; and step currents that change: two overlapping windows into A, a
    step-current generator into B (5 stretches, 4 switches in all after the first ones)."""
    net = cnet_fn().network
    net.add_dc("A", 60.0, start=3.0, stop=12.0)
    net.add_dc("A", -90.0, start=8.0, stop=17.0)
    net.add_step_current("B", [2.0, 5.5, 9.0, 14.1], [300.0, -200.0, 0.0, 120.0])
    net.record_state("A", ("I_syn_in", "V_m", "I_syn_ex"), neurons=[299, 0, 5, 17, 100, 3, 250],
                     interval=0.1)
    net.record_state("B", "I_syn", interval=0.3)
    net.record_state("C", ("V_m",), interval=1.0)
    return pp.compile_network(net)


def _cpu_state(cnet, steps, connectivity="stored", split=()):
    sim = pp.Simulation(cnet, "cpu", connectivity)
    for n in split:
        sim.run(n * cnet.dt)
    return sim.run((steps - sum(split)) * cnet.dt)


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for pop in a:
        assert a[pop].keys() == b[pop].keys(), pop
        for k in a[pop]:
            assert a[pop][k].dtype == b[pop][k].dtype and np.array_equal(a[pop][k], b[pop][k]), \
                (pop, k)


def test_procedural_equals_stored_and_runs_continue():
    """Procedural and stored runs give identical samples; two runs of 77 and 153 steps
    give those of one run of 230; the samples change between steps (not a copy of v0)."""
    cnet = _recorded()
    ref = _cpu_state(cnet, 230)
    _assert_same_state(_cpu_state(cnet, 230, "procedural").state, ref.state)
    _assert_same_state(_cpu_state(cnet, 230, split=(77,)).state, ref.state)
    st = ref.state
    assert st["A"]["V_m"].shape == (230, 7) and st["B"]["I_syn"].shape == (76, 60)
    assert st["C"]["V_m"].shape == (23, 40)
    assert np.allclose(st["B"]["times"], 0.3 * np.arange(1, 77))
    assert (np.diff(st["A"]["V_m"], axis=0) != 0).any(axis=0).all()
    assert (st["A"]["I_syn_ex"] > 0).any() and (st["A"]["I_syn_in"] < 0).any()
    # the columns are the neurons in the order given
    cpu = CPUSimulator(cnet, "stored")
    cpu.run_steps(10, [])
    assert np.array_equal(ref.state["A"]["V_m"][9],
                          (cpu.V[[299, 0, 5, 17, 100, 3, 250]].astype(np.float64)
                           - 70.0).astype(np.float32))


@pytest.mark.parametrize("loop", ["persistent", "graph", "launch", "debug"])
def test_cuda_loops_equal_cpu(fake, loop):
    """The CUDA backend (fake driver, NumPy kernels) in every loop: samples equal to the
    CPU's, bit for bit, across record chunks of 64 steps and batches of 16, cut at the
    sample steps; the plan's state buffers have the bytes of the gathers."""
    cnet = _recorded()
    want = _cpu_state(cnet, 230)
    opt = {"persistent": dict(persistent=True), "graph": dict(persistent=False),
           "launch": dict(persistent=False, use_graph=False),
           "debug": dict(debug=True)}[loop]
    sim = pp.Simulation(cnet, "cuda", "procedural", record_chunk_steps=64, graph_steps=16,
                        **opt)
    assert sim.sim.loop_mode == loop
    plan = sim.sim.plan.buffers
    # A: [30, 80) 60, [80, 120) -30, [120, 170) -90; B: [20, 55) 300, [55, 90) -200,
    # [141, inf) 120 (0 from 9 ms: no stretch)
    assert plan["dc_table"] == 24 * 6 and len(sim.sim._dc_switches) == 4
    # gathers: every step (V, Iex, Iin of A's 7), 0.3 ms (B's 60 Iex), 1 ms (C's 40 V)
    assert plan["state_idx"] == 4 * (3 * 7 + 60 + 40)
    assert plan["state_out"] == 4 * (3 * 7 * 65 + 60 * (64 // 3 + 1) + 40 * (64 // 10 + 1))
    sim.run(10.0)
    got = sim.run(13.0)
    assert fake.dtod_copies == 4
    _assert_same_state(got.state, want.state)
    assert np.array_equal(got.times, want.times) and np.array_equal(got.senders, want.senders)
    sim.sim.close()


def test_cuda_batches_end_on_samples(fake):
    """Batches are cut at sample steps only as needed: with one recording every 40 steps
    and graphs of 16 steps, the persistent loop launches 16, 16, 8, ... (steps 0-15,
    16-31, 32-39, 40-55, ...), and one gather per sample."""
    net = _mixed().network
    net.record_state("B", "V_m", interval=4.0)
    cnet = pp.compile_network(net)
    with CU.CUDASimulator(cnet, "procedural", persistent=True, graph_steps=16,
                          record_chunk_steps=1000) as sim:
        launches = []
        orig = sim._advance
        sim._advance = lambda m: (launches.append(m), orig(m))[1]
        sim.run_steps(120, [])
        assert launches == [16, 16, 8] * 3
        assert sum(len(s) for s, _ in sim.state_blocks[0]) == 3
        assert [s.tolist() for s, _ in sim.state_blocks[0]] == [[39, 79, 119]]


def _tuned_run(fake, monkeypatch, net):
    """40 ms of ``net`` on the fake CUDA backend with persistent='auto' (graph replays
    made slow, graph_steps 20): samples and spikes equal the CPU's; returns the tuning."""
    from test_cuda_host import _delay_graphs
    cnet = pp.compile_network(net)
    want = _cpu_state(cnet, 400)
    _delay_graphs(monkeypatch, fake, 0.01)
    sim = pp.Simulation(cnet, "cuda", "procedural", record_chunk_steps=100, graph_steps=20)
    got = sim.run(40.0)
    _assert_same_state(got.state, want.state)
    assert np.array_equal(got.senders, want.senders)
    sim.sim.close()
    return sim.sim.loop_tuning


@pytest.mark.parametrize("interval,steps_each", [(0.1, 1), (1.0, 10), (3.0, 20)])
def test_auto_tuning_with_short_batches(fake, monkeypatch, interval, steps_each):
    """persistent='auto' with samples every 1 or 10 steps (shorter than graph_steps 20):
    the tuning times batches of the sample interval, the batches this run has (it never
    saw a batch of graph_steps and so never tuned); at 3 ms (30 steps) batches of 20.
    Samples and spikes are the CPU's whatever it picks."""
    net = _mixed().network
    net.record_state("B", "V_m", neurons=[1, 2], interval=interval)
    t = _tuned_run(fake, monkeypatch, net)
    assert t is not None and t["steps_each"] == steps_each, t


def test_sample_arithmetic():
    assert samples_in(0, 10, 1) == 10 and samples_in(0, 9, 10) == 0
    assert samples_in(0, 10, 10) == 1 and samples_in(9, 1, 10) == 1 and samples_in(10, 9, 10) == 0
    assert samples_in(5, 30, 7) == len([t for t in range(5, 35) if (t + 1) % 7 == 0])
    assert steps_to_sample(0, [10, 3]) == 3 and steps_to_sample(3, [10, 3]) == 3
    assert steps_to_sample(9, [10, 4]) == 1 and steps_to_sample(5, []) == 0


# ---------------------------------------------------------------- files
def test_save_and_load(tmp_path):
    cnet = _recorded()
    res = _cpu_state(cnet, 50)
    out = str(tmp_path)
    res.save(out)
    assert res.summary()["state"]["A"] == {"variables": ["I_syn_in", "V_m", "I_syn_ex"],
                                           "neurons": 7, "samples": 50}
    back = load_results(out)
    _assert_same_state(back.state, res.state)
    # a later run without state recording removes the stale state.npz
    net = _mixed().network
    pp.Simulation(net).run(1.0).save(out)
    assert not os.path.exists(os.path.join(out, "state.npz"))
    assert load_results(out).state == {}


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize("kw,msg", [
    (dict(variables="v"), "unknown variable 'v'"),
    (dict(variables=("V_m", "V_m")), "name one twice"),
    (dict(variables=5), "must be a name or a sequence"),
    (dict(neurons=[0, 0]), "more than once"),
    (dict(neurons=[3]), "index 3 is outside the population's [0, 3)"),
    (dict(neurons=[1.5]), "must be whole numbers"),
    (dict(neurons=[]), "neurons is empty"),
    (dict(neurons="0"), "must be a sequence (list, tuple, range or 1-D array) of local"),
    (dict(neurons=np.array(2)), "must be a sequence"),
    (dict(neurons={2, 0}), "must be a sequence"),
    (dict(variables=b"V_m"), "must be a name or a sequence of names"),
    (dict(interval=0.25), "interval must be a whole number >= 1 of steps of dt = 0.1 ms"),
    (dict(interval=0.0), "interval must be a whole number"),
    (dict(interval=math.inf), "interval (ms) must be finite"),
    (dict(variables="I_syn_ex"), "its tau_syn_ex equals tau_syn_in"),
])
def test_refusals(kw, msg):
    net = pp.Network(dt=0.1)
    net.add_population("N", 3, pp.LIF())
    with pytest.raises(pp.ModelError) as e:
        net.record_state("N", **kw)
    assert msg in str(e.value) and "record_state 'N'" in str(e.value)
    assert net.state == {}


def test_sources_and_unknown_populations_refused():
    net = pp.Network(dt=0.1)
    net.add_population("P", 3, pp.PoissonSource(rate=5.0))
    with pytest.raises(pp.ModelError, match="PoissonSource, which has no state variables"):
        net.record_state("P")
    with pytest.raises(pp.ModelError, match="unknown population 'X'"):
        net.record_state("X")


def test_float32_interval_and_neuron_kinds():
    """An interval given as np.float32(0.3) is 3 steps (as Simulation.run's durations);
    neurons as a range, an int array, NumPy ints or a generator, in their order."""
    net = pp.Network(dt=0.1)
    net.add_population("N", 5, pp.LIF())
    net.record_state("N", interval=np.float32(0.3))
    assert pp.compile_network(net).state[0].interval == 3
    for given in (range(3, 0, -1), np.array([3, 2, 1]), [np.int64(3), np.uint8(2), 1],
                  (x for x in (3, 2, 1))):
        net.record_state("N", neurons=given)
        assert net.state["N"].neurons == (3, 2, 1)


def test_replace_and_end():
    net = pp.Network(dt=0.1)
    net.add_population("N", 3, pp.LIF())
    net.record_state("N", "V_m", neurons=range(2))
    net.record_state("N", "I_syn", interval=0.2)
    assert net.state["N"].variables == ("I_syn",) and net.state["N"].neurons is None
    net.record_state("N", ())
    assert net.state == {}


def test_host_memory_refused_before_running(monkeypatch):
    """Samples that cannot fit the host are refused before a step runs, with the sizes."""
    cnet = _recorded()
    sim = pp.Simulation(cnet)
    monkeypatch.setattr(hostmem, "available_bytes", lambda: 10_000)
    with pytest.raises(InsufficientMemory, match="state samples of this run"):
        sim.run(23.0)
    assert sim.sim.step == 0


def test_fi_curve_validation_script():
    """validation/fi_curve.py (a step-current staircase, V_m every step): every
    inter-spike interval equals the closed form's on the dt grid, V_m between spikes
    within 1e-3 mV of it, no spike below rheobase (375 pA); short holds here."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "validation", "fi_curve.py")
    spec = importlib.util.spec_from_file_location("fi_curve", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--hold", "100"]) == 0


def test_auto_tuning_with_frequent_step_current_changes(fake, monkeypatch):
    """A step-current generator changing every 0.3 ms (3 steps) cuts every batch below
    graph_steps 20: the tuning times batches of 3 steps (it never tuned before), and the
    spikes are the CPU's."""
    net = _mixed().network
    n = 150
    net.add_step_current("B", np.arange(n) * 0.3, 100.0 * (1 + np.arange(n) % 3))
    net.record_state("B", "V_m", neurons=[3], interval=0.1 * 47)
    t = _tuned_run(fake, monkeypatch, net)
    assert t is not None and t["steps_each"] == 3, t
