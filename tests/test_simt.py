"""The persistent step kernels' real CUDA source (kernels/step_persistent.cu) run on the
CPU by the SIMT emulator (tests/simt.py, tests/csrc/simt/): the same spikes and synaptic
events as the CPU reference, for the default build and every opt-in build (unit map,
shared tables, pipelined, tiles), both connectivities, resident and non-resident neuron
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

from simt import fake, simt_fake  # noqa: F401  (fixtures)
from test_cuda_host import _by_step, _cpu, _mixed

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
    opt.setdefault("persistent_blocks_per_sm", 1)     # 4 blocks (the fake GPU has 4 SMs)
    with CU.CUDASimulator(cnet, connectivity, persistent=True, graph_steps=50,
                          record_chunk_steps=100, **opt) as sim:
        rec = []
        sim.run_steps(steps, rec)
        assert sim.loop_mode == "persistent", sim.persistent_error
        return _by_step(rec), sim.n_events, sim


BUILDS = {
    "default": {},
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
    assert sim.persistent_defines == {**(CU.SHARED_TABLES_BUILD if "shared" in build else {}),
                                      **(CU.UNIT_MAP_BUILD if "unit" in build else {})}
    assert got == want and ev_g == ev


@pytest.mark.parametrize("connectivity", ["procedural", "stored"])
@pytest.mark.parametrize("build", ["default", "unit_map"])
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
@pytest.mark.parametrize("build", ["default", "unit_map+shared_tables"])
def test_pipelined(simt_fake, build, connectivity):
    """pipelined=True (one grid barrier per step, two spike lists; balanced 2,000 has
    15-step delays), with launches of an odd length."""
    cnet, want, ev = _ref("bal2000", _bal2000, 150)
    got, ev_g, _ = _run(cnet, connectivity, 150, pipelined=True, **BUILDS[build])
    assert got == want and ev_g == ev


def test_tiles_every_step(simt_fake):
    """bernoulli_tiles with tile_min_spikes=1: the shared-memory tile phase delivers the
    constant-delay bernoulli projection (C -> A) in every step with a spike."""
    cnet, want, ev = _ref("mixed", _mixed, 160)
    got, ev_g, _ = _run(cnet, "procedural", 160, bernoulli_tiles=True, tile_min_spikes=1)
    assert got == want and ev_g == ev


def test_three_blocks_per_sm(simt_fake):
    """The default grid (3 blocks per SM: 12 blocks, more blocks than neuron blocks)."""
    cnet, want, ev = _ref("mixed", _mixed, 160)
    got, ev_g, sim = _run(cnet, "procedural", 160, persistent_blocks_per_sm=None,
                          unit_map=True)
    assert sim.persistent_grid == 12
    assert got == want and ev_g == ev


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
