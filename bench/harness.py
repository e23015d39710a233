"""The GPU bench's plumbing: one training per cell shared by xdist workers, GPU pinning, results files.

Cell tests and findings tests both ask ``CellCache.get`` for a cell; the first
asker trains it (holding a file lock), every later one, on any worker, reads
the stored record.  Cells train as `run` trains them: on CUDA, the cells of a
study that this session trains go side by side in groups of the study's own
number (runner.cells_at_once), so that the first asker of a cell trains its
whole group.  At the end of the session the records are merged into one
results file of the command line's schema.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest
import torch

from ablation.data import Dataset, load_dataset
from ablation.results import add_study, cell_record, new_results, ordered_studies, write_json
from ablation.runner import cells_at_once, in_groups, train_group
from ablation.studies import Study, get_study
from ablation.train import DeviceData, prepare
from bench.faults import FAULTS


def variant_marks(study_name: str) -> list[pytest.MarkDecorator]:
    """The variant mark for a test of a study the document does not tabulate (deselected unless --variants)."""
    return [pytest.mark.variant] if get_study(study_name).variant_of else []


def worker_gpu(worker: str, visible: str | None, count: int) -> str | None:
    """CUDA_VISIBLE_DEVICES for xdist worker 'gwN': one GPU of those visible, round robin (shared if fewer)."""
    ids = [i for i in visible.split(",") if i] if visible else [str(i) for i in range(count)]
    return ids[int(worker.removeprefix("gw")) % len(ids)] if ids else None


def gpu_count() -> int:
    """GPUs on this machine, asked of nvidia-smi so that CUDA is not initialized before pinning."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


@dataclasses.dataclass
class BenchConfig:
    data: str  # for the CIFAR-10 studies
    data_cifar100: str  # for the CIFAR-100 variant
    device: str
    profile: str
    replicates: str | int  # a plan of studies.PLANS, or a count
    seed_offset: int
    fault: str | None  # a name in bench.faults.FAULTS
    graphs: bool = False  # full-batch steps replayed from CUDA graphs
    workers: int = 0  # pytest-xdist workers sharing the device (0: none), which changes the measured speed
    shard: Any = None  # ablation.shard.Shard of --shard K/N, or None

    def study(self, name: str) -> Study:
        study = get_study(name)
        study = dataclasses.replace(study, seed=study.seed + self.seed_offset)
        return FAULTS[self.fault].plant(study) if self.fault else study


class CellCache:
    """Cell records on disk, trained once per bench session whichever worker asks first.

    ``session_cells``: per study, the cells this bench session trains (conftest.trained_cells), which decide the
    groups that train side by side; a cell outside them trains alone.
    """

    def __init__(self, directory: Path, config: BenchConfig,
                 session_cells: dict[str, Iterable[str]] | None = None) -> None:
        self.directory = directory
        self.config = config
        self.session_cells = {study: set(cells) for study, cells in (session_cells or {}).items()}
        self._datasets: dict[str, Dataset] = {}
        self._device_data: dict[str, DeviceData] = {}
        self.loading_s = 0.0  # loading data and moving it to the device (the first move also starts the device)
        self.waited_s = 0.0  # waiting for a group that another worker was training
        directory.mkdir(parents=True, exist_ok=True)

    def get(self, name: str, cell_id: str, timed: Callable[[Callable[[], Any]], Any] = lambda f: f()) -> dict[str, Any]:
        """The stored record of a cell; trains its group (through ``timed``, e.g. pytest-benchmark) if nobody has."""
        group = self.group_of(name, cell_id)
        path = self._path(name, cell_id)
        with open(self.directory / f"{self._path(name, group[0]).name}.lock", "w") as lock:
            asked = time.perf_counter()
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists():
                self.waited_s += time.perf_counter() - asked
            else:
                for stored in timed(lambda: self._train(name, group)):
                    write_json(stored, self._path(name, stored["cell"]))
        return json.loads(path.read_text())

    def group_of(self, name: str, cell_id: str) -> list[str]:
        """The cells that train together with ``cell_id``: this session's cells of the study, in the study's order,
        in groups of runner.cells_at_once."""
        study = get_study(name)
        ours = [cell.id for cell in study.cells if cell.id in self.session_cells.get(name, ())]
        if cell_id not in ours:
            return [cell_id]
        return next(group for group in in_groups(ours, cells_at_once(study, torch.device(self.config.device)))
                    if cell_id in group)

    def _path(self, name: str, cell_id: str) -> Path:
        return self.directory / f"{name}[{cell_id}].json"

    def _train(self, name: str, cell_ids: list[str]) -> list[dict[str, Any]]:
        study = self.config.study(name)
        device = torch.device(self.config.device)
        data = self._study_data(study, device)
        results = train_group(study, [study.cell(c) for c in cell_ids], data,
                              study.replicates_for(self.config.replicates), self.config.profile,
                              graphs=self.config.graphs)
        scratch = new_results(device, self.config.data, self.config.profile)
        entry = add_study(scratch, study, self.config.profile, self._source(study), data.checksum, data.classes)
        entry.pop("cells")
        return [{"study": name, "cell": cell_id, "entry": entry, "environment": scratch["environment"],
                 "record": cell_record(study, cell_id, result, self.config.profile)}
                for cell_id, result in zip(cell_ids, results)]

    def _source(self, study: Study) -> str:
        return self.config.data_cifar100 if study.dataset == "cifar100" else self.config.data

    def dataset(self, source: str) -> Dataset:
        """The data of ``source``, loaded once per worker (DataError when it cannot be had)."""
        if source not in self._datasets:
            started = time.perf_counter()
            self._datasets[source] = load_dataset(source)
            self.loading_s += time.perf_counter() - started
        return self._datasets[source]

    def _study_data(self, study: Study, device: torch.device) -> DeviceData:
        if study.name not in self._device_data:
            hp = study.settings(self.config.profile)
            dataset = self.dataset(self._source(study))
            started = time.perf_counter()
            self._device_data[study.name] = prepare(dataset, hp.per_class, study.subset_seed, device, hp.test_limit)
            self.loading_s += time.perf_counter() - started
        return self._device_data[study.name]

    def merged(self) -> dict[str, Any] | None:
        """Every stored cell as one results file (None when no cell was trained)."""
        stored = [json.loads(p.read_text()) for p in sorted(self.directory.glob("*.json"))]
        if not stored:
            return None
        results = new_results(torch.device("cpu"), self.config.data, self.config.profile)
        results["environment"] = stored[0]["environment"]
        results["bench"] = {"seed_offset": self.config.seed_offset, "fault": self.config.fault,
                            "cuda_graphs": self.config.graphs, "workers": self.config.workers}
        if self.config.shard:
            results["shard"] = {"index": self.config.shard.index, "count": self.config.shard.count}
        for item in stored:
            entry = results["studies"].setdefault(item["study"], dict(item["entry"], cells={}))
            entry["cells"][item["cell"]] = item["record"]
        results["studies"] = {  # studies and cells in the order the registry lists them
            name: dict(entry, cells={c.id: entry["cells"][c.id] for c in get_study(name).cells
                                     if c.id in entry["cells"]})
            for name, entry in ordered_studies(results)
        }
        return results
