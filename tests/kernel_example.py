"""The pyproc.kernels docstring example (the README's "call a kernel on your own device
arrays"), the NumPy twin of what a propagation leaves in the delay ring, and a network
whose lanes walk several bernoulli segments: shared by tests/test_cuda.py (on a GPU) and
tests/test_simt.py (on the SIMT emulator)."""
from __future__ import annotations

import re

import numpy as np

import pyproc as pp
from pyproc import kernels
from pyproc.connectivity import ring_after


def run_example() -> dict:
    """Execute the example; its namespace (cnet, spikes, ring_host, ...)."""
    code = "\n".join(l[4:] for l in re.search(r"network::\n\n(.*?)\n\n``ring_host``",
                                              kernels.__doc__, re.S).group(1).splitlines())
    ns: dict = {}
    exec(compile(code, "pyproc.kernels example", "exec"), ns)
    return ns


def twin_ring(cnet, spikes):
    """The delay ring after delivering every synapse of ``spikes`` at step 0, by the NumPy
    twin (int64), and the number of synapses (the public pyproc.connectivity.ring_after)."""
    return ring_after(cnet, spikes)


def long_bernoulli():
    """pairwise_bernoulli rows of more segments than a warp has lanes: A -> A (no
    autapses, normal weights: 2 words per draw) 47 segments of 128, B -> A (constant
    weight: 1 word) 188 segments of 32, both with a constant delay (the flat walk), and
    A -> B with a normal delay (the walk segment by segment); and 112 spikes (48 of A, all
    of B).  2 outgoing projections at most: 224 items, so on 8 warps (one block) one part
    per item and lane l walks segments l, l + 32, ..."""
    net = pp.Network(dt=1.0, seed=21)
    net.add_population("A", 6000, pp.LIF())
    net.add_population("B", 64, pp.LIF())
    net.connect("A", "A", pp.pairwise_bernoulli(0.1, allow_autapses=False),
                weight=pp.normal(20.0, 4.0), delay=2.0)
    net.connect("B", "A", pp.pairwise_bernoulli(0.3), weight=-30.0, delay=3.0)
    net.connect("A", "B", pp.pairwise_bernoulli(0.3), weight=pp.normal(10.0, 2.0),
                delay=pp.normal(2.0, 0.5))
    cnet = pp.compile_network(net)
    rng = np.random.default_rng(5)
    ids = np.concatenate([np.sort(rng.choice(6000, 48, replace=False)), 6000 + np.arange(64)])
    return cnet, cnet.spike_pairs(ids)
