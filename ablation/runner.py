"""Running a study's cells: the one path the command line and the GPU bench share."""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable

import torch

from ablation.data import Dataset
from ablation.results import add_study, cell_record, measured_text
from ablation.studies import Cell, Study
from ablation.train import CellResult, DeviceData, fusing_pays, prepare, train_cell


def run_cell(study: Study, cell: Cell, data: DeviceData, replicates: int, profile: str = "full",
             fuse: bool | None = None, progress: Callable[[str], None] | None = None,
             graphs: bool = False) -> CellResult:
    """Train a cell's replicates fused into one model, or one after another.

    ``fuse``: None fuses where that is faster on this device and batch size (fusing_pays); True or False forces it.
    ``graphs``: replay full-batch steps from a CUDA graph (CUDA only).
    """
    seeds = study.seeds(replicates)
    if fuse is None:
        fuse = fusing_pays(data.train_x.device, study.batch_size(cell, profile))
    if fuse:
        return train_cell(study, cell, data, seeds, profile, progress=progress, graphs=graphs)
    parts = [train_cell(study, cell, data, [seed], profile, progress=progress, graphs=graphs) for seed in seeds]
    wall = sum(p.wall_s for p in parts)
    images = sum(p.images_per_s * p.wall_s for p in parts)
    return CellResult(
        seeds=seeds,
        accuracy=[a for p in parts for a in p.accuracy],
        final_loss=[x for p in parts for x in p.final_loss],
        skipped_steps=[x for p in parts for x in p.skipped_steps],
        collapsed=[x for p in parts for x in p.collapsed],
        wall_s=wall,
        images_per_s=images / wall,
        setup_s=sum(p.setup_s for p in parts),
        eval_s=sum(p.eval_s for p in parts),
        fused=1,
        graphs=graphs,
    )


def run_study(
    results: dict[str, Any],
    study: Study,
    dataset: Dataset,
    device: torch.device,
    replicates: int,
    profile: str = "full",
    cells: Iterable[Cell] | None = None,
    fuse: bool | None = None,
    log: Callable[[str], None] | None = None,
    graphs: bool = False,
    after_cell: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train the study's cells (all by default) and add them to ``results``; returns the study's entry.

    ``fuse``: as run_cell's, for every cell.  ``after_cell``: called once each cell is in ``results`` (the
    command line saves the file there, so that an interrupted run keeps every finished cell).
    """
    hp = study.settings(profile)
    data = prepare(dataset, hp.per_class, study.subset_seed, device, hp.test_limit)
    entry = add_study(results, study, profile, dataset.source, data.checksum, data.classes)
    cells = list(cells or study.cells)
    for i, cell in enumerate(cells, 1):
        prefix = f"[{study.name} {i}/{len(cells)}] {cell.id}"
        progress = _live(prefix) if log and sys.stderr.isatty() else None
        result = run_cell(study, cell, data, replicates, profile, fuse, progress, graphs)
        record = cell_record(study, cell.id, result, profile)
        entry["cells"][cell.id] = record
        if after_cell:
            after_cell()
        if log:
            log(f"{prefix}: {measured_text(record, data.classes)}  {result.wall_s:.1f} s, {result.images_per_s:,.0f} img/s")
    return entry


def _live(prefix: str) -> Callable[[str], None]:
    def show(message: str) -> None:
        print(f"\r{prefix}: {message}\033[K", end="", file=sys.stderr, flush=True)
    return show
