"""How far training is from the GPU's limits: a roofline per study, from counted work.

    python -m bench.roofline [--results RUN.json] [--device-peaks h200|h100] [--cell STUDY:CELL ...]

For every cell, one fused training step of its R replicates (the pr plan)
is run on PyTorch's meta device, which computes shapes only: FLOPs are
counted by torch.utils.flop_counter on one replicate's model and multiplied
by R (the fused model's grouped convolutions do R replicates' work, and the
counter ignores groups in a convolution's backward), bytes by the tensors each ATen op reads
and writes (what today's unfused kernels move), and the optimizer's update
analytically (SGD with momentum reads parameter, gradient and momentum and
writes two of them; AdamW reads four and writes three).  Precision as the
cell trains: float32 (convolutions in TF32, torch's default) or bf16 where
the study uses autocast.  The floor of a step is the larger of its FLOPs at
the tensor cores' peak and its unavoidable bytes at the memory's bandwidth:
each convolution reading its input and weights and writing its output, as
if every normalization, activation and optimizer op were fused into them.
A study's floor is its steps' floors summed over its epochs; the RUN.json
training time beside it says how far today's trainer is.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from ablation.results import read_results, render, training_seconds
from ablation.studies import DOCUMENTED, Cell, Study, get_study
from bench.step_times import Dispatched

# Dense peaks from the vendor's datasheets (SXM parts): tensor-core TF32 and bf16 FLOP/s, HBM bytes/s.
PEAKS = {
    "h200": {"tf32": 494e12, "bf16": 989e12, "bandwidth": 4.8e12, "name": "H200 SXM"},
    "h100": {"tf32": 494e12, "bf16": 989e12, "bandwidth": 3.35e12, "name": "H100 SXM"},
}
OPTIMIZER_PASSES = {"sgd": 5, "adamw": 7}  # float32 parameter-sized reads and writes per update
CONVOLUTIONS = {"convolution", "convolution_backward"}


class Traffic(Dispatched):
    """Dispatched's ops, and the bytes each reads and writes (views move nothing), all ops and convolutions
    apart."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.convolutions = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = super().__torch_dispatch__(func, types, args, kwargs)
        if not func.is_view:
            moved = sum(_nbytes(x) for x in (*args, *(kwargs or {}).values(), out))
            self.total += moved
            if func.overloadpacket.__name__ in CONVOLUTIONS:
                self.convolutions += moved
        return out


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


@dataclass(frozen=True)
class Step:
    """One fused training step of a cell's replicates on a full batch."""

    flops: float
    bytes_moved: float  # every op's reads and writes, as today's kernels run them
    bytes_floor: float  # the convolutions' alone
    ops: int
    steps: float  # training steps of the cell, a last partial batch counted by its share
    bf16: bool

    def floor_s(self, peaks: dict[str, float]) -> float:
        compute = self.flops / peaks["bf16" if self.bf16 else "tf32"]
        return max(compute, self.bytes_floor / peaks["bandwidth"])


def count_step(study: Study, cell: Cell, replicates: int | None = None) -> Step:
    """Count one fused step of ``cell`` on the meta device."""
    hp = study.settings()
    r = replicates or study.replicates
    batch = study.batch_size(cell)
    dtype = torch.bfloat16 if hp.amp else torch.float32
    flops = FlopCounterMode(display=False)
    with flops:
        forward_backward(study, cell, 1, batch, dtype)
    traffic = Traffic()
    with traffic:
        model = forward_backward(study, cell, r, batch, dtype)
    parameters = sum(p.numel() for p in model.parameters()) * 4 * OPTIMIZER_PASSES[hp.optimizer]
    images_per_epoch = hp.per_class * study.classes
    return Step(flops.get_total_flops() * r, traffic.total + parameters, traffic.convolutions + parameters,
                len(traffic.ops), hp.epochs * images_per_epoch / batch, hp.amp)


def forward_backward(study: Study, cell: Cell, replicates: int, batch: int, dtype: torch.dtype) -> torch.nn.Module:
    """The model of ``replicates`` fused replicates, after one forward and backward pass on a meta batch."""
    model = study.model(cell, study.classes, replicates).to("meta", dtype)
    images = torch.empty(batch, 3 * replicates, 32, 32, device="meta", dtype=dtype)
    labels = torch.zeros(batch, replicates, dtype=torch.long, device="meta")
    logits = model(images)
    torch.nn.functional.cross_entropy(logits.float().permute(0, 2, 1), labels).backward()
    return model


def roofline(results: dict[str, Any] | None, device: str = "h200") -> list[dict[str, Any]]:
    """Per documented study: its work, the floor its work implies, and the training time a results file
    measured (None without one)."""
    peaks = PEAKS[device]
    rows = []
    for study in DOCUMENTED:
        steps = [count_step(study, cell) for cell in study.cells]
        measured = None
        if results and study.name in results["studies"]:
            measured = training_seconds(results["studies"][study.name]["cells"].values())
        rows.append({
            "study": study.name,
            "flops": sum(s.flops * s.steps for s in steps),
            "bytes_moved": sum(s.bytes_moved * s.steps for s in steps),
            "bytes_floor": sum(s.bytes_floor * s.steps for s in steps),
            "kernels": sum(s.ops * s.steps for s in steps),
            "compute_s": sum(s.flops * s.steps for s in steps) / peaks["bf16" if steps[0].bf16 else "tf32"],
            "floor_s": sum(s.floor_s(peaks) * s.steps for s in steps),
            "unfused_memory_s": sum(s.bytes_moved * s.steps for s in steps) / peaks["bandwidth"],
            "measured_s": measured,
        })
    return rows


def roofline_table(rows: list[dict[str, Any]], device: str) -> str:
    headers = ["study", "TFLOP", "GB moved (unfused)", "GB floor", "ATen ops (M)", "compute s", "unfused memory s",
               "floor s", "measured s", "x floor"]
    body = [[r["study"], f"{r['flops'] / 1e12:,.0f}", f"{r['bytes_moved'] / 1e9:,.0f}",
             f"{r['bytes_floor'] / 1e9:,.0f}", f"{r['kernels'] / 1e6:.2f}", f"{r['compute_s']:.2f}",
             f"{r['unfused_memory_s']:.2f}", f"{r['floor_s']:.2f}",
             "-" if r["measured_s"] is None else f"{r['measured_s']:.1f}",
             "-" if r["measured_s"] is None else f"x{r['measured_s'] / r['floor_s']:.0f}"] for r in rows]
    total = sum(r["floor_s"] for r in rows)
    measured = [r["measured_s"] for r in rows]
    body.append(["whole table", f"{sum(r['flops'] for r in rows) / 1e12:,.0f}",
                 f"{sum(r['bytes_moved'] for r in rows) / 1e9:,.0f}",
                 f"{sum(r['bytes_floor'] for r in rows) / 1e9:,.0f}",
                 f"{sum(r['kernels'] for r in rows) / 1e6:.2f}", f"{sum(r['compute_s'] for r in rows):.2f}",
                 f"{sum(r['unfused_memory_s'] for r in rows):.2f}", f"{total:.2f}",
                 "-" if None in measured else f"{sum(measured):.1f}",
                 "-" if None in measured else f"x{sum(measured) / total:.0f}"])
    return f"Roofline on {PEAKS[device]['name']} peaks\n\n" + render(headers, body, True)


def step_table(cells: list[tuple[Study, Cell]], device: str) -> str:
    """Per cell, one fused step of its R replicates: its work and its floor in milliseconds."""
    peaks = PEAKS[device]
    rows = []
    for study, cell in cells:
        step = count_step(study, cell)
        rows.append([f"{study.name}:{cell.id} ({study.replicates})", "bf16" if step.bf16 else "float32",
                     f"{step.flops / 1e9:,.1f}", f"{step.bytes_moved / 1e6:,.1f}", f"{step.bytes_floor / 1e6:,.1f}",
                     str(step.ops), f"{step.flops / peaks['bf16' if step.bf16 else 'tf32'] * 1e3:.3f}",
                     f"{step.bytes_moved / peaks['bandwidth'] * 1e3:.3f}", f"{step.floor_s(peaks) * 1e3:.3f}"])
    headers = ["cell (R)", "precision", "GFLOP", "MB moved (unfused)", "MB floor", "ATen ops (fwd + bwd)", "compute ms",
               "unfused memory ms", "floor ms"]
    return render(headers, rows, True)


def cell_option(text: str) -> tuple[Study, Cell]:
    study_name, _, cell_id = text.partition(":")
    try:
        study = get_study(study_name)
        return study, study.cell(cell_id)
    except KeyError as error:
        raise argparse.ArgumentTypeError(error.args[0]) from None


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.roofline", description=__doc__.splitlines()[0])
    parser.add_argument("--results", metavar="RUN.json", help="a results file whose training times to set beside "
                                                              "the floors (default: none)")
    parser.add_argument("--device-peaks", choices=sorted(PEAKS), default="h200",
                        help="whose datasheet peaks (default %(default)s)")
    parser.add_argument("--cell", type=cell_option, action="append", metavar="STUDY:CELL",
                        help="also one step of this cell, repeatable (default: none)")
    args = parser.parse_args(argv)
    from ablation.results import ResultsError

    try:
        results = read_results(args.results) if args.results else None
    except ResultsError as error:
        parser.error(str(error))
    text = roofline_table(roofline(results, args.device_peaks), args.device_peaks)
    return text + ("\n\n" + step_table(args.cell, args.device_peaks) if args.cell else "")


if __name__ == "__main__":
    print(main(sys.argv[1:]))
