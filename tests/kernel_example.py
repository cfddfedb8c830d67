"""The pyproc.kernels docstring example (the README's "call a kernel on your own device
arrays") and the NumPy twin of what it computes: shared by tests/test_cuda.py (on a GPU)
and tests/test_simt.py (on the SIMT emulator)."""
from __future__ import annotations

import re

import numpy as np

from pyproc import kernels
from pyproc.connectivity import rows


def run_example() -> dict:
    """Execute the example; its namespace (cnet, spikes, ring_host, ...)."""
    code = "\n".join(l[4:] for l in re.search(r"network::\n\n(.*?)\n\n``ring_host``",
                                              kernels.__doc__, re.S).group(1).splitlines())
    ns: dict = {}
    exec(compile(code, "pyproc.kernels example", "exec"), ns)
    return ns


def twin_ring(cnet, spikes):
    """The delay ring after delivering every synapse of ``spikes`` ((population, local)
    pairs) at step 0, by the NumPy twin (int64), and the number of synapses."""
    ring = np.zeros(cnet.ring_size, np.int64)
    n = 0
    for pop, pre in np.asarray(spikes).reshape(-1, 2):
        for k in np.flatnonzero(cnet.projs["src_pop"] == pop):
            pj = cnet.projs[k]
            _, tgt, w, d = rows(cnet, k, [int(pre)])
            tp = cnet.pops[pj["tgt_pop"]]
            idx = (int(tp["ring_offset"]) + ((d.astype(np.int64) % int(tp["ring_slots"]))
                                             * int(tp["n_channels"]) + int(pj["channel"]))
                   * int(tp["n"]) + tgt.astype(np.int64))
            np.add.at(ring, idx, w)
            n += tgt.size
    return ring, n
