"""Same seeds, same device, same torch: did the training's numbers change at all?

Between two results files whose cells share seeds, device and torch version,
each cell's replicates are compared one by one: "identical" (bitwise equal
metrics), "within noise" (no difference beyond the nondeterminism floor of
CUDA kernels), or "changed", with the first epoch whose training loss departs.
This verdict does not fail a comparison by itself: a change that was meant
to happen shows here, and the statistical verdicts say whether it matters.
A pull request that claims "no change in training" (a refactor, a speed-up)
makes it a gate with --same-training: every compared cell must then be
"identical" or "within noise", and files that cannot be compared replicate by
replicate are refused.

Only replicates trained in fused models of the same size compare: another
size can run other kernels (grouped convolutions of another group count),
whose rounding moves every seed's numbers. On an H200 a nightly run (16 / 16
/ 24 replicates a model) and the pr bench (5 / 8 / 3) of the same code and
seeds differed beyond the floor in 10 of 33 cells, by up to 1.6 accuracy
points and 1 % of the first epoch's training loss (8 cells stayed bitwise
equal); on the CPU, 2 and 3 replicates a model differed by up to 6e-7 of the
loss.  Such cells get no verdict, and --same-training refuses them.  Sizes are
compared seed by seed: run --adaptive's last round can train fewer of the
baseline's seeds than the first, in a smaller model (the record's
"fused_sizes").

The floor, on H200 runs of unchanged training with the same seeds (the pr
counts, 201 replicates a pair).  Accuracy and the training losses (final and
per epoch): across 28 pairs of 8 recorded files of 4 commits, single
replicates differed by at most 0.51 points and 2e-4 relative; rounded up, 0.6
and 5e-4.  Held out, 5 later runs (50 pairs among themselves and with those
8) stay within both, by 0.60 points at most.  The test loss, which rests on
the final weights alone, moves about ten times as far as the training loss:
across the 3 pairs of the first 3 runs that recorded it, by up to 2.2e-3;
rounded up, 5e-3.  Held out, the fourth and fifth runs' 7 pairs stay within
it (2.7e-3 at most).  In the 10 pairs of the later runs only Sigmoid/ReLU
cells differed, more the deeper they were; the norm and order studies were
bitwise equal.  The pairs
share runs, and a whole run can differ from the others (kernels chosen when
it starts), so these counts are evidence, not a bound on how often an
unchanged pair crosses the floor.  On the CPU runs are deterministic: every
metric is identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ablation.results import PER_REPLICATE, ResultsError, model_sizes
from ablation.verdict import of_seeds

ACCURACY_FLOOR = 0.6  # points, per replicate
LOSS_FLOOR = 5e-4  # relative, per replicate and epoch of the training loss
TEST_LOSS_FLOOR = 5e-3  # relative, per replicate
VERDICTS = ("identical", "within noise", "changed")
NOT_FINITE = "not finite in one run of a seed"  # a loss that diverged in one of a seed's two runs


@dataclass(frozen=True)
class Numerics:
    verdict: str  # one of VERDICTS
    detail: str


def why_no_verdict(baseline: dict[str, Any], current: dict[str, Any]) -> str:
    """Why two results files cannot be compared replicate by replicate ("" when they can)."""
    for key, what in (("device_name", "devices"), ("torch", "torch versions")):
        if baseline["environment"][key] != current["environment"][key]:
            return f"other {what} ({baseline['environment'][key]} vs {current['environment'][key]})"
    return ""


def deterministic(baseline: dict[str, Any], current: dict[str, Any]) -> bool:
    """Both ran with deterministic algorithms: any difference is a change (no floor)."""
    return all(r["environment"].get("deterministic", False) for r in (baseline, current))


def check_same_training(baseline: dict[str, Any], current: dict[str, Any], cell: str, base_record: dict[str, Any],
                        record: dict[str, Any]) -> None:
    """A ResultsError (one line) where --same-training cannot compare ``cell`` of two runs (results files, or
    anything with their "environment") replicate by replicate: other device or torch, no seed shared, or
    replicates fused in models of other sizes (records, or what a run will train: their "seeds" and "fused")."""
    why = why_no_verdict(baseline, current)
    if why:
        raise ResultsError(f"--same-training compares the same seeds on the same device and torch, and these ran on "
                           f"{why}; make the baseline there")
    if not set(base_record["seeds"]) & set(record["seeds"]):
        raise ResultsError(f"--same-training: {cell} shares no seed with the baseline; train the baseline's seeds "
                           "(the same --seed-offset)")
    if sizes_differ(base_record, record):
        ours, theirs = _sizes(record), _sizes(base_record)
        rounds = " (rounds of run --adaptive)" if len(ours) > 1 or len(theirs) > 1 else ""
        raise ResultsError(f"--same-training: {cell} trains {', then '.join(ours)} replicate"
                           f"{'' if ours == ['1'] else 's'} a model against the baseline's {', then '.join(theirs)}"
                           f"{rounds}, and a model of another size can run other "
                           "kernels, which move every seed's numbers; train as many replicates a cell as the "
                           "baseline (--replicates), fused alike (--no-fuse on both sides or neither)")


def same_training(baseline: dict[str, Any], current: dict[str, Any], base_record: dict[str, Any],
                  record: dict[str, Any], cell: str) -> Numerics:
    """The numerics verdict --same-training holds ``cell`` to (check_same_training says when there is none)."""
    check_same_training(baseline, current, cell, base_record, record)
    return compare_replicates(base_record, record, deterministic(baseline, current))


def why_not_compared(baseline: dict[str, Any], current: dict[str, Any]) -> str:
    """Why two records of a cell cannot be compared replicate by replicate ("" when they can): no seed shared,
    or replicates fused in models of other sizes."""
    if not set(baseline["seeds"]) & set(current["seeds"]):
        return "the cells share no seed"
    if sizes_differ(baseline, current):
        return "the cells fused their replicates in models of other sizes, whose kernels round differently"
    return ""


def sizes_differ(baseline: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether a seed both records trained was trained in fused models of other sizes on the two sides."""
    sizes = [dict(zip(record["seeds"], model_sizes(record))) for record in (baseline, current)]
    return any(sizes[0][seed] != sizes[1][seed] for seed in set(sizes[0]) & set(sizes[1]))


def _sizes(record: dict[str, Any]) -> list[str]:
    """The sizes of a record's fused models, in the order they trained: ['16'], or ['8', '3'] where run --adaptive
    added a round of another size."""
    return [str(size) for size in dict.fromkeys(model_sizes(record))]


def loss_floor(name: str) -> float:
    """The relative floor of a loss metric: the test loss's, or the training loss's (final and per epoch)."""
    return TEST_LOSS_FLOOR if name == "test_loss" else LOSS_FLOOR


def relative(a: float, b: float) -> float:
    """How far two runs' values of a loss differ, relative to the larger; a loss that is not finite (a diverged
    run) in one run and not the other, or not the same infinity, differs infinitely; two NaNs do not differ."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def on_seeds(record: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """The record's per-replicate values of ``seeds`` only, in that order."""
    return dict(record, **{key: of_seeds(record, record[key], seeds) for key in PER_REPLICATE
                           if record.get(key) is not None})


def compare_replicates(baseline: dict[str, Any], current: dict[str, Any], exact: bool = False) -> Numerics | None:
    """One cell's records replicate by replicate, on the seeds both trained (in either order; unfused, a run of a
    baseline's first seeds); None where why_not_compared says why not.  ``exact``: both ran with deterministic
    algorithms, so any difference is a change (no floor)."""
    if why_not_compared(baseline, current):
        return None
    shared = [seed for seed in current["seeds"] if seed in baseline["seeds"]]
    baseline, current = on_seeds(baseline, shared), on_seeds(current, shared)
    losses = [("final_loss", baseline.get("final_loss"), current.get("final_loss")),
              ("test_loss", baseline.get("test_loss"), current.get("test_loss"))]
    curves = baseline.get("train_loss_curve"), current.get("train_loss_curve")
    if all(curves):
        losses += [(f"epoch {e + 1} training loss", [c[e] for c in curves[0]], [c[e] for c in curves[1]])
                   for e in range(min(len(curves[0][0]), len(curves[1][0])))]
    losses = [(name, a, b) for name, a, b in losses if a is not None and b is not None]
    accuracy = max(abs(a - b) for a, b in zip(baseline["accuracy"], current["accuracy"]))
    if accuracy == 0 and all(relative(x, y) == 0 for _, a, b in losses for x, y in zip(a, b)):
        return Numerics("identical", "every metric of every replicate bitwise equal")
    departed = [(name, max(relative(x, y) for x, y in zip(a, b))) for name, a, b in losses]
    beyond = [(name, change) for name, change in departed if change > (0.0 if exact else loss_floor(name))]
    if not exact and accuracy <= ACCURACY_FLOOR and not beyond:
        training = max((c for name, c in departed if name != "test_loss"), default=0.0)
        within = [f"training loss within {training:.1e}"] + [f"test loss within {c:.1e}" for name, c in departed
                                                             if name == "test_loss"]
        return Numerics("within noise", f"accuracy within {accuracy:.2f} points, {', '.join(within)} relative")
    epochs = [name for name, _ in beyond if name.startswith("epoch ")]
    if epochs:
        first = epochs[0]
        change = dict(beyond)[first]
        how = f"by {change:.1%} in the replicate that moved most" if math.isfinite(change) else NOT_FINITE
        return Numerics("changed", f"training loss departs at {first.removesuffix(' training loss')} ({how})")
    if beyond:
        name, change = beyond[0]
        how = f"differs by {change:.1%}" if math.isfinite(change) else f"is {NOT_FINITE}"
        return Numerics("changed", f"{name.replace('_', ' ')} {how}")
    return Numerics("changed", f"accuracy differs by up to {accuracy:.2f} points")
