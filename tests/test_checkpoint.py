"""Checkpoints (Simulation.checkpoint / restore): a run cut at step s and continued from
its checkpoint -- on the same backend, the other connectivity, or the other backend --
gives the spikes, state samples and event counts of a run that was never cut."""
from __future__ import annotations

import os

import numpy as np
import pytest

import pyproc as pp

from fake_pycuda import fake  # noqa: F401  (a fixture)
from test_cuda_host import _poisson_mix
from test_state import _assert_same_state, _recorded


def _with_state():
    """The Poisson-mix network (Poisson sources, spike arrays, a step current, several
    Poisson inputs) with V_m and I_syn recorded."""
    net = _poisson_mix().network
    net.record_state("A", ("V_m", "I_syn_ex"), neurons=[0, 150, 299], interval=0.2)
    return pp.compile_network(net)


NETS = {"poisson_mix": _with_state, "recorded": _recorded}


def _same(a, b):
    assert np.array_equal(a.times, b.times) and np.array_equal(a.senders, b.senders)
    assert a.meta["synaptic_events"] == b.meta["synaptic_events"]
    assert a.duration == b.duration
    _assert_same_state(a.state, b.state)


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("first,then", [("stored", "stored"), ("procedural", "stored"),
                                        ("stored", "procedural")])
def test_cpu_continues_exactly(tmp_path, net, first, then):
    cnet = NETS[net]()
    want = pp.Simulation(cnet, "cpu", "stored").run(23.0)
    a = pp.Simulation(cnet, "cpu", first)
    a.run(9.7)
    path = str(tmp_path / "ck.npz")
    a.checkpoint(path)
    with np.load(path) as z:                 # the ring in int32: every value fits
        assert z["ring"].dtype == np.int32 and z["ring"].any()
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask     # as any new file
    b = pp.Simulation(cnet, "cpu", then)
    b.restore(path)
    assert b.t == pytest.approx(9.7)
    got = b.run(13.3)
    _same(got, want)
    assert len(want.times) > 50


@pytest.mark.parametrize("loop", ["persistent", "graph"])
def test_across_backends(fake, tmp_path, loop):
    """CPU -> CUDA (fake driver) -> CPU: cut at 6.1 ms and 15.3 ms (mid record chunk, mid
    step-current stretch); the CUDA backend's population table is switched to the
    stretch of the restored step."""
    cnet = _recorded()
    want = pp.Simulation(cnet, "cpu", "stored").run(23.0)
    a = pp.Simulation(cnet, "cpu", "stored")
    a.run(6.1)
    a.checkpoint(str(tmp_path / "a.npz"))
    b = pp.Simulation(cnet, "cuda", "procedural", persistent=(loop == "persistent"),
                      record_chunk_steps=64, graph_steps=16)
    b.restore(str(tmp_path / "a.npz"))
    b.run(9.2)
    b.checkpoint(str(tmp_path / "b.npz"))
    # back to 6.1 ms in the same simulator: its population table holds later stretches
    b.restore(str(tmp_path / "a.npz"))
    _same(b.run(16.9), want)
    b.sim.close()
    c = pp.Simulation(cnet, "cpu", "procedural")
    c.restore(str(tmp_path / "b.npz"))
    _same(c.run(7.7), want)
    # and CUDA from a CPU checkpoint to the end
    d = pp.Simulation(cnet, "cuda", "stored", persistent=(loop == "persistent"),
                      record_chunk_steps=64, graph_steps=16)
    d.restore(str(tmp_path / "a.npz"))
    _same(d.run(16.9), want)
    d.sim.close()


def test_refusals(tmp_path):
    cnet = _with_state()
    a = pp.Simulation(cnet)
    a.run(1.0)
    path = str(tmp_path / "ck.npz")
    a.checkpoint(path)
    net = _poisson_mix().network
    net.seed = 6
    with pytest.raises(pp.ModelError, match=r"another network: seed 5 \(this simulation: 6\)"):
        pp.Simulation(net).restore(path)
    with pytest.raises(pp.ModelError, match=r"another network: other state recordings;"):
        pp.Simulation(_poisson_mix()).restore(path)      # no state recording: other network
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(pp.ModelError, match="not a pyproc checkpoint"):
        pp.Simulation(cnet).restore(str(bad))
    np.savez(str(tmp_path / "other.npz"), x=np.zeros(2))
    with pytest.raises(pp.ModelError, match="missing"):
        pp.Simulation(cnet).restore(str(tmp_path / "other.npz"))
    with pytest.raises(FileNotFoundError):
        pp.Simulation(cnet).restore(str(tmp_path / "none.npz"))


def test_no_checkpoint_of_a_run_that_raised(tmp_path, monkeypatch):
    """A run that raised inside a step (here a KeyboardInterrupt after the LIF update of
    step 40, as a second Ctrl-C) leaves a state between steps: checkpoint() refuses it;
    restore() of an earlier checkpoint makes the simulation whole again."""
    import pyproc.backends.cpu as cpu_mod
    cnet = _with_state()
    sim = pp.Simulation(cnet)
    sim.run(2.0)
    sim.checkpoint(str(tmp_path / "good.npz"))
    real = cpu_mod.lif_step

    def interrupted(*a, **k):
        out = real(*a, **k)
        if sim.sim.step == 40:
            raise KeyboardInterrupt
        return out
    monkeypatch.setattr(cpu_mod, "lif_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sim.run(3.0)
    monkeypatch.setattr(cpu_mod, "lif_step", real)
    with pytest.raises(pp.ModelError, match="raised .* inside a step"):
        sim.checkpoint(str(tmp_path / "bad.npz"))
    assert not (tmp_path / "bad.npz").exists()
    sim.restore(str(tmp_path / "good.npz"))
    want = pp.Simulation(cnet, "cpu", "stored").run(5.0)
    _same(sim.run(3.0), want)


def test_damaged_files_are_refused(tmp_path):
    cnet = _with_state()
    sim = pp.Simulation(cnet)
    sim.run(1.0)
    path = tmp_path / "ck.npz"
    sim.checkpoint(str(path))
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    np.save(str(tmp_path / "one.npy"), np.zeros(3))
    import zipfile
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp_path / "less.npz", "w") as zout:
        for item in zin.namelist():
            if item != "n_events.npy":
                zout.writestr(item, zin.read(item))
    for name, msg in (("cut.npz", "not a pyproc checkpoint|damaged"),
                      ("one.npy", "a single array"), ("less.npz", "missing n_events")):
        with pytest.raises(pp.ModelError, match=msg):
            pp.Simulation(cnet).restore(str(tmp_path / name))


def test_refusal_names_the_part_that_differs(tmp_path):
    cnet = _with_state()
    a = pp.Simulation(cnet)
    a.checkpoint(str(tmp_path / "ck.npz"))
    net = _poisson_mix().network
    net.record_state("A", ("V_m", "I_syn_ex"), neurons=[0, 150, 299], interval=0.2)
    net.add_dc("A", 1.0)
    with pytest.raises(pp.ModelError, match=r"another network: other inputs \(Poisson, spike "
                                            r"arrays, step currents\);"):
        pp.Simulation(net).restore(str(tmp_path / "ck.npz"))


def test_fresh_cuda_simulation_checkpoints(fake, tmp_path):
    """A CUDA simulation that has not run yet writes the checkpoint of step 0."""
    cnet = _recorded()
    sim = pp.Simulation(cnet, "cuda", "procedural")
    sim.checkpoint(str(tmp_path / "zero.npz"))
    sim.sim.close()
    want = pp.Simulation(cnet, "cpu", "stored").run(5.0)
    b = pp.Simulation(cnet, "cpu", "procedural")
    b.restore(str(tmp_path / "zero.npz"))
    _same(b.run(5.0), want)
