#!/usr/bin/env bash
# The full GPU verification before a release, on one CUDA GPU, from a checkout (nothing is installed).
#
#   bash bench/verify_release.sh DATA OUT [BASELINE]
#
# DATA: cifar10 or a .npz copy of CIFAR-10; OUT: a folder for the logs and results files; BASELINE: a results file
# made on the same data and device kind by the bench (default: bench/recorded/h200-bench-side-by-side.json, made on
# the offline copy). Stages, each logged to OUT/NAME.log with its exit status and time in OUT/summary.log:
#   preflight   every study on the smoke profile (131 s on 2 CPU cores, most of it evaluating; on a GPU projected at
#               under a minute): whatever STAGES says, it runs first, and if it fails nothing else does, so that a
#               broken GPU path costs a minute, not a slot (PREFLIGHT=0 skips it)
#   graphs      CUDA-graph replays train as the same step run eagerly (bench/test_graphs.py)
#   run-all     the whole documented table as `run all` trains it, timed; run-all-again the same seeds once more,
#               and their comparison: the nondeterminism floor of the loss curves (docs/statistics.md), and whether
#               --same-training passes the unchanged pair (exit 0)
#   deterministic-a/-b  the order study with --deterministic, twice: its cost against run-all, and "identical"
#               (deterministic-pair: --same-training, bitwise)
#   bench       the bench as CI runs it: cells, findings, drift against BASELINE
#   held-out-N  two bench runs with seeds no recorded run used, judged against each other and BASELINE: the
#               independent evidence for docs/statistics.md's false-alarm rates
#   fault-NAME  planted faults (bench/faults.py): what the bench catches; FAULT_SEED_OFFSETS="0 2000 3000" repeats
#               each with other seeds (fault-NAME-sOFFSET, judged against BASELINE on other seeds),
#               FAULT_REPLICATES=nightly trains the nightly plan's counts (use another OUT per plan); fault-report
#               tabulates every fault run in OUT: what caught it, per fault the runs caught and the mean effect.
#               FAULT_REPLICATES=null (or a count, such as 12: more than twice a pr run's in every study) trains
#               one large run per fault, by default with the seeds of
#               bench/recorded/h200-null-1.json (FAULT_SEED_OFFSETS=11000), and fault-baseline-sOFFSET the same
#               bench unfaulted; fault-resampled measures instead each fault's effect, paired with that unfaulted
#               run (models of the same sizes: --same-training judges the pairs), and its detection rate over 2000
#               pseudo-runs of the pr counts drawn from it, against that same-seed baseline and an other-seed one
#               (the recorded null runs)
#   nightly     the whole table with --replicates nightly, timed (the nightly plan's 5-minute target), and
#   nightly-again  the same seeds once more: the paired test's spread at the nightly counts
#   null-K      runs of unchanged code at the null plan's counts (five pseudo-runs of the bench each) with their
#               own seeds (offset 10000 + 1000 K, K = 1..NULL_RUNS, 4 by default: 20 pseudo-runs) and
#   null-K-again  their same-seed reruns; null-rates: bench/null_runs.py's measured false-alarm rates (and
#               --same-training's on the same-seed pairs; from two null runs on, also resampled from their seeds),
#               null-power: the stated study-shift power, planted into resampled runs, and the share found
#   step-times  milliseconds per step of sample cells, each way of training, torch.compile's too (docs/performance.md)
#   variants    the variant bench: the 100-epoch variant of the norm study (batchnorm_vs_groupnorm_long) on DATA
#               and the CIFAR-100 variant on generated 100-class data (no CIFAR-100 images are reachable offline),
#               timed; variants-report gives their tables, verdicts and figures
# STAGES="bench fault-lr_times_10" runs only those (patterns too: STAGES="null-*"). The whole script takes about
# 70 minutes of an H200 (the null runs about 30 of them, projected); in parts that fit 10-minute slots (H200,
# measured where said, else projected), first STAGES="graphs run-all* same-seeds deterministic-* bench" (about 6
# minutes: the GPU paths, the curves' nondeterminism floor, --same-training on unchanged pairs, the bench: 74 s
# measured), then STAGES="nightly nightly-again nightly-power" (about 6: a nightly run took 179 s),
# STAGES="variants*" (460 s measured), STAGES=step-times (a few, with its compiles), STAGES="held-out-2000
# held-out-3000 held-out-pair" (about 4), the faults two or three at a time into one OUT (FAULTS="label_noise
# batchnorm_eps" STAGES="fault-*": their runs, then fault-report of every fault run in OUT; with
# FAULT_REPLICATES=null two at a time, each projected at about 4 minutes like a null run; with
# FAULT_REPLICATES=12 four at a time with STAGES="fault-*-s11000", 140 s each measured, then their unfaulted
# baseline, fault-baseline-s11000, and fault-resampled on any machine: 148 s on 2 CPU cores), and the null runs one
# at a time into one OUT (STAGES="null-*" NULL_FIRST=1 NULL_RUNS=1, then NULL_FIRST=2 ...: a run and its rerun,
# about 7 minutes: a null run took 204 s; null-rates judges every pair in OUT). Each part also pays the
# preflight, unless PREFLIGHT=0 (once it has passed on that machine and commit).
set -u
DATA=${1:?usage: bash bench/verify_release.sh DATA OUT [BASELINE]}
OUT=${2:?usage: bash bench/verify_release.sh DATA OUT [BASELINE]}
BASELINE=${3:-bench/recorded/h200-bench-side-by-side.json}
FAULTS=${FAULTS:-"no_normalization lr_times_10 no_scheduler groupnorm_one_group norm_after_activation \
weight_decay_dropped label_noise batchnorm_eps eval_with_batch_statistics"}
NULL_RUNS=${NULL_RUNS:-4} NULL_FIRST=${NULL_FIRST:-1} FAULT_REPLICATES=${FAULT_REPLICATES:-pr}
case $FAULT_REPLICATES in pr | nightly) large_faults="" ;; *) large_faults=1 ;; esac
if [ -n "$large_faults" ]; then
  FAULT_SEED_OFFSETS=${FAULT_SEED_OFFSETS:-11000}
else
  FAULT_SEED_OFFSETS=${FAULT_SEED_OFFSETS:-0}
fi
mkdir -p "$OUT"
summary="$OUT/summary.log"
{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__)"; git rev-parse --short HEAD; } >> "$summary" 2>&1

run_stage() {  # run_stage NAME COMMAND...: run it, log it, return its exit status
  local name=$1; shift
  local t0=$EPOCHREALTIME
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s" | tee -a "$summary"
  tail -n 3 "$OUT/$name.log" >> "$summary"
  return $rc
}

stage() {  # stage NAME COMMAND...: run_stage, where STAGES (names or patterns: STAGES="bench null-*") asks for it
  local name=$1
  if [ -n "${STAGES:-}" ]; then
    local patterns wanted=""
    read -ra patterns <<< "$STAGES"
    for pattern in "${patterns[@]}"; do
      # shellcheck disable=SC2053
      [[ $name == $pattern ]] && wanted=1
    done
    [ -n "$wanted" ] || return 0
  fi
  run_stage "$@"
}

if [ "${PREFLIGHT:-1}" != 0 ] && ! run_stage preflight python3 -m ablation run all --profile smoke --data "$DATA" \
    --out "$OUT/preflight.json"; then
  echo "preflight failed (see $OUT/preflight.log): nothing else was run" | tee -a "$summary"
  exit 1
fi

bench=(python3 -m pytest -m gpu -n 2 -p no:cacheprovider --require-gpu --bench-data="$DATA")
stage graphs python3 -m pytest bench/test_graphs.py -m gpu -p no:cacheprovider -q --require-gpu
stage run-all python3 -m ablation run all --data "$DATA" --out "$OUT/run-all.json"
stage run-all-again python3 -m ablation run all --data "$DATA" --out "$OUT/run-all-again.json"
stage same-seeds python3 -m ablation compare "$OUT/run-all.json" "$OUT/run-all-again.json" --json --same-training
for side in a b; do
  stage "deterministic-$side" python3 -m ablation run conv_activation_norm_position --deterministic --data "$DATA" \
    --out "$OUT/deterministic-$side.json"
done
stage deterministic-pair python3 -m ablation compare "$OUT/deterministic-a.json" "$OUT/deterministic-b.json" --json \
  --same-training
stage bench "${bench[@]}" --baseline="$BASELINE" --bench-out="$OUT/bench.json"
for offset in 2000 3000; do
  stage "held-out-$offset" "${bench[@]}" --seed-offset "$offset" --baseline="$BASELINE" \
    --bench-out="$OUT/held-out-$offset.json"
done
if [ -f "$OUT/held-out-2000.json" ] && [ -f "$OUT/held-out-3000.json" ]; then
  stage held-out-pair python3 -m ablation compare "$OUT/held-out-2000.json" "$OUT/held-out-3000.json"
fi
for fault in $FAULTS; do
  for offset in $FAULT_SEED_OFFSETS; do
    name="fault-$fault"
    [ "$offset" = 0 ] || name="$name-s$offset"
    stage "$name" "${bench[@]}" --plant-fault "$fault" --seed-offset "$offset" --replicates "$FAULT_REPLICATES" \
      --baseline="$BASELINE" --bench-out="$OUT/$name.json"
  done
done
if [ -n "$large_faults" ]; then
  for offset in $FAULT_SEED_OFFSETS; do  # the same bench unfaulted: the faults' same-seed baseline of equal models
    stage "fault-baseline-s$offset" "${bench[@]}" --seed-offset "$offset" --replicates "$FAULT_REPLICATES" \
      --baseline="$BASELINE" --bench-out="$OUT/baseline-s$offset.json"
  done
fi
fault_runs=("$OUT"/fault-*.json)
if [ -f "${fault_runs[0]}" ] && [ -n "$large_faults" ]; then
  unfaulted=("$OUT"/baseline-s*.json)
  [ -f "${unfaulted[0]}" ] || unfaulted=()
  stage fault-resampled python3 -m bench.faults "${fault_runs[@]}" --null "${unfaulted[@]}" \
    bench/recorded/h200-null-*.json --resample 2000
elif [ -f "${fault_runs[0]}" ]; then
  stage fault-report python3 -m bench.faults "${fault_runs[@]}" --baseline "$BASELINE"
fi
stage nightly python3 -m ablation run all --replicates nightly --data "$DATA" --out "$OUT/nightly.json"
stage nightly-again python3 -m ablation run all --replicates nightly --data "$DATA" --out "$OUT/nightly-again.json"
stage nightly-power python3 -m ablation power "$OUT/nightly-again.json" --baseline "$OUT/nightly.json"
for k in $(seq "$NULL_FIRST" $((NULL_FIRST + NULL_RUNS - 1))); do
  for side in "" "-again"; do
    stage "null-$k$side" python3 -m ablation run all --replicates null --seed-offset $((10000 + 1000 * k)) \
      --data "$DATA" --out "$OUT/null-$k$side.json"
  done
done
null=() again=()
for run in "$OUT"/null-*-again.json; do
  [ -f "$run" ] && [ -f "${run%-again.json}.json" ] && null+=("${run%-again.json}.json") again+=("$run")
done
if [ ${#null[@]} -ge 2 ]; then
  stage null-rates python3 -m bench.null_runs "${null[@]}" --same-seeds "${again[@]}" --resample 5000
  stage null-power python3 -m bench.null_runs "${null[@]}" --power 2000
elif [ ${#null[@]} -eq 1 ]; then
  stage null-rates python3 -m bench.null_runs "${null[@]}" --same-seeds "${again[@]}"
fi
stage step-times python3 -m bench.step_times --data "$DATA"
stage variants "${bench[@]}" --variants --bench-data-cifar100=synthetic:100 -k "long or cifar100" \
  --bench-out="$OUT/variants.json"
if [ -f "$OUT/variants.json" ]; then
  stage variants-report python3 -m ablation report "$OUT/variants.json" --plot "$OUT/figures" \
    --markdown "$OUT/variants.md"
fi
