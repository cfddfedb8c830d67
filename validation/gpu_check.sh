#!/usr/bin/env bash
# GPU check of the CUDA backend (issue 3).  Run from anywhere on the GPU machine:
#
#     bash validation/gpu_check.sh OUTDIR
#
# Installs the PyCUDA wheels from .whl/ into /tmp/site unless pycuda already
# imports (see /work/shared/device/README.md), prints the GPU, runs the
# GPU-marked tests, then the benchmark; full logs go to OUTDIR, a short table
# is printed last.  Each stage has its own timeout; the whole check stays under
# 6 minutes.
set -u
OUT=${1:?usage: validation/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
. validation/gpu_env.sh || exit 1
export PYCUDA_CACHE_DIR=${PYCUDA_CACHE_DIR:-/tmp/pycuda-cache}
mkdir -p "$PYCUDA_CACHE_DIR"

{
    echo "== $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader
    nvcc --version | tail -1
    python3 -c "import pycuda.driver as d; d.init(); print('PyCUDA sees', d.Device.count(), 'device(s):', d.Device(0).name())"
} 2>&1 | tee "$OUT/gpu.txt"

echo "== GPU tests (log: $OUT/pytest_gpu.log)"
timeout 210 python3 -m pytest -q -m gpu -rs --durations=15 tests/ >"$OUT/pytest_gpu.log" 2>&1
rc_test=$?
tail -25 "$OUT/pytest_gpu.log"

echo "== benchmark (log: $OUT/bench_gpu.log)"
timeout 110 python3 validation/bench_gpu.py --out "$OUT/bench_gpu.json" >"$OUT/bench_gpu.log" 2>&1
rc_bench=$?
tail -8 "$OUT/bench_gpu.log" | head -6

echo
echo "== summary"
grep -E "passed|failed|error" "$OUT/pytest_gpu.log" | tail -1
if [ -s "$OUT/bench_gpu.json" ]; then
    python3 validation/bench_gpu.py --table "$OUT/bench_gpu.json"
else
    echo "no benchmark results (rc $rc_bench)"
fi
echo "pytest rc=$rc_test  bench rc=$rc_bench  (124 = timed out)"
[ "$rc_test" = 0 ] && [ "$rc_bench" = 0 ]
