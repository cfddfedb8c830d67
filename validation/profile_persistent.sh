#!/usr/bin/env bash
# Where a persistent step goes (GPU machine): timing variants, then ncu on one launch of
# 100 steps of the 1k network and of the microcircuit.
#   bash validation/profile_persistent.sh OUTDIR
set -u
OUT=${1:?usage: validation/profile_persistent.sh OUTDIR}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
. validation/gpu_env.sh || exit 1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
timeout 150 python3 validation/profile_persistent.py --out "$OUT/persistent.json" 2>&1 | tee "$OUT/persistent.txt"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -n "$NCU" ]; then
  for net in 1k mc; do
    timeout 100 "$NCU" --clock-control none -k regex:pp_step_persistent --launch-skip 1 \
      --launch-count 1 --section SpeedOfLight --section LaunchStats --section Occupancy \
      --section WarpStateStats --section SchedulerStats --section SourceCounters \
      --section MemoryWorkloadAnalysis python3 validation/profile_persistent.py --ncu $net \
      > "$OUT/ncu_$net.txt" 2>&1
    echo "ncu $net rc=$?"
    grep -E "Duration|Warp Cycles Per|Stall|stall|Issued Ipc|Achieved Occupancy|L1/TEX Hit|L2 Hit" "$OUT/ncu_$net.txt" | head -30
  done
else
  echo "ncu not found"
fi
