#!/usr/bin/env python3
"""Where a step of the persistent kernel spends its time (GPU machine).

    python3 validation/profile_persistent.py [--out FILE.json]
    python3 validation/profile_persistent.py --ncu {1k,mc}     # a few launches, for ncu

For the 1,000-neuron balanced network and the full-scale microcircuit (dt 0.1 ms,
procedural), with 1 and 3 blocks per SM (the 1k network also on a grid of 1 block --
__syncthreads for a barrier -- and of one block per neuron block): microseconds per step
of the full persistent kernel and of its profiling variants (PP_PROFILE_SKIP: 1 = no
propagation phase, 3 = barriers only), 100 and 1,000 steps per launch, and the graph
loop for comparison.  The variants' spikes are wrong on purpose; only their timings count.
Then the phase split of real steps (PP_PROFILE_TIMING: block 0 sums clock64 cycles
of step start -> barrier A and barrier A -> barrier B; spikes unchanged) for those two
networks and the 1e5-neuron balanced network at dt 1 ms, with and without the unit map
(unit_map=True).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyproc as pp  # noqa: E402
from pyproc import kernels  # noqa: E402
from pyproc.plan import neuron_blocks  # noqa: E402
from pyproc.models import balanced, microcircuit  # noqa: E402


def nets(which=("1k", "mc")):
    out = {}
    if "1k" in which:
        out["1k"] = pp.compile_network(balanced(1000, dt=0.1))
    if "mc" in which:
        out["mc"] = pp.compile_network(microcircuit(1.0, dt=0.1))
    return out


def phase_split(sim, steps, clock_khz):
    """us per step of (start -> barrier A, barrier A -> barrier B, block 0's own neuron
    work) with the timing build of the simulator's persistent kernel."""
    import numpy as np
    import pycuda.driver as drv
    full, grid = sim._persist, sim.persistent_grid
    k = kernels.get_cooperative_kernel(full.name, defines={**sim.persistent_defines,
                                                           "PP_PROFILE_TIMING": 1})
    addr, size = k.global_address("pp_phase_cycles")
    sim._persist = k
    # the timing build may need more registers: its grid must still fit at once, with the
    # dynamic shared memory the build is launched with (shared tables: more than tiles)
    if sim.persistent_smem > 48 * 1024:
        k.set_max_dynamic_shared(sim.persistent_smem)
    fit = sim.n_sm * k.max_blocks_per_sm(256, sim.persistent_smem)
    sim.persistent_grid = min(grid, fit)
    sim._state.ctx.push()
    try:
        drv.memset_d8(addr, 0, size)
    finally:
        drv.Context.pop()
    sim.run_steps(steps, [])
    out = np.zeros(4, np.uint64)
    sim._state.ctx.push()
    try:
        drv.memcpy_dtoh(out, addr)
    finally:
        drv.Context.pop()
    sim._persist, sim.persistent_grid = full, grid
    n = max(int(out[3]), 1)
    us = [float(c) / n / clock_khz * 1e3 for c in out[:3]]
    return {"steps": n, "to_barrier_A_us": us[0], "A_to_B_us": us[1], "own_neuron_us": us[2],
            "timing_grid": min(grid, fit),
            "loop_mode": sim.loop_mode}


def timed(sim, steps):
    sim.run_steps(steps, [])        # ends with a drain: the device is idle afterwards
    t0 = time.perf_counter()
    sim.run_steps(steps, [])
    return (time.perf_counter() - t0) / steps * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--ncu", choices=["1k", "mc"])
    ap.add_argument("--steps", type=int, default=3000)
    a = ap.parse_args(argv)
    import pycuda.driver as drv
    from pyproc.backends.cuda import CUDASimulator
    drv.init()
    ctx = drv.Device(0).make_context()
    rows = []
    try:
        if a.ncu:
            cnet = nets((a.ncu,))[a.ncu]
            with CUDASimulator(cnet, "procedural", context=ctx, graph_steps=100,
                               persistent_blocks_per_sm=1 if a.ncu == "1k" else None) as sim:
                sim.run_steps(300, [])
            return 0
        for name, cnet in nets().items():
            grids = [{"persistent_blocks_per_sm": 1}, {"persistent_blocks_per_sm": 3}]
            if name == "1k":          # the barrier's cost against the grid: 1, 5, 132, 396
                nb = int(neuron_blocks(cnet).sum())
                grids = [{"persistent_grid": 1}, {"persistent_grid": nb}] + grids
            for grid_opt in grids:
                with CUDASimulator(cnet, "procedural", context=ctx, graph_steps=100,
                                   persistent=True, **grid_opt) as sim:
                    full = sim._persist
                    kname = full.name
                    for skip in (0, 1, 3):
                        sim._persist = (full if skip == 0 else kernels.get_cooperative_kernel(
                            kname, defines={"PP_PROFILE_SKIP": skip}))
                        us = timed(sim, a.steps)
                        rows.append({"net": name, "grid": sim.persistent_grid, "skip": skip,
                                     "steps_per_launch": 100, "us_per_step": us})
                        print(f"{name:3s} grid {sim.persistent_grid:4d} skip {skip} "
                              f"100/launch: {us:7.2f} us/step", flush=True)
                    sim._persist = full
                    sim.graph_steps = 1000
                    us = timed(sim, a.steps)
                    rows.append({"net": name, "grid": sim.persistent_grid, "skip": 0,
                                 "steps_per_launch": 1000, "us_per_step": us})
                    print(f"{name:3s} grid {sim.persistent_grid:4d} skip 0 1000/launch: "
                          f"{us:7.2f} us/step", flush=True)
            with CUDASimulator(cnet, "procedural", context=ctx, persistent=False) as sim:
                us = timed(sim, a.steps)
                rows.append({"net": name, "grid": 0, "skip": 0, "loop": sim.loop_mode,
                             "us_per_step": us})
                print(f"{name:3s} {sim.loop_mode}: {us:7.2f} us/step", flush=True)
        clock_khz = drv.Context.get_device().get_attribute(drv.device_attribute.CLOCK_RATE)
        cases = dict(nets())
        cases["bal1e5"] = pp.compile_network(balanced(100000, p=0.1, dt=1.0))
        for name, cnet in cases.items():
            for conn in ("procedural", "stored"):
                for unit_map in (False, True):
                    with CUDASimulator(cnet, conn, context=ctx, graph_steps=100,
                                       persistent=True, unit_map=unit_map) as sim:
                        sim.run_steps(500, [])
                        r = phase_split(sim, 1000 if name != "bal1e5" else 300, clock_khz)
                        r.update(net=name, connectivity=conn, grid=sim.persistent_grid,
                                 kind="phase_split", unit_map=unit_map)
                        rows.append(r)
                        print(f"{name:6s} {conn:10s} {'units ' if unit_map else ''}grid "
                              f"{sim.persistent_grid}: start->A {r['to_barrier_A_us']:.2f} us "
                              f"(own neuron work {r['own_neuron_us']:.2f}), A->B "
                              f"{r['A_to_B_us']:.2f} us per step", flush=True)
    finally:
        ctx.pop()
        ctx.detach()
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
