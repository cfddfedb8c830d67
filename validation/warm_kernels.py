#!/usr/bin/env python3
"""Compile every kernel build the GPU scripts use into PyCUDA's disk cache, in parallel.

    python3 validation/warm_kernels.py [--arch sm_90] [--jobs N] [--list]

A device session is short (15 minutes, the machine's start included), and a fresh
machine starts with an empty compiler cache: the opt-in builds of the persistent kernel
(shared tables, unit map, both, throughput, one block; `tune_builds` compiles them all), the A/B
and profiling variants would otherwise be compiled one after the other, each when a
stage first asks for it (~3-5 s of nvcc each, one CPU core).  This compiles them all at
once on the machine's cores, with exactly the calls pyproc.kernels makes (same source,
options, include directory and arch, hence the same cache entries), so the stages find
them compiled.  No GPU context is needed: the arch comes from the device's compute
capability (or --arch).  validation/gpu_flagships.sh runs it in the background while
the first test stage runs.  Prints one line per build and exits 0 even if a build fails
(the stage that needs it will report the compiler's error).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def builds():
    """(source, defines) of every build: each per-step source as shipped, the A/B builds
    of the walk and of the tiles' spike list, the persistent kernel's builds (pyproc.backends.cuda.persistent_build of every
    combination tune_builds times, the one-block build included) and its profiling
    variants (profile_persistent.py)."""
    from pyproc.backends.cuda import TUNE_BUILDS, persistent_build
    from pyproc.kernels import COOPERATIVE_KERNELS, KERNELS
    out = [(src, None) for src in dict.fromkeys(v[0] for v in KERNELS.values())]
    out.append(("propagate_procedural.cu", {"PP_FLAT_WALK": 0}))
    out.append(("propagate_procedural.cu", {"PP_TILE_COMPACT": 0}))
    seen = []                       # the same builds for every persistent source
    for sh, um, tp in TUNE_BUILDS:
        d = persistent_build(sh, um, tp)
        if d not in seen:
            seen.append(d)
    seen.append(persistent_build(False, False, False, one_block=True))
    for d in list(seen):
        if not d.get("PP_PERSISTENT_MIN_BLOCKS") and "PP_SHARED_TABLES" not in d:
            seen.append({**d, "PP_PROFILE_TIMING": 1})         # the default and unit-map
    seen += [{"PP_PROFILE_SKIP": s} for s in (1, 3)]
    for src in dict.fromkeys(v[0] for v in COOPERATIVE_KERNELS.values()):
        out += [(src, d or None) for d in seen]
    return out


def cache_dir() -> str:
    """PyCUDA's compiler cache, as pycuda.compiler.compile finds it."""
    env = os.environ.get("PYCUDA_CACHE_DIR")
    if env:
        return env
    import platformdirs
    return os.path.join(platformdirs.user_cache_dir("pycuda", "pycuda"), "compiler-cache-v1")


def _compile(job):
    """One build into a folder of its own, then its cache file renamed into PyCUDA's
    cache (an atomic rename: a process that reads the cache meanwhile -- the test stage
    running beside this -- sees no file or a whole one, never a file being written)."""
    src, defines, arch, cache = job
    import tempfile
    from pyproc.kernels import compile_options, kernel_dir, read_source
    import pycuda.compiler as compiler
    t0 = time.perf_counter()
    own = tempfile.mkdtemp(prefix=".warm-", dir=cache)
    try:
        compiler.compile(read_source(src), no_extern_c=True, include_dirs=[kernel_dir()],
                         options=compile_options(defines), arch=arch, cache_dir=own)
        for f in os.listdir(own):
            os.replace(os.path.join(own, f), os.path.join(cache, f))
        ok = "ok"
    except Exception as e:                       # noqa: BLE001 -- reported, not fatal
        ok = f"FAILED: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    finally:
        for f in os.listdir(own):
            os.unlink(os.path.join(own, f))
        os.rmdir(own)
    return f"{src} {defines or {}}: {ok} ({time.perf_counter() - t0:.1f} s)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", help="e.g. sm_90 (default: device 0's compute capability)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--list", action="store_true", help="print the builds and exit")
    a = ap.parse_args(argv)
    jobs = builds()
    if a.list:
        for src, d in jobs:
            print(src, d or {})
        return 0
    arch = a.arch
    ctx = None
    if arch is None:
        import multiprocessing

        import pycuda.driver as drv
        drv.init()
        arch = "sm_%d%d" % drv.Device(0).compute_capability()
        # the driver now has threads of its own: start the workers fresh, not by fork
        ctx = multiprocessing.get_context("spawn")
    if "PYCUDA_DISABLE_CACHE" in os.environ:
        print("PYCUDA_DISABLE_CACHE is set: nothing to warm")
        return 0
    cache = cache_dir()
    os.makedirs(cache, exist_ok=True)
    t0 = time.perf_counter()
    work = [(s, d, arch, cache) for s, d in jobs]
    if a.jobs <= 1:
        for line in map(_compile, work):
            print(line, flush=True)
    else:
        with ProcessPoolExecutor(max_workers=a.jobs, mp_context=ctx) as ex:
            for line in ex.map(_compile, work):
                print(line, flush=True)
    print(f"{len(jobs)} builds for {arch} in {time.perf_counter() - t0:.1f} s "
          f"({a.jobs} processes)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
