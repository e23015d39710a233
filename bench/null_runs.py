"""Measured false-alarm rates: runs of unchanged code cut into null pseudo-runs of the bench.

    python -m bench.null_runs RUN.json ... [--same-seeds AGAIN.json ...] [--replicates pr|nightly]
                              [--resample DRAWS | --power DRAWS] [--adaptive ROUNDS]

Each RUN is a run of unchanged code, with many replicates per cell (`run
all --replicates null`: five times the pr plan's, five pseudo-runs of the
bench, projected at about 4 times a pr run's training) or the plan's own
(`run all --seed-offset K`, one per K).  Each cell's replicates are cut into
consecutive blocks of the plan's counts (5 / 8 / 3 for pr): block i of every
study is a pseudo-run of the bench, and no two blocks share a seed, so they
are independent runs of the same code.  Judged, with the bench's own rules:

- every pseudo-run against the documented table (its cells and findings);
- disjoint pairs of pseudo-runs (1 against 2, 3 against 4, ...) as baseline
  and current: independent comparisons on other seeds (the two-sample test);
- with --same-seeds, the runs trained once more with the same seeds, in the
  same order: each pseudo-run against its rerun, the paired comparisons of a
  same-seed baseline, and the --same-training gate (a cell whose numerics
  changed), which is outside the alarm budget and so outside the whole
  pseudo-run's rate.

With --resample DRAWS, beside them: DRAWS pseudo-runs whose seeds are drawn
at random from one run, each against the documented table and against a
baseline drawn likewise from another run (across processes, as a real
comparison is).  They keep what a fitted model assumes away: the runs' skew,
and how a seed's cells and metrics move together.  They share seeds, so
their rate is the runs' own, with no interval: the disjoint pseudo-runs
above are the independent count.

With --adaptive ROUNDS beside --resample or --power, each current pseudo-run
is also judged as `run --baseline BASELINE --adaptive --max-rounds ROUNDS`
judges it: its seeds drawn in a random order from its run, the plan's counts
first, and as many again for every study still inconclusive (new seeds: the
baseline is of other seeds), up to ROUNDS more looks.  That measures the
sequential procedure's false-alarm rate, power and equivalence misses on
real runs, which its constants were not fitted to.

With --power DRAWS, instead: whether the power that `python -m ablation
power` states holds on these runs, and how often "equivalent" misses.  Per
study, the study shift it states as found with 80 % probability at the
plan's counts, from the runs' per-seed spread pooled, is planted (a drop in
every cell the shift averages) into DRAWS resampled current runs, each
judged against a baseline resampled from another run; the share of draws
whose study shift fails is the power measured.  A drop of the margin
(--margin's default, 1 point) planted the same way may be called equivalent
in at most 5 % of the draws (verdict.EQUIVALENCE_ALPHA).

Per decision kind and for the whole pseudo-run: pseudo-runs judged, those
with a false alarm, the rate and its 95 % interval (Wilson).  Throughput is
not judged: the blocks share their run's timing.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import random
import sys
from collections import Counter
from typing import Any, Sequence

from ablation.adaptive import adaptive_compare
from ablation.compare import Comparison, compare, comparable_cells, judge_study_shift
from ablation.findings import FINDINGS
from ablation.power import study_power
from ablation.numerics import on_seeds
from ablation.results import plural, read_results
from ablation.studies import DOCUMENTED, PLANS, get_study
from ablation.verdict import Tolerance, check_documented, for_baseline

COMPARISON_KINDS = ("baseline_cell", "chance_share", "study_shift", "metric")
OUTSIDE_BUDGET = ("same_training",)  # opt-in gates with a rate of their own, not in the whole pseudo-run's
TABLE_KINDS = ("documented_cell", "finding")


def blocks(results: dict[str, Any], plan: str | int = "pr") -> list[dict[str, Any]]:
    """The pseudo-runs: block i holds replicates [i * n, (i + 1) * n) of every cell of each study with that many
    (n the plan's count for the study), times scaled to the share."""
    pseudo = []
    for name, entry in results["studies"].items():
        n = get_study(name).replicates_for(plan)
        for i in range(replicates_held(entry) // n):
            while len(pseudo) <= i:
                pseudo.append(_header(results))
            pseudo[i]["studies"][name] = _on_seeds(entry, study_seeds(entry)[i * n:(i + 1) * n])
    return pseudo


def share_seeds(runs: list[dict[str, Any]]) -> bool:
    """Whether a seed of a study is in two of the runs: their pseudo-runs would not be independent, and a run and
    its rerun would pair, judged as a same-seed comparison."""
    seen: set[tuple[str, int]] = set()
    for run in runs:
        mine = trained_seeds(run)
        if seen & mine:
            return True
        seen |= mine
    return False


def trained_seeds(run: dict[str, Any]) -> set[tuple[str, int]]:
    """Every (study, seed) the run trained."""
    return {(name, seed) for name, entry in run["studies"].items() for cell in entry["cells"].values()
            for seed in cell["seeds"]}


def check_other_seeds(runs: list[dict[str, Any]]) -> None:
    """Resampling draws its two sides from two runs: at least two, of other seeds each (share_seeds)."""
    if len(runs) < 2:
        raise ValueError("resampling needs two runs or more, to draw the baseline and the current run from "
                         "different ones")
    if share_seeds(runs):
        raise ValueError("two runs share seeds; resampling needs runs of other seeds (run --seed-offset), "
                         "not a run and its rerun")


def resample(results: dict[str, Any], plan: str | int, rng: random.Random) -> dict[str, Any]:
    """A pseudo-run of the plan's counts, its seeds drawn at random (drawn_seeds)."""
    return on_study_seeds(results, drawn_seeds(results, plan, rng))


def drawn_seeds(results: dict[str, Any], plan: str | int, rng: random.Random) -> dict[str, list[int]]:
    """Per study holding at least the plan's count n of replicates: n of its seeds, drawn at random without
    replacement, in the run's order.  Every cell of a study takes the same seeds: a seed's cells move together."""
    drawn = {}
    for name, entry in results["studies"].items():
        n = get_study(name).replicates_for(plan)
        if replicates_held(entry) >= n:
            drawn[name] = [study_seeds(entry)[i] for i in sorted(rng.sample(range(replicates_held(entry)), n))]
    return drawn


def on_study_seeds(results: dict[str, Any], seeds: dict[str, list[int]]) -> dict[str, Any]:
    """A pseudo-run of ``results``: each study of ``seeds``, every cell cut to those seeds, times scaled to the
    share."""
    pseudo = _header(results)
    for name, chosen in seeds.items():
        pseudo["studies"][name] = _on_seeds(results["studies"][name], chosen)
    return pseudo


def _header(results: dict[str, Any]) -> dict[str, Any]:
    return dict(copy.deepcopy({k: v for k, v in results.items() if k != "studies"}), studies={})


def replicates_held(entry: dict[str, Any]) -> int:
    """The replicates every cell of a study's entry holds."""
    return min(len(cell["accuracy"]) for cell in entry["cells"].values())


def study_seeds(entry: dict[str, Any]) -> list[int]:
    """The seeds every cell of a study's entry trained, in the run's order."""
    return next(iter(entry["cells"].values()))["seeds"][:replicates_held(entry)]


def _on_seeds(entry: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """The study entry with each cell's replicates of ``seeds`` only, times scaled to the share."""
    def part(record: dict[str, Any]) -> dict[str, Any]:
        kept = on_seeds(record, seeds)
        share = len(seeds) / len(record["accuracy"])
        kept.update({key: record[key] * share for key in ("wall_s", "setup_s", "eval_s") if key in record})
        return kept

    return dict(entry, cells={cell_id: part(record) for cell_id, record in entry["cells"].items()})


def table_alarms(results: dict[str, Any], tolerance: Tolerance) -> dict[str, bool | None]:
    """Per kind, whether a block's judgement against the documented table raised a false alarm (None: nothing
    of that kind was judged)."""
    cells = check_documented(results, tolerance)
    findings = [f.judge(results, tolerance)[0] for f in FINDINGS if f.study in results["studies"]]
    findings = [ok for ok in findings if ok is not None]
    return {"documented_cell": any(not v.passed for v in cells) if cells else None,
            "finding": any(ok is False for ok in findings) if findings else None}


def comparison_alarms(comparison: Comparison) -> dict[str, bool | None]:
    """Per kind, whether a comparison of two unchanged runs raised a false alarm (None: none of that kind)."""
    failed = [d for d in comparison.drifts if not d.verdict.passed]
    chance = [d for d in failed if d.verdict.share_changed]
    metrics = [m for d in comparison.drifts for m in d.metrics] + [s for s in comparison.shifts
                                                                  if s.metric != "accuracy"]
    shifts = [s for s in comparison.shifts if s.metric == "accuracy"]
    numerics = [d.numerics for d in comparison.drifts if d.numerics is not None]
    return {"baseline_cell": len(failed) > len(chance) if comparison.drifts else None,
            "chance_share": bool(chance) if comparison.drifts else None,
            "study_shift": any(not s.passed for s in shifts) if shifts else None,
            "metric": any(not m.passed for m in metrics) if metrics else None,
            "same_training": any(n.verdict == "changed" for n in numerics) if numerics else None}


def wilson(alarms: int, runs: int, z: float = 1.96) -> tuple[float, float]:
    """95 % interval of a rate of ``alarms`` in ``runs``."""
    if runs == 0:
        return 0.0, 1.0
    centre = (alarms + z * z / 2) / (runs + z * z)
    half = z / (runs + z * z) * math.sqrt(alarms * (runs - alarms) / runs + z * z / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def tally(judgements: list[dict[str, bool | None]]) -> dict[str, tuple[int, int]]:
    """Per kind judged at least once, and "any" of the alarm budget's kinds: (pseudo-runs with an alarm,
    pseudo-runs judged)."""
    kinds = list(dict.fromkeys(k for j in judgements for k in j))
    counts = {kind: (sum(bool(j.get(kind)) for j in judgements), sum(j.get(kind) is not None for j in judgements))
              for kind in kinds}
    counts = {kind: count for kind, count in counts.items() if count[1]}
    counts["any"] = (sum(any(v for k, v in j.items() if k not in OUTSIDE_BUDGET) for j in judgements),
                     len(judgements))
    return counts


def null_rates(runs: list[dict[str, Any]], reruns: list[dict[str, Any]] | None = None, plan: str | int = "pr",
               tolerance: Tolerance = Tolerance()) -> dict[str, dict[str, tuple[int, int]]]:
    """Per way of judging (documented table, other seeds, same seeds): per kind (alarms, pseudo-runs judged)."""
    def whole(results: dict[str, Any]) -> list[dict[str, Any]]:
        """Its pseudo-runs that hold every documented study the run holds."""
        names = [s.name for s in DOCUMENTED if s.name in results["studies"]]
        return [p for p in blocks(results, plan) if all(name in p["studies"] for name in names)]

    if share_seeds(runs):
        raise ValueError("two pseudo-runs share seeds; give runs of other seeds (run --seed-offset)")
    parts = [p for run in runs for p in whole(run)]
    rates = {"documented table": tally([table_alarms(p, tolerance) for p in parts])}
    rates["other seeds"] = tally([comparison_alarms(compare(a, b, tolerance)) for a, b in zip(parts[::2], parts[1::2])])
    if reruns is not None:
        again = [p for run in reruns for p in whole(run)]
        if len(again) != len(parts):
            raise ValueError(f"the same-seed reruns hold {plural(len(again), 'pseudo-run')}, the runs {len(parts)}; "
                             "give one rerun per run, in the same order, each with its run's seeds")
        if any(trained_seeds(a) != trained_seeds(b) for a, b in zip(parts, again)):
            raise ValueError("a same-seed rerun trained other seeds than its run; give the reruns in the runs' order, "
                             "each with its run's seeds")
        rates["same seeds"] = tally([comparison_alarms(compare(a, b, tolerance)) for a, b in zip(parts, again)])
    return rates


def resampled_rates(runs: list[dict[str, Any]], draws: int, plan: str | int = "pr",
                    tolerance: Tolerance = Tolerance(), seed: int = 0) -> dict[str, dict[str, tuple[int, int]]]:
    """Per way of judging (documented table, other seeds): per kind (alarms, resampled pseudo-runs judged).  Each
    draw is a current pseudo-run resampled from one run and a baseline resampled from another."""
    check_other_seeds(runs)
    rng = random.Random(seed)
    table, pairs = [], []
    for _ in range(draws):
        before, after = (resample(run, plan, rng) for run in rng.sample(runs, 2))
        table.append(table_alarms(after, tolerance))
        pairs.append(comparison_alarms(compare(before, after, tolerance)))
    return {"documented table, resampled": tally(table), "other seeds, resampled": tally(pairs)}


def adaptive_rates(runs: list[dict[str, Any]], draws: int, plan: str | int, rounds: int,
                   tolerance: Tolerance = Tolerance(), seed: int = 0
                   ) -> tuple[dict[str, tuple[int, int]], dict[str, Counter]]:
    """Draws as resampled_rates draws them (their own), each judged as run --adaptive judges it (adaptive_run): per
    kind (alarms, pseudo-runs judged), and per study how many draws ended on each count of seeds (what the extra
    rounds cost)."""
    check_other_seeds(runs)
    check_adaptive(runs, plan, rounds)
    rng = random.Random(seed)
    judged, used = [], {}
    for _ in range(draws):
        base_run, current_run = rng.sample(runs, 2)
        comparison = adaptive_run(resample(base_run, plan, rng), current_run, plan, rounds, rng, tolerance)
        judged.append(comparison_alarms(comparison))
        for shift in comparison.shifts:
            if shift.metric == "accuracy":
                used.setdefault(shift.study, Counter())[shift.seeds[1]] += 1
    return tally(judged), used


def seeds_used_text(used: dict[str, Counter], draws: int) -> str:
    """What run --adaptive trained on the draws: per study, the share of draws that ended on each count."""
    return "run --adaptive's seeds per cell at its last look: " + "; ".join(
        f"{study} " + ", ".join(f"{n} in {count / draws:.1%}" for n, count in sorted(counts.items()))
        for study, counts in used.items())


def check_adaptive(runs: list[dict[str, Any]], plan: str | int, rounds: int) -> None:
    """run --adaptive's last look takes the plan's count (rounds + 1) times: every run must hold that many seeds."""
    for run in runs:
        for name, entry in run["studies"].items():
            needed = get_study(name).replicates_for(plan) * (rounds + 1)
            if replicates_held(entry) < needed:
                raise ValueError(f"a run holds {replicates_held(entry)} replicates of {name}, fewer than the "
                                 f"{needed} that {plural(rounds, 'more round')} of the {plan} plan's count can take; "
                                 "ask for fewer --adaptive rounds")


def adaptive_run(before: dict[str, Any], run: dict[str, Any], plan: str | int, rounds: int, rng: random.Random,
                 tolerance: Tolerance, drops: dict[str, float] | None = None) -> Comparison:
    """The last comparison of `run --baseline BEFORE --adaptive` on a pseudo-run of ``run``: each study's seeds
    in a random order, the plan's count first and as many more each round its study shift asks for (new seeds:
    ``before`` is of other seeds); ``drops``: per study, points planted as a drop in every cell its shift
    averages."""
    order = {name: rng.sample(study_seeds(entry), replicates_held(entry)) for name, entry in run["studies"].items()
             if name in before["studies"]}
    per_round = {name: get_study(name).replicates_for(plan) for name in order}
    taken = dict(per_round)
    current = _header(run)

    def show(name: str) -> None:
        entry = _on_seeds(run["studies"][name], order[name][:taken[name]])
        if drops and name in drops:
            entry = dict(entry, cells=dropped(name, before["studies"][name]["cells"], entry["cells"], drops[name]))
        current["studies"][name] = entry

    def more(name: str, first_seed: int, count: int) -> None:
        taken[name] += count
        show(name)

    for name in order:
        show(name)
    return adaptive_compare(before, current, tolerance, more, rounds, per_round)[0]


def stated_shifts(runs: list[dict[str, Any]], plan: str | int = "pr", power: float = 0.8,
                  tolerance: Tolerance = Tolerance()) -> dict[str, tuple[int, float]]:
    """Per study every run holds enough replicates of for the plan: (the plan's count, the accuracy shift the study
    shift test finds with ``power`` at that count, from the runs' per-seed sds pooled over their df)."""
    stated = {}
    for name in [s.name for s in DOCUMENTED]:
        n = get_study(name).replicates_for(plan)
        if any(replicates_held(run["studies"][name]) < n for run in runs if name in run["studies"]):
            continue
        spreads = [p for run in runs for p in study_power(run, tolerance, power)
                   if p.study == name and p.metric == "accuracy" and p.seed_sd]
        if len(spreads) == len(runs):
            pooled = math.sqrt(sum((p.replicates - 1) * p.seed_sd ** 2 for p in spreads)
                               / sum(p.replicates - 1 for p in spreads))
            stated[name] = n, dataclasses.replace(spreads[0], seed_sd=pooled).detectable(n)
    return stated


def resampled_power(runs: list[dict[str, Any]], draws: int, plan: str | int = "pr", power: float = 0.8,
                    tolerance: Tolerance = Tolerance(), seed: int = 0) -> dict[str, tuple[int, float, int, int]]:
    """Per study of stated_shifts: (the plan's count, the stated shift, draws whose study shift failed with that
    drop planted in the current run, draws that called a drop of the margin equivalent), over ``draws`` resampled
    pairs of runs."""
    check_other_seeds(runs)
    stated = stated_shifts(runs, plan, power, tolerance)
    rng = random.Random(seed)
    found, equivalent = dict.fromkeys(stated, 0), dict.fromkeys(stated, 0)
    for _ in range(draws):
        before, after = (resample(run, plan, rng) for run in rng.sample(runs, 2))
        judged = for_baseline(tolerance, after["environment"]["device_name"], before["environment"]["device_name"])
        for name, (_, shift) in stated.items():
            base, cells = before["studies"][name]["cells"], after["studies"][name]["cells"]
            found[name] += not judge_study_shift(name, base, dropped(name, base, cells, shift), judged).passed
            equivalent[name] += judge_study_shift(name, base, dropped(name, base, cells, judged.margin),
                                                  judged).equivalent
    return {name: (n, shift, found[name], equivalent[name]) for name, (n, shift) in stated.items()}


def adaptive_power(runs: list[dict[str, Any]], draws: int, plan: str | int, rounds: int, power: float = 0.8,
                   tolerance: Tolerance = Tolerance(), seed: int = 0) -> dict[str, tuple[int, int]]:
    """Per study of stated_shifts, the same measure by run --adaptive with ``rounds`` more rounds: (draws whose
    study shift ended failed with the stated shift planted, draws that ended calling a drop of the margin
    equivalent).  Every study takes its drop at once: each study's rounds follow its own shift alone."""
    check_other_seeds(runs)
    check_adaptive(runs, plan, rounds)
    stated = stated_shifts(runs, plan, power, tolerance)
    rng = random.Random(seed)
    found, equivalent = dict.fromkeys(stated, 0), dict.fromkeys(stated, 0)
    for _ in range(draws):
        base_run, current_run = rng.sample(runs, 2)
        before = resample(base_run, plan, rng)
        judged = for_baseline(tolerance, current_run["environment"]["device_name"],
                              before["environment"]["device_name"])
        shifted = adaptive_run(before, current_run, plan, rounds, rng, judged,
                               {name: shift for name, (_, shift) in stated.items()})
        at_margin = adaptive_run(before, current_run, plan, rounds, rng, judged, dict.fromkeys(stated, judged.margin))
        for name in stated:
            found[name] += any(not s.passed for s in _accuracy_shifts(shifted, name))
            equivalent[name] += any(s.equivalent for s in _accuracy_shifts(at_margin, name))
    return {name: (found[name], equivalent[name]) for name in stated}


def _accuracy_shifts(comparison: Comparison, study: str) -> list:
    return [s for s in comparison.shifts if s.study == study and s.metric == "accuracy"]


def dropped(name: str, base: dict[str, Any], cells: dict[str, Any], drop: float) -> dict[str, Any]:
    """The study's cells with ``drop`` points taken from every accuracy its study shift averages."""
    return dict(cells, **{c: dict(cells[c], accuracy=[a - drop for a in cells[c]["accuracy"]])
                          for c in comparable_cells(name, base, cells, "accuracy")})


def power_table(measured: dict[str, tuple[int, float, int, int]], draws: int, plan: str | int = "pr",
                power: float = 0.8, tolerance: Tolerance = Tolerance(),
                adaptive: dict[str, tuple[int, int]] | None = None, rounds: int = 0) -> str:
    """The measured power and equivalence misses per study, and with ``adaptive`` (adaptive_power) the same by run
    --adaptive; a study without a row says why.  No interval: the draws share seeds."""
    columns = ["power measured", f"a drop of the margin ({tolerance.margin:g} point) called equivalent"]
    if adaptive is not None:
        columns += [f"{name}, --adaptive with {plural(rounds, 'more round')}" for name in columns]
    lines = [f"| study | replicates | shift stated at {power:.0%} power | draws | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 4) + "|"]
    for study in DOCUMENTED:
        if study.name in measured:
            n, shift, found, equivalent = measured[study.name]
            shares = [found, equivalent] + list((adaptive or {}).get(study.name, ()))
            lines.append(f"| {study.name} | {n} | {shift:.2f} points | {draws} | "
                         + " | ".join(f"{count / draws:.1%}" for count in shares) + " |")
        else:
            lines.append(f"| {study.name} | {study.replicates_for(plan)} | not measured: a run holds fewer "
                         "replicates than the plan's, or too few seeds to state a spread |" + " |" * (len(columns) + 1))
    return "\n".join(lines)


def rates_table(rates: dict[str, dict[str, tuple[int, int]]]) -> str:
    """Each way's rates; with a 95 % interval where the pseudo-runs are independent (not resampled ones)."""
    lines = ["| judged against | decision | pseudo-runs judged | with a false alarm | rate (95 % interval) |",
             "|---|---|---|---|---|"]
    for way, counts in rates.items():
        for kind, (alarms, runs) in counts.items():
            low, high = wilson(alarms, runs)
            rate = alarms / runs if runs else 0.0
            rate_text = f"{rate:.2%}" if way.endswith("resampled") else f"{rate:.1%} ({low:.1%} - {high:.1%})"
            label = "whole pseudo-run" if kind == "any" else kind
            lines.append(f"| {way} | {label} | {runs} | {alarms} | {rate_text} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.null_runs", description=__doc__.splitlines()[0])
    parser.add_argument("runs", metavar="RUN.json", nargs="+", help="runs of unchanged code, no seed in two")
    parser.add_argument("--same-seeds", metavar="AGAIN.json", nargs="+",
                        help="the same runs trained again with their seeds, in the same order (default: none)")
    parser.add_argument("--replicates", default="pr", choices=[plan for plan in PLANS if plan != "null"],
                        help="the plan whose counts cut the blocks (default %(default)s)")
    parser.add_argument("--resample", type=int, metavar="DRAWS",
                        help="also DRAWS pseudo-runs resampled from the runs' seeds, against the documented table and "
                             "a baseline resampled from another run (default: none)")
    parser.add_argument("--power", type=int, metavar="DRAWS",
                        help="instead: each study's stated 80 %% power shift planted in DRAWS resampled runs, and the "
                             "share found (default: none)")
    parser.add_argument("--adaptive", type=int, metavar="ROUNDS", default=0,
                        help="with --resample or --power: also judge each draw as run --adaptive --max-rounds ROUNDS "
                             "would (default: not)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the resampling (default %(default)s)")
    args = parser.parse_args(argv)
    for option in ("resample", "power"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            parser.error(f"--{option} needs at least 1 draw, not {getattr(args, option)}")
    if args.power is not None and (args.same_seeds or args.resample is not None):
        parser.error("--power measures the power on the runs alone; give --same-seeds and --resample without it")
    if args.adaptive < 0 or (args.adaptive and args.resample is None and args.power is None):
        parser.error("--adaptive takes a number of rounds, 1 or more, and goes with --resample or --power")
    from ablation.results import ResultsError

    try:
        runs = [read_results(path) for path in args.runs]
        if args.power:
            measured = resampled_power(runs, args.power, args.replicates, seed=args.seed)
            adaptive = adaptive_power(runs, args.power, args.replicates, args.adaptive, seed=args.seed) \
                if args.adaptive else None
            return power_table(measured, args.power, args.replicates, adaptive=adaptive, rounds=args.adaptive)
        reruns = [read_results(path) for path in args.same_seeds] if args.same_seeds else None
        rates, extra = null_rates(runs, reruns, args.replicates), []
        if args.resample:
            rates.update(resampled_rates(runs, args.resample, args.replicates, seed=args.seed))
        if args.resample and args.adaptive:
            way = f"other seeds, --adaptive with {plural(args.adaptive, 'more round')}, resampled"
            rates[way], used = adaptive_rates(runs, args.resample, args.replicates, args.adaptive, seed=args.seed)
            extra.append("\n\n" + seeds_used_text(used, args.resample))
    except (ResultsError, ValueError) as error:
        parser.error(str(error))
    if rates["documented table"]["any"][1] < 2:
        parser.error(f"the runs hold fewer than two pseudo-runs of the {args.replicates} plan's replicates per cell; "
                     "train more (run all --replicates null, or more runs with --seed-offset)")
    return rates_table(rates) + "".join(extra)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
