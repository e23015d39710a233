"""The bench's false-alarm rate, simulated: ``python -m bench.false_alarms [--runs N]``.

A null model of an unchanged bench run on one device and the offline copy,
fitted on the two recorded H200 bench runs with independent seeds
(bench/recorded/h200-bench.json, seeds 0-7, and h200-repeat.json, seeds
1000-1007): per cell a normal distribution of accuracy (its mean and pooled
within-run sd), and in the bimodal cells a share of runs at chance beside
the learned runs' normal, and in the cells whose runs learn a log-normal final
training loss (the recorded files hold no loss curves or test loss, so the
final loss stands for the loss metrics).  Each simulated bench run first draws its world
from the fit's uncertainty (each sd from its chi-square, each mean from its
standard error, each share from its beta posterior), then a baseline run and
a current run of that world, and judges them as the bench does with the
project's own check_cell, judge_study_shift, findings and throughput limit.
A run with any failed decision is a false alarm: the family-wise rate that
the alarm budget bounds.

``--paired`` simulates the one decision that the independent-seed model
cannot: a cell judged against a baseline seed by seed (12 or more shared
seeds, verdict.MIN_PAIRED_CELL), at the cell's own alpha, with per-seed
differences of several symmetric shapes (two runs of one seed under
unchanged training are exchangeable, so their difference is symmetric).

``--unpaired`` simulates the study shift on other seeds (the pooled
two-sample t) at the seed counts where it runs, and a finding's contrast
whose cells' spreads differ, each beside Welch's test, whose estimated df
make it alarm more often than stated at these alphas.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ablation.compare import THROUGHPUT_DF, THROUGHPUT_LOG_SD, judge_metric, judge_study_shift, min_throughput
from ablation.findings import FINDINGS
from ablation.results import read_results
from ablation.stats import t_quantile, t_sf
from ablation.studies import DOCUMENTED
from ablation.verdict import BUDGET, Tolerance, at_chance, check_against_baseline, check_cell
from bench.null_runs import wilson

RECORDED = Path(__file__).resolve().parent / "recorded"
FITTED_ON = ("h200-bench.json", "h200-repeat.json")
KINDS = ("documented_cell", "baseline_cell", "chance_share", "study_shift", "metric", "finding", "throughput")


@dataclass(frozen=True)
class CellModel:
    study: str
    cell: str
    replicates: int
    documented: list[float] | None
    mean: float  # of the runs that learned
    sd: float
    df: int
    chance: int  # runs at chance among ``runs``
    runs: int
    log_loss: tuple[float, float]  # mean and pooled within-run sd of log(final loss), df as ``df``

    def world(self, rng: random.Random) -> tuple[float, float, float, float, float]:
        """(mean, sd, share at chance, log-loss mean, log-loss sd) of one simulated world, drawn from the fit's
        uncertainty."""
        scale = math.sqrt(self.df / (2 * rng.gammavariate(self.df / 2, 1.0)))
        mean = rng.gauss(self.mean, self.sd / math.sqrt(self.runs - self.chance))
        share = rng.betavariate(self.chance + 1, self.runs - self.chance + 1) if self.chance else 0.0
        loss_scale = math.sqrt(self.df / (2 * rng.gammavariate(self.df / 2, 1.0)))
        return mean, self.sd * scale, share, self.log_loss[0], self.log_loss[1] * loss_scale


def fit(paths: Sequence[Path] = tuple(RECORDED / name for name in FITTED_ON)) -> list[CellModel]:
    runs = [read_results(path) for path in paths]
    models = []
    for study in DOCUMENTED:
        for cell in study.cells:
            records = [run["studies"][study.name]["cells"][cell.id] for run in runs]
            learned = [[a for a, c in zip(r["accuracy"], r["collapsed"]) if not at_chance(a, c, 10)] for r in records]
            values = [a for run in learned for a in run]
            df = sum(len(run) - 1 for run in learned if len(run) > 1)
            ss = sum(sum((a - statistics.fmean(run)) ** 2 for a in run) for run in learned if len(run) > 1)
            total = sum(len(r["accuracy"]) for r in records)
            documented = records[0]["documented"]["runs"] if records[0]["documented"] else None
            logs = [[math.log(x) for x in r["final_loss"]] for r in records]
            log_ss = sum(sum((x - statistics.fmean(run)) ** 2 for x in run) for run in logs)
            log_df = sum(len(run) - 1 for run in logs)
            models.append(CellModel(study.name, cell.id, study.replicates, documented, statistics.fmean(values),
                                    math.sqrt(ss / df), df, total - len(values), total,
                                    (statistics.fmean(x for run in logs for x in run), math.sqrt(log_ss / log_df))))
    return models


def draw(world: tuple[float, ...], replicates: int, rng: random.Random) -> dict[str, Any]:
    mean, sd, share, log_loss, log_loss_sd = world
    if not share:  # a cell whose runs learn: plain normal draws, whose low tail the chance-run rule judges
        return {"accuracy": [rng.gauss(mean, sd) for _ in range(replicates)], "collapsed": [False] * replicates,
                "final_loss": [math.exp(rng.gauss(log_loss, log_loss_sd)) for _ in range(replicates)]}
    accuracy = [10.0 - rng.uniform(0.0, 0.8) if rng.random() < share else learned_run(mean, sd, rng)
                for _ in range(replicates)]
    return {"accuracy": accuracy, "collapsed": [False] * replicates}


def learned_run(mean: float, sd: float, rng: random.Random) -> float:
    """A run that learned in a bimodal cell: its normal, redrawn until it is above chance (a learned run is, by
    definition) and at most 100 %."""
    while True:
        accuracy = rng.gauss(mean, sd)
        if 10.5 < accuracy <= 100.0:
            return accuracy


def simulate(runs: int, tolerance: Tolerance = Tolerance(), seed: int = 0,
             models: list[CellModel] | None = None) -> dict[str, float]:
    """Per kind of decision and for the whole run ("any"), the share of simulated unchanged bench runs with a
    false alarm."""
    rng = random.Random(seed)
    models = models or fit()
    same_device = Tolerance(**{**tolerance.__dict__, "hardware": 0.0})
    limit = min_throughput(same_device)
    alarms = {kind: 0 for kind in KINDS + ("any",)}
    for _ in range(runs):
        worlds = {(m.study, m.cell): m.world(rng) for m in models}
        sides = [{}, {}]
        for side in sides:
            for m in models:
                side.setdefault(m.study, {})[m.cell] = draw(worlds[m.study, m.cell], m.replicates, rng)
        baseline, current = sides
        found = dict.fromkeys(KINDS, False)
        for m in models:
            record = current[m.study][m.cell]
            if m.documented and not check_cell(m.study, m.cell, record, m.documented, tolerance, True).passed:
                found["documented_cell"] = True
            against = check_against_baseline(m.study, m.cell, record, baseline[m.study][m.cell], same_device)
            if not against.passed:
                found["chance_share" if against.share_changed else "baseline_cell"] = True
            if "final_loss" in record and not judge_metric("final_loss", baseline[m.study][m.cell], record,
                                                           same_device).passed:
                found["metric"] = True
        for study in DOCUMENTED:
            shift = judge_study_shift(study.name, baseline[study.name], current[study.name], same_device)
            found["study_shift"] |= shift is not None and not shift.passed
            loss = judge_study_shift(study.name, baseline[study.name], current[study.name], same_device, "final_loss")
            found["metric"] |= loss is not None and not loss.passed
            log_sd = THROUGHPUT_LOG_SD * math.sqrt(THROUGHPUT_DF / (2 * rng.gammavariate(THROUGHPUT_DF / 2, 1.0)))
            found["throughput"] |= math.exp(rng.gauss(0.0, log_sd)) < limit
        results = {"studies": {name: {"cells": cells} for name, cells in current.items()}}
        found["finding"] = any(f.judge(results, tolerance)[0] is False for f in FINDINGS)
        for kind, alarm in found.items():
            alarms[kind] += alarm
        alarms["any"] += any(found.values())
    return {kind: count / runs for kind, count in alarms.items()}


# Symmetric shapes of the per-seed differences, each drawn at unit scale (the paired test does not depend on it).
DIFFERENCE_SHAPES: dict[str, Callable[[tuple[int, int], torch.Generator], torch.Tensor]] = {
    "normal": lambda size, g: torch.randn(size, generator=g, dtype=torch.float64),
    "Student's t, 3 df": lambda size, g: torch.randn(size, generator=g, dtype=torch.float64)
    / (torch.randn((3, *size), generator=g, dtype=torch.float64).square().sum(0) / 3).sqrt(),
    "5 % of seeds at 5x the spread": lambda size, g: torch.randn(size, generator=g, dtype=torch.float64)
    * torch.where(torch.rand(size, generator=g, dtype=torch.float64) < 0.05, 5.0, 1.0),
}
PAIRED_COUNTS = (12, 16, 24)


def paired_alarms(differences: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per row of per-seed differences (current minus baseline), whether the paired band of a cell (paired_band,
    no allowance) fails at ``alpha``: its mean beyond t_quantile(alpha / 2) standard errors of the differences."""
    pairs = differences.shape[1]
    t = differences.mean(1) / (differences.std(1) / math.sqrt(pairs))
    return t.abs() > t_quantile(alpha / 2, pairs - 1)


def paired_cell_alarms(pairs: int, shape: str, draws: int, tolerance: Tolerance = Tolerance(), seed: int = 0,
                       chunk: int = 1_000_000) -> int:
    """How many of ``draws`` null same-seed comparisons of one cell fail its paired band, at the band's alpha (half
    the baseline cell's): each ``pairs`` differences of ``shape`` (a key of DIFFERENCE_SHAPES)."""
    generator = torch.Generator().manual_seed(seed)
    alpha = tolerance.alpha("baseline_cell") / 2
    alarms = 0
    for start in range(0, draws, chunk):
        differences = DIFFERENCE_SHAPES[shape]((min(chunk, draws - start), pairs), generator)
        alarms += int(paired_alarms(differences, alpha).sum())
    return alarms


def paired_table(draws: int, seed: int) -> str:
    tolerance = Tolerance()
    alpha = tolerance.alpha("baseline_cell") / 2
    lines = [f"Paired cell band at its alpha {alpha:.2g}, {draws:,} simulated null comparisons each: the rate as a "
             "multiple of alpha, with its 95 % Wilson interval", "",
             "| differences | " + " | ".join(f"{n} pairs" for n in PAIRED_COUNTS) + " |",
             "|---|" + "---|" * len(PAIRED_COUNTS)]
    for shape in DIFFERENCE_SHAPES:
        cells = [rate_text(paired_cell_alarms(n, shape, draws, tolerance, seed), draws, alpha) for n in PAIRED_COUNTS]
        lines.append(f"| {shape} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rate_text(alarms: int, draws: int, alpha: float) -> str:
    """The rate of ``alarms`` in ``draws`` as a multiple of ``alpha``, with its 95 % Wilson interval."""
    low, high = wilson(alarms, draws)
    return f"x{alarms / draws / alpha:.2f} ({low / alpha:.2f}-{high / alpha:.2f})"


# (current, baseline) seeds of a study shift on other seeds: pr against pr, an adaptive run after two more rounds,
# pr against a nightly baseline; counts 3 times apart, then 4 times or more (compare.UNEQUAL_SEEDS).
UNPAIRED_COUNTS = ((3, 3), (5, 5), (8, 8), (3, 9), (5, 16), (8, 16), (8, 24), (3, 12), (3, 16), (3, 24), (5, 24),
                   (8, 48))
SPREAD_RATIOS = (1, 3, 10)  # of a finding's two cells


def t_beyond(t: torch.Tensor, df: torch.Tensor, upper: float) -> torch.Tensor:
    """Exactly whether t_sf(t, df) < ``upper``, per element, for df from 1 to 10,000 that vary: the quantile is
    decreasing in df, so a grid of df brackets it, and t_sf decides the few draws that fall inside a bracket."""
    if df.min() < 1 or df.max() > 1e4:
        raise ValueError(f"df from 1 to 10,000 only, not {df.min().item():g} to {df.max().item():g}")
    grid = torch.logspace(0, 4, 801, dtype=torch.float64)
    quantiles = torch.tensor([t_quantile(upper, d) for d in grid.tolist()], dtype=torch.float64)
    index = torch.searchsorted(grid, df, right=True).clamp(1, len(grid) - 1)
    beyond = t > quantiles[index - 1]
    unsure = (t > quantiles[index]) & ~beyond
    for i in unsure.nonzero().flatten().tolist():
        beyond[i] = t_sf(t[i].item(), df[i].item()) < upper
    return beyond


def two_sample_alarms(current: torch.Tensor, baseline: torch.Tensor, alpha: float, rule: str) -> torch.Tensor:
    """Per row of per-seed means, whether a study shift on other seeds (no allowance) fails at ``alpha``, by the
    bench's rule ("pooled": compare.judge_study_shift's pooled t) or by Welch's test."""
    n, k = current.shape[1], baseline.shape[1]
    change = (current.mean(1) - baseline.mean(1)).abs()
    if rule == "pooled":
        pooled = ((n - 1) * current.var(1) + (k - 1) * baseline.var(1)) / (n + k - 2)
        return change / (pooled * (1 / n + 1 / k)).sqrt() > t_quantile(alpha / 2, n + k - 2)
    a, b = current.var(1) / n, baseline.var(1) / k
    return t_beyond(change / (a + b).sqrt(), welch_df(a, b, n, k), alpha / 2)


def welch_df(a: torch.Tensor, b: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Welch-Satterthwaite df of a difference of two means whose squared standard errors are ``a`` and ``b``."""
    return (a + b) ** 2 / (a ** 2 / (n - 1) + b ** 2 / (k - 1))


def contrast_alarms(first: torch.Tensor, second: torch.Tensor, alpha: float, rule: str) -> torch.Tensor:
    """Per row of two cells' replicates, whether the finding "first minus second >= 0" fails at ``alpha`` when it
    holds at its margin: by the bench's df ("hsu": findings.Contrast.test's fewest replicates - 1) or Welch's."""
    n, k = first.shape[1], second.shape[1]
    a, b = first.var(1) / n, second.var(1) / k
    t = (second.mean(1) - first.mean(1)) / (a + b).sqrt()
    df = torch.full_like(t, min(n, k) - 1.0) if rule == "hsu" else welch_df(a, b, n, k)
    return t_beyond(t, df, alpha)


def unpaired_table(draws: int, seed: int) -> str:
    """The study shift's rate on other seeds, and a finding's at its margin, as multiples of their alphas."""
    tolerance = Tolerance()
    generator = torch.Generator().manual_seed(seed)
    alpha = tolerance.alpha("study_shift")
    lines = [f"Study shift on other seeds at its alpha {alpha:.2g}, {draws:,} simulated null comparisons each: "
             "the rate as a multiple of alpha, with its 95 % Wilson interval", "",
             "| per-seed means | rule | " + " | ".join(f"{n} vs {k} seeds" for n, k in UNPAIRED_COUNTS) + " |",
             "|---|---|" + "---|" * len(UNPAIRED_COUNTS)]
    for shape, draw_shape in DIFFERENCE_SHAPES.items():
        for rule in ("pooled", "welch"):
            alarms = [two_sample_alarms(draw_shape((draws, n), generator), draw_shape((draws, k), generator), alpha,
                                        rule).sum() for n, k in UNPAIRED_COUNTS]
            cells = [rate_text(int(count), draws, alpha) for count in alarms]
            lines.append(f"| {shape} | {'pooled t (the rule)' if rule == 'pooled' else 'Welch'} | "
                         + " | ".join(cells) + " |")
    alpha = tolerance.alpha("finding")
    lines += ["", f"A finding's two-cell contrast at its margin, one-sided at alpha {alpha:.2g}, normal runs, "
              f"{draws:,} draws each", "",
              "| replicates per cell | df | " + " | ".join(f"sds 1 : {r}" for r in SPREAD_RATIOS) + " |",
              "|---|---|" + "---|" * len(SPREAD_RATIOS)]
    for n in (3, 5, 8):
        for rule in ("hsu", "welch"):
            cells = [rate_text(int(contrast_alarms(torch.randn(draws, n, generator=generator, dtype=torch.float64),
                                                   torch.randn(draws, n, generator=generator, dtype=torch.float64)
                                                   * ratio, alpha, rule).sum()), draws, alpha)
                     for ratio in SPREAD_RATIOS]
            lines.append(f"| {n} | {'fewest replicates - 1 (the rule)' if rule == 'hsu' else 'Welch'} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.false_alarms", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000, help="simulated bench runs (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default %(default)s)")
    parser.add_argument("--paired", type=int, metavar="DRAWS",
                        help="instead: the paired cell band's rate over DRAWS null comparisons per shape and count")
    parser.add_argument("--unpaired", type=int, metavar="DRAWS",
                        help="instead: the study shift's rate on other seeds, and a finding's, over DRAWS null "
                             "comparisons per shape and count")
    args = parser.parse_args(argv)
    if args.unpaired is not None:
        if args.unpaired < 1:
            parser.error(f"--unpaired needs at least 1 draw, not {args.unpaired}")
        return unpaired_table(args.unpaired, args.seed)
    if args.paired is not None:
        if args.paired < 1:
            parser.error(f"--paired needs at least 1 draw, not {args.paired}")
        return paired_table(args.paired, args.seed)
    rates = simulate(args.runs, seed=args.seed)
    tolerance = Tolerance()
    lines = ["| decision | alpha per decision | decisions per run | simulated false-alarm rate per run |",
             "|---|---|---|---|"]
    for kind in KINDS:
        count = BUDGET[kind][1]
        lines.append(f"| {kind} | {tolerance.alpha(kind):.2g} | {count} | {rates[kind]:.3%} |")
    half = 1.96 * math.sqrt(rates["any"] * (1 - rates["any"]) / args.runs)
    lines.append(f"| whole run | budget {tolerance.alarm_budget:.0%} | | {rates['any']:.3%} ± {half:.3%} (95 %) |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
