#!/usr/bin/env bash
# Profiling run for the GPU machine: timing variants, then ncu on a few propagation
# launches and on the tiny network's step kernels.  Usage: bash validation/profile_gpu.sh OUTDIR
set -u
OUT=${1:?usage: validation/profile_gpu.sh OUTDIR}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
. validation/gpu_env.sh || exit 1
timeout 200 python3 validation/profile_gpu.py 2>&1 | tee "$OUT/profile.txt"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -n "$NCU" ]; then
  timeout 150 "$NCU" --clock-control none -k regex:pp_propagate_procedural --launch-count 2 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats \
    --section ComputeWorkloadAnalysis --section InstructionStats --section LaunchStats \
    python3 validation/profile_gpu.py --ncu > "$OUT/ncu.txt" 2>&1
  echo "ncu rc=$?"
  timeout 60 "$NCU" --clock-control none -k regex:pp_ --launch-skip 60 --launch-count 6 \
    --section SpeedOfLight --section LaunchStats python3 validation/profile_gpu.py --tiny \
    > "$OUT/ncu_tiny.txt" 2>&1
  grep -E "pp_|Duration|Grid Size|Block Size" "$OUT/ncu_tiny.txt" | head -40
  grep -E "pp_propagate|Duration|Throughput|Pipe|Warp Cycles|Issued|Stall|Registers|Achieved Occupancy|Executed Ipc" "$OUT/ncu.txt" | head -60
else
  echo "ncu not found"
fi
