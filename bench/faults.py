"""Planted faults, for measuring what the bench catches (``pytest -m gpu --plant-fault NAME``).

Each fault is a bug a real change could introduce.  ``plant`` changes a
study's definition; ``patch`` changes the running process once (for faults
outside a study's data).  ``python -m bench.faults RESULTS.json ...`` judges
results files of such runs and prints which cells and findings caught each.

    python -m bench.faults FAULT.json ... --null NULL.json ... --resample DRAWS [--replicates pr|nightly]

measures instead what one large fault run says about many bench runs.  A
fault run of many replicates (`pytest -m gpu --plant-fault NAME --replicates
12 --seed-offset 11000`: seeds of `h200-null-1.json`; or the null plan's)
gives the fault's effect on every study, paired seed by seed with the null
run of its seeds (the unfaulted bench of the same replicates, if given, else
a null run that trained more of them), with the shift the paired test
detects at the plan's counts and the fault's spread.  Then DRAWS pseudo-runs
of the plan's counts, their seeds drawn at random from it (as
bench/null_runs.py draws unchanged ones), are each judged against the
documented table, against the null run's same seeds, and against a baseline
resampled from a null run of other seeds: the share of draws caught is the
fault's detection rate at those counts.  The draws share seeds, so the rates
are printed without an interval.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

import ablation.train
from ablation.blocks import PARTS, ConvBlock
from ablation.compare import compare
from ablation.findings import FINDINGS
from ablation.numerics import sizes_differ
from ablation.power import Power
from ablation.results import ResultsError, planted_fault, read_results
from ablation.studies import Study, get_study
from ablation.verdict import Tolerance, check_documented
from bench.null_runs import (COMPARISON_KINDS, OUTSIDE_BUDGET, TABLE_KINDS, comparison_alarms, drawn_seeds,
                             on_study_seeds, replicates_held, resample, study_seeds, table_alarms, tally, trained_seeds)

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


# The detection table's column of each decision kind (bench/null_runs.py's kinds), the whole run's first.
DETECTED_BY = {"any": "caught (the run fails)", "documented_cell": "cells vs the table", "finding": "findings",
               "baseline_cell": "cells vs the baseline", "chance_share": "share at chance",
               "study_shift": "study shifts", "metric": "loss metrics", "same_training": "--same-training"}


def reference_runs(fault_run: dict[str, Any], null_runs: list[dict[str, Any]]
                   ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The null run that trained every seed of the fault run (None if none did; of several, the first whose models
    were of the fault run's sizes), and those that trained none of them; a null run that shares only some is
    refused, being neither a same-seed nor an independent baseline."""
    ours = trained_seeds(fault_run)
    same = [run for run in null_runs if ours <= trained_seeds(run)]
    others = [run for run in null_runs if not ours & trained_seeds(run)]
    if len(same) + len(others) < len(null_runs):
        raise ValueError("a null run shares some of a fault run's seeds but not all; give null runs that trained "
                         "all of its seeds (the same --seed-offset and more replicates) or none of them")
    same.sort(key=lambda run: not same_model_sizes(fault_run, run))
    return (same[0] if same else None), others


def same_model_sizes(fault_run: dict[str, Any], null_run: dict[str, Any]) -> bool:
    """Whether the null run trained every seed of the fault run in a model of the size the fault run trained it
    in: the pairs then differ by the fault alone (a model of another size rounds differently), and
    --same-training can judge them."""
    return not any(sizes_differ(null_run["studies"][name]["cells"][cell_id], record)
                   for name, entry in fault_run["studies"].items() for cell_id, record in entry["cells"].items())


def resampled_detection(fault_run: dict[str, Any], same: dict[str, Any] | None, others: list[dict[str, Any]],
                        draws: int, plan: str | int = "pr", tolerance: Tolerance = Tolerance(),
                        seed: int = 0) -> dict[str, dict[str, tuple[int, int]]]:
    """Per way of judging: the documented table; a baseline of the same seeds (``same``, the null run that trained
    them, if any); a baseline of other seeds (resampled from one of ``others``, null runs that trained none of
    them; see reference_runs).  Per decision kind: (draws caught, draws judged), each draw a pseudo-run of the
    plan's counts drawn from the fault run."""
    drawable = dict(fault_run, studies={name: entry for name, entry in fault_run["studies"].items()
                                        if name not in too_few_to_draw(fault_run, plan)})
    if not drawable["studies"]:
        raise ValueError(f"a fault run holds no more replicates than the {plan} plan's in any study, so every draw "
                         "would be the same run; train it with more (the bench's --replicates 12, or null)")
    rng = random.Random(seed)
    table, paired, unpaired = [], [], []
    for _ in range(draws):
        seeds = drawn_seeds(drawable, plan, rng)
        current = on_study_seeds(drawable, seeds)
        table.append(table_alarms(current, tolerance))
        if same is not None:
            paired.append(comparison_alarms(compare(on_study_seeds(same, seeds), current, tolerance)))
        if others:
            unpaired.append(comparison_alarms(compare(resample(rng.choice(others), plan, rng), current, tolerance)))
    ways = {"documented table, resampled": table, "same seeds, resampled": paired, "other seeds, resampled": unpaired}
    return {way: tally(judged) for way, judged in ways.items() if judged}


def too_few_to_draw(fault_run: dict[str, Any], plan: str | int) -> dict[str, int]:
    """The studies of a fault run holding no more replicates than the plan's count (every draw would be the same
    run), with the replicates they hold."""
    held = {name: replicates_held(entry) for name, entry in fault_run["studies"].items()}
    return {name: n for name, n in held.items() if n <= get_study(name).replicates_for(plan)}


def effect_row(path: str, fault_run: dict[str, Any], same: dict[str, Any] | None,
               others: list[dict[str, Any]], plan: str | int = "pr") -> str:
    """A fault run's effect on every study with all its seeds: paired against ``same``, the null run of its seeds,
    else against the first null run of other seeds; a paired shift with the shift the paired test detects at the
    plan's counts and the fault's spread (for the plans whose counts cannot be drawn from the run)."""
    if same is not None:
        reference = on_study_seeds(same, {name: study_seeds(entry) for name, entry in fault_run["studies"].items()})
    else:
        reference = others[0]
    comparison = compare(reference, fault_run, Tolerance())
    accuracy = [s for s in comparison.shifts if s.metric == "accuracy"]
    seeds = "/".join(str(replicates_held(entry)) for entry in fault_run["studies"].values())
    return (f"| {Path(path).name} | {planted_fault(fault_run) or 'none'} | {seeds} | "
            f"{'same seeds' if same is not None else 'other seeds'} | "
            + ("; ".join(f"{s.study} {s.change_text}{_spread(s, plan)}" for s in accuracy) or "-") + " | "
            + _tally([f"{s.study} {s.metric} {s.change_text}" for s in comparison.shifts
                      if s.metric != "accuracy" and not s.passed],
                     sum(s.metric != "accuracy" for s in comparison.shifts)) + " |")


def resampled_report(paths: list[str], null_paths: list[str], draws: int, plan: str | int = "pr",
                     seed: int = 0) -> str:
    """Each fault run's effect with all its seeds, then its detection rate per way and decision over ``draws``
    pseudo-runs of the plan's counts (no interval: the draws share seeds); a progress line per run on stderr."""
    null_runs = [read_results(path) for path in null_paths]
    lines = ["| run | fault | seeds per study | against | accuracy: study shifts, all seeds | loss metrics: study "
             "shifts moved |", "|---|---|---|---|---|---|"]
    kinds = ("any",) + TABLE_KINDS + COMPARISON_KINDS + OUTSIDE_BUDGET
    rows = [f"| fault | judged against | draws of {plan} counts | " + " | ".join(DETECTED_BY[k] for k in kinds) + " |",
            "|---" * (len(kinds) + 3) + "|"]
    notes = []
    for path in paths:
        fault_run = read_results(path)
        print(f"{Path(path).name}: its effect, then {draws} pseudo-runs of the {plan} counts drawn from it",
              file=sys.stderr)
        same, others = reference_runs(fault_run, null_runs)
        lines.append(effect_row(path, fault_run, same, others, plan))
        undrawn = too_few_to_draw(fault_run, plan)
        if len(undrawn) < len(fault_run["studies"]):
            for way, counts in resampled_detection(fault_run, same, others, draws, plan, seed=seed).items():
                rates = [f"{counts[k][0] / counts[k][1]:.1%}" if k in counts else "-" for k in kinds]
                rows.append(f"| {planted_fault(fault_run) or 'none'} | {way.removesuffix(', resampled')} | {draws} | "
                            + " | ".join(rates) + " |")
        if undrawn:
            notes.append(f"note: {Path(path).name}: not in its draws, holding no more replicates than the {plan} "
                         "plan's: " + ", ".join(f"{name} ({held} of {get_study(name).replicates_for(plan)})"
                                               for name, held in undrawn.items())
                         + "; the effects above give the paired test's detectable shift at those counts")
    detection = [""] + rows if len(rows) > 2 else []
    return "\n".join(lines + detection + ([""] + notes if notes else []))


def _spread(shift, plan: str | int | None = None) -> str:
    """A paired shift's per-seed differences' sd: how far the fault moved each seed's run apart from its baseline
    (unchanged training on the H200: 0.08-0.29 points; docs/statistics.md, Power); with a ``plan``, the shift
    the paired test detects with 80 % power at that spread and the plan's counts."""
    if shift.test != "paired":
        return ""
    sd = shift.se * math.sqrt(shift.df + 1)
    if plan is None:
        return f" (seed sd {sd:.2f})"
    seeds = get_study(shift.study).replicates_for(plan)
    power = Power(shift.study, shift.metric, shift.df + 1, sd, Tolerance().alpha("study_shift"), 0.8, paired=True)
    return f" (seed sd {sd:.2f}; detectable at {seeds} seeds: {power.detectable(seeds):.2f})"


def _cell(verdict) -> str:
    return f"{verdict.study}[{verdict.cell}]"


def _tally(failed: list[str], judged: int, shown: int | None = None) -> str:
    """'failed/judged', then which failed (the first ``shown`` of them, if given)."""
    names = failed if shown is None or len(failed) <= shown else failed[:shown] + ["..."]
    return f"{len(failed)}/{judged}" + (": " + ", ".join(names) if names else "")


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.faults",
                                     description="what the bench catches of planted faults: per results file, "
                                                 "or (--resample) each fault's effect and detection rate")
    parser.add_argument("results", nargs="+", metavar="RESULTS.json", help="results files of bench runs")
    parser.add_argument("--baseline", metavar="BASELINE.json", help="also judge each file's drift against this run")
    parser.add_argument("--null", metavar="NULL.json", nargs="+",
                        help="with --resample: runs of unchanged code (bench/null_runs.py), one of them with the fault "
                             "runs' seeds for the same-seed baseline")
    parser.add_argument("--resample", type=int, metavar="DRAWS",
                        help="instead: each fault's effect with all its seeds, and its detection rate over DRAWS "
                             "pseudo-runs drawn from it (default: none)")
    parser.add_argument("--replicates", default="pr", choices=["pr", "nightly"],
                        help="with --resample: the plan whose counts the draws take (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the resampling (default %(default)s)")
    args = parser.parse_args(argv)
    if args.resample is not None and args.resample < 1:
        parser.error(f"--resample needs at least 1 draw, not {args.resample}")
    if (args.resample is None) != (args.null is None):
        parser.error("--resample and --null go together: the draws are judged against the null runs")
    if args.resample is not None and args.baseline:
        parser.error("--resample judges against the null runs; give --baseline without it")
    try:
        if args.resample is not None:
            return resampled_report(args.results, args.null, args.resample, args.replicates, args.seed)
        return detection_report(args.results, args.baseline)
    except (ResultsError, ValueError) as error:
        parser.error(str(error))


if __name__ == "__main__":
    print(main(sys.argv[1:]))
