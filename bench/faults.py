"""Planted faults, for measuring what the bench catches (``pytest -m gpu --plant-fault NAME``).

Each fault is a bug a real change could introduce.  ``plant`` changes a
study's definition; ``patch`` changes the running process once (for faults
outside a study's data).  ``python -m bench.faults RESULTS.json ...`` judges
results files of such runs and prints which cells and findings caught each.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

import ablation.train
from ablation.blocks import PARTS, ConvBlock
from ablation.studies import Study

LABEL_NOISE = 0.05  # share of training labels the label_noise fault moves to the next class


def _norm_after_activation(study: Study) -> Study:
    def build(cell, classes, replicates, groups):
        model = study.build(cell, classes, replicates, groups)
        for block in model.modules():
            if isinstance(block, ConvBlock) and block.order == PARTS:
                block._modules = {part: block._modules[part] for part in ("conv", "act", "norm")}
                block.order = ("conv", "act", "norm")
        return model
    return dataclasses.replace(study, build=build)


def _no_normalization() -> None:
    ablation.train.MEAN, ablation.train.STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def _batchnorm_eps(study: Study) -> Study:
    def build(cell, classes, replicates, groups):
        model = study.build(cell, classes, replicates, groups)
        for norm in model.modules():
            if isinstance(norm, nn.BatchNorm2d):
                norm.eps = 0.1
        return model
    return dataclasses.replace(study, build=build)


def _label_noise() -> None:
    """prepare builds its device data with LABEL_NOISE of the training labels moved to the next class, after the
    checksum (a pipeline bug, not other data: the baseline's checksum still matches)."""
    clean = ablation.train.DeviceData

    def noisy(**fields):
        labels = fields["train_y"].clone()
        count = round(LABEL_NOISE * len(labels))
        moved = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:count].to(labels.device)
        labels[moved] = (labels[moved] + 1) % fields["classes"]
        return clean(**dict(fields, train_y=labels))

    ablation.train.DeviceData = noisy


def _eval_with_batch_statistics() -> None:
    """Evaluation leaves the model in training mode: BatchNorm normalizes each 2,000-image test chunk by its own
    statistics instead of the running ones."""
    clean = ablation.train.evaluate

    def evaluate(model, *args, **kwargs):
        model.eval = lambda: model  # the instance's eval() no longer switches the mode
        try:
            return clean(model, *args, **kwargs)
        finally:
            del model.eval

    ablation.train.evaluate = evaluate


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
        lambda s: s.with_hyperparameters(optimizer_args=dict(s.hyperparameters.optimizer_args,
                                                             lr=10 * s.hyperparameters.optimizer_args["lr"]))),
    "no_scheduler": Fault("the learning-rate scheduler dropped",
                          lambda s: s.with_hyperparameters(scheduler=None, scheduler_args={})),
    "no_normalization": Fault("ToTensor without Normalize (wrong normalization constants)", patch=_no_normalization),
    "weight_decay_dropped": Fault(
        "the optimizer's weight decay dropped (AdamW 0.01 in the Sigmoid/ReLU study)",
        lambda s: s.with_hyperparameters(optimizer_args=dict(s.hyperparameters.optimizer_args, weight_decay=0.0))),
    "label_noise": Fault(f"{LABEL_NOISE:.0%} of the training labels moved to the next class (a data pipeline bug)",
                         patch=_label_noise),
    "batchnorm_eps": Fault("BatchNorm eps 0.1 instead of 1e-5", _batchnorm_eps),
    "eval_with_batch_statistics": Fault("evaluation in training mode: BatchNorm uses each test chunk's statistics",
                                        patch=_eval_with_batch_statistics),
}


def detection_report(paths: list[str], baseline_path: str | None = None) -> str:
    """What caught each results file's fault: per file, the cells outside their documented band, and against the
    baseline (when given) the cells outside their band, each study's accuracy shift (the fault's effect, with its
    adjusted p and verdict), the loss metrics that moved, the same-seed numerics, the findings that failed, and
    whether anything failed the run; then per fault, how many of its runs were caught and its mean effect."""
    from ablation.compare import compare
    from ablation.findings import FINDINGS
    from ablation.results import planted_fault, read_results
    from ablation.verdict import Tolerance, check_documented

    tolerance = Tolerance()
    baseline = read_results(baseline_path) if baseline_path else None
    lines = ["| run | fault | documented: cells out of band | accuracy: cells out of band | accuracy: study shifts "
             "| loss metrics: cells moved | loss metrics: study shifts | numerics | findings failed | caught |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    per_fault: dict[str, list[tuple[bool, dict[str, float]]]] = {}
    for path in paths:
        results = read_results(path)
        documented = check_documented(results, tolerance)
        findings = [ok for ok in (f.judge(results, tolerance)[0] for f in FINDINGS) if ok is not None]
        fault = planted_fault(results) or "none"
        caught = any(not v.passed for v in documented) or False in findings
        columns = ["-"] * 5
        effects = {}
        if baseline is not None:
            comparison = compare(baseline, results, tolerance)
            caught = caught or comparison.regressed
            accuracy = [s for s in comparison.shifts if s.metric == "accuracy"]
            effects = {s.study: s.change for s in accuracy}
            numerics = [d.numerics.verdict for d in comparison.drifts if d.numerics is not None]
            columns = [
                _tally([_cell(d.verdict) for d in comparison.drifts if not d.verdict.passed], len(comparison.drifts)),
                "; ".join(f"{s.study} {s.change_text}{_spread(s)}, p adj {s.adjusted_p:.2g}: {s.state}"
                          for s in accuracy) or "-",
                _tally([f"{_cell(d.verdict)} " + ", ".join(m.metric for m in d.metrics if not m.passed)
                        for d in comparison.drifts if not all(m.passed for m in d.metrics)],
                       sum(bool(d.metrics) for d in comparison.drifts), shown=3),
                _tally([f"{s.study} {s.metric} {s.change_text}" for s in comparison.shifts
                        if s.metric != "accuracy" and not s.passed],
                       sum(s.metric != "accuracy" for s in comparison.shifts)),
                f"{numerics.count('changed')}/{len(numerics)} changed" if numerics else "-"]
        per_fault.setdefault(fault, []).append((caught, effects))
        out_of_band = _tally([_cell(v) for v in documented if not v.passed], len(documented))
        lines.append(f"| {Path(path).name} | {fault} | {out_of_band} | " + " | ".join(columns)
                     + f" | {findings.count(False)}/{len(findings)} | {'yes' if caught else 'no'} |")
    lines += ["", "| fault | runs | caught | mean accuracy shift per study |", "|---|---|---|---|"]
    for fault, runs in per_fault.items():
        studies = dict.fromkeys(study for _, effects in runs for study in effects)
        mean_effects = "; ".join(
            f"{study} {statistics.fmean(e[study] for _, e in runs if study in e):+.2f} points" for study in studies)
        lines.append(f"| {fault} | {len(runs)} | {sum(caught for caught, _ in runs)} of {len(runs)} "
                     f"| {mean_effects or '-'} |")
    return "\n".join(lines)


def _spread(shift) -> str:
    """A paired shift's per-seed differences' sd: how far the fault moved each seed's run apart from its baseline
    (unchanged training on the H200: 0.08-0.29 points; docs/statistics.md, Power)."""
    return f" (seed sd {shift.se * math.sqrt(shift.df + 1):.2f})" if shift.test == "paired" else ""


def _cell(verdict) -> str:
    return f"{verdict.study}[{verdict.cell}]"


def _tally(failed: list[str], judged: int, shown: int | None = None) -> str:
    """'failed/judged', then which failed (the first ``shown`` of them, if given)."""
    names = failed if shown is None or len(failed) <= shown else failed[:shown] + ["..."]
    return f"{len(failed)}/{judged}" + (": " + ", ".join(names) if names else "")


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.faults",
                                     description="how many cells and findings each results file fails")
    parser.add_argument("results", nargs="+", metavar="RESULTS.json", help="results files of bench runs")
    parser.add_argument("--baseline", metavar="BASELINE.json", help="also judge each file's drift against this run")
    args = parser.parse_args(argv)
    from ablation.results import ResultsError

    try:
        return detection_report(args.results, args.baseline)
    except ResultsError as error:
        parser.error(str(error))


if __name__ == "__main__":
    print(main(sys.argv[1:]))
