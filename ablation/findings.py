"""The conclusions the study document draws, as checks on measured results.

Each finding restates a claim of the study document (seed-README.md) as one
or more contrasts between cell means that the claim says are at least a
margin: "ReLU leads Sigmoid by 5 points at depth d" is relu_d - sigmoid_d >= 5.
A finding fails only when the data shows a contrast below its margin: a
one-sided t-test on the cells' own spreads, at the finding's share of the
run's alarm budget split over its contrasts (Bonferroni).  Its df are the
fewest replicates of a cell, less one (Hsu's): whatever the cells' spreads, a
true claim then fails with at most that probability.  Welch-Satterthwaite's
df would fail it up to 4 times as often at these alphas where the spreads
differ (python -m bench.false_alarms --unpaired).  Every cell needs two
replicates or more for a standard error; a finding whose cells lack them, or
were not all measured, is not judged.

The margins restate the document: ReLU's lead and rise of 5 points (the
document shows 10-15), Sigmoid's rise of at most 2, BatchNorm trailing
GroupNorm by at most 3 points at batch >= 8 (the document's two-sided "within
3 %" failed on our runs, where BatchNorm leads by 4-6 points; the one-sided
form is the document's point), and BatchNorm below GroupNorm at batches 2-4.
"GroupNorm still learns" at batch 2, where a run either learns or ends at
chance, is a share of runs: an exact one-sided binomial test that at least a
quarter of them learn (LEARNING_SHARE), sharing the finding's alpha with its
contrast. Runs at chance are common there, so neither of the bench's plans
(pr, nightly) has the runs to show fewer learners than the claim at that
alpha (docs/statistics.md): asking for one learner instead would fail
unchanged runs far more often than the budget.
The CIFAR-100 variant has no table: its finding is the document's qualitative
claim, not calibrated on CIFAR-100 itself.  The 100-epoch variant's table
(one run) says what the short study does not: BatchNorm at batch 2 learns
there (39.93 %), where at 10 epochs and 200 images per class it ends near
chance.  Its finding holds the cell's mean to LEARNED, the level the
GroupNorm batch-2 rule counts as learned: as the other margins do, it keeps
the document's direction with room below its size (30 points over chance).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from ablation.stats import t_sf
from ablation.verdict import Tolerance

Cells = dict[str, dict[str, Any]]

RELU_LEAD = 5.0  # points ReLU must lead Sigmoid by at every depth >= 3
RELU_RISE = 5.0  # points ReLU at depth 8 must gain over depth 1
SIGMOID_RISE = 2.0  # points Sigmoid at depth 8 may gain over depth 1
CLOSE = 3.0  # points BatchNorm may trail GroupNorm at batch size >= 8 ("within 3 %")
LEARNED = 15.0  # accuracy (%) that counts as having learned, well above chance (10 %)
LEARNING_SHARE = 0.25  # share of GroupNorm's batch-2 runs that must learn ("GroupNorm still learns")


@dataclass(frozen=True)
class Contrast:
    """sum(weight * mean of cell) >= margin, as the claim says."""

    label: str
    weights: dict[str, float]
    margin: float

    def se(self, cells: Cells) -> float:
        """The standard error of the contrast's estimate, from each cell's own spread."""
        return sum(w * w * statistics.variance(cells[c]["accuracy"]) / len(cells[c]["accuracy"])
                   for c, w in self.weights.items()) ** 0.5

    def df(self, cells: Cells) -> int:
        """Hsu's: the fewest replicates of its cells, less one."""
        return min(len(cells[c]["accuracy"]) for c in self.weights) - 1

    def test(self, cells: Cells) -> tuple[float, float]:
        """(estimate, one-sided p that a contrast this low arises when the claim holds at its margin)."""
        estimate = sum(w * statistics.fmean(cells[c]["accuracy"]) for c, w in self.weights.items())
        se = self.se(cells)
        if se == 0:
            return estimate, 0.0 if estimate < self.margin else 1.0
        return estimate, t_sf((self.margin - estimate) / se, self.df(cells))

    def judged(self, cells: Cells, alpha: float) -> tuple[float, str]:
        """(p, what was tested) at ``alpha``."""
        estimate, p = self.test(cells)
        return p, (f"{self.label} {estimate:+.2f} points (claim: >= {self.margin:+g}; one-sided p {p:.2g}, "
                   f"fails below {alpha:.2g})")


@dataclass(frozen=True)
class LearnedShare:
    """At least ``margin`` of a bimodal cell's runs learn (reach LEARNED): an exact one-sided binomial test."""

    label: str
    cell: str
    margin: float

    def judged(self, cells: Cells, alpha: float) -> tuple[float, str]:
        """(p that as few runs learn when the claim holds at its margin, what was tested) at ``alpha``."""
        runs = len(cells[self.cell]["accuracy"])
        learned = sum(a >= LEARNED for a in cells[self.cell]["accuracy"])
        p = sum(math.comb(runs, k) * self.margin ** k * (1 - self.margin) ** (runs - k) for k in range(learned + 1))
        return p, (f"{self.label} {learned} of {runs} (claim: >= {self.margin:.0%} of runs; one-sided p {p:.2g}, "
                   f"fails below {alpha:.2g})")


def difference(a: str, b: str) -> dict[str, float]:
    return {a: 1.0, b: -1.0}


@dataclass(frozen=True)
class Finding:
    study: str
    name: str
    claim: str
    cells: tuple[str, ...]
    contrasts: Callable[[Cells], list[Contrast]]
    shares: tuple[LearnedShare, ...] = ()  # tested beside the contrasts, at the same alpha each

    def cells_of(self, results: dict[str, Any]) -> Cells:
        return results["studies"].get(self.study, {}).get("cells", {})

    def why_not_judged(self, cells: Cells) -> str:
        """Why the finding cannot be judged on ``cells`` ("" when it can): cells missing, or with one replicate."""
        missing = [c for c in self.cells if c not in cells]
        if missing:
            return f"not judged: {len(missing)} of its cells were not measured"
        single = [c for c in self.cells if len(cells[c]["accuracy"]) < 2]
        if single:
            return f"not judged: {len(single)} of its cells have one replicate, so no standard error (run 2 or more)"
        return ""

    def contrast_alpha(self, contrasts: list[Contrast], tolerance: Tolerance, alpha: float | None = None) -> float:
        """Each test's alpha: the finding's (or ``alpha``) split over its contrasts and shares."""
        return (tolerance.alpha("finding") if alpha is None else alpha) / (len(contrasts) + len(self.shares))

    def judge(self, results: dict[str, Any], tolerance: Tolerance = Tolerance()) -> tuple[bool | None, str]:
        """(passed, detail), or (None, why not judged) when cells are missing or hold fewer than 2 replicates.
        The detail names the contrast of smallest p, then each share."""
        cells = self.cells_of(results)
        if why := self.why_not_judged(cells):
            return None, why
        contrasts = self.contrasts(cells)
        alpha = self.contrast_alpha(contrasts, tolerance)
        tested = [min((c.judged(cells, alpha) for c in contrasts), key=lambda item: item[0])]
        tested += [share.judged(cells, alpha) for share in self.shares]
        return all(p >= alpha for p, _ in tested), "; ".join(detail for _, detail in tested)


def relu_leads(cells: Cells) -> list[Contrast]:
    return [Contrast(f"ReLU minus Sigmoid at depth {d}", difference(f"blocks={d}-relu", f"blocks={d}-sigmoid"),
                     RELU_LEAD) for d in range(3, 9)]


def relu_rises_sigmoid_does_not(cells: Cells) -> list[Contrast]:
    return [Contrast("ReLU depth 8 minus depth 1", difference("blocks=8-relu", "blocks=1-relu"), RELU_RISE),
            Contrast("Sigmoid depth 1 minus depth 8", difference("blocks=1-sigmoid", "blocks=8-sigmoid"),
                     -SIGMOID_RISE)]


def batchnorm_trails_small(cells: Cells) -> list[Contrast]:
    weights = {f"batch_size={b}-{n}": (0.5 if n == "groupnorm" else -0.5) for b in (2, 4)
               for n in ("batchnorm", "groupnorm")}
    return [Contrast("GroupNorm minus BatchNorm, batch 2-4", weights, 0.0)]


def batchnorm_keeps_up(cells: Cells) -> list[Contrast]:
    return [Contrast(f"BatchNorm minus GroupNorm at batch {b}",
                     difference(f"batch_size={b}-batchnorm", f"batch_size={b}-groupnorm"), -CLOSE)
            for b in (8, 16, 32, 64, 128)]


def batchnorm_learns_at_batch_2(cells: Cells) -> list[Contrast]:
    return [Contrast(f"BatchNorm at batch 2 (mean accuracy, %; learned from {LEARNED:g})",
                     {"batch_size=2-batchnorm": 1.0}, LEARNED)]


def batchnorm_degrades_more(cells: Cells) -> list[Contrast]:
    def best(norm: str) -> str:
        return max((f"batch_size={b}-{norm}" for b in (4, 8, 16, 32, 64, 128)),
                   key=lambda c: statistics.fmean(cells[c]["accuracy"]))
    weights = {best("batchnorm"): 1.0, "batch_size=2-batchnorm": -1.0, best("groupnorm"): -1.0,
               "batch_size=2-groupnorm": 1.0}
    return [Contrast("BatchNorm's drop from its best batch size to batch 2, minus GroupNorm's", weights, 0.0)]


def standard_order_first(cells: Cells) -> list[Contrast]:
    return [Contrast(f"conv_bn_relu minus {other}", difference("order=conv_bn_relu", f"order={other}"), 0.0)
            for other in ("conv_relu_bn", "conv_leakyrelu_bn")]


FINDINGS = (
    Finding("sigmoid_vs_relu", "relu_beats_sigmoid_at_depth",
            "ReLU beats Sigmoid by 5 points or more at every depth from 3 blocks on",
            tuple(f"blocks={d}-{a}" for d in range(3, 9) for a in ("sigmoid", "relu")), relu_leads),
    Finding("sigmoid_vs_relu", "relu_rises_sigmoid_does_not",
            "ReLU accuracy rises 5 points or more from depth 1 to 8, Sigmoid's at most 2",
            ("blocks=1-relu", "blocks=8-relu", "blocks=1-sigmoid", "blocks=8-sigmoid"), relu_rises_sigmoid_does_not),
    Finding("batchnorm_vs_groupnorm", "batchnorm_breaks_down_at_small_batches",
            "BatchNorm breaks down at batch sizes 2-4 where GroupNorm still learns",
            tuple(f"batch_size={b}-{n}" for b in (2, 4) for n in ("batchnorm", "groupnorm")), batchnorm_trails_small,
            (LearnedShare("GroupNorm runs that learned at batch 2", "batch_size=2-groupnorm", LEARNING_SHARE),)),
    Finding("batchnorm_vs_groupnorm", "batchnorm_keeps_up_at_large_batches",
            "At batch sizes >= 8 BatchNorm trails GroupNorm by 3 points at most",
            tuple(f"batch_size={b}-{n}" for b in (8, 16, 32, 64, 128) for n in ("batchnorm", "groupnorm")),
            batchnorm_keeps_up),
    Finding("batchnorm_vs_groupnorm_long", "batchnorm_learns_at_batch_2_with_100_epochs",
            "With 100 epochs and 500 images per class BatchNorm learns at batch 2 (the 10-epoch study's fails)",
            ("batch_size=2-batchnorm",), batchnorm_learns_at_batch_2),
    Finding("batchnorm_vs_groupnorm_cifar100", "batchnorm_degrades_more_at_small_batches",
            "GroupNorm stays steadier across batch sizes; BatchNorm degrades at the smallest (CIFAR-100, 32 groups)",
            tuple(f"batch_size={b}-{n}" for b in (2, 4, 8, 16, 32, 64, 128) for n in ("batchnorm", "groupnorm")),
            batchnorm_degrades_more),
    Finding("conv_activation_norm_position", "standard_order_ranks_first",
            "Conv -> BatchNorm -> ReLU is not below either other order",
            ("order=conv_bn_relu", "order=conv_relu_bn", "order=conv_leakyrelu_bn"), standard_order_first),
)
