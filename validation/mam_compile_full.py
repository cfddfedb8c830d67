"""Compile the full multi-area model and report set-up time and buffer sizes.

    python validation/mam_compile_full.py --structure PATH [--state ground]
        [--delay-clip-sd 3.719 | 0] [--json OUT.json]

Measures: loading the structure file, building the network description,
``compile_network`` (row lengths of all 8,344 projections are drawn on the
host), the host's peak resident memory, and the bytes of the device buffers
the compiled network implies: the int32 delay ring (sum over populations of
n x channels x ring slots), the uint32 row-length table (and what a uint16 one
would take), the per-neuron state, and the memory planner's total when
``pyproc.plan`` is present.  Needs about 2 GB of host memory; no GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from pyproc import compile_network  # noqa: E402
from pyproc.models.multiarea import (GENN_DELAY_CLIP_SD, load_structure, multiarea,  # noqa: E402
                                     network_totals)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux: KiB


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structure", required=True, help="path to the MAM structure JSON")
    ap.add_argument("--state", default="ground", choices=("ground", "metastable"))
    ap.add_argument("--delay-clip-sd", type=float, default=GENN_DELAY_CLIP_SD,
                    help="truncate delays above mean + this many sd (default 3.719 as GeNN; "
                         "0: no upper bound, as NEST)")
    ap.add_argument("--json", default=None, help="write the numbers here")
    a = ap.parse_args(argv)

    t0 = time.perf_counter()
    st = load_structure(a.structure)
    t1 = time.perf_counter()
    clip = a.delay_clip_sd if a.delay_clip_sd else None
    net = multiarea(st, state=a.state, delay_clip_sd=clip)
    t2 = time.perf_counter()
    c2 = time.process_time()
    cnet = compile_network(net)
    t3 = time.perf_counter()
    cpu_compile = time.process_time() - c2

    pops = cnet.pops
    ring_bytes = int(cnet.ring_size) * 4
    slots = pops["ring_slots"].astype(np.int64)
    n = pops["n"].astype(np.int64)
    rowlen_max = int(cnet.rowlen.max()) if cnet.rowlen.size else 0
    out = {
        "host": platform.node(), "cpu_count": os.cpu_count(), "numpy": np.__version__,
        "state": a.state, "delay_clip_sd": clip,
        "totals": network_totals(net),
        "time_load_s": t1 - t0, "time_build_s": t2 - t1, "time_compile_s": t3 - t2,
        "time_setup_host_s": t3 - t0,
        "cpu_time_compile_s": cpu_compile,   # differs from wall time on a loaded machine
        "peak_rss_bytes": peak_rss_bytes(),
        "ring_bytes": ring_bytes,
        "ring_slots_max": int(slots.max()), "ring_slots_min": int(slots.min()),
        "ring_slots_mean_per_neuron": float((slots * n).sum() / n.sum()),
        "n_channels": sorted(set(int(c) for c in pops["n_channels"])) if "n_channels" in
        pops.dtype.names else None,
        "max_delay_steps": cnet.max_delay_steps(),
        "rowlen_entries": int(cnet.rowlen.size), "rowlen_bytes_uint32": int(cnet.rowlen.nbytes),
        "rowlen_bytes_if_uint16": int(cnet.rowlen.size) * 2, "rowlen_max": rowlen_max,
        "rowlen_fits_uint16": rowlen_max < 2 ** 16,
        "poisson_table_bytes": int(cnet.poisson_tables.nbytes),
        "pop_table_bytes": int(pops.nbytes), "proj_table_bytes": int(cnet.projs.nbytes),
        # V (f4), I_ex (f4), I_in (f4), refractory counter (i4) per neuron
        "state_bytes_16B_per_neuron": 16 * cnet.n_neurons,
    }
    try:
        from pyproc import plan  # the memory planner (pyproc/plan.py)
    except ImportError:
        out["plan"] = None
    else:
        pr = plan.plan_network(cnet, "procedural")
        out["plan"] = pr.to_dict()
        out["plan_total_bytes"] = pr.total
        out["plan_total_if_uint16_rowlen"] = pr.total - int(cnet.rowlen.size) * 2
    print(json.dumps(out, indent=2, default=str))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
    return out


if __name__ == "__main__":
    main()
