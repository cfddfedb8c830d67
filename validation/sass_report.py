#!/usr/bin/env python3
"""Static machine-code report of the kernels (no GPU needed).

    python3 validation/sass_report.py [--arch 90] [--out FILE.json] [--defines K=V ...]

Compiles every kernel of kernels/*.cu with the package's nvcc options
(pyproc.kernels.compile_options) plus a set of probe kernels that run exactly one
piece of a synapse (one Philox call, one geometric skip, one weight, one delay, one
whole bernoulli draw, one whole fixed-number synapse), disassembles them with
cuobjdump and prints, per function: SASS instructions, registers, the loops
(backward branches) with their instruction counts, and the expensive operations
(double divisions, i.e. MUFU.RCP64H sequences; calls into slow-path subroutines;
FP64 arithmetic; global loads).

These are static counts: they include rarely taken branches and say nothing about
latency or occupancy.  They measure what a change does to the instruction stream on
a machine without a GPU; speed is measured on a GPU (validation/bench_gpu.py).

cuobjdump and nvdisasm (which ``cuobjdump -sass`` runs) ship with the CUDA toolkit;
where the toolkit has no binary utilities, ``pip install nvidia-cuda-cuobjdump
nvidia-cuda-nvdisasm`` provides them (found automatically).
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from pyproc.kernels import compile_options  # noqa: E402

PROBES = r'''
#include "network.cuh"
/* One piece of a synapse per kernel; inputs from memory so nothing folds away. */
extern "C" __global__ void probe_philox(const pp_proj *pj, uint32_t seed, uint4 *out) {
    pp_u32x4 r = pp_philox4x32_10(threadIdx.x, blockIdx.x, 7u, PP_TAG_BERNOULLI, seed, pj->stream);
    out[threadIdx.x] = make_uint4(r.v[0], r.v[1], r.v[2], r.v[3]);
}
extern "C" __global__ void probe_skip(const pp_proj *pj, const int32_t *tab, uint32_t *io) {
    io[threadIdx.x] = pp_geometric_skip(io[threadIdx.x], pj->gmul, pj->gshift, pj->seg_width, tab);
}
extern "C" __global__ void probe_weight(const pp_proj *pj, const int32_t *tab, int32_t *io) {
    io[threadIdx.x] = pp_weight_fixed(pj, (uint32_t)io[threadIdx.x], tab);
}
extern "C" __global__ void probe_delay(const pp_proj *pj, const int32_t *tab, int32_t *io) {
    io[threadIdx.x] = pp_delay_steps(pj, (uint32_t)io[threadIdx.x], tab);
}
extern "C" __global__ void probe_bernoulli_synapse(const pp_proj *pj, uint32_t seed,
                                                   const int32_t *tab, int4 *io) {
    /* one draw that makes its Philox call (reuse 0: the persistent kernel's walk) */
    pp_u32x4 r;
    uint32_t ww, wd;
    int4 x = io[threadIdx.x];
    int32_t pos = pp_bernoulli_draw(pj, seed, (uint32_t)x.x, (uint32_t)x.y, (uint32_t)x.z,
                                    x.w, &r, &ww, &wd, tab, 0);
    io[threadIdx.x] = make_int4(pos, pp_weight_fixed(pj, ww, tab), pp_delay_steps(pj, wd, tab), 0);
}
extern "C" __global__ void probe_bernoulli_pair(const pp_proj *pj, uint32_t seed,
                                                const int32_t *tab, int4 *io) {
    /* two consecutive draws of a walk sharing one Philox call where W <= 2 (reuse 1: the
       per-step kernel's walk) */
    pp_u32x4 r;
    uint32_t ww, wd, ww2, wd2;
    int4 x = io[threadIdx.x];
    int32_t pos = pp_bernoulli_draw(pj, seed, (uint32_t)x.x, (uint32_t)x.y, 2u * (uint32_t)x.z,
                                    x.w, &r, &ww, &wd, tab, 1);
    int32_t pos2 = pp_bernoulli_draw(pj, seed, (uint32_t)x.x, (uint32_t)x.y,
                                     2u * (uint32_t)x.z + 1u, pos, &r, &ww2, &wd2, tab, 1);
    io[threadIdx.x] = make_int4(pos2, pp_weight_fixed(pj, ww, tab) + pp_weight_fixed(pj, ww2, tab),
                                pp_delay_steps(pj, wd, tab) + pp_delay_steps(pj, wd2, tab), 0);
}
extern "C" __global__ void probe_fixed_synapse(const pp_proj *pj, uint32_t seed,
                                               const int32_t *tab, int4 *io) {
    pp_u32x4 r;
    int4 x = io[threadIdx.x];
    uint32_t t = pp_fixed_draw(pj, seed, (uint32_t)x.x, (uint32_t)x.y, &r);
    io[threadIdx.x] = make_int4((int)t, pp_weight_fixed(pj, r.v[1], tab),
                                pp_delay_steps(pj, r.v[2], tab), 0);
}
'''


def find_tool(name):
    """A CUDA binary utility: on PATH, in $CUDA_HOME/bin, or from its pip wheel
    (nvidia-cuda-NAME); exits with what to install where there is none."""
    exe = shutil.which(name)
    if exe:
        return exe
    cands = [os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", name)]
    try:
        import nvidia  # namespace package of the pip CUDA wheels
        for base in nvidia.__path__:
            cands += glob.glob(os.path.join(base, "*", "bin", name))
    except ImportError:
        pass
    for c in cands:
        if os.path.isfile(c):
            if not os.access(c, os.X_OK):
                os.chmod(c, 0o755)
            return c
    sys.exit(f"{name} not found: install the CUDA toolkit's binary utilities or "
             f"`pip install nvidia-cuda-{name}` (cuobjdump -sass needs nvdisasm too)")


def find_cuobjdump():
    """cuobjdump, with nvdisasm (which its -sass runs) put on PATH beside it."""
    exe = find_tool("cuobjdump")
    nvdisasm = find_tool("nvdisasm")
    os.environ["PATH"] = os.path.dirname(nvdisasm) + os.pathsep + os.environ.get("PATH", "")
    return exe


INS_RE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")


def opcode(text):
    t = re.sub(r"^@!?U?P[T\d]+\s+", "", text)
    return t.split()[0].split(".")[0] if t else ""


def analyse(sass: str):
    funcs = {}
    for part in re.split(r"\n\s*Function : ", sass)[1:]:
        name = part.split("\n", 1)[0].strip()
        ins = [(int(a, 16), t) for a, t in INS_RE.findall(part)]
        ops = collections.Counter(opcode(t) for _, t in ins)
        loops = []
        for a, t in ins:
            if opcode(t) == "BRA":
                m = re.search(r"0x([0-9a-f]+)", t)
                if m and int(m.group(1), 16) <= a:
                    lo = int(m.group(1), 16)
                    loops.append({"from": hex(lo), "to": hex(a),
                                  "instructions": sum(1 for x, _ in ins if lo <= x <= a)})
        fp64 = sum(v for k, v in ops.items() if k in ("DADD", "DMUL", "DFMA", "DSETP"))
        funcs[name] = {
            "instructions": len(ins),
            "double_divisions": sum(1 for _, t in ins if "MUFU.RCP64H" in t),
            "calls": ops.get("CALL", 0),
            "fp64": fp64,
            "global_loads": ops.get("LDG", 0),
            "loops": loops,
        }
    return funcs


def compile_cubin(src_path, arch, defines, out_dir):
    cubin = os.path.join(out_dir, os.path.basename(src_path) + ".cubin")
    cmd = (["nvcc", "-cubin", f"-arch=sm_{arch}", "-I", os.path.join(ROOT, "kernels"),
            "-Xptxas", "-v", "-o", cubin, src_path] + compile_options(defines))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"nvcc failed on {src_path}:\n{res.stderr}")
    regs = {}
    cur = None
    for line in res.stderr.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            cur = m.group(1)
        m = re.search(r"Used (\d+) registers", line)
        if m and cur:
            regs[cur] = int(m.group(1))
    return cubin, regs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="90")
    ap.add_argument("--out", help="write the report as JSON")
    ap.add_argument("--defines", nargs="*", default=[], metavar="K=V")
    ap.add_argument("--only", help="report functions whose name contains this")
    args = ap.parse_args(argv)
    if not shutil.which("nvcc"):
        sys.exit("nvcc not found")
    cuobjdump = find_cuobjdump()
    defines = dict(d.split("=", 1) for d in args.defines)
    report = {"arch": f"sm_{args.arch}", "options": compile_options(defines), "functions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(tmp, "probes.cu")
        with open(probe, "w") as f:
            f.write(PROBES)
        for src in sorted(glob.glob(os.path.join(ROOT, "kernels", "*.cu"))) + [probe]:
            cubin, regs = compile_cubin(src, args.arch, defines, tmp)
            r = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"cuobjdump -sass {os.path.basename(src)} failed: "
                         f"{(r.stderr or r.stdout).strip()}")
            sass = r.stdout
            for name, info in analyse(sass).items():
                info["registers"] = regs.get(name)
                info["source"] = os.path.basename(src) if src != probe else "(probe)"
                report["functions"][name] = info
    print(f"{'function':44s} {'regs':>4s} {'instr':>6s} {'fp64':>5s} {'ddiv':>4s} "
          f"{'ldg':>4s}  loops (instructions)")
    for name, i in report["functions"].items():
        if args.only and args.only not in name:
            continue
        loops = " ".join(str(lp["instructions"]) for lp in i["loops"])
        print(f"{name:44s} {i['registers'] or 0:4d} {i['instructions']:6d} {i['fp64']:5d} "
              f"{i['double_divisions']:4d} {i['global_loads']:4d}  {loops}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
