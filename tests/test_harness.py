"""The GPU bench's machinery, run on the CPU: GPU pinning, skips, results files, benchmark records."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness import BenchConfig, CellCache, worker_gpu

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("worker,visible,count,expected", [
    ("gw0", None, 2, "0"), ("gw1", None, 2, "1"), ("gw2", None, 2, "0"),  # own GPU, round robin
    ("gw1", "4,5", 8, "5"),  # honours the caller's CUDA_VISIBLE_DEVICES
    ("gw1", "7", 8, "7"),  # one GPU: workers share it
    ("gw0", None, 0, None),
])
def test_each_worker_gets_its_own_gpu(worker, visible, count, expected):
    assert worker_gpu(worker, visible, count) == expected


def test_a_cell_is_trained_once_however_often_and_by_whichever_worker_it_is_asked_for(tmp_path, monkeypatch):
    """Cell tests and findings ask for the same cells; two caches on one folder stand for two xdist workers."""
    trained = []

    def train(cache, name, cell_id):
        trained.append((name, cell_id))
        return {"record": cell_id}

    monkeypatch.setattr(CellCache, "_train", train)
    config = BenchConfig(data="synthetic", data_cifar100="synthetic:100", device="cpu", profile="smoke",
                         replicates=1, seed_offset=0, fault=None)
    first, second = CellCache(tmp_path, config), CellCache(tmp_path, config)
    asked = [cache.get("sigmoid_vs_relu", "blocks=1-relu") for cache in (first, second, first)]
    assert asked == [{"record": "blocks=1-relu"}] * 3 and trained == [("sigmoid_vs_relu", "blocks=1-relu")]


def bench(tmp_path, *args):
    """The bench as a session of its own, also when this suite runs in an xdist worker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "bench", "-m", "gpu", "-p", "no:cacheprovider",
                           f"--bench-out={tmp_path / 'bench.json'}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_without_a_gpu_the_bench_skips_with_a_reason_or_fails_under_require_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    skipped = bench(tmp_path, "-k", "sigmoid_vs_relu and 1-relu or test_graph_replays", "-rs")
    assert skipped.returncode == 0 and "5 skipped" in skipped.stdout  # a cell and the 4 CUDA-graph checks
    assert "no CUDA GPU visible" in skipped.stdout
    failed = bench(tmp_path, "-k", "sigmoid_vs_relu and 1-relu", "--require-gpu")
    assert failed.returncode == 1 and "--require-gpu: no CUDA GPU visible" in failed.stdout


def test_the_bench_help_says_what_each_planted_fault_breaks():
    from bench.faults import FAULTS

    env = dict(os.environ, COLUMNS="1000")  # one line per option: no wrapping inside a description
    shown = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120, env=env).stdout
    for name, fault in FAULTS.items():
        assert f"{name}: {fault.description}" in shown


def test_bench_on_cpu_under_xdist_writes_one_results_file(tmp_path):
    """Two workers, two cells and a finding that needs all three order cells: each cell trained once."""
    proc = bench(tmp_path, "-n", "2", "--bench-device", "cpu", "--bench-data=synthetic", "--bench-profile", "smoke",
                 "--replicates", "2", "-k", "conv_activation_norm_position")
    results = json.loads((tmp_path / "bench.json").read_text())
    cells = results["studies"]["conv_activation_norm_position"]["cells"]
    assert list(cells) == ["order=conv_bn_relu", "order=conv_relu_bn", "order=conv_leakyrelu_bn"]
    assert all(len(c["accuracy"]) == 2 and c["seeds"] == cells["order=conv_bn_relu"]["seeds"] for c in cells.values())
    assert results["bench"] == {"seed_offset": 0, "fault": None, "cuda_graphs": False, "workers": 2}
    assert results["profile"] == "smoke"
    # generated data cannot match the CIFAR-10 tables: the failures say what and why
    assert proc.returncode == 1
    assert "against the documented table: conv_activation_norm_position[order=conv_bn_relu]: REGRESSION" in proc.stdout
    assert "reference runs [62.32, 62.23, 63.38], measured replicates [" in proc.stdout and ", band " in proc.stdout
    assert "ablation-bench results" in proc.stdout and "finding conv_activation_norm_position" in proc.stdout


def test_bench_without_xdist_reaches_pytest_benchmark(tmp_path):
    proc = bench(tmp_path, "--bench-device", "cpu", "--bench-data=synthetic", "--bench-profile", "smoke",
                 "--replicates", "1", "--seed-offset", "5", "-k", "batchnorm_vs_groupnorm and 128-groupnorm",
                 f"--benchmark-json={tmp_path / 'benchmark.json'}")
    assert "1 passed" in proc.stdout or "1 failed" in proc.stdout, proc.stdout[-2000:]
    stored = json.loads((tmp_path / "benchmark.json").read_text())["benchmarks"]
    assert [b["name"] for b in stored] == ["test_batchnorm_vs_groupnorm[batch_size=128-groupnorm]"]
    assert stored[0]["extra_info"]["images_per_s"] > 0 and stored[0]["stats"]["rounds"] == 1
    results = json.loads((tmp_path / "bench.json").read_text())
    assert results["studies"]["batchnorm_vs_groupnorm"]["cells"]["batch_size=128-groupnorm"]["seeds"] == [84040]


def test_a_baseline_from_other_data_is_refused_with_the_reason(tmp_path):
    proc = bench(tmp_path, "--bench-device", "cpu", "--bench-data=synthetic", "--bench-profile", "smoke",
                 "--replicates", "1", "-k", "batchnorm_vs_groupnorm and 128-groupnorm",
                 f"--baseline={ROOT / 'bench' / 'recorded' / 'h200-bench.json'}")
    assert proc.returncode == 1
    assert "the baseline measured batchnorm_vs_groupnorm on other data (.gpu-data/cifar10-small.npz" in proc.stdout
    assert "pass a baseline made with the same --bench-data" in proc.stdout


def test_a_missing_baseline_data_file_or_results_folder_stops_the_bench_with_one_line(tmp_path, hundred_class_npz):
    out = tmp_path / "gone" / "bench.json"
    for option, message in ((f"--baseline={tmp_path / 'gone.json'}", "cannot read"),
                            (f"--bench-out={out}", f"--bench-out {out}: directory {out.parent} does not exist"),
                            ("--bench-data=cifar", "--bench-data=cifar is not data for the CIFAR-10 studies: "
                                                   "use cifar10 or synthetic, or a PATH.npz of 10 classes"),
                            ("--bench-data=cifar100", "--bench-data=cifar100 is not data for the CIFAR-10 studies"),
                            ("--bench-data-cifar100=synthetic",
                             "--bench-data-cifar100=synthetic is not data for the CIFAR-100 variant: "
                             "use cifar100 or synthetic:100"),
                            (f"--bench-data={hundred_class_npz}",
                             f"--bench-data={hundred_class_npz} holds 100 classes; the CIFAR-10 studies need 10"),
                            (f"--bench-data={tmp_path / 'gone.npz'}", "no such data file")):
        proc = bench(tmp_path, "--bench-device", "cpu", "-k", "conv_bn_relu", option)
        assert proc.returncode == 4
        assert f"ERROR: ablation-bench: {message}" in proc.stderr and "Traceback" not in proc.stderr
    assert "pass --bench-data=PATH.npz (a local copy) or --bench-data=synthetic" in proc.stderr


@pytest.mark.parametrize("option,message", [
    ("--alarm-budget=0", "argument --alarm-budget: must be between 0 and 1, got 0"),  # would pass everything
    ("--replicates=0", "argument --replicates: must be at least 1, got 0"),  # would train the default count
])
def test_the_bench_refuses_options_that_would_give_a_wrong_result(tmp_path, option, message):
    proc = bench(tmp_path, "--bench-device", "cpu", "-k", "conv_bn_relu", option)
    assert proc.returncode == 4 and message in proc.stderr and "Traceback" not in proc.stderr


def test_throughput_is_not_judged_on_the_smoke_profile(tmp_path):
    """bench/test_whole_studies.py::test_throughput on the CPU: a smoke run is too short to time, so the test
    skips and says why (compare's judging itself is tested in tests/test_compare.py)."""
    cell = ["--bench-device", "cpu", "--bench-data=synthetic", "--bench-profile", "smoke", "--replicates", "1"]
    bench(tmp_path, *cell, "-k", "batchnorm_vs_groupnorm and 128-groupnorm")
    baseline = tmp_path / "baseline.json"
    (tmp_path / "bench.json").rename(baseline)
    proc = bench(tmp_path, *cell, "-rs", "-k", "test_throughput and batchnorm_vs_groupnorm", f"--baseline={baseline}")
    assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout[-2000:]
    assert "throughput not comparable with the baseline's: smoke profile" in proc.stdout


def test_a_study_shifted_as_a_whole_fails_the_bench_against_its_baseline(tmp_path):
    """bench/test_whole_studies.py::test_accuracy_shift on the CPU, against baselines made from this run's own results
    with the seeds' accuracies spread by ±0.5: at the same mean it passes; 5 points higher in every cell, it
    fails and says by how much (3 replicates: with 2 a side, 2 df leave 5 points within chance)."""
    cell = ["--bench-device", "cpu", "--bench-data=synthetic", "--bench-profile", "smoke", "--replicates", "3"]
    bench(tmp_path, *cell, "-k", "batchnorm_vs_groupnorm and (64-groupnorm or 128-groupnorm)")
    for name, raise_by in (("same.json", 0.0), ("higher.json", 5.0)):
        baseline = json.loads((tmp_path / "bench.json").read_text())
        for record in baseline["studies"]["batchnorm_vs_groupnorm"]["cells"].values():
            record["accuracy"] = [a + raise_by + spread for a, spread in zip(record["accuracy"], (0.5, -0.5, 0.0))]
        (tmp_path / name).write_text(json.dumps(baseline))
    for name, code, outcome in (("same.json", 0, "1 passed"), ("higher.json", 1, "1 failed")):
        proc = bench(tmp_path, *cell, "-k", "test_accuracy_shift and batchnorm_vs_groupnorm",
                     f"--baseline={tmp_path / name}")
        assert proc.returncode == code and outcome in proc.stdout, proc.stdout[-2000:]
    assert "batchnorm_vs_groupnorm: mean accuracy over 2 cells moved -5.00 points against the baseline" in proc.stdout
