"""The user-facing simulation object: one network, one backend, one connectivity."""
from __future__ import annotations

import inspect
import time
import warnings
from typing import Callable, Optional, Union

import numpy as np

from .compile import CompiledNetwork, compile_network
from .errors import ModelError
from .network import Network, grid_steps
from .results import Results, step_times
from .staterec import assemble

__all__ = ["Simulation", "BACKENDS", "CONNECTIVITIES"]

BACKENDS = ("cpu", "cuda")
CONNECTIVITIES = ("procedural", "stored")


def _shape(net: Optional[Network]):
    """What a change to ``net`` after compiling would change: dt, seed, the populations
    (size, parameters, initial V_m, recording), the projections' names, the Poisson
    inputs, the step currents, the input reserves, the state recordings."""
    if net is None:
        return None
    return (net.dt, net.seed,
            tuple((p.name, p.size, p.params, p.v_init, p.record)
                  for p in net.populations.values()),
            tuple(net.projections), tuple((t, tuple(v)) for t, v in net.poisson.items()),
            tuple((t, tuple(v)) for t, v in net.dc.items()), tuple(net.input_reserve.items()),
            tuple(net.state.items()))


class Simulation:
    """Simulate ``network`` with ``backend`` ('cpu', 'cuda', or 'auto': 'cuda' where that
    backend is usable here, as ``pyproc info`` says, else 'cpu'; ``self.backend`` says
    which) and ``connectivity`` ('procedural' or 'stored').  Call :meth:`run` one or more
    times: each run continues where the last ended.

    The network is compiled here, once: changing ``network`` afterwards (populations,
    projections, inputs, recording) does not change this simulation; build a new
    Simulation for the changed network.  ``backend_options`` go to the backend
    (``pyproc.backends.cuda.CUDASimulator``'s for 'cuda'; the CPU backend has none)."""

    def __init__(self, network: Union[Network, CompiledNetwork], backend: str = "cpu",
                 connectivity: str = "procedural", **backend_options):
        if backend not in BACKENDS + ("auto",):
            raise ModelError(f"backend must be one of {', '.join(BACKENDS)} or auto, got "
                             f"{backend!r}")
        if connectivity not in CONNECTIVITIES:
            raise ModelError(f"connectivity must be one of {', '.join(CONNECTIVITIES)}, "
                             f"got {connectivity!r}")
        if not isinstance(network, (Network, CompiledNetwork)):
            raise ModelError(f"network must be a pyproc Network (or a compiled one), got "
                             f"{type(network).__name__}")
        chose = ""
        if backend == "auto":
            from .cli import machine_info
            cuda = machine_info()["backends"]["cuda"]
            backend = "cuda" if cuda["usable"] else "cpu"
            chose = "" if cuda["usable"] else f"; backend='auto' chose it: {cuda['reason']}"
        if backend == "cpu":
            from .backends.cpu import CPUSimulator as cls
        else:
            from .backends.cuda import CUDASimulator as cls
        known = inspect.signature(cls.__init__).parameters
        unknown = [k for k in backend_options if k not in known or k in ("self", "cnet",
                                                                        "connectivity")]
        if unknown:
            raise ModelError(f"backend={backend!r} has no option {', '.join(map(repr, unknown))}"
                             + ("" if backend == "cuda" else
                                f" (the CPU backend takes none{chose})"))
        t0 = time.perf_counter()
        self._network = network if isinstance(network, Network) else None
        self._shape = _shape(self._network)
        self._warned_change = False
        self.cnet = network if isinstance(network, CompiledNetwork) else compile_network(network)
        self.compile_time = time.perf_counter() - t0
        self.backend = backend
        self.connectivity = connectivity
        self.sim = cls(self.cnet, connectivity, **backend_options)
        self.setup_time = time.perf_counter() - t0
        self._record = []
        self.wall_run = 0.0
        self.interrupted = False
        # False after a run raised (an error, KeyboardInterrupt): the state may be inside
        # a step, so checkpoint() refuses it (restore() sets it again)
        self.consistent = True

    @property
    def t(self) -> float:
        """Model time simulated so far (ms)."""
        return step_times(self.sim.step, self.cnet.dt)

    def steps_for(self, duration: float) -> int:
        if isinstance(duration, (str, bytes, bool)):
            raise ModelError(f"duration must be a number of ms, got {duration!r}")
        orig = duration
        try:
            duration = float(duration)
        except (TypeError, ValueError):
            raise ModelError(f"duration must be a number of ms, got {duration!r}") from None
        if not (np.isfinite(duration) and duration >= 0):
            raise ModelError(f"duration must be >= 0 ms and finite, got {duration}")
        steps = grid_steps(duration, self.cnet.dt, orig)
        if steps is None:
            raise ModelError(f"duration {duration} ms is not a whole number of steps of "
                             f"dt = {self.cnet.dt} ms")
        return steps

    def run(self, duration: float, progress: Optional[Callable[[int, int, float], None]] = None,
            chunk_steps: int = 1000, should_stop: Optional[Callable[[], bool]] = None) -> Results:
        """Simulate ``duration`` ms more; returns all spikes recorded so far.
        ``progress(done_steps, total_steps, wall_s)`` is called after each chunk;
        ``should_stop()`` is polled every step (a stop ends the run early, partial)."""
        total = self.steps_for(duration)
        if not self._warned_change and _shape(self._network) != self._shape:
            self._warned_change = True
            warnings.warn("the network was changed after this Simulation compiled it; the "
                          "change does not apply here (pyproc compiles once: make a new "
                          "Simulation to simulate the changed network)", stacklevel=2)
        if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, (int, np.integer)) or \
                chunk_steps < 1:
            raise ModelError(f"chunk_steps must be a whole number >= 1, got {chunk_steps!r}")
        if self.cnet.state:          # the samples must fit the host: refuse before running
            from . import hostmem
            from .staterec import host_bytes
            held = sum(v.nbytes + s.nbytes for blocks in self.sim.state_blocks
                       for s, v in blocks)
            new = host_bytes(self.cnet.state, self.sim.step, total)
            hostmem.check(f"recording state for {total:,d} steps",
                          {"state samples held": held, "state samples of this run": new,
                           "their copy in the Results": held + new},
                          "Record fewer neurons or variables (Network.record_state), at a "
                          "longer interval, or run shorter pieces and save each.")
        done = 0
        t0 = time.perf_counter()
        while done < total:
            n = min(chunk_steps, total - done)
            try:
                did = self.sim.run_steps(n, self._record, should_stop)
            except BaseException:
                self.consistent = False
                raise
            done += did
            if progress is not None:
                progress(done, total, time.perf_counter() - t0)
            if did < n:
                self.interrupted = True
                break
        self.wall_run += time.perf_counter() - t0
        return self.results()

    def checkpoint(self, path: str) -> None:
        """Save this simulation at its current step to ``path`` (one .npz): the neurons'
        state, the input on its way, and the spikes and state samples recorded so far.
        ``restore`` continues it, on any backend and connectivity (pyproc.checkpoint)."""
        from . import checkpoint
        checkpoint.save(self, path)

    def restore(self, path: str) -> None:
        """Continue from the checkpoint at ``path``, made by ``checkpoint`` from a
        simulation of the same network (refused, naming what differs, otherwise): later
        runs give the spikes and samples an uninterrupted run would, and ``results()``
        holds those recorded before the checkpoint too."""
        from . import checkpoint
        checkpoint.load(self, path)

    def results(self) -> Results:
        cnet = self.cnet
        if self._record:
            steps = np.concatenate([np.full(g.size, s, np.int64) for s, g in self._record])
            senders = np.concatenate([g for _, g in self._record])
        else:
            steps = np.zeros(0, np.int64)
            senders = np.zeros(0, np.int64)
        meta = {"seed": cnet.seed, "backend": self.backend, "connectivity": self.connectivity,
                "wall_setup_s": self.setup_time, "wall_run_s": self.wall_run,
                "synaptic_events": int(self.sim.n_events), "partial": self.interrupted}
        # CUDA: which card and which step loop ran (the loops give the same spikes, not the
        # same wall time), and why a loop was not available
        for attr in ("device_name", "loop_mode", "loop_tuning", "persistent_error",
                     "graph_error", "persistent_grid", "unit_map", "shared_tables", "pipelined",
                     "throughput_build", "one_block", "bernoulli_tiles"):
            if hasattr(self.sim, attr):
                meta[attr] = getattr(self.sim, attr)
        state = assemble(cnet.state, self.sim.state_blocks, cnet.dt) if cnet.state else {}
        return Results(times=step_times(steps + 1, cnet.dt), senders=senders, pop_names=list(cnet.pop_names),
                       pop_offsets=cnet.pops["offset"].astype(np.int64),
                       pop_sizes=cnet.pops["n"].astype(np.int64), recorded=cnet.record.copy(),
                       duration=self.t, dt=cnet.dt, meta=meta, state=state)
