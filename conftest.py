"""Shared pytest set-up: where the real CIFAR-10 copy is, and the GPU bench's options and session."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest_plugins = ["pytester"]  # tests/test_harness.py parses the bench's options in-process

DATA_ENV = "ABLATION_TEST_DATA"
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "shared" / "data" / "cifar10-small.npz"
SESSION_ENV = "ABLATION_BENCH_CELLS"  # the cell cache directory, handed from the controller to xdist workers
STARTED_ENV = "ABLATION_BENCH_STARTED"  # the controller's session start (time.time()), handed to the workers
CPU_SUITE = Path(__file__).resolve().parent / "tests"  # no test here is marked gpu: they live in bench/
BENCH_DATA = {  # option -> the studies it feeds and the dataset it stands in for
    "--bench-data": ("the CIFAR-10 studies", "cifar10"),
    "--bench-data-cifar100": ("the CIFAR-100 variant", "cifar100"),
}


@pytest.fixture
def hundred_class_npz(tmp_path: Path) -> Path:
    """A CIFAR-100-shaped .npz (labels 0-99) for the checks that refuse it where CIFAR-10 is meant."""
    path = tmp_path / "hundred.npz"
    images, labels = np.zeros((100, 32, 32, 3), np.uint8), np.arange(100)
    np.savez(path, train_x=images, train_y=labels, test_x=images, test_y=labels)
    return path


@pytest.fixture
def never_finite_second_replicate(monkeypatch: pytest.MonkeyPatch):
    """train.init_models with an inf weight in replicate 1's first convolution, so its gradients are never
    finite; returns the patched function (its models are the initial state)."""
    import torch

    import ablation.train as train

    make = train.init_models

    def poisoned(*args):
        models = make(*args)
        with torch.no_grad():
            models[1][0].conv.weight[0, 0, 0, 0] = float("inf")
        return models

    monkeypatch.setattr(train, "init_models", poisoned)
    return poisoned


@pytest.fixture
def stubbed_cuda_streams(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """CUDA streams without a GPU: torch.cuda.Stream() makes "stream 0", "stream 1", ...; torch.cuda.stream(s)
    makes s the current stream for its block; synchronizing does nothing.  Returns the stack of current streams:
    its last entry is the current one ("default" outside every block)."""
    import itertools

    import torch

    current = ["default"]
    made = itertools.count()

    class StreamContext:
        def __init__(self, stream: str) -> None:
            self.stream = stream

        def __enter__(self) -> None:
            current.append(self.stream)

        def __exit__(self, *exc: object) -> None:
            current.pop()

    monkeypatch.setattr(torch.cuda, "Stream", lambda *args, **kwargs: f"stream {next(made)}")
    monkeypatch.setattr(torch.cuda, "stream", StreamContext)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: None)
    return current


@pytest.fixture(scope="session")
def cifar_npz() -> Path:
    """The offline CIFAR-10 copy (../shared/data/cifar10-small.npz, or $ABLATION_TEST_DATA)."""
    path = Path(os.environ.get(DATA_ENV, DEFAULT_DATA))
    if not path.is_file():
        if DATA_ENV in os.environ:
            pytest.fail(f"{DATA_ENV}={path} does not exist")
        pytest.skip(f"no CIFAR-10 copy at {path}; set {DATA_ENV}=PATH.npz to run this test")
    return path


@pytest.fixture(scope="session")
def small_cifar_npz(cifar_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A slice of the real copy, as much as the smoke profile trains on: 20 training images per class (the first
    of each class) and the first 100 test images; the whole pipeline on real images at a tenth of the evaluation."""
    return _slice_npz(np.load(cifar_npz), tmp_path_factory.mktemp("data") / "cifar10-slice.npz")


@pytest.fixture(scope="session")
def tiny_data():
    """Generated class-conditional images (ablation.data.synthetic), as many as the smoke profile trains on (20 per
    class) and 100 test images."""
    from ablation.data import synthetic

    return synthetic(train_per_class=20, test_per_class=10)


@pytest.fixture(scope="session")
def tiny_npz(tiny_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_data as a .npz file, for the command line and the bench."""
    arrays = {"train_x": tiny_data.train_x.numpy(), "train_y": tiny_data.train_y.numpy(),
              "test_x": tiny_data.test_x.numpy(), "test_y": tiny_data.test_y.numpy()}
    return _slice_npz(arrays, tmp_path_factory.mktemp("data") / "tiny.npz")


@pytest.fixture
def run_norm_cells(capsys: pytest.CaptureFixture, tiny_npz: Path):
    """Runs `run` on the norm study's two batch-64 cells (smoke profile, 2 replicates, tiny_npz) into a results
    file: run_norm_cells(path, *more_options) -> path."""
    from ablation.cli import main

    def run(path: Path, *extra: str) -> Path:
        code = main(["run", "batchnorm_vs_groupnorm", "--data", str(tiny_npz), "--device", "cpu", "--profile",
                     "smoke", "--replicates", "2", "--quiet", "--out", str(path), "--cell", "batch_size=64-batchnorm",
                     "--cell", "batch_size=64-groupnorm", *extra])
        capsys.readouterr()
        assert code == 0
        return path

    return run


def _slice_npz(arrays: Any, path: Path) -> Path:
    labels = np.asarray(arrays["train_y"])
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:20] for c in range(int(labels.max()) + 1)]))
    np.savez(path, train_x=np.asarray(arrays["train_x"])[keep], train_y=labels[keep],
             test_x=np.asarray(arrays["test_x"])[:100], test_y=np.asarray(arrays["test_y"])[:100])
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    from ablation.cli import add_tolerance_options, replicate_plan, shard_option, zero_or_more
    from ablation.studies import PROFILES
    from ablation.verdict import Tolerance
    from bench.faults import FAULTS

    default = Tolerance()
    group = parser.getgroup("ablation-bench", "GPU regression bench (pytest -m gpu)")
    group.addoption("--require-gpu", action="store_true",
                    help="fail, instead of skip, the GPU tests when no CUDA GPU is visible")
    group.addoption("--bench-data", default=os.environ.get("ABLATION_BENCH_DATA", "cifar10"),
                    help="data of the CIFAR-10 studies: cifar10 (default), synthetic or PATH.npz; "
                         "env ABLATION_BENCH_DATA")
    group.addoption("--bench-data-cifar100", default="cifar100",
                    help="data of the CIFAR-100 variant: cifar100 (default), synthetic:100 or PATH.npz")
    group.addoption("--variants", action="store_true",
                    help="also run the two untabulated variants (long; CIFAR-100), deselected by default")
    group.addoption("--bench-device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu runs the bench's machinery without a GPU, for its own tests (default %(default)s)")
    group.addoption("--bench-profile", choices=PROFILES, default="full",
                    help="smoke: short training that exercises the bench's machinery (its own tests); its cells "
                         "cannot match the documented tables (default %(default)s)")
    group.addoption("--replicates", type=replicate_plan, default="pr", metavar="PLAN|N",
                    help="replicates per cell: pr (each study's own count), nightly (16 / 16 / 24, for a 0.5-point "
                         "detectable study shift against a same-seed baseline) or a number (default %(default)s)")
    group.addoption("--baseline", help="results JSON of a known-good run: also check drift against it (default: none)")
    group.addoption("--bench-out", default="bench-results.json",
                    help="results JSON this run writes (default %(default)s)")
    add_tolerance_options(group.addoption)
    group.addoption("--allowance-data", type=zero_or_more, default=default.data_copy,
                    help="points, downward, for data other than torchvision's CIFAR-10 (default %(default)s)")
    group.addoption("--shard", type=shard_option, metavar="K/N",
                    help="only the K-th of N shares of the cell tests, dealt as run --shard deals them; no findings "
                         "or whole-study tests: merge the shards' --bench-out files and judge them (default: all)")
    group.addoption("--seed-offset", type=int, default=0,
                    help="shift every replicate seed, for independent repeats (default %(default)s)")
    faults = "; ".join(f"{name}: {fault.description}" for name, fault in FAULTS.items())
    group.addoption("--plant-fault", choices=sorted(FAULTS), metavar="NAME",  # % doubled: argparse formats help
                    help="plant a known bug, to measure what the bench catches: " + faults.replace("%", "%%"))
    group.addoption("--deterministic", action="store_true",
                    help="deterministic kernels only (python -m ablation run --deterministic)")
    group.addoption("--no-cuda-graphs", action="store_true",
                    help="on CUDA, launch every step's kernels one by one (python -m ablation run --no-cuda-graphs)")


def _worker_id(config: pytest.Config) -> str | None:
    """'gwN' in an xdist worker of this session; None in the controller or a run without xdist.

    Read from the session itself, not the environment: a pytest started by a
    test inside a worker inherits PYTEST_XDIST_WORKER but is a session of its own.
    """
    workerinput = getattr(config, "workerinput", None)
    return workerinput["workerid"] if workerinput else None


def pytest_configure(config: pytest.Config) -> None:
    from bench.faults import FAULTS
    from bench.harness import gpu_count, worker_gpu

    worker = _worker_id(config)
    if worker:
        _share_cores(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    if worker and config.getoption("bench_device") == "cuda":
        gpu = worker_gpu(worker, os.environ.get("CUDA_VISIBLE_DEVICES"), gpu_count())
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    if not worker:
        _check_bench_inputs(config)
    if config.getoption("plant_fault"):
        FAULTS[config.getoption("plant_fault")].patch()
    if config.getoption("deterministic"):
        from ablation.train import use_deterministic_algorithms

        use_deterministic_algorithms()


_session: dict[str, Any] = {}  # the controller's: its merged results and its workers' times
_worker: dict[str, Any] = {}  # this process's bench: its cell cache, and when its first bench test asked for it


def pytest_sessionstart(session: pytest.Session) -> None:
    """On the controller, before xdist starts its workers (which inherit it): the session's cell cache directory.
    Made here, not at configure, so that `pytest --help` and the like leave none behind."""
    if not _worker_id(session.config):
        os.environ[SESSION_ENV] = tempfile.mkdtemp(prefix="ablation-bench-cells-")
        os.environ[STARTED_ENV] = str(time.time())


def _share_cores(workers: int) -> None:
    """Give each xdist worker its share of the cores, for torch here and in the processes its tests start: with
    every worker on all of them, `-n 2` on 2 cores ran the CPU suite at 0.65x the speed of no workers."""
    import torch

    threads = max(1, (os.cpu_count() or 1) // workers)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """`pytest -m gpu` leaves the CPU suite uncollected: importing it cost each process about 2 s of the bench's
    start, and it holds no GPU test (pytest_itemcollected sees to that wherever it is collected)."""
    in_suite = collection_path == CPU_SUITE or CPU_SUITE in collection_path.parents
    return True if in_suite and (config.option.markexpr or "").strip() == "gpu" else None


_misplaced: list[str] = []  # tests of the CPU suite marked gpu, which `pytest -m gpu` would never run


def pytest_itemcollected(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") and CPU_SUITE in item.path.parents:
        _misplaced.append(item.nodeid)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The variant studies' GPU tests run only when asked for with --variants; with --shard K/N, only the cell
    tests of this shard's cells (see shard_keeps).  A GPU test in the CPU suite stops the session first."""
    if _misplaced:
        raise pytest.UsageError(f"{_misplaced[0]} is marked gpu but lives in tests/, which `pytest -m gpu` does not "
                                "collect: move it to bench/")
    variants, shard = config.getoption("variants"), config.getoption("shard")
    mine = shard_cells(shard, variants) if shard else set()
    keep = [item for item in items if (variants or not item.get_closest_marker("variant"))
            and (shard is None or shard_keeps(item, shard, mine))]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep


def shard_cells(shard: Any, variants: bool) -> set[tuple[str, str]]:
    """(study, cell) of every cell ablation.shard deals to this shard, as run --shard deals them."""
    from ablation.shard import deal
    from ablation.studies import STUDIES

    studies = [s for s in STUDIES.values() if variants or s.variant_of is None]
    return {(s.name, c.id) for s, c in deal([(s, c) for s in studies for c in s.cells], shard)}


def shard_keeps(item: pytest.Item, shard: Any, mine: set[tuple[str, str]]) -> bool:
    """In shard K of N: the cell tests of its cells (``mine``); no findings or whole-study tests (they need every
    cell: judge the merged file with report and compare); every other test in shard 1 only."""
    if item.path.name != "test_cells.py":
        return shard.index == 1 and item.path.name not in ("test_findings.py", "test_whole_studies.py")
    return tuple(item.get_closest_marker("trains").args) in mine


def _in_bench_terms(error: Exception) -> str:
    """The data layer names the command line's --data; here the option is --bench-data."""
    return "ablation-bench: " + str(error).replace("--data ", "--bench-data=")


def _check_bench_inputs(config: pytest.Config) -> None:
    """Data that is unknown or has the wrong number of classes for its studies, a missing or unusable baseline or
    .npz, or a results file that cannot be written or is the baseline stops the run at once with one line (exit 4),
    not after the training."""
    from ablation.cli import UsageError, check_keeps_baseline, check_writable
    from ablation.data import SOURCE_CLASSES, DataError, load_npz, sources_with
    from ablation.results import ResultsError, read_results

    try:
        if config.getoption("baseline"):
            read_results(config.getoption("baseline"))
        elif config.getoption("same_training"):
            raise UsageError("--same-training needs --baseline=FILE: it compares each cell's replicates with the "
                             "baseline's of the same seeds")
        for option, (studies, dataset) in BENCH_DATA.items():
            source, classes = config.getoption(option), SOURCE_CLASSES[dataset]
            if source.endswith(".npz"):
                if (found := load_npz(source).classes) != classes:
                    raise DataError(f"{option}={source} holds {found} classes; {studies} need {classes}")
            elif SOURCE_CLASSES.get(source) != classes:
                raise DataError(f"{option}={source} is not data for {studies}: use {sources_with(classes)}")
        check_writable(Path(config.getoption("bench_out")), "--bench-out", "bench-results.json")
        check_keeps_baseline(Path(config.getoption("bench_out")), "--bench-out", config.getoption("baseline"))
    except (ResultsError, DataError, UsageError) as error:
        raise pytest.UsageError(_in_bench_terms(error)) from None


@dataclass
class Bench:
    cache: Any  # bench.harness.CellCache
    tolerance: Any  # ablation.verdict.Tolerance
    copy: bool  # data other than torchvision CIFAR: the data_copy allowance applies
    baseline: dict[str, Any] | None
    min_throughput: float | None  # None: compare.min_throughput of the tolerance
    trained: dict[str, Any]  # the cells this session's selected tests train, as a results file's "studies"


def _bench_config(config: pytest.Config):
    from bench.harness import BenchConfig

    return BenchConfig(
        data=config.getoption("bench_data"), data_cifar100=config.getoption("bench_data_cifar100"),
        device=config.getoption("bench_device"),
        profile=config.getoption("bench_profile"), replicates=config.getoption("replicates"),
        seed_offset=config.getoption("seed_offset"), fault=config.getoption("plant_fault"),
        graphs=config.getoption("bench_device") == "cuda" and not config.getoption("no_cuda_graphs"),
        workers=_workers(config),
        shard=config.getoption("shard"),
    )


def _workers(config: pytest.Config) -> int:
    """The xdist workers sharing the device (0: none), as the controller and each worker know it (a worker's own
    -n option is not set)."""
    if _worker_id(config):
        return int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    return getattr(config.option, "numprocesses", None) or 0


def _tolerance(config: pytest.Config):
    from ablation.cli import tolerance_of

    return tolerance_of(config.option, data_copy=config.getoption("allowance_data"))


def _need_gpu(config: pytest.Config) -> None:
    """Skip the calling GPU test with the reason, or fail it under --require-gpu, when no CUDA GPU is visible."""
    import torch

    if not torch.cuda.is_available():
        reason = "no CUDA GPU visible (torch.cuda.is_available() is False)"
        if config.getoption("require_gpu"):
            pytest.fail(f"--require-gpu: {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def cuda(pytestconfig: pytest.Config) -> None:
    """For GPU tests that need CUDA itself, whatever --bench-device says."""
    _need_gpu(pytestconfig)


def trained_cells(items: list[pytest.Item]) -> dict[str, Any]:
    """The cells the selected GPU tests train (their ``trains`` marks), as a results file's "studies": the cells
    that share the device in this session."""
    studies: dict[str, Any] = {}
    for item in items:
        for mark in item.iter_markers("trains"):
            study, *cells = mark.args
            studies.setdefault(study, {"cells": {}})["cells"].update(dict.fromkeys(cells, {}))
    return studies


@pytest.fixture(scope="session")
def bench(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Bench:
    """The bench session of this worker: every GPU test takes it, so it also decides skip or fail without a GPU."""
    from ablation.data import DataError
    from ablation.results import read_results
    from ablation.verdict import uses_data_copy
    from bench.harness import CellCache

    if pytestconfig.getoption("bench_device") == "cuda":
        _need_gpu(pytestconfig)
    baseline = pytestconfig.getoption("baseline") and read_results(pytestconfig.getoption("baseline"))
    config = _bench_config(pytestconfig)
    trained = trained_cells(request.session.items)
    cache = CellCache(Path(os.environ[SESSION_ENV]), config,
                      {study: entry["cells"] for study, entry in trained.items()})
    _worker.update(cache=cache, first_test=time.time())
    try:  # data that cannot be had (offline download, say): one line per test, not a traceback
        cache.dataset(config.data)
        problem = None
    except DataError as error:
        problem = _in_bench_terms(error)
    if problem:
        pytest.fail(problem, pytrace=False)
    return Bench(cache, _tolerance(pytestconfig), uses_data_copy(config.data), baseline,
                 pytestconfig.getoption("min_throughput"), trained)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In each process that ran bench tests: where its time went, for the summary.  On the controller: merge the
    cells every worker trained into the results file."""
    if SESSION_ENV not in os.environ:
        return
    directory = Path(os.environ[SESSION_ENV])
    if "cache" in _worker:
        _write_worker_times(directory, _worker_id(session.config))
    if _worker_id(session.config):
        return
    from ablation.results import write_json
    from bench.harness import CellCache

    _session["workers"] = [json.loads(path.read_text()) for path in sorted(directory.glob("*.times"))]
    results = CellCache(directory, _bench_config(session.config)).merged()
    shutil.rmtree(directory, ignore_errors=True)
    if results is not None:
        write_json(results, session.config.getoption("bench_out"))
        _session["results"] = results


def _since_start(moment: float | None = None) -> float:
    """Seconds from the controller's session start (STARTED_ENV, in every process) to ``moment`` (default: now)."""
    return (time.time() if moment is None else moment) - float(os.environ[STARTED_ENV])


def _write_worker_times(directory: Path, worker: str | None) -> None:
    """This process's bench times, in seconds since the session began, beside the cells it trained (worker: its
    xdist id, None without workers)."""
    cache = _worker["cache"]
    times = {"worker": worker or "the session", "first_test": _since_start(_worker["first_test"]),
             "loading": cache.loading_s, "waited": cache.waited_s, "done": _since_start()}
    (directory / f"{worker or 'main'}.times").write_text(json.dumps(times))


def _worker_times_text(times: dict[str, Any]) -> str:
    """One process's line of the bench summary: where the time went that its cells' own figures leave out."""
    return (f"{times['worker']}: its first bench test at {times['first_test']:.1f} s, {times['loading']:.1f} s "
            f"loading data and starting the device, {times['waited']:.1f} s waiting for cells another worker was "
            f"training, done at {times['done']:.1f} s")


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    results = _session.get("results")
    if results is None:
        return
    from ablation.compare import compare, report
    from ablation.findings import FINDINGS
    from ablation.results import ResultsError, format_results, read_results, time_split

    write = terminalreporter.write_line
    terminalreporter.section("ablation-bench results")
    write(format_results(results, "table"))
    for finding in FINDINGS:
        ok, detail = finding.judge(results, _tolerance(config))
        if ok is not None:
            write(f"finding {finding.study}:{finding.name}: {'holds' if ok else 'FAILS'}: {detail}")
    from ablation.power import power_rows, power_table

    baseline = None
    if config.getoption("baseline"):
        try:
            baseline = read_results(config.getoption("baseline"))
        except ResultsError as error:
            write(f"drift against the baseline not computed: {error}")
    if powers := power_rows(results, _tolerance(config), baseline=baseline):
        write("smallest shifts of a study and of its median cell that this run's replicate counts detect (80 % power; "
              "paired where the baseline shares the seeds, then for a change that moves each seed's run no further "
              "from the baseline than this run did), the median cell's drop below the documented table that fails "
              "it, and each finding's shortfall below its margin:")
        write(power_table(powers, None, False))
    records = [cell for study in results["studies"].values() for cell in study["cells"].values()]
    write(f"{time_split(records)}, every worker's together; {_since_start():.1f} s since "
          "the session began (the rest: starting pytest, its workers and the device, loading data, waiting for "
          "another worker's cells)")
    for times in _session.get("workers", ()):
        write(_worker_times_text(times))
    write(f"results written to {config.getoption('bench_out')}")
    if baseline is not None:
        try:
            comparison = compare(baseline, results, _tolerance(config), config.getoption("min_throughput"))
        except ResultsError as error:
            write(f"drift against the baseline not computed: {error}")
            return
        write(report(comparison, markdown=False))
