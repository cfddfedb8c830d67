#!/usr/bin/env python3
"""The full multi-area model on one GPU (issue 5).

    python3 validation/mam_gpu.py --structure PATH/mam_structure.json --state ground \
        --duration 1500 --discard 500 --out OUTDIR

Times the set-up from loading the structure file to the first step (load, build,
compile, device set-up), runs ``--duration`` ms procedurally on the GPU, and
writes OUTDIR/mam_<state>.json (wall time per model second, device memory
allocated by pyproc and as the driver sees it, totals) and OUTDIR/mam_<state>.md
(per-area, per-population rates after ``--discard`` ms).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyproc as pp  # noqa: E402
from pyproc.cli import cuda_option  # noqa: E402
from pyproc.models.multiarea import load_structure, multiarea, network_totals  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--structure", required=True)
    ap.add_argument("--state", default="ground", choices=("ground", "metastable"))
    ap.add_argument("--duration", type=float, default=1500.0, help="model ms")
    ap.add_argument("--discard", type=float, default=500.0, help="ms left out of the rates")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cuda-option", type=cuda_option, action="append", default=[],
                    metavar="NAME=VALUE", help="a CUDA backend option (repeatable), as for "
                    "pyproc run, e.g. throughput_build=1")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    import pycuda.driver as drv
    from pyproc.backends.cuda import CUDASimulator
    drv.init()
    ctx = drv.Device(0).make_context()
    try:
        free0, total_mem = drv.mem_get_info()
        t0 = time.perf_counter()
        st = load_structure(a.structure)
        net = multiarea(st, state=a.state, seed=a.seed)
        t1 = time.perf_counter()
        cnet = pp.compile_network(net)
        t2 = time.perf_counter()
        sim = CUDASimulator(cnet, "procedural", context=ctx, **dict(a.cuda_option))
        t3 = time.perf_counter()
        free1, _ = drv.mem_get_info()
        print(f"set-up: load+build {t1 - t0:.2f} s, compile {t2 - t1:.2f} s, device "
              f"{t3 - t2:.2f} s; total {t3 - t0:.2f} s; device bytes {sim.allocated_bytes:,d}",
              flush=True)
        steps = int(round(a.duration / cnet.dt))
        chunk = 1000
        rec = []
        done = 0
        t_run = time.perf_counter()
        while done < steps:
            m = min(chunk, steps - done)
            sim.run_steps(m, rec)
            done += m
            el = time.perf_counter() - t_run
            print(f"  {done * cnet.dt:8.1f} ms  wall {el:7.1f} s  "
                  f"{el / (done * cnet.dt * 1e-3):6.2f} s per model s  spikes {sim.n_spikes_total:,d}",
                  flush=True)
        wall = time.perf_counter() - t_run
        free2, _ = drv.mem_get_info()
        n_events = int(sim.n_events)
        loop_mode, loop_tuning = sim.loop_mode, sim.loop_tuning
        sim.close()
    finally:
        ctx.pop()
    steps_arr = np.concatenate([np.full(g.size, s, np.int64) for s, g in rec]) if rec else np.zeros(0, np.int64)
    ids = np.concatenate([g for _, g in rec]) if rec else np.zeros(0, np.int64)
    t_ms = (steps_arr + 1) * cnet.dt
    keep = t_ms > a.discard
    offs = cnet.pops["offset"].astype(np.int64)
    sizes = cnet.pops["n"].astype(np.int64)
    pop = np.searchsorted(offs, ids[keep], side="right") - 1
    counts = np.bincount(pop, minlength=len(offs))
    span = (a.duration - a.discard) * 1e-3
    rates = counts / (sizes * span)
    totals = network_totals(net)
    res = {"model": "multi-area model (Schmidt et al. 2018)", "state": a.state, "seed": a.seed,
           "duration_ms": a.duration, "discard_ms": a.discard, "totals": totals,
           "setup_s": {"load_build": t1 - t0, "compile": t2 - t1, "device": t3 - t2,
                       "total": t3 - t0},
           "wall_run_s": wall, "wall_per_model_s": wall / (a.duration * 1e-3),
           "synaptic_events": n_events, "events_per_s": n_events / wall,
           "spikes": int(ids.size), "loop_mode": loop_mode, "loop_tuning": loop_tuning,
           "cuda_options": dict(a.cuda_option),
           "device_bytes_planned": int(sim.allocated_bytes),
           "device_bytes_used_driver": int(free0 - min(free1, free2)),
           "gpu_memory_total": int(total_mem),
           "mean_rate_Hz": float(counts.sum() / (sizes.sum() * span)),
           "rates_Hz": {cnet.pop_names[i]: float(rates[i]) for i in range(len(offs))}}
    with open(os.path.join(a.out, f"mam_{a.state}.json"), "w") as f:
        json.dump(res, f, indent=1)
    areas = []
    for name in cnet.pop_names:
        ar = name.split("-")[0]
        if ar not in areas:
            areas.append(ar)
    layers = ["23E", "23I", "4E", "4I", "5E", "5I", "6E", "6I"]
    lines = [f"# Multi-area model, {a.state} state, full scale, GPU", "",
             f"{totals.get('populations', len(offs))} populations, {int(sizes.sum()):,d} neurons, "
             f"{totals.get('synapses', 0):,d} synapses; {a.duration:g} ms simulated, rates over "
             f"the last {a.duration - a.discard:g} ms.", "",
             f"Set-up (file to first step) {t3 - t0:.1f} s; {res['wall_per_model_s']:.2f} s wall per "
             f"model second; device memory {res['device_bytes_planned'] / 1e9:.2f} GB planned "
             f"({res['device_bytes_used_driver'] / 1e9:.2f} GB by the driver's count); mean rate "
             f"{res['mean_rate_Hz']:.2f} Hz.", "",
             "| area | " + " | ".join(layers) + " |", "|---" * (len(layers) + 1) + "|"]
    for ar in areas:
        cells = []
        for la in layers:
            nm = f"{ar}-{la}"
            cells.append(f"{rates[cnet.pop_names.index(nm)]:.2f}" if nm in cnet.pop_names else "-")
        lines.append(f"| {ar} | " + " | ".join(cells) + " |")
    with open(os.path.join(a.out, f"mam_{a.state}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[:8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
