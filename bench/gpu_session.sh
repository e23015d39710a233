#!/usr/bin/env bash
# A prepared GPU session, most wanted first: `run all` on a machine whose torch has no bytecode caches, as it is,
# then the caches made; CUDA graphs checked against eager steps; `run all` timed as a user runs it (the 60 s
# target), and again with one cell at a time (--side-by-side 1), compared with it; the bench as CI runs it
# (verdicts, drift against the recorded H200 run with graphs); time per step of sample cells; where a run's time
# outside training goes; the CPU suite under the device's torch; the whole table in the notebook pipeline against
# CUDA graphs (the 10x target); the whole table fused vs fused + graphs; the notebook pipeline on a sample of cells
# in every mode; planted faults; the order study without CUDA graphs, its cells side by side.
# Copy ../shared/data/cifar10-small.npz to .gpu-data/ (git-ignored) and carry it.
# Usage: OUT=dir DATA=path.npz bash bench/gpu_session.sh   (stages are skipped when time runs short)
#        STAGES="speed-whole" BUDGET=430 ...  runs only the stages named.
# Stage times on an H200 (2026-11-26, commit 1018f58; the later stages with bytecode caches): run-all-no-bytecode
# 62 s, bytecode 13 s, graphs-check 11 s, run-all 56 s, bench 83 s, startup 8 s, step-times 27 s,
# speed-batchnorm_vs_groupnorm 36 s (SPEED_SAMPLES of that cell alone), fault-groupnorm_one_group 17 s,
# fault-no_normalization 50 s, run-order-eager 33 s: 409 s in all. Earlier, on an H200 (93ac5da): speed-whole
# 436 s; on an H100 (94ec316): run-all-one-at-a-time 81 s, cpu-suite 119 s. A machine started in 30-60 s; a
# 15-minute session fits one call of up to 600 s and a short second one. Never run yet: the variant studies
# (speed-whole on the current step and the order study's four-mode sample are next, in one call each).
set -u
OUT=${OUT:?set OUT}
DATA=${DATA:-.gpu-data/cifar10-small.npz}
BUDGET=${BUDGET:-540}
EXTRA=${EXTRA:-}  # more pytest options (a CPU dry run: --bench-device cpu --bench-profile smoke)
RUN_EXTRA=${RUN_EXTRA:-}  # more `python -m ablation` options (a CPU dry run: --device cpu --profile smoke)
BASELINE=${BASELINE:-bench/recorded/h200-bench-graphs.json}  # made on $DATA = the offline copy
FAULTS=${FAULTS:-groupnorm_one_group no_normalization}
# the cells of the README's four-mode table (first GPU session), to set the current step beside it
SPEED_SAMPLES=${SPEED_SAMPLES:-"batchnorm_vs_groupnorm:batch_size=16-batchnorm sigmoid_vs_relu:blocks=8-relu conv_activation_norm_position:order=conv_bn_relu"}
SPEED_REPLICATES=${SPEED_REPLICATES:-2}
work=$(mktemp -d)
start=$(date +%s)
log="$OUT/summary.log"
export PYTHONUNBUFFERED=1
left() { echo $((BUDGET - ($(date +%s) - start))); }
pack() { tar -czf "$OUT/all.tar.gz" -C "$work" . 2>/dev/null; }
stage() {  # stage NAME MIN_SECONDS_LEFT COMMAND...
  local name=$1 need=$2; shift 2
  if [ -n "${STAGES:-}" ] && [[ " $STAGES " != *" $name "* ]]; then return; fi
  if [ "$(left)" -lt "$need" ]; then echo "== $name: skipped, $(left) s left" | tee -a "$log"; return; fi
  local t0=$EPOCHREALTIME
  timeout $(( $(left) - 10 )) "$@" > "$work/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s" | tee -a "$log"
  sed -n '/ablation-bench results/,/results written/p' "$work/$name.log" >> "$log"
  local last; last=$(tail -n 1 "$work/$name.log")
  grep -E '^(Training time|\||[0-9]+ cells compared|[0-9]+ cells: |- )' "$work/$name.log" | grep -vxF -- "$last" >> "$log"
  echo "$last" >> "$log"
  pack
}
{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__)"; } >> "$log" 2>&1
# Whether torch's modules have Python bytecode caches here. pip compiles them when it installs torch; without them
# (an image with PYTHONDONTWRITEBYTECODE set and none compiled) every process compiles about 2,000 modules from
# source: 4.6 s of a one-cell run on an H200, 2026-11-26.
bytecode=$(python3 -c "import importlib.util, os, torch
print('yes' if os.path.exists(importlib.util.cache_from_source(torch.__file__)) else 'no')")
echo "torch bytecode caches: $bytecode (PYTHONDONTWRITEBYTECODE=${PYTHONDONTWRITEBYTECODE:-unset})" | tee -a "$log"

# 0. where torch has no bytecode caches: `run all` as this machine is, then caches made once by a one-cell run, outside
#     the checkout (PYTHONPYCACHEPREFIX), as pip would have made them, for every later stage
if [ "$bytecode" = no ]; then
  stage run-all-no-bytecode 120 python3 -m ablation run all --data "$DATA" --out "$work/run-all-no-bytecode.json" \
    $RUN_EXTRA
  export PYTHONPYCACHEPREFIX; PYTHONPYCACHEPREFIX=$(mktemp -d); unset PYTHONDONTWRITEBYTECODE
  stage bytecode 30 python3 -m ablation run sigmoid_vs_relu --cell blocks=1-relu --profile smoke --data "$DATA" \
    $RUN_EXTRA
fi
# 1. CUDA-graph replays train as the same step run eagerly (generated data, about a minute)
stage graphs-check 60 python3 -m pytest bench/test_graphs.py -m gpu -p no:cacheprovider -q --require-gpu
# 2. the whole documented table with replicates (5/8/3) as `run all` trains it: the stage's time is the command's wall
stage run-all 120 python3 -m ablation run all --data "$DATA" --out "$work/run-all.json" $RUN_EXTRA
# 2b. the same one cell at a time (--side-by-side 1): accuracies against 2, and what training cells side by side
#     gained, per group of cells that trained at once
stage run-all-one-at-a-time 120 python3 -m ablation run all --data "$DATA" --side-by-side 1 \
  --out "$work/run-all-one-at-a-time.json" $RUN_EXTRA
if [ -f "$work/run-all.json" ] && [ -f "$work/run-all-one-at-a-time.json" ]; then
  python3 -m ablation compare "$work/run-all-one-at-a-time.json" "$work/run-all.json" \
    > "$work/compare-side-by-side.log" 2>&1
  rc=$?
  { echo "== compare run-all-one-at-a-time with run-all: exit $rc"; tail -n 6 "$work/compare-side-by-side.log"
    python3 -m bench.side_by_side_gain "$work/run-all-one-at-a-time.json" "$work/run-all.json" 2>&1; } >> "$log"
  pack
fi
# 3. the bench as CI runs it against the recorded H200 run (same data): verdicts, drift and throughput
stage bench 150 python3 -m pytest -m gpu -n 2 -p no:cacheprovider --bench-data="$DATA" \
  --baseline="$BASELINE" --bench-out="$work/bench.json" $EXTRA
# 3b. where a run's time outside training goes on this machine: one small cell under cProfile (start-up, the first
#     cell's one-time set-up, evaluation, exit), its 40 costliest calls by cumulative time in startup.log
stage startup 40 bash -c "python3 -m cProfile -o '$work/one-cell.prof' -m ablation run sigmoid_vs_relu \
  --cell blocks=1-relu --data '$DATA' $RUN_EXTRA && python3 -c \"import pstats
pstats.Stats('$work/one-cell.prof').sort_stats('cumulative').print_stats(40)\""
# 4. milliseconds per step of sample cells: one at a time, fused, + CUDA graphs, + channels_last (README table)
stage step-times 60 python3 -m bench.step_times --data "$DATA" ${STEP_TIMES_EXTRA:-}
# 4b. the CPU suite under the device's torch
OMP_NUM_THREADS=2 ABLATION_TEST_DATA="$(realpath "$DATA")" stage cpu-suite 60 python3 -m pytest -m "not gpu" -n 8 \
  -p no:cacheprovider -q
# 5. the whole table, notebook pipeline (one replicate per cell timed, scaled up) vs CUDA graphs: about 6 minutes
stage speed-whole 400 python3 -m ablation speed all --modes notebook,graphs --sequential-replicates 1 --data "$DATA" \
  --markdown $RUN_EXTRA
# 6. the whole table fused vs fused + CUDA graphs, side by side in one run
stage speed-table 240 python3 -m ablation speed all --modes fused,graphs --data "$DATA" --markdown $RUN_EXTRA
# 7. notebook pipeline vs eager vs fused vs graphs, one run per study on a sample of its cells
for sample in $SPEED_SAMPLES; do
  study=${sample%%:*}; cells=${sample#*:}
  stage "speed-$study" 60 python3 -m ablation speed "$study" --cell ${cells//,/ --cell } --data "$DATA" --markdown \
    --replicates "$SPEED_REPLICATES" $RUN_EXTRA
done
# 8. planted faults (Sigmoid/ReLU + order studies; GroupNorm cells for the group fault)
light="sigmoid_vs_relu or conv_activation_norm_position"
for fault in $FAULTS; do
  if [ "$fault" = groupnorm_one_group ]; then
    select=(-k "test_batchnorm_vs_groupnorm and (8-groupnorm or 16-groupnorm or 32-groupnorm or 64-groupnorm)")
  else
    select=(-k "$light")
  fi
  stage "fault-$fault" 90 python3 -m pytest -m gpu -n 4 -p no:cacheprovider --bench-data="$DATA" "${select[@]}" \
    --plant-fault "$fault" --bench-out="$work/fault-$fault.json" $EXTRA
done
# 9. the order study's cells side by side without CUDA graphs (eager steps on streams), as `run --no-cuda-graphs`
#    trains them; compared with 2 (the same training, replayed from graphs)
stage run-order-eager 60 python3 -m ablation run conv_activation_norm_position --no-cuda-graphs --data "$DATA" \
  --out "$work/run-order-eager.json" $RUN_EXTRA
if [ -f "$work/run-all.json" ] && [ -f "$work/run-order-eager.json" ]; then
  { echo "== compare run-all with run-order-eager"
    python3 -m ablation compare "$work/run-all.json" "$work/run-order-eager.json" 2>&1 | tail -n 8; } >> "$log"
fi
pack
echo "total $(( $(date +%s) - start )) s" | tee -a "$log"
