#!/usr/bin/env python3
"""CPU benchmark of the two CPU ways: the balanced network (or the microcircuit), stored
(SciPy CSR) vs procedural (NumPy twin), same seed, same spikes.

    python validation/bench_cpu_core.py --neurons 10000 --duration 1000 \
        --out validation/results/bench_cpu_core.json
    python validation/bench_cpu_core.py --model microcircuit --scale 0.05 --duration 1000

Records wall time of set-up and run, real-time factor (wall s per model s),
synaptic events delivered and events per wall second, and checks that both ways
emitted identical spikes.  A benchmark script, not a test: numbers depend on the
machine, which is recorded with them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyproc as pp  # noqa: E402
from pyproc.models import balanced, microcircuit  # noqa: E402


def machine():
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "platform": platform.platform(), "cpus": os.cpu_count(), "pyproc": pp.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=True,
                                            capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("balanced", "microcircuit"), default="balanced")
    ap.add_argument("--neurons", type=int, default=10000, help="balanced network size")
    ap.add_argument("--scale", type=float, default=0.05, help="microcircuit scale")
    ap.add_argument("--duration", type=float, default=1000.0, help="model time, ms")
    ap.add_argument("--dt", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON file to write")
    a = ap.parse_args(argv)
    net = (balanced(a.neurons, dt=a.dt, seed=a.seed) if a.model == "balanced" else
           microcircuit(a.scale, dt=a.dt, seed=a.seed))
    rows, spikes = [], {}
    for conn in ("stored", "procedural"):
        t0 = time.perf_counter()
        sim = pp.Simulation(net, backend="cpu", connectivity=conn)
        t1 = time.perf_counter()
        res = sim.run(a.duration)
        t2 = time.perf_counter()
        ev = int(sim.sim.n_events)
        rows.append({"connectivity": conn, "setup_s": t1 - t0, "run_s": t2 - t1,
                     "rtf": (t2 - t1) / (a.duration * 1e-3), "spikes": int(res.times.size),
                     "synaptic_events": ev, "events_per_s": ev / (t2 - t1),
                     "mean_rate_Hz": float(np.nanmean(res.rates()))})
        spikes[conn] = (res.times, res.senders)
        print(f"{conn:11s} setup {t1 - t0:7.2f} s  run {t2 - t1:7.2f} s  RTF {rows[-1]['rtf']:7.2f}  "
              f"events {ev:.3e}  events/s {rows[-1]['events_per_s']:.3e}", flush=True)
    same = all(np.array_equal(x, y) for x, y in zip(spikes["stored"], spikes["procedural"]))
    print("identical spikes (stored vs procedural):", same)
    result = {"benchmark": f"{a.model}, CPU backends", "neurons": net.n_neurons,
              "scale": a.scale if a.model == "microcircuit" else None,
              "duration_ms": a.duration, "dt_ms": a.dt, "seed": a.seed,
              "synapses_expected": float(sum(pp.compile_network(net).expected_synapses(k)
                                             for k in range(len(net.projections)))),
              "identical_spikes": same, "results": rows, "machine": machine(),
              "command": " ".join(sys.argv)}
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
