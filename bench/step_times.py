"""Milliseconds per optimizer step of sample cells, trained five ways: docs/performance.md's per-step table.

    python -m bench.step_times --data PATH.npz [--cell STUDY:CELL ...] [--scale F]

Each way runs the cell's own training step on its own data for a fixed number
of steps after warm-up (with CUDA graphs: after capture), device synchronized,
and reports the time per step of all R replicates. "one at a time" times one
single-replicate model and counts it R times (replicates cost the same);
"fused" trains the R replicates as one model; then with CUDA graphs, then also
in channels_last layout. Ways that need CUDA print "-" on other devices.
"as run, compiled" is the step as `run` trains it (CUDA graphs on CUDA, its
layout) with the model compiled by torch.compile (Inductor: the norm,
activation and pooling work fused into fewer kernels), a candidate `run` does
not use; "compile s" is its warm-up, where it compiles.
"ops" counts the ATen ops, views excepted, that one step of the captured kind
dispatches on the device: about the kernels a graph replays, where a small
batch spends its time.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ablation.cli import UsageError, above_zero, study_datasets
from ablation.data import DataError
from ablation.results import render
from ablation.studies import Cell, Study, get_study
from ablation.train import CUDAGraphSteps, DeviceData, cell_step, prepare, synchronize, uses_channels_last

SAMPLES = {  # study:cell -> timed steps
    "batchnorm_vs_groupnorm:batch_size=2-batchnorm": 300,
    "batchnorm_vs_groupnorm:batch_size=128-batchnorm": 60,
    "sigmoid_vs_relu:blocks=8-relu": 20,
    "conv_activation_norm_position:order=conv_bn_relu": 30,
}
WAYS = {  # fused, CUDA graphs (None: on CUDA), channels_last (None: as run chooses), model compiled
    "one at a time": (False, False, False, False),
    "fused": (True, False, False, False),
    "fused + graphs": (True, True, False, False),
    "fused + graphs + channels_last": (True, True, True, False),
    "as run, compiled": (True, None, None, True),
}
COMPILED = "as run, compiled"  # the last of WAYS
WARMUP_STEPS = CUDAGraphSteps.WARMUP_STEPS + 3  # eager warm-up, capture, and two replays before timing


class Dispatched(TorchDispatchMode):
    """Names every ATen op run while active, views excepted (they launch no kernel)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def sample_batches(data: DeviceData, replicates: int, batch_size: int) -> list[torch.Tensor]:
    """Four (R, batch) index sets to cycle through."""
    device = data.train_x.device
    generator = torch.Generator(device).manual_seed(0)
    return [torch.stack([torch.randperm(len(data.train_y), generator=generator, device=device)[:batch_size]
                         for _ in range(replicates)]) for _ in range(4)]


def ops_per_step(study: Study, cell: Cell, data: DeviceData) -> int:
    """ATen ops (views excepted) of one fused step of the kind CUDA graphs capture, run eagerly after warm-up."""
    step = cell_step(study, cell, data, study.seeds(study.replicates), capturable=True)
    batches = sample_batches(data, study.replicates, study.batch_size(cell))
    for i in range(CUDAGraphSteps.WARMUP_STEPS):
        step(batches[i])
    with Dispatched() as dispatched:
        step(batches[3])
    return len(dispatched.ops)


def compiled(model: nn.Module) -> nn.Module:
    """The model as torch.compile (Inductor) builds it, one graph per input shape."""
    return torch.compile(model, fullgraph=True, dynamic=False)


def step_ms(study: Study, cell: Cell, data: DeviceData, fused: bool, graphs: bool | None,
            channels_last: bool | None, compile_model: bool, steps: int) -> tuple[float, float]:
    """Milliseconds per training step of the study's R replicates of ``cell``, trained the given way, and the
    seconds of its warm-up (a compiled model compiles there)."""
    replicates = study.replicates
    seeds = study.seeds(replicates if fused else 1)
    batch_size = study.batch_size(cell)
    device = data.train_x.device
    graphs = device.type == "cuda" if graphs is None else graphs
    channels_last = uses_channels_last(device, batch_size) if channels_last is None else channels_last
    step = cell_step(study, cell, data, seeds, capturable=graphs, channels_last=channels_last)
    if compile_model:
        step.model = compiled(step.model)
    run = CUDAGraphSteps(step, batch_size) if graphs else step
    batches = sample_batches(data, len(seeds), batch_size)
    start = time.perf_counter()
    for i in range(WARMUP_STEPS):
        run(batches[i % 4])
    synchronize(device)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        run(batches[i % 4])
    synchronize(device)
    return (time.perf_counter() - start) / steps * 1000 * (1 if fused else replicates), warmup_s


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.step_times", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="PATH.npz, cifar10 or synthetic")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cell", action="append", choices=list(SAMPLES), help="only this sample (repeatable)")
    parser.add_argument("--scale", type=above_zero, default=1.0, help="multiply every sample's timed steps")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but CUDA is not available here; use --device cpu")
    device = torch.device(args.device)
    samples = [(get_study(sample.split(":")[0]), sample) for sample in args.cell or SAMPLES]
    try:  # the data every sampled study can train on (run's check of its class count), loaded once
        datasets = study_datasets([study for study, _ in samples], args.data, None)
    except (DataError, UsageError) as error:
        parser.error(str(error))
    rows = []
    for study, sample in samples:
        cell_id = sample.split(":")[1]
        hp = study.settings()
        data = prepare(datasets[study.name], hp.per_class, study.subset_seed, device)
        steps = max(2, round(SAMPLES[sample] * args.scale))
        cell = study.cell(cell_id)
        times = [f"{step_ms(study, cell, data, *way, steps)[0]:.2f}" if device.type == "cuda" or not way[1] else "-"
                 for name, way in WAYS.items() if name != COMPILED]
        try:
            compiled_ms, compile_s = step_ms(study, cell, data, *WAYS[COMPILED], steps)
            times += [f"{compiled_ms:.2f}", f"{compile_s:.1f}"]
        except Exception as error:  # a candidate's failure is a finding, not a reason to lose the other ways
            print(f"note: {sample}: the compiled way failed: {type(error).__name__}: {error}".splitlines()[0],
                  file=sys.stderr)
            times += ["failed", "-"]
        rows.append([f"{cell_id} ({study.replicates})"] + times + [str(ops_per_step(study, cell, data))])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return (f"Milliseconds per step of all R replicates on {name}, torch {torch.__version__}\n\n"
            + render(["cell (R)"] + list(WAYS) + ["compile s", "ops"], rows, markdown=True))


if __name__ == "__main__":
    print(main(sys.argv[1:]))
