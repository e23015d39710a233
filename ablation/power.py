"""How large a shift the bench can see: minimum detectable shifts per study and metric, and the replicates a
target shift needs.

The study shift test (compare.judge_study_shift) compares per-seed means: with
n seeds a side of spread s, its standard error is s * sqrt(2 / n) on 2(n - 1)
df.  A true shift D is found with probability ``power`` at the test's alpha
when D >= d * se, d the noncentral t's (stats.detectable_in_se): that D is
the minimum detectable shift.  (The usual shortcut d = t(alpha / 2) +
t(1 - power) overstates the power at these alphas and df: 65-78 % where it
says 80 %.)  s is estimated from the file's own replicates, so a file of
one run per seed states the bench's power at the next run of the same counts.
Against a baseline of the same seeds the test is paired: s is the spread of
the per-seed differences, the standard error s / sqrt(n) on n - 1 df.

A cell's band against a baseline is the same test on one cell (cell_power):
the median cell of a study whose runs learn, at the band's alpha, from the
cell's own spread never below the sd floor, or paired on the per-seed
differences where the cell pairs (12 or more shared seeds).

Against the documented table (documented_power) the band's reference is the
notebooks' runs, 5, 1 and 3 per cell, whatever the replicates: a drop must
clear the allowances (hardware, and the offline copy's downward) and a
standard error that more replicates cannot shrink below the documented
side's.  Those tables catch breakage; a baseline of one's own catches
regressions.

A finding (finding_power) fails when a contrast of cell means falls below its
margin, by a one-sided t on the fewest replicates less one df: its
detectable shift is how far below the margin its weakest contrast must fall.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from ablation.compare import MIN_PAIRED, comparable_cells, metric_values, paired_differences, seed_means
from ablation.findings import FINDINGS
from ablation.results import ordered_studies, render
from ablation.stats import detectable_in_se, pooled_sd
from ablation.studies import get_study
from ablation.verdict import LOSS_METRICS, MIN_PAIRED_CELL, Tolerance, pair_by_seed, uses_data_copy

MAX_REPLICATES = 512  # replicates_needed looks no further
CELL_ACCURACY = "accuracy, median cell"  # cell_power's metric
DOCUMENTED_ACCURACY = "documented table, median cell"  # documented_power's metric
FINDING = "finding: "  # finding_power's metrics: this and the finding's name


@dataclass(frozen=True)
class Power:
    study: str
    metric: str
    replicates: int  # seeds a side
    seed_sd: float | None  # sd of the per-seed means (points, or log units); None: too few to estimate
    alpha: float
    power: float
    paired: bool = False  # seed_sd is then the spread of the per-seed differences from a same-seed baseline
    reference: int | None = None  # unpaired: the other side's count (documented runs); None: as many as this side
    allowance: float = 0.0  # points a shift takes before the test (documented_power: hardware, data copy)

    @property
    def test(self) -> str:
        """paired; the pooled two-sample t (a study's per-seed means), the band (a cell's replicates) or a
        finding's one-sided contrast."""
        if self.paired:
            return "paired"
        if self.metric in (CELL_ACCURACY, DOCUMENTED_ACCURACY):
            return "band"
        return "contrast" if self.metric.startswith(FINDING) else "pooled"

    def detectable(self, replicates: int | None = None) -> float | None:
        """The smallest true shift found with ``power`` at ``replicates`` seeds a side (default the file's); for a
        finding, how far below its margin a contrast must fall (seed_sd: its standard error times sqrt(n))."""
        n = replicates or self.replicates
        if not self.seed_sd or n < 2:  # None, or 0: identical runs give no spread to state power by
            return None
        if self.metric.startswith(FINDING):
            return detectable_in_se(self.alpha, n - 1, self.power, two_sided=False) * self.seed_sd / math.sqrt(n)
        if self.paired:
            df, se = n - 1, self.seed_sd / math.sqrt(n)
        else:  # against the reference's k runs: a baseline of the same counts (k = n), or the documented runs
            k = self.reference or n
            df, se = n + k - 2, self.seed_sd * math.sqrt(1 / n + 1 / k)
        return self.allowance + detectable_in_se(self.alpha, df, self.power) * se

    def replicates_needed(self, shift: float) -> int | None:
        """The fewest seeds a side that detect ``shift`` (points, or a log ratio) with ``power``, at least as many
        as the test needs to pair where it is paired; None beyond MAX_REPLICATES or without an estimate."""
        if not self.seed_sd:
            return None
        low = (MIN_PAIRED_CELL if self.metric == CELL_ACCURACY else MIN_PAIRED) if self.paired else 2
        high = MAX_REPLICATES
        if self.detectable(high) > shift:
            return None
        while low < high:  # bisection: the detectable shift falls as the replicates grow
            middle = (low + high) // 2
            if self.detectable(middle) <= shift:
                high = middle
            else:
                low = middle + 1
        return low


def study_power(results: dict[str, Any], tolerance: Tolerance = Tolerance(), power: float = 0.8,
                alpha: float | None = None, baseline: dict[str, Any] | None = None) -> list[Power]:
    """Per study of the file and per metric it holds, the spread of its per-seed means and the test's alpha (the
    study shift's share of the alarm budget unless ``alpha`` is given); against a ``baseline`` that shares
    MIN_PAIRED seeds or more, the spread of the per-seed differences (paired)."""
    found = []
    for name, entry in ordered_studies(results):
        cells = entry["cells"]
        before = (baseline or {}).get("studies", {}).get(name, {}).get("cells", {})
        for metric in ("accuracy", *LOSS_METRICS):
            own = comparable_cells(name, cells, cells, metric)
            if len(own) < 2:
                continue
            kind = "study_shift" if metric == "accuracy" else "metric"
            test_alpha = alpha if alpha is not None else tolerance.alpha(kind)
            common = comparable_cells(name, before, cells, metric)
            differences = paired_differences(before, cells, common, metric) if len(common) >= 2 else None
            if differences is not None:
                found.append(Power(name, metric, len(differences), statistics.stdev(differences), test_alpha, power,
                                   paired=True))
                continue
            means = seed_means([metric_values(cells[c], metric) for c in own])
            found.append(Power(name, metric, len(means), statistics.stdev(means) if len(means) >= 3 else None,
                               test_alpha, power))
    return found


def cell_power(results: dict[str, Any], tolerance: Tolerance = Tolerance(), power: float = 0.8,
               alpha: float | None = None, baseline: dict[str, Any] | None = None) -> list[Power]:
    """Per study, the band of its median cell among those whose runs learn (metric CELL_ACCURACY), at the band's
    alpha (half the baseline cell's unless ``alpha`` is given): from the cells' replicate sd, never below the sd
    floor, or against a ``baseline`` whose every such cell pairs (pair_by_seed) from the per-seed differences."""
    found = []
    for name, entry in ordered_studies(results):
        study, before = get_study(name), (baseline or {}).get("studies", {}).get(name, {}).get("cells", {})
        cells = {c: r for c, r in entry["cells"].items() if study.cell(c).level not in study.bimodal_levels}
        if not cells:
            continue
        pairs = [pair_by_seed(before[c], r, before[c]["accuracy"], r["accuracy"]) if c in before else None
                 for c, r in cells.items()]
        if all(pairs):
            spreads = [statistics.stdev([m - r for r, m in zip(*pair)]) for pair in pairs]
            n = min(len(reference) for reference, _ in pairs)
        else:
            spreads = [max(statistics.stdev(r["accuracy"]), tolerance.sd_floor) for r in cells.values()
                       if len(r["accuracy"]) >= 3]
            n = min(len(r["accuracy"]) for r in cells.values())
        found.append(Power(name, CELL_ACCURACY, n, statistics.median(spreads) if spreads else None,
                           alpha if alpha is not None else tolerance.alpha("baseline_cell") / 2, power,
                           all(pairs)))
    return found


def documented_power(results: dict[str, Any], tolerance: Tolerance = Tolerance(), power: float = 0.8,
                     alpha: float | None = None) -> list[Power]:
    """Per study, the band of its median cell against the documented table (metric DOCUMENTED_ACCURACY), among the
    cells whose runs learn: the drop below the documented mean found with ``power`` at the band's alpha (half the
    documented cell's unless ``alpha`` is given), from the pooled spread of each cell's replicates and documented
    runs, never below the sd floor, beyond the allowances check_documented gives the file's data."""
    found = []
    for name, entry in ordered_studies(results):
        study = get_study(name)
        cells = [r for c, r in entry["cells"].items()
                 if r["documented"] and study.cell(c).level not in study.bimodal_levels]
        if not cells:
            continue
        copy = uses_data_copy(entry.get("data", results["data"]))
        spreads = [max(pooled_sd(r["documented"]["runs"], r["accuracy"]), tolerance.sd_floor) for r in cells]
        found.append(Power(name, DOCUMENTED_ACCURACY, min(len(r["accuracy"]) for r in cells),
                           statistics.median(spreads), alpha if alpha is not None else
                           tolerance.alpha("documented_cell") / 2, power,
                           reference=min(len(r["documented"]["runs"]) for r in cells),
                           allowance=tolerance.hardware + (tolerance.data_copy if copy else 0.0)))
    return found


def finding_power(results: dict[str, Any], tolerance: Tolerance = Tolerance(), power: float = 0.8,
                  alpha: float | None = None) -> list[Power]:
    """Per finding whose cells the file holds with 2 replicates or more (as Finding.judge judges it): its weakest
    contrast, the one of largest standard error, at the finding's alpha (or ``alpha``) split over its contrasts."""
    found = []
    for finding in FINDINGS:
        cells = finding.cells_of(results)
        if finding.why_not_judged(cells):
            continue
        contrasts = finding.contrasts(cells)
        weakest = max(contrasts, key=lambda contrast: contrast.se(cells))
        n = weakest.df(cells) + 1
        found.append(Power(finding.study, FINDING + finding.name, n, weakest.se(cells) * math.sqrt(n),
                           finding.contrast_alpha(contrasts, tolerance, alpha), power))
    return found


def power_rows(results: dict[str, Any], tolerance: Tolerance = Tolerance(), power: float = 0.8,
               alpha: float | None = None, baseline: dict[str, Any] | None = None) -> list[Power]:
    """study_power's rows, then cell_power's, documented_power's and finding_power's: what `power`, `report` and the
    bench print; none where no study has two comparable cells."""
    studies = study_power(results, tolerance, power, alpha, baseline)
    if not studies:
        return []
    return (studies + cell_power(results, tolerance, power, alpha, baseline)
            + documented_power(results, tolerance, power, alpha) + finding_power(results, tolerance, power, alpha))


def in_points(metric: str) -> bool:
    return metric in ("accuracy", CELL_ACCURACY, DOCUMENTED_ACCURACY) or metric.startswith(FINDING)


def takes_target(metric: str) -> bool:
    """Whether --target-shift (an accuracy shift, in points) applies: a study's or a cell's accuracy."""
    return metric in ("accuracy", CELL_ACCURACY, DOCUMENTED_ACCURACY)


def shift_text(metric: str, shift: float | None) -> str:
    if shift is None:
        return "-"
    if in_points(metric):
        return f"{shift:.2f} points"
    if shift < math.log(1000):
        return f"x{math.exp(shift):.3f}"
    return f"x10^{shift / math.log(10):.1f}"  # a power of ten, as a float could not hold some of them


def power_table(powers: list[Power], target: float | None, markdown: bool) -> str:
    """Minimum detectable shifts; with ``target`` (accuracy points) also the replicates that detect it."""
    headers = ["study", "metric", "replicates", "test", "seed sd", "alpha", "detectable at 80 %"
               if all(p.power == 0.8 for p in powers) else "detectable"]
    if target is not None:
        headers.append(f"replicates for {target:g} points")
    rows = []
    for p in powers:
        sd = ("too few (3 needed)" if p.seed_sd is None else "0 (identical runs: no power to state)"
              if p.seed_sd == 0 else f"{p.seed_sd:.3f}")
        row = [p.study, p.metric, str(p.replicates), p.test, sd, f"{p.alpha:.2g}",
               shift_text(p.metric, p.detectable())]
        if target is not None:
            row.append(needed_text(p, target))
        rows.append(row)
    return render(headers, rows, markdown)


def needed_text(p: Power, target: float) -> str:
    """The replicates column of power_table: "-" where the target does not apply or no spread is known."""
    if not takes_target(p.metric) or not p.seed_sd:
        return "-"
    if target <= p.allowance:  # a shift within the allowances is never an alarm
        return f"never (allowances {p.allowance:g} points)"
    needed = p.replicates_needed(target)
    return str(needed) if needed else f"> {MAX_REPLICATES}"
