"""Every kernels/*.cu compiles alone with nvcc for sm_80 and sm_90, warnings as
errors, with the options the backend uses, and without register spills (the
propagation kernels' __launch_bounds__(256, 4) caps them at 64 registers); and
the argument formats of pyproc.kernels.KERNELS (PyCUDA's prepare()) and
COOPERATIVE_KERNELS (ctypes) match the kernel signatures."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyproc import kernels

CU = sorted(f for f in kernels.sources() if f.endswith(".cu"))


ARCHS = ["sm_80", "sm_90"]


@pytest.fixture(scope="module")
def nvcc_results(tmp_path_factory):
    """All (file, arch) compilations, run concurrently (nvcc is single-threaded)."""
    out = tmp_path_factory.mktemp("cubin")

    def build(job):
        name, arch = job
        cmd = [shutil.which("nvcc"), "-cubin", f"-arch={arch}", "-Werror", "all-warnings",
               "-Xptxas", "-v",
               *kernels.compile_options(), "-I", kernels.kernel_dir(),
               os.path.join(kernels.kernel_dir(), name), "-o", str(out / f"{name}.{arch}.cubin")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        return job, (r.returncode, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}")

    jobs = [(n, a) for n in CU for a in ARCHS]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        return dict(ex.map(build, jobs))


@pytest.mark.nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", CU)
def test_compiles(name, arch, nvcc_results):
    rc, log = nvcc_results[(name, arch)]
    assert rc == 0, log


@pytest.mark.nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", CU)
def test_no_register_spills(name, arch, nvcc_results):
    """ptxas -v: no kernel spills (a spill in the propagation loop costs more than the
    occupancy that __launch_bounds__ buys); the bounded kernels stay <= 64 registers."""
    rc, log = nvcc_results[(name, arch)]
    assert rc == 0, log
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    assert spills and all(a == "0" and b == "0" for a, b in spills), log
    src = kernels.read_source(name)
    for kname in re.findall(r'__launch_bounds__\(256, 4\)\s+(pp_\w+)', src):
        m = re.search(r"Compiling entry function '" + kname + r"'.*?Used (\d+) registers", log,
                      re.S)
        assert m and int(m.group(1)) <= 64, (kname, log)


def _signature(src: str, name: str):
    m = re.search(r'extern "C" __global__ void(?:\s+__launch_bounds__\([^)]*\))?\s+'
                  + name + r'\s*\(([^)]*)\)', src)
    assert m, f"kernel {name} not found"
    return [a.strip() for a in m.group(1).split(",")]


def _fmt(arg: str) -> str:
    if "*" in arg:
        return "P"
    t = arg.rsplit(" ", 1)[0].replace("const", "").strip()
    return {"uint32_t": "I", "unsigned int": "I", "unsigned long long": "Q", "int32_t": "i",
            "int": "i"}[t]


ALL_KERNELS = {**kernels.KERNELS, **kernels.COOPERATIVE_KERNELS}


@pytest.mark.parametrize("name", sorted(ALL_KERNELS))
def test_prepare_format_matches_signature(name):
    """The formats (PyCUDA prepare() for KERNELS, the ctypes kernelParams of
    CooperativeKernel.pack for COOPERATIVE_KERNELS) match the .cu signatures."""
    src_file, fmt, doc = ALL_KERNELS[name]
    args = _signature(kernels.read_source(src_file), name)
    assert "".join(_fmt(a) for a in args) == fmt
    assert len(doc) == len(args)
    for a, d in zip(args, doc):    # documented names in the same order
        assert a.split()[-1].lstrip("*") == d.split(":")[0], (a, d)


def test_every_kernel_has_comment_block():
    for f in CU:
        src = kernels.read_source(f)
        for name in re.findall(r'extern "C" __global__ void(?:\s+__launch_bounds__\([^)]*\))?'
                               r'\s+(pp_\w+)', src):
            block = src[:src.index(name + "(") if name + "(" in src else src.index(name)]
            head = block[block.rfind("/*"):]
            for key in ("Launch shape", "Thread map", "RNG counters", "Writes", "CPU twin"):
                assert key in head, f"{f}: {name} comment block lacks {key!r}"
            assert name in ALL_KERNELS, f"{name} missing from pyproc.kernels.KERNELS"


@pytest.mark.nvcc
@pytest.mark.parametrize("define", ["PP_SHARED_TABLES=1,PP_PERSISTENT_TILES=0",
                                    "PP_UNIT_MAP=1",
                                    "PP_UNIT_MAP=1,PP_SHARED_TABLES=1,PP_PERSISTENT_MIN_BLOCKS=2,"
                                    "PP_PERSISTENT_TILES=0",
                                    "PP_PROFILE_TIMING=1", "PP_PROFILE_TIMING=1,PP_UNIT_MAP=1",
                                    "PP_PROFILE_SKIP=3"])
def test_persistent_variants_compile(define, tmp_path):
    """The builds pyproc compiles on request (shared tables, unit map, profiling) compile
    too, warnings as errors (they may spill: they are opt-in or for profiling)."""
    cmd = [shutil.which("nvcc"), "-cubin", "-arch=sm_90", "-Werror", "all-warnings",
           *kernels.compile_options(dict(d.split("=") for d in define.split(","))),
           "-I", kernels.kernel_dir(), os.path.join(kernels.kernel_dir(), "step_persistent.cu"),
           "-o", str(tmp_path / "v.cubin")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _persistent_build(defines, arch, path):
    """ptxas -v of step_persistent.cu built with ``defines``: {kernel: (registers, spill
    store bytes, spill load bytes, static shared bytes)}, warnings as errors."""
    cmd = [shutil.which("nvcc"), "-cubin", f"-arch=sm_{arch}", "-Xptxas", "-v",
           "-Werror", "all-warnings", *kernels.compile_options(defines), "-I",
           kernels.kernel_dir(), os.path.join(kernels.kernel_dir(), "step_persistent.cu"),
           "-o", str(path)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = {}
    for name in ("pp_step_persistent_procedural", "pp_step_persistent_stored"):
        info = r.stderr.split(f"Compiling entry function '{name}'")[1]
        info = info.split("Compiling entry function")[0]
        st, ld = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info).groups()
        out[name] = (int(re.search(r"Used (\d+) registers", info).group(1)), int(st), int(ld),
                     int(re.search(r"(\d+) bytes smem", info).group(1)))
    return out


@pytest.mark.nvcc
@pytest.mark.parametrize("arch", ["80", "90"])
@pytest.mark.parametrize("build", ["shared_tables", "unit_map", "shared_tables+unit_map",
                                   "throughput", "one_block"])
def test_opt_in_builds_fit_their_blocks_without_spills(build, arch, tmp_path):
    """Every opt-in build the backend compiles (pyproc.backends.cuda.persistent_build) fits
    the blocks per SM of its launch bounds without a spill, both kernels: 3 blocks of 256
    (<= 80 registers: 85 rounded down to the allocation unit of 8) for the shared-tables
    and the unit-map builds (before the integer samplers the first needed 2 and the second
    spilled 8 bytes for sm_90), 2 (<= 128) for both together, 4 (<= 64) for the throughput
    build; the unit map's 17 KiB of item scratch is static shared memory.  The one-block
    build: one block of 512 threads (<= 128 registers), and no static per-neuron arrays
    (its neuron phase is not resident: the block's shared memory is the ring's)."""
    from pyproc.backends.cuda import ONE_BLOCK_THREADS, persistent_build
    defines = persistent_build("shared" in build, "unit" in build, "throughput" in build,
                               build == "one_block")
    blocks = int(defines.get("PP_PERSISTENT_MIN_BLOCKS", 3))
    threads = ONE_BLOCK_THREADS if build == "one_block" else 256
    budget = min(255, 65536 // (blocks * threads) // 8 * 8)
    assert budget == {"shared_tables+unit_map": 128, "throughput": 64,
                      "one_block": 128}.get(build, 80)
    for name, (regs, st, ld, smem) in _persistent_build(defines, arch,
                                                         tmp_path / "b.cubin").items():
        assert regs <= budget and st == ld == 0, (name, regs, st, ld)
        if "unit" in build:
            assert smem >= 4 * 4 * 1024 + 1024, (name, smem)
        if build == "one_block":
            assert smem < 1024, (name, smem)
