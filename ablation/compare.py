"""Drift between two results files: per-cell accuracy change with its significance, each study's shift as a
whole, and throughput.

A cell's band is wide enough that one wrong detail which costs a point or
several in many cells can stay inside every band (ToTensor without Normalize
lowered 11 of 16 Sigmoid/ReLU cells by 0.9-5.3 points on the H200, one cell
outside its band); the study's mean over its cells catches it.

Throughput is judged per study (all images over all training time of the
cells both files hold): single small cells take under a second and their
images/s moved by up to 2x between two unchanged bench runs sharing one GPU
under ``-n 2``, while whole studies moved by 0.87-1.14x.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from ablation.results import ResultsError, render, training_seconds, used_cuda_graphs
from ablation.studies import get_study
from ablation.verdict import (Tolerance, Verdict, check_against_baseline, for_baseline, pooled_sd,
                              t_two_sided_p)

MIN_THROUGHPUT = 0.75  # a study below this fraction of the baseline's images/s is a regression


@dataclass(frozen=True)
class Drift:
    verdict: Verdict
    baseline: dict[str, Any]
    current: dict[str, Any]

    @property
    def throughput_ratio(self) -> float | None:
        """The cell's images/s against the baseline's; None when one file trained it side by side with other cells
        and the other did not as many (its images/s is then its share of a group's time; see study_throughput)."""
        if self.current.get("side_by_side", 1) != self.baseline.get("side_by_side", 1):
            return None
        return self.current["images_per_s"] / self.baseline["images_per_s"]


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
    change: float  # points: the mean over those cells, current minus baseline
    t: float  # the change beyond the hardware allowance, in standard errors
    df: int
    p: float
    passed: bool

    def describe(self) -> str:
        return (f"{self.study}: mean accuracy over {self.cells} cells moved {self.change:+.2f} points against the "
                f"baseline (t = {self.t:+.2f}, {self.df} df, p = {self.p:.2g})")


@dataclass(frozen=True)
class Comparison:
    drifts: list[Drift]
    shifts: list[StudyShift]
    throughputs: list[Throughput]

    @property
    def regressed(self) -> bool:
        return (any(not d.verdict.passed for d in self.drifts) or any(not s.passed for s in self.shifts)
                or any(t.ok is False for t in self.throughputs))


def study_throughput(cells: list[dict[str, Any]]) -> float:
    return sum(c["images_per_s"] * c["wall_s"] for c in cells) / training_seconds(cells)


def compare(baseline: dict[str, Any], current: dict[str, Any], tolerance: Tolerance,
            min_throughput: float = MIN_THROUGHPUT) -> Comparison:
    """Judge every cell present in both files against the baseline's replicates, each study's accuracy as a whole,
    and each study's throughput."""
    if baseline["profile"] != current["profile"]:
        raise ResultsError(f"the baseline ran the {baseline['profile']} profile and the current file the "
                           f"{current['profile']} one; compare runs of the same profile")
    common = [s for s in current["studies"] if s in baseline["studies"]]
    if not common:
        raise ResultsError(f"the files share no study (baseline: {', '.join(baseline['studies']) or 'none'}; "
                           f"current: {', '.join(current['studies']) or 'none'})")
    same_device = baseline["environment"]["device_name"] == current["environment"]["device_name"]
    tolerance = for_baseline(tolerance, same_device)
    drifts, shifts, throughputs = [], [], []
    for name in common:
        base, cur = baseline["studies"][name], current["studies"][name]
        if base["data_checksum"] != cur["data_checksum"]:
            raise ResultsError(f"{name} was measured on different data ({baseline['data']} vs {current['data']}, "
                               "checksums differ); compare runs on the same data")
        cells = [c for c in cur["cells"] if c in base["cells"]]
        for cell_id in cells:
            b, c = base["cells"][cell_id], cur["cells"][cell_id]
            drifts.append(Drift(check_against_baseline(name, cell_id, c, b, tolerance, cur.get("classes", 10)), b, c))
        shift = judge_study_shift(name, base["cells"], cur["cells"], tolerance)
        if shift is not None:
            shifts.append(shift)
        if cells:
            before, after = ([files["cells"][c] for c in cells] for files in (base, cur))
            throughputs.append(judge_throughput(name, before, after, same_device, min_throughput))
    return Comparison(drifts, shifts, throughputs)


def judge_study_shift(study_name: str, before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                      tolerance: Tolerance) -> StudyShift | None:
    """Two-sample t-test on each seed's mean accuracy over the cells both hold, bimodal cells left out.

    Replicate r has the same seed in every cell, so a run's cells move together
    (the order study's three by a correlation of 0.7-0.9 on the H200): the
    per-seed means are independent, and their spread carries that correlation.
    The hardware allowance comes off the change first, as it widens each cell's
    band.  None with fewer than two such cells or no spread to judge by.
    """
    study = get_study(study_name)
    cells = [c for c in after if c in before and study.cell(c).level not in study.bimodal_levels]
    if len(cells) < 2:
        return None
    base, cur = (seed_means([side[c]["accuracy"] for c in cells]) for side in (before, after))
    sd = pooled_sd(base, cur)
    if sd == 0:
        return None
    change = statistics.fmean(cur) - statistics.fmean(base)
    beyond_hardware = math.copysign(max(abs(change) - tolerance.hardware, 0.0), change)
    t = beyond_hardware / (sd * math.sqrt(1 / len(base) + 1 / len(cur)))
    df = len(base) + len(cur) - 2
    p = t_two_sided_p(t, df)
    return StudyShift(study_name, len(cells), change, t, df, p, p >= tolerance.study_alarm_p)


def seed_means(accuracies: list[list[float]]) -> list[float]:
    """Per replicate (seed), the mean accuracy over cells; replicates every cell has."""
    return [statistics.fmean(cell[r] for cell in accuracies) for r in range(min(map(len, accuracies)))]


def judge_throughput(study: str, before: list[dict[str, Any]], after: list[dict[str, Any]], same_device: bool,
                     min_throughput: float = MIN_THROUGHPUT) -> Throughput:
    """A study's images/s over the same cells against the baseline's; not judged across devices, nor between
    training with CUDA graphs and without."""
    why_not = ("other device" if not same_device
               else "CUDA graphs in one file only" if used_cuda_graphs(before) != used_cuda_graphs(after) else "")
    baseline, current = study_throughput(before), study_throughput(after)
    return Throughput(study, baseline, current, None if why_not else current / baseline >= min_throughput, why_not)


def drift_table(drifts: list[Drift], markdown: bool) -> str:
    headers = ["study", "cell", "baseline", "current", "change", "z", "verdict", "img/s ratio"]
    rows = []
    for d in drifts:
        base, cur = statistics.fmean(d.baseline["accuracy"]), statistics.fmean(d.current["accuracy"])
        se = sum(statistics.variance(x) / len(x) for x in (d.baseline["accuracy"], d.current["accuracy"])
                 if len(x) > 1) ** 0.5
        rows.append([d.verdict.study, d.verdict.cell, f"{base:.2f}", f"{cur:.2f}", f"{cur - base:+.2f}",
                     f"{(cur - base) / se:+.1f}" if se > 0 else "-",
                     "ok" if d.verdict.passed else "REGRESSION",
                     "-" if d.throughput_ratio is None else f"{d.throughput_ratio:.2f}"])
    return render(headers, rows, markdown)


def shift_table(shifts: list[StudyShift], markdown: bool) -> str:
    rows = [[s.study, str(s.cells), f"{s.change:+.2f}", f"{s.t:+.2f}", str(s.df), f"{s.p:.2g}",
             "ok" if s.passed else "REGRESSION"] for s in shifts]
    return render(["study", "cells", "mean change", "t", "df", "p", "verdict"], rows, markdown)


def throughput_table(throughputs: list[Throughput], markdown: bool) -> str:
    rows = [[t.study, f"{t.baseline:,.0f}", f"{t.current:,.0f}", f"{t.ratio:.2f}",
             {True: "ok", False: "REGRESSION", None: f"{t.why_not_judged}: not judged"}[t.ok]] for t in throughputs]
    return render(["study", "baseline img/s", "current img/s", "ratio", "verdict"], rows, markdown)


def summary(comparison: Comparison, tolerance: Tolerance, min_throughput: float) -> str:
    slow = [t for t in comparison.throughputs if t.ok is False]
    worse = [d for d in comparison.drifts if not d.verdict.passed]
    shifted = [s for s in comparison.shifts if not s.passed]
    head = (f"{len(comparison.drifts)} cells compared: {len(worse)} accuracy regressions, {len(shifted)} of "
            f"{len(comparison.shifts)} studies shifted as a whole, {len(slow)} of {len(comparison.throughputs)} "
            f"studies slower than {min_throughput:.0%} of the baseline (band: z={tolerance.z}, sd floor "
            f"{tolerance.sd_floor}, hardware ±{tolerance.hardware} points on another device, 0 on the same; "
            f"a study's shift: p < {tolerance.study_alarm_p:.2g})")
    lines = [f"- {d.verdict.study}[{d.verdict.cell}]: {d.verdict.reason}" for d in worse]
    lines += [f"- {s.describe()}" for s in shifted]
    lines += [f"- {t.study}: {t.current:,.0f} img/s is x{t.ratio:.2f} of the baseline's {t.baseline:,.0f}" for t in slow]
    return "\n".join([head] + lines)


def report(comparison: Comparison, tolerance: Tolerance, min_throughput: float, markdown: bool) -> str:
    parts = [drift_table(comparison.drifts, markdown)]
    if comparison.shifts:  # none where no study has two comparable cells
        parts.append(shift_table(comparison.shifts, markdown))
    parts += [throughput_table(comparison.throughputs, markdown), summary(comparison, tolerance, min_throughput)]
    if markdown:
        parts.insert(0, "## Drift against the baseline")
    return "\n\n".join(parts)
