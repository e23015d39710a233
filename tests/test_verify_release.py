"""bench/verify_release.sh's plumbing, with python3 and nvidia-smi stood in for: which stages run, and that the
null runs of every part are judged together."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE_PYTHON = """#!/bin/bash
echo "python3 $*"
[[ -n $FAIL_ON && $* == *$FAIL_ON* ]] && exit 3
previous=""
for argument in "$@"; do
  [[ $previous == --out || $previous == -o ]] && touch "$argument"
  [[ $argument == --bench-out=* ]] && touch "${argument#--bench-out=}"
  previous=$argument
done
"""


def verify(tmp_path, out, **env):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(FAKE_PYTHON)
    (bin_dir / "nvidia-smi").write_text("#!/bin/bash\necho 'GPU 0: stand-in'\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env}
    return subprocess.run(["bash", "bench/verify_release.sh", "DATA.npz", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def stages(out):
    return [line.split(":")[0].removeprefix("== ") for line in (out / "summary.log").read_text().splitlines()
            if line.startswith("== ")]


def test_stages_by_name_and_pattern_and_null_runs_judged_across_parts(tmp_path):
    out = tmp_path / "out"
    first = verify(tmp_path, out, STAGES="nightly null-*", NULL_RUNS="2")
    assert first.returncode == 0, first.stderr
    assert stages(out) == ["preflight", "nightly", "null-1", "null-1-again", "null-2", "null-2-again", "null-rates",
                           "null-power"]
    verify(tmp_path, out, STAGES="null-*", NULL_FIRST="3", NULL_RUNS="1", PREFLIGHT="0")
    rates = (out / "null-rates.log").read_text()
    judged = [f"{out}/null-{k}.json" for k in (1, 2, 3)]
    assert rates.split("--same-seeds")[0].split()[3:] == judged and rates.split()[-2:] == ["--resample", "5000"]
    assert (out / "null-power.log").read_text().split()[3:] == [*judged, "--power", "2000"]  # never the reruns
    alone = tmp_path / "alone"
    verify(tmp_path, alone, STAGES="null-*", NULL_RUNS="1", PREFLIGHT="0")
    assert stages(alone)[-1] == "null-rates" and "--resample" not in (alone / "null-rates.log").read_text()
    assert "--replicates null --seed-offset 13000" in (out / "null-3.log").read_text()
    default = tmp_path / "default"
    assert verify(tmp_path, default, STAGES="null-*", PREFLIGHT="0").returncode == 0
    assert stages(default) == [f"null-{k}{side}" for k in (1, 2, 3, 4) for side in ("", "-again")] + [
        "null-rates", "null-power"]


def test_the_variant_stages_run_the_variant_bench_and_report_it(tmp_path):
    """The variant bench trains the long variant on DATA and the CIFAR-100 one on generated data; its results file
    gets the tables, verdicts and figures."""
    out = tmp_path / "out"
    assert verify(tmp_path, out, STAGES="variants*", PREFLIGHT="0").returncode == 0
    assert stages(out) == ["variants", "variants-report"]
    variants = (out / "variants.log").read_text()
    assert "-m gpu -n 2" in variants and "--variants --bench-data-cifar100=synthetic:100" in variants
    assert f"--bench-out={out}/variants.json" in variants
    assert f"report {out}/variants.json --plot {out}/figures --markdown {out}/variants.md" in (
        out / "variants-report.log").read_text()


def test_without_its_results_file_the_variant_bench_is_not_reported(tmp_path):
    out = tmp_path / "out"
    assert verify(tmp_path, out, STAGES="variants-report", PREFLIGHT="0").returncode == 0
    assert stages(out) == []


def test_a_failed_preflight_runs_nothing_else(tmp_path):
    """The smoke run of every study goes first, whatever STAGES asks for; when it fails, the script stops there."""
    out = tmp_path / "out"
    failed = verify(tmp_path, out, STAGES="nightly", FAIL_ON="--profile smoke")
    assert failed.returncode == 1 and stages(out) == ["preflight"]
    assert "preflight failed" in (out / "summary.log").read_text()
    assert "run all --profile smoke --data DATA.npz" in (out / "preflight.log").read_text()


def test_faults_repeat_with_other_seeds_and_are_tabulated_together(tmp_path):
    out = tmp_path / "out"
    done = verify(tmp_path, out, STAGES="fault-*", FAULTS="lr_times_10 label_noise", FAULT_SEED_OFFSETS="0 2000",
                  PREFLIGHT="0")
    assert done.returncode == 0, done.stderr
    assert stages(out) == ["fault-lr_times_10", "fault-lr_times_10-s2000", "fault-label_noise",
                           "fault-label_noise-s2000", "fault-report"]
    assert "--plant-fault label_noise --seed-offset 2000 --replicates pr" in (
        out / "fault-label_noise-s2000.log").read_text()
    report = (out / "fault-report.log").read_text().split()
    assert report[:3] == ["python3", "-m", "bench.faults"]
    assert report[-2:] == ["--baseline", "bench/recorded/h200-bench-side-by-side.json"]
    assert sorted(report[3:-2]) == sorted(f"{out}/fault-{name}.json" for name in (
        "lr_times_10", "lr_times_10-s2000", "label_noise", "label_noise-s2000"))


def test_the_first_part_checks_the_gpu_paths_the_numerics_gate_and_the_bench(tmp_path):
    """The part the script's header gives first: both same-seed pairs judged with --same-training."""
    out = tmp_path / "out"
    assert verify(tmp_path, out, STAGES="graphs run-all* same-seeds deterministic-* bench").returncode == 0
    assert stages(out) == ["preflight", "graphs", "run-all", "run-all-again", "same-seeds", "deterministic-a",
                           "deterministic-b", "deterministic-pair", "bench"]
    for pair in ("same-seeds", "deterministic-pair"):
        assert "--json --same-training" in (out / f"{pair}.log").read_text()


def test_faults_of_the_null_plan_pair_with_the_first_null_run_and_are_resampled(tmp_path):
    """One null-plan run per fault (or one of a count of replicates), with h200-null-1's seeds (offset 11000) unless
    told otherwise, judged by resampling against the recorded null runs instead of the per-run report."""
    out = tmp_path / "out"
    done = verify(tmp_path, out, STAGES="fault-*", FAULTS="label_noise batchnorm_eps", FAULT_REPLICATES="null",
                  PREFLIGHT="0")
    assert done.returncode == 0, done.stderr
    assert stages(out) == ["fault-label_noise-s11000", "fault-batchnorm_eps-s11000", "fault-baseline-s11000",
                           "fault-resampled"]
    assert "--plant-fault label_noise --seed-offset 11000 --replicates null" in (
        out / "fault-label_noise-s11000.log").read_text()
    unfaulted = (out / "fault-baseline-s11000.log").read_text()
    assert "--seed-offset 11000 --replicates null" in unfaulted and "--plant-fault" not in unfaulted
    report = (out / "fault-resampled.log").read_text().split()
    assert report[:3] == ["python3", "-m", "bench.faults"] and report[-2:] == ["--resample", "2000"]
    runs, nulls = report[3:report.index("--null")], report[report.index("--null") + 1:-2]
    assert sorted(runs) == sorted(f"{out}/fault-{name}-s11000.json" for name in ("label_noise", "batchnorm_eps"))
    assert nulls[0] == f"{out}/baseline-s11000.json"  # the unfaulted bench: a same-seed baseline of equal models
    assert nulls[1:] and all(path.startswith("bench/recorded/h200-null-") for path in nulls[1:])
    assert (ROOT / "bench" / "recorded" / "h200-null-1.json").exists()
    counted = tmp_path / "counted"
    assert verify(tmp_path, counted, STAGES="fault-*", FAULTS="label_noise", FAULT_REPLICATES="12",
                  PREFLIGHT="0").returncode == 0
    assert stages(counted) == ["fault-label_noise-s11000", "fault-baseline-s11000", "fault-resampled"]
    assert "--seed-offset 11000 --replicates 12" in (counted / "fault-label_noise-s11000.log").read_text()
