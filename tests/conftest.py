"""Shared fixtures: the gcc-built shim of the kernel headers, markers."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def _gpu_skip_reason():
    try:
        import pycuda.driver as drv  # noqa: F401
    except Exception as e:  # ImportError or a driver load failure
        return f"PyCUDA not importable ({type(e).__name__}: {e}); pip install pyproc[cuda]"
    try:
        drv.init()
        if drv.Device.count() == 0:
            return "no CUDA device"
    except Exception as e:
        return f"CUDA driver unavailable ({e})"
    return None


def pytest_collection_modifyitems(config, items):
    gpu_reason = None
    checked = False
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(pytest.mark.skip(reason="slow test: use --runslow"))
        if "gpu" in item.keywords:
            if not checked:
                gpu_reason, checked = _gpu_skip_reason(), True
            if gpu_reason:
                item.add_marker(pytest.mark.skip(reason=gpu_reason))
        if "nvcc" in item.keywords and shutil.which("nvcc") is None:
            item.add_marker(pytest.mark.skip(reason="nvcc not on PATH"))


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    """The kernel headers compiled by gcc into a shared library (ctypes)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (gcc) to build the header shim")
    out = str(tmp_path_factory.mktemp("shim") / "shim.so")
    cmd = [cc, "-O2", "-std=c99", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", "-shared",
           "-fPIC", "-I", os.path.join(ROOT, "kernels"),
           os.path.join(ROOT, "tests", "csrc", "shim.c"), "-o", out, "-lm"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(out)
    for name in ("shim_sizeof_proj", "shim_sizeof_pop", "shim_offsetof_proj", "shim_offsetof_pop",
                 "shim_tables_len", "shim_ltab_offset"):
        getattr(lib, name).restype = ctypes.c_size_t
    lib.shim_row.restype = ctypes.c_int64
    return lib


@pytest.fixture(scope="session")
def tables():
    """The sampler tables every header sampler receives (pyproc.sampling.sampler_tables)."""
    from pyproc.sampling import sampler_tables
    return np.ascontiguousarray(sampler_tables())


def ptr(a: np.ndarray):
    """ctypes pointer to a contiguous array."""
    assert a.flags["C_CONTIGUOUS"]
    return a.ctypes.data_as(ctypes.c_void_p)
