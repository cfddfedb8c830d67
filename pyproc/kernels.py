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
    from pyproc.connectivity import ring_after
    from pyproc.models import balanced
    from pyproc.plan import device_tables

    drv.init()
    ctx = drv.Device(0).make_context()
    try:
        cnet = pyproc.compile_network(balanced(2000))
        tab = device_tables(cnet)   # host tables: projs, pops, rowlen, sampler_tables, ...
        gpu = {k: drv.to_device(v if v.size else np.zeros(1, v.dtype))  # no 0-byte allocs
               for k, v in tab.items() if isinstance(v, np.ndarray)}
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
        n_gpu = drv.from_device_like(gpu["ctrl"], ctrl)["n_events"][0]
        ring_twin, n_twin = ring_after(cnet, spikes)      # the NumPy twin
        print("synapses delivered:", n_gpu, "ring equal to the twin's:",
              np.array_equal(ring_host, ring_twin) and n_gpu == n_twin)
        del gpu, k
    finally:
        kernels.forget_context()   # drop the modules compiled in this context
        ctx.pop()
        ctx.detach()

``ring_host`` then equals the CPU twin's ring after the same two spikes
(:func:`pyproc.connectivity.ring_after`; layout [slot][channel][neuron] per
population, ``pp_ring_index``), and the example prints True.
``sampler_tables`` is :func:`pyproc.sampling.sampler_tables` (the normal
quantile and log tables the truncated-normal and geometric samplers
interpolate, ``PP_TABLES_LEN`` int32 as (knot, step) intervals); every kernel
that samples receives it.

Compilation: ``SourceModule(src, no_extern_c=True, include_dirs=[kernel_dir()],
options=["-fmad=false", "-O3", ...], arch="sm_XY")``; no fast math, no
multiply-add contraction, so the kernels' doubles and floats equal the NumPy
twin's bit for bit.
"""
from __future__ import annotations

import ctypes
import os
import threading
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from .errors import BackendUnavailable

__all__ = ["kernel_dir", "sources", "read_source", "KERNELS", "COOPERATIVE_KERNELS",
           "CTRL_DTYPE", "ERROR_CODES", "compile_options", "get_kernels", "get_module",
           "get_cooperative_kernel", "CooperativeKernel", "CooperativeUnavailable",
           "import_pycuda", "forget_context", "PYCUDA_MISSING"]


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
    ("err_code", "u4"), ("err_info", "u4"), ("err_aux", "i4"), ("n_spk_odd", "u4"),
])
assert CTRL_DTYPE.itemsize == 64

# PP_ERR_* of step.cuh -> (kernel that raises it, what it means)
ERROR_CODES = {
    1: ("pp_neuron_lif_update", "fixed-point input of a step exceeds int32"),
    2: ("pp_neuron_lif_update", "spike list full"),
    3: ("pp_propagate_*/pp_build_csr_*", "unknown connection rule id"),
    4: ("pp_propagate_*", "delay-ring index out of range"),
    5: ("pp_record_advance/pp_step_persistent_*", "record chunk ran past its step capacity"),
    6: ("pp_build_csr_fill", "a CSR row does not fit its slice"),
}

# kernel name -> (source file, PyCUDA prepare() format, argument list).
# Format characters are Python struct's: P device pointer (DeviceAllocation or
# int), I uint32, Q uint64.  Table arrays are the CompiledNetwork's
# (POP_DTYPE / PROJ_DTYPE bytes); see pyproc.backends.cuda.device_tables.
# sampler_tables is pyproc.sampling.sampler_tables() (int32[PP_TABLES_LEN], 8-byte aligned:
# intervals (knot, next knot - knot) of the normal quantile at PP_ZTAB_OFFSET = 0, of log2
# at PP_LTAB_OFFSET = 8192, of the quantile's lower tail at PP_TTAB_OFFSET = 12288).
KERNELS: Dict[str, Tuple[str, str, Tuple[str, ...]]] = {
    "pp_neuron_lif_update": ("neuron_lif.cu", "PPPPIPPPPPPIPIP", (
        "pops: pp_pop[n_pops]", "blocks: uint32 (population, first local)[n_blocks]",
        "pop_flags: uint32[n_pops] (bit 0: record)",
        "poisson_tables: uint32[] (Poisson thresholds and spike-array tables)", "seed: uint32",
        "V: float32[N]", "Iex: float32[N]", "Iin: float32[N]", "ref: int32[N]",
        "ring: int32[ring_size]", "spikes: uint32 (population, local)[spike_cap]",
        "spike_cap: uint32", "rec_ids: uint32[rec_cap]", "rec_cap: uint32",
        "ctrl: pp_ctrl (CTRL_DTYPE)")),
    "pp_propagate_procedural_spikes": ("propagate_procedural.cu", "PPPPPPIPIPQP", (
        "projs: pp_proj[n_projs]", "pops: pp_pop[n_pops]", "rowlen: uint32[]",
        "sampler_tables: int32[PP_TABLES_LEN]", "out_ptr: uint32[n_pops + 1]", "out_idx: uint32[n_projs]", "max_out: uint32",
        "spikes: uint32 (population, local)[ctrl.n_spk]", "seed: uint32",
        "ring: int32[ring_size]", "ring_size: uint64", "ctrl: pp_ctrl")),
    "pp_propagate_procedural_tiles": ("propagate_procedural.cu", "PPPPIPIPQP", (
        "projs: pp_proj[n_projs]", "pops: pp_pop[n_pops]",
        "sampler_tables: int32[PP_TABLES_LEN]",
        "tiles: uint32 (projection, tile)[n_tiles]", "n_tiles: uint32",
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
    "pp_record_state": ("record.cu", "PPIP", (
        "src: float32[N] (V relative to E_L, Iex or Iin)", "idx: uint32[n] (global ids)",
        "n: uint32", "out: float32[n] (out[i] = src[idx[i]])")),
    "pp_build_csr_count": ("build_stored.cu", "PIPPPIPP", (
        "projs: pp_proj[n_projs]", "n_projs: uint32", "row_base: uint64[n_projs + 1]",
        "rowlen: uint32[]", "sampler_tables: int32[PP_TABLES_LEN]", "seed: uint32", "indptr: int64[rows + 1] (out: counts at r + 1)",
        "ctrl: pp_ctrl")),
    "pp_build_csr_fill": ("build_stored.cu", "PIPPPIPQPPPP", (
        "projs: pp_proj[n_projs]", "n_projs: uint32", "row_base: uint64[n_projs + 1]",
        "rowlen: uint32[]", "sampler_tables: int32[PP_TABLES_LEN]", "seed: uint32", "indptr: int64[rows + 1]", "n_syn_cap: uint64",
        "targets: uint32[n_syn_cap]", "weights: int32[n_syn_cap]", "delays: uint16[n_syn_cap]",
        "ctrl: pp_ctrl")),
}

_NEURON_FMT = KERNELS["pp_neuron_lif_update"][1]
_NEURON_ARGS = KERNELS["pp_neuron_lif_update"][2]
_CLOSE_ARGS = ("n_blocks: uint32 (entries of the block table)",
               "rec_end: uint32[rec_chunk_steps]", "rec_chunk_steps: uint32")

# Kernels that need a cooperative launch (grid-wide barriers): launched through the
# driver API (ctypes), see CooperativeKernel.  Same format characters as KERNELS.
COOPERATIVE_KERNELS: Dict[str, Tuple[str, str, Tuple[str, ...]]] = {
    "pp_step_persistent_procedural": ("step_persistent.cu",
                                      _NEURON_FMT + "IPI" + "PPPPPI" + "PPIPII" + "IIIII" + "QI", (
        _NEURON_ARGS + _CLOSE_ARGS + (
            "projs: pp_proj[n_projs]", "rowlen: uint32[]",
            "sampler_tables: int32[PP_TABLES_LEN]", "out_ptr: uint32[n_pops + 1]",
            "out_idx: uint32[n_projs]", "max_out: uint32",
            "gen_out_ptr: uint32[n_pops + 1] (without tiled projections)",
            "gen_out_idx: uint32[]", "gen_max_out: uint32",
            "tiles: uint32 (projection, tile)[n_tiles]", "n_tiles: uint32",
            "tile_min_spikes: uint32 (tiles in steps with at least this many spikes)",
            "n_pops: uint32", "n_projs: uint32",
            "smem_tables: uint32 (bit 0 network tables, bit 1 sampler tables in shared memory)",
            "tile_bytes: uint32 (tile accumulator at the start of dynamic shared memory)",
            "pipelined: uint32 (1: one barrier per step; every delay >= 2 steps, spike list "
            "of 2 x spike_cap)",
            "ring_size: uint64", "n_steps: uint32"))),
    "pp_step_persistent_stored": ("step_persistent.cu",
                                  _NEURON_FMT + "IPI" + "PPPI" + "PPPPP" + "IIII" + "QI", (
        _NEURON_ARGS + _CLOSE_ARGS + (
            "projs: pp_proj[n_projs]", "out_ptr: uint32[n_pops + 1]", "out_idx: uint32[n_projs]",
            "max_out: uint32", "row_base: uint64[n_projs + 1]", "indptr: int64[rows + 1]",
            "targets: uint32[nnz]", "weights: int32[nnz]", "delays: uint16[nnz]",
            "n_pops: uint32", "n_projs: uint32",
            "smem_tables: uint32 (bit 0: network tables in shared memory)",
            "pipelined: uint32 (as pp_step_persistent_procedural)",
            "ring_size: uint64", "n_steps: uint32"))),
}
for _name, (_src, _fmt, _args) in COOPERATIVE_KERNELS.items():
    assert len(_fmt) == len(_args), _name

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
_functions: Dict[Tuple[int, str, Tuple[str, ...]], object] = {}


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


def get_kernels(names: Optional[Iterable[str]] = None,
                defines: Optional[Dict[str, object]] = None) -> Dict[str, object]:
    """Prepared PyCUDA functions (``name -> Function``) of the current context.
    Call them with ``f.prepared_call(grid, block, *args)`` or
    ``f.prepared_async_call(grid, block, stream, *args)``, args as in
    :data:`KERNELS`.  ``defines``: -D macros of a variant build (e.g.
    ``{"PP_FLAT_WALK": 0}``, for A/B timings; same arguments), compiled and cached
    separately from the default build."""
    drv, _ = import_pycuda()
    names = list(KERNELS) if names is None else list(names)
    ctx_key = _context_key(drv)
    opts = tuple(compile_options(defines))
    out = {}
    for name in names:
        if name not in KERNELS:
            raise KeyError(f"no kernel {name!r}; available: {', '.join(KERNELS)}")
        f = _functions.get((ctx_key, name, opts))
        if f is None:
            src, fmt, _ = KERNELS[name]
            f = get_module(src, defines).get_function(name)
            f.prepare(fmt)
            _functions[(ctx_key, name, opts)] = f
        out[name] = f
    return out


def load_libcuda(unavailable: type):
    """The CUDA driver library through ctypes (the graph and cooperative-launch APIs that
    PyCUDA does not wrap), or ``unavailable(reason)`` raised."""
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        raise unavailable(f"libcuda.so.1 not loadable: {e}") from e


def cu_error_string(lib, rc: int) -> str:
    """``cuGetErrorString`` of a CUresult (``"CUresult N"`` where the driver has none)."""
    f = getattr(lib, "cuGetErrorString", None)
    if f is not None:
        f.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        f.restype = ctypes.c_int
        s = ctypes.c_char_p()
        if f(rc, ctypes.byref(s)) == 0 and s.value:
            return f"{s.value.decode(errors='replace')} (CUresult {rc})"
    return f"CUresult {rc}"


class CooperativeUnavailable(RuntimeError):
    """A cooperative launch is not possible here (no driver symbol, no support, or the
    grid does not fit the GPU at once); the caller falls back to per-step launches."""


class CooperativeKernel:
    """A kernel with grid-wide barriers, launched with ``cuLaunchCooperativeKernel``.

    PyCUDA has no cooperative launch, so the module is compiled by PyCUDA's nvcc driver
    (``pycuda.compiler.compile``, the options of :func:`compile_options`) and loaded and
    launched through the CUDA driver API on the current PyCUDA context (ctypes on
    libcuda.so.1).  ``max_blocks_per_sm(block, shared)`` is the occupancy the launch must
    not exceed times the SM count; ``launch(grid, block, stream_handle, *args, shared=0)``
    takes the arguments of :data:`COOPERATIVE_KERNELS`."""

    _FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1
    _FUNC_ATTRIBUTE_NUM_REGS = 4
    _CTYPES = {"P": ctypes.c_uint64, "Q": ctypes.c_uint64, "I": ctypes.c_uint32}

    def __init__(self, name: str, cubin: bytes, lib=None):
        if name not in COOPERATIVE_KERNELS:
            raise KeyError(f"no cooperative kernel {name!r}; available: "
                           f"{', '.join(COOPERATIVE_KERNELS)}")
        self.name = name
        self.fmt = COOPERATIVE_KERNELS[name][1]
        if lib is None:
            lib = load_libcuda(CooperativeUnavailable)
        vp, pvp = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
        try:
            load, getf = lib.cuModuleLoadData, lib.cuModuleGetFunction
            attr = lib.cuFuncGetAttribute
            occ = lib.cuOccupancyMaxActiveBlocksPerMultiprocessor
            self._launch = lib.cuLaunchCooperativeKernel
        except AttributeError as e:
            raise CooperativeUnavailable(f"libcuda.so.1 lacks {e}") from e
        load.argtypes, load.restype = [pvp, ctypes.c_char_p], ctypes.c_int
        getf.argtypes, getf.restype = [pvp, vp, ctypes.c_char_p], ctypes.c_int
        attr.argtypes, attr.restype = [ctypes.POINTER(ctypes.c_int), ctypes.c_int, vp], ctypes.c_int
        occ.argtypes = [ctypes.POINTER(ctypes.c_int), vp, ctypes.c_int, ctypes.c_size_t]
        occ.restype = ctypes.c_int
        u = ctypes.c_uint
        self._launch.argtypes = [vp, u, u, u, u, u, u, u, vp, pvp]
        self._launch.restype = ctypes.c_int
        self._occ = occ
        self._lib = lib
        self.module, self.function = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(load(ctypes.byref(self.module), cubin), "cuModuleLoadData")
        self._check(getf(ctypes.byref(self.function), self.module, name.encode()),
                    "cuModuleGetFunction")
        n = ctypes.c_int()
        self._check(attr(ctypes.byref(n), self._FUNC_ATTRIBUTE_NUM_REGS, self.function),
                    "cuFuncGetAttribute")
        self.num_regs = int(n.value)
        # static __shared__ bytes: with the dynamic ones they must fit a block's limit
        self._check(attr(ctypes.byref(n), self._FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
                         self.function), "cuFuncGetAttribute")
        self.static_shared = int(n.value)

    def global_address(self, name: str) -> Tuple[int, int]:
        """(device address, bytes) of a ``__device__`` variable of the module
        (cuModuleGetGlobal; profiling builds read their counters this way)."""
        getg = getattr(self._lib, "cuModuleGetGlobal_v2", None)
        if getg is None:
            raise CooperativeUnavailable("libcuda.so.1 lacks cuModuleGetGlobal_v2")
        getg.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_size_t),
                         ctypes.c_void_p, ctypes.c_char_p]
        getg.restype = ctypes.c_int
        ptr, size = ctypes.c_uint64(), ctypes.c_size_t()
        self._check(getg(ctypes.byref(ptr), ctypes.byref(size), self.module, name.encode()),
                    f"cuModuleGetGlobal({name})")
        return int(ptr.value), int(size.value)

    def _error(self, rc: int) -> str:
        return cu_error_string(self._lib, rc)

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise CooperativeUnavailable(f"{what} ({self.name}): {self._error(rc)}")

    def set_max_dynamic_shared(self, nbytes: int) -> None:
        """Allow ``nbytes`` of dynamic shared memory per block (needed where it and the
        kernel's static shared memory, ``static_shared``, exceed 48 KiB together):
        cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES).  Never lowers
        what an earlier call allowed: launches of this kernel with other arguments (with
        and without the tile accumulator) each ask for their own."""
        if int(nbytes) <= getattr(self, "max_dynamic_shared", 0):
            return
        f = getattr(self._lib, "cuFuncSetAttribute", None)
        if f is None:
            raise CooperativeUnavailable("libcuda.so.1 lacks cuFuncSetAttribute")
        f.argtypes, f.restype = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int], ctypes.c_int
        self._check(f(self.function, 8, int(nbytes)), "cuFuncSetAttribute(max dynamic shared)")
        self.max_dynamic_shared = int(nbytes)

    def max_blocks_per_sm(self, block: int, shared: int = 0) -> int:
        """Blocks of ``block`` threads (``shared`` bytes of dynamic shared memory) that
        fit one SM at once."""
        n = ctypes.c_int()
        self._check(self._occ(ctypes.byref(n), self.function, int(block), int(shared)),
                    "cuOccupancyMaxActiveBlocksPerMultiprocessor")
        return int(n.value)

    def pack(self, args) -> Tuple[object, list]:
        """The kernelParams array (and the values it points to) for ``args``."""
        if len(args) != len(self.fmt):
            raise TypeError(f"{self.name} takes {len(self.fmt)} arguments, got {len(args)}")
        vals = [self._CTYPES[c](int(a)) for c, a in zip(self.fmt, args)]
        params = (ctypes.c_void_p * len(vals))(*[ctypes.addressof(v) for v in vals])
        return params, vals

    def launch(self, grid: int, block: int, stream_handle: int, *args, shared: int = 0) -> None:
        """Enqueue on the stream; ``shared``: bytes of dynamic shared memory per block."""
        self.launch_packed(grid, block, stream_handle, self.pack(args), shared)

    def launch_packed(self, grid: int, block: int, stream_handle: int, packed,
                      shared: int = 0) -> None:
        """As :meth:`launch` with arguments packed once by :meth:`pack` (change a value
        through ``packed[1][i].value``): the driver copies the parameters at the launch,
        so the same array serves every launch."""
        params, _vals = packed                # _vals keeps the values alive over the call
        rc = self._launch(self.function, int(grid), 1, 1, int(block), 1, 1, int(shared),
                          ctypes.c_void_p(int(stream_handle) or None), params)
        self._check(rc, "cuLaunchCooperativeKernel")


_coop: Dict[Tuple[int, str, Tuple[str, ...]], CooperativeKernel] = {}


def get_cooperative_kernel(name: str, lib=None,
                           defines: Optional[Dict[str, object]] = None) -> CooperativeKernel:
    """The :class:`CooperativeKernel` ``name`` of the current context (compiled and
    loaded on first use, then cached like :func:`get_kernels`); ``defines``: extra
    -D macros (the opt-in builds and the profiling variants)."""
    drv, compiler = import_pycuda()
    if name not in COOPERATIVE_KERNELS:
        raise KeyError(f"no cooperative kernel {name!r}; available: "
                       f"{', '.join(COOPERATIVE_KERNELS)}")
    opts = compile_options(defines)
    key = (_context_key(drv), name, tuple(opts))
    with _lock:
        k = _coop.get(key)
        if k is None:
            major, minor = drv.Context.get_device().compute_capability()
            src = COOPERATIVE_KERNELS[name][0]
            try:
                cubin = compiler.compile(read_source(src), no_extern_c=True,
                                         include_dirs=[kernel_dir()], options=opts,
                                         arch=f"sm_{major}{minor}")
            except drv.CompileError as e:
                raise BackendUnavailable(f"nvcc failed to compile kernels/{src} for "
                                         f"sm_{major}{minor}: {e}") from e
            k = CooperativeKernel(name, cubin, lib)
            _coop[key] = k
    return k


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
        for k in [k for k in _coop if k[0] == ctx_handle]:
            del _coop[k]
