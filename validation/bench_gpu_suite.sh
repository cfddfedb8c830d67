#!/usr/bin/env bash
# The GPU benchmark suite of issue 6, in at most 8 minutes on one H100/H200:
#
#   validation/bench_gpu_suite.sh OUTDIR [MAM_STRUCTURE_JSON]
#
# Microcircuit scales 0.1 and 1 (dt 0.1 ms), then the balanced network at 1e4, 5e4, 1e5,
# 5e5, 1e6 neurons, dt 1 and 0.1 ms, procedural and stored (stored skipped, with the
# planner's figure, where it does not fit), and the multi-area model (procedural, full
# scale, dt 0.1 ms) when a structure file is given.  1 s of model time per case after a
# 100 ms warm-up (as the CPU results in the repo, which they are compared with: same
# spikes and events expected), cut short where a case would exceed its 20 s budget (the table says so);
# the suite stops starting cases after 400 s.  Each case runs in its own process with a
# hard time limit: a failing or hanging case is recorded as failed/timeout, not fatal.
# Writes OUTDIR/results.json, results.md, plot.png, logs/ and prints a short table last.
# BENCH_MAX_SECONDS (20) and BENCH_TOTAL_SECONDS (400) override the budgets.
set -u
OUT=${1:?usage: validation/bench_gpu_suite.sh OUTDIR [MAM_STRUCTURE_JSON]}
STRUCT=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

. validation/gpu_env.sh || exit 1

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.free --format=csv
    python3 -c "import pycuda; print('pycuda', pycuda.VERSION_TEXT)"
    nvcc --version | tail -2
    git rev-parse HEAD 2>/dev/null
} 2>&1 | tee "$OUT/machine.txt"

EXTRA=()
MODELS=microcircuit,balanced
if [ -n "$STRUCT" ]; then
    MODELS=microcircuit,balanced,multiarea
    EXTRA=(--structure "$STRUCT" --mam-scales 1)
fi

MAXS=${BENCH_MAX_SECONDS:-20}
TOTAL=${BENCH_TOTAL_SECONDS:-400}
HARD=$((TOTAL + 70))
# hard stop for the whole suite (results.json is rewritten after every case)
timeout -k 10 "$HARD" python3 -m pyproc.bench --backends cuda --models "$MODELS" \
    --scales 0.1,1 --mc-dts 0.1 --sizes 1e4,5e4,1e5,5e5,1e6 --dts 1,0.1 \
    --connectivity procedural,stored --duration 1000 --warmup 100 \
    --compare-with validation/results/bench_cpu/results.json \
    --max-seconds "$MAXS" --total-seconds "$TOTAL" --check-events auto \
    --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"} > "$OUT/suite.log" 2>&1
rc=$?
echo "pyproc.bench exit status $rc (0: all cases ok or skipped; 1: a case failed, or an events or stored-vs-procedural check disagreed; 124: suite killed at ${HARD} s)"

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
try:
    doc = json.load(open(os.path.join(out, "results.json")))
except (OSError, ValueError) as e:
    sys.exit(f"no results.json ({e}); see {out}/suite.log")
from pyproc.bench import _short_table
env = doc.get("environment", {})
print(f"\n{env.get('gpu_name')} driver {env.get('gpu_driver')} CUDA {env.get('cuda_driver_version')}"
      f"  pyproc {env.get('pyproc')} git {env.get('git_commit')}")
print("\n".join(_short_table(doc)))
PY
exit $rc
