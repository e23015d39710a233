"""Would the norm study's launch-bound cells train faster side by side on one GPU?  A measurement, CUDA only.

    python -m bench.concurrent_cells --data PATH.npz [--scale F]

At batches 2-8 a CUDA-graph replay of one step of 8 fused replicates takes
about 0.6 ms on an H200 whatever the batch: many tiny kernels, one after
another, most of the GPU idle.  These six cells (BatchNorm and GroupNorm at
batch 2, 4 and 8) took 23 of the whole table's 62 s of training, and the order
study, whose kernels run 84 % of its step, another 16 s.  This replays each
cell's captured step for a number of steps in proportion to the run's (the
real counts times 0.08 at --scale 1), four ways: one cell after another on one
stream, as `run` trains them; each BatchNorm cell beside the GroupNorm cell of
its batch size; all six at once, one CUDA stream per cell; and the six beside
an order-study cell, whose steps stand for the whole order study.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Iterator, Sequence

import torch

from ablation.cli import above_zero
from ablation.data import DataError, load_dataset
from ablation.results import render
from ablation.studies import Study, get_study
from ablation.train import (CUDAGraphSteps, DeviceData, cell_step, optimizer_steps, prepare, take_turns,
                           uses_channels_last)
from bench.step_times import WARMUP_STEPS, sample_batches

BATCH_SIZES = (2, 4, 8)
NORMS = ("batchnorm", "groupnorm")
ORDER_CELL = "order=conv_bn_relu"
FRACTION = 0.08  # of the run's steps, at --scale 1: 800 at batch 2, 200 at batch 8, 240 for the order study
ROUNDS = 3  # each way timed this many times, the fastest kept


class GraphedCell:
    """One cell's training step, warmed up and captured in a CUDA graph, with a stream of its own.

    ``run_steps``: the optimizer steps `run` trains the cell for."""

    def __init__(self, study: Study, cell_id: str, data: DeviceData) -> None:
        cell = study.cell(cell_id)
        batch_size = study.batch_size(cell)
        self.run_steps = optimizer_steps(study.settings(), len(data.train_y), batch_size)
        step = cell_step(study, cell, data, study.seeds(study.replicates), capturable=True,
                         channels_last=uses_channels_last(data.train_x.device, batch_size))
        self.run = CUDAGraphSteps(step, batch_size)
        self.batches = sample_batches(data, study.replicates, batch_size)
        self.stream = torch.cuda.Stream()
        with torch.cuda.stream(self.stream):
            for _ in self.steps(WARMUP_STEPS):
                pass

    def steps(self, count: int) -> Iterator[None]:
        """``count`` replays of the step on the sample batches, pausing after each."""
        for i in range(count):
            self.run(self.batches[i % len(self.batches)])
            yield


def timed_steps(run_steps: int, fraction: float) -> int:
    """The steps timed for a cell that `run` trains for ``run_steps``: that fraction of them, at least one."""
    return max(1, round(run_steps * fraction))


def seconds(groups: list[list[tuple[GraphedCell, int]]], own_streams: bool) -> float:
    """Wall time of every (cell, steps) in groups: groups one after another, a group's cells taking turns, each on
    its own stream (side by side on the GPU) or all on the current stream (one after another)."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for group in groups:
        take_turns([cell.steps(steps) for cell, steps in group], [steps for _, steps in group],
                   [cell.stream if own_streams else None for cell, _ in group])
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrent_cells", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="PATH.npz, cifar10 or synthetic")
    parser.add_argument("--scale", type=above_zero, default=1.0,
                        help=f"multiply the steps ({FRACTION} of the run's: 800 at batch 2)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU: it times CUDA-graph replays on CUDA streams")
    try:
        dataset = load_dataset(args.data)
    except DataError as error:
        parser.error(str(error))
    norm_study, order_study = get_study("batchnorm_vs_groupnorm"), get_study("conv_activation_norm_position")
    norm_data, order_data = (prepare(dataset, s.settings().per_class, s.subset_seed, torch.device("cuda"))
                             for s in (norm_study, order_study))
    fraction = FRACTION * args.scale
    small = [(cell, timed_steps(cell.run_steps, fraction)) for cell in
             (GraphedCell(norm_study, f"batch_size={b}-{norm}", norm_data) for b in BATCH_SIZES for norm in NORMS)]
    order_cell = GraphedCell(order_study, ORDER_CELL, order_data)  # its steps stand for all of the study's cells
    order = [(order_cell, timed_steps(order_cell.run_steps * len(order_study.cells), fraction))]
    ways = {
        "one cell after another (as run trains)": ([[c] for c in small] + [order], False),
        "BatchNorm beside GroupNorm, per batch size": ([small[i:i + 2] for i in range(0, 6, 2)] + [order], True),
        "all six at once, then the order study": ([small, order], True),
        "all six beside the order study": ([small + order], True),
    }
    times = {name: min(seconds(groups, own_streams) for _ in range(ROUNDS))
             for name, (groups, own_streams) in ways.items()}
    first = next(iter(times.values()))
    rows = [[name, f"{t:.3f}", f"x{first / t:.2f}"] for name, t in times.items()]
    counts = {f"batch {b}": n for b, (_, n) in zip(BATCH_SIZES, small[::2])} | {"order study": order[0][1]}
    return (f"CUDA graphs; steps per cell {counts} ({fraction:g} of the run's); on "
            f"{torch.cuda.get_device_name()}, torch {torch.__version__}\n\n"
            + render(["way", "seconds", "speed-up"], rows, markdown=True))


if __name__ == "__main__":
    print(main(sys.argv[1:]))
