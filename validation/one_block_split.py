#!/usr/bin/env python3
"""The one-block build's propagation split: a model of its longest warp, not a measurement.

    python3 validation/one_block_split.py [--neurons 1000] [--rate 23] [--steps 4000]

The persistent propagation phase (kernels/phases.cuh pp_procedural_phase) cuts each of a
step's (spike, projection) items into `split` parts (kernels/step.cuh pp_split_for: about
parts_per_warp parts per warp of the grid), warp w takes virtual warps v = w, w + n_warps,
..., v maps to item v / split and part v % split, and in a step with few items part p of a
pairwise_bernoulli item walks segments p, p + split, ... by the whole warp.  Every virtual
warp pays its item's chain of dependent loads; every segment a whole-warp walk.  This
counts, for the one-block build (16 warps) on the balanced network at dt 0.1 ms (bench
(c)'s 1,000 neurons; spikes per step Poisson at the given rate, sources by population
size), the longest warp's cost = chains x c_chain + segment walks x c_segment, averaged
over steps, for parts_per_warp 1, 2, 4 and 8 and two chain costs (docs/performance.md,
eighth session: it chose PP_PARTS_PER_WARP_PERSISTENT=2 for the one-block build).  The
cycle costs are assumptions (a segment walk ~700 cycles: Philox, warp scan, weight,
shared atomic; a chain 200-600: shared and L1 loads); the ranking is what it is for.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

N_WARPS = 512 // 32          # PP_ONE_BLOCK_THREADS / 32
C_SEGMENT = 700              # cycles of one whole-warp segment walk (assumed)


def split_for(items: int, n_warps: int, parts_per_warp: int) -> int:
    """kernels/step.cuh pp_split_for: ceil(parts_per_warp * n_warps / items) in [1, 32]."""
    want = parts_per_warp * n_warps
    return 1 if items >= want else min(32, -(-want // items))


def longest_warp(seg_counts, split: int, n_warps: int, c_chain: float,
                 c_segment: float = C_SEGMENT) -> float:
    """Cost of the busiest warp for items with these segment counts (one per item, in
    item order), whole-warp walks: virtual warp v -> item v // split, part v % split,
    segments part, part + split, ... < n_seg."""
    cost = np.zeros(n_warps)
    for v in range(len(seg_counts) * split):
        item, part = divmod(v, split)
        n = int(seg_counts[item])
        cost[v % n_warps] += c_chain + c_segment * len(range(part, n, split))
    return float(cost.max())


def model(cnet, rate_hz: float, steps: int, parts_per_warp: int, c_chain: float,
          rng) -> float:
    """Mean over steps with at least one spike of the longest warp's cost."""
    pops, pj = cnet.pops, cnet.projs
    n = pops["n"].astype(float)
    outs = [np.flatnonzero(pj["src_pop"] == p) for p in range(len(pops))]
    max_out = max(len(o) for o in outs)
    lam = rate_hz * cnet.dt * 1e-3 * n.sum()
    out = []
    for _ in range(steps):
        ns = rng.poisson(lam)
        if ns == 0:
            continue
        src = rng.choice(len(pops), size=ns, p=n / n.sum())
        segs = []
        for s in src:                      # item (s, q): q < max_out, past the end: empty
            o = outs[s]
            segs += [int(pj["n_seg"][o[q]]) if q < len(o) else 0 for q in range(max_out)]
        split = split_for(len(segs), N_WARPS, parts_per_warp)
        out.append(longest_warp(segs, split, N_WARPS, c_chain))
    return float(np.mean(out))


def main(argv=None) -> int:
    import pyproc as pp
    from pyproc.models import balanced
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--neurons", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=23.0, help="Hz (CPU reference: 23)")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args(argv)
    cnet = pp.compile_network(balanced(a.neurons, dt=0.1))
    for c_chain in (200, 600):
        for ppw in (1, 2, 4, 8):
            rng = np.random.default_rng(a.seed)
            c = model(cnet, a.rate, a.steps, ppw, c_chain, rng)
            print(f"chain {c_chain} cycles, parts per warp {ppw}: longest warp {c:,.0f} cycles",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
