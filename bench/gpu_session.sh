#!/usr/bin/env bash
# One prepared GPU session: the bench as CI would run it, an independent repeat
# (false alarms), planted faults (detection power), and fused-vs-separate timing.
# Usage: OUT=dir DATA=path.npz bash bench/gpu_session.sh   (stages are skipped when time runs short)
set -u
OUT=${OUT:?set OUT}
DATA=${DATA:-.gpu-data/cifar10-small.npz}
BUDGET=${BUDGET:-540}
EXTRA=${EXTRA:-}  # more pytest options (a CPU dry run: --bench-device cpu --bench-profile smoke)
RUN_EXTRA=${RUN_EXTRA:-}  # more `python -m ablation run` options (a CPU dry run: --device cpu --profile smoke)
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

stage bench 200 python3 -m pytest -m gpu -n 2 -p no:cacheprovider --bench-data="$DATA" --bench-out="$work/bench.json" $EXTRA
stage repeat 200 python3 -m pytest -m gpu -n 2 -p no:cacheprovider --bench-data="$DATA" --seed-offset 1000 \
  --baseline="$work/bench.json" --bench-out="$work/repeat.json" $EXTRA
light="sigmoid_vs_relu or conv_activation_norm_position"
for fault in norm_after_activation lr_times_10 no_normalization no_scheduler; do
  stage "fault-$fault" 90 python3 -m pytest -m gpu -n 4 -p no:cacheprovider --bench-data="$DATA" -k "$light" \
    --plant-fault "$fault" --bench-out="$work/fault-$fault.json" $EXTRA
done
gn_cells=()
for b in 8 16 32 64 128; do gn_cells+=("bench/test_cells.py::test_batchnorm_vs_groupnorm[batch_size=$b-groupnorm]"); done
stage fault-groupnorm_one_group 120 python3 -m pytest -m gpu -n 4 -p no:cacheprovider --bench-data="$DATA" \
  "${gn_cells[@]}" --plant-fault groupnorm_one_group --bench-out="$work/fault-groupnorm_one_group.json" $EXTRA
for mode in fused separate; do
  flag=$([ $mode = separate ] && echo --no-fuse)
  stage "speed-sigmoid-$mode" 60 python3 -m ablation run sigmoid_vs_relu --data "$DATA" --quiet $flag \
    --out "$work/speed-sigmoid-$mode.json" $RUN_EXTRA
  stage "speed-norm8-$mode" 60 python3 -m ablation run batchnorm_vs_groupnorm --cell batch_size=8-batchnorm \
    --replicates 3 --data "$DATA" --quiet $flag --out "$work/speed-norm8-$mode.json" $RUN_EXTRA
done
ABLATION_TEST_DATA="$PWD/$DATA" stage cpu-suite 60 python3 -m pytest -m "not gpu" -n 4 -p no:cacheprovider -q
pack
echo "total $(( $(date +%s) - start )) s" | tee -a "$log"
