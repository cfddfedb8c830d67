"""The persistent step kernels' CUDA source, run on the CPU by the SIMT emulator
(tests/csrc/simt/simt.h), behind the fake driver of tests/fake_pycuda.py.

``simt_fake`` (fixture): the fake pycuda with device buffers in real host memory, whose
``get_cooperative_kernel`` compiles kernels/step_persistent.cu with g++ and the emulator
(the build's -D macros included) and runs the real kernel code, every CUDA thread a
fiber, every block an OS thread.  So the persistent kernels' own code -- resident neuron
phase, work split, unit map, shared tables, pipelining, barriers, warp-uniform calls --
is checked against the CPU reference without a GPU.  What it cannot check: timing,
occupancy, and memory-ordering effects of real hardware (fibers switch only at barriers
and warp operations)."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from pyproc import kernels as K

from fake_pycuda import Alloc, FakeCooperative, Mem, _FakeCoopKernel, fake  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# scheduling order of a block's fibers (simt_runtime.h pp_simt_set_order): (mode, seed)
ORDER = [0, 1]
SIMT_DIR = os.path.join(ROOT, "tests", "csrc", "simt")
_LIBS = {}


class RealMem(Mem):
    """Fake device memory whose addresses are the host addresses of its buffers."""

    def alloc(self, n):
        if n <= 0:
            raise AssertionError("cuMemAlloc(0)")
        raw = np.zeros(n + 64, np.uint8)
        off = (-raw.ctypes.data) % 64
        buf = raw[off:off + n]              # a view: keeps raw alive as long as it is held
        base = buf.ctypes.data
        self.blocks[base] = buf
        self.live += n
        return Alloc(self, base)


def build(source: str, defines=None) -> ctypes.CDLL:
    """kernels/<source> + the emulator as a shared library (cached per source and macros)."""
    defines = dict(defines or {})
    key = (source, tuple(sorted(defines.items())))
    if key in _LIBS:
        return _LIBS[key]
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++) for the SIMT emulator")
    names = [n for n, v in {**K.KERNELS, **K.COOPERATIVE_KERNELS}.items() if v[0] == source]
    tu = ('#include "simt.h"\n'
          f'#include "{source}"\n'
          f'#define PP_SIMT_KERNELS {" ".join(f"X({n})" for n in names)}\n'
          '#include "simt_runtime.h"\n')
    tag = hashlib.sha1(repr(key).encode()).hexdigest()[:12]
    d = tempfile.mkdtemp(prefix=f"pp_simt_{tag}_")
    cpp, so = os.path.join(d, "tu.cpp"), os.path.join(d, "simt.so")
    with open(cpp, "w") as f:
        f.write(tu)
    # -fno-gnu-unique: the block-scope __shared__ variables (static thread_local) of
    # inline and template functions would otherwise be STB_GNU_UNIQUE symbols, which the
    # dynamic linker binds process-wide even between RTLD_LOCAL libraries -- a second build
    # of the same source (other macros, e.g. another block size) would use the first one's
    # arrays
    cmd = [cxx, "-std=c++20", "-O1", "-ffp-contract=off", "-fPIC", "-shared", "-pthread",
           "-fno-gnu-unique", "-w", "-I", SIMT_DIR, "-I", K.kernel_dir(),
           *[f"-D{k}={v}" for k, v in sorted(defines.items())], cpp, "-o", so]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise AssertionError("SIMT build failed:\n" + r.stderr[-4000:])
    lib = ctypes.CDLL(so)
    lib.pp_simt_set_order.argtypes = [ctypes.c_int, ctypes.c_uint]
    lib.pp_simt_launch.restype = ctypes.c_char_p
    lib.pp_simt_launch.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64),
                                   ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                   ctypes.c_ulonglong]
    _LIBS[key] = lib
    return lib


class SimtCoopKernel(_FakeCoopKernel):
    """A cooperative kernel whose launch runs the real kernel source in the emulator."""

    def __init__(self, owner, name, defines):
        super().__init__(owner, name, defines)
        src = K.COOPERATIVE_KERNELS[name][0]
        self.lib = build(src, defines)

    def launch_packed(self, grid, block, stream_handle, packed, shared=0):
        drv = self.owner.drv
        assert drv.stack, "launch without a current context"
        params, vals = packed
        assert len(vals) == len(self.fmt)
        a = [ctypes.cast(params[i], ctypes.POINTER(type(v))).contents.value
             for i, v in enumerate(vals)]
        self.owner.launches += 1
        argv = (ctypes.c_uint64 * len(a))(*[int(x) & 0xFFFFFFFFFFFFFFFF for x in a])
        self.lib.pp_simt_set_order(*ORDER)
        err = self.lib.pp_simt_launch(self.name.encode(), argv, len(a), grid, block, shared)
        if err:
            raise AssertionError(f"{self.name} (SIMT emulator): {err.decode()}")


class SimtCooperative(FakeCooperative):
    def __call__(self, name, defines=None):
        assert name in K.COOPERATIVE_KERNELS
        self.defines.append(defines)
        return SimtCoopKernel(self, name, defines)


def _simt_run_kernel(name, grid, block, a, shared, defines=None):
    """A per-step launch (graph loop, CSR build) through the emulator (``defines``: the
    -D macros of a variant build)."""
    lib = build(K.KERNELS[name][0], defines)
    argv = (ctypes.c_uint64 * len(a))(*[int(x) & 0xFFFFFFFFFFFFFFFF for x in a])
    lib.pp_simt_set_order(*ORDER)
    err = lib.pp_simt_launch(name.encode(), argv, len(a), int(grid[0]), int(block[0]),
                             int(shared))
    if err:
        raise AssertionError(f"{name} (SIMT emulator): {err.decode()}")


@pytest.fixture
def simt_order():
    """Set the fibers' scheduling order for one test: simt_order(mode, seed)."""
    def set_order(mode, seed=1):
        ORDER[:] = [mode, seed]
    yield set_order
    ORDER[:] = [0, 1]


@pytest.fixture
def simt_fake(fake, monkeypatch):
    """The fake driver with real host memory and every kernel -- per-step and
    persistent -- run from its CUDA source by the SIMT emulator."""
    from pyproc.backends import cuda as CU
    fake.mem = RealMem()
    fake.emu.mem = fake.mem
    fake.coop = SimtCooperative(fake)
    fake.run_kernel = _simt_run_kernel
    monkeypatch.setattr(CU, "get_cooperative_kernel", fake.coop)
    return fake
