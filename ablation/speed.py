"""How much faster the device-resident, fused trainer is than the notebooks' own pipeline.

Four ways to train the same cells, timed on one device in one run (training
only, device synchronized; evaluation is the same for all and left out):

- notebook: a torchvision-style dataset of PIL images with per-image
  ToTensor + Normalize, a DataLoader (shuffle, workers re-created every epoch),
  one model per replicate, torch.amp.GradScaler; as the seed notebooks ran;
- eager: this package's device-resident loop, one replicate at a time;
- fused: this package's loop with all replicates as one model;
- graphs (CUDA only): fused, with every full-batch step replayed from a CUDA graph; how ``run`` trains each
  cell on CUDA (where it also trains some studies' cells side by side, which is not timed here).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from ablation.data import MEAN, STD, Dataset, balanced_subset
from ablation.results import render
from ablation.runner import run_cell
from ablation.studies import Cell, Study
from ablation.train import make_optimizer, make_scheduler, prepare, synchronize

MODES = ("notebook", "eager", "fused", "graphs")
SEQUENTIAL = ("notebook", "eager")  # modes that train a cell's replicates one after another
NOTEBOOK_WORKERS = 8  # the notebooks' DataLoader workers (ablation/reference/README.md)
SPEED_UPS = (("eager", "notebook"), ("fused", "notebook"), ("fused", "eager"), ("graphs", "notebook"),
             ("graphs", "fused"))


class NotebookImages(torch.utils.data.Dataset):
    """The notebooks' data path: one PIL image at a time through ToTensor and Normalize."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        from torchvision import transforms  # imported here: it adds a second or more to every command's start

        self.images, self.labels = images.numpy(), labels.tolist()
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def notebook_train(study: Study, cell: Cell, dataset: Dataset, seeds: list[int], device: torch.device,
                   profile: str, workers: int) -> float:
    """Seconds to train the cell's replicates one after another the notebooks' way."""
    hp = study.settings(profile)
    subset = balanced_subset(dataset.train_y, hp.per_class, study.subset_seed)
    images = NotebookImages(dataset.train_x[subset], dataset.train_y[subset])
    use_autocast = hp.amp and device.type == "cuda"
    synchronize(device)
    start = time.perf_counter()
    for seed in seeds:
        torch.manual_seed(seed)
        model = study.model(cell, dataset.classes).to(device)
        optimizer = make_optimizer(list(model.parameters()), hp)
        scheduler = make_scheduler(optimizer, hp)
        scaler = torch.amp.GradScaler(device.type, enabled=hp.amp)
        for _ in range(hp.epochs):
            loader = DataLoader(images, batch_size=study.batch_size(cell, profile), shuffle=True, num_workers=workers)
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast):
                    loss = F.cross_entropy(model(x)[:, 0], y)
                optimizer.zero_grad()
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            if scheduler is not None:
                scheduler.step()
    synchronize(device)
    return time.perf_counter() - start


def available_modes(device: torch.device) -> tuple[str, ...]:
    return MODES if device.type == "cuda" else MODES[:-1]


def measure(study: Study, dataset: Dataset, device: torch.device, replicates: int | None, profile: str,
            workers: int, cells: list[Cell] | None = None, log: Callable[[str], None] | None = None,
            modes: Sequence[str] | None = None, sequential_replicates: int | None = None) -> dict[str, Any]:
    """Seconds per mode (default: all the device has) to train the study's cells (all, or the given ones),
    and the training images each mode saw.

    ``sequential_replicates``: the notebook and eager modes train replicates one after another, each the same
    work, so their time for R is R times that of one; time only this many per cell and scale up by R / N.
    """
    hp = study.settings(profile)
    data = prepare(dataset, hp.per_class, study.subset_seed, device, hp.test_limit)
    count = replicates or study.replicates
    sequential = min(sequential_replicates or count, count)
    cells = cells or list(study.cells)
    seconds = dict.fromkeys(modes or available_modes(device), 0.0)
    for cell in cells:
        cell_seconds = {}
        for mode in seconds:
            trained = sequential if mode in SEQUENTIAL else count
            if mode == "notebook":
                timed = notebook_train(study, cell, dataset, study.seeds(trained), device, profile, workers)
            else:
                timed = run_cell(study, cell, data, trained, profile, fuse=mode != "eager",
                                 graphs=mode == "graphs").wall_s
            cell_seconds[mode] = timed * count / trained
            seconds[mode] += cell_seconds[mode]
        if log:
            log(f"[speed {study.name}] {cell.id}: " + ", ".join(f"{m} {s:.1f} s" for m, s in cell_seconds.items()))
    return {"study": study.name, "images": len(cells) * count * len(data.train_y) * hp.epochs,
            "replicates": count, "timed_sequential": sequential, **seconds}


def speed_table(rows: list[dict[str, Any]], device_name: str, markdown: bool = False) -> str:
    modes = [m for m in MODES if m in rows[0]]
    speed_ups = [(a, b) for a, b in SPEED_UPS if a in modes and b in modes]
    total = {"study": "whole table", "images": sum(r["images"] for r in rows),
             **{m: sum(r[m] for r in rows) for m in modes}}
    headers = (["study"] + [f"{m} s" for m in modes] + [f"{m} img/s" for m in modes]
               + [f"{a} / {b}" for a, b in speed_ups])
    lines = []
    for r in rows + ([total] if len(rows) > 1 else []):
        lines.append([r["study"]] + [f"{r[m]:.1f}" for m in modes] + [f"{r['images'] / r[m]:,.0f}" for m in modes]
                     + [f"x{r[b] / r[a]:.1f}" for a, b in speed_ups])
    sequential = [m for m in modes if m in SEQUENTIAL]
    sampled = [r for r in rows if r["timed_sequential"] < r["replicates"]]
    note = ""
    if sequential and sampled:
        note = ("\n\n" + " and ".join(sequential) + " timed on " + "; ".join(
            f"{r['timed_sequential']} of {r['replicates']} replicates per cell ({r['study']})" for r in sampled)
            + ", times scaled up to all: those modes train replicates one after another")
    return (f"Training time on {device_name} (speed-ups as time ratios)\n\n" + render(headers, lines, markdown)
            + note)
