#!/usr/bin/env bash
# One GPU-machine session for the flagship models and the GPU tests (issues 3, 4, 5), in
# one device call that fits the session's 15 minutes of device time:
#
#   PYPROC_GIT_COMMIT=$(git rev-parse --short HEAD) BUDGET_S=540 \
#     bash validation/gpu_flagships.sh OUTDIR MAM_STRUCTURE_JSON
#
# (the GPU machine gets a copy of the tree whose .git may be stale: the results name
# the commit given in PYPROC_GIT_COMMIT, pyproc.provenance)
#
# BUDGET_S (default 540) is the whole script's wall time: each stage runs under the
# smaller of its own limit and what is left of the budget (less 10 s to pack), and a
# stage that would get less than its minimum is skipped and says so.  With the device
# call's timeout_s 600 and a machine start of 1-2 minutes, a session then has 2-4
# minutes left for a short second call on the warm machine.  Stages, most important
# first (results packed into OUTDIR/all.tgz after each; stages.tsv lists every
# stage's exit status and seconds: 124 = cut by its limit, "skip" = no time left; the
# script ends with validation/gpu_summary.py: every target against the best and the
# default configuration measured):
#   1a. GPU-marked tests of the default kernels (tests/test_cuda.py without the opt-in
#       builds: identical spikes vs the CPU reference); a failure is flagged ("NOT
#       EXACT" in stages.tsv) and the script goes on for diagnostics only: numbers
#       measured on kernels that are not exact are not results;
#   2.  the CUDA benchmark (validation/bench_gpu.py: the targets of issue 3 and the
#       microcircuit rows of issue 4; it saves its JSON after every section);
#   5.  the full-scale microcircuit, 10.5 s, procedural vs stored on the card, two
#       seeds, activity part of the validation suite (issue 4's report);
#   1b. GPU tests of the opt-in builds (shared_tables, pipelined, unit_map,
#       throughput_build, small grids, auto timing the builds: failures are reported --
#       their bench rows then timed a wrong kernel -- and the script goes on);
#   4.  the full multi-area model, ground state, 1.5 s (validation/mam_gpu.py);
#   3.  timing variants of the persistent kernel (validation/profile_persistent.py);
#   1c. GPU tests of robustness and the command line.
# SKIP_TESTS=1 (1a, 1b), SKIP_BENCH=1, SKIP_FLAGSHIPS=1 (5, 4), SKIP_PROFILE=1 and
# SKIP_OTHER_TESTS=1 (1c) leave stages out; ONLY="2 5" runs just those stages (1a too,
# unless SKIP_TESTS=1: a tree's numbers count only after its exactness tests pass).
set -u
OUT=${1:?usage: validation/gpu_flagships.sh OUTDIR MAM_STRUCTURE_JSON}
MAM=${2:?usage: validation/gpu_flagships.sh OUTDIR MAM_STRUCTURE_JSON}
BUDGET_S=${BUDGET_S:-540}
# the work folder stays outside OUTDIR (the device tool returns at most 8 files from it):
# OUTDIR gets all.tgz (the whole work folder, packed after every stage), summary.txt and
# stages.tsv
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd); W=$(mktemp -d "${TMPDIR:-/tmp}/pyproc_gpu.XXXXXX")
echo "work folder $W"
export PYPROC_TEST_REF_CACHE=${W}_refcache   # CPU references shared by the pytest stages
MAM=$(cd "$(dirname "$MAM")" && pwd)/$(basename "$MAM")
cd "$(dirname "$0")/.."
. validation/gpu_env.sh || exit 1
pack() { tar czf "$OUT/all.tgz" -C "$W" . ; cp "$W/stages.tsv" "$OUT/" 2>/dev/null; }
# GPU tests of the opt-in builds (pytest -k expression)
EXPERIMENTS="shared_tables or pipelined or unit_map or throughput_build or persistent_grid or tune_builds or one_block"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$W/gpu.txt"
# every kernel build the stages use, compiled into PyCUDA's disk cache on 8 of the
# machine's cores while stage 1a runs (a fresh machine's cache is empty, and the stages
# would compile the opt-in builds one by one, ~3-5 s each, when they first need them);
# a build it could not compile is compiled, and its error reported, by the stage
# (the arch from nvidia-smi: warm_kernels.py then needs no CUDA context of its own)
CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
ARCH_OPT=""; [ -n "$CC" ] && ARCH_OPT="--arch sm_$CC"
nice -n 5 python3 validation/warm_kernels.py --jobs 8 $ARCH_OPT > "$W/warm_kernels.log" 2>&1 &
WARM_PID=$!
printf 'stage\trc\tseconds\tlimit\n' > "$W/stages.tsv"

# wanted STAGE SKIPVAR: 0 if the stage is to run (ONLY and the SKIP_* variables)
wanted() {
  [ -n "${2:-}" ] && [ -n "${!2:-}" ] && return 1
  [ -z "${ONLY:-}" ] && return 0
  case " $ONLY " in *" $1 "*) return 0 ;; esac
  return 1
}
# stage NAME LIMIT MIN LOG COMMAND...: run COMMAND under min(LIMIT, what is left of the
# budget), its output to LOG; sets rc (exit status, or "skip")
stage() {
  local name=$1 limit=$2 min=$3 log=$4 left t0; shift 4
  left=$((BUDGET_S - SECONDS - 10))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt "$min" ]; then
    rc=skip; echo "== $name skipped: ${left} s left of BUDGET_S=$BUDGET_S (needs $min)"
    printf '%s\tskip\t0\t%s\n' "$name" "$limit" >> "$W/stages.tsv"; return
  fi
  echo "== $name (limit $limit s, at $SECONDS s of $BUDGET_S)"
  t0=$SECONDS
  timeout "$limit" "$@" > "$log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$limit" >> "$W/stages.tsv"
  echo "rc=$rc in $((SECONDS - t0)) s"
}

if [ -z "${SKIP_TESTS:-}" ]; then                  # with ONLY too
  # the default kernels.  A failure does not stop the script (a GPU session is rare: the
  # timings and the other stages still say where the time goes, and which tests fail
  # says where to look), but every number after it is from kernels that are not exact:
  # stages.tsv and the output say so, and no such number may be reported as a result.
  stage "1a GPU tests, default kernels" 140 60 "$W/pytest_gpu.log" \
    python3 -m pytest -q -m gpu -rs --durations=12 tests/test_cuda.py -k "not ($EXPERIMENTS)"
  tail -3 "$W/pytest_gpu.log" 2>/dev/null; pack
  if [ "$rc" != 0 ]; then
    grep -E "^(FAILED|ERROR)|Error" "$W/pytest_gpu.log" 2>/dev/null | head -20
    echo "!! 1a failed (rc=$rc): the default kernels are not exact on this GPU; what follows"
    echo "!! measures wrong kernels (diagnostics only)"
    printf 'NOT EXACT\t%s\t0\t0\n' "$rc" >> "$W/stages.tsv"
  fi
fi

if wanted 2 SKIP_BENCH; then
  stage "2 benchmark" 230 60 "$W/bench.log" \
    python3 validation/bench_gpu.py --out "$W/bench_gpu.json"
  [ -s "$W/bench_gpu.json" ] && python3 validation/bench_gpu.py --table "$W/bench_gpu.json"
  pack
fi

if wanted 5 SKIP_FLAGSHIPS; then
  stage "5 microcircuit, full scale, 10.5 s, procedural vs stored" 80 40 "$W/mc.log" \
    python3 -m pyproc validate microcircuit --scale 1 --duration 10500 --backend cuda \
      --reference-backend cuda --seeds 2 --skip-connectivity --out "$W/mc"
  tail -12 "$W/mc.log"; pack
fi

if wanted 1b SKIP_TESTS; then
  # the opt-in builds: a failure is reported (their bench rows then timed a wrong kernel:
  # the option must stay off) but does not stop the rest
  stage "1b GPU tests, opt-in builds" 200 40 "$W/pytest_gpu_experiments.log" \
    python3 -m pytest -q -m gpu -rs --durations=8 tests/test_cuda.py -k "$EXPERIMENTS"
  tail -3 "$W/pytest_gpu_experiments.log"
  grep -E "^(FAILED|ERROR)" "$W/pytest_gpu_experiments.log"; pack
fi

if wanted 4 SKIP_FLAGSHIPS; then
  stage "4 multi-area model, full scale, ground state" 90 60 "$W/mam.log" \
    python3 validation/mam_gpu.py --structure "$MAM" --state ground --duration 1500 \
      --discard 500 --out "$W/mam"
  grep -E "set-up|1500.0 ms|Set-up|populations|loop" "$W/mam.log" | tail -5; pack
fi

if wanted 3 SKIP_PROFILE; then
  stage "3 persistent-kernel profile (timing variants)" 150 45 "$W/persistent.txt" \
    python3 validation/profile_persistent.py --steps 1000 --out "$W/persistent.json"
  cat "$W/persistent.txt"; pack
fi

if wanted 1c SKIP_OTHER_TESTS; then
  stage "1c GPU tests, robustness and command line" 70 30 "$W/pytest_gpu_other.log" \
    python3 -m pytest -q -m gpu -rs tests/test_robustness.py tests/test_cli.py
  tail -3 "$W/pytest_gpu_other.log"; grep -E "^(FAILED|ERROR)" "$W/pytest_gpu_other.log"
  pack
fi
kill "$WARM_PID" 2>/dev/null; tail -1 "$W/warm_kernels.log" 2>/dev/null
echo "== done at $SECONDS s of BUDGET_S=$BUDGET_S"; cat "$W/stages.tsv"
# last, so that the end of the device call's output holds it: the targets, in a few lines
python3 validation/gpu_summary.py "$W" | tee "$W/summary.txt"; pack; cp "$W/summary.txt" "$OUT/"
