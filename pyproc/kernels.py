"""The public door to pyproc's CUDA kernels (``kernels/*.cu`` and ``*.cuh``).

``kernel_dir()`` is where the sources are (the source tree's ``kernels/`` or,
after ``pip install``, the package data ``pyproc._kernels``); ``sources()``
lists them.  :func:`get_kernels` compiles them with PyCUDA (once per CUDA
context, kept in memory; nothing is compiled at import) and returns prepared
``pycuda.driver.Function`` objects whose argument layouts are documented in
:data:`KERNELS` and above each kernel in its ``.cu`` file.

Calling a kernel on your own device arrays
------------------------------------------
The procedural propagation kernel delivers every synapse of a list of spikes
into a delay ring; here two spikes of the balanced network::

    import numpy as np
    import pycuda.driver as drv
    import pyproc
    from pyproc import kernels
    from pyproc.models import balanced
    from pyproc.plan import device_tables

    drv.init()
    ctx = drv.Device(0).make_context()
    try:
        cnet = pyproc.compile_network(balanced(2000))
        tab = device_tables(cnet)   # host tables: projs, pops, rowlen, sampler_tables, ...
        gpu = {k: drv.to_device(v if v.size else np.zeros(1, v.dtype))  # no 0-byte allocs
               for k, v in tab.items() if k != "max_out"}
        spikes = np.array([[0, 5], [1, 7]], np.uint32)   # (population, local index)
        ctrl = np.zeros(1, kernels.CTRL_DTYPE)
        ctrl["n_spk"] = len(spikes)                       # at step 0
        gpu["spikes"], gpu["ctrl"] = drv.to_device(spikes), drv.to_device(ctrl)
        gpu["ring"] = drv.mem_alloc(4 * cnet.ring_size)
        drv.memset_d32(gpu["ring"], 0, cnet.ring_size)
        P = {k: int(v) for k, v in gpu.items()}           # device addresses
        k = kernels.get_kernels()["pp_propagate_procedural_spikes"]
        k.prepared_call((64, 1), (256, 1, 1), P["projs"], P["pops"], P["rowlen"],
                        P["sampler_tables"], P["out_ptr"], P["out_idx"], tab["max_out"],
                        P["spikes"], cnet.seed, P["ring"], cnet.ring_size, P["ctrl"])
        ring_host = drv.from_device(gpu["ring"], (cnet.ring_size,), np.int32)
        print("synapses delivered:", drv.from_device_like(gpu["ctrl"], ctrl)["n_events"][0])
        del gpu, k
    finally:
        kernels.forget_context()   # drop the modules compiled in this context
        ctx.pop()
        ctx.detach()

``ring_host`` then equals the CPU twin's ring after the same two spikes
(layout [slot][channel][neuron] per population, ``pp_ring_index``).
``sampler_tables`` is :func:`pyproc.sampling.sampler_tables` (the normal
quantile and log tables the truncated-normal and geometric samplers
interpolate, ``PP_TABLES_LEN`` float64); every kernel that samples receives it.

Compilation: ``SourceModule(src, no_extern_c=True, include_dirs=[kernel_dir()],
options=["-fmad=false", "-O3", ...], arch="sm_XY")``; no fast math, no
multiply-add contraction, so the kernels' doubles and floats equal the NumPy
twin's bit for bit.
"""
from __future__ import annotations

import os
import threading
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from .errors import BackendUnavailable

__all__ = ["kernel_dir", "sources", "read_source", "KERNELS", "CTRL_DTYPE", "ERROR_CODES",
           "compile_options", "get_kernels", "get_module", "import_pycuda", "forget_context",
           "PYCUDA_MISSING"]


def kernel_dir() -> str:
    """Directory holding the kernel sources."""
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "_kernels")
    if os.path.isfile(os.path.join(installed, "philox.cuh")):
        return installed
    tree = os.path.join(os.path.dirname(here), "kernels")
    if os.path.isfile(os.path.join(tree, "philox.cuh")):
        return tree
    raise FileNotFoundError("pyproc kernel sources not found (looked in "
                            f"{installed} and {tree}); reinstall pyproc")


def sources() -> Dict[str, str]:
    """Map of file name -> path for every ``.cu`` and ``.cuh`` file."""
    d = kernel_dir()
    return {f: os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith((".cu", ".cuh"))}


def read_source(name: str) -> str:
    src = sources()
    if name not in src:
        raise KeyError(f"no kernel source {name!r}; available: {', '.join(src)}")
    with open(src[name], encoding="utf-8") as f:
        return f.read()


# --------------------------------------------------------------------------
# The control block (pp_ctrl in kernels/step.cuh), 64 bytes.
CTRL_DTYPE = np.dtype([
    ("step", "u8"), ("n_events", "u8"), ("n_spikes", "u8"), ("err_step", "u8"),
    ("n_spk", "u4"), ("n_rec", "u4"), ("rec_steps", "u4"), ("rec_lost", "u4"),
    ("err_code", "u4"), ("err_info", "u4"), ("err_aux", "i4"), ("pad_", "u4"),
])
assert CTRL_DTYPE.itemsize == 64

# PP_ERR_* of step.cuh -> (kernel that raises it, what it means)
ERROR_CODES = {
    1: ("pp_neuron_lif_update", "fixed-point input of a step exceeds int32"),
    2: ("pp_neuron_lif_update", "spike list full"),
    3: ("pp_propagate_*/pp_build_csr_*", "unknown connection rule id"),
    4: ("pp_propagate_*", "delay-ring index out of range"),
    5: ("pp_record_advance", "record chunk ran past its step capacity"),
    6: ("pp_build_csr_fill", "a CSR row does not fit its slice"),
}

# kernel name -> (source file, PyCUDA prepare() format, argument list).
# Format characters are Python struct's: P device pointer (DeviceAllocation or
# int), I uint32, Q uint64.  Table arrays are the CompiledNetwork's
# (POP_DTYPE / PROJ_DTYPE bytes); see pyproc.backends.cuda.device_tables.
# sampler_tables is pyproc.sampling.sampler_tables() (float64[PP_TABLES_LEN]:
# normal quantile knots at PP_ZTAB_OFFSET = 0, log knots at PP_LTAB_OFFSET = 4097).
KERNELS: Dict[str, Tuple[str, str, Tuple[str, ...]]] = {
    "pp_neuron_lif_update": ("neuron_lif.cu", "PPPPIPPPPPPIPIP", (
        "pops: pp_pop[n_pops]", "blocks: uint32 (population, first local)[n_blocks]",
        "pop_flags: uint32[n_pops] (bit 0: record)", "poisson_tables: uint32[]", "seed: uint32",
        "V: float32[N]", "Iex: float32[N]", "Iin: float32[N]", "ref: int32[N]",
        "ring: int32[ring_size]", "spikes: uint32 (population, local)[spike_cap]",
        "spike_cap: uint32", "rec_ids: uint32[rec_cap]", "rec_cap: uint32",
        "ctrl: pp_ctrl (CTRL_DTYPE)")),
    "pp_propagate_procedural_spikes": ("propagate_procedural.cu", "PPPPPPIPIPQP", (
        "projs: pp_proj[n_projs]", "pops: pp_pop[n_pops]", "rowlen: uint32[]",
        "sampler_tables: float64[PP_TABLES_LEN]", "out_ptr: uint32[n_pops + 1]", "out_idx: uint32[n_projs]", "max_out: uint32",
        "spikes: uint32 (population, local)[ctrl.n_spk]", "seed: uint32",
        "ring: int32[ring_size]", "ring_size: uint64", "ctrl: pp_ctrl")),
    "pp_propagate_stored_spikes": ("propagate_stored.cu", "PPPPIPPPPPPPQP", (
        "projs: pp_proj[n_projs]", "pops: pp_pop[n_pops]", "out_ptr: uint32[n_pops + 1]",
        "out_idx: uint32[n_projs]", "max_out: uint32",
        "spikes: uint32 (population, local)[ctrl.n_spk]", "row_base: uint64[n_projs + 1]",
        "indptr: int64[rows + 1]", "targets: uint32[nnz]", "weights: int32[nnz]",
        "delays: uint16[nnz]", "ring: int32[ring_size]", "ring_size: uint64", "ctrl: pp_ctrl")),
    "pp_record_advance": ("record.cu", "PPI", (
        "ctrl: pp_ctrl", "rec_end: uint32[rec_chunk_steps]", "rec_chunk_steps: uint32")),
    "pp_build_csr_count": ("build_stored.cu", "PIPPPIPP", (
        "projs: pp_proj[n_projs]", "n_projs: uint32", "row_base: uint64[n_projs + 1]",
        "rowlen: uint32[]", "sampler_tables: float64[PP_TABLES_LEN]", "seed: uint32", "indptr: int64[rows + 1] (out: counts at r + 1)",
        "ctrl: pp_ctrl")),
    "pp_build_csr_fill": ("build_stored.cu", "PIPPPIPQPPPP", (
        "projs: pp_proj[n_projs]", "n_projs: uint32", "row_base: uint64[n_projs + 1]",
        "rowlen: uint32[]", "sampler_tables: float64[PP_TABLES_LEN]", "seed: uint32", "indptr: int64[rows + 1]", "n_syn_cap: uint64",
        "targets: uint32[n_syn_cap]", "weights: int32[n_syn_cap]", "delays: uint16[n_syn_cap]",
        "ctrl: pp_ctrl")),
}

PYCUDA_MISSING = ("PyCUDA is not installed: pip install pyproc[cuda] (needs a CUDA GPU and "
                  "driver); the CPU backend (backend='cpu') is available without it")


def import_pycuda():
    """``pycuda.driver`` and ``pycuda.compiler``, or BackendUnavailable saying what to do."""
    try:
        import pycuda.compiler as compiler
        import pycuda.driver as drv
    except ImportError as e:
        raise BackendUnavailable(f"{PYCUDA_MISSING} ({type(e).__name__}: {e})") from e
    return drv, compiler


def compile_options(defines: Optional[Dict[str, object]] = None) -> List[str]:
    """nvcc options: no multiply-add contraction, no fast math (exact twins)."""
    opts = ["-fmad=false", "-O3", "-prec-div=true", "-prec-sqrt=true", "-ftz=false"]
    for k, v in sorted((defines or {}).items()):
        opts.append(f"-D{k}={v}")
    return opts


_lock = threading.Lock()
_modules: Dict[Tuple[int, str, Tuple[str, ...]], object] = {}
_functions: Dict[Tuple[int, str], object] = {}


def _context_key(drv) -> int:
    ctx = drv.Context.get_current()
    if ctx is None:
        raise BackendUnavailable("no current CUDA context: create one first, e.g. "
                                 "pycuda.driver.init(); ctx = pycuda.driver.Device(0)"
                                 ".make_context(), or use pyproc.Simulation(backend='cuda')")
    return int(ctx.handle)


def get_module(source: str, defines: Optional[Dict[str, object]] = None):
    """The compiled ``SourceModule`` of ``kernels/<source>`` in the current context
    (compiled on first use, then cached for the context's lifetime)."""
    drv, compiler = import_pycuda()
    key = (_context_key(drv), source, tuple(compile_options(defines)))
    with _lock:
        mod = _modules.get(key)
        if mod is None:
            dev = drv.Context.get_device()
            major, minor = dev.compute_capability()
            try:
                mod = compiler.SourceModule(read_source(source), no_extern_c=True,
                                            include_dirs=[kernel_dir()],
                                            options=list(key[2]), arch=f"sm_{major}{minor}")
            except drv.CompileError as e:
                raise BackendUnavailable(f"nvcc failed to compile kernels/{source} for "
                                         f"sm_{major}{minor}: {e}") from e
            _modules[key] = mod
    return mod


def get_kernels(names: Optional[Iterable[str]] = None) -> Dict[str, object]:
    """Prepared PyCUDA functions (``name -> Function``) of the current context.
    Call them with ``f.prepared_call(grid, block, *args)`` or
    ``f.prepared_async_call(grid, block, stream, *args)``, args as in
    :data:`KERNELS`."""
    drv, _ = import_pycuda()
    names = list(KERNELS) if names is None else list(names)
    ctx_key = _context_key(drv)
    out = {}
    for name in names:
        if name not in KERNELS:
            raise KeyError(f"no kernel {name!r}; available: {', '.join(KERNELS)}")
        f = _functions.get((ctx_key, name))
        if f is None:
            src, fmt, _ = KERNELS[name]
            f = get_module(src).get_function(name)
            f.prepare(fmt)
            _functions[(ctx_key, name)] = f
        out[name] = f
    return out


def forget_context(ctx_handle: Optional[int] = None) -> None:
    """Drop the cached modules of a context (default: the current one) before it is
    destroyed, so that a later context at the same address cannot reuse them."""
    if ctx_handle is None:
        drv, _ = import_pycuda()
        ctx_handle = _context_key(drv)
    with _lock:
        for k in [k for k in _modules if k[0] == ctx_handle]:
            del _modules[k]
        for k in [k for k in _functions if k[0] == ctx_handle]:
            del _functions[k]
