"""A reduced multi-area model on the CPU: a subset of areas at a small scale.

    python validation/mam_reduced.py --structure PATH [--areas V1,V2,V4,FEF]
        [--scale 0.01] [--k-scale 1.0] [--duration 1000] [--state ground]
        [--connectivity stored] [--out validation/results/mam_cpu_reduced/NAME]

Writes ``summary.json`` to ``--out``: the parameters, the network totals,
wall-clock set-up and run times, and the mean rate of every population over
the time after ``--discard`` ms (the initial transient: V_m starts at
normal(-150, 50) mV).  With ``--compare`` the same network also runs with the
other connectivity and the spike trains must be identical.

Scaling (see ``pyproc.models.multiarea``): ``--scale`` multiplies the neuron
counts; ``--k-scale`` (default 1: full in-degrees, so no recurrent DC is
needed) multiplies the in-degrees, with weights / sqrt(k) and the lost mean
input given back as DC from the rates in ``pyproc.models.multiarea`` (or
``--rates-from SUMMARY.json`` of an earlier run).  The mean input of the areas
left out is always replaced by DC.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import pyproc as pp  # noqa: E402
from pyproc.models.multiarea import load_structure, multiarea, network_totals  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structure", required=True)
    ap.add_argument("--areas", default="V1,V2,V4,FEF")
    ap.add_argument("--scale", type=float, default=0.01)
    ap.add_argument("--k-scale", type=float, default=1.0)
    ap.add_argument("--state", default="ground", choices=("ground", "metastable"))
    ap.add_argument("--duration", type=float, default=1000.0, help="ms")
    ap.add_argument("--discard", type=float, default=200.0, help="ms left out of the rates")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--connectivity", default="stored", choices=("stored", "procedural"))
    ap.add_argument("--compare", action="store_true", help="also run the other connectivity")
    ap.add_argument("--rates-from", default=None, help="summary.json whose rates feed the DC")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)

    st = load_structure(a.structure)
    rates = None
    if a.rates_from:
        with open(a.rates_from) as f:
            rates = {k: v for k, v in json.load(f)["rates_Hz"].items() if v is not None}
    areas = a.areas.split(",")
    t0 = time.perf_counter()
    net = multiarea(st, state=a.state, areas=areas, scale=a.scale, k_scale=a.k_scale,
                    seed=a.seed, rates=rates)
    cnet = pp.compile_network(net)
    t_build = time.perf_counter() - t0
    runs = {}
    order = [a.connectivity] + ([{"stored": "procedural", "procedural": "stored"}[a.connectivity]]
                                if a.compare else [])
    for conn in order:
        sim = pp.Simulation(cnet, backend="cpu", connectivity=conn)
        t1 = time.perf_counter()
        res = sim.run(a.duration)
        runs[conn] = (res, sim.setup_time, time.perf_counter() - t1)
        print(f"{conn}: set-up {sim.setup_time:.1f} s, run {runs[conn][2]:.1f} s, "
              f"{res.times.size} spikes", flush=True)
    res, setup, wall = runs[a.connectivity]
    keep = res.times > a.discard
    counts = np.bincount(res.population_of(res.senders[keep]), minlength=len(res.pop_names))
    sec = (a.duration - a.discard) * 1e-3
    rates_out = {n: float(c / (s * sec)) for n, c, s in zip(res.pop_names, counts, res.pop_sizes)}
    out = {
        "model": "multiarea", "state": a.state, "areas": areas, "scale": a.scale,
        "k_scale": a.k_scale, "seed": a.seed, "duration_ms": a.duration,
        "discard_ms": a.discard, "connectivity": a.connectivity,
        "rates_for_dc": a.rates_from or "pyproc.models.multiarea defaults",
        "totals": network_totals(net), "host": platform.node(), "cpu_count": os.cpu_count(),
        "wall_build_compile_s": t_build, "wall_setup_s": setup, "wall_run_s": wall,
        "realtime_factor": wall / (a.duration * 1e-3),
        "total_spikes": int(res.times.size), "synaptic_events": res.meta.get("synaptic_events"),
        "rates_Hz": rates_out,
        "dc_pA": {n: p.params.I_e for n, p in net.populations.items()},
    }
    if a.compare:
        other = runs[order[1]][0]
        same = (np.array_equal(res.times, other.times)
                and np.array_equal(res.senders, other.senders))
        out["procedural_equals_stored"] = bool(same)
        out["wall_run_s_" + order[1]] = runs[order[1]][2]
        if not same:
            print("MISMATCH between stored and procedural spikes", file=sys.stderr)
    for layer in sorted({n.split("-", 1)[1] for n in res.pop_names}):
        v = [r for n, r in rates_out.items() if n.endswith("-" + layer)]
        print(f"  {layer:>4}: {np.mean(v):6.2f} Hz (areas: {', '.join(f'{x:.2f}' for x in v)})")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "summary.json"), "w") as f:
            json.dump(out, f, indent=2)
    if a.compare and not out["procedural_equals_stored"]:
        sys.exit(1)
    return out


if __name__ == "__main__":
    main()
