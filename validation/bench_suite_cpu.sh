#!/usr/bin/env bash
# CPU benchmark results for the small cases on this machine (issue 6), recorded in the repo:
#   validation/bench_suite_cpu.sh [OUTDIR]      (default validation/results/bench_cpu)
# Balanced network 1e4 neurons at dt 0.1 and 1 ms and the microcircuit at scale 0.1
# (dt 0.1 ms), stored and procedural, 1 s of model time after a 100 ms warm-up, each case
# in its own process.  About 6-8 min of CPU time on 2 cores; numbers depend on the machine
# (recorded in results.json) and on what else runs on it.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-validation/results/bench_cpu}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -m pyproc.bench --backends cpu --connectivity stored,procedural \
    --models balanced,microcircuit --sizes 1e4 --dts 0.1,1 --scales 0.1 --mc-dts 0.1 \
    --duration 1000 --warmup 100 --max-seconds 300 --out "$OUT"
