"""Benchmark suite: procedural vs stored, GPU vs CPU, cost as networks grow.

    python -m pyproc.bench --models balanced --sizes 1e4 --dts 0.1,1 \\
        --backends cpu --connectivity stored,procedural --duration 1000 --out DIR
    pyproc bench ...                     (the same options, through pyproc.cli)

Each *case* is one (model, size, dt, backend, connectivity).  The suite runs every
case in a fresh Python process (``python -m pyproc.bench --case JSON``), so the peak
host memory is that case's own, a crash or a hang is that case's alone (recorded as
``failed`` / ``timeout``), and one CUDA context never outlives its case.

What a case measures
--------------------
set-up          wall seconds from building the :class:`~pyproc.Network` to the end of
                the first step: build + compile + backend set-up (materialising the
                CSR when stored, device allocation and kernel loading on CUDA) + step 1.
RTF             wall seconds per model second over the measured window, which starts
                after a warm-up (``--warmup`` ms of model time, first step included)
                and lasts ``--duration`` ms, or less when ``--max-seconds`` cut it
                short (the record then says ``shortened``).
events/s        synaptic events delivered in the window / its wall time.  Events are
                the simulator's own count (``sim.n_events``); :func:`events_from_spikes`
                recomputes them from the recorded spikes (sum over spikes of the row
                length of every outgoing projection) and the record says whether both
                agree (``events_check``).
updates/s       neurons x steps of the window / its wall time.
peak device     the bytes the CUDA simulator allocated (``allocated_bytes`` /
                ``device_bytes``, or its plan's total: it allocates the plan exactly),
                else the memory planner's total (:func:`pyproc.plan.plan_network`),
                marked ``plan``.  The context's own memory is in ``process_device_bytes``
                (nvidia-smi's figure for the case's process) when available.
peak host       ``ru_maxrss`` of the case's process (includes the interpreter,
                NumPy/SciPy and, on CUDA, the driver's host allocations).

Cases that cannot fit are skipped with the reason in the table, never attempted:
stored on CUDA when the planner's total exceeds the free device memory, stored on the
CPU when :func:`host_bytes_estimate` exceeds the available RAM, and any case whose
estimated set-up alone exceeds the per-case budget (:func:`estimate_seconds`).

Output (``--out DIR``): ``results.json`` (every case, the machine: CPU, GPU name,
driver, CUDA, pyproc version, git commit, command line), ``results.md`` (our table
and, beside it, published figures measured on other hardware, each with its source)
and ``plot.png`` (wall time per model second and memory against synapse count,
procedural vs stored; needs matplotlib).  ``results.json`` is rewritten after every
case, so an interrupted suite keeps what it measured.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .provenance import git_commit

__all__ = ["add_arguments", "main", "build_cases", "run_case", "run_suite",
           "events_from_spikes", "row_lengths", "events_per_second", "host_bytes_estimate",
           "device_bytes_estimate", "fit_check", "estimate_seconds", "host_available_bytes",
           "device_available_bytes", "environment", "write_markdown", "write_plot",
           "PUBLISHED"]

MODEL_NAMES = ("balanced", "microcircuit", "multiarea")
BACKENDS = ("cpu", "cuda")
CONNECTIVITIES = ("procedural", "stored")
DEFAULT_SIZES = (10_000, 50_000, 100_000, 500_000, 1_000_000)   # Knight & Nowotny Fig. 1
DEFAULT_DTS = (0.1, 1.0)
DEFAULT_SCALES = (0.1, 1.0)
DEFAULT_DURATION_MS = 1000.0
DEFAULT_WARMUP_MS = 100.0
DEFAULT_MAX_SECONDS = 600.0

# --- memory: the CPU backends' model is pyproc.plan.cpu_bytes -----------------------------
HOST_STATE_BYTES = 16                   # CUDA runs: V, Iex, Iin (float32), ref (int32) on the host
HOST_OVERHEAD_BYTES = 400 * 2 ** 20     # interpreter + NumPy + SciPy + temporaries
DEVICE_HEADROOM = 0.97                  # use at most this fraction of the free device memory

# --- time model, only to skip cases that cannot fit the per-case budget ------------------
# Measured on this project's 2-core CPU machine (balanced 1e4, see validation/results/
# bench_cpu): stored set-up ~1-2 us per synapse; per step ~0.3 us per neuron; per event
# ~0.03 us stored, ~0.35 us procedural.  CUDA figures are deliberately pessimistic guesses
# (shared/device/README.md measured 4e10-1.4e11 events/s and ~16 us of launches per step).
ASSUMED_RATE_HZ = 10.0
TIME_MODEL = {
    ("cpu", "stored"): dict(setup_per_syn=2e-6, per_neuron_step=3e-7, per_event=3e-8),
    ("cpu", "procedural"): dict(setup_per_syn=0.0, per_neuron_step=5e-7, per_event=3.5e-7),
    ("cuda", "stored"): dict(setup_per_syn=2e-9, per_neuron_step=1e-9, per_event=1e-10,
                             setup_fixed=5.0, per_step=5e-5),
    ("cuda", "procedural"): dict(setup_per_syn=0.0, per_neuron_step=1e-9, per_event=1e-10,
                                 setup_fixed=5.0, per_step=5e-5),
}

# --- events check (auto): how many synapses a case may have for each way of counting rows --
CHECK_REGENERATE_SYNAPSES = 2e7     # NumPy twin, ~1 us per synapse on one core
CHECK_DOWNLOAD_BYTES_PER_SYNAPSE = 16   # CUDA stored: device CSR copied to the host
                                        # (10 B per synapse + the int32 copy of delays)

# --- published figures, measured on other hardware ---------------------------------------
# Only figures whose source we can name.  Knight & Nowotny (2021) report the balanced-
# network scaling (their Fig. 1) and the microcircuit as plots; we do not transcribe
# numbers read off a plot.  NEST (CPU) figures are left out: none was verified.
PUBLISHED = [
    {"simulator": "GeNN (procedural)", "hardware": "NVIDIA Titan RTX (1 GPU)",
     "model": "multi-area model, ground state", "figure": "7.9 min wall per model second",
     "rtf": 7.9 * 60,
     "source": "Knight JC, Nowotny T (2021) Larger GPU-accelerated brain simulations with "
               "procedural connectivity. Nat. Comput. Sci. 1:136-142"},
    {"simulator": "GeNN (procedural)", "hardware": "NVIDIA Titan RTX (1 GPU)",
     "model": "multi-area model, metastable state", "figure": "8.5 min wall per model second",
     "rtf": 8.5 * 60, "source": "Knight & Nowotny 2021 (as above)"},
    {"simulator": "GeNN (procedural)", "hardware": "NVIDIA Titan RTX (1 GPU)",
     "model": "multi-area model", "figure": "a little over 12 GB of device memory; "
                                            "about 6 min set-up",
     "rtf": None, "source": "Knight & Nowotny 2021 (as above)"},
    {"simulator": "GeNN", "hardware": "NVIDIA Titan RTX (1 GPU)",
     "model": "balanced network 1e4..1e6 neurons; microcircuit",
     "figure": "plotted only (their Fig. 1 and microcircuit figure); not transcribed",
     "rtf": None, "source": "Knight & Nowotny 2021 (as above)"},
    {"simulator": "NEST GPU", "hardware": "32 NVIDIA A100 GPUs (JUWELS Booster)",
     "model": "multi-area model", "figure": "real-time factor about 6",
     "rtf": 6.0,
     "source": "Tiddia G et al. (2022) Fast simulation of a multi-area spiking network model "
               "of macaque cortex on an MPI-GPU cluster. Front. Neuroinform. 16:883333"},
    {"simulator": "NEST GPU", "hardware": "1 NVIDIA RTX 4090",
     "model": "'networks on the magnitude of 80 thousand neurons and 200 million synapses'",
     "figure": "real-time factor 0.4", "rtf": 0.4,
     "source": "Villamar J et al. (2025) Efficient simulations of spiking neural networks "
               "using NEST GPU, abstract FZJ-2025-03047 (juser.fz-juelich.de/record/1044145)"},
    {"simulator": "GeNN 5.4.0 (stored / sparse)", "hardware": "NVIDIA H200",
     "model": "microcircuit, full scale, dt 0.1 ms",
     "figure": "0.224 s wall per model second; code generation + compile about 9 s, "
               "load 1.2-1.7 s", "rtf": 0.224,
     "source": "measured by the pyproc developers on 2026-11-27 with GeNN 5.4.0's own "
               "Potjans-Diesmann example"},
    {"simulator": "GeNN 5.4.0 (procedural)", "hardware": "NVIDIA H200",
     "model": "microcircuit, full scale, dt 0.1 ms",
     "figure": "7.85 s wall per model second; code generation + compile about 9 s, "
               "load 7.3 s", "rtf": 7.85,
     "source": "measured by the pyproc developers on 2026-11-27 with GeNN 5.4.0's own "
               "Potjans-Diesmann example"},
]


# ==========================================================================================
# events arithmetic
# ==========================================================================================
def row_lengths(cnet, k: int, pre: np.ndarray, csr=None) -> np.ndarray:
    """Synapses in the rows ``pre`` (local source indices) of projection ``k`` (int64).

    Fixed-number rules read the row-length table; the decoder counts the set bits of
    i + 1 below min(32, n_post); pairwise_bernoulli reads ``csr`` (the stored backend's
    ``(indptr, ...)`` of this projection) when given, else regenerates the rows with the
    NumPy twin (:func:`pyproc.connectivity.rows`)."""
    from .compile import RULE_DECODER, RULE_FIXED
    pre = np.asarray(pre, dtype=np.int64).ravel()
    pj = cnet.projs[k]
    if pre.size == 0:
        return np.zeros(0, np.int64)
    if csr is not None:
        indptr = np.asarray(csr[0])
        return (indptr[pre + 1] - indptr[pre]).astype(np.int64)
    if pj["rule"] == RULE_FIXED:
        return cnet.rowlen_of(k)[pre].astype(np.int64)
    if pj["rule"] == RULE_DECODER:
        nbits = min(32, int(pj["n_post"]))
        v = pre.astype(np.uint64) + np.uint64(1)
        out = np.zeros(pre.size, np.int64)
        for j in range(nbits):
            out += ((v >> np.uint64(j)) & np.uint64(1)).astype(np.int64)
        return out
    from .connectivity import rows
    out = np.zeros(pre.size, np.int64)
    chunk = 2048
    for a in range(0, pre.size, chunk):
        r = rows(cnet, k, pre[a:a + chunk])[0]
        out[a:a + chunk] = np.bincount(np.asarray(r, np.int64), minlength=min(chunk, pre.size - a))
    return out


def events_from_spikes(cnet, senders: np.ndarray,
                       row_length: Optional[Callable[[int, np.ndarray], np.ndarray]] = None
                       ) -> int:
    """Synaptic events that the spikes of ``senders`` (global ids, one entry per spike)
    cause: the sum over spikes of the row length of the sender in every projection
    leaving its population.  ``row_length(k, pre)`` defaults to :func:`row_lengths`."""
    if row_length is None:
        def row_length(k, pre):
            return row_lengths(cnet, k, pre)
    senders = np.asarray(senders, dtype=np.int64).ravel()
    offsets = cnet.pops["offset"].astype(np.int64)
    sizes = cnet.pops["n"].astype(np.int64)
    total = 0
    for i in range(cnet.n_pops):
        mine = senders[(senders >= offsets[i]) & (senders < offsets[i] + sizes[i])] - offsets[i]
        if mine.size == 0:
            continue
        uniq, count = np.unique(mine, return_counts=True)
        for k in np.flatnonzero(cnet.projs["src_pop"] == i):
            total += int(np.dot(count.astype(np.int64), row_length(int(k), uniq)))
    return total


def events_per_second(events: int, wall_s: float) -> Optional[float]:
    """Events delivered per wall second (None when no wall time was measured)."""
    return float(events) / wall_s if wall_s and wall_s > 0 else None


# ==========================================================================================
# memory and time estimates
# ==========================================================================================
def _synapse_bound(cnet) -> int:
    try:
        from .plan import synapse_bound
        return int(synapse_bound(cnet).sum())
    except Exception:   # plan.py absent or changed: expected count is close enough
        return int(round(_synapses(cnet)))


def _synapses(cnet) -> float:
    return float(sum(cnet.expected_synapses(k) for k in range(len(cnet.projs))))


def host_bytes_estimate(cnet, connectivity: str, backend: str = "cpu") -> int:
    """Host bytes a case needs: interpreter overhead and, on the CPU, what the backend
    allocates (:func:`pyproc.plan.cpu_bytes`: neuron state, ring and, for stored, the
    CSR with the peak of its set-up); for CUDA runs the host's copies of the state and
    the ring."""
    from .plan import CPU_RING_BYTES, cpu_bytes
    if backend == "cpu":
        return int(HOST_OVERHEAD_BYTES + sum(cpu_bytes(cnet, connectivity).values()))
    return int(HOST_OVERHEAD_BYTES + HOST_STATE_BYTES * cnet.n_neurons +
               CPU_RING_BYTES * int(cnet.ring_size))


def device_bytes_estimate(cnet, connectivity: str) -> Optional[int]:
    """The memory planner's device total, or None if pyproc.plan is unavailable."""
    try:
        from .plan import plan_network
        return int(plan_network(cnet, connectivity).total)
    except Exception:
        return None


def host_available_bytes() -> Optional[int]:
    """MemAvailable of /proc/meminfo (None where unreadable): pyproc.hostmem."""
    from .hostmem import available_bytes
    return available_bytes()


def _nvidia_smi(fields: str) -> Optional[List[List[str]]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [[c.strip() for c in line.split(",")] for line in out.stdout.strip().splitlines()
            if line.strip()]


def _visible_gpu_index() -> int:
    v = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(v) if v.isdigit() else 0


def device_available_bytes() -> Optional[int]:
    """Free memory of the GPU the case will use, from nvidia-smi (None without one)."""
    rows = _nvidia_smi("index,memory.free")
    if not rows:
        return None
    want = _visible_gpu_index()
    for r in rows:
        if r[0] == str(want):
            try:
                return int(float(r[1]) * 2 ** 20)
            except ValueError:
                return None
    return None


def _gb(n: Optional[float]) -> str:
    return _bytes(n, none="?")


def fit_check(cnet, backend: str, connectivity: str,
              available: Optional[int] = None) -> Tuple[bool, Optional[int], Optional[int], str]:
    """(fits, bytes needed, bytes available, reason) for one case.

    CUDA: the planner's total against the free device memory (times DEVICE_HEADROOM);
    CPU: :func:`host_bytes_estimate` against the available RAM.  ``available``
    overrides the detection.  Unknown needs or availability count as fitting."""
    if backend == "cuda":
        need = device_bytes_estimate(cnet, connectivity)
        avail = device_available_bytes() if available is None else int(available)
        usable = None if avail is None else int(avail * DEVICE_HEADROOM)
        where = "device"
    else:
        need = host_bytes_estimate(cnet, connectivity, backend)
        avail = host_available_bytes() if available is None else int(available)
        usable = avail
        where = "host"
    if need is None or usable is None or need <= usable:
        return True, need, avail, ""
    return False, need, avail, (f"skipped: {connectivity} needs {_gb(need)} of {where} memory, "
                                f"{_gb(avail)} available")


def estimate_seconds(cnet, backend: str, connectivity: str,
                     rate_hz: float = ASSUMED_RATE_HZ) -> Dict[str, float]:
    """Rough wall seconds: ``setup`` and ``per_step`` (at ``rate_hz`` per neuron), from
    :data:`TIME_MODEL`.  Only used to skip cases that cannot fit the per-case budget."""
    m = TIME_MODEL[(backend, connectivity)]
    syn = _synapses(cnet)
    n = cnet.n_neurons
    setup = m.get("setup_fixed", 0.0) + m["setup_per_syn"] * syn
    events_per_step = syn * rate_hz * cnet.dt * 1e-3
    per_step = m.get("per_step", 0.0) + m["per_neuron_step"] * n + m["per_event"] * events_per_step
    return {"setup": setup, "per_step": per_step}


# ==========================================================================================
# one case
# ==========================================================================================
def _check_source(simulator, connectivity: str, synapses: float, mode: str):
    """(per-projection CSR or None, description) for the events check, or (None, None)
    when ``mode`` 'auto' finds it too costly: the CPU stored CSR is free; a CUDA stored
    CSR is copied to the host when it takes at most half the available RAM
    (CHECK_DOWNLOAD_BYTES_PER_SYNAPSE); otherwise rows are
    regenerated by the NumPy twin up to CHECK_REGENERATE_SYNAPSES."""
    always = mode == "always"
    csr = getattr(simulator, "csr", None)
    if isinstance(csr, list):
        return csr, "stored CSR"
    host = host_available_bytes()
    fits_host = host is not None and CHECK_DOWNLOAD_BYTES_PER_SYNAPSE * synapses <= 0.5 * host
    if connectivity == "stored" and callable(getattr(simulator, "csr_host", None)) and (
            always or fits_host):
        return simulator.csr_host(), "device CSR copied to the host"
    if always or synapses <= CHECK_REGENERATE_SYNAPSES:
        return None, "rows regenerated by the NumPy twin"
    return None, None


def _case_label(case: Dict) -> str:
    size = case["size"]
    if case["model"] == "balanced":
        n = int(size)
        short = f"{n:.0e}".replace("e+0", "e").replace("e+", "e")
        s = short if float(short) == n else str(n)
    else:
        s = f"scale {size:g}"
    return (f"{case['model']} {s} dt {case['dt']:g} {case['backend']} {case['connectivity']}")


def build_network(case: Dict):
    """The case's :class:`pyproc.Network` (raises ImportError if its model is missing)."""
    model, size, dt, seed = case["model"], case["size"], float(case["dt"]), int(case["seed"])
    if model == "balanced":
        from .models.balanced import balanced
        return balanced(int(size), dt=dt, seed=seed)
    if model == "microcircuit":
        from .models.microcircuit import microcircuit
        return microcircuit(scale=float(size), dt=dt, seed=seed)
    if model == "multiarea":
        from .models.multiarea import multiarea
        if not case.get("structure"):
            raise ValueError("multiarea needs --structure PATH")
        return multiarea(case["structure"], state=case.get("mam_state", "ground"),
                         scale=float(size), dt=dt, seed=seed)
    raise ValueError(f"unknown model {model!r}; known: {', '.join(MODEL_NAMES)}")


def _ru_maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


def _process_device_bytes() -> Optional[int]:
    """Device memory nvidia-smi attributes to this process (context included), if any."""
    rows = _nvidia_smi_apps()
    for r in rows or []:
        if len(r) >= 2 and r[0] == str(os.getpid()):
            try:
                return int(float(r[1]) * 2 ** 20)
            except ValueError:
                return None
    return None


def _nvidia_smi_apps() -> Optional[List[List[str]]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-compute-apps=pid,used_memory",
                              "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return [[c.strip() for c in l.split(",")] for l in out.stdout.splitlines() if l.strip()]


def run_case(case: Dict, log: Callable[[str], None] = lambda s: None) -> Dict:
    """Run one case in this process; returns its record (see the module docstring).
    Never raises for a failing case: ``status`` is ok, skipped, unavailable or failed."""
    rec: Dict[str, object] = {"case": dict(case), "label": _case_label(case), "status": "ok",
                              "note": ""}
    budget = float(case.get("max_seconds") or math.inf)
    t_start = time.perf_counter()
    try:
        net = build_network(case)
    except ImportError as e:
        rec.update(status="unavailable", note=f"model not available: {e}")
        return rec
    except Exception as e:
        rec.update(status="failed", note=f"build: {type(e).__name__}: {e}")
        return rec
    t_built = time.perf_counter()
    try:
        from .compile import compile_network
        cnet = compile_network(net)
    except Exception as e:
        rec.update(status="failed", note=f"compile: {type(e).__name__}: {e}")
        return rec
    t_compiled = time.perf_counter()
    backend, conn = case["backend"], case["connectivity"]
    n_neurons = cnet.n_neurons
    rec.update(neurons=n_neurons, synapses=int(round(_synapses(cnet))),
               synapses_exact=bool(cnet.synapse_count()[1]), dt_ms=cnet.dt,
               populations=cnet.n_pops, projections=int(len(cnet.projs)),
               build_s=t_built - t_start, compile_s=t_compiled - t_built,
               plan_device_bytes=device_bytes_estimate(cnet, conn),
               host_bytes_estimate=host_bytes_estimate(cnet, conn, backend))

    avail = case.get("device_memory" if backend == "cuda" else "host_memory")
    fits, need, have, why = fit_check(cnet, backend, conn, avail)
    rec.update(memory_needed_bytes=need, memory_available_bytes=have)
    if not fits:
        rec.update(status="skipped", note=why)
        return rec
    est = estimate_seconds(cnet, backend, conn)
    rec["estimate_s"] = est
    spent = time.perf_counter() - t_start
    if est["setup"] + spent > budget:
        rec.update(status="skipped", note=f"skipped: set-up estimated ~{est['setup']:.3g} s "
                                          f"> budget {budget:g} s (--max-seconds)")
        return rec
    if est["setup"] + spent + 10 * est["per_step"] > budget:
        rec.update(status="skipped", note=f"skipped: ~{est['per_step']:.3g} s per step "
                                          f"estimated; 10 steps exceed budget {budget:g} s "
                                          f"(--max-seconds)")
        return rec

    from .simulation import Simulation
    try:
        sim = Simulation(cnet, backend=backend, connectivity=conn)
    except ImportError as e:
        rec.update(status="unavailable", note=f"backend {backend}: {type(e).__name__}: {e}")
        return rec
    except Exception as e:
        from .errors import BackendUnavailable
        status = "unavailable" if isinstance(e, BackendUnavailable) else "failed"
        rec.update(status=status, note=f"set-up: {type(e).__name__}: {e}")
        return rec
    t_sim = time.perf_counter()
    rec["backend_setup_s"] = t_sim - t_compiled
    log(f"set-up done in {t_sim - t_start:.2f} s; running")

    dt = cnet.dt
    try:
        sim.run(dt)                                   # step 1: part of the set-up
        t_first = time.perf_counter()
        rec["first_step_s"] = t_first - t_sim
        rec["setup_s"] = t_first - t_start
        deadline_warm = t_first + max(0.25 * (budget - (t_first - t_start)), 0.0)
        warm_steps = max(int(round(float(case["warmup_ms"]) / dt)) - 1, 0)
        if warm_steps:
            sim.run(warm_steps * dt, should_stop=lambda: time.perf_counter() > deadline_warm)
            sim.interrupted = False
        rec["warmup_ms"] = sim.t
        warm_short = warm_steps and int(sim.sim.step) < warm_steps + 1
        ev0 = int(sim.sim.n_events) if hasattr(sim.sim, "n_events") else None
        step0 = int(sim.sim.step)
        n_rec0 = sum(g.size for _, g in sim._record) if hasattr(sim, "_record") else None
        t_meas = time.perf_counter()
        remaining = budget - (t_meas - t_start)
        deadline = t_meas + max(remaining, 0.2 * budget if math.isfinite(budget) else 0.0)
        wall = {"s": None}

        def progress(done, total, wall_s):
            wall["s"] = wall_s

        steps = int(round(float(case["duration_ms"]) / dt))
        res = sim.run(steps * dt, progress=progress, chunk_steps=max(1, min(1000, steps)),
                      should_stop=lambda: time.perf_counter() > deadline)
        t_end = time.perf_counter()
    except Exception as e:
        rec.update(status="failed", note=f"run: {type(e).__name__}: {e}")
        rec["traceback"] = traceback.format_exc(limit=6)
        return rec
    run_wall = wall["s"] if wall["s"] is not None else t_end - t_meas
    meas_steps = int(sim.sim.step) - step0
    meas_ms = meas_steps * dt
    notes = []
    if warm_short:
        # the measured part then starts earlier in the transient than the other cases'
        notes.append(f"warm-up shortened to {rec['warmup_ms']:g} ms of "
                     f"{float(case['warmup_ms']):g} ms")
    if meas_steps < steps:
        notes.append(f"measured part shortened to {meas_ms:g} ms of {steps * dt:g} ms")
    if notes:
        rec["note"] = "; ".join(notes) + f" by the budget ({budget:g} s, --max-seconds)"
    if meas_steps == 0:
        rec.update(status="skipped", note=f"skipped: no step measured within the budget "
                                          f"{budget:g} s (--max-seconds)")
        return rec
    ev_total = int(sim.sim.n_events) if hasattr(sim.sim, "n_events") else None
    ev = None if ev_total is None or ev0 is None else ev_total - ev0
    spikes_total = int(res.times.size)
    spikes = spikes_total - n_rec0 if n_rec0 is not None else None
    rec.update(
        measured_ms=meas_ms, run_wall_s=run_wall,
        rtf=run_wall / (meas_ms * 1e-3),
        spikes=spikes, spikes_total=spikes_total,
        all_recorded=bool(np.all(cnet.record)),
        mean_rate_Hz=(spikes / (n_neurons * meas_ms * 1e-3) if spikes is not None
                      and np.all(cnet.record) else None),
        synaptic_events=ev, synaptic_events_total=ev_total,
        events_per_s=events_per_second(ev, run_wall) if ev is not None else None,
        neuron_updates_per_s=n_neurons * meas_steps / run_wall if run_wall > 0 else None,
    )
    if getattr(sim, "interrupted", False) and not rec["note"]:
        rec["note"] = "run stopped early"

    rec["peak_host_bytes"] = _ru_maxrss_bytes()     # before the check's own allocations
    # events check: recompute from the spikes (all of them, from step 0)
    mode = case.get("check_events", "auto")
    if mode != "never" and ev_total is not None and np.all(cnet.record):
        t0 = time.perf_counter()
        try:
            csr, how = _check_source(sim.sim, conn, rec["synapses"], mode)
            if how is not None:
                def rl(k, pre):
                    return row_lengths(cnet, k, pre, csr[k] if csr is not None else None)
                expect = events_from_spikes(cnet, res.senders, rl)
                rec["events_check"] = {"from_spikes": expect, "simulator": ev_total,
                                       "equal": expect == ev_total, "rows_from": how,
                                       "wall_s": time.perf_counter() - t0}
        except Exception as e:
            rec["events_check"] = {"error": f"{type(e).__name__}: {e}"}
    # memory
    dev = getattr(sim.sim, "device_bytes", None)
    if dev is None:
        dev = getattr(sim.sim, "allocated_bytes", None)
    sim_plan = getattr(sim.sim, "plan", None)
    if backend == "cuda":
        if dev is not None:
            rec.update(peak_device_bytes=int(dev), peak_device_source="allocated")
        elif getattr(sim_plan, "total", None) is not None:
            # the CUDA backend allocates exactly its plan's buffers (pyproc.plan)
            rec.update(peak_device_bytes=int(sim_plan.total), peak_device_source="allocated")
        elif rec["plan_device_bytes"] is not None:
            rec.update(peak_device_bytes=rec["plan_device_bytes"], peak_device_source="plan")
        else:
            rec.update(peak_device_bytes=None, peak_device_source=None)
        rec["process_device_bytes"] = _process_device_bytes()
        for attr in ("device_name", "loop_mode", "graph_error", "persistent_error",
                     "persistent_grid", "n_sm"):
            v = getattr(sim.sim, attr, None)
            if v is not None:
                rec[attr] = v if isinstance(v, (int, float, str, bool)) else str(v)
    else:
        rec.update(peak_device_bytes=None, peak_device_source=None)
    close = getattr(sim.sim, "close", None)
    if callable(close):
        try:
            close()
        except Exception as e:   # the measurement is done; report, do not fail the case
            rec["note"] = (rec["note"] + "; " if rec["note"] else "") + f"close: {e}"
    return rec


# ==========================================================================================
# the suite
# ==========================================================================================
def _float_list(text: str) -> List[float]:
    try:
        out = [float(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    if not out or any(not (math.isfinite(v) and v > 0) for v in out):
        raise argparse.ArgumentTypeError(f"expected numbers > 0, got {text!r}")
    return out


def _size_list(text: str) -> List[int]:
    """Balanced network sizes: whole numbers >= 5 (1e4 is fine, 2.5 is not)."""
    out = _float_list(text)
    bad = [v for v in out if v != math.floor(v) or v < 5]
    if bad:
        raise argparse.ArgumentTypeError(f"expected whole numbers of neurons >= 5, got {text!r}")
    return [int(v) for v in out]


def _scale_list(text: str) -> List[float]:
    """Model scales: numbers in (0, 1], as ``pyproc run MODEL --scale``."""
    out = _float_list(text)
    if any(v > 1.0 for v in out):
        raise argparse.ArgumentTypeError(f"expected scales in (0, 1], got {text!r}")
    return out


def _finite(lo: float, strict: bool) -> Callable[[str], float]:
    """A finite number > lo (``strict``) or >= lo."""
    rng = f"{'>' if strict else '>='} {lo:g}"

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {rng}, got {text!r}") from None
        if not math.isfinite(v) or (v <= lo if strict else v < lo):
            raise argparse.ArgumentTypeError(f"must be a finite number {rng}, got {text!r}")
        return v
    parse.__name__ = "number"
    return parse


_positive = _finite(0.0, strict=True)
_nonneg = _finite(0.0, strict=False)


def _results_dir(text: str) -> str:
    """--render DIR: a directory holding results.json."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"no such directory: {text!r}")
    if not os.path.isfile(os.path.join(text, "results.json")):
        raise argparse.ArgumentTypeError(f"{text!r} holds no results.json")
    return text


def _choice_list(choices: Sequence[str]) -> Callable[[str], List[str]]:
    def parse(text: str) -> List[str]:
        out = [x for x in str(text).replace(" ", "").split(",") if x]
        if out == ["all"] or out == ["both"]:
            return list(choices)
        out = list(dict.fromkeys(out))          # a name given twice is one case
        bad = [x for x in out if x not in choices]
        if bad or not out:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(choices)} (or 'all'), got {text!r}")
        return out
    parse.__name__ = "list"
    return parse


def _as_list(value, choices: Sequence[str], default: Sequence[str]) -> List[str]:
    if value is None:
        return list(default)
    if isinstance(value, str):
        return _choice_list(choices)(value)
    return list(value)


def build_cases(args) -> List[Dict]:
    """The cases selected by ``args``, in run order (per model: size ascending, dt as
    given, backend, connectivity)."""
    models = _as_list(getattr(args, "models", None), MODEL_NAMES,
                      ["balanced", "microcircuit"] + (["multiarea"] if getattr(
                          args, "structure", None) else []))
    backends = _as_list(getattr(args, "backends", None) or getattr(args, "backend", None),
                        BACKENDS, ["cpu"])
    conns = _as_list(getattr(args, "connectivity", None), CONNECTIVITIES, list(CONNECTIVITIES))
    def once(xs):                               # a value given twice is one case
        return list(dict.fromkeys(xs))
    dts = once(getattr(args, "dts", None) or DEFAULT_DTS)
    sizes = once(getattr(args, "sizes", None) or DEFAULT_SIZES)
    scales = once(getattr(args, "scales", None) or DEFAULT_SCALES)
    mam_scales = once(getattr(args, "mam_scales", None) or [1.0])
    mc_dts = once(getattr(args, "microcircuit_dts", None) or [0.1])
    duration = float(getattr(args, "duration", DEFAULT_DURATION_MS))
    warmup = float(getattr(args, "warmup", DEFAULT_WARMUP_MS))
    gib = 2 ** 30
    common = dict(duration_ms=duration, warmup_ms=warmup, seed=int(getattr(args, "seed", 1)),
                  max_seconds=float(getattr(args, "max_seconds", DEFAULT_MAX_SECONDS)),
                  check_events=getattr(args, "check_events", "auto"),
                  host_memory=(None if getattr(args, "host_memory_gb", None) is None
                               else int(args.host_memory_gb * gib)),
                  device_memory=(None if getattr(args, "device_memory_gb", None) is None
                                 else int(args.device_memory_gb * gib)))
    cases = []
    for model in models:
        if model == "balanced":
            grid = [(int(s), dt) for s in sorted(sizes) for dt in dts]
        elif model == "microcircuit":
            grid = [(float(s), dt) for s in sorted(scales) for dt in mc_dts]
        else:
            grid = [(float(s), dt) for s in sorted(mam_scales) for dt in mc_dts]
        for size, dt in grid:
            for be in backends:
                for conn in conns:
                    c = dict(model=model, size=size, dt=float(dt), backend=be,
                             connectivity=conn, **common)
                    if model == "multiarea":
                        c.update(structure=getattr(args, "structure", None),
                                 mam_state=getattr(args, "mam_state", "ground"))
                    cases.append(c)
    return cases


def _run_in_subprocess(case: Dict, timeout: float, log_path: Optional[str]) -> Dict:
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                    else "")
    fd, out_path = tempfile.mkstemp(prefix="pyproc-bench-", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, "-m", "pyproc.bench", "--case", json.dumps(case),
           "--case-out", out_path]
    t0 = time.perf_counter()
    logf = open(log_path, "w") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.run(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                              timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = None
    finally:
        if log_path:
            logf.close()
    wall = time.perf_counter() - t0
    rec = None
    try:
        with open(out_path) as f:
            text = f.read()
        if text.strip():
            rec = json.loads(text)
    except (OSError, ValueError):
        rec = None
    finally:
        try:
            os.unlink(out_path)
        except OSError:
            pass
    if rec is None:
        tail = ""
        if log_path and os.path.exists(log_path):
            with open(log_path, errors="replace") as f:
                lines = [l.strip() for l in f.read().strip().splitlines() if l.strip()]
            tail = lines[-1] if lines else ""
        rec = {"case": case, "label": _case_label(case),
               "status": "timeout" if code is None else "failed",
               "note": (f"killed after {timeout:.0f} s (per-case limit)" if code is None
                        else f"process exited with {code}" + (f": {tail}" if tail else ""))}
    rec["process_wall_s"] = wall
    return rec


def run_suite(cases: List[Dict], out_dir: str, meta: Dict, in_process: bool = False,
              total_seconds: Optional[float] = None, say: Callable[[str], None] = print,
              plot: bool = True, reference: Sequence[Dict] = ()) -> Dict:
    """Run ``cases`` (each in a fresh process unless ``in_process``), writing
    ``out_dir``/results.json after each case and results.md and plot.png at the end."""
    os.makedirs(out_dir, exist_ok=True)
    logs = os.path.join(out_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    # an earlier suite's files in the same folder would pass for this one's: its plot
    # (this suite may write none) and its case logs (named after other cases)
    from .results import remove_stale
    remove_stale([os.path.join(out_dir, "plot.png")] + [
        os.path.join(logs, f) for f in os.listdir(logs) if f.endswith(".log")])
    doc = dict(meta)
    doc["cases"] = []
    doc["published"] = PUBLISHED
    t0 = time.perf_counter()
    say(f"{len(cases)} case(s); results in {out_dir}")
    try:
        for i, case in enumerate(cases):
            left = None if total_seconds is None else total_seconds - (time.perf_counter() - t0)
            if left is not None and left < 5:
                rec = {"case": case, "label": _case_label(case), "status": "skipped",
                       "note": f"skipped: suite budget of {total_seconds:g} s spent "
                               f"(--total-seconds)"}
            else:
                c = dict(case)
                if left is not None:
                    c["max_seconds"] = min(float(c["max_seconds"]), max(left - 5, 5.0))
                say(f"[{i + 1}/{len(cases)}] {_case_label(c)} ...")
                if in_process:
                    rec = run_case(c)
                    rec["process_wall_s"] = None
                else:
                    limit = 2 * float(c["max_seconds"]) + 90
                    if left is not None:
                        limit = min(limit, left + 15)
                    name = f"{i + 1:03d}-" + _case_label(c).replace(" ", "_") + ".log"
                    rec = _run_in_subprocess(c, limit, os.path.join(logs, name))
            doc["cases"].append(rec)
            cross_check(doc["cases"], reference, (doc.get("environment") or {}).get("git_commit"))
            say("      " + _one_line(rec))
            _write_json(os.path.join(out_dir, "results.json"), doc)
    finally:
        doc["suite_wall_s"] = time.perf_counter() - t0
        _write_json(os.path.join(out_dir, "results.json"), doc)
        write_markdown(doc, os.path.join(out_dir, "results.md"))
        note = write_plot(doc, os.path.join(out_dir, "plot.png")) if plot else None
        if note:
            say(note)
    return doc


def _network_key(c: Dict):
    """What makes two cases the same network: model, size, dt, seed and, for the
    multi-area model, its state and structure file (by name: the path differs between
    machines)."""
    st = c.get("structure")
    return (c["model"], c["size"], c["dt"], c.get("seed", 1), c.get("mam_state"),
            os.path.basename(st) if st else None)


def same_as_failed(rec: Dict) -> bool:
    """Whether the case's cross-check found a difference that counts as a failure: not one
    against a reference recorded from other code (another commit)."""
    same = rec.get("same_as")
    return bool(same) and not (same["spikes"] and same["events"]) and \
        not same.get("other_commit")


def cross_check(records: List[Dict], reference: Sequence[Dict] = (),
                commit: Optional[str] = None) -> None:
    """Stored and procedural, CPU and CUDA must emit the same spikes and deliver the same
    events (bit-exact backends).  For each completed case, compare with the first earlier
    completed case of the same network (:func:`_network_key`: model, size, dt, seed, ...)
    that ran the same number of steps, and store the outcome in ``rec["same_as"]``.
    ``reference`` records (another suite's results.json) come first, labelled ``[ref]``;
    where they carry ``git_commit`` and it is not ``commit`` (this tree's), the outcome
    says so (``other_commit``) and a difference is not a failure: the code changed in
    between, and with it possibly the network."""
    refs = [dict(r, label="[ref] " + r.get("label", "")) for r in reference
            if r.get("status") == "ok"]
    done = refs + [r for r in records if r.get("status") == "ok"]
    for i, r in enumerate(done):
        if i < len(refs) or "same_as" in r:
            continue
        c = r["case"]
        for j, o in enumerate(done[:i]):
            if _network_key(o["case"]) != _network_key(c):
                continue
            if o.get("warmup_ms", 0) + o.get("measured_ms", 0) != \
                    r.get("warmup_ms", 0) + r.get("measured_ms", 0):
                continue
            r["same_as"] = {"case": o["label"],
                            "spikes": r.get("spikes_total") == o.get("spikes_total"),
                            "events": r.get("synaptic_events_total") == o.get(
                                "synaptic_events_total")}
            other = o.get("git_commit") if j < len(refs) else None
            if other and commit and other != commit:
                r["same_as"]["other_commit"] = other
            break


def _same_text(same: Dict) -> str:
    if same["spikes"] and same["events"]:
        return "same spikes+events as " + same["case"]
    if same.get("other_commit"):
        return (f"differs from {same['case']} (recorded at commit {same['other_commit']}: "
                f"other code, not a failure)")
    return "DIFFERS from " + same["case"]


def render(out_dir: str, reference: Sequence[Dict] = (), plot: bool = True) -> Dict:
    """Rewrite results.md (and plot.png) of ``out_dir`` from its results.json, redoing
    the cross-check; the measurements themselves are not touched."""
    with open(os.path.join(out_dir, "results.json")) as f:
        doc = json.load(f)
    for r in doc.get("cases", []):
        r.pop("same_as", None)
    cross_check(doc.get("cases", []), reference,
                (doc.get("environment") or {}).get("git_commit"))
    _write_json(os.path.join(out_dir, "results.json"), doc)
    write_markdown(doc, os.path.join(out_dir, "results.md"))
    if plot:
        note = write_plot(doc, os.path.join(out_dir, "plot.png"))
        if note:
            print(note)
    return doc


def _one_line(rec: Dict) -> str:
    if rec.get("status") != "ok":
        return f"{rec.get('status')}: {rec.get('note', '')}"
    chk = rec.get("events_check") or {}
    c = "" if "equal" not in chk else ("  events check ok" if chk["equal"]
                                       else "  EVENTS CHECK MISMATCH")
    same = rec.get("same_as")
    if same:
        c += "  " + _same_text(same)
    return (f"set-up {rec['setup_s']:.2f} s  RTF {rec['rtf']:.3g}  "
            f"events/s {_num(rec.get('events_per_s'))}  spikes {rec.get('spikes')}{c}"
            + (f"  ({rec['note']})" if rec.get("note") else ""))


def _write_json(path: str, doc: Dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, default=_json_default)
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ==========================================================================================
# environment
# ==========================================================================================
def _git_commit() -> Optional[str]:
    return git_commit()


def _cpu_name() -> Optional[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment() -> Dict[str, object]:
    """Machine and software versions (no CUDA context is created)."""
    from . import __version__
    env: Dict[str, object] = {
        "pyproc": __version__, "git_commit": _git_commit(), "python": platform.python_version(),
        "numpy": np.__version__, "platform": platform.platform(), "host_cpu": _cpu_name(),
        "host_cpus": os.cpu_count(), "host_memory_bytes": None,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    try:
        import scipy
        env["scipy"] = scipy.__version__
    except ImportError:
        env["scipy"] = None
    try:
        env["host_memory_bytes"] = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pass
    gpus = _nvidia_smi("index,name,driver_version,memory.total")
    env["gpus"] = [{"index": int(g[0]), "name": g[1], "driver": g[2],
                    "memory_bytes": int(float(g[3]) * 2 ** 20)} for g in gpus or []
                   if len(g) >= 4 and g[0].isdigit()]
    env["gpu_name"] = env["gpus"][0]["name"] if env["gpus"] else None
    env["gpu_driver"] = env["gpus"][0]["driver"] if env["gpus"] else None
    env["cuda_driver_version"] = None
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            head = subprocess.run([smi], capture_output=True, text=True, timeout=20).stdout
            for tok in head.split("|"):
                if "CUDA Version" in tok:
                    env["cuda_driver_version"] = tok.split("CUDA Version:")[1].split()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            pass
    env["nvcc"] = None
    nvcc = shutil.which("nvcc")
    if nvcc:
        try:
            out = subprocess.run([nvcc, "--version"], capture_output=True, text=True,
                                 timeout=20).stdout
            env["nvcc"] = next((l.strip() for l in out.splitlines() if "release" in l), None)
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import pycuda
        env["pycuda"] = getattr(pycuda, "VERSION_TEXT", None)
    except Exception as e:
        env["pycuda"] = None
        env["pycuda_reason"] = f"{type(e).__name__}: {e}"
    return env


# ==========================================================================================
# Markdown and plot
# ==========================================================================================
def _num(v, fmt="{:.3g}") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "-"
    return fmt.format(v)


def _warmup_text(doc: Dict) -> str:
    w = {r["case"].get("warmup_ms") for r in doc.get("cases", []) if "case" in r}
    return " / ".join(f"{x:g} ms" for x in sorted(w)) if w else "-"


def _bytes(v, none: str = "-") -> str:
    # binary units, as --host-memory-gb / --device-memory-gb (GiB) and `pyproc plan`
    from .hostmem import human
    return none if v is None else human(v, 2)


def _size_text(case: Dict) -> str:
    if case["model"] == "balanced":
        return f"{int(case['size']):,d}"
    return f"scale {case['size']:g}"


def write_markdown(doc: Dict, path: str) -> None:
    """Our table, then the published figures (other hardware), to ``path``."""
    env = doc.get("environment", {})
    gpu = env.get("gpu_name")
    lines = ["# pyproc benchmark", "",
             f"- date: {env.get('date')}; pyproc {env.get('pyproc')} "
             f"(git {env.get('git_commit')}); python {env.get('python')}, numpy "
             f"{env.get('numpy')}, scipy {env.get('scipy')}",
             f"- host CPU: {env.get('host_cpu')} ({env.get('host_cpus')} logical CPUs, "
             f"{_bytes(env.get('host_memory_bytes'))} RAM)",
             f"- GPU: {gpu or 'none'}" + (f", driver {env.get('gpu_driver')}, CUDA "
                                          f"{env.get('cuda_driver_version')}, "
                                          f"{env.get('nvcc')}, pycuda {env.get('pycuda')}"
                                          if gpu else ""),
             f"- command: `{doc.get('command')}`",
             "",
             f"Each case: a warm-up of {_warmup_text(doc)} of model time (first step "
             "included), then the measured run ('model ms'). "
             "RTF = wall seconds per model second (after the warm-up). Set-up = build + "
             "compile + backend set-up + first step. Events = synaptic events delivered in the "
             "measured window (check: recomputed from the spikes, over the whole run). Peak "
             "device = the bytes the CUDA backend allocated (its memory plan, exactly: "
             "*allocated*), else the planner's prediction (*plan*); the CUDA context itself "
             "is not included (see process_device_bytes in the JSON). Peak host = the case "
             "process's max RSS. Synapses: the exact count, or '~' the expected count where "
             "pairwise_bernoulli draws it. Rate Hz: mean over all neurons in the measured "
             "run; updates/s: neuron updates (neurons x steps) per wall second. Memory in "
             "binary units (KiB, MiB, GiB).",
             "",
             "| model | size | neurons | synapses | dt ms | backend | connectivity | status | "
             "set-up s | RTF | model ms | spikes | rate Hz | events | events/s | "
             "updates/s | events check | same spikes, events as | peak device | peak host | "
             "note |",
             "|" + "---|" * 21]
    for r in doc.get("cases", []):
        c = r["case"]
        chk = r.get("events_check") or {}
        check = "-" if "equal" not in chk else ("equal" if chk["equal"] else
                                                f"MISMATCH ({chk['from_spikes']})")
        same = r.get("same_as")
        same_txt = "-" if not same else _same_text(same)
        dev = _bytes(r.get("peak_device_bytes"))
        if r.get("peak_device_source") in ("plan", "allocated"):
            dev += f" *{r['peak_device_source']}*"
        lines.append("| " + " | ".join([
            c["model"], _size_text(c), _num(r.get("neurons"), "{:,d}"),
            ("" if r.get("synapses_exact", True) else "~") + _num(r.get("synapses"), "{:.3g}"),
            f"{c['dt']:g}", c["backend"], c["connectivity"],
            r.get("status", "?"), _num(r.get("setup_s")), _num(r.get("rtf")),
            _num(r.get("measured_ms"), "{:g}"), _num(r.get("spikes"), "{:,d}"),
            _num(r.get("mean_rate_Hz"), "{:.2f}"), _num(r.get("synaptic_events"), "{:.4g}"),
            _num(r.get("events_per_s")), _num(r.get("neuron_updates_per_s")), check, same_txt,
            dev,
            _bytes(r.get("peak_host_bytes")), (r.get("note") or "").replace("|", "/")]) + " |")
    lines += ["", "## Published figures (other hardware, other code: for orientation only)", "",
              "| simulator | hardware | model | figure | source |", "|---|---|---|---|---|"]
    for p in doc.get("published", PUBLISHED):
        lines.append(f"| {p['simulator']} | {p['hardware']} | {p['model']} | {p['figure']} | "
                     f"{p['source']} |")
    lines += ["", "NEST (CPU) figures are not listed: none was verified against its source. "
              "The balanced-network and microcircuit timings of Knight & Nowotny (2021) are "
              "published as plots and are not transcribed here.", ""]
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)


def write_plot(doc: Dict, path: str) -> Optional[str]:
    """Wall time per model second and memory against synapse count, procedural (filled)
    vs stored (open markers).  Returns a note instead of a plot without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return ("note: matplotlib is not installed, so no plot.png was written "
                "(pip install matplotlib; the JSON and Markdown are complete)")
    ok = [r for r in doc.get("cases", []) if r.get("status") == "ok" and r.get("synapses")]
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_t, ax_m = fig.subplots(1, 2)
    groups: Dict[Tuple, List[Dict]] = {}
    for r in ok:
        c = r["case"]
        groups.setdefault((c["model"], c["backend"], c["dt"], c["connectivity"]), []).append(r)
    colors: Dict[Tuple, str] = {}
    markers = {"balanced": "o", "microcircuit": "s", "multiarea": "D"}
    for key in sorted(groups):
        model, backend, dt, conn = key
        ckey = (backend, dt)
        colors.setdefault(ckey, f"C{len(colors) % 10}")
        rs = sorted(groups[key], key=lambda r: r["synapses"])
        x = [r["synapses"] for r in rs]
        style = dict(color=colors[ckey], marker=markers.get(model, "^"),
                     linestyle="-" if conn == "procedural" else "--",
                     markerfacecolor=colors[ckey] if conn == "procedural" else "none",
                     label=f"{model} {backend} dt {dt:g} {conn}")
        ax_t.plot(x, [r["rtf"] for r in rs], **style)
        mem = [(r.get("peak_device_bytes") if backend == "cuda" else r.get("peak_host_bytes"))
               for r in rs]
        if any(m is not None for m in mem):
            ax_m.plot(x, [np.nan if m is None else m / 1e9 for m in mem], **style)
    for ax in (ax_t, ax_m):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("synapses")
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_ylabel("wall s per model s (RTF)")
    ax_t.axhline(1.0, color="0.5", linewidth=0.8)
    ax_m.set_ylabel("peak memory GB (device for cuda, host RSS for cpu)")
    env = doc.get("environment", {})
    fig.suptitle(f"pyproc bench: {env.get('gpu_name') or env.get('host_cpu') or ''}  "
                 "(solid/filled: procedural, dashed/open: stored)", fontsize="medium")
    if ok:
        ax_t.legend(fontsize="x-small")
    else:
        ax_t.text(0.5, 0.5, "no case completed", transform=ax_t.transAxes, ha="center")
    fig.savefig(path, dpi=110)
    return None


# ==========================================================================================
# command line
# ==========================================================================================
def _add(parser, *flags, override: bool = False, **kw) -> None:
    """Add an option unless the parser already has it (pyproc.cli's shared options);
    with ``override`` a parser with conflict_handler='resolve' gets this one instead."""
    have = any(f in parser._option_string_actions for f in flags)
    if have and not (override and parser.conflict_handler == "resolve"):
        return
    parser.add_argument(*flags, **kw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench options (pyproc.cli calls this for ``pyproc bench``)."""
    g = parser.add_argument_group("benchmark suite (pyproc.bench)")
    # shared with pyproc.cli (kept if already there)
    _add(g, "--duration", type=_nonneg, default=DEFAULT_DURATION_MS, metavar="MS",
         help="model time measured per case, ms (after the warm-up)")
    _add(g, "--seed", type=int, default=1, metavar="S", help="seed of every case")
    _add(g, "--quiet", "-q", action="store_true", help="print nothing but errors")
    _add(g, "--out", metavar="DIR", default=None,
         help="output directory [default: bench-results/YYYYmmdd-HHMMSS]")
    # lists (replace pyproc.cli's single-valued --backend / --connectivity)
    _add(g, "--backends", "--backend", dest="backends", type=_choice_list(BACKENDS),
         default=None, override=True, metavar="LIST",
         help="comma-separated backends: cpu,cuda, or all [default: cpu]")
    _add(g, "--connectivity", dest="connectivity", type=_choice_list(CONNECTIVITIES),
         default=None, override=True, metavar="LIST",
         help="comma-separated: procedural,stored, or all / both [default: both]")
    g.add_argument("--models", type=_choice_list(MODEL_NAMES), default=None, metavar="LIST",
                   help="comma-separated: balanced,microcircuit,multiarea [default: balanced,"
                        "microcircuit, plus multiarea when --structure is given]")
    g.add_argument("--sizes", type=_size_list, default=None, metavar="LIST",
                   help="balanced network sizes, whole numbers of neurons >= 5 (e.g. 1e4,5e4) "
                        "[default: 1e4,5e4,1e5,5e5,1e6]")
    g.add_argument("--dts", type=_float_list, default=None, metavar="LIST",
                   help="balanced network time steps, ms [default: 0.1,1]")
    g.add_argument("--scales", type=_scale_list, default=None, metavar="LIST",
                   help="microcircuit scales, in (0, 1] [default: 0.1,1]")
    g.add_argument("--microcircuit-dts", "--mc-dts", dest="microcircuit_dts",
                   type=_float_list, default=None, metavar="LIST",
                   help="time steps of the microcircuit and multi-area cases, ms [default: 0.1]")
    g.add_argument("--structure", metavar="PATH", default=None,
                   help="multi-area model structure file (adds the multiarea cases "
                        "where --models is not given)")
    g.add_argument("--mam-state", choices=("ground", "metastable"), default="ground",
                   help="multi-area model state")
    g.add_argument("--mam-scales", type=_scale_list, default=None, metavar="LIST",
                   help="multi-area model scales, in (0, 1] [default: 1]")
    g.add_argument("--warmup", type=_nonneg, default=DEFAULT_WARMUP_MS, metavar="MS",
                   help="model time run before the measured window (first step included)")
    g.add_argument("--max-seconds", type=_positive, default=DEFAULT_MAX_SECONDS, metavar="S",
                   help="per-case wall budget: cases whose set-up is estimated to exceed it "
                        "are skipped, runs are shortened to fit (and say so)")
    g.add_argument("--total-seconds", type=_positive, default=None, metavar="S",
                   help="wall budget of the whole suite: later cases get what is left")
    g.add_argument("--host-memory-gb", type=_positive, default=None, metavar="GiB",
                   help="assume this much available RAM instead of MemAvailable")
    g.add_argument("--device-memory-gb", type=_positive, default=None, metavar="GiB",
                   help="assume this much free device memory instead of nvidia-smi's")
    g.add_argument("--check-events", choices=("auto", "always", "never"), default="auto",
                   help="recompute the events from the spikes (auto: CPU stored always, "
                        "CUDA stored when its CSR fits half the free RAM, procedural up "
                        "to 2e7 synapses)")
    g.add_argument("--compare-with", metavar="RESULTS_JSON", default=None,
                   help="another suite's results.json (e.g. a CPU run of the same "
                        "commit): cases of the same network (model, size, dt, seed) and "
                        "steps must have the same spikes and events (bit-exact backends); "
                        "against results of another commit a difference is reported, not "
                        "counted as a failure")
    g.add_argument("--render", metavar="DIR", default=None, type=_results_dir,
                   help="only rewrite DIR/results.md and plot.png from DIR/results.json")
    g.add_argument("--in-process", action="store_true",
                   help="run the cases in this process (peak host memory is then cumulative)")
    g.add_argument("--no-plot", action="store_true", help="do not write plot.png")
    g.add_argument("--case", default=None, help=argparse.SUPPRESS)
    g.add_argument("--case-out", default=None, help=argparse.SUPPRESS)


def _log_stderr(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def main(args) -> int:
    """Run the suite (or, with ``--case``, one case) from parsed ``args``."""
    if getattr(args, "case", None):
        case = json.loads(args.case)
        _log_stderr(f"case: {_case_label(case)}")
        rec = run_case(case, log=_log_stderr)
        text = json.dumps(rec, default=_json_default)
        if getattr(args, "case_out", None):
            with open(args.case_out, "w") as f:
                f.write(text)
        else:
            print(text)
        return 0
    if getattr(args, "render", None):
        try:
            render(args.render, plot=not getattr(args, "no_plot", False))
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.stderr.write(f"pyproc bench: error: argument --render: cannot render "
                             f"{args.render!r} ({type(e).__name__}: {e})\n")
            return 2
        return 0
    quiet = getattr(args, "quiet", False)
    say = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
    out = getattr(args, "out", None) or os.path.join(
        "bench-results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    cases = build_cases(args)
    if any(c["model"] == "multiarea" and not c.get("structure") for c in cases):
        sys.stderr.write("pyproc bench: error: the multiarea cases need --structure PATH\n")
        return 2
    structure = getattr(args, "structure", None)
    if structure and any(c["model"] == "multiarea" for c in cases) and \
            not os.path.isfile(structure):
        sys.stderr.write(f"pyproc bench: error: argument --structure: {structure!r} is not a "
                         f"file\n")
        return 2
    if structure and not any(c["model"] == "multiarea" for c in cases):
        sys.stderr.write("pyproc bench: warning: --structure is not used: --models has no "
                         "multiarea\n")
    from .cli import _duration_problem       # the rule of `pyproc run --duration`
    if cases and not min(float(c["duration_ms"]) for c in cases) > 0:
        sys.stderr.write("pyproc bench: error: argument --duration: must be > 0 ms (the "
                         "model time measured after the warm-up)\n")
        return 2
    for c in cases:
        for flag, ms in (("--duration", c["duration_ms"]), ("--warmup", c["warmup_ms"])):
            why = _duration_problem(float(ms), c["dt"])
            if why:
                sys.stderr.write(f"pyproc bench: error: argument {flag}: {why} (the time step "
                                 f"of the {c['model']} cases)\n")
                return 2
    argv = getattr(args, "_argv", None)
    command = ("pyproc " + " ".join(argv)) if argv is not None else " ".join(
        [os.path.basename(sys.executable), "-m", "pyproc.bench"] + sys.argv[1:])
    opts = {k: v for k, v in vars(args).items()
            if not k.startswith("_") and not callable(v) and k not in ("case", "case_out")}
    meta = {"suite": "pyproc bench", "command": command, "options": opts,
            "environment": environment()}
    reference: List[Dict] = []
    if getattr(args, "compare_with", None):
        try:
            with open(args.compare_with) as f:
                ref_doc = json.load(f)
            ref_commit = (ref_doc.get("environment") or {}).get("git_commit")
            reference = [dict(r, git_commit=ref_commit) if ref_commit else r
                         for r in ref_doc.get("cases", [])]
        except (OSError, ValueError, AttributeError, TypeError) as e:
            sys.stderr.write(f"pyproc bench: warning: --compare-with {args.compare_with}: "
                             f"{e}; no reference comparison\n")
        meta["compare_with"] = args.compare_with

    def _terminated(signum, frame):   # `timeout` / a batch system: still write md + plot
        raise SystemExit(128 + signum)
    try:
        old_handler = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:                # not the main thread: keep the default
        old_handler = None
    try:
        doc = run_suite(cases, out, meta, in_process=getattr(args, "in_process", False),
                        total_seconds=getattr(args, "total_seconds", None), say=say,
                        plot=not getattr(args, "no_plot", False), reference=reference)
    finally:                          # a caller's process (pytest, a notebook) gets its own back
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
    if not quiet:
        print("\n".join(_short_table(doc)))
    bad = [r for r in doc["cases"] if r.get("status") in ("failed", "timeout")]
    mismatch = [r for r in doc["cases"] if (r.get("events_check") or {}).get("equal") is False
                or same_as_failed(r)]
    return 1 if (bad or mismatch) else 0


def _short_table(doc: Dict) -> List[str]:
    lines = [f"{'case':<48} {'status':<8} {'set-up s':>9} {'RTF':>9} {'events/s':>9} "
             f"{'memory':>10}  note"]
    for r in doc.get("cases", []):
        mem = r.get("peak_device_bytes") if r["case"]["backend"] == "cuda" else r.get(
            "peak_host_bytes")
        lines.append(f"{r.get('label', ''):<48} {r.get('status', ''):<8} "
                     f"{_num(r.get('setup_s')):>9} {_num(r.get('rtf')):>9} "
                     f"{_num(r.get('events_per_s')):>9} {_bytes(mem):>10}  "
                     f"{r.get('note') or ''}")
    return lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyproc.bench",
                                description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p)
    return p


if __name__ == "__main__":
    sys.exit(main(_parser().parse_args()))
