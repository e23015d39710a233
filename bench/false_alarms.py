"""The bench's false-alarm rate, simulated: ``python -m bench.false_alarms [--runs N] [--fit RUN.json ...]``.

A null model of an unchanged bench run on one device and the offline copy,
fitted by default on the recorded H200 null runs (bench/recorded/
h200-null-1.json and h200-null-2.json: 25 / 40 / 15 replicates a cell each,
on seeds of their own), which no constant of the rules was fitted to; --fit
names other runs of unchanged code and other seeds each (h200-bench.json and
h200-repeat.json are the two runs that LEARNED_SD was fitted on).  Per cell:
a normal distribution of accuracy (its mean and pooled within-run sd), in
the bimodal cells a share of runs at chance beside the learned runs'
normal, and in the cells whose runs learn the logs of the loss metrics that
every fitted run records, as a multivariate normal (their means and pooled
within-run covariance; the older recorded files hold the final training
loss only, which then stands for the three).  Throughput is drawn from
compare's measured spread (THROUGHPUT_LOG_SD and its df), the one part not
held out: the null runs' blocks share their run's timing.  Each simulated
bench run first draws its world from the fit's uncertainty (each sd and
covariance from its chi-square, each mean from its standard error, each
share from its beta posterior), then a baseline run and a current run of
that world, and judges them as the bench does with the project's own
check_cell, check_against_baseline, judge_metric, judge_study_shift,
findings and throughput limit.  A run with any failed decision is a false
alarm: the family-wise rate that the alarm budget bounds.

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

from ablation.compare import (THROUGHPUT_DF, THROUGHPUT_LOG_SD, judge_metric, judge_study_shift, judges_losses,
                              metric_values, min_throughput)
from ablation.findings import FINDINGS
from ablation.results import ResultsError, read_results
from ablation.stats import t_quantile, t_sf
from ablation.studies import DOCUMENTED
from ablation.verdict import BUDGET, LOSS_METRICS, Tolerance, at_chance, check_against_baseline, check_cell
from bench.null_runs import wilson

RECORDED = Path(__file__).resolve().parent / "recorded"
FITTED_ON = ("h200-null-1.json", "h200-null-2.json")
KINDS = ("documented_cell", "baseline_cell", "chance_share", "study_shift", "metric", "finding", "throughput")


@dataclass(frozen=True)
class World:
    """One simulated world of a cell: what its runs are drawn from."""

    mean: float  # accuracy of the runs that learn
    sd: float
    share: float  # of runs at chance
    losses: tuple[str, ...]  # the loss metrics drawn (LOSS_METRICS that the fit holds; none in bimodal cells)
    log_loss_mean: tuple[float, ...]
    log_loss_root: tuple[tuple[float, ...], ...]  # lower Cholesky factor of the logs' covariance


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
    losses: tuple[str, ...]
    log_loss_mean: tuple[float, ...]
    log_loss_root: tuple[tuple[float, ...], ...]  # of the pooled within-run covariance, on ``loss_df`` df
    loss_df: int

    def world(self, rng: random.Random) -> World:
        """A world drawn from the fit's uncertainty."""
        scale = math.sqrt(self.df / (2 * rng.gammavariate(self.df / 2, 1.0)))
        mean = rng.gauss(self.mean, self.sd / math.sqrt(self.runs - self.chance))
        share = rng.betavariate(self.chance + 1, self.runs - self.chance + 1) if self.chance else 0.0
        loss_scale = math.sqrt(self.loss_df / (2 * rng.gammavariate(self.loss_df / 2, 1.0))) if self.losses else 1.0
        root = tuple(tuple(x * loss_scale for x in row) for row in self.log_loss_root)
        return World(mean, self.sd * scale, share, self.losses, self.log_loss_mean, root)

    def centre(self) -> World:
        """The fitted world itself."""
        return World(self.mean, self.sd, self.chance / self.runs, self.losses, self.log_loss_mean,
                     self.log_loss_root)


def fit(paths: Sequence[Path] = tuple(RECORDED / name for name in FITTED_ON)) -> list[CellModel]:
    """The null model of every documented cell, fitted on unchanged runs that hold every documented study (their
    seeds should differ: runs of the same seeds would understate the spread)."""
    runs = [read_results(path) for path in paths]
    models = []
    for study in DOCUMENTED:
        for cell in study.cells:
            try:
                records = [run["studies"][study.name]["cells"][cell.id] for run in runs]
            except KeyError:
                raise ValueError(f"a fitted run lacks {study.name}[{cell.id}]; fit on runs of the whole table "
                                 "(run all)") from None
            learned = [[a for a, c in zip(r["accuracy"], r["collapsed"]) if not at_chance(a, c, 10)] for r in records]
            values = [a for run in learned for a in run]
            df = sum(len(run) - 1 for run in learned if len(run) > 1)
            ss = sum(sum((a - statistics.fmean(run)) ** 2 for a in run) for run in learned if len(run) > 1)
            total = sum(len(r["accuracy"]) for r in records)
            documented = records[0]["documented"]["runs"] if records[0]["documented"] else None
            losses = tuple(m for m in LOSS_METRICS if judges_losses(study.name, cell.id, True)
                           and all(metric_values(r, m) is not None for r in records))
            models.append(CellModel(study.name, cell.id, study.replicates, documented, statistics.fmean(values),
                                    math.sqrt(ss / df), df, total - len(values), total, losses,
                                    *fit_losses(records, losses)))
    return models


def fit_losses(records: list[dict[str, Any]], losses: tuple[str, ...]) -> tuple[tuple[float, ...],
                                                                             tuple[tuple[float, ...], ...], int]:
    """The mean of the ``losses``' logs over ``records``, the lower Cholesky factor of their pooled within-run
    covariance, and its df."""
    if not losses:
        return (), (), 0
    logs = [torch.tensor([metric_values(r, m) for m in losses], dtype=torch.float64).T for r in records]
    centred = torch.cat([run - run.mean(0) for run in logs])
    df = sum(len(run) - 1 for run in logs)
    root = torch.linalg.cholesky(centred.T @ centred / df)
    return tuple(torch.cat(logs).mean(0).tolist()), tuple(map(tuple, root.tolist())), df


def draw(world: World, replicates: int, rng: random.Random) -> dict[str, Any]:
    """A record of ``replicates`` runs of the world (accuracy, at chance, and its loss metrics)."""
    if world.share:
        accuracy = [10.0 - rng.uniform(0.0, 0.8) if rng.random() < world.share else learned_run(world.mean,
                                                                                                  world.sd, rng)
                    for _ in range(replicates)]
    else:  # plain normal draws, whose low tail the chance-run rule judges
        accuracy = [rng.gauss(world.mean, world.sd) for _ in range(replicates)]
    record: dict[str, Any] = {"accuracy": accuracy, "collapsed": [False] * replicates}
    if world.losses:
        normal = [[rng.gauss(0.0, 1.0) for _ in world.losses] for _ in range(replicates)]
        logs = [[mean + sum(r * z for r, z in zip(row, draws)) for mean, row in zip(world.log_loss_mean,
                                                                                      world.log_loss_root)]
                for draws in normal]
        for i, metric in enumerate(world.losses):
            values = [math.exp(run[i]) for run in logs]
            if metric == "train_loss":  # the mean of the epochs' training losses: a curve of one epoch
                record["train_loss_curve"] = [[v] for v in values]
            else:
                record[metric] = values
    return record


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
            if any(not judge_metric(metric, baseline[m.study][m.cell], record, same_device).passed
                   for metric in m.losses):
                found["metric"] = True
        for study in DOCUMENTED:
            shift = judge_study_shift(study.name, baseline[study.name], current[study.name], same_device)
            found["study_shift"] |= shift is not None and not shift.passed
            for metric in LOSS_METRICS:
                loss = judge_study_shift(study.name, baseline[study.name], current[study.name], same_device, metric)
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
    parser.add_argument("--fit", metavar="RUN.json", nargs="+", type=Path,
                        help="fit the null model on these runs of unchanged code, of other seeds each (default: "
                             + ", ".join(FITTED_ON) + " in bench/recorded)")
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
    paths = args.fit or [RECORDED / name for name in FITTED_ON]
    try:
        models = fit(paths)
    except (ResultsError, ValueError) as error:
        parser.error(str(error))
    rates = simulate(args.runs, seed=args.seed, models=models)
    tolerance = Tolerance()
    metrics = sorted({metric for m in models for metric in m.losses}, key=LOSS_METRICS.index)
    lines = [f"{args.runs:,} simulated bench runs of a null model fitted on {', '.join(p.name for p in paths)} "
             f"(loss metrics: {', '.join(metrics)})", "",
             "| decision | alpha per decision | decisions per run | simulated false-alarm rate per run |",
             "|---|---|---|---|"]
    for kind in KINDS:
        count = BUDGET[kind][1]
        judged = f"{count // len(LOSS_METRICS) * len(metrics)} of {count}" if kind == "metric" else count
        lines.append(f"| {kind} | {tolerance.alpha(kind):.2g} | {judged} | {rates[kind]:.3%} |")
    half = 1.96 * math.sqrt(rates["any"] * (1 - rates["any"]) / args.runs)
    lines.append(f"| whole run | budget {tolerance.alarm_budget:.0%} | | {rates['any']:.3%} ± {half:.3%} (95 %) |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
