"""Is a measured cell consistent with its reference?  The tolerance, the alarm budget and the cell verdicts.

Every judgement of a bench run (a cell against the documented table, a cell
against a baseline, a study's shift, a loss metric, a finding, a study's
throughput) is a test with a p-value, held to its share of one false-alarm budget per bench
run (``Tolerance.alarm_budget``, 1 %): a weighted Bonferroni split, so the
family-wise false-alarm rate of a whole run is at most the budget whatever
the tests' dependence.  The shares are BUDGET's; docs/statistics.md states
each rule's rate and the simulation that checks them.

A cell's band around a reference mean (documented runs, or a baseline run's
replicates):

- sampling: the difference of the two means in units of its standard error,
  sd * sqrt(1/n + 1/k), sd the pooled spread of both sides (never below
  ``sd_floor``), against Student's t with n + k - 2 df at the cell's alpha;
  against a baseline that trained MIN_PAIRED_CELL or more of the same seeds,
  the mean of the per-seed differences instead, in units of their own
  standard error, against Student's t with pairs - 1 df (paired_band);
- ``hardware``, both ways: another GPU, kernels, random streams; 0 on the
  same device, and measured for known device pairs (DEVICE_PAIR_ALLOWANCE);
- ``data_copy``, downward only, when the data is not torchvision's CIFAR-10:
  the offline copy is JPEG-derived and trains 1-3 points lower.

Cells whose runs are bimodal (batch sizes 2 and 4 of the norm study: some runs
end at chance, 10 %) get two tests at half the cell's alpha each: whether the
share of runs at chance changed (Fisher's exact test), and the band on the
runs that learned, whose sd is never taken below the cell's own learned-run
spread (LEARNED_SD) where a side has fewer than 3 learned runs.

In every other cell a replicate at chance is also judged by itself, since its
spread widens the band: by the t prediction interval of one new run from the
reference (chance_run_p), so a collapse far below runs of small spread is a
regression, while at 3-8 reference runs one a few spreads below is not
evidence at a cell's alpha.  A run is "at chance" when it predicts
one class everywhere or its accuracy is within ``collapse_margin`` of chance
or below: on the GPU most failed runs predict two or three classes
(9.2-10.0 %).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any

from ablation.stats import fisher_exact, paired_t, pooled_sd, t_quantile, t_sf
from ablation.studies import DOCUMENTED, get_study

# The false-alarm budget of one bench run, split by kind of decision: (share of the budget, decisions of that kind
# in a run of the documented studies).  Study shifts get the largest share: they are the sensitive test for a
# fault that moves many cells a little.  The share of runs at chance in a bimodal cell against a baseline has its
# own: at 8 replicates a side even all runs at chance against none gives Fisher's p 1.6e-4, so a share of the
# cells' alpha could never catch it.
# The loss metrics (final and mean training loss, test loss) of every cell whose runs learn and of every study,
# against a same-device baseline, share one part.
DOCUMENTED_CELLS = sum(len(study.cells) for study in DOCUMENTED)
BIMODAL_CELLS = sum(cell.level in study.bimodal_levels for study in DOCUMENTED for cell in study.cells)
LOSS_METRICS = ("final_loss", "train_loss", "test_loss")
BUDGET = {
    "documented_cell": (0.15, DOCUMENTED_CELLS),
    "baseline_cell": (0.1, DOCUMENTED_CELLS),
    "chance_share": (0.1, BIMODAL_CELLS),
    "study_shift": (0.3, len(DOCUMENTED)),
    "metric": (0.15, len(LOSS_METRICS) * (DOCUMENTED_CELLS - BIMODAL_CELLS + len(DOCUMENTED))),
    "finding": (0.1, 5),  # the findings of the documented studies (tests check the count)
    "throughput": (0.1, len(DOCUMENTED)),
}
# Learned runs' sd (points) in the bimodal cells, per cell: pooled within each of the two independent-seed H200
# bench runs (bench/recorded/h200-bench.json, h200-repeat.json; df 1, 12, 10, 14).  A floor where a side has
# fewer than 3 learned runs; other bimodal cells (the variants) take the largest.
LEARNED_SD = {
    "batch_size=2-batchnorm": 6.5,
    "batch_size=2-groupnorm": 5.7,
    "batch_size=4-batchnorm": 3.7,
    "batch_size=4-groupnorm": 2.4,
}
# Hardware allowance (points, either way) between two devices measured with the same seeds: the study means of
# four H100 runs and ten H200 runs of unchanged code differ by at most 0.04 points (tests/test_verdict.py).
DEVICE_PAIR_ALLOWANCE = {frozenset({"NVIDIA H100 80GB HBM3", "NVIDIA H200"}): 0.1}
# A cell whose runs learn is judged against a baseline seed by seed when both trained at least this many of the
# same seeds.  Same-seed runs move together: over 29 such cells of the recorded H200 and H100 runs, the per-seed
# differences spread 0.03 points between unchanged reruns and 0.29-0.38 where the numerics changed (eager against
# CUDA-graph steps, cuDNN autotuning), against 1.3 for the runs themselves: there the paired test detects shifts
# about 4 times smaller.  A change that unpairs the seeds completely (a learning rate x10) leaves the paired test
# the same standard error on half the df, which at a cell's alpha (about 1.5e-5) costs x2.6 in detectable shift
# at 5 pairs, x1.56 at 8 and at most x1.28 from 12 on: so pairs from 12 on.  The choice rests on the counts alone,
# never on the results.
MIN_PAIRED_CELL = 12
# The error rate of "equivalent" (a true change beyond the margin called equivalent): each one-sided test of TOST.
EQUIVALENCE_ALPHA = 0.05


@dataclass(frozen=True)
class Tolerance:
    alarm_budget: float = 0.01  # family-wise false-alarm probability of one bench run
    sd_floor: float = 1.0  # accuracy points
    hardware: float = 1.0  # accuracy points, either way, between devices without a measured allowance
    data_copy: float = 3.0  # accuracy points, downward, for data other than torchvision CIFAR
    collapse_margin: float = 0.5  # accuracy at most this far above chance counts as a run at chance
    margin: float = 1.0  # points beyond the hardware allowance within which a study's shift counts as equivalent
    cell_margin: float = 3.0  # the same for a cell against a baseline
    same_training: bool = False  # the change claims to leave the training alone: a numerics change fails
    equivalence_alpha: float = EQUIVALENCE_ALPHA  # each TOST test's; run --adaptive splits it over its looks

    def alpha(self, kind: str) -> float:
        """The false-alarm probability of one decision of this kind (a key of BUDGET)."""
        share, decisions = BUDGET[kind]
        return self.alarm_budget * share / decisions

    def adjusted(self, p: float, kind: str) -> float:
        """``p`` adjusted for the whole bench run (Bonferroni over the budget): an alarm when below alarm_budget."""
        return min(1.0, p * self.alarm_budget / self.alpha(kind))


@dataclass(frozen=True)
class Verdict:
    study: str
    cell: str
    passed: bool
    reference: float | None
    measured: float
    low: float | None
    high: float | None
    reason: str
    p: float = 1.0  # the smallest p of the cell's tests (0 for a rule without chance, such as a run at chance)
    adjusted_p: float = 1.0  # p adjusted for the whole bench run
    equivalent: bool | None = None  # within the cell margin (TOST on its band); None: no band to judge it by
    paired: bool = False  # the band was judged on per-seed differences (paired_band)
    share_changed: bool = False  # failed by the share of runs at chance (a bimodal cell's Fisher test)
    # runs at chance in a cell whose runs learn, where every reference run learned, that the prediction bound did not
    # prove a regression (a seed that diverged?; docs/statistics.md): compare names the cell in a note
    unproven_at_chance: int = 0

    @property
    def band_spans_every_accuracy(self) -> bool:
        """No mean can fall outside its band at these counts (spans_every_accuracy): the band says nothing; a
        bimodal cell's share at chance is still tested."""
        return self.low is not None and spans_every_accuracy(self.low, self.high)

    def message(self, record: dict[str, Any], reference_runs: list[float]) -> str:
        runs = ", ".join(f"{a:.2f}{' (collapsed)' if c else ''}"
                         for a, c in zip(record["accuracy"], record["collapsed"]))
        band = f"[{self.low:.2f}, {self.high:.2f}]" if self.low is not None else "n/a"
        return (f"{self.study}[{self.cell}]: {'ok' if self.passed else 'REGRESSION'}: {self.reason}; "
                f"reference runs {reference_runs}, measured replicates [{runs}], band {band}")


def plural(n: int, noun: str) -> str:
    """"1 cell", "2 cells"."""
    return f"{n} {noun}{'s' * (n != 1)}"


def spans_every_accuracy(low: float, high: float) -> bool:
    """A band from 0 % or below to 100 % or above: with few runs a side (a single documented run and 3 replicates,
    say) Student's t at the cell's alpha is so wide that no mean can fall outside it."""
    return low <= 0 and high >= 100


def equivalent(change: float, se: float, df: float, low: float, high: float, alpha: float = EQUIVALENCE_ALPHA) -> bool:
    """Two one-sided tests (TOST): a true change at ``low`` or below and one at ``high`` or above are each
    rejected at ``alpha`` (the change's 1 - 2 * alpha interval lies within [low, high])."""
    if se == 0:
        return low <= change <= high
    return max(t_sf((change - low) / se, df), t_sf((high - change) / se, df)) < alpha


def for_baseline(tolerance: Tolerance, device: str, baseline_device: str) -> Tolerance:
    """Against a team's own earlier run: no hardware allowance on the same device, the measured one for a known
    pair of devices, the default otherwise."""
    if device == baseline_device:
        return dataclasses.replace(tolerance, hardware=0.0)
    measured = DEVICE_PAIR_ALLOWANCE.get(frozenset({device, baseline_device}))
    return tolerance if measured is None else dataclasses.replace(tolerance, hardware=measured)


def at_chance(accuracy: float, collapsed: bool, classes: int, tolerance: Tolerance = Tolerance()) -> bool:
    """A run that did not learn: one class predicted everywhere, or accuracy no better than chance."""
    return collapsed or accuracy <= 100 / classes + tolerance.collapse_margin


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    se: float
    df: float  # math.inf: no spread estimated (one run a side), the sd floor taken as known
    p: float  # two-sided p of the mean's distance beyond the allowances


def band(reference: list[float], measured: list[float], tolerance: Tolerance, copy: bool, alpha: float,
         sd_floor: float | None = None) -> Band:
    """The band of probability 1 - alpha around the reference mean, and the p of the measured mean against it."""
    floor = tolerance.sd_floor if sd_floor is None else sd_floor
    sd = max(pooled_sd(reference, measured), floor)
    se = sd * math.sqrt(1 / len(reference) + 1 / len(measured))
    df = len(reference) + len(measured) - 2 or math.inf
    return band_around(statistics.fmean(reference), statistics.fmean(measured), se, df, tolerance, copy, alpha)


def paired_band(reference: list[float], measured: list[float], tolerance: Tolerance, alpha: float) -> Band:
    """band() for replicates paired by seed (reference[i] and measured[i] trained the same seed): the standard
    error is the per-seed differences', on pairs - 1 df, with no sd floor (Student's t carries the estimate's
    uncertainty; see MIN_PAIRED_CELL)."""
    _, se, df = paired_t([m - r for r, m in zip(reference, measured, strict=True)])
    return band_around(statistics.fmean(reference), statistics.fmean(measured), se, df, tolerance, False, alpha)


def band_around(centre: float, measured: float, se: float, df: float, tolerance: Tolerance, copy: bool,
                alpha: float) -> Band:
    """The band of probability 1 - alpha around ``centre`` for a mean of standard error ``se``, widened by the
    allowances, and the two-sided p of ``measured`` beyond them."""
    half = t_quantile(alpha / 2, df) * se
    low = centre - half - tolerance.hardware - (tolerance.data_copy if copy else 0.0)
    high = centre + half + tolerance.hardware
    change = measured - centre
    beyond = max(abs(change) - tolerance.hardware - (tolerance.data_copy if copy and change < 0 else 0.0), 0.0)
    p = (1.0 if beyond == 0 else 0.0) if se == 0 else min(1.0, 2 * t_sf(beyond / se, df))
    return Band(low, high, se, df, p)


def paired_seeds(before: dict[str, Any], after: dict[str, Any]) -> list[int]:
    """The seeds two records of a cell are judged on pair by pair: those both trained, when they share
    MIN_PAIRED_CELL or more; else none (judged unpaired)."""
    shared = sorted(set(before.get("seeds") or ()) & set(after.get("seeds") or ()))
    return shared if len(shared) >= MIN_PAIRED_CELL else []


def pair_by_seed(before: dict[str, Any], after: dict[str, Any], before_values: list[float],
                 after_values: list[float]) -> tuple[list[float], list[float]] | None:
    """Two records' values (one per replicate) on the seeds they pair on (paired_seeds), in the same order; None
    when they are judged unpaired."""
    seeds = paired_seeds(before, after)
    return (of_seeds(before, before_values, seeds), of_seeds(after, after_values, seeds)) if seeds else None


def of_seeds(record: dict[str, Any], values: list[float], seeds: list[int]) -> list[float]:
    """``values`` (one per replicate of ``record``) of ``seeds`` only, in that order."""
    by_seed = dict(zip(record["seeds"], values, strict=True))
    return [by_seed[seed] for seed in seeds]


def check_cell(study_name: str, cell_id: str, record: dict[str, Any], reference: list[float],
               tolerance: Tolerance, copy: bool, classes: int = 10,
               reference_collapsed: list[bool] | None = None, kind: str = "documented_cell",
               pairs: tuple[list[float], list[float]] | None = None) -> Verdict:
    """Judge one cell's replicates against reference runs (documented, or a baseline's replicates), at the alpha
    of ``kind`` (documented_cell or baseline_cell), split in half between the cell's two tests: the band, and
    runs at chance (in a bimodal cell against a baseline, the share at chance has its own alpha, chance_share).

    ``pairs``: the reference's and the measured accuracies of the seeds both trained, in the same order: the band
    is then paired_band on them (not in a bimodal cell, whose runs at chance break the pairing).

    ``reference_collapsed``: which reference runs predicted one class everywhere, where known (a baseline's
    replicates; the documented runs are accuracies only).  On a test set whose classes are not exactly balanced
    (the smoke profile's first 1000 images) such a run can score above chance + collapse_margin.
    """
    study = get_study(study_name)
    values, collapsed = record["accuracy"], record["collapsed"]
    mean = statistics.fmean(values)
    bimodal = study.cell(cell_id).level in study.bimodal_levels
    alpha = tolerance.alpha(kind) / (1 if bimodal and kind == "baseline_cell" else 2)
    chance_alpha = tolerance.alpha("chance_share") if bimodal and kind == "baseline_cell" else alpha
    learned_reference = [r for r, c in zip(reference, reference_collapsed or [False] * len(reference))
                         if not at_chance(r, c, classes, tolerance)]
    failed = [at_chance(v, c, classes, tolerance) for v, c in zip(values, collapsed)]
    chance_p = 1.0

    def verdict(passed: bool, reference_mean: float, measured: float, reason: str, band_p: float = 1.0,
                limits: tuple[float | None, float | None] = (None, None), same: bool | None = None,
                paired: bool = False, share_changed: bool = False) -> Verdict:
        """The cell's verdict, with the p of whichever of its two tests came closer to an alarm, and that p
        adjusted for the whole run."""
        p, test_alpha = min((chance_p, chance_alpha), (band_p, alpha), key=lambda test: test[0] / test[1])
        return Verdict(study_name, cell_id, passed, reference_mean, measured, *limits, reason, p,
                       min(1.0, p * tolerance.alarm_budget / test_alpha), False if not passed else same, paired,
                       share_changed, unproven)

    unproven = 0
    if not bimodal and any(failed) and len(learned_reference) == len(reference):
        unproven = sum(failed)
        chance_p = chance_run_p(reference, values, tolerance, copy)
        if chance_p < chance_alpha:
            return verdict(False, statistics.fmean(reference), mean,
                           f"{sum(failed)}/{len(values)} replicates ended at chance in a cell whose runs learn "
                           f"(p {chance_p:.2g})")
    sd_floor = None
    if bimodal:
        learners = [v for v, f in zip(values, failed) if not f]
        reference_failed = len(reference) - len(learned_reference)
        chance_p = fisher_exact(reference_failed, len(learned_reference), sum(failed), len(learners))
        counts = (f"{sum(failed)}/{len(values)} replicates at chance; reference runs at chance: "
                  f"{reference_failed}/{len(reference)}")
        if chance_p < chance_alpha:
            return verdict(False, statistics.fmean(reference), mean,
                           f"{counts}: the share at chance changed (Fisher's exact p {chance_p:.2g})",
                           share_changed=True)
        if not learned_reference or not learners:
            return verdict(True, statistics.fmean(reference), mean, counts)
        if len(learned_reference) == len(learners) == 1:
            return verdict(True, statistics.fmean(learned_reference), statistics.fmean(learners),
                           f"{counts}; one learned run a side gives no spread to judge them by")
        if min(len(learned_reference), len(learners)) < 3:
            sd_floor = max(tolerance.sd_floor, LEARNED_SD.get(cell_id, max(LEARNED_SD.values())))
        reference, values = learned_reference, learners
        mean = statistics.fmean(values)
    subject = f"mean of the {plural(len(values), 'replicate')} that learned" if bimodal else \
        f"mean of {plural(len(values), 'replicate')}"
    if pairs is not None and not bimodal:
        reference, values = pairs
        mean = statistics.fmean(values)
        subject = f"mean of the {len(values)} replicates paired by seed"
        limits = paired_band(reference, values, tolerance, alpha)
    else:
        limits = band(reference, values, tolerance, copy, alpha, sd_floor)
    ok = limits.p >= alpha
    within = tolerance.cell_margin + tolerance.hardware
    same = ok and equivalent(mean - statistics.fmean(reference), limits.se, limits.df,
                             -within - (tolerance.data_copy if copy else 0.0), within, tolerance.equivalence_alpha)
    where = "inside" if ok else ("below" if mean < limits.low else "above")
    reason = (f"{subject} {mean:.2f} vs reference {statistics.fmean(reference):.2f} (se {limits.se:.2f}): {where} "
              f"the band [{limits.low:.2f}, {limits.high:.2f}]")
    if spans_every_accuracy(limits.low, limits.high):
        reason += " (it spans every accuracy: no mean falls outside it at these counts; more replicates narrow it)"
    return verdict(ok, statistics.fmean(reference), mean, reason, limits.p, (limits.low, limits.high), same,
                   paired=pairs is not None and not bimodal)


def chance_run_p(reference: list[float], values: list[float], tolerance: Tolerance, copy: bool) -> float:
    """How likely a replicate as low as our lowest is, among len(values) draws from the reference's runs: the
    t prediction interval of one new run (sd never below the floor), beyond the allowances; Bonferroni over the
    replicates."""
    sd = max(statistics.stdev(reference) if len(reference) > 1 else 0.0, tolerance.sd_floor)
    distance = statistics.fmean(reference) - min(values) - tolerance.hardware - (tolerance.data_copy if copy else 0.0)
    df = len(reference) - 1 or math.inf
    return min(1.0, len(values) * t_sf(distance / (sd * math.sqrt(1 + 1 / len(reference))), df))


def check_against_baseline(study_name: str, cell_id: str, record: dict[str, Any], baseline_record: dict[str, Any],
                           tolerance: Tolerance, classes: int = 10) -> Verdict:
    """One cell's replicates against a baseline run's replicates of the same cell, by their accuracies and their
    one-class flags (``tolerance`` as for_baseline gives it; the same data, so no data-copy allowance), paired by
    seed where they share enough seeds (paired_seeds)."""
    pairs = pair_by_seed(baseline_record, record, baseline_record["accuracy"], record["accuracy"])
    return check_cell(study_name, cell_id, record, baseline_record["accuracy"], tolerance, copy=False, classes=classes,
                      reference_collapsed=baseline_record["collapsed"], kind="baseline_cell", pairs=pairs)


def uses_data_copy(source: str) -> bool:
    """The JPEG-derived offline copy (or any data not from torchvision) gets the data_copy allowance."""
    return source not in ("cifar10", "cifar100")


def check_documented(results: dict[str, Any], tolerance: Tolerance) -> list[Verdict]:
    """Every measured cell that has a documented value, judged against it."""
    return [
        check_cell(name, cell_id, record, record["documented"]["runs"], tolerance,
                   uses_data_copy(entry.get("data", results["data"])), entry.get("classes", 10))
        for name, entry in results["studies"].items()
        for cell_id, record in entry["cells"].items()
        if record["documented"]
    ]
