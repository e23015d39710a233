"""Running a study's cells: the one path the command line and the GPU bench share."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterable, Sequence, TypeVar

import torch

from ablation.data import Dataset
from ablation.results import add_study, cell_record, measured_text, plural
from ablation.studies import Cell, Study
from ablation.train import (CellResult, CellTraining, DeviceData, Progress, fusing_pays, prepare, train_cell,
                            train_side_by_side)

T = TypeVar("T")
HEARTBEAT_S = 30.0  # a log that is not a terminal (CI) gets a group's epoch line at most this often


class OutOfDeviceMemory(RuntimeError):
    """The device ran out of memory training a group of cells; the message says what was training and what to
    train fewer of at once."""


def run_cell(study: Study, cell: Cell, data: DeviceData, replicates: int, profile: str = "full",
             fuse: bool | None = None, progress: Progress | None = None,
             graphs: bool = False) -> CellResult:
    """Train a cell's replicates fused into one model, or one after another.

    ``fuse``: None fuses where that is faster on this device and batch size (fusing_pays); True or False forces it.
    ``graphs``: replay full-batch steps from a CUDA graph (CUDA only).
    """
    seeds = study.seeds(replicates)
    if fuse is None:
        fuse = fuses(study, cell, data.train_x.device, profile)
    if fuse:
        return train_cell(study, cell, data, seeds, profile, progress=progress, graphs=graphs)
    parts = [train_cell(study, cell, data, [seed], profile, progress=progress, graphs=graphs) for seed in seeds]
    wall = sum(p.wall_s for p in parts)
    images = sum(p.images_per_s * p.wall_s for p in parts)
    return CellResult(
        seeds=seeds,
        accuracy=[a for p in parts for a in p.accuracy],
        final_loss=[x for p in parts for x in p.final_loss],
        train_loss_curve=[x for p in parts for x in p.train_loss_curve],
        test_loss=[x for p in parts for x in p.test_loss],
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
    side_by_side: int | None = None,
) -> dict[str, Any]:
    """Train the study's cells (all by default) and add them to ``results``; returns the study's entry.

    ``fuse``: as run_cell's, for every cell.  ``after_cell``: called once each cell is in ``results`` (the
    command line saves the file there, so that an interrupted run keeps every finished cell).  ``side_by_side``:
    train this many cells at once, in the study's order, each fused and on a CUDA stream of its own
    (train_side_by_side); None: the study's own number (Study.side_by_side) on CUDA unless fuse is False, else 1.
    """
    if side_by_side is None:
        side_by_side = cells_at_once(study, device, fuse)
    if side_by_side > 1 and fuse is False:
        raise ValueError("cells side by side train their replicates fused, so fuse=False needs side_by_side=1")
    hp = study.settings(profile)
    data = prepare(dataset, hp.per_class, study.subset_seed, device, hp.test_limit)
    entry = add_study(results, study, profile, dataset.source, data.checksum, data.classes)
    cells = list(cells or study.cells)
    prefixes = [f"[{study.name} {i}/{len(cells)}] {cell.id}" for i, cell in enumerate(cells, 1)]
    for group in in_groups(range(len(cells)), side_by_side):
        if log and sys.stderr.isatty():
            progress = [_live(prefixes[i]) for i in group]
        else:  # the group's cells take their epochs together: the first one's stand for all
            label = prefixes[group[0]] if len(group) == 1 else \
                f"[{study.name} {group[0] + 1}-{group[-1] + 1}/{len(cells)}]"
            progress = [_heartbeat(label, log) if log else None] + [None] * (len(group) - 1)
        group_results = train_group(study, [cells[i] for i in group], data, replicates, profile, fuse, graphs,
                                    progress)
        for i, result in zip(group, group_results):
            record = cell_record(study, cells[i].id, result, profile)
            entry["cells"][cells[i].id] = record
            if after_cell:
                after_cell()
            if log:
                others = len(group) - 1
                beside = f" beside {plural(others, 'other cell')}" if others else ""
                log(f"{prefixes[i]}: {measured_text(record, data.classes)}  {result.wall_s:.1f} s{beside}, "
                    f"{result.images_per_s:,.0f} img/s")
    return entry


def fuses(study: Study, cell: Cell, device: torch.device, profile: str = "full", fuse: bool | None = None) -> bool:
    """Whether run_cell trains the cell's replicates as one model: as ``fuse`` says, else where that is faster
    (fusing_pays)."""
    return fusing_pays(device, study.batch_size(cell, profile)) if fuse is None else fuse


def fused_size(study: Study, cell: Cell, device: torch.device, replicates: int, profile: str = "full",
               fuse: bool | None = None) -> int:
    """How many replicates run_cell trains as one model (a record's "fused"): all of them where they fuse, else 1."""
    return replicates if fuses(study, cell, device, profile, fuse) else 1


def in_groups(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """Consecutive groups of ``size`` (the last one may be smaller): the groups of cells that train at once."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def cells_at_once(study: Study, device: torch.device, fuse: bool | None = None) -> int:
    """How many of the study's cells train side by side by default: the study's own number on CUDA (where each
    gets a stream), unless replicates are not fused; elsewhere one at a time."""
    return study.side_by_side if device.type == "cuda" and fuse is not False else 1


def train_group(study: Study, cells: list[Cell], data: DeviceData, replicates: int, profile: str = "full",
                fuse: bool | None = None, graphs: bool = False,
                progress: list[Progress | None] | None = None) -> list[CellResult]:
    """Train the cells at once (train_side_by_side), or a lone cell as run_cell does; ``progress``: one per cell.
    Out of device memory, says what was training and what to train fewer of (OutOfDeviceMemory)."""
    progress = progress or [None] * len(cells)
    try:
        if len(cells) == 1:
            return [run_cell(study, cells[0], data, replicates, profile, fuse, progress[0], graphs)]
        return train_side_by_side([CellTraining(study, cell, data, study.seeds(replicates), profile, progress=shown,
                                                graphs=graphs) for cell, shown in zip(cells, progress)])
    except torch.cuda.OutOfMemoryError:
        device = data.train_x.device
        beside = f", {len(cells)} cells at once" if len(cells) > 1 else ""
        fewer = "--side-by-side 1 (one cell at a time) or fewer --replicates" if len(cells) > 1 else \
            "fewer --replicates"
        raise OutOfDeviceMemory(
            f"out of {device.type} memory training {study.name} {', '.join(cell.id for cell in cells)} "
            f"({plural(replicates, 'replicate')}{beside}); train fewer at once: {fewer}") from None


def _heartbeat(label: str, log: Callable[[str], None]) -> Progress:
    """Progress for a log that is not a terminal: a line at most every HEARTBEAT_S, so that a long cell shows
    that it is alive without a line per epoch of every short one."""
    last = time.perf_counter()

    def show(line: Callable[[], str]) -> None:
        nonlocal last
        if time.perf_counter() - last >= HEARTBEAT_S:
            log(f"{label}: {line()}")
            last = time.perf_counter()
    return show


def _live(prefix: str) -> Progress:
    """Progress on a terminal: every epoch, one line rewritten in place."""
    def show(line: Callable[[], str]) -> None:
        print(f"\r{prefix}: {line()}\033[K", end="", file=sys.stderr, flush=True)
    return show
