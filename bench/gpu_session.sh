#!/usr/bin/env bash
# A prepared GPU session, most wanted first: CUDA graphs checked against eager
# steps; `run all` timed as a user runs it (the 60 s target), and again with
# cells side by side on CUDA streams (--side-by-side 2 and 6), compared with it;
# the bench as CI runs it (verdicts, drift against the recorded H200 run with
# graphs); time per step of sample cells; the whole table in the notebook
# pipeline against CUDA graphs (the 10x target); the norm study's small-batch
# cells side by side on CUDA streams; the whole table fused vs fused + graphs;
# the notebook pipeline on a sample of cells in every mode; planted faults; the
# CPU suite under the device's torch.
# Copy ../shared/data/cifar10-small.npz to .gpu-data/ (git-ignored) and carry it.
# Usage: OUT=dir DATA=path.npz bash bench/gpu_session.sh   (stages are skipped when time runs short)
#        STAGES="speed-whole" BUDGET=430 ...  runs only the stages named.
# Stage times on an H200 (2026-11-26): graphs-check 15 s, run-all 75 s, bench 86 s, step-times 32 s,
# speed-whole 436 s, fault-groupnorm_one_group 29 s, fault-no_normalization 64 s. All of these have run on
# commit 93ac5da (README, Speed and the bench). Not yet run on a GPU: --side-by-side (run-all-side-by-side-*
# and graphs-check's side-by-side case), concurrent-cells, the speed-<study> samples in all four modes on the
# current step, cpu-suite with CUDA visible (under torch 2.11 without CUDA it passed on a 2-core CPU, c3d1f6b),
# and evaluation in channels_last since then (run-all's evaluation time, 3.4 s before);
# for a 15-minute session, one call:
#        STAGES="graphs-check run-all run-all-side-by-side-2 run-all-side-by-side-6 concurrent-cells cpu-suite
#                speed-batchnorm_vs_groupnorm speed-sigmoid_vs_relu speed-conv_activation_norm_position" BUDGET=520
set -u
OUT=${OUT:?set OUT}
DATA=${DATA:-.gpu-data/cifar10-small.npz}
BUDGET=${BUDGET:-540}
EXTRA=${EXTRA:-}  # more pytest options (a CPU dry run: --bench-device cpu --bench-profile smoke)
RUN_EXTRA=${RUN_EXTRA:-}  # more `python -m ablation` options (a CPU dry run: --device cpu --profile smoke)
BASELINE=${BASELINE:-bench/recorded/h200-bench-graphs.json}  # made on $DATA = the offline copy
FAULTS=${FAULTS:-groupnorm_one_group no_normalization}
SPEED_SAMPLES=${SPEED_SAMPLES:-"batchnorm_vs_groupnorm:batch_size=4-batchnorm,batch_size=64-groupnorm sigmoid_vs_relu:blocks=8-relu conv_activation_norm_position:order=conv_bn_relu"}
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
  local t0=$(date +%s)
  timeout $(( $(left) - 10 )) "$@" > "$work/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc in $(( $(date +%s) - t0 )) s" | tee -a "$log"
  sed -n '/ablation-bench results/,/results written/p' "$work/$name.log" >> "$log"
  local last; last=$(tail -n 1 "$work/$name.log")
  grep -E '^(Training time|\||[0-9]+ cells compared|[0-9]+ cells: |- )' "$work/$name.log" | grep -vxF -- "$last" >> "$log"
  echo "$last" >> "$log"
  pack
}
{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__)"; } >> "$log" 2>&1

# 1. CUDA-graph replays train as the same step run eagerly (generated data, about a minute)
stage graphs-check 60 python3 -m pytest bench/test_graphs.py -m gpu -p no:cacheprovider -q --require-gpu
# 2. the whole documented table with replicates (5/8/3) as `run all` trains it: the stage's time is the command's wall
stage run-all 120 python3 -m ablation run all --data "$DATA" --out "$work/run-all.json" $RUN_EXTRA
# 2b. the same with a study's cells 2 and 6 at a time on CUDA streams; against 2: accuracies, study throughput
#     and each group's time one after another and side by side
for n in 2 6; do
  stage "run-all-side-by-side-$n" 120 python3 -m ablation run all --data "$DATA" --side-by-side $n \
    --out "$work/run-all-side-by-side-$n.json" $RUN_EXTRA
  if [ -f "$work/run-all.json" ] && [ -f "$work/run-all-side-by-side-$n.json" ]; then
    python3 -m ablation compare "$work/run-all.json" "$work/run-all-side-by-side-$n.json" \
      > "$work/compare-side-by-side-$n.log" 2>&1
    rc=$?
    { echo "== compare run-all with run-all-side-by-side-$n: exit $rc"; tail -n 6 "$work/compare-side-by-side-$n.log"
      python3 -m bench.side_by_side_gain "$work/run-all.json" "$work/run-all-side-by-side-$n.json" 2>&1; } >> "$log"
    pack
  fi
done
# 3. the bench as CI runs it against the recorded H200 run (same data): verdicts, drift and throughput
stage bench 150 python3 -m pytest -m gpu -n 2 -p no:cacheprovider --bench-data="$DATA" \
  --baseline="$BASELINE" --bench-out="$work/bench.json" $EXTRA
# 4. milliseconds per step of sample cells: one at a time, fused, + CUDA graphs, + channels_last (README table)
stage step-times 60 python3 -m bench.step_times --data "$DATA" ${STEP_TIMES_EXTRA:-}
# 4b. the norm study's batch 2-8 cells one after another vs side by side on CUDA streams, and beside the order study
stage concurrent-cells 60 python3 -m bench.concurrent_cells --data "$DATA"
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
# 9. the CPU suite under the device's torch
ABLATION_TEST_DATA="$(realpath "$DATA")" stage cpu-suite 60 python3 -m pytest -m "not gpu" -n 4 -p no:cacheprovider -q
pack
echo "total $(( $(date +%s) - start )) s" | tee -a "$log"
