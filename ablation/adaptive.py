"""More replicates where a comparison is in doubt, as Chromium's Pinpoint runs more when its verdict is unclear,
with the run's false-alarm rate kept.

Against a baseline, each study's accuracy shift is regressed, equivalent
(shown within the margin) or inconclusive (compare.StudyShift.state).  Each
inconclusive study trains another round of replicates and the comparison is
made again, up to ``rounds`` more looks.  Every look judges at the alarm
budget divided by the looks the procedure may take (Bonferroni over looks):
a false alarm at the end is a false alarm at one of the looks, each of which
has at most budget / looks of them, so a run's family-wise false-alarm rate
stays within the budget however the looks end.  "Equivalent" is split the
same way: a study stops at the first look that shows it within the margin,
so each look's test takes EQUIVALENCE_ALPHA / looks, and a true shift of the
margin is called equivalent at most EQUIVALENCE_ALPHA of the time however
the looks end.  docs/statistics.md gives the simulated rates.

A study shift is a paired test when both sides share seeds, and then only the
shared seeds count: a round trains the baseline's next seeds, and a study
whose baseline holds no more seeds is left inconclusive (record a baseline of
more replicates, such as the nightly plan).  Without shared seeds a round
trains new seeds, which narrow the two-sample test.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from ablation.compare import MIN_PAIRED, Comparison, comparable_cells, compare, shared_seeds
from ablation.verdict import Tolerance

# more(study, first_seed, count): train ``count`` more replicates of every cell of the study from ``first_seed``
# on and add them to the results.
MoreReplicates = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Look:
    replicates: dict[str, int]  # per study, the replicates per cell judged at this look
    inconclusive: tuple[str, ...]
    exhausted: tuple[str, ...] = ()  # inconclusive studies the baseline holds no more paired seeds of


def adaptive_compare(baseline: dict[str, Any], results: dict[str, Any], tolerance: Tolerance, more: MoreReplicates,
                     rounds: int, per_round: dict[str, int], throughput_limit: float | None = None
                     ) -> tuple[Comparison, list[Look]]:
    """Compare, and while some studies are inconclusive and rounds are left, train ``per_round[study]`` more
    replicates of each (``more`` adds them to ``results``) and compare again, every look at budget / (rounds + 1)
    and its equivalence tests at their alpha / (rounds + 1).
    Returns the last comparison and what each look saw."""
    per_look = dataclasses.replace(tolerance, alarm_budget=tolerance.alarm_budget / (rounds + 1),
                                   equivalence_alpha=tolerance.equivalence_alpha / (rounds + 1))
    looks: list[Look] = []
    while True:
        comparison = compare(baseline, results, per_look, throughput_limit)
        if rounds:
            comparison = dataclasses.replace(comparison, per=f"look of at most {rounds + 1} ("
                                             f"{tolerance.alarm_budget * 100:.3g}% per run)")
        plans = {study: next_seeds(baseline, results, study, per_round[study]) for study in comparison.inconclusive}
        trainable = {study: plan for study, plan in plans.items() if plan[1]}
        looks.append(Look(replicates_per_study(results), tuple(comparison.inconclusive),
                          tuple(study for study in plans if study not in trainable)))
        if len(looks) == rounds + 1 or not trainable:
            return comparison, looks
        for study, (first, count) in trainable.items():
            more(study, first, count)


def next_seeds(baseline: dict[str, Any], results: dict[str, Any], study: str, count: int) -> tuple[int, int]:
    """(first seed, how many) a round of ``study`` trains: the baseline's seeds after the current run's last when
    the sides are paired (0 when it has none left), else ``count`` new seeds."""
    current, before = (side["studies"][study]["cells"] for side in (results, baseline))
    first = max(seed for record in current.values() for seed in record["seeds"]) + 1
    cells = comparable_cells(study, before, current, "accuracy")  # the cells its shift test pairs on
    if len(shared_seeds([before[c] for c in cells], [current[c] for c in cells])) < MIN_PAIRED:
        return first, count
    ahead = set.intersection(*(set(before[c]["seeds"]) for c in cells))
    available = 0
    while available < count and first + available in ahead:
        available += 1
    return first, available


def replicates_per_study(results: dict[str, Any]) -> dict[str, int]:
    return {name: min(len(cell["accuracy"]) for cell in entry["cells"].values())
            for name, entry in results["studies"].items() if entry["cells"]}


def looks_text(looks: list[Look], rounds: int) -> str:
    """What each look saw, for stderr and the run's summary."""
    lines = []
    for i, look in enumerate(looks):
        counts = ", ".join(f"{study} {n}" for study, n in look.replicates.items())
        doubt = f"inconclusive: {', '.join(look.inconclusive)}" if look.inconclusive else "none inconclusive"
        lines.append(f"look {i + 1} of at most {rounds + 1} (replicates per cell: {counts}): {doubt}")
        if look.exhausted:
            lines.append(f"  the baseline holds no further seeds of {', '.join(look.exhausted)} to pair with; "
                         "record a baseline of more replicates (run --replicates nightly)")
    return "\n".join(lines)
