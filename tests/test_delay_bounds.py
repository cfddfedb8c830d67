"""Optional low/high truncation of delay distributions: normal(mean, sd, low=, high=)."""
import numpy as np
import pytest

import pyproc as pp
from pyproc import sampling
from pyproc.compile import compile_network
from pyproc.connectivity import materialise


def _net(delay, n=300, N=20000):
    net = pp.Network(dt=0.1, seed=4)
    net.add_population("A", n)
    net.add_population("B", n)
    net.connect("A", "B", pp.fixed_total_number(N), weight=10.0, delay=delay)
    return net


def test_normal_bounds_validation():
    d = pp.normal(5.0, 2.0, high=9.0)
    assert (d.low, d.high) == (None, 9.0) and "high=9" in d.describe()
    assert pp.normal(5.0, 2.0) == pp.normal(5.0, 2.0, None, None)      # unchanged default
    with pytest.raises(pp.ModelError, match="low must be < high"):
        pp.normal(5.0, 2.0, low=3.0, high=3.0)
    with pytest.raises(pp.ModelError, match="normal: high must be finite"):
        pp.normal(5.0, 2.0, high=float("inf"))
    with pytest.raises(pp.ModelError, match="outside its bounds"):
        _net(pp.normal(5.0, 0.0, high=4.0))


def test_bounds_only_for_delays():
    net = pp.Network(dt=0.1)
    with pytest.raises(pp.ModelError, match="v_init normal.*no low/high"):
        net.add_population("A", 10, v_init=pp.normal(-60.0, 2.0, high=-55.0))
    net.add_population("A", 10)
    with pytest.raises(pp.ModelError, match="weight normal.*no low/high"):
        net.connect("A", "A", pp.fixed_total_number(5), weight=pp.normal(5.0, 1.0, high=6.0),
                    delay=1.0)
    with pytest.raises(pp.ModelError, match=r"delay high must be > max\(dt, low\)"):
        net.connect("A", "A", pp.fixed_total_number(5), weight=1.0,
                    delay=pp.normal(1.0, 1.0, high=0.05))


def test_interval_without_mass_is_rejected():
    with pytest.raises(pp.ModelError, match="no probability mass"):
        compile_network(_net(pp.normal(1.0, 0.01, low=5.0, high=6.0)))


def test_high_bounds_ring_and_drawn_delays():
    mean, sd, high = 5.0, 2.5, 8.0
    free = compile_network(_net(pp.normal(mean, sd)))
    cut = compile_network(_net(pp.normal(mean, sd, high=high)))
    pf, pc = free.projs[0], cut.projs[0]
    # without bounds the compiled sampler is exactly the old one (truncated at dt only)
    assert (int(pf["d_plo"]), int(pf["d_pwidth"])) == sampling.prob_fx(
        *sampling.trunc_bounds(mean, sd, 0.1))
    assert pf["d_max"] > 150                    # ~ mean + 6.2 sd
    assert pc["d_max"] == 80                    # high / dt
    assert cut.pops["ring_slots"][1] == 81 and cut.ring_size < free.ring_size
    _, _, _, d = materialise(cut, 0)
    assert d.min() >= 1 and d.max() <= 80
    # the same uniforms map into [dt, high]: a draw below the cut moves, none exceeds it
    _, _, _, d_free = materialise(free, 0)
    assert d_free.max() > 80 and (d <= d_free).all()


def test_low_bound_raises_the_floor():
    cnet = compile_network(_net(pp.normal(2.0, 1.0, low=1.5, high=3.0)))
    _, _, _, d = materialise(cnet, 0)
    assert d.min() == 15 and d.max() == 30


def test_bounded_delays_procedural_equals_stored():
    net = pp.Network(dt=0.1, seed=9)
    net.add_population("E", 200, pp.LIF(tau_syn_ex=0.5, tau_syn_in=0.5),
                       v_init=pp.uniform(-70.0, -52.0))
    net.connect("E", "E", pp.fixed_total_number(8000), weight=pp.normal(40.0, 4.0),
                delay=pp.normal(3.0, 1.5, high=4.0))
    net.add_poisson("E", rate=10.0, K=1500, weight=30.0)
    cnet = compile_network(net)
    a = pp.Simulation(cnet, connectivity="procedural").run(100.0)
    b = pp.Simulation(cnet, connectivity="stored").run(100.0)
    assert a.times.size > 0
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.senders, b.senders)
