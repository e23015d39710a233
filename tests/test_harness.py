"""The GPU bench's machinery, run on the CPU: GPU pinning, skips, results files, benchmark records."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ablation.results import training_seconds
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

    def train(cache, name, cell_ids):
        trained.append((name, cell_ids))
        return [{"cell": cell_id, "record": cell_id} for cell_id in cell_ids]

    monkeypatch.setattr(CellCache, "_train", train)
    config = BenchConfig(data="synthetic", data_cifar100="synthetic:100", device="cpu", profile="smoke",
                         replicates=1, seed_offset=0, fault=None)
    first, second = CellCache(tmp_path, config), CellCache(tmp_path, config)
    asked = [cache.get("sigmoid_vs_relu", "blocks=1-relu") for cache in (first, second, first)]
    assert asked == [{"cell": "blocks=1-relu", "record": "blocks=1-relu"}] * 3
    assert trained == [("sigmoid_vs_relu", ["blocks=1-relu"])]


def test_a_worker_counts_its_wait_for_a_cell_another_is_training_and_its_loading_once(tmp_path, monkeypatch):
    """The bench summary's per-worker line: the time a worker blocks on a group that another worker holds the lock
    of while training it, and the data it loads, once per source."""
    import fcntl
    import threading
    import time

    monkeypatch.setattr(CellCache, "_train", lambda cache, name, cell_ids: pytest.fail("trained twice"))
    config = BenchConfig(data="synthetic", data_cifar100="synthetic:100", device="cpu", profile="smoke",
                         replicates=1, seed_offset=0, fault=None)
    cache = CellCache(tmp_path, config)
    holding = threading.Event()

    def other_worker():
        with open(tmp_path / "sigmoid_vs_relu[blocks=1-relu].json.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            holding.set()
            time.sleep(0.5)
            (tmp_path / "sigmoid_vs_relu[blocks=1-relu].json").write_text(json.dumps({"record": "theirs"}))

    worker = threading.Thread(target=other_worker)
    worker.start()
    holding.wait()
    assert cache.get("sigmoid_vs_relu", "blocks=1-relu") == {"record": "theirs"}
    worker.join()
    assert 0.4 < cache.waited_s < 5
    waited = cache.waited_s
    cache.get("sigmoid_vs_relu", "blocks=1-relu")  # stored, and nobody holds its lock: no wait to speak of
    assert cache.waited_s - waited < 0.1 and cache.loading_s == 0
    cache.dataset("synthetic")
    loaded = cache.loading_s
    cache.dataset("synthetic")
    assert loaded > 0 and cache.loading_s == loaded


ORDER = "conv_activation_norm_position"
SESSION = {ORDER: ["order=conv_bn_relu", "order=conv_relu_bn", "order=conv_leakyrelu_bn"],
           "sigmoid_vs_relu": ["blocks=1-relu"]}


def test_the_first_asker_of_a_cell_trains_its_group_and_every_worker_reads_it(tmp_path, monkeypatch):
    """As `run` does on CUDA: the session's cells of a study in the study's order, in groups of the study's number
    at once (2 here), and a cell the session does not train alone."""
    trained = []

    def train(cache, name, cell_ids):
        trained.append(cell_ids)
        return [{"cell": cell_id, "record": cell_id} for cell_id in cell_ids]

    monkeypatch.setattr(CellCache, "_train", train)
    monkeypatch.setattr("bench.harness.cells_at_once", lambda study, device: 2)
    config = BenchConfig(data="synthetic", data_cifar100="synthetic:100", device="cpu", profile="smoke",
                         replicates=1, seed_offset=0, fault=None)
    first, second = CellCache(tmp_path, config, SESSION), CellCache(tmp_path, config, SESSION)
    second.get(ORDER, "order=conv_relu_bn")
    first.get(ORDER, "order=conv_bn_relu")
    first.get(ORDER, "order=conv_leakyrelu_bn")
    first.get("batchnorm_vs_groupnorm", "batch_size=2-batchnorm")
    assert trained == [["order=conv_bn_relu", "order=conv_relu_bn"], ["order=conv_leakyrelu_bn"],
                       ["batch_size=2-batchnorm"]]
    assert second.get(ORDER, "order=conv_bn_relu") == {"cell": "order=conv_bn_relu", "record": "order=conv_bn_relu"}
    assert len(trained) == 3


def test_cells_trained_side_by_side_are_recorded_as_trained_alone_but_for_their_shared_time(tmp_path, monkeypatch):
    """A bench group of three norm-study cells (on the CPU each step in turn, as on CUDA streams; batches at which
    the CPU fuses replicates too) against each cell trained by itself: the same training, each record saying
    that it shared its time."""
    norm = "batchnorm_vs_groupnorm"
    cells = ["batch_size=8-groupnorm", "batch_size=16-batchnorm", "batch_size=32-groupnorm"]
    config = BenchConfig(data="synthetic", data_cifar100="synthetic:100", device="cpu", profile="smoke",
                         replicates=2, seed_offset=0, fault=None)
    alone = {c: CellCache(tmp_path / "alone", config).get(norm, c)["record"] for c in cells}
    monkeypatch.setattr("bench.harness.cells_at_once", lambda study, device: 3)
    grouped = CellCache(tmp_path / "grouped", config, {norm: cells})
    together = {c: grouped.get(norm, c)["record"] for c in cells}
    for cell in cells:
        assert together[cell]["accuracy"] == alone[cell]["accuracy"]
        assert together[cell]["final_loss"] == alone[cell]["final_loss"]
        assert (together[cell]["side_by_side"], alone[cell]["side_by_side"]) == (3, 1)
    assert len({record["wall_s"] for record in together.values()}) == 1


def collected(cwd, *args, env=None):
    """`pytest --co -q` in ``cwd``, as a session of its own: (exit status, node ids listed, its last line)."""
    env = env or {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)
    lines = proc.stdout.splitlines()
    return proc.returncode, [line for line in lines if "::" in line], (lines or [""])[-1]


def test_pytest_m_gpu_leaves_the_cpu_suite_uncollected(tmp_path):
    """`pytest -m gpu` (the bench) collects bench/ alone: the same tests, found and deselected, as when bench/ is
    named; the CPU suite is not imported (about 2 s of each process's start)."""
    code, ids, summary = collected(ROOT, "-m", "gpu")
    assert code == 0 and ids and all(node.startswith("bench/") for node in ids)
    assert summary.split(" in ")[0] == collected(ROOT, "bench", "-m", "gpu")[2].split(" in ")[0]
    assert collected(ROOT, "-m", "not gpu")[1][0].startswith("tests/")


def test_a_gpu_test_in_the_cpu_suite_stops_the_session_in_one_line(tmp_path):
    """`pytest -m gpu` would never run it, so wherever the CPU suite is collected it is refused by name."""
    for name in ("conftest.py", "pyproject.toml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "bench").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_misplaced.py").write_text("import pytest\n\n\n@pytest.mark.gpu\n"
                                                           "def test_trains():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")} | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "not gpu", "-p", "no:cacheprovider"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert ("tests/test_misplaced.py::test_trains is marked gpu but lives in tests/, which `pytest -m gpu` does not "
            "collect: move it to bench/") in proc.stderr
    assert "Traceback" not in proc.stderr


def bench(tmp_path, *args):
    """The bench as a session of its own, also when this suite runs in an xdist worker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "bench", "-m", "gpu", "-p", "no:cacheprovider",
                           f"--bench-out={tmp_path / 'bench.json'}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


SELECTED_CELLS = """
import json, sys, pytest
from conftest import trained_cells

class Selected:
    def pytest_collection_finish(self, session):
        self.studies = {study: len(entry["cells"]) for study, entry in trained_cells(session.items).items()}

found = []
for selection in json.loads(sys.argv[1]):
    selected = Selected()
    pytest.main(["bench", "-m", "gpu", "--collect-only", "-q", "-p", "no:cacheprovider", *selection], plugins=[selected])
    found.append(selected.studies)
print(json.dumps(found))
"""
SELECTIONS = {  # -k selections of the bench, and the cells per study their tests train
    "": {"sigmoid_vs_relu": 16, "batchnorm_vs_groupnorm": 14, "conv_activation_norm_position": 3},
    "sigmoid_vs_relu or conv_activation_norm_position": {"sigmoid_vs_relu": 16, "conv_activation_norm_position": 3},
    "sigmoid_vs_relu and 4-relu": {"sigmoid_vs_relu": 1},
    "batchnorm_breaks_down_at_small_batches": {"batchnorm_vs_groupnorm": 4},
    "test_throughput and conv_activation_norm_position": {"conv_activation_norm_position": 3},
}


def test_a_bench_session_knows_which_cells_share_its_device():
    """The cells the selected cell, finding and whole-study tests train, from their ``trains`` marks: what shares
    the device with a study, which its throughput against a baseline's needs to be the same (tests/test_compare.py).
    The variants' tests are deselected without --variants, and add nothing.  Shard 1 of 3 keeps its dealt cells'
    tests only: no finding or whole-study test, which would train the other shards' cells."""
    from ablation.shard import Shard, deal
    from ablation.studies import DOCUMENTED

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    selections = [["-k", k] if k else [] for k in SELECTIONS] + [["--shard", "1/3"]]
    proc = subprocess.run([sys.executable, "-c", SELECTED_CELLS, json.dumps(selections)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    shard = {}
    for study, _ in deal([(s, c) for s in DOCUMENTED for c in s.cells], Shard(1, 3)):
        shard[study.name] = shard.get(study.name, 0) + 1
    assert json.loads(proc.stdout.splitlines()[-1]) == [*SELECTIONS.values(), shard], proc.stdout[-2000:]


def test_without_a_gpu_the_bench_skips_with_a_reason_or_fails_under_require_gpu(tmp_path, pytester):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    skipped = bench(tmp_path, "-k", "sigmoid_vs_relu and 1-relu or test_graph_replays", "-rs")
    assert skipped.returncode == 0 and "5 skipped" in skipped.stdout  # a cell and the 4 CUDA-graph checks
    assert "no CUDA GPU visible" in skipped.stdout
    from conftest import _need_gpu

    with pytest.raises(pytest.fail.Exception, match="--require-gpu: no CUDA GPU visible"):
        _need_gpu(pytester.parseconfig("-p", "conftest", "--require-gpu"))


class OptionRecorder:
    """Stands in for pytest's parser: records what pytest_addoption adds, by option name."""

    def __init__(self):
        self.options = {}

    def getgroup(self, *args):
        return self

    def addoption(self, name, **settings):
        self.options[name] = settings


def test_the_bench_help_says_what_each_planted_fault_breaks_and_every_default(tmp_path):
    """`pytest --help` as a user reads it (argparse formats every help text: a bare % there would crash it), and
    without leaving a bench session's cell directory behind in the temporary folder."""
    from bench.faults import FAULTS
    from conftest import pytest_addoption

    shown = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []
    text = " ".join(shown.stdout.split())
    for name, fault in FAULTS.items():
        assert f"{name}: {fault.description}" in text
    recorder = OptionRecorder()
    pytest_addoption(recorder)
    quiet = {"--require-gpu", "--variants", "--no-cuda-graphs", "--deterministic", "--plant-fault", "--replicates",
             "--baseline", "--same-training"}
    for name, settings in recorder.options.items():
        assert name in quiet or "default" in settings["help"], name


def test_bench_on_cpu_under_xdist_writes_one_results_file(tmp_path, tiny_npz):
    """Two workers, two cells and a finding that needs all three order cells: each cell trained once."""
    proc = bench(tmp_path, "-n", "2", "--bench-device", "cpu", f"--bench-data={tiny_npz}", "--bench-profile", "smoke",
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
    split = next(line for line in proc.stdout.splitlines() if line.endswith("waiting for another worker's cells)"))
    assert split.startswith(f"3 cells: {training_seconds(cells.values()):.1f} s training, ")
    session = float(re.search(r"; ([0-9.]+) s since the session began", split).group(1))
    line_of_a_worker = (r"(gw[01]): its first bench test at ([0-9.]+) s, ([0-9.]+) s loading data and starting the "
                        r"device, ([0-9.]+) s waiting for cells another worker was training, done at ([0-9.]+) s")
    workers = [re.fullmatch(line_of_a_worker, line) for line in proc.stdout.splitlines() if line.startswith("gw")]
    assert sorted(m.group(1) for m in workers if m) == ["gw0", "gw1"], proc.stdout[-3000:]
    for worker in workers:  # each worker's own clock against the controller's, within the session's rounding
        first, loading, waited, done = map(float, worker.groups()[1:])
        assert 0 < first < done <= session + 0.1 and loading < done - first and waited < done - first
    power = next(line for line in proc.stdout.splitlines() if "accuracy, median cell" in line)
    assert power.split()[4:9] == ["2", "band", "too", "few", "(3"]  # 2 replicates: no spread to state power by
    documented = next(line for line in proc.stdout.splitlines() if "documented table, median cell" in line)
    assert documented.split()[:7] == ["conv_activation_norm_position", "documented", "table,", "median", "cell", "2",
                                      "band"]  # against 3 documented runs: a spread, so a drop to state

    # the same bench against that file, relabelled as the full profile's (whose throughput can be timed): the
    # workers know that they are two, so it is not refused as trained another way, but as too short to time
    results["profile"] = "full"
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "baseline.json").write_text(json.dumps(results))
    again = bench(tmp_path / "again", "-n", "2", "--bench-device", "cpu", f"--bench-data={tiny_npz}", "--bench-profile",
                  "smoke", "--replicates", "2", "-k", "conv_activation_norm_position and throughput",
                  f"--baseline={tmp_path / 'again' / 'baseline.json'}")
    skipped = [line for line in again.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "under 5 s of training" in skipped[0], again.stdout[-2000:]


def test_bench_without_xdist_reaches_pytest_benchmark_and_refuses_a_baseline_from_other_data(tmp_path, tiny_npz):
    """One session without workers: the cell's training time goes to pytest-benchmark, its seeds follow
    --seed-offset, and a baseline measured on other data fails the cell with the reason."""
    proc = bench(tmp_path, "--bench-device", "cpu", f"--bench-data={tiny_npz}", "--bench-profile", "smoke",
                 "--replicates", "1", "--seed-offset", "5", "-k", "batchnorm_vs_groupnorm and 128-groupnorm",
                 f"--benchmark-json={tmp_path / 'benchmark.json'}",
                 f"--baseline={ROOT / 'bench' / 'recorded' / 'h200-bench.json'}")
    assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout[-2000:]
    assert "the baseline measured batchnorm_vs_groupnorm on other data (cifar10-small.npz" in proc.stdout
    assert "pass a baseline made with the same --bench-data" in proc.stdout
    stored = json.loads((tmp_path / "benchmark.json").read_text())["benchmarks"]
    assert [b["name"] for b in stored] == ["test_batchnorm_vs_groupnorm[batch_size=128-groupnorm]"]
    assert stored[0]["extra_info"]["images_per_s"] > 0 and stored[0]["stats"]["rounds"] == 1
    results = json.loads((tmp_path / "bench.json").read_text())
    assert results["studies"]["batchnorm_vs_groupnorm"]["cells"]["batch_size=128-groupnorm"]["seeds"] == [84040]


def test_a_cell_test_that_finds_its_cell_trained_leaves_pytest_benchmark_alone(tmp_path, tiny_npz):
    """The finding runs first and trains the order cells; each cell test then reads its cell and takes no
    pytest-benchmark fixture (an unused one warns in every such test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "bench/test_findings.py", "bench/test_cells.py", "-m", "gpu",
                           "-p", "no:cacheprovider", "--bench-device", "cpu", f"--bench-data={tiny_npz}",
                           "--bench-profile", "smoke", "--replicates", "2", "-k", "conv_activation_norm_position",
                           f"--bench-out={tmp_path / 'bench.json'}", f"--benchmark-json={tmp_path / 'timing.json'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    ran = [m.groups() for m in (re.match(r"(bench/test_\w+\.py) ([.FEsx]+) ", line)
                                 for line in proc.stdout.splitlines()) if m]
    assert [(path, len(outcomes)) for path, outcomes in ran] == [("bench/test_findings.py", 1),
                                                                 ("bench/test_cells.py", 3)], proc.stdout[-2000:]
    assert "Benchmark fixture was not used" not in proc.stdout
    assert not (tmp_path / "timing.json").exists()  # the finding trained every cell: nothing was timed twice


class Options:
    """The bench's options as pytest.Config.getoption reads them: the defaults, some replaced."""

    def __init__(self, tmp_path, **given):
        self.values = {"baseline": None, "same_training": False, "bench_data": "cifar10",
                       "bench_data_cifar100": "cifar100", "bench_out": str(tmp_path / "bench.json"), **given}

    def getoption(self, name):
        return self.values[name.lstrip("-").replace("-", "_")]


def test_bad_bench_inputs_stop_the_bench_before_training_with_one_line(tmp_path, hundred_class_npz):
    from conftest import _check_bench_inputs

    out = tmp_path / "gone" / "bench.json"
    previous = tmp_path / "previous.json"  # a run's results, given as the baseline and as where to write the run
    previous.write_text((Path(__file__).parent.parent / "bench" / "recorded" / "h200-bench.json").read_text())
    for option, message in (({"baseline": str(tmp_path / "gone.json")}, "cannot read"),
                            ({"baseline": str(previous), "bench_out": str(previous)},
                             f"--bench-out {previous} is the --baseline file, which the run would overwrite"),
                            ({"bench_out": str(out)}, f"--bench-out {out}: directory {out.parent} does not exist"),
                            ({"bench_data": "cifar"}, "--bench-data=cifar is not data for the CIFAR-10 studies: "
                                                      "use cifar10 or synthetic, or a PATH.npz of 10 classes"),
                            ({"bench_data": "cifar100"}, "--bench-data=cifar100 is not data for the CIFAR-10 studies"),
                            ({"bench_data_cifar100": "synthetic"},
                             "--bench-data-cifar100=synthetic is not data for the CIFAR-100 variant: "
                             "use cifar100 or synthetic:100"),
                            ({"bench_data": str(hundred_class_npz)},
                             f"--bench-data={hundred_class_npz} holds 100 classes; the CIFAR-10 studies need 10"),
                            ({"bench_data": str(tmp_path / "gone.npz")}, "no such data file")):
        with pytest.raises(pytest.UsageError) as stopped:
            _check_bench_inputs(Options(tmp_path, **option))
        assert str(stopped.value).startswith("ablation-bench: ") and message in str(stopped.value)
    assert "pass --bench-data=PATH.npz (a local copy) or --bench-data=synthetic" in str(stopped.value)
    # in a real session: pytest's usage-error exit status 4, the line, no traceback
    proc = bench(tmp_path, "--bench-device", "cpu", "-k", "conv_bn_relu", f"--bench-data={tmp_path / 'gone.npz'}")
    assert proc.returncode == 4
    assert "ERROR: ablation-bench: no such data file" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("option,message", [
    ("--alarm-budget=0", "argument --alarm-budget: must be between 0 and 1, got 0"),  # would pass everything
    ("--replicates=0", "argument --replicates: must be at least 1, got 0"),  # would train the default count
])
def test_the_bench_refuses_options_that_would_give_a_wrong_result(pytester, option, message):
    """Refused while pytest parses its options (a usage error: exit status 4, one line)."""
    with pytest.raises(pytest.UsageError, match=message):
        pytester.parseconfig("-p", "conftest", option)


def smoke_baseline(tiny_npz, accuracies):
    """A baseline results file as the bench writes it for the norm study's cells on ``tiny_npz`` (smoke profile,
    on the CPU), made here without a bench session: ``accuracies`` maps cell ids to replicate accuracies."""
    import torch

    from ablation.data import load_npz
    from ablation.results import add_study, new_results
    from ablation.studies import get_study
    from ablation.train import prepare

    study = get_study("batchnorm_vs_groupnorm")
    hp = study.settings("smoke")
    data = prepare(load_npz(str(tiny_npz)), hp.per_class, study.subset_seed, "cpu", hp.test_limit)
    results = new_results(torch.device("cpu"), str(tiny_npz), "smoke")
    results["bench"] = {"seed_offset": 0, "fault": None, "cuda_graphs": False, "workers": 0}
    entry = add_study(results, study, "smoke", str(tiny_npz), data.checksum, data.classes)
    for cell_id, values in accuracies.items():
        cell = study.cell(cell_id)
        entry["cells"][cell_id] = {"level": cell.level, "variant": cell.variant, "documented": None,
                                   "seeds": study.seeds(len(values)), "accuracy": values,
                                   "collapsed": [False] * len(values), "wall_s": 1.0, "images_per_s": 1000.0}
    return results


def test_a_study_shifted_as_a_whole_fails_the_bench_and_throughput_is_not_judged_on_smoke(tmp_path, tiny_npz):
    """bench/test_whole_studies.py on the CPU, against baselines made from the same cells' accuracies (trained here
    as the bench trains them) with the seeds spread by ±0.5: at the same mean the shift test passes, and the
    throughput test skips, saying why (a smoke run is too short to time; compare's judging is tested in
    tests/test_compare.py); 20 points higher in every cell, the shift test fails and says by how much (the 3 seeds
    are the baseline's: the paired t has 2 df)."""
    import torch

    from ablation.data import load_npz
    from ablation.runner import run_cell
    from ablation.studies import get_study
    from ablation.train import prepare

    study = get_study("batchnorm_vs_groupnorm")
    hp = study.settings("smoke")
    data = prepare(load_npz(str(tiny_npz)), hp.per_class, study.subset_seed, torch.device("cpu"), hp.test_limit)
    cells = ("batch_size=64-groupnorm", "batch_size=128-groupnorm")
    trained = {c: run_cell(study, study.cell(c), data, 3, "smoke").accuracy for c in cells}
    for name, raise_by in (("same.json", 0.0), ("higher.json", 20.0)):
        moved = {c: [a + raise_by + spread for a, spread in zip(values, (0.5, -0.5, 0.0))]
                 for c, values in trained.items()}
        (tmp_path / name).write_text(json.dumps(smoke_baseline(tiny_npz, moved)))
    cell = ["--bench-device", "cpu", f"--bench-data={tiny_npz}", "--bench-profile", "smoke", "--replicates", "3"]
    same = bench(tmp_path, *cell, "-rs", "-k", "(test_accuracy_shift or test_throughput) and batchnorm_vs_groupnorm",
                 f"--baseline={tmp_path / 'same.json'}")
    assert same.returncode == 0 and "1 passed, 1 skipped" in same.stdout, same.stdout[-2000:]
    assert "throughput not comparable with the baseline's: smoke profile" in same.stdout
    proc = bench(tmp_path, *cell, "-k", "test_accuracy_shift and batchnorm_vs_groupnorm",
                 f"--baseline={tmp_path / 'higher.json'}")
    assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout[-2000:]
    assert ("batchnorm_vs_groupnorm: mean accuracy over 2 cells moved -20.00 points against the baseline (paired t"
            in proc.stdout)


def test_a_bench_shard_trains_only_its_dealt_cells_and_leaves_the_findings_to_the_merged_file(tmp_path, tiny_npz):
    from ablation.shard import Shard, deal
    from ablation.studies import DOCUMENTED

    proc = bench(tmp_path, "--bench-device", "cpu", f"--bench-data={tiny_npz}", "--bench-profile", "smoke",
                 "--replicates", "1", "--shard", "2/3", "-k", "conv_activation_norm_position")
    results = json.loads((tmp_path / "bench.json").read_text())
    dealt = [c.id for s, c in deal([(s, c) for s in DOCUMENTED for c in s.cells], Shard(2, 3))
             if s.name == "conv_activation_norm_position"]
    assert list(results["studies"]["conv_activation_norm_position"]["cells"]) == dealt and 0 < len(dealt) < 3
    assert results["shard"] == {"index": 2, "count": 3}
    assert "test_finding" not in proc.stdout and "deselected" in proc.stdout.splitlines()[-1]


def test_bench_same_training_fails_a_cell_whose_numerics_changed(tmp_path, tiny_npz, run_norm_cells):
    """--same-training in the bench, against a same-seed baseline under a planted fault of GroupNorm: the GroupNorm
    cell's test names the first epoch that departs; the BatchNorm cell's, which the fault leaves alone, adds no
    failure.  (On the smoke profile every cell test fails against the documented table: one epoch on 20 images
    per class ends at chance.)"""
    baseline = run_norm_cells(tmp_path / "base.json")
    proc = bench(tmp_path, "--bench-device", "cpu", f"--bench-data={tiny_npz}", "--bench-profile", "smoke",
                 "--replicates", "2", "-k", "test_batchnorm_vs_groupnorm and (64-groupnorm or 64-batchnorm)",
                 f"--baseline={baseline}", "--same-training", "--plant-fault=groupnorm_one_group")
    assert proc.returncode == 1 and "2 failed" in proc.stdout, proc.stdout[-2000:]
    reports = re.split(r"_{3,} test_batchnorm_vs_groupnorm\[batch_size=64-(\w+)\] _{3,}", proc.stdout)
    failures = {norm: "\n".join(line for line in report.splitlines() if line.startswith("E "))  # not the source
                for norm, report in zip(reports[1::2], reports[2::2])}
    assert all("against the documented table" in failures[norm] for norm in ("batchnorm", "groupnorm"))
    assert "numerics changed (--same-training): training loss departs at epoch 1" in failures["groupnorm"]
    assert "numerics changed" not in failures["batchnorm"]


def test_bench_same_training_needs_a_baseline(tmp_path):
    from conftest import _check_bench_inputs

    with pytest.raises(pytest.UsageError, match="ablation-bench: --same-training needs --baseline=FILE"):
        _check_bench_inputs(Options(tmp_path, same_training=True))
