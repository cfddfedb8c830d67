#!/usr/bin/env python3
"""GPU benchmark of the CUDA backend (issue 3), procedural AND stored on the same card.

    python3 validation/bench_gpu.py --out OUTDIR/bench_gpu.json
    python3 validation/bench_gpu.py --table OUTDIR/bench_gpu.json     # print the table

(a) whole simulation (neurons + Poisson input + propagation + recording) of the
    balanced network, 1e5 neurons, p = 0.1, dt = 1 ms, after a warm-up: wall
    seconds per model second and synaptic events per wall second (procedural also with
    shared-memory tiles, in the persistent and in the graph loop);
(b) the propagation kernel alone on >= 512 spikes per launch of that network (and, on
    the same spikes, the build that walks bernoulli segments one by one,
    PP_FLAT_WALK=0: an A/B of the flat constant-delay walk; and the tiles with the tile
    kernel that takes spikes from the global list, PP_TILE_COMPACT=0: an A/B of the
    chunk's shared spike list);
(c) per-step overhead: a 1,000-neuron balanced network, 1 s of model time at
    dt = 0.1 ms (10,000 steps): the persistent kernel on one block per neuron block
    (5; also with shared tables, and pipelined with shared tables), on one block
    (no grid barrier), the one-block build (one block of 512 threads, ring and spike
    list in shared memory; also pipelined), with 1, 2 and 3 blocks per SM and the
    default (the fewest that
    hold the neuron blocks: 1 here), with shared tables, with the unit map, pipelined
    (one barrier per step), the graph loop, per-step launches and the default (auto,
    which also times the grid of 5);
(d) set-up times (kernel compilation separately);
(e) the full-scale microcircuit (dt 0.1 ms), 1 s after a 0.2 s warm-up, procedural
    and stored: persistent kernel (also on one block per neuron block, with shared
    tables, the throughput build, the unit map, unit map + shared tables), graph loop
    and the default (auto);
(f) the cost of state recording (Network.record_state): (e)'s network, procedural, the
    default loop, with V_m of the first 10 neurons of every population every 1 ms and
    every step (a gather launch per sample between batches, the loop cut there): against
    (e)'s default row.
(a), (c) and (e) also run persistent="auto" with tune_builds=True (auto times the
opt-in builds too).  Every run records its loop (loop_mode) and, for persistent="auto",
the timings that chose it (loop_tuning); auto runs warm up past that timing, so the
timed steps are the chosen loop's.
Targets (issue 3): (a) >= 1e11 events/s, procedural at least as fast as stored;
(b) >= 1.5e11 events/s; (c) <= 0.05 s per model second (5 us per step).
A benchmark, not a test: the numbers are recorded with the machine they came from.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyproc as pp  # noqa: E402
from pyproc.models import balanced  # noqa: E402
from pyproc.plan import neuron_blocks  # noqa: E402


def _machine(drv):
    info = {"pyproc": pp.__version__, "python": sys.version.split()[0],
            "numpy": np.__version__}
    dev = drv.Device(0)
    info["gpu"] = dev.name()
    info["gpu_memory_bytes"] = int(dev.total_memory())
    info["compute_capability"] = "%d.%d" % dev.compute_capability()
    v = drv.get_driver_version()
    info["cuda_driver_api"] = f"{v // 1000}.{(v % 1000) // 10}"
    info["pycuda_cuda_version"] = ".".join(map(str, drv.get_version()))
    for key, cmd in (("nvidia_driver", ["nvidia-smi", "--query-gpu=driver_version",
                                        "--format=csv,noheader"]),
                     ("nvcc", ["nvcc", "--version"]),
                     ("git_commit", ["git", "rev-parse", "--short", "HEAD"])):
        try:
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
            info[key] = out.splitlines()[-1 if key == "nvcc" else 0].strip()
        except (OSError, subprocess.CalledProcessError, IndexError):
            info[key] = None
    # the GPU machine gets a copy of the working tree whose .git may be stale or absent:
    # the caller names the commit (PYPROC_GIT_COMMIT=... bash validation/gpu_flagships.sh)
    from pyproc.provenance import git_commit
    info["git_commit"] = git_commit()
    return info


def whole_sim(cnet, conn, ctx, warmup_steps, steps, **opt):
    from pyproc.backends.cuda import CUDASimulator
    t0 = time.perf_counter()
    sim = CUDASimulator(cnet, conn, context=ctx, **opt)
    setup = time.perf_counter() - t0
    rec = []
    sim.run_steps(warmup_steps, rec)
    while sim._tune:         # auto: warm up past the timing of the loops (steady state)
        sim.run_steps(sim.graph_steps, rec)
        warmup_steps += sim.graph_steps
    ev0, sp0 = sim.n_events, sim.n_spikes_total
    rec = []
    t0 = time.perf_counter()
    sim.run_steps(steps, rec)
    wall = time.perf_counter() - t0
    ev, spikes = sim.n_events - ev0, sim.n_spikes_total - sp0
    model_s = steps * cnet.dt * 1e-3
    out = {"connectivity": conn, "setup_s": setup, "warmup_steps": warmup_steps,
           "steps": steps, "model_s": model_s,
           "wall_s": wall, "wall_per_model_s": wall / model_s, "events": ev,
           "events_per_s": ev / wall if wall > 0 else None, "spikes": spikes,
           "rate_hz": spikes / (cnet.n_neurons * model_s), "loop_mode": sim.loop_mode,
           "graph_error": sim.graph_error, "persistent_error": sim.persistent_error,
           "persistent_grid": sim.persistent_grid, "options": dict(opt),
           "loop_tuning": sim.loop_tuning,
           "device_bytes": sim.allocated_bytes,
           "synapses_stored": sim.n_synapses_stored}
    return sim, out


def main(argv=None):
    from pyproc.backends.cuda import CUDASimulator  # noqa: F401  (used in (b))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="write the results here (JSON)")
    ap.add_argument("--table", help="only print the table of an existing JSON file")
    ap.add_argument("--neurons", type=int, default=100000)
    ap.add_argument("--duration", type=float, default=3000.0, help="timed model ms for (a)")
    ap.add_argument("--warmup", type=float, default=300.0, help="warm-up model ms for (a)")
    ap.add_argument("--spikes", type=int, default=1024, help="spikes per launch for (b)")
    ap.add_argument("--skip-microcircuit", action="store_true", help="leave out (e)")
    args = ap.parse_args(argv)
    if args.table:
        with open(args.table) as f:
            print(table(json.load(f)))
        return 0

    import pycuda.driver as drv
    drv.init()
    ctx = drv.Device(0).make_context()
    res = {"machine": _machine(drv), "args": vars(args)}
    print(f"GPU: {res['machine']['gpu']}", flush=True)
    try:
        # (d) kernel compilation (PyCUDA caches cubins on disk: warm after the first run)
        from pyproc import kernels
        t0 = time.perf_counter()
        kernels.get_kernels()
        for name in kernels.COOPERATIVE_KERNELS:
            kernels.get_cooperative_kernel(name)
        res["compile_s"] = time.perf_counter() - t0

        # (a) + (b) + (d): the 1e5-neuron balanced network
        cnet = pp.compile_network(balanced(args.neurons, p=0.1, dt=1.0))
        warm = int(round(args.warmup / cnet.dt))
        steps = int(round(args.duration / cnet.dt))
        rng = np.random.default_rng(1)
        spikes = cnet.spike_pairs(np.sort(rng.choice(cnet.n_neurons, args.spikes,
                                                     replace=False)))
        res["whole"], res["propagation"] = [], []
        for conn in ("procedural", "stored"):
            # forced loops first, for comparison; the default (auto) last, kept for (b)
            others = [{"persistent": False}, {"persistent": True},
                      {"persistent": True, "throughput_build": True}, {"tune_builds": True}]
            if conn == "procedural":
                others.append({"persistent": True, "bernoulli_tiles": True})
                others.append({"persistent": False, "bernoulli_tiles": True})
                others.append({"persistent": True, "unit_map": True})
            for opt in others:
                g, out = whole_sim(cnet, conn, ctx, warm, steps, **opt)
                g.close()
                res.setdefault("whole_graph", []).append(out)
                print(f"(a) {conn} {out['loop_mode']} {opt}: {out['wall_per_model_s']:.3f} "
                      f"s/model s, {out['events_per_s']:.3g} events/s", flush=True)
            sim, out = whole_sim(cnet, conn, ctx, warm, steps)
            res["whole"].append(out)
            print(f"(a) {conn}: {out['wall_per_model_s']:.3f} s/model s, "
                  f"{out['events_per_s']:.3g} events/s, rate {out['rate_hz']:.1f} Hz, "
                  f"set-up {out['setup_s']:.2f} s ({out['loop_mode']}, grid "
                  f"{out['persistent_grid']})", flush=True)
            # (row, tiles, variant build); the segment walk: an A/B on the same spikes, the
            # build that walks bernoulli segments one by one (PP_FLAT_WALK=0); the spike
            # queue: the tile kernel reading the global spike list per column
            # (PP_TILE_COMPACT=0)
            variants = [(conn, False, None)]
            if conn == "procedural":
                variants += [("procedural segment walk", False, {"PP_FLAT_WALK": 0}),
                             ("procedural tiles", True, None),
                             ("procedural tiles, spike queue", True, {"PP_TILE_COMPACT": 0})]
            for key, tiles, defines in variants:
                if tiles and not sim.n_tiles:   # tiles are opt-in: a simulator with them
                    sim.close()
                    sim = CUDASimulator(cnet, conn, context=ctx, bernoulli_tiles=True)
                sec, ev = sim.time_propagation(spikes, repeats=20, tiles=tiles,
                                               defines=defines)
                assert sim.last_propagation_tiles == tiles
                res["propagation"].append({"connectivity": key, "spikes": int(len(spikes)),
                                           "s_per_launch": sec, "events_per_launch": ev,
                                           "events_per_s": ev / sec})
                print(f"(b) {key}: {len(spikes)} spikes, {ev} events in {sec * 1e3:.3f} ms "
                      f"= {ev / sec:.3g} events/s", flush=True)
            sim.close()
            del sim

        save(args.out, res)
        # (c) per-step overhead: 1,000 neurons, 1 s at dt = 0.1 ms
        small = pp.compile_network(balanced(1000, dt=0.1))
        nb = int(neuron_blocks(small).sum())                              # 5
        res["overhead"] = []
        for opt in ({"persistent": True, "persistent_grid": nb},
                    {"persistent": True, "persistent_grid": nb, "shared_tables": True},
                    {"persistent": True, "persistent_grid": nb, "pipelined": True,
                     "shared_tables": True},
                    {"persistent": True, "persistent_grid": 1},
                    {"persistent": True, "one_block": True},
                    {"persistent": True, "one_block": True, "pipelined": True},
                    {"persistent": True, "persistent_blocks_per_sm": 1},
                    {"persistent": True, "persistent_blocks_per_sm": 2},
                    {"persistent": True, "persistent_blocks_per_sm": 3}, {"persistent": True},
                    {"persistent": True, "shared_tables": True},
                    {"persistent": True, "unit_map": True},
                    {"persistent": True, "pipelined": True},
                    {"persistent": True, "pipelined": True, "unit_map": True},
                    {"persistent": True, "pipelined": True, "shared_tables": True},
                    {"persistent": False}, {"persistent": False, "use_graph": False},
                    {"tune_builds": True}, {}):
            sim, out = whole_sim(small, "procedural", ctx, 1000, 10000, **opt)
            out["us_per_step"] = out["wall_s"] / out["steps"] * 1e6
            res["overhead"].append(out)
            print(f"(c) {out['loop_mode']} grid {out['persistent_grid']}: {out['wall_s']:.4f} s "
                  f"per model s, {out['us_per_step']:.2f} us/step", flush=True)
            sim.close()

        save(args.out, res)
        # (e) full-scale microcircuit, 1 s after 0.2 s
        if not args.skip_microcircuit:
            from pyproc.models import microcircuit
            mc = pp.compile_network(microcircuit(1.0, dt=0.1))
            nb_mc = int(neuron_blocks(mc).sum())                                # 305
            res["microcircuit"] = []
            for conn in ("procedural", "stored"):
                for opt in ({"persistent": True}, {"persistent": True, "persistent_grid": nb_mc},
                            {"persistent": True, "shared_tables": True},
                            {"persistent": True, "throughput_build": True},
                            {"persistent": True, "unit_map": True},
                            {"persistent": True, "unit_map": True, "shared_tables": True},
                            {"persistent": False}, {"tune_builds": True}, {}):
                    sim, out = whole_sim(mc, conn, ctx, 2000, 10000, **opt)
                    res["microcircuit"].append(out)
                    save(args.out, res)
                    print(f"(e) microcircuit {conn} {out['loop_mode']} grid "
                          f"{out['persistent_grid']}: {out['wall_per_model_s']:.4f} s per model s"
                          f", rate {out['rate_hz']:.2f} Hz", flush=True)
                    sim.close()
            # (f) state recording on the same network (the compiled one, with the
            # recordings added: pyproc.staterec)
            import copy
            import dataclasses
            from pyproc.staterec import state_groups
            res["state_recording"] = []
            for interval in (1.0, 0.1):
                net = copy.deepcopy(mc.network)      # (e)'s network stays as it was
                for pop in net.populations:
                    net.record_state(pop, "V_m", neurons=range(10), interval=interval)
                rec_net = dataclasses.replace(mc, state=state_groups(net, mc.pop_names,
                                                                     mc.pops["offset"]))
                sim, out = whole_sim(rec_net, "procedural", ctx, 2000, 10000)
                out["state_interval_ms"] = interval
                out["state_neurons"] = 10 * len(mc.pop_names)
                res["state_recording"].append(out)
                save(args.out, res)
                print(f"(f) microcircuit, V_m every {interval:g} ms: "
                      f"{out['wall_per_model_s']:.4f} s per model s ({out['loop_mode']})",
                      flush=True)
                sim.close()
    finally:
        ctx.pop()
        ctx.detach()
    save(args.out, res)
    print(table(res))
    return 0


def save(path, res) -> None:
    """Write the results so far (after every section: a run cut by a time limit keeps
    what it measured)."""
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(res, f, indent=1, default=float)


def _loop_label(o, grid: bool = True) -> str:
    """How a run stepped: its loop, grid, and the options that chose or changed it."""
    opt = o.get("options") or {}
    what = o["loop_mode"]
    if grid and o.get("persistent_grid"):
        what += f" grid {o['persistent_grid']}"
    if not opt and grid:
        what += " (auto)"
    if opt.get("tune_builds"):
        what += f" (auto over builds: {(o.get('loop_tuning') or {}).get('chosen')})"
    for key, word in (("bernoulli_tiles", "tiles"), ("shared_tables", "shared"),
                      ("unit_map", "units"), ("pipelined", "pipelined"),
                      ("throughput_build", "throughput"), ("one_block", "one-block")):
        if opt.get(key):
            what += " " + word
    return what


def table(res) -> str:
    m = res["machine"]
    lines = [f"GPU {m['gpu']} (driver {m.get('nvidia_driver')}, CUDA {m['cuda_driver_api']}), "
             f"commit {m.get('git_commit')}",
             f"{'measure':<44} {'procedural':>14} {'stored':>14} {'target':>10}"]
    w = {o["connectivity"]: o for o in res.get("whole", [])}
    p = {o["connectivity"]: o for o in res.get("propagation", [])}

    def row(name, f, d, target):
        vals = [f(d[c]) if c in d else "-" for c in ("procedural", "stored")]
        lines.append(f"{name:<44} {vals[0]:>14} {vals[1]:>14} {target:>10}")

    row("(a) 1e5 balanced: wall s per model s", lambda o: f"{o['wall_per_model_s']:.3f}", w, "")
    row("(a) 1e5 balanced: events/s", lambda o: f"{o['events_per_s']:.3g}", w, ">=1e11")
    row("(a) firing rate (Hz)", lambda o: f"{o['rate_hz']:.2f}", w, "")
    row("(b) propagation alone: events/s", lambda o: f"{o['events_per_s']:.3g}", p, ">=1.5e11")
    for key, what in (("procedural tiles", "with tiles"),
                      ("procedural tiles, spike queue", "tiles, queue (A/B)"),
                      ("procedural segment walk", "segment walk (A/B)")):
        if key in p:
            lines.append(f"{'(b) procedural ' + what + ': events/s':<44} "
                         f"{p[key]['events_per_s']:>14.3g}")
    row("(d) set-up s (1e5 network)", lambda o: f"{o['setup_s']:.2f}", w, "")
    for o in res.get("whole", []):
        lines.append(f"{'(a) default loop, ' + o['connectivity'][:4] + ': ' + o['loop_mode']:<44}")
    for o in res.get("whole_graph", []):
        what = _loop_label(o, grid=False)
        lines.append(f"{'(a) ' + what + ', ' + o['connectivity'][:4] + ': s/model s, ev/s':<44} "
                     f"{o['wall_per_model_s']:>14.3f} {o['events_per_s']:>14.3g}")
    for o in res.get("overhead", []):
        what = _loop_label(o)
        lines.append(f"{'(c) 1k neurons 1 s, ' + what + ': s / us/step':<44} "
                     f"{o['wall_s']:>14.4f} {o['us_per_step']:>14.2f} {'<=0.05 s':>10}")
    for o in res.get("microcircuit", []):
        what = _loop_label(o)
        lines.append(f"{'(e) microcircuit ' + o['connectivity'][:4] + ', ' + what + ': s/model s':<44} "
                     f"{o['wall_per_model_s']:>14.4f} {o['rate_hz']:>14.2f} {'<=0.1':>10}")
    for o in res.get("state_recording", []):
        what = f"V_m every {o['state_interval_ms']:g} ms, {_loop_label(o)}"
        lines.append(f"{'(f) microcircuit proc, ' + what + ': s/model s':<44} "
                     f"{o['wall_per_model_s']:>14.4f}")
    if "compile_s" in res:
        lines.append(f"{'(d) kernel compile s (PyCUDA cache)':<44} {res['compile_s']:>14.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
