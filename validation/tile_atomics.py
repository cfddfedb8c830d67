#!/usr/bin/env python3
"""Global atomics per synapse of the shared-memory tiles: a count, not a measurement.

    python3 validation/tile_atomics.py [--neurons 100000] [--spikes 280 1024] [--grids 396 528]

The tile phase (kernels/phases.cuh pp_tile_phase) sums a chunk of the step's spikes into
a shared tile and then makes one global atomicAdd per neuron of the tile whose sum is
not zero; the per-spike path makes one per synapse.  This counts the former with the
tile phase's own chunking (chunks from the grid and the spike count, spikes drawn from
the populations in proportion to their size, each tile neuron's synapses from the chunk
binomial), for the balanced network at p = 0.1 (bench_gpu.py (a) and (b)).  It prints,
per spike count and grid, the chunks, the spikes per chunk and the global atomics per
synapse per source population and overall (docs/performance.md, seventh session).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TILE_MIN_CHUNK = 32          # PP_TILE_MIN_CHUNK


def chunking(ns: int, n_tiles: int, grid: int):
    """(chunks, spikes per chunk), as pp_tile_phase computes them."""
    n_chunks = -(-2 * grid // n_tiles)
    n_chunks = max(1, min(n_chunks, -(-ns // TILE_MIN_CHUNK)))
    return n_chunks, -(-ns // n_chunks)


def count(cnet, tiles, ns: int, grid: int, reps: int, rng) -> dict:
    pj, pops = cnet.projs, cnet.pops
    n_chunks, C = chunking(ns, len(tiles), grid)
    share = pops["n"].astype(float) / pops["n"].sum()
    syn = np.zeros(len(pops)), np.zeros(len(pops))
    for _ in range(reps):
        src = rng.choice(len(pops), size=ns, p=share)
        for k, t in tiles:
            k, t = int(k), int(t)
            sp, w = int(pj["src_pop"][k]), int(pj["seg_width"][k])
            tile_n = min(32 * w, int(pj["n_post"][k]) - t * 32 * w)
            p = -np.expm1(float(pj["log1mp"][k]))
            for c in range(n_chunks):
                m = int((src[c * C:(c + 1) * C] == sp).sum())
                if m:
                    s = rng.binomial(m, p, size=tile_n)
                    syn[0][sp] += s.sum()
                    syn[1][sp] += (s > 0).sum()
    per_pop = {cnet.pop_names[i]: syn[1][i] / syn[0][i] for i in range(len(pops)) if syn[0][i]}
    return {"spikes": ns, "grid": grid, "chunks": n_chunks, "spikes_per_chunk": C,
            "atomics_per_synapse": per_pop, "overall": syn[1].sum() / syn[0].sum()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--neurons", type=int, default=100000)
    ap.add_argument("--spikes", type=int, nargs="+", default=[280, 1024])
    ap.add_argument("--grids", type=int, nargs="+", default=[396, 528],
                    help="blocks: 3 x 132 (persistent kernel), 4 x 132 (tile kernel)")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    import pyproc as pp
    from pyproc.models import balanced
    from pyproc.plan import device_tables
    cnet = pp.compile_network(balanced(a.neurons, p=0.1, dt=1.0))
    tiles = device_tables(cnet)["tiles"]
    rng = np.random.default_rng(0)
    print(f"balanced {a.neurons:,d}, p = 0.1: {len(tiles)} tile entries")
    for ns in a.spikes:
        for grid in a.grids:
            r = count(cnet, tiles, ns, grid, a.reps, rng)
            pops = ", ".join(f"{k} {v:.2f}" for k, v in r["atomics_per_synapse"].items())
            print(f"{ns:5d} spikes, grid {grid}: {r['chunks']} chunks of {r['spikes_per_chunk']}"
                  f" spikes; global atomics per synapse {r['overall']:.2f} (by source: {pops})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
