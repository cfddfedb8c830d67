"""Checkpoints: a simulation saved at a step and continued later, on any backend.

Everything random in pyproc is a pure function of (seed, stream, step, ...), so the
state of a simulation at step s is just its dynamic arrays: the neurons' V, Iex, Iin
and refractory counts (and each spike array's cursor), and the delay ring with the
input already on its way.  ``Simulation.checkpoint(path)`` writes those, with the
spikes and state samples recorded so far, to one ``.npz``; ``Simulation.restore(path)``
loads them into a new Simulation of the same network -- CPU or CUDA, procedural or
stored -- and its runs continue exactly: the same spikes and samples as a run that was
never interrupted, and ``results()`` holds all of them.

File layout (NumPy .npz, written to a temporary name and renamed)::

    format       int, FORMAT
    fingerprint  str, sha256 of the compiled network (fingerprint())
    parts        str, JSON: sha256 of each part of it (fingerprint_parts(), for messages)
    network      str, JSON: seed, dt, populations, neurons, projections (for messages)
    step, n_events, n_spikes                     int64 scalars
    V, Iex, Iin  float32 (N,); ref int32 (N,) (a spike array's cursor in its neurons'
                 ref, as on the GPU); ring int32 (ring_size,): every partial sum of a
                 slot fits, as compile sizes the fixed-point scale for the sum of the
                 inputs' absolute values (int64 where a value does not, e.g. a table
                 edited after compiling)
    rec_steps, rec_senders    int64: the spikes recorded so far
    state_<g>_steps, state_<g>_values    the state samples of recording g so far
    wall_run_s   float: the run time so far
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from typing import Dict

import numpy as np

from .errors import ModelError

__all__ = ["FORMAT", "fingerprint", "save", "load"]

FORMAT = 1


def _summary(cnet) -> Dict[str, object]:
    return {"seed": int(cnet.seed), "dt": float(cnet.dt), "populations": int(cnet.n_pops),
            "neurons": int(cnet.n_neurons), "projections": len(cnet.projs)}


def _sha(*items) -> str:
    """sha256 of arrays (a structured array field by field: its padding bytes are not
    data and need not be equal in two copies) and of the repr of anything else."""
    h = hashlib.sha256()
    for x in items:
        if isinstance(x, np.ndarray) and x.dtype.names:
            for f in x.dtype.names:
                h.update(f.encode())
                h.update(np.ascontiguousarray(x[f]).tobytes())
        elif isinstance(x, np.ndarray):
            h.update(np.ascontiguousarray(x).tobytes())
        else:
            h.update(repr(x).encode())
    return h.hexdigest()


def fingerprint_parts(cnet) -> Dict[str, str]:
    """sha256 of each part of what decides a compiled network's dynamics, by the name a
    refusal gives it: the populations (names, sizes, neuron parameters, initial state,
    which are recorded), the connectivity (projections, row lengths, the delay ring),
    the inputs (Poisson and spike-array tables, step currents) and the state recordings."""
    pops = cnet.pops.copy()
    for f in ("dc_amp", "dc_start", "dc_stop"):     # the step currents: under inputs
        pops[f] = 0
    return {
        "populations and their parameters": _sha(list(cnet.pop_names), pops, cnet.v0,
                                                 np.asarray(cnet.record, bool)),
        "projections": _sha(list(cnet.proj_names), cnet.projs, cnet.rowlen,
                            int(cnet.ring_size)),
        "inputs (Poisson, spike arrays, step currents)": _sha(cnet.poisson_tables, *cnet.dc),
        "state recordings": _sha(*[(g.name, g.variables, g.interval) for g in cnet.state],
                                 *[g.ids for g in cnet.state]),
    }


def fingerprint(cnet) -> str:
    """sha256 of everything that decides a compiled network's dynamics: dt, seed and
    :func:`fingerprint_parts`."""
    return _sha(float(cnet.dt), int(cnet.seed), sorted(fingerprint_parts(cnet).items()))


def _ring_int32(ring: np.ndarray) -> np.ndarray:
    """The ring as int32 where every value fits (half the bytes), else as it is."""
    if ring.dtype == np.int32:
        return ring
    if not ring.size or (int(ring.min()) >= -2 ** 31 and int(ring.max()) < 2 ** 31):
        return ring.astype(np.int32)
    return ring


def save(sim, path: str) -> None:
    """Write ``sim`` (a pyproc Simulation, between runs) to ``path``."""
    cnet = sim.cnet
    if not sim.consistent:
        raise ModelError("checkpoint: the last run of this simulation raised (an error or "
                         "KeyboardInterrupt) inside a step, so its state is not that of a "
                         "whole step; checkpoint before that, or restore an earlier one")
    st = sim.sim.get_state()
    rec = sim._record
    arrays = {
        "format": np.int64(FORMAT), "fingerprint": np.array(fingerprint(cnet)),
        "parts": np.array(json.dumps(fingerprint_parts(cnet))),
        "network": np.array(json.dumps(_summary(cnet))),
        "step": np.int64(st["step"]), "n_events": np.int64(st["n_events"]),
        "n_spikes": np.int64(st["n_spikes"]),
        "V": st["V"], "Iex": st["Iex"], "Iin": st["Iin"], "ref": st["ref"],
        "ring": _ring_int32(st["ring"]),
        "rec_steps": (np.concatenate([np.full(g.size, s, np.int64) for s, g in rec])
                      if rec else np.zeros(0, np.int64)),
        "rec_senders": (np.concatenate([np.asarray(g, np.int64) for _, g in rec])
                        if rec else np.zeros(0, np.int64)),
        "wall_run_s": np.float64(sim.wall_run),
    }
    for g, blocks in enumerate(sim.sim.state_blocks):
        grp = cnet.state[g]
        arrays[f"state_{g}_steps"] = (np.concatenate([s for s, _ in blocks]) if blocks
                                      else np.zeros(0, np.int64))
        arrays[f"state_{g}_values"] = (np.concatenate([v for _, v in blocks]) if blocks else
                                       np.zeros((0, len(grp.raw), grp.ids.size), np.float32))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        umask = os.umask(0)            # mkstemp makes 0600: the mode any new file gets
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(sim, path: str) -> None:
    """Load the checkpoint at ``path`` into ``sim`` (a Simulation of the same network);
    refuses, naming what differs, a checkpoint of another network or format."""
    cnet = sim.cnet
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ModelError(f"{path}: not a pyproc checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ModelError(f"{path}: not a pyproc checkpoint (a single array, not an .npz)")
    try:
        return _load(sim, cnet, path, z)
    except ModelError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
        raise ModelError(f"{path}: damaged pyproc checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'unreadable'})") from None


def _load(sim, cnet, path: str, z) -> None:
    with z:
        files = set(z.files)
        need = {"format", "fingerprint", "network", "step", "n_events", "n_spikes", "V", "Iex",
                "Iin", "ref", "ring", "rec_steps", "rec_senders", "wall_run_s"}
        if not need <= files:
            raise ModelError(f"{path}: not a pyproc checkpoint (missing "
                             f"{', '.join(sorted(need - files))})")
        if int(z["format"]) != FORMAT:
            raise ModelError(f"{path}: checkpoint format {int(z['format'])}, this pyproc "
                             f"reads format {FORMAT}")
        if str(z["fingerprint"]) != fingerprint(cnet):
            theirs, ours = json.loads(str(z["network"])), _summary(cnet)
            diff = [f"{k} {theirs.get(k)!r} (this simulation: {ours[k]!r})" for k in ours
                    if theirs.get(k) != ours[k]]
            if not diff and "parts" in files:
                parts, mine = json.loads(str(z["parts"])), fingerprint_parts(cnet)
                diff = [f"other {k}" for k in mine if parts.get(k) != mine[k]]
            raise ModelError(f"{path}: the checkpoint is of another network: "
                             + ("; ".join(diff) if diff else
                                "same sizes, seed and dt, but other parameters, "
                                "connectivity, inputs or recordings")
                             + "; restore it into a Simulation of the network it was made from")
        st = {k: z[k] for k in ("V", "Iex", "Iin", "ref", "ring")}
        st.update(step=int(z["step"]), n_events=int(z["n_events"]),
                  n_spikes=int(z["n_spikes"]))
        rec_steps, senders = z["rec_steps"], z["rec_senders"]
        blocks = []
        for g in range(len(cnet.state)):
            s, v = z[f"state_{g}_steps"], z[f"state_{g}_values"]
            blocks.append([(s, v)] if s.size else [])
        wall = float(z["wall_run_s"])
        for name, n in (("V", cnet.n_neurons), ("Iex", cnet.n_neurons), ("Iin", cnet.n_neurons),
                        ("ref", cnet.n_neurons), ("ring", cnet.ring_size)):
            if st[name].shape != (n,):
                raise ValueError(f"{name} has shape {st[name].shape}, not ({n},)")
    sim.sim.set_state(st)
    # the record as run_steps appends it: (step, ascending ids) per step with spikes
    order = np.lexsort((senders, rec_steps))
    rec_steps, senders = rec_steps[order], senders[order]
    cut = np.flatnonzero(np.diff(rec_steps)) + 1
    sim._record = [(int(s[0]), ids) for s, ids in zip(np.split(rec_steps, cut),
                                                       np.split(senders, cut)) if s.size]
    sim.sim.state_blocks = blocks
    sim.wall_run = wall
    sim.interrupted = False
    sim.consistent = True
