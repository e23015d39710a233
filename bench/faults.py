"""Planted faults, for measuring what the bench catches (``pytest -m gpu --plant-fault NAME``).

Each fault is a bug a real change could introduce.  ``plant`` changes a
study's definition; ``patch`` changes the running process once (for faults
outside a study's data).  ``python -m bench.faults RESULTS.json ...`` judges
results files of such runs and prints which cells and findings caught each.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Callable

import ablation.train
from ablation.blocks import PARTS, ConvBlock
from ablation.studies import Study


def _norm_after_activation(study: Study) -> Study:
    def build(cell, classes, replicates, groups):
        model = study.build(cell, classes, replicates, groups)
        for block in model.modules():
            if isinstance(block, ConvBlock) and block.order == PARTS:
                block._modules = {part: block._modules[part] for part in ("conv", "act", "norm")}
                block.order = ("conv", "act", "norm")
        return model
    return dataclasses.replace(study, build=build)


def _hyperparameters(study: Study, **changes) -> Study:
    return dataclasses.replace(study, hyperparameters=dataclasses.replace(study.hyperparameters, **changes))


def _no_normalization() -> None:
    ablation.train.MEAN, ablation.train.STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Fault:
    description: str
    plant: Callable[[Study], Study] = lambda study: study
    patch: Callable[[], None] = lambda: None


FAULTS = {
    "norm_after_activation": Fault("the standard Conv-BN-act blocks built as Conv-act-BN", _norm_after_activation),
    "groupnorm_one_group": Fault(
        "GroupNorm with 1 group (LayerNorm-like) instead of 4/8/8",
        lambda s: dataclasses.replace(s, groups=(1, 1, 1)) if s.groups else s),
    "lr_times_10": Fault(
        "learning rate ten times the notebooks'",
        lambda s: _hyperparameters(s, optimizer_args=dict(s.hyperparameters.optimizer_args,
                                                          lr=10 * s.hyperparameters.optimizer_args["lr"]))),
    "no_scheduler": Fault("the learning-rate scheduler dropped", lambda s: _hyperparameters(s, scheduler=None, scheduler_args={})),
    "no_normalization": Fault("ToTensor without Normalize (wrong normalization constants)", patch=_no_normalization),
}


def detection_report(paths: list[str]) -> str:
    """Per results file: its fault, how many cells left their documented band, which findings failed."""
    from ablation.findings import FINDINGS
    from ablation.results import read_results
    from ablation.verdict import Tolerance, check_documented

    lines = ["| run | fault | cells outside band | findings failed |", "|---|---|---|---|"]
    for path in paths:
        results = read_results(path)
        verdicts = check_documented(results, Tolerance())
        failed_cells = [f"{v.study}[{v.cell}]" for v, _, _ in verdicts if not v.passed]
        findings = [(f, f.judge(results)) for f in FINDINGS]
        failed = [f.name for f, (ok, _) in findings if ok is False]
        judged = sum(ok is not None for _, (ok, _) in findings)
        fault = (results.get("bench") or {}).get("fault") or "none"
        lines.append(f"| {Path(path).name} | {fault} | {len(failed_cells)}/{len(verdicts)}"
                     f"{': ' + ', '.join(failed_cells) if failed_cells else ''} | "
                     f"{len(failed)}/{judged}{': ' + ', '.join(failed) if failed else ''} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.faults RESULTS.json [RESULTS.json ...]")
    print(detection_report(sys.argv[1:]))
