#!/usr/bin/env bash
# One prepared GPU session: the bench as CI would run it (with the recorded H200
# run as baseline), planted faults (detection power), the speed comparison and
# the CPU suite under the device's torch. Stages are skipped when time runs short.
# Copy ../shared/data/cifar10-small.npz to .gpu-data/ (git-ignored) and carry it.
# Usage: OUT=dir DATA=path.npz bash bench/gpu_session.sh   (stages are skipped when time runs short)
set -u
OUT=${OUT:?set OUT}
DATA=${DATA:-.gpu-data/cifar10-small.npz}
BUDGET=${BUDGET:-540}
EXTRA=${EXTRA:-}  # more pytest options (a CPU dry run: --bench-device cpu --bench-profile smoke)
RUN_EXTRA=${RUN_EXTRA:-}  # more `python -m ablation` options (a CPU dry run: --device cpu --profile smoke)
BASELINE=${BASELINE:-bench/recorded/h200-bench.json}  # made on $DATA = the offline copy
FAULTS=${FAULTS:-groupnorm_one_group no_normalization}
SPEED_STUDY=${SPEED_STUDY:-all}
SPEED_EXTRA=${SPEED_EXTRA:-}  # e.g. --cell ID --replicates N
work=$(mktemp -d)
start=$(date +%s)
log="$OUT/summary.log"
export PYTHONUNBUFFERED=1
left() { echo $((BUDGET - ($(date +%s) - start))); }
pack() { tar -czf "$OUT/all.tar.gz" -C "$work" . 2>/dev/null; }
stage() {  # stage NAME MIN_SECONDS_LEFT COMMAND...
  local name=$1 need=$2; shift 2
  if [ "$(left)" -lt "$need" ]; then echo "== $name: skipped, $(left) s left" | tee -a "$log"; return; fi
  local t0=$(date +%s)
  timeout $(( $(left) - 10 )) "$@" > "$work/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc in $(( $(date +%s) - t0 )) s" | tee -a "$log"
  sed -n '/ablation-bench results/,/results written/p' "$work/$name.log" >> "$log"
  tail -n 1 "$work/$name.log" >> "$log"
  pack
}
{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__)"; } >> "$log" 2>&1

# 1. the bench as CI runs it, against the recorded H200 run (same data) as the baseline
stage bench 200 python3 -m pytest -m gpu -n 2 -p no:cacheprovider --bench-data="$DATA" \
  --baseline="$BASELINE" --bench-out="$work/bench.json" $EXTRA
# 2. planted faults (Sigmoid/ReLU + order studies; GroupNorm cells for the group fault)
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
# 3. notebook pipeline vs eager vs fused, same device, one run
stage speed 120 python3 -m ablation speed "$SPEED_STUDY" --data "$DATA" --markdown $SPEED_EXTRA $RUN_EXTRA
# 4. the CPU suite under the device's torch
ABLATION_TEST_DATA="$PWD/$DATA" stage cpu-suite 60 python3 -m pytest -m "not gpu" -n 4 -p no:cacheprovider -q
pack
echo "total $(( $(date +%s) - start )) s" | tee -a "$log"
