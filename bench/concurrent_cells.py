"""Would the norm study's launch-bound cells train faster side by side on one GPU?  A measurement, CUDA only.

    python -m bench.concurrent_cells --data PATH.npz [--scale F]

At batches 2-8 a CUDA-graph replay of one step of 8 fused replicates takes
about 0.6 ms on an H200 whatever the batch: many tiny kernels, one after
another, most of the GPU idle.  These six cells (BatchNorm and GroupNorm at
batch 2, 4 and 8) took 23 of the whole table's 62 s of training.  This replays
each cell's captured step for a number of steps in proportion to its epoch
(batch 2: four times batch 8's), three ways: one cell after another on one
stream, as `run` trains them; each BatchNorm cell beside the GroupNorm cell of
its batch size; and all six at once, one CUDA stream per cell.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

import torch

from ablation.data import DataError, load_dataset
from ablation.results import render
from ablation.studies import Study, get_study
from ablation.train import CUDAGraphSteps, DeviceData, cell_step, prepare
from bench.step_times import WARMUP_STEPS, sample_batches

BATCH_SIZES = (2, 4, 8)
NORMS = ("batchnorm", "groupnorm")
STEPS_AT_BATCH_8 = 200
ROUNDS = 3  # each way timed this many times, the fastest kept


class GraphedCell:
    """One cell's training step, warmed up and captured in a CUDA graph, with a stream of its own."""

    def __init__(self, study: Study, cell_id: str, data: DeviceData) -> None:
        cell = study.cell(cell_id)
        self.batch_size = study.batch_size(cell)
        step = cell_step(study, cell, data, study.seeds(study.replicates), capturable=True)
        self.run = CUDAGraphSteps(step, self.batch_size)
        self.batches = sample_batches(data, study.replicates, self.batch_size)
        self.stream = torch.cuda.Stream()
        for i in range(WARMUP_STEPS):
            self.step(i, self.stream)

    def step(self, i: int, stream: torch.cuda.Stream) -> None:
        with torch.cuda.stream(stream):
            self.run(self.batches[i % len(self.batches)])


def seconds(groups: list[list[GraphedCell]], steps: dict[int, int], own_streams: bool) -> float:
    """Wall time of every cell's steps: groups one after another, a group's cells in turn, step by step, each on
    its own stream (side by side on the GPU) or all on the current stream (one after another)."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for group in groups:
        for i in range(max(steps[cell.batch_size] for cell in group)):
            for cell in group:
                if i < steps[cell.batch_size]:
                    cell.step(i, cell.stream if own_streams else torch.cuda.current_stream())
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrent_cells", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="PATH.npz, cifar10 or synthetic")
    parser.add_argument("--scale", type=float, default=1.0, help=f"multiply the steps ({STEPS_AT_BATCH_8} at batch 8)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU: it times CUDA-graph replays on CUDA streams")
    if args.scale <= 0:
        parser.error(f"--scale must be above 0, got {args.scale}")
    try:
        dataset = load_dataset(args.data)
    except DataError as error:
        parser.error(str(error))
    study = get_study("batchnorm_vs_groupnorm")
    hp = study.settings()
    data = prepare(dataset, hp.per_class, study.subset_seed, torch.device("cuda"))
    cells = {(b, norm): GraphedCell(study, f"batch_size={b}-{norm}", data) for b in BATCH_SIZES for norm in NORMS}
    steps = {b: max(1, round(STEPS_AT_BATCH_8 * args.scale * 8 / b)) for b in BATCH_SIZES}
    ways = {
        "one cell after another (as run trains)": ([[c] for c in cells.values()], False),
        "BatchNorm beside GroupNorm, per batch size": ([[cells[b, n] for n in NORMS] for b in BATCH_SIZES], True),
        "all six at once": ([list(cells.values())], True),
    }
    times = {name: min(seconds(groups, steps, own_streams) for _ in range(ROUNDS))
             for name, (groups, own_streams) in ways.items()}
    first = next(iter(times.values()))
    rows = [[name, f"{t:.3f}", f"x{first / t:.2f}"] for name, t in times.items()]
    return (f"{study.replicates} fused replicates per cell, CUDA graphs, steps per cell {steps} by batch size, "
            f"on {torch.cuda.get_device_name()}, torch {torch.__version__}\n\n"
            + render(["way", "seconds", "speed-up"], rows, markdown=True))


if __name__ == "__main__":
    print(main(sys.argv[1:]))
