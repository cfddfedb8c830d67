"""pyproc: spiking networks with procedural connectivity, bit-exact across CPU and GPU.

    import pyproc as pp
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("E", 800, pp.LIF(tau_syn_ex=0.5, tau_syn_in=0.5))
    net.connect("E", "E", pp.pairwise_bernoulli(0.1), weight=pp.normal(87.8, 8.8), delay=1.5)
    net.add_poisson("E", rate=8.0, K=1000, weight=87.8)
    res = pp.Simulation(net, backend="cpu", connectivity="procedural").run(100.0)
"""
from .dist import normal, uniform
from .errors import BackendUnavailable, ModelError, OverflowDetected
from .network import LIF, Network, PoissonSource, SpikeSourceArray
from .results import Results, load_results
from .rules import all_to_all, fixed_outdegree, fixed_total_number, pairwise_bernoulli
from .simulation import Simulation
from .compile import compile_network
from . import models            # pyproc.models.microcircuit(...) after `import pyproc`

__version__ = "0.1.0"


def __getattr__(name):
    # NEST rules a user may look for here: say why they are missing, not just that
    from .rules import _NOT_AVAILABLE
    if name in _NOT_AVAILABLE:
        raise AttributeError(f"pyproc has no {name}: {_NOT_AVAILABLE[name]}")
    raise AttributeError(f"module 'pyproc' has no attribute {name!r}")

__all__ = ["Network", "LIF", "PoissonSource", "SpikeSourceArray", "Simulation", "Results", "load_results", "compile_network",
           "pairwise_bernoulli", "fixed_total_number", "fixed_outdegree", "all_to_all",
           "normal", "uniform",
           "ModelError", "OverflowDetected", "BackendUnavailable", "models", "__version__"]
