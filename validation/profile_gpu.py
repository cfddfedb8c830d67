#!/usr/bin/env python3
"""Where does the propagation time go?  Times the propagation kernel alone (1024 spikes
per launch) on variants that switch one cost on at a time, and the per-step cost of a
tiny network.  Run on the GPU machine; prints one table.

    python3 validation/profile_gpu.py            # timing table
    python3 validation/profile_gpu.py --ncu      # a few launches only (run under ncu)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyproc as pp  # noqa: E402
from pyproc.models import balanced  # noqa: E402


def fixed_net(n=100000, w_sd=0.1, d_sd=0.5):
    """The balanced network's sizes and synapse counts but fixed_total_number (the rule of
    the microcircuit and the multi-area model)."""
    net = pp.Network(dt=1.0, seed=1)
    n_e = int(0.8 * n)
    par = pp.LIF(E_L=-65.0, V_th=-50.0, V_reset=-65.0, tau_syn_ex=0.5, tau_syn_in=0.5)
    net.add_population("E", n_e, par)
    net.add_population("I", n - n_e, par)
    for s, w in (("E", 20.0), ("I", -100.0)):
        for t in ("E", "I"):
            ns, nt = net.populations[s].size, net.populations[t].size
            wd = pp.normal(w, abs(w) * w_sd) if w_sd else w
            dd = pp.normal(1.5, 1.5 * d_sd) if d_sd else 1.5
            net.connect(s, t, pp.fixed_total_number(int(0.1 * ns * nt)), weight=wd, delay=dd)
    return net


VARIANTS = {
    "bern p0.1 w~N d=c": lambda: balanced(100000, dt=1.0),
    "bern p0.1 w=c d=c": lambda: balanced(100000, dt=1.0, weight_sd=0.0),
    "bern p0.01 w~N d=c": lambda: balanced(100000, p=0.01, dt=1.0),
    "fixed w~N d~N": lambda: fixed_net(),
    "fixed w~N d=c": lambda: fixed_net(d_sd=0.0),
    "fixed w=c d=c": lambda: fixed_net(w_sd=0.0, d_sd=0.0),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ncu", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="40 steps of a 1k net, per-step launches")
    ap.add_argument("--spikes", type=int, default=1024)
    a = ap.parse_args()
    import pycuda.driver as drv
    from pyproc.backends.cuda import CUDASimulator
    drv.init()
    ctx = drv.Device(0).make_context()
    try:
        if a.tiny:
            sim = CUDASimulator(pp.compile_network(balanced(1000, dt=0.1)), "procedural",
                                context=ctx, use_graph=False)
            sim.run_steps(40, [])
            sim.close()
            return
        names = list(VARIANTS)[:2] if a.ncu else list(VARIANTS)
        conns = ("procedural",) if a.ncu else ("procedural", "stored")
        print(f"{'variant':22s} {'conn':10s} {'events/launch':>14s} {'ms/launch':>10s} {'events/s':>10s}")
        for name in names:
            cnet = pp.compile_network(VARIANTS[name]())
            rng = np.random.default_rng(0)
            spikes = cnet.spike_pairs(np.sort(rng.choice(cnet.n_neurons, a.spikes,
                                                         replace=False)))
            for conn in conns:
                if conn == "stored" and "p0.01" in name:
                    continue
                sim = CUDASimulator(cnet, conn, context=ctx)
                try:
                    sec, ev = sim.time_propagation(spikes, repeats=2 if a.ncu else 20)
                finally:
                    sim.close()
                print(f"{name:22s} {conn:10s} {ev:14d} {sec * 1e3:10.3f} {ev / sec:10.3e}",
                      flush=True)
        if a.ncu:
            return
        # per-step cost of a tiny network, by loop mode and graph length
        cnet = pp.compile_network(balanced(1000, dt=0.1))
        for opt in (dict(graph_steps=100), dict(graph_steps=1000, record_chunk_steps=10000),
                    dict(use_graph=False)):
            sim = CUDASimulator(cnet, "procedural", context=ctx, **opt)
            try:
                sim.run_steps(1000, [])
                t0 = time.perf_counter()
                sim.run_steps(10000, [])
                wall = time.perf_counter() - t0
            finally:
                sim.close()
            print(f"1k net, 10000 steps {opt}: {wall:.4f} s = {wall / 1e4 * 1e6:.2f} us/step "
                  f"({sim.loop_mode})", flush=True)
    finally:
        ctx.pop()


if __name__ == "__main__":
    main()
