"""Drift between two results files: per-cell accuracy change with its significance, each study's shift as a
whole, and throughput; every decision a p-value held to its share of the run's alarm budget (ablation.verdict).

A cell's band is wide enough that one wrong detail which costs a point or
several in many cells can stay inside every band (ToTensor without Normalize
lowered 11 of 16 Sigmoid/ReLU cells by 0.9-5.3 points on the H200, one cell
outside its band); the study's mean over its cells catches it.

Throughput is judged per study (all images over all training time of the
cells both files hold), only between files trained the same way (training_mode)
on the same device, on the full profile and at least MIN_TIMED_S of training a
study: between two unchanged bench runs on one GPU under ``-n 2`` single small
cells moved by up to 2x, while whole studies moved by 0.87-1.14x.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ablation.numerics import (Numerics, compare_replicates, deterministic, same_training,
                               why_no_verdict, why_not_compared)
from ablation.results import (ResultsError, planted_fault, plural, render, sharing_the_device, training_mode,
                              training_seconds)
from ablation.stats import paired_t, pooled_t, t_quantile, t_sf
from ablation.studies import get_study
from ablation.verdict import (LOSS_METRICS, Tolerance, Verdict, band, check_against_baseline, equivalent, for_baseline,
                              of_seeds, pair_by_seed, paired_band)

# The sd of log(study images/s ratio) between unchanged reruns trained the same way on one H200: 6 ratios, from
# h200-bench vs h200-repeat (the bench, eager, -n 2) and h200-run-side-by-side vs its no-bytecode rerun.
THROUGHPUT_LOG_SD = 0.096
THROUGHPUT_DF = 6
MIN_TIMED_S = 5.0  # a study trained for less than this (either side) is too short to time
# A passing cell's verdict by its equivalence (Verdict.equivalent); "ok": a bimodal cell with no band to hold to it.
EQUIVALENCE_STATE = {True: "equivalent", False: "inconclusive", None: "ok"}
MIN_PAIRED = 3  # shared seeds from which a study shift is paired (at 2, its 1 df loses to the pooled test's 2)
# A study shift on other seeds whose sides' seed counts differ this many times or more holds its alpha only where
# the per-seed means are near normal: with heavy tails (Student's t on 3 df, or 5 % of seeds at 5x the spread) it
# alarms x1.0-1.3 as often as stated at 3 seeds against 12, x2.9-3.3 at 3 against 24, where counts 3 times apart
# stay within it (python -m bench.false_alarms --unpaired).
UNEQUAL_SEEDS = 4


def min_throughput(tolerance: Tolerance) -> float:
    """The fraction of the baseline's images/s below which a study's throughput is a regression, at the
    throughput decision's alpha (one-sided, Student's t on the calibrated log-ratio sd): x0.54 at the defaults."""
    return math.exp(-t_quantile(tolerance.alpha("throughput"), THROUGHPUT_DF) * THROUGHPUT_LOG_SD)


def metric_values(record: dict[str, Any], metric: str) -> list[float] | None:
    """Per replicate: accuracy as it is; a loss metric as its log (losses change by factors: the dropped
    scheduler's final training loss fell from 0.002-0.006 to 0.000), None where the record lacks it or a
    replicate's loss is not finite (see diverged)."""
    if metric == "accuracy":
        return record["accuracy"]
    values = loss_values(record, metric)
    if values is None or not all(map(math.isfinite, values)):
        return None
    return [math.log(max(v, 1e-12)) for v in values]


def loss_values(record: dict[str, Any], metric: str) -> list[float] | None:
    """A loss metric per replicate (train_loss: the mean of the epochs' training losses), None where not recorded."""
    if metric == "train_loss":
        return [statistics.fmean(curve) for curve in record["train_loss_curve"]] \
            if record.get("train_loss_curve") else None
    return record.get(metric)


def diverged(record: dict[str, Any]) -> list[str]:
    """The loss metrics that are not finite in some replicate of the record: a run whose training diverged.  Such a
    metric has no log to test, so it is not judged; the run's accuracy is (a diverged run mostly ends at chance)."""
    return [metric for metric in LOSS_METRICS
            if not all(map(math.isfinite, loss_values(record, metric) or ()))]


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    passed: bool
    ratio: float  # current over baseline, of the replicates' geometric means
    p: float
    adjusted_p: float

    def describe(self) -> str:
        return f"{self.metric.replace('_', ' ')} x{self.ratio:.3f} of the baseline's (adjusted p {self.adjusted_p:.2g})"


def judge_metric(metric: str, before: dict[str, Any], after: dict[str, Any], tolerance: Tolerance) -> MetricVerdict:
    """A loss metric of a cell against a same-device baseline: Student's t on the replicates' logs, both ways;
    on their per-seed differences where the records pair by seed (pair_by_seed)."""
    base, cur = metric_values(before, metric), metric_values(after, metric)
    exact, alpha = Tolerance(sd_floor=0.0, hardware=0.0), tolerance.alpha("metric")
    pairs = pair_by_seed(before, after, base, cur)
    if pairs:
        base, cur = pairs
    limits = paired_band(base, cur, exact, alpha) if pairs else band(base, cur, exact, False, alpha)
    ratio = math.exp(statistics.fmean(cur) - statistics.fmean(base))
    return MetricVerdict(metric, limits.p >= alpha, ratio, limits.p, tolerance.adjusted(limits.p, "metric"))


@dataclass(frozen=True)
class Drift:
    verdict: Verdict
    baseline: dict[str, Any]
    current: dict[str, Any]
    metrics: tuple[MetricVerdict, ...] = ()  # the loss metrics, where judged
    numerics: Numerics | None = None  # same seeds, device and torch only
    same_training: bool = False  # --same-training: a numerics change fails the cell

    @property
    def throughput_ratio(self) -> float | None:
        """The cell's images/s against the baseline's; None when one file trained it side by side with other cells
        and the other did not as many (its images/s is then its share of a group's time; see study_throughput)."""
        if self.current.get("side_by_side", 1) != self.baseline.get("side_by_side", 1):
            return None
        return self.current["images_per_s"] / self.baseline["images_per_s"]

    @property
    def numerics_failed(self) -> bool:
        return self.same_training and self.numerics is not None and self.numerics.verdict == "changed"

    @property
    def passed(self) -> bool:
        return self.verdict.passed and all(m.passed for m in self.metrics) and not self.numerics_failed

    @property
    def label(self) -> str:
        """REGRESSION (lower, or runs at chance); CHANGED: higher, which fails the run too (see report); the loss
        metrics that moved, and numerics under --same-training; else equivalent (within the cell margin),
        inconclusive (neither shown), or ok (a bimodal cell without learned runs a side to hold to the margin)."""
        if self.verdict.passed:
            moved = [m.metric for m in self.metrics if not m.passed] + ["numerics"] * self.numerics_failed
            if moved:
                return "CHANGED: " + ", ".join(moved)
            return EQUIVALENCE_STATE[self.verdict.equivalent]
        higher = self.verdict.high is not None and self.verdict.measured > self.verdict.high
        return "CHANGED: higher" if higher else "REGRESSION"


@dataclass(frozen=True)
class Throughput:
    study: str
    baseline: float  # images/s over the compared cells
    current: float
    ok: bool | None  # None: not comparable (see why_not_judged)
    why_not_judged: str = ""

    @property
    def ratio(self) -> float:
        return self.current / self.baseline


@dataclass(frozen=True)
class StudyShift:
    study: str
    cells: int  # compared cells, bimodal ones left out
    change: float  # the mean over those cells, current minus baseline: points, or log units for a loss metric
    t: float  # the change beyond the hardware allowance, in standard errors
    df: float
    p: float
    adjusted_p: float  # for the whole bench run
    passed: bool
    metric: str = "accuracy"
    test: str = "pooled"  # Student's two-sample t; or "paired": the same seeds on both sides
    se: float = 0.0
    seeds: tuple[int, int] = (0, 0)  # per-seed means judged, (baseline, current); paired: the pairs, twice
    equivalent: bool = False  # accuracy within ±(margin + allowance), by TOST

    @property
    def state(self) -> str:
        """regressed (lower), changed: higher, equivalent, or inconclusive (neither shown: more replicates decide)."""
        if not self.passed:
            return "CHANGED: higher" if self.change > 0 else "REGRESSION"
        if self.metric != "accuracy":
            return "ok"
        return "equivalent" if self.equivalent else "inconclusive"

    @property
    def change_text(self) -> str:
        """The change in its metric's terms: points of accuracy, or a loss's ratio."""
        return f"{self.change:+.2f} points" if self.metric == "accuracy" else f"x{math.exp(self.change):.3f}"

    def describe(self) -> str:
        what = "mean accuracy" if self.metric == "accuracy" else self.metric.replace("_", " ")
        return (f"{self.study}: {what} over {self.cells} cells moved {self.change_text} against the baseline "
                f"({self.test} t = {self.t:+.2f}, {self.df:.1f} df, p = {self.p:.2g}, adjusted p = "
                f"{self.adjusted_p:.2g})")


@dataclass(frozen=True)
class Comparison:
    drifts: list[Drift]
    shifts: list[StudyShift]
    throughputs: list[Throughput]
    tolerance: Tolerance  # as applied: the hardware allowance of these two devices
    throughput_limit: float  # the smallest images/s ratio that passes
    notes: tuple[str, ...] = ()  # what was not judged, and why
    per: str = "run"  # what the alarm budget is of: the run, or one look of several (run --adaptive)

    @property
    def regressed(self) -> bool:
        return (any(not d.passed for d in self.drifts) or any(not s.passed for s in self.shifts)
                or any(t.ok is False for t in self.throughputs))

    @property
    def inconclusive(self) -> list[str]:
        """Studies whose accuracy shift is neither a regression nor shown equivalent: the ones --adaptive trains
        more replicates of.  (A cell's band is for breakage: at 3-8 replicates most cells cannot be shown within
        their margin, so an inconclusive cell alone does not ask for more.)"""
        return [s.study for s in self.shifts if s.state == "inconclusive"]


def study_throughput(cells: list[dict[str, Any]]) -> float:
    return sum(c["images_per_s"] * c["wall_s"] for c in cells) / training_seconds(cells)


def compare(baseline: dict[str, Any], current: dict[str, Any], tolerance: Tolerance,
            throughput_limit: float | None = None) -> Comparison:
    """Judge every cell present in both files against the baseline's replicates, each study's accuracy as a whole,
    and each study's throughput (below ``throughput_limit`` of the baseline's: a regression; default
    min_throughput(tolerance))."""
    if baseline["profile"] != current["profile"]:
        raise ResultsError(f"the baseline ran the {baseline['profile']} profile and the current file the "
                           f"{current['profile']} one; compare runs of the same profile")
    common = [s for s in current["studies"] if s in baseline["studies"]]
    if not common:
        raise ResultsError(f"the files share no study (baseline: {', '.join(baseline['studies']) or 'none'}; "
                           f"current: {', '.join(current['studies']) or 'none'})")
    devices = current["environment"]["device_name"], baseline["environment"]["device_name"]
    tolerance = for_baseline(tolerance, *devices)
    limit = min_throughput(tolerance) if throughput_limit is None else throughput_limit
    no_numerics = why_no_verdict(baseline, current)
    exact = deterministic(baseline, current)
    notes = []
    if no_numerics and not tolerance.same_training:
        notes.append(f"no numerics verdict: {no_numerics}")
    if devices[0] != devices[1]:
        notes.append("loss metrics not judged: other device (their spread across devices is not measured)")
    elif 1 in (baseline["schema"], current["schema"]):
        notes.append("a file of schema 1 has no loss curves or test loss: judging accuracy and final loss only")
    drifts, shifts, throughputs = [], [], []
    for name in common:
        base, cur = baseline["studies"][name], current["studies"][name]
        if base["data_checksum"] != cur["data_checksum"]:
            raise ResultsError(f"{name} was measured on different data ({baseline['data']} vs {current['data']}, "
                               "checksums differ); compare runs on the same data")
        cells = [c for c in cur["cells"] if c in base["cells"]]
        same_device = devices[0] == devices[1]
        for cell_id in cells:
            b, c = base["cells"][cell_id], cur["cells"][cell_id]
            if tolerance.same_training:
                numerics = same_training(baseline, current, b, c, f"{name}[{cell_id}]")
            else:
                numerics = None if no_numerics else compare_replicates(b, c, exact)
            drifts.append(Drift(check_against_baseline(name, cell_id, c, b, tolerance, cur.get("classes", 10)), b, c,
                                judge_cell_metrics(name, cell_id, b, c, tolerance, same_device), numerics,
                                tolerance.same_training))
        shifts += judge_study_shifts(name, base["cells"], cur["cells"], tolerance, same_device)
        if cells:
            before, after = ([files["cells"][c] for c in cells] for files in (base, cur))
            why_not = not_timed(baseline, current, before, after)
            throughputs.append(judge_throughput(name, before, after, limit, why_not))
    notes += unjudged_notes(baseline, current, drifts, shifts)
    if not no_numerics:
        notes += [f"no numerics verdict in {plural(count, 'cell')}: {why}" for why, count in
                  Counter(why_not_compared(d.baseline, d.current) for d in drifts if d.numerics is None).items()]
    if tolerance.same_training and not exact:
        floor = ("the floor set on GPU runs, though same-seed CPU runs have been identical, so here it only loosens "
                 "the gate" if on_cpu(baseline, current) else
                 "the floor of GPU nondeterminism measured on a few unchanged H200 pairs, whose false-alarm rate is "
                 "not known (docs/statistics.md)")
        notes.append(f"--same-training without --deterministic on both sides: numerics are held to {floor}; train "
                     "both with --deterministic for a bitwise gate")
    unequal = [s for s in shifts if s.metric == "accuracy" and s.test == "pooled"
               and max(s.seeds) >= UNEQUAL_SEEDS * min(s.seeds)]
    if unequal:
        notes.append(f"{', '.join(f'{s.study} ({s.seeds[1]} seeds against {s.seeds[0]})' for s in unequal)}: a study "
                     f"shift on other seeds with counts {UNEQUAL_SEEDS} or more times apart holds its false-alarm "
                     "rate only where the per-seed means are near normal (with heavy tails x1.0-3.3 of it at 3-8 "
                     "seeds against 12-48, simulated: docs/statistics.md); pair the seeds (the baseline's "
                     "--seed-offset) or compare closer counts")
    return Comparison(drifts, shifts, throughputs, tolerance, limit, tuple(notes))


def judge_cell_metrics(study_name: str, cell_id: str, before: dict[str, Any], after: dict[str, Any],
                       tolerance: Tolerance, same_device: bool) -> tuple[MetricVerdict, ...]:
    """The loss metrics of a cell whose runs learn, against a baseline from the same device: those both records
    hold with two replicates or more a side (none across devices, whose spread is not measured)."""
    if not judges_losses(study_name, cell_id, same_device):
        return ()
    return tuple(judge_metric(m, before, after, tolerance) for m in LOSS_METRICS
                 if all(v is not None and len(v) > 1 for v in (metric_values(before, m), metric_values(after, m))))


def unjudged_notes(baseline: dict[str, Any], current: dict[str, Any], drifts: list[Drift],
                   shifts: list[StudyShift]) -> list[str]:
    """What a comparison could not judge or prove, each a note: cells only one file holds, runs at chance in cells
    that still passed, losses that are not finite, studies too small for a shift test."""
    notes = [f"{holder} was trained with a planted fault, {fault} (bench/faults.py), not as the code trains"
             for holder, results in (("the baseline", baseline), ("the current file", current))
             if (fault := planted_fault(results))]
    for side, other, holder in ((baseline, current, "the baseline"), (current, baseline, "the current file")):
        if alone := only_in(side, other):
            shown = ", ".join(alone[:4]) + (", ..." if len(alone) > 4 else "")
            notes.append(f"{plural(len(alone), 'cell')} only in {holder}, not compared: {shown}")
    same_device = baseline["environment"]["device_name"] == current["environment"]["device_name"]
    unproven, not_finite = [], []
    for d in drifts:
        study, cell = d.verdict.study, d.verdict.cell
        if d.verdict.passed and d.verdict.unproven_at_chance:
            unproven.append(f"{study}[{cell}] ({d.verdict.unproven_at_chance} of {len(d.current['accuracy'])})")
        either = set(diverged(d.baseline)) | set(diverged(d.current))
        loss = [metric for metric in LOSS_METRICS if metric in either]
        if loss and judges_losses(study, cell, same_device):
            not_finite.append(f"{study}[{cell}] ({', '.join(loss)})")
    if unproven:
        notes.append(f"replicates at chance where every baseline run learned (a seed that diverged?): "
                     f"{', '.join(unproven)}; not a failure by the cell's prediction bound at these counts "
                     "(docs/statistics.md); on shared seeds --same-training fails it")
    if not_finite:
        notes.append(f"loss not finite in some replicate (training diverged): {', '.join(not_finite)}; those loss "
                     "metrics are not judged, in the cell or its study (the runs' accuracy is)")
    unshifted = [name for name in dict.fromkeys(d.verdict.study for d in drifts)
                 if not any(s.study == name and s.metric == "accuracy" for s in shifts)]
    if unshifted:
        notes.append(f"no study shift for {', '.join(unshifted)}: it needs two compared cells whose runs learn, "
                     f"with 2 replicates a side ({MIN_PAIRED} shared seeds to pair them)")
    return notes


def only_in(results: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """The cells ``results`` holds and ``other`` does not, as "study[cell]": what a comparison leaves out (an
    interrupted run, a selection of cells, a study only one file trained)."""
    return [f"{name}[{cell_id}]" for name, entry in results["studies"].items() for cell_id in entry["cells"]
            if cell_id not in other["studies"].get(name, {}).get("cells", {})]


def judges_losses(study_name: str, cell_id: str, same_device: bool) -> bool:
    """Whether a cell's loss metrics are judged: against a same-device baseline, in a cell whose runs learn."""
    study = get_study(study_name)
    return same_device and study.cell(cell_id).level not in study.bimodal_levels


def judge_study_shifts(study_name: str, before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                       tolerance: Tolerance, same_device: bool) -> list[StudyShift]:
    """The study's accuracy shift and, on the same device, its loss metrics' shifts, where they can be judged."""
    metrics = ("accuracy", *LOSS_METRICS) if same_device else ("accuracy",)
    shifts = [judge_study_shift(study_name, before, after, tolerance, metric) for metric in metrics]
    return [s for s in shifts if s is not None]


def judge_study_shift(study_name: str, before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                      tolerance: Tolerance, metric: str = "accuracy") -> StudyShift | None:
    """Is the study's mean over the cells both hold (bimodal cells left out) shifted by more than the hardware
    allowance?  A t-test on each seed's mean over those cells.

    Replicate r has the same seed in every cell, so a run's cells move together
    (the order study's three by a correlation of 0.7-0.9 on the H200): the
    per-seed means are independent, and their spread carries that correlation.
    When both files trained the same seeds (MIN_PAIRED of them or more), the
    test is paired: a seed's mean moves with its seed across reruns and code
    changes that leave the training alone (a correlation of 0.89-0.96 between
    same-seed H200 runs), so the per-seed differences spread 3-6 times less
    than the means.  Otherwise Student's two-sample t with the pooled variance
    (stats.pooled_t: exact for unchanged training).  The null is a true shift
    within the allowance, either way; p is the chance of the observed shift at
    its edge.
    A loss ``metric`` is judged on its logs, with no allowance (same device
    only).  None with fewer than two such cells or two seeds a side.
    """
    cells = comparable_cells(study_name, before, after, metric)
    if len(cells) < 2:
        return None
    differences = paired_differences(before, after, cells, metric)
    if differences is not None:
        change, se, df = paired_t(differences)
        test, seeds = "paired", (len(differences), len(differences))
    else:
        base, cur = (seed_means([metric_values(side[c], metric) for c in cells]) for side in (before, after))
        if min(len(base), len(cur)) < 2:
            return None
        change, se, df = pooled_t(base, cur)
        test, seeds = "pooled", (len(base), len(cur))
    allowance, kind = (tolerance.hardware, "study_shift") if metric == "accuracy" else (0.0, "metric")
    if se == 0:
        t, p = (0.0, 1.0) if abs(change) <= allowance else (math.copysign(math.inf, change), 0.0)
    else:
        t = math.copysign(max(abs(change) - allowance, 0.0), change) / se
        p = min(1.0, t_sf((abs(change) - allowance) / se, df) + t_sf((abs(change) + allowance) / se, df))
    passed = p >= tolerance.alpha(kind)
    within = tolerance.margin + allowance
    same = passed and metric == "accuracy" and equivalent(change, se, df, -within, within, tolerance.equivalence_alpha)
    return StudyShift(study_name, len(cells), change, t, df, p, tolerance.adjusted(p, kind), passed, metric, test,
                      se, seeds, same)


def comparable_cells(study_name: str, before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                     metric: str) -> list[str]:
    """The cells a study shift averages: in both, not bimodal, and holding ``metric`` on both sides."""
    study = get_study(study_name)
    return [c for c in after if c in before and study.cell(c).level not in study.bimodal_levels
            and metric_values(before[c], metric) is not None and metric_values(after[c], metric) is not None]


def paired_differences(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], cells: list[str],
                       metric: str) -> list[float] | None:
    """Per seed both sides trained, after's mean of ``metric`` over ``cells`` minus before's: the paired study
    shift's observations; None when they share fewer than MIN_PAIRED seeds."""
    shared = shared_seeds([before[c] for c in cells], [after[c] for c in cells])
    if len(shared) < MIN_PAIRED:
        return None
    base, cur = (means_by_seed([side[c] for c in cells], metric, shared) for side in (before, after))
    return [c - b for b, c in zip(base, cur)]


def shared_seeds(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[int]:
    """The seeds every cell of both sides trained (records without seeds share none)."""
    seed_sets = [set(record.get("seeds") or ()) for record in before + after]
    return sorted(set.intersection(*seed_sets))


def means_by_seed(records: list[dict[str, Any]], metric: str, seeds: list[int]) -> list[float]:
    """Per seed of ``seeds``, in that order, the mean of ``metric`` over the records (each holds every seed)."""
    values = [of_seeds(record, metric_values(record, metric), seeds) for record in records]
    return [statistics.fmean(per_seed) for per_seed in zip(*values)]


def seed_means(accuracies: list[list[float]]) -> list[float]:
    """Per replicate (seed), the mean accuracy over cells; replicates every cell has."""
    return [statistics.fmean(cell[r] for cell in accuracies) for r in range(min(map(len, accuracies)))]


def on_cpu(*files: dict[str, Any]) -> bool:
    """Whether every one of these results files ran on the CPU."""
    return all(f["environment"].get("device") == "cpu" for f in files)


def not_timed(baseline: dict[str, Any], current: dict[str, Any], before: list[dict[str, Any]],
              after: list[dict[str, Any]]) -> str:
    """Why a study's throughput cannot be compared between the files ("" when it can): another device, another
    way of training (training_mode), other cells beside it on the device, the smoke profile, or too short a
    training to time."""
    if baseline["environment"]["device_name"] != current["environment"]["device_name"]:
        return "other device"
    if baseline["profile"] == "smoke":
        return "smoke profile"
    ways = training_mode(baseline, before), training_mode(current, after)
    if ways[0] != ways[1]:
        differ = [key for key in ways[0] if ways[0][key] != ways[1][key]]
        return "trained another way (" + ", ".join(f"{k}: {ways[0][k]} vs {ways[1][k]}" for k in differ) + ")"
    shared = sharing_the_device(baseline), sharing_the_device(current)
    if shared[0] != shared[1]:
        (base_shards, base_cells), (shards, cells) = shared
        return (f"other cells shared the device (the baseline's bench: {plural(len(base_cells), 'cell')} in "
                f"{plural(base_shards, 'shard')}; this one: {len(cells)} in {shards})")
    if min(training_seconds(before), training_seconds(after)) < MIN_TIMED_S:
        return f"under {MIN_TIMED_S:.0f} s of training"
    return ""


def judge_throughput(study: str, before: list[dict[str, Any]], after: list[dict[str, Any]], limit: float,
                     why_not: str = "") -> Throughput:
    """A study's images/s over the same cells against the baseline's; ``why_not``: why it is not judged."""
    baseline, current = study_throughput(before), study_throughput(after)
    return Throughput(study, baseline, current, None if why_not else current / baseline >= limit, why_not)


def drift_table(drifts: list[Drift], markdown: bool) -> str:
    headers = ["study", "cell", "baseline", "current", "change", "band", "p adj", "verdict", "numerics",
               "img/s ratio"]
    rows = []
    for d in drifts:
        v = d.verdict
        base, cur = v.reference, v.measured  # the means the verdict compared (learned runs; paired seeds)
        rows.append([v.study, v.cell, f"{base:.2f}", f"{cur:.2f}", f"{cur - base:+.2f}",
                     "-" if v.low is None else f"{v.low:.2f} - {v.high:.2f}",
                     f"{min([v.adjusted_p] + [m.adjusted_p for m in d.metrics]):.2g}", d.label,
                     d.numerics.verdict if d.numerics else "-",
                     "-" if d.throughput_ratio is None else f"{d.throughput_ratio:.2f}"])
    return render(headers, rows, markdown)


def shift_table(shifts: list[StudyShift], markdown: bool) -> str:
    rows = [[s.study, s.metric, str(s.cells),
             f"{s.change:+.2f}" if s.metric == "accuracy" else f"x{math.exp(s.change):.3f}", s.test, f"{s.t:+.2f}",
             f"{s.df:.1f}", f"{s.p:.2g}", f"{s.adjusted_p:.2g}", s.state] for s in shifts]
    return render(["study", "metric", "cells", "mean change", "test", "t", "df", "p", "p adj", "verdict"], rows,
                  markdown)


def throughput_table(throughputs: list[Throughput], markdown: bool) -> str:
    rows = [[t.study, f"{t.baseline:,.0f}", f"{t.current:,.0f}", f"{t.ratio:.2f}",
             {True: "ok", False: "REGRESSION", None: f"not judged: {t.why_not_judged}"}[t.ok]] for t in throughputs]
    return render(["study", "baseline img/s", "current img/s", "ratio", "verdict"], rows, markdown)


def summary(comparison: Comparison) -> str:
    tolerance = comparison.tolerance
    slow = [t for t in comparison.throughputs if t.ok is False]
    worse = [d for d in comparison.drifts if not d.verdict.passed]
    gated = tolerance.same_training
    moved = [(d, m) for d in comparison.drifts for m in d.metrics if not m.passed]
    shifted = [s for s in comparison.shifts if not s.passed]
    judged = sum(t.ok is not None for t in comparison.throughputs)
    changed = sum(d.numerics is not None and d.numerics.verdict == "changed" for d in comparison.drifts)
    numerics = (f"; numerics changed in {changed} of {sum(d.numerics is not None for d in comparison.drifts)} "
                f"same-seed cells ({'each a failure: --same-training' if gated else 'not a failure by itself'})"
                if any(d.numerics for d in comparison.drifts) else "")
    timed = (f"{len(slow)} of {judged} timed studies slower than x{comparison.throughput_limit:.2f} of the baseline"
             if judged else "no study timed")
    shifts = f"{len(shifted)} of {len(comparison.shifts)} study shifts" if comparison.shifts else "no study shift"
    head = (f"{plural(len(comparison.drifts), 'cell')} compared: {len(worse)} outside their band, {len(moved)} loss "
            f"metrics moved, {shifts}, {timed} (alarm budget "
            f"{tolerance.alarm_budget * 100:.3g}% per {comparison.per}: a decision fails at adjusted p < "
            f"{tolerance.alarm_budget:.3g}; sd floor {tolerance.sd_floor} points; "
            f"hardware allowance ±{tolerance.hardware:g} points){numerics}")
    lines = [f"- {d.verdict.study}[{d.verdict.cell}]: {d.label}: {d.verdict.reason}" for d in worse]
    lines += [f"- {d.verdict.study}[{d.verdict.cell}]: {m.describe()}" for d, m in moved]
    lines += [f"- {s.describe()}" for s in shifted]
    lines += [f"- {t.study}: {t.current:,.0f} img/s is x{t.ratio:.2f} of the baseline's {t.baseline:,.0f}"
              for t in slow]
    lines += [f"- {d.verdict.study}[{d.verdict.cell}]: numerics changed: {d.numerics.detail}"
              for d in comparison.drifts if d.numerics is not None and d.numerics.verdict == "changed"]
    study_margin, cell_margin = tolerance.margin + tolerance.hardware, tolerance.cell_margin + tolerance.hardware
    states = [d.label for d in comparison.drifts]
    paired = sum(d.verdict.paired for d in comparison.drifts)
    lines.append(f"cells: {states.count('equivalent')} equivalent (shown within ±{cell_margin:g} points), "
                 f"{states.count('inconclusive')} inconclusive" + (f"; {paired} judged seed by seed" if paired else ""))
    doubtful = comparison.inconclusive
    if doubtful:
        lines.append(f"inconclusive: {', '.join(doubtful)}: the accuracy shift is neither a regression nor shown "
                     f"within ±{study_margin:g} points; more replicates decide (run --baseline ... --adaptive)")
    elif any(s.metric == "accuracy" and s.passed for s in comparison.shifts):
        lines.append(f"equivalent: every study's accuracy shift without a regression is shown within "
                     f"±{study_margin:g} points")
    lines += [f"note: {note}" for note in comparison.notes]
    return "\n".join([head] + lines)


def report(comparison: Comparison, markdown: bool) -> str:
    parts = [drift_table(comparison.drifts, markdown)]
    if comparison.shifts:  # none where no study has two comparable cells
        parts.append(shift_table(comparison.shifts, markdown))
    parts += [throughput_table(comparison.throughputs, markdown), summary(comparison)]
    if markdown:
        parts.insert(0, "## Drift against the baseline")
    return "\n\n".join(parts)


def as_json(comparison: Comparison) -> dict[str, Any]:
    """The whole comparison for CI bots: per cell its verdict per metric (with band and p-values) and the numerics
    verdict; per study its shifts and throughput; what was not judged and why."""
    def cell(d: Drift) -> dict[str, Any]:
        v = d.verdict
        verdicts = {"accuracy": {"verdict": d.label if not v.passed else EQUIVALENCE_STATE[v.equivalent],
                                 "passed": v.passed, "equivalent": v.equivalent, "paired": v.paired,
                                 "baseline": v.reference, "current": v.measured,
                                 "band": None if v.low is None else [v.low, v.high], "p": v.p,
                                 "adjusted_p": v.adjusted_p, "reason": v.reason}}
        verdicts.update({m.metric: {"verdict": "ok" if m.passed else "changed", "passed": m.passed,
                                    "ratio": m.ratio, "p": m.p, "adjusted_p": m.adjusted_p} for m in d.metrics})
        return {"study": v.study, "cell": v.cell, "passed": d.passed,
                "numerics": d.numerics.verdict if d.numerics else None,
                "numerics_detail": d.numerics.detail if d.numerics else None, "verdicts": verdicts}

    return {
        "regressed": comparison.regressed,
        "inconclusive": comparison.inconclusive,
        "alarm_budget": comparison.tolerance.alarm_budget,
        "margin": comparison.tolerance.margin,
        "cell_margin": comparison.tolerance.cell_margin,
        "hardware_allowance": comparison.tolerance.hardware,
        "notes": list(comparison.notes),
        "cells": [cell(d) for d in comparison.drifts],
        "study_shifts": [{"study": s.study, "metric": s.metric, "cells": s.cells, "change": s.change, "test": s.test,
                          "seeds": {"baseline": s.seeds[0], "current": s.seeds[1]}, "se": s.se, "t": s.t, "df": s.df,
                          "p": s.p, "adjusted_p": s.adjusted_p, "passed": s.passed, "verdict": s.state}
                         for s in comparison.shifts],
        "throughput_limit": comparison.throughput_limit,
        "throughput": [{"study": t.study, "baseline": t.baseline, "current": t.current, "ratio": t.ratio,
                        "passed": t.ok, "not_judged": t.why_not_judged or None}
                       for t in comparison.throughputs],
    }
