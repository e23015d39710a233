"""Is a measured cell consistent with its reference?  The tolerance, the verdicts and the findings.

The band around a reference mean (documented runs, or a baseline run's
replicates) has three named parts:

- sampling: ``z`` standard errors of the difference of two means,
  sd * sqrt(1/n + 1/k), with sd the pooled run-to-run spread of the reference
  runs and our replicates, never below ``sd_floor`` (a 1-run reference has
  no spread of its own, and 3 runs estimate one poorly);
- ``hardware``, both ways: GPU, bf16 kernels, random streams and the drawn
  training subset all differ from the notebooks' Colab T4;
- ``data_copy``, downward only, when the data is not torchvision's CIFAR-10:
  the offline copy is JPEG-derived and trains 1-3 points lower
  (ablation/reference/README.md).

Cells whose runs are bimodal (batch sizes 2 and 4 of the norm study: some runs
end at chance, 10 %) are judged on what is robust there.  Whether runs learn:
when none of our replicates learned (or none ended at chance), that is a
regression if it is unlikely at the reference's own share of such runs, below
the band's false-alarm rate; so a documented single run at chance (BatchNorm
at batch 2: 10.01 %) must be reproduced by at least one replicate, and one
learned run of a baseline's 8 asks for none.  How well they learn: the
replicates that learned are held to the band around the reference's learned
runs.  Where one run learned on each side, the two give no spread of their
own, and ``bimodal_sd`` stands in for it: the learned runs' spread there,
pooled over the recorded H200 runs.

In every other cell a replicate at chance is a regression by itself (its
spread would otherwise widen the band).  A run is "at chance" when it predicts
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

from ablation.studies import get_study


@dataclass(frozen=True)
class Tolerance:
    z: float = 3.5  # two-sided; Bonferroni over 33 cells keeps the family-wise false-alarm rate near 1 %
    sd_floor: float = 1.0  # accuracy points
    hardware: float = 1.0  # accuracy points, either way
    data_copy: float = 3.0  # accuracy points, downward, for data other than torchvision CIFAR
    collapse_margin: float = 0.5  # accuracy at most this far above chance counts as a run at chance
    bimodal_sd: float = 3.6  # accuracy points: learned runs at batch 2-4, four recorded H200 runs, 72 df
    study_z: float = 2.94  # a study's shift against a baseline: two-sided; Bonferroni over 3 studies, about 1 %

    @property
    def cell_alarm_p(self) -> float:
        """The false-alarm probability of one cell's band."""
        return normal_two_sided_p(self.z)

    @property
    def study_alarm_p(self) -> float:
        """The false-alarm probability of one study's shift test."""
        return normal_two_sided_p(self.study_z)


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

    def message(self, record: dict[str, Any], reference_runs: list[float]) -> str:
        runs = ", ".join(f"{a:.2f}{' (collapsed)' if c else ''}" for a, c in zip(record["accuracy"], record["collapsed"]))
        band = f"[{self.low:.2f}, {self.high:.2f}]" if self.low is not None else "n/a"
        return (f"{self.study}[{self.cell}]: {'ok' if self.passed else 'REGRESSION'}: {self.reason}; "
                f"reference runs {reference_runs}, measured replicates [{runs}], band {band}")


def for_baseline(tolerance: Tolerance, same_device: bool) -> Tolerance:
    """Against a team's own earlier run: no data-copy question, and no hardware allowance on the same device."""
    return dataclasses.replace(tolerance, hardware=0.0) if same_device else tolerance


def at_chance(accuracy: float, collapsed: bool, classes: int, tolerance: Tolerance = Tolerance()) -> bool:
    """A run that did not learn: one class predicted everywhere, or accuracy no better than chance."""
    return collapsed or accuracy <= 100 / classes + tolerance.collapse_margin


def pooled_sd(a: list[float], b: list[float]) -> float:
    df = len(a) + len(b) - 2
    if df <= 0:
        return 0.0
    ss = sum((x - statistics.fmean(a)) ** 2 for x in a) + sum((x - statistics.fmean(b)) ** 2 for x in b)
    return math.sqrt(ss / df)


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2))


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with an integer df >= 1, in closed form (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(abs(t) / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    term, total = (math.cos(theta), 0.0) if df % 2 else (1.0, 0.0)
    for k in range(3 if df % 2 else 2, df + 1, 2):
        total += term
        term *= cos2 * (k - 1) / k
    inside = 2 / math.pi * (theta + math.sin(theta) * total) if df % 2 else math.sin(theta) * total
    return max(0.0, 1 - inside)


def band(reference: list[float], measured: list[float], tolerance: Tolerance, copy: bool) -> tuple[float, float, float]:
    """(low, high, standard error of the difference) around the reference mean."""
    sd = max(pooled_sd(reference, measured), tolerance.sd_floor)
    se = sd * math.sqrt(1 / len(reference) + 1 / len(measured))
    centre = statistics.fmean(reference)
    low = centre - tolerance.z * se - tolerance.hardware - (tolerance.data_copy if copy else 0.0)
    return low, centre + tolerance.z * se + tolerance.hardware, se


def check_cell(study_name: str, cell_id: str, record: dict[str, Any], reference: list[float],
               tolerance: Tolerance, copy: bool, classes: int = 10,
               reference_collapsed: list[bool] | None = None) -> Verdict:
    """Judge one cell's replicates against reference runs (documented, or a baseline's replicates).

    ``reference_collapsed``: which reference runs predicted one class everywhere, where known (a baseline's
    replicates; the documented runs are accuracies only).  On a test set whose classes are not exactly balanced
    (the smoke profile's first 1000 images) such a run can score above chance + collapse_margin.
    """
    study = get_study(study_name)
    values, collapsed = record["accuracy"], record["collapsed"]
    mean = statistics.fmean(values)
    bimodal = study.cell(cell_id).level in study.bimodal_levels
    learned_reference = [r for r, c in zip(reference, reference_collapsed or [False] * len(reference))
                         if not at_chance(r, c, classes, tolerance)]
    failed = [at_chance(v, c, classes, tolerance) for v, c in zip(values, collapsed)]
    if not bimodal and any(failed) and len(learned_reference) == len(reference):
        return Verdict(study_name, cell_id, False, statistics.fmean(reference), mean, None, None,
                       f"{sum(failed)}/{len(values)} replicates ended at chance in a cell whose runs learn")
    if bimodal:
        learners = [v for v, f in zip(values, failed) if not f]
        learned_share = len(learned_reference) / len(reference)
        unlikely = tolerance.cell_alarm_p
        if not learners and (1 - learned_share) ** len(values) < unlikely:
            return Verdict(study_name, cell_id, False, statistics.fmean(learned_reference), mean, None, None,
                           f"all {len(values)} replicates ended at chance; {len(learned_reference)} of the "
                           f"reference's {len(reference)} runs learned")
        if not any(failed) and learned_share ** len(values) < unlikely:
            return Verdict(study_name, cell_id, False, statistics.fmean(reference), mean, None, None,
                           f"no replicate ended at chance; {len(reference) - len(learned_reference)} of the "
                           f"reference's {len(reference)} runs did, none reproduced it")
        if not learned_reference or not learners:
            return Verdict(study_name, cell_id, True, statistics.fmean(reference), mean, None, None,
                           f"{sum(failed)}/{len(values)} replicates at chance; reference runs at chance: "
                           f"{len(reference) - len(learned_reference)}/{len(reference)}")
        reference, values = learned_reference, learners
        mean = statistics.fmean(values)
        if len(reference) == len(values) == 1:
            tolerance = dataclasses.replace(tolerance, sd_floor=max(tolerance.sd_floor, tolerance.bimodal_sd))
    low, high, se = band(reference, values, tolerance, copy)
    ok = low <= mean <= high
    subject = f"mean of the {len(values)} replicates that learned" if bimodal else f"mean of {len(values)} replicates"
    where = "inside" if ok else ("below" if mean < low else "above")
    reason = f"{subject} {mean:.2f} vs reference {statistics.fmean(reference):.2f} (se {se:.2f}): {where} the band"
    return Verdict(study_name, cell_id, ok, statistics.fmean(reference), mean, low, high, reason)


def check_against_baseline(study_name: str, cell_id: str, record: dict[str, Any], baseline_record: dict[str, Any],
                           tolerance: Tolerance, classes: int = 10) -> Verdict:
    """One cell's replicates against a baseline run's replicates of the same cell, by their accuracies and their
    one-class flags (``tolerance`` as for_baseline gives it; the same data, so no data-copy allowance)."""
    return check_cell(study_name, cell_id, record, baseline_record["accuracy"], tolerance, copy=False, classes=classes,
                      reference_collapsed=baseline_record["collapsed"])


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
