"""Robustness (issue 7): bad model input fails early naming the field (property-based),
fixed-point overflow and lost spikes are detected, Ctrl-C saves a partial run, memory
stays flat over many chunks, and the same seed gives the same bytes.

All on the CPU backend; the GPU-marked tests repeat the backend-dependent points on CUDA.
"""
from __future__ import annotations

import gc
import math
import os
import signal
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

try:
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import strategies as st
except ImportError:  # the property tests skip; the rest (GPU-marked ones too) still run
    class _Absent:
        """Stands in for hypothesis' names so that the module imports without it."""

        def __getattr__(self, name):
            return self

        def __call__(self, *args, **kwargs):
            return self

    def _skip(*args, **kwargs):
        return pytest.mark.skip(reason="hypothesis not installed (pip install 'pyproc[test]')")

    given = settings = _skip
    HealthCheck = st = assume = _Absent()

import pyproc as pp
from pyproc import cli
from pyproc.compile import compile_network
from pyproc.models import balanced

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def _net(sizes=(5, 5), dt=0.1):
    net = pp.Network(dt=dt, seed=3)
    for i, n in enumerate(sizes):
        net.add_population(f"P{i}", n)
    return net


def _raises_naming(fn, *words):
    """fn() raises ModelError on one line whose message contains every word."""
    with pytest.raises(pp.ModelError) as exc:
        fn()
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, f"{w!r} not named in: {msg}"
    return msg


# -- bad input: one ModelError naming the field and the allowed range ---------------------
@FAST
@given(size=st.one_of(st.integers(max_value=0), st.integers(min_value=2 ** 31, max_value=2 ** 40),
                      st.floats(allow_nan=True, allow_infinity=True),
                      st.text(max_size=3), st.none()))
def test_bad_population_size_names_size(size):
    net = pp.Network()
    _raises_naming(lambda: net.add_population("E", size), "size", "'E'")


@FAST
@given(p=st.one_of(st.floats(max_value=-1e-300), st.floats(min_value=1.0 + 1e-12), NONFINITE))
def test_p_outside_unit_interval_names_p(p):
    msg = _raises_naming(lambda: pp.pairwise_bernoulli(p), "p must be")
    assert "[0, 1]" in msg


@FAST
@given(dt=st.sampled_from([0.01, 0.1, 0.5, 1.0]), frac=st.floats(min_value=-10.0, max_value=0.999))
def test_delay_below_dt_names_delay(dt, frac):
    net = _net(dt=dt)
    delay = frac * dt
    assume(delay < dt)
    msg = _raises_naming(lambda: net.connect("P0", "P1", pp.pairwise_bernoulli(0.5), 10.0, delay),
                         "delay", "'P0->P1'")
    assert "dt" in msg


@FAST
@given(bad=NONFINITE, field=st.sampled_from([
    "Network.dt", "LIF.C_m", "LIF.tau_m", "LIF.E_L", "LIF.V_th", "LIF.V_reset", "LIF.t_ref",
    "LIF.tau_syn_ex", "LIF.tau_syn_in", "LIF.I_e", "v_init", "weight", "delay",
    "normal: mean", "normal: sd", "uniform: low", "uniform: high", "rate", "K",
    "Poisson weight", "fixed_total_number: N", "fixed_outdegree: k"]))
def test_nonfinite_anywhere_names_the_field(bad, field):
    """NaN or +-inf in any numeric field of the model API is refused, naming the field."""
    def build():
        if field == "Network.dt":
            pp.Network(dt=bad)
        elif field.startswith("LIF."):
            pp.LIF(**{field[4:]: bad})
        elif field == "v_init":
            pp.Network().add_population("E", 3, v_init=bad)
        elif field in ("weight", "delay"):
            kw = {"weight": 1.0, "delay": 1.0, field: bad}
            _net().connect("P0", "P1", pp.pairwise_bernoulli(0.5), **kw)
        elif field.startswith("normal"):
            pp.normal(bad, 1.0) if field.endswith("mean") else pp.normal(1.0, bad)
        elif field.startswith("uniform"):
            pp.uniform(bad, 1.0) if field.endswith("low") else pp.uniform(0.0, bad)
        elif field in ("rate", "K", "Poisson weight"):
            kw = {"rate": 1.0, "K": 1.0, "weight": 1.0}
            kw["weight" if field == "Poisson weight" else field] = bad
            _net().add_poisson("P0", **kw)
        elif field == "fixed_total_number: N":
            pp.fixed_total_number(bad)
        else:
            pp.fixed_outdegree(bad)
    word = {"Network.dt": "dt", "Poisson weight": "weight"}.get(field, field)
    _raises_naming(build, word)


_known = ("P0", "P1")


@FAST
@given(name=st.text(min_size=0, max_size=8).filter(lambda s: s not in _known),
       where=st.sampled_from(["source", "target", "poisson", "record"]))
def test_unknown_population_names_it(name, where):
    net = _net()
    rule = pp.pairwise_bernoulli(0.1)
    fn = {"source": lambda: net.connect(name, "P0", rule, 1.0, 1.0),
          "target": lambda: net.connect("P0", name, rule, 1.0, 1.0),
          "poisson": lambda: net.add_poisson(name, 1.0, 1.0, 1.0),
          "record": lambda: net.record(name)}[where]
    msg = _raises_naming(fn, "unknown population", repr(name))
    assert "known: P0, P1" in msg


@FAST
@given(count=st.one_of(st.integers(max_value=-1), st.floats(allow_nan=False).filter(
    lambda x: not float(x).is_integer())), rule=st.sampled_from(["N", "k"]))
def test_bad_synapse_counts_name_the_field(count, rule):
    fn = pp.fixed_total_number if rule == "N" else pp.fixed_outdegree
    _raises_naming(lambda: fn(count), f": {rule} must be", ">= 0")


@FAST
@given(neurons=st.integers(max_value=4))
def test_balanced_builder_too_small_names_neurons(neurons):
    _raises_naming(lambda: balanced(neurons=neurons), "neurons", ">= 5")


# -- the multi-area model's structure file and scale --------------------------------------
def _mam_structure():
    """A one-area structure in the MAM file's format (A: 23E, 23I)."""
    from mam_structures import one_area
    return one_area()


@pytest.mark.parametrize("field,value,words", [
    ("tau_m", -1.0, ("MAM structure: neuron.tau_m", "> 0")),
    ("C_m", 0.0, ("MAM structure: neuron.C_m", "> 0")),
    ("tau_syn_in", -0.5, ("MAM structure: neuron.tau_syn_in", "> 0")),
    ("t_ref", -2.0, ("MAM structure: neuron.t_ref", ">= 0")),
    ("V_reset", -40.0, ("MAM structure: neuron.V_reset", "V_th")),
])
def test_mam_neuron_field_named(field, value, words):
    """The LIF's checks on the structure file's neuron fields name the file's field."""
    from pyproc.models.multiarea import load_structure, multiarea
    d = _mam_structure()
    d["neuron"][field] = value
    _raises_naming(lambda: load_structure(d), *words)
    _raises_naming(lambda: multiarea(d), *words)


def test_mam_scale_that_empties_a_population_is_refused():
    """As the microcircuit: a scale that leaves a population without neurons is refused
    (not rounded up to 1 neuron); the smallest scale that keeps one neuron works."""
    from pyproc.models import microcircuit
    from pyproc.models.multiarea import multiarea
    _raises_naming(lambda: microcircuit(scale=1e-6), "scale")
    msg = _raises_naming(lambda: multiarea(_mam_structure(), scale=1e-6), "scale=1e-06",
                         "without neurons", "A-23E")
    assert "multiarea" in msg
    _raises_naming(lambda: multiarea(_mam_structure(), scale=0.004), "A-23I")   # 0.4 -> 0
    net = multiarea(_mam_structure(), scale=0.006, rates=0.0)                  # 2.4, 0.6 -> 2, 1
    assert [p.size for p in net.populations.values()] == [2, 1]


def test_mam_unknown_area_is_named():
    from pyproc.models.multiarea import multiarea
    msg = _raises_naming(lambda: multiarea(_mam_structure(), areas=["A", "V9"]), "'V9'", "A")
    assert "unknown area" in msg and "among A" in msg
    _raises_naming(lambda: multiarea(_mam_structure(), areas=["A", "A"]), "distinct")


# -- valid input compiles (and runs a few steps) ------------------------------------------
finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def networks(draw):
    dt = draw(st.sampled_from([0.05, 0.1, 0.25, 1.0]))
    net = pp.Network(dt=dt, seed=draw(st.integers(0, 2 ** 32 - 1)))
    n_pops = draw(st.integers(1, 3))
    for i in range(n_pops):
        tau_m = draw(st.floats(1.0, 50.0))
        v_th = draw(st.floats(-60.0, -40.0))
        par = pp.LIF(C_m=draw(st.floats(10.0, 500.0)), tau_m=tau_m,
                     tau_syn_ex=draw(st.floats(0.1, 10.0)),
                     tau_syn_in=draw(st.floats(0.1, 10.0)), t_ref=draw(st.floats(0.0, 5.0)),
                     V_th=v_th, V_reset=v_th - draw(st.floats(0.1, 20.0)),
                     I_e=draw(st.floats(-100.0, 500.0)))
        v0 = draw(st.one_of(st.floats(-80.0, -40.0),
                            st.builds(pp.normal, st.floats(-70.0, -50.0), st.floats(0.0, 10.0))))
        net.add_population(f"P{i}", draw(st.integers(1, 40)), par, v_init=v0)
    for j in range(draw(st.integers(0, 4))):
        src, tgt = draw(st.integers(0, n_pops - 1)), draw(st.integers(0, n_pops - 1))
        kind = draw(st.sampled_from(["p", "N", "k"]))
        auto = draw(st.booleans()) or src != tgt or net.populations[f"P{tgt}"].size < 2
        rule = {"p": lambda: pp.pairwise_bernoulli(draw(st.floats(0.0, 1.0)), auto),
                "N": lambda: pp.fixed_total_number(draw(st.integers(0, 300)), auto),
                "k": lambda: pp.fixed_outdegree(draw(st.integers(0, 10)), auto)}[kind]()
        w = draw(st.floats(1.0, 500.0)) * draw(st.sampled_from([-1, 1]))
        weight = draw(st.one_of(st.just(w), st.builds(pp.normal, st.just(w),
                                                      st.floats(0.0, abs(w)))))
        delay = draw(st.one_of(st.floats(dt, 20.0), st.builds(pp.normal, st.floats(dt, 10.0),
                                                              st.floats(0.0, 3.0))))
        net.connect(f"P{src}", f"P{tgt}", rule, weight, delay, name=f"c{j}")
    for i in range(n_pops):
        if draw(st.booleans()):
            net.add_poisson(f"P{i}", rate=draw(st.floats(0.0, 50.0)),
                            K=draw(st.floats(0.0, 2000.0)),
                            weight=draw(st.floats(-100.0, 100.0)))
    return net


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(net=networks())
def test_valid_networks_compile_and_run(net):
    """Any valid network compiles and runs past its longest delay (every projection can
    deliver) with the same spikes from stored and procedural connectivity."""
    cnet = compile_network(net)
    assert cnet.n_neurons == net.n_neurons
    steps = cnet.max_delay_steps() + 5
    res = {}
    for connectivity in ("stored", "procedural"):
        r = pp.Simulation(cnet, "cpu", connectivity).run(steps * cnet.dt)
        assert r.duration == pytest.approx(steps * cnet.dt)
        assert np.all(np.isfinite(r.times)) and np.all((r.times > 0) & (r.times <= r.duration))
        assert np.all((r.senders >= 0) & (r.senders < cnet.n_neurons))
        res[connectivity] = r
    np.testing.assert_array_equal(res["stored"].times, res["procedural"].times)
    np.testing.assert_array_equal(res["stored"].senders, res["procedural"].senders)


# -- overflow and lost spikes --------------------------------------------------------------
def _synchronous_net():
    """4 neurons that all fire at the first step (huge I_e), all-to-all onto 1 target."""
    net = pp.Network(dt=0.1, seed=5)
    net.add_population("A", 4, pp.LIF(I_e=1e6), v_init=-55.01)
    net.add_population("B", 1)
    net.connect("A", "B", pp.pairwise_bernoulli(1.0), weight=10.0, delay=0.1)
    return net


@pytest.mark.parametrize("backend", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
def test_fixed_point_overflow_is_detected(backend, connectivity):
    """A weight made huge after compiling makes 4 coincident inputs exceed int32: the run
    raises OverflowDetected naming the population instead of wrapping around (the CPU
    when it happens, in int64; the CUDA backend, whose ring is int32, before it runs)."""
    cnet = compile_network(_synchronous_net())
    k = cnet.proj_index("A->B")
    cnet.projs["w_const"][k] = 2 ** 30          # 4 x 2^30 > 2^31 - 1
    with pytest.raises(pp.OverflowDetected, match=r"population 'B'"):
        pp.Simulation(cnet, backend, connectivity).run(2.0)


def test_input_range_check():
    """check_input_range passes every network compile_network makes (the flagship models
    included) and refuses a weight edited past the bound, naming population and channel."""
    from pyproc.compile import check_input_range, worst_case_input
    from pyproc.models import balanced, microcircuit
    for net in (_synchronous_net(), balanced(2000), microcircuit(0.05)):
        cnet = compile_network(net)
        check_input_range(cnet)
        assert np.all(worst_case_input(cnet) <= 2 ** 31 - 1 + 0.5 * cnet.indegree_bound.sum())
    cnet = compile_network(_synchronous_net())
    wc = worst_case_input(cnet)
    assert wc[cnet.pop_names.index("B"), 0] == 4 * abs(int(cnet.projs["w_const"][0]))
    cnet.projs["w_const"][0] = 2 ** 29 + 2 ** 28     # 4 x 0.75 x 2^30 = 3 x 2^30 > 2^31
    with pytest.raises(pp.OverflowDetected, match=r"population 'B', channel ex"):
        check_input_range(cnet)
    cnet.projs["w_const"][0] = 2 ** 29 - 1          # 4 x (2^29 - 1) < 2^31: fine
    check_input_range(cnet)


def test_poisson_overflow_is_detected():
    net = pp.Network(dt=0.1, seed=2)
    net.add_population("E", 10)
    net.add_poisson("E", rate=1000.0, K=1000.0, weight=1.0)
    cnet = compile_network(net)
    cnet.pops["poisson_w"][0] = 2 ** 31 - 1     # any count >= 2 overflows
    with pytest.raises(pp.OverflowDetected, match="overflow"):
        pp.Simulation(cnet, "cpu", "procedural").run(1.0)


def test_cli_overflow_exits_3_and_saves_partial(tmp_path, monkeypatch, capsys):
    """Through the CLI: one line on stderr, exit 3, the steps before it saved as partial."""
    import pyproc.compile as comp

    real = comp.compile_network

    def sabotaged(net):
        cnet = real(net)
        cnet.projs["w_kind"] = 0                                # constant weights ...
        cnet.projs["w_const"] = cnet.projs["w_sign"] * (2 ** 31 - 1)   # ... of int32's range
        return cnet
    monkeypatch.setattr(comp, "compile_network", sabotaged)
    out = tmp_path / "o"
    code = cli.main(["run", "balanced", "--neurons", "50", "--duration", "50", "--out", str(out),
                     "--no-plots", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_OVERFLOW
    assert len(err.splitlines()) == 1 and err.startswith("pyproc: error: OverflowDetected")
    res = pp.load_results(str(out))
    assert res.meta["partial"] is True and res.meta["stopped_by"] == "overflow"
    assert res.duration < 50.0


def test_cli_backend_failure_saves_partial_then_raises(tmp_path, monkeypatch):
    """An unexpected backend error (e.g. a CUDA kernel fault) keeps what was recorded,
    marked partial, and still shows its traceback (it is a bug, not a user error)."""
    from pyproc.backends.cpu import CPUSimulator
    real = CPUSimulator.run_steps

    def failing(self, n, record, should_stop=None):
        if self.step >= 100:
            raise RuntimeError("simulated kernel fault")
        return real(self, n, record, should_stop)
    monkeypatch.setattr(CPUSimulator, "run_steps", failing)
    out = tmp_path / "o"
    with pytest.raises(RuntimeError, match="simulated kernel fault"):
        cli.main(["run", "balanced", "--neurons", "50", "--duration", "50", "--out", str(out),
                  "--quiet", "--no-plots"])
    res = pp.load_results(str(out))
    assert res.meta["partial"] is True and res.meta["stopped_by"] == "error"
    assert res.duration == pytest.approx(10.0) and "simulated kernel fault" in res.meta["error"]
    assert res.times.size == 0 or res.times.max() <= res.duration + 1e-9


@pytest.mark.parametrize("backend", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_no_spike_is_lost(backend):
    """Every spike the neurons emit is in the record, whatever the chunking: the recorded
    count equals the simulator's own count, and runs chunked every step, every 7 steps and
    in one piece give identical spike trains.  The driven population spikes as soon as it
    leaves refractoriness, so its count is also known exactly."""
    net = pp.Network(dt=0.1, seed=9)
    net.add_population("D", 30, pp.LIF(I_e=1e6, t_ref=0.5), v_init=-55.01)
    net.add_population("R", 20)
    net.connect("D", "R", pp.fixed_total_number(200), weight=50.0, delay=0.3)
    steps = 101
    outs = []
    for chunk in (1, 7, steps):
        sim = pp.Simulation(net, backend, "procedural")
        res = sim.run(steps * 0.1, chunk_steps=chunk)
        assert res.times.size == sim.sim.n_spikes_total
        outs.append(res)
        close = getattr(sim.sim, "close", None)
        if close:
            close()
    d = outs[0].population_of() == 0
    # D spikes at steps 0, 6, 12, ..., 96 (5 refractory steps, then over threshold at once)
    assert np.array_equal(np.bincount(outs[0].senders[d], minlength=30), np.full(30, 17))
    assert (~d).sum() > 0                       # and R was driven
    for other in outs[1:]:
        assert np.array_equal(other.times, outs[0].times)
        assert np.array_equal(other.senders, outs[0].senders)


# -- Ctrl-C: stop at a step boundary, save partial -----------------------------------------
def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_saves_partial_results(tmp_path):
    """SIGINT to a real `python -m pyproc run`: exit 130, partial results saved and loadable,
    the duration a whole number of steps, every saved spike before it."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyproc", "run", "balanced", "--neurons", "200", "--duration",
         "100000", "--seed", "4", "--out", str(out), "--no-plots"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=str(tmp_path))
    try:
        line = proc.stdout.readline()          # printed just before the first step
        assert "Ctrl-C stops early" in line, line + proc.stderr.read()
        import time
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == cli.EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr
    assert "PARTIAL" in stdout
    res = pp.load_results(str(out))
    assert res.meta["partial"] is True and res.meta["stopped_by"] == "ctrl-c"
    assert 0 < res.duration < 100000
    steps = res.meta["steps"]
    assert res.duration == pytest.approx(steps * 0.1)
    assert res.times.size == 0 or res.times.max() <= res.duration + 1e-9
    # the partial run equals the same run stopped after as many steps
    full = pp.Simulation(balanced(neurons=200, seed=4), "cpu", "procedural").run(steps * 0.1)
    assert np.array_equal(full.times, res.times) and np.array_equal(full.senders, res.senders)


def test_sigint_handler_is_restored(tmp_path, monkeypatch):
    """The CLI installs its handler only during the run and puts the old one back."""
    before = signal.getsignal(signal.SIGINT)
    seen = []

    def fake_run(self, duration, progress=None, chunk_steps=1000, should_stop=None):
        seen.append(signal.getsignal(signal.SIGINT))
        os.kill(os.getpid(), signal.SIGINT)        # Ctrl-C during the run
        assert should_stop() is True
        self.interrupted = True
        return self.results()
    monkeypatch.setattr(pp.Simulation, "run", fake_run)
    code = cli.main(["run", "balanced", "--neurons", "20", "--duration", "1", "--out",
                     str(tmp_path / "o"), "--quiet", "--no-plots"])
    assert code == cli.EXIT_INTERRUPTED
    assert seen and seen[0] is not before
    assert signal.getsignal(signal.SIGINT) is before
    assert pp.load_results(str(tmp_path / "o")).meta["partial"] is True


# -- memory stays flat over many chunks ----------------------------------------------------
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _heap_bytes() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_memory_flat_over_many_chunks():
    """600 chunks of one step (every step a chunk boundary), recording off: after 100
    warm-up chunks, the traced heap (tracemalloc sees Python objects and NumPy's buffers)
    grows by less than 48 KiB over the next 500 chunks, and the RSS by less than 4 MiB.
    The bound leaves room for NumPy's and CPython's bounded caches of small blocks, which
    fill during the first few hundred steps (a few KiB measured); a leak of one array
    (>= 100 B with its header) per step would add >= 50 KB and fail."""
    net = balanced(neurons=50, seed=2)
    for name in list(net.populations):
        net.record(name, False)
    sim = pp.Simulation(net, "cpu", "stored")
    tracemalloc.start()
    try:
        for _ in range(100):
            sim.run(0.1, chunk_steps=1)
        heap0, rss0 = _heap_bytes(), _rss_bytes()
        for _ in range(500):
            sim.run(0.1, chunk_steps=1)
        grown, rss_grown = _heap_bytes() - heap0, _rss_bytes() - rss0
    finally:
        tracemalloc.stop()
    assert sim.sim.n_spikes_total > 0 and not sim._record   # active, nothing recorded
    assert grown < 48 * 1024, f"heap grew by {grown} bytes over 500 chunks"
    assert rss_grown < 4 * 2 ** 20, f"RSS grew by {rss_grown} bytes over 500 chunks"


def test_memory_with_recording_grows_only_by_the_spikes():
    """With recording on, growth is accounted for by the stored spikes (<= 200 bytes per
    recorded spike-step entry + 16 per spike) and nothing else."""
    sim = pp.Simulation(balanced(neurons=100, seed=2), "cpu", "procedural")
    tracemalloc.start()
    try:
        sim.run(2.0, chunk_steps=2)
        base, n0 = _heap_bytes(), len(sim._record)
        s0 = sum(g.size for _, g in sim._record)
        for _ in range(50):
            sim.run(0.2, chunk_steps=2)
        grown = _heap_bytes() - base
    finally:
        tracemalloc.stop()
    entries = len(sim._record) - n0
    spikes = sum(g.size for _, g in sim._record) - s0
    assert spikes > 0
    assert grown <= 200 * entries + 16 * spikes + 32 * 1024, (grown, entries, spikes)


@pytest.mark.gpu
def test_device_memory_flat_over_many_chunks():
    """CUDA: free device memory is the same after 200 chunks as after 10."""
    import pycuda.driver as drv
    sim = pp.Simulation(balanced(neurons=1000, seed=2), "cuda", "procedural")
    try:
        for _ in range(10):
            sim.run(1.0, chunk_steps=10)
        with sim.sim._Active(sim.sim):
            free0 = drv.mem_get_info()[0]
        for _ in range(200):
            sim.run(1.0, chunk_steps=10)
        with sim.sim._Active(sim.sim):
            free1 = drv.mem_get_info()[0]
    finally:
        sim.sim.close()
    assert free0 - free1 <= 2 ** 20, f"device memory shrank by {free0 - free1} bytes"


# -- same seed, same bytes -----------------------------------------------------------------
def _npz_bytes(path):
    with np.load(os.path.join(path, "spikes.npz")) as z:
        return z["times"].tobytes(), z["senders"].tobytes()


def test_same_seed_same_bytes_repeated_and_across_connectivity(tmp_path):
    """Two runs with seed 7 (procedural), one stored: identical times/senders bytes; seed 8
    differs."""
    def run(name, conn, seed):
        out = str(tmp_path / name)
        assert cli.main(["run", "balanced", "--neurons", "120", "--duration", "30", "--seed",
                         str(seed), "--connectivity", conn, "--out", out, "--quiet",
                         "--no-plots"]) == 0
        return _npz_bytes(out)
    a = run("a", "procedural", 7)
    assert len(a[0]) > 0
    assert run("b", "procedural", 7) == a
    assert run("c", "stored", 7) == a
    assert run("d", "procedural", 8) != a


@pytest.mark.gpu
@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
def test_same_seed_same_bytes_cuda_vs_cpu(tmp_path, connectivity):
    outs = []
    for backend in ("cpu", "cuda"):
        out = str(tmp_path / backend)
        assert cli.main(["run", "balanced", "--neurons", "1000", "--duration", "50", "--seed", "7",
                         "--backend", backend, "--connectivity", connectivity, "--out", out,
                         "--quiet", "--no-plots"]) == 0
        outs.append(_npz_bytes(out))
    assert outs[0] == outs[1]


def test_git_commit_provenance(monkeypatch):
    """Results name the commit: $PYPROC_GIT_COMMIT wins (a GPU machine's copy of the tree
    has a stale or no .git); otherwise this checkout's HEAD (40 hex digits, maybe +dirty)."""
    import re
    from pyproc import bench, cli, validate
    from pyproc.provenance import git_commit
    monkeypatch.setenv("PYPROC_GIT_COMMIT", "f894343")
    assert git_commit() == cli._git_commit() == bench._git_commit() == validate._git_commit() \
        == "f894343"
    monkeypatch.delenv("PYPROC_GIT_COMMIT")
    head = git_commit()
    if head is not None:                     # a git checkout (CI clones one)
        assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", head), head


# -- host memory: refused before the allocation ------------------------------------------
def _big_stored():
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("E", 100)
    net.add_population("I", 50)
    net.connect("E", "I", pp.fixed_total_number(10 ** 9), weight=1.0, delay=1.0)
    return pp.compile_network(net)


def test_cpu_stored_that_does_not_fit_is_refused_before_allocating(monkeypatch):
    """1e9 stored synapses on a machine with 4 GiB available: an InsufficientMemory (a
    MemoryError and a BackendUnavailable) naming both sizes and the way out, at once
    (the audit's run was killed by the OOM killer after minutes); procedural fits."""
    from pyproc import hostmem
    from pyproc.errors import BackendUnavailable, InsufficientMemory
    from pyproc.plan import cpu_bytes
    cnet = _big_stored()
    parts = cpu_bytes(cnet, "stored")
    assert parts["stored synapses"] == 12 * 10 ** 9 + 8 * 100
    assert parts["set-up peak"] == 12 * 10 ** 9 + 128 * 2 ** 20
    monkeypatch.setattr(hostmem, "available_bytes", lambda: 4 * 2 ** 30)
    tracemalloc.start()
    try:
        with pytest.raises(InsufficientMemory) as e:
            pp.Simulation(cnet, backend="cpu", connectivity="stored")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2 ** 20
    assert isinstance(e.value, MemoryError) and isinstance(e.value, BackendUnavailable)
    msg = str(e.value)
    assert "connectivity='stored' on the CPU needs about 22.5 GiB" in msg
    assert "stored synapses 11.2 GiB" in msg and "4.0 GiB is available" in msg
    assert "connectivity='procedural'" in msg and hostmem.SKIP_VARIABLE in msg
    sim = pp.Simulation(cnet, backend="cpu", connectivity="procedural")   # fits: no CSR
    assert sim.sim.csr is None
    monkeypatch.setenv(hostmem.SKIP_VARIABLE, "1")        # the escape hatch: no check
    hostmem.check("x", {"a": 10 ** 15}, "")
    monkeypatch.setenv(hostmem.SKIP_VARIABLE, "0")
    with pytest.raises(InsufficientMemory):
        hostmem.check("x", {"a": 10 ** 15}, "")
    hostmem.check("x", {"a": 4 * 2 ** 30}, "")            # exactly what is available: fits


def test_compile_refuses_a_network_larger_than_memory(monkeypatch):
    """2^31 - 1 neurons pass add_population (the limit is the id range) but need ~168 GiB
    to compile: refused before any array is made."""
    from pyproc import hostmem
    from pyproc.errors import InsufficientMemory
    monkeypatch.setattr(hostmem, "available_bytes", lambda: 16 * 2 ** 30)
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("E", 2 ** 31 - 1)
    with pytest.raises(InsufficientMemory, match=r"compiling the network \(2,147,483,647 "
                                                 r"neurons\) needs about 168\.0 GiB"):
        pp.compile_network(net)
    monkeypatch.setattr(hostmem, "available_bytes", lambda: None)    # unknown: no refusal
    small = pp.Network(dt=0.1, seed=1)
    small.add_population("E", 10)
    assert pp.compile_network(small).n_neurons == 10


def test_materialise_chunks_do_not_change_the_csr():
    """materialise() sizes its chunks by synapses (balanced 2,000: 1 row of 1,600
    synapses... ); any chunking gives the same arrays."""
    from pyproc.connectivity import materialise
    cnet = pp.compile_network(pp.models.balanced(2000, dt=0.1))
    for k in range(len(cnet.projs)):
        want = materialise(cnet, k, chunk=4096)
        for chunk in (None, 1, 7):
            got = materialise(cnet, k, chunk)
            assert all(np.array_equal(a, b) for a, b in zip(want, got)), (k, chunk)


# -- the API audit's findings (tenth session): refused early, naming the field -----------
@pytest.mark.parametrize("make,words", [
    (lambda: pp.Network(dt="0.1"), "Network.dt (ms) must be a number, got '0.1'"),
    (lambda: pp.LIF(C_m="250"), "LIF.C_m must be a number, got '250'"),
    (lambda: pp.LIF(C_m=True), "LIF.C_m must be a number, got True"),
    (lambda: pp.pairwise_bernoulli("0.1"), "pairwise_bernoulli: p must be a number in [0, 1]"),
    (lambda: pp.pairwise_bernoulli(0.1, allow_autapses="no"),
     "pairwise_bernoulli: allow_autapses must be True or False, got 'no'"),
    (lambda: pp.fixed_total_number(10, allow_multapses="no"),
     "fixed_total_number: allow_multapses must be True or False, got 'no'"),
    (lambda: pp.fixed_outdegree(3, allow_autapses=None),
     "fixed_outdegree: allow_autapses must be True or False, got None"),
    (lambda: pp.normal("58", 1.0), "normal: mean must be a number, got '58'"),
])
def test_strings_and_bools_are_not_numbers(make, words):
    _raises_naming(make, words)


def test_numpy_numbers_and_bools_are_accepted():
    assert pp.LIF(C_m=np.float32(250.0)).C_m == 250.0
    assert pp.pairwise_bernoulli(np.float64(0.1), np.bool_(False)).allow_autapses is False
    assert pp.fixed_outdegree(3, allow_autapses=0).allow_autapses is False
    from pyproc.models import microcircuit
    assert microcircuit(scale=0.01, weight_rel_sd=np.float32(0.1)).n_neurons == 771


def test_network_argument_checks():
    net = pp.Network(dt=0.1)
    net.add_population("A", 10)
    _raises_naming(lambda: net.connect("A", "A", pp.pairwise_bernoulli(0.1), weight="87.8",
                                       delay=1.0), "projection 'A->A': weight must be a number")
    _raises_naming(lambda: net.add_poisson("A", rate="8", K=10, weight=1.0),
                   "Poisson input onto 'A': rate must be a number")
    # 1e9 Hz x 1000 inputs x 0.1 ms = 1e8 events per step: its count table would be 0.4 GB
    _raises_naming(lambda: net.add_poisson("A", rate=1e9, K=1000, weight=87.8),
                   "rate * K * dt = 1e+08 events per neuron per step exceeds 1,048,576")
    net.add_poisson("A", rate=1e6, K=10000, weight=1.0)             # 1e6 per step: allowed
    _raises_naming(lambda: net.record("A", on="no"), "record: on must be True or False")
    net.record("A", on=np.bool_(False))
    assert net.populations["A"].record is False


@pytest.mark.parametrize("kw,words", [
    ({"g": -5.0}, "balanced: g must be >= 0, got -5"),
    ({"weight_sd": -0.1}, "balanced: weight_sd must be >= 0"),
    ({"w_E": -87.8}, "balanced: w_E must be > 0"),
    ({"neurons": None}, "balanced: neurons must be a whole number >= 5, got None"),
    ({"neurons": "1000"}, "balanced: neurons must be a whole number >= 5, got '1000'"),
])
def test_balanced_arguments(kw, words):
    from pyproc.models import balanced
    _raises_naming(lambda: balanced(**{"neurons": 100, **kw}), words)


@pytest.mark.parametrize("kw,words", [
    ({"g": 4.0}, "microcircuit: g must be <= 0"),
    ({"bg_rate": -8.0, "poisson": False}, "microcircuit: bg_rate must be >= 0 Hz, got -8"),
    ({"w_E": 0.0}, "microcircuit: w_E must be > 0 pA"),
    ({"weight_rel_sd": float("nan")}, "microcircuit: weight_rel_sd must be finite"),
])
def test_microcircuit_arguments(kw, words):
    from pyproc.models import microcircuit
    _raises_naming(lambda: microcircuit(scale=0.01, **kw), words)


def test_constant_delays_round_half_up_as_nest():
    """0.15 / 0.1 is 1.4999999999999998 and 0.35 / 0.1 is 3.4999999999999996 in floating
    point: they were rounded down while 0.25 went up.  Now every half goes up."""
    from pyproc.compile import whole_steps
    from pyproc.connectivity import to_sparse
    assert [whole_steps(d, 0.1) for d in (0.1, 0.15, 0.25, 0.35, 1.5, 1.55, 2.0)] == \
        [1, 2, 3, 4, 15, 16, 20]
    net = pp.Network(dt=0.1, seed=2)
    net.add_population("A", 20, pp.LIF(t_ref=0.15))
    for i, d in enumerate((0.15, 0.25, 0.35)):
        net.connect("A", "A", pp.fixed_outdegree(2), weight=10.0, delay=d, name=f"p{i}")
    cnet = pp.compile_network(net)
    assert cnet.pops["ref_steps"][0] == 2
    for i, want in enumerate((0.2, 0.3, 0.4)):
        _, D = to_sparse(cnet, f"p{i}")
        assert np.allclose(D.data, want)


def test_simulation_arguments():
    from pyproc.models import balanced
    net = balanced(200)
    sim = pp.Simulation(net, backend="auto")
    assert sim.backend == ("cuda" if cli.machine_info()["backends"]["cuda"]["usable"] else "cpu")
    _raises_naming(lambda: pp.Simulation(net, foo=1), "backend='cpu' has no option 'foo'")
    _raises_naming(lambda: pp.Simulation(net, backend="cuda", prop_block=4),
                   "backend='cuda' has no option 'prop_block'")
    _raises_naming(lambda: pp.Simulation(None), "network must be a pyproc Network")
    _raises_naming(lambda: pp.compile_network(None), "compile_network needs a pyproc Network")
    cpu = pp.Simulation(net, backend="cpu")
    assert cpu.steps_for(np.float32(0.3)) == 3          # 0.30000001192092896 as float32
    assert cpu.steps_for(np.float32(100.1)) == 1001
    _raises_naming(lambda: cpu.steps_for(np.float32(0.35)), "not a whole number of steps")
    _raises_naming(lambda: cpu.steps_for(0.30000001), "not a whole number of steps")


def test_binned_rates_last_bin_and_edges():
    """Rates in (edge, edge + bin] bins; the last bin ends with the run and is divided by
    its own width: 1,000 ms in 3 ms bins is 333 bins of 3 ms and one of 1 ms, and one
    neuron of two firing once in that last 1 ms is 500 Hz there, not 167 Hz.  A spike
    stamped on an edge belongs to the bin it closes."""
    from pyproc.results import Results
    res = Results(times=np.array([3.0, 3.1, 999.5]), senders=np.array([0, 1, 0]),
                  pop_names=["A", "B"], pop_offsets=np.array([0, 2]),
                  pop_sizes=np.array([2, 5]), recorded=np.array([True, False]),
                  duration=1000.0, dt=0.1)
    edges, r = res.binned_rates(3.0)
    assert edges.size == 335 and edges[-1] == 1000.0 and edges[-2] == 999.0
    assert r.shape == (2, 334) and np.isnan(r[1]).all()
    # 3.0 closes bin 0, 3.1 opens bin 1
    assert r[0, 0] == r[0, 1] == pytest.approx(1 / (2 * 3e-3))
    assert r[0, -1] == pytest.approx(1 / (2 * 1e-3))
    assert np.count_nonzero(r[0]) == 3
    np.testing.assert_array_equal(res.binned_rates()[0][:3], [0.0, 10.0, 20.0])
    with pytest.raises(pp.ModelError, match="bin_ms must be > 0 ms"):
        res.binned_rates(0)


def test_save_plots_and_load_results_errors(tmp_path):
    pytest.importorskip("matplotlib")
    from pyproc.models import balanced
    res = pp.Simulation(balanced(200), backend="cpu").run(20.0)
    for b, words in ((0, "bin_ms must be > 0 ms"), (-1, "bin_ms must be > 0 ms"),
                     ("1", "bin_ms must be a number")):
        _raises_naming(lambda: res.save_plots(str(tmp_path / "p"), bin_ms=b), words)
    assert not (tmp_path / "p").exists()                # refused before anything is written
    res.save(str(tmp_path / "r"))
    assert pp.load_results(str(tmp_path / "r")).times.size == res.times.size
    with pytest.raises(FileNotFoundError, match="is not a pyproc results folder: no spikes.npz"):
        pp.load_results(str(tmp_path / "nothing"))
    (tmp_path / "r" / "summary.json").write_text("{bad")
    with pytest.raises(ValueError, match=r"summary.json: not valid JSON"):
        pp.load_results(str(tmp_path / "r"))
    (tmp_path / "r" / "summary.json").write_text('{"dt_ms": 0.1}')
    with pytest.raises(ValueError, match=r"not a pyproc summary \(missing or bad field "
                                         r"'duration_ms'\)"):
        pp.load_results(str(tmp_path / "r"))
    (tmp_path / "r" / "spikes.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"spikes.npz: not a pyproc spike file \(ValueError: "
                                         r"not a NumPy .npz archive\)"):
        pp.load_results(str(tmp_path / "r"))
