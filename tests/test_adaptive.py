"""Paired study shifts, three-way verdicts, and more replicates on doubt (ablation.adaptive) with the run's
false-alarm rate kept."""

import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ablation.adaptive import adaptive_compare, next_seeds
from ablation.cli import main
from ablation.compare import judge_study_shift
from ablation.results import ResultsError, extend_cell, read_results
from ablation.verdict import BUDGET, EQUIVALENCE_ALPHA, Tolerance, equivalent

CELLS = ("blocks=1-relu", "blocks=2-relu")


def record(seeds, accuracy):
    return {"level": 1, "variant": "relu", "documented": None, "seeds": list(seeds), "accuracy": list(accuracy),
            "collapsed": [False] * len(accuracy), "final_loss": [1.0] * len(accuracy), "wall_s": 1.0,
            "images_per_s": 100.0, "setup_s": 0.1, "eval_s": 0.1, "skipped_steps": [0] * len(accuracy)}


def results(cells):
    environment = {"torch": "2", "device": "cpu", "device_name": "cpu", "git_commit": None}
    return {"schema": 2, "created": "2026-11-29T00:00:00+00:00", "environment": environment, "data": "synthetic",
            "profile": "full", "studies": {"sigmoid_vs_relu": {"hyperparameters": {}, "data_checksum": "x",
                                                               "cells": cells}}}


def study_at(seeds, luck, shift=0.0, noise=0.0, rng=None):
    """Cells whose replicate of seed s scores 40 + luck[s] (the same in every cell) + shift, plus noise."""
    def value(seed):
        return 40.0 + luck[seed] + shift + (rng.gauss(0, noise) if noise else 0.0)
    return {cell: record(seeds, [value(s) for s in seeds]) for cell in CELLS}


def test_same_seeds_pair_and_find_a_shift_their_luck_would_hide():
    """Seeds whose luck spreads 2 points and a 0.5-point shift with 0.05 points of rerun noise: paired, the shift
    is found; on other seeds (the pooled two-sample t), the same shift is within chance."""
    rng = random.Random(1)
    luck = {s: rng.gauss(0, 2.0) for s in range(20)}
    before = study_at(range(8), luck, noise=0.05, rng=rng)
    after = study_at(range(8), luck, shift=-0.5, noise=0.05, rng=rng)
    paired = judge_study_shift("sigmoid_vs_relu", before, after, Tolerance(hardware=0.0))
    assert paired.test == "paired" and paired.df == 7 and not paired.passed and paired.state == "REGRESSION"
    unpaired = judge_study_shift("sigmoid_vs_relu", before, study_at(range(10, 18), luck, shift=-0.5),
                                 Tolerance(hardware=0.0))
    assert unpaired.test == "pooled" and unpaired.passed


def test_a_study_shift_pairs_only_on_three_shared_seeds_or_more():
    luck = dict.fromkeys(range(10), 0.0)
    luck.update({0: 1.0, 1: -1.0})
    two_shared = judge_study_shift("sigmoid_vs_relu", study_at(range(4), luck), study_at([0, 1, 5, 6], luck),
                                   Tolerance())
    assert two_shared.test == "pooled"
    identical = judge_study_shift("sigmoid_vs_relu", study_at(range(4), luck), study_at(range(4), luck), Tolerance())
    assert identical.test == "paired" and identical.passed and identical.state == "equivalent" and identical.p == 1


def test_equivalence_needs_the_whole_interval_inside_the_margin():
    assert equivalent(0.2, 0.1, 30, -1.0, 1.0)
    assert not equivalent(0.9, 0.1, 30, -1.0, 1.0)  # the upper end is past the margin
    assert not equivalent(0.0, 1.0, 30, -1.0, 1.0)  # too wide to say
    assert equivalent(-3.5, 0.0, 30, -4.0, 1.0)  # asymmetric limits (the data-copy allowance is downward only)


def test_equivalence_of_a_study_shift_allows_the_margin_beyond_the_hardware_allowance():
    """Between devices a shift within the allowance is no change, so "equivalent" means within the margin beyond
    it: a 1.2-point shift whose 90 % interval is 0.6-1.8 points is equivalent against a 1-point allowance (within
    1 + 1 points) and inconclusive on one device (within 1), a regression on neither."""
    luck = dict.fromkeys(range(8), 0.0)
    moved = {seed: 0.8 if seed % 2 else -0.8 for seed in range(8)}  # per-seed differences 1.2 ± 0.86
    before, after = study_at(range(8), luck), study_at(range(8), moved, shift=1.2)
    across = judge_study_shift("sigmoid_vs_relu", before, after, Tolerance(hardware=1.0))
    assert across.test == "paired" and across.passed and across.state == "equivalent"
    same = judge_study_shift("sigmoid_vs_relu", before, after, Tolerance(hardware=0.0))
    assert same.passed and same.state == "inconclusive"


@pytest.mark.parametrize("paired", [False, True])
def test_a_true_shift_at_the_margin_is_called_equivalent_at_most_five_percent_of_the_time(paired):
    """3,000 studies of 8 seeds a side (per-seed luck spread 0.5 points; rerun noise 0.3, or 0.6 paired, so that the
    shift is not a regression) whose true shift is exactly the 1-point margin (no allowance): on other
    seeds (pooled t) or the same ones (paired), "equivalent" is a miss at most EQUIVALENCE_ALPHA (5 %) of the time,
    within sampling error; with no true shift it is said most of the time, so the test can say it at all."""
    rng = random.Random(8 + paired)
    tolerance, noise = Tolerance(hardware=0.0), 0.6 if paired else 0.3

    def share_equivalent(shift):
        said = 0
        for _ in range(3000):
            luck = {s: rng.gauss(0, 0.5) for s in (*range(8), *range(100, 108))}
            before = study_at(range(8), luck, noise=noise, rng=rng)
            after = study_at(range(8) if paired else range(100, 108), luck, shift=shift, noise=noise, rng=rng)
            said += judge_study_shift("sigmoid_vs_relu", before, after, tolerance).state == "equivalent"
        return said / 3000

    assert share_equivalent(-1.0) <= 0.05 + 2.6 * (0.05 * 0.95 / 3000) ** 0.5
    assert share_equivalent(0.0) > 0.5


@pytest.mark.parametrize("spread,state", [(0.1, "equivalent"), (1.5, "inconclusive")])
def test_a_study_without_a_regression_is_equivalent_or_inconclusive(spread, state):
    rng = random.Random(2)
    before, after = ({c: record(range(start, start + 5), [40 + rng.gauss(0, spread) for _ in range(5)])
                      for c in CELLS} for start in (0, 100))
    shift = judge_study_shift("sigmoid_vs_relu", before, after, Tolerance(hardware=0.0))
    assert shift.passed and shift.state == state


def test_extending_a_cell_appends_other_seeds_and_refuses_the_same_ones():
    cell = record([0, 1], [40.0, 41.0])
    extend_cell(cell, record([2, 3], [42.0, 43.0]) | {"wall_s": 3.0, "images_per_s": 200.0, "setup_s": 0.5,
                                                       "eval_s": 0.25})
    assert cell["seeds"] == [0, 1, 2, 3] and cell["accuracy"] == [40.0, 41.0, 42.0, 43.0]
    assert cell["wall_s"] == 4.0 and cell["images_per_s"] == pytest.approx((100 + 600) / 4)
    assert (cell["setup_s"], cell["eval_s"]) == (0.6, 0.35)  # the time split `run` prints counts every round
    with pytest.raises(ResultsError, match=r"replicates of seeds \[3\] are in the cell already"):
        extend_cell(cell, record([3], [44.0]))


def grower(current, luck, shift=0.0, noise=0.0, rng=None, calls=None):
    """more() for adaptive_compare: the study's next replicates, drawn as study_at draws them."""
    def more(study, first, count):
        if calls is not None:
            calls.append((study, first, count))
        for cell_id, extra in study_at(range(first, first + count), luck, shift, noise, rng).items():
            extend_cell(current["studies"][study]["cells"][cell_id], extra)
    return more


def test_an_inconclusive_study_trains_the_baselines_next_seeds_until_it_is_decided():
    """Seed luck of 2 points and rerun noise of 0.6: at 3 paired seeds the interval is too wide for the 1-point
    margin; the baseline's next seeds narrow it to equivalent."""
    rng = random.Random(4)
    luck = {s: rng.gauss(0, 2.0) for s in range(12)}
    baseline = results(study_at(range(12), luck, noise=0.6, rng=rng))
    current = results(study_at(range(3), luck, noise=0.6, rng=rng))
    calls = []
    comparison, looks = adaptive_compare(baseline, current, Tolerance(), grower(current, luck, 0.0, 0.6, rng, calls),
                                         rounds=3, per_round={"sigmoid_vs_relu": 3})
    assert looks[0].inconclusive == ("sigmoid_vs_relu",) and calls[0] == ("sigmoid_vs_relu", 3, 3)
    assert not comparison.inconclusive and not comparison.regressed
    assert [look.replicates["sigmoid_vs_relu"] for look in looks] == [3 * (i + 1) for i in range(len(looks))]


def test_a_paired_study_stops_where_the_baseline_has_no_more_seeds():
    rng = random.Random(5)
    luck = {s: 3.0 * (-1) ** s for s in range(10)}
    baseline = results(study_at(range(4), luck, noise=0.5, rng=rng))
    current = results(study_at(range(4), luck, shift=0.8, noise=0.5, rng=rng))
    calls = []
    _, looks = adaptive_compare(baseline, current, Tolerance(), grower(current, luck, calls=calls), rounds=2,
                                per_round={"sigmoid_vs_relu": 4})
    assert next_seeds(baseline, current, "sigmoid_vs_relu", 4) == (4, 0)
    assert calls == [] and len(looks) == 1 and looks[0].exhausted == ("sigmoid_vs_relu",)
    unpaired = results(study_at(range(6, 10), luck))
    assert next_seeds(unpaired, current, "sigmoid_vs_relu", 4) == (4, 4)  # no shared seeds: new ones


def adaptive_ends(per_look_factor: int, trials: int, shift: float = 0.0, noise: float = 1.0) -> tuple[float, float]:
    """Shares of studies (other seeds each side, per-seed means spread ``noise`` points, the current run's ``shift``
    points off) that the adaptive procedure, up to 2 more rounds of 5 seeds, ends calling shifted and calling
    equivalent (margin 0.5 points), with the study shift's alpha at 0.05; ``per_look_factor`` 3 judges every look
    at the whole alpha and equivalence alpha instead of a third of each."""
    rng = random.Random(7)
    budget = 0.05 / BUDGET["study_shift"][0] * BUDGET["study_shift"][1]
    tolerance = Tolerance(alarm_budget=budget * per_look_factor, hardware=0.0, margin=0.5,
                          equivalence_alpha=EQUIVALENCE_ALPHA * per_look_factor)
    alarms = equivalents = 0
    luck = dict.fromkeys(range(1000, 1100), 0.0) | dict.fromkeys(range(100), 0.0)
    for _ in range(trials):
        baseline = results(study_at(range(1000, 1015), luck, noise=noise, rng=rng))
        current = results(study_at(range(5), luck, shift=shift, noise=noise, rng=rng))
        for cell in CELLS[1:]:  # cells move together by seed: one draw per seed
            for side in (baseline, current):
                side["studies"]["sigmoid_vs_relu"]["cells"][cell]["accuracy"] = \
                    list(side["studies"]["sigmoid_vs_relu"]["cells"][CELLS[0]]["accuracy"])
        def more(study, first, count):
            extra = [40.0 + shift + rng.gauss(0, noise) for _ in range(count)]
            for cell in CELLS:
                extend_cell(current["studies"][study]["cells"][cell], record(range(first, first + count), extra))
        comparison, _ = adaptive_compare(baseline, current, tolerance, more, rounds=2,
                                         per_round={"sigmoid_vs_relu": 5}, throughput_limit=0.0)
        shifts = [s for s in comparison.shifts if s.metric == "accuracy"]
        alarms += any(not s.passed for s in shifts)
        equivalents += any(s.state == "equivalent" for s in shifts)
    return alarms / trials, equivalents / trials


def test_the_sequential_procedure_keeps_its_false_alarm_rate_and_would_not_without_the_split():
    """Under no change, the adaptive study shift ends as a false alarm at most alpha (0.05) of the time; judging
    every look at the full alpha instead (no Bonferroni over looks) raises the rate beyond it."""
    trials = 800
    (kept, _), (naive, _) = adaptive_ends(1, trials), adaptive_ends(3, trials)
    slack = 2.6 * (0.05 * 0.95 / trials) ** 0.5
    assert kept <= 0.05 + slack
    assert naive > 0.05 + slack and naive > kept + 0.02


def test_the_sequential_procedure_calls_a_shift_of_the_margin_equivalent_at_most_five_percent_of_the_time():
    """A study stops at the first look that shows it equivalent, so each look's chance to call a true shift of the
    margin equivalent adds up: split over the looks, the end is a miss at most EQUIVALENCE_ALPHA of the time;
    every look at the whole alpha, more often.  Under no change the split still ends most studies equivalent."""
    trials = 1000
    (_, kept), (_, naive) = adaptive_ends(1, trials, -0.5, 0.5), adaptive_ends(3, trials, -0.5, 0.5)
    slack = 2.6 * (0.05 * 0.95 / trials) ** 0.5
    assert kept <= EQUIVALENCE_ALPHA and naive > EQUIVALENCE_ALPHA + slack
    assert adaptive_ends(1, 300, 0.0, 0.3)[1] > 0.5


def test_run_with_a_baseline_judges_and_adaptive_adds_rounds(capsys, tmp_path, tiny_npz, run_norm_cells):
    """End to end on CPU: the run is compared with its baseline (the same two seeds: too few to pair), the
    study is inconclusive at two replicates, and --adaptive trains two new seeds before the last look."""
    baseline = run_norm_cells(tmp_path / "baseline.json")
    code = main(["run", "batchnorm_vs_groupnorm", "--data", str(tiny_npz), "--device", "cpu", "--profile", "smoke",
                 "--replicates", "2", "--cell", "batch_size=64-batchnorm", "--cell", "batch_size=64-groupnorm",
                 "--baseline", str(baseline), "--adaptive", "--max-rounds", "1", "--out",
                 str(tmp_path / "r.json")])
    out, err = capsys.readouterr()
    assert code == 0 and "2 cells compared: 0 outside their band" in out
    assert "(alarm budget 0.5% per look of at most 2 (1% per run): a decision fails at adjusted p < 0.005;" in out
    assert "look 1 of at most 2 (replicates per cell: batchnorm_vs_groupnorm 2): inconclusive" in err
    assert "training 2 more replicates per cell (seeds 84037-84038)" in err
    assert "look 2 of at most 2 (replicates per cell: batchnorm_vs_groupnorm 4)" in err
    cells = read_results(tmp_path / "r.json")["studies"]["batchnorm_vs_groupnorm"]["cells"]
    assert [len(c["accuracy"]) for c in cells.values()] == [4, 4]
    assert cells["batch_size=64-batchnorm"]["seeds"] == [84035, 84036, 84037, 84038]


def test_run_with_a_baseline_but_without_adaptive_trains_no_more_rounds(capsys, tmp_path, tiny_npz, run_norm_cells):
    """The same inconclusive study, without --adaptive: one look, and the run's own replicates only."""
    baseline = run_norm_cells(tmp_path / "baseline.json")
    code = main(["run", "batchnorm_vs_groupnorm", "--data", str(tiny_npz), "--device", "cpu", "--profile", "smoke",
                 "--replicates", "2", "--cell", "batch_size=64-batchnorm", "--cell", "batch_size=64-groupnorm",
                 "--baseline", str(baseline), "--out", str(tmp_path / "r.json")])
    out, err = capsys.readouterr()
    assert code == 0 and "inconclusive" in out and "more replicates" not in err and "look " not in err
    cells = read_results(tmp_path / "r.json")["studies"]["batchnorm_vs_groupnorm"]["cells"]
    assert [len(c["accuracy"]) for c in cells.values()] == [2, 2]


BASELINE = str(Path(__file__).resolve().parent.parent / "bench" / "recorded" / "h200-bench.json")


@pytest.mark.parametrize("argv,message", [
    (["--adaptive"], "--adaptive needs --baseline FILE"),
    (["--replicates", "weekly"],
     "argument --replicates: 'weekly' is not a plan (pr, nightly, null) or a whole number"),
    (["--baseline", BASELINE, "--profile", "smoke"], "ran the full profile; run --profile full"),
    (["--baseline", BASELINE, "--format", "json"], "--baseline prints its verdicts as tables"),
])
def test_bad_adaptive_options_are_one_line(capsys, argv, message):
    assert main(["run", "sigmoid_vs_relu", "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_baseline_without_the_study_is_refused_before_training(capsys, tmp_path):
    results = read_results(BASELINE)
    del results["studies"]["sigmoid_vs_relu"]
    (tmp_path / "b.json").write_text(json.dumps(results))
    assert main(["run", "sigmoid_vs_relu", "--device", "cpu", "--baseline", str(tmp_path / "b.json")]) == 2
    assert "holds none of the studies to run (it holds batchnorm_vs_groupnorm, conv_activation_norm_position)" in \
        capsys.readouterr().err


def test_the_paired_test_keeps_its_rate_with_heavy_tailed_rerun_noise():
    """Seed luck of 2 points and rerun noise from Student's t on 3 df (heavier tails than the test assumes): an
    unchanged study alarms at about its alpha (0.05 here), not more."""
    rng = random.Random(11)
    tolerance = Tolerance(alarm_budget=0.05 / BUDGET["study_shift"][0] * BUDGET["study_shift"][1], hardware=0.0)
    trials, alarms = 3000, 0
    for _ in range(trials):
        luck = [rng.gauss(0, 2.0) for _ in range(8)]
        noise = [[0.1 * rng.gauss(0, 1) / (rng.gammavariate(1.5, 2.0) / 3) ** 0.5 for _ in range(8)] for _ in range(2)]
        before, after = ({c: record(range(8), [40 + luck[s] + side[s] for s in range(8)]) for c in CELLS}
                         for side in noise)
        alarms += not judge_study_shift("sigmoid_vs_relu", before, after, tolerance).passed
    assert alarms / trials <= 0.05 + 2.6 * (0.05 * 0.95 / trials) ** 0.5


def test_a_baseline_of_other_data_is_said_after_the_runs_tables(capsys, tmp_path, tiny_npz, run_norm_cells):
    baseline = read_results(run_norm_cells(tmp_path / "baseline.json"))
    baseline["studies"]["batchnorm_vs_groupnorm"]["data_checksum"] = "0" * 16
    (tmp_path / "other.json").write_text(json.dumps(baseline))
    code = main(["run", "batchnorm_vs_groupnorm", "--data", str(tiny_npz), "--device", "cpu", "--profile", "smoke",
                 "--replicates", "2", "--quiet", "--cell", "batch_size=64-batchnorm", "--baseline",
                 str(tmp_path / "other.json")])
    out, err = capsys.readouterr()
    assert code == 2 and "batch_size" in out  # the table
    assert err.startswith(f"ablation: error: --baseline {tmp_path / 'other.json'}: batchnorm_vs_groupnorm was measured "
                          "on different data") and err.count("\n") == 1


@given(change=st.floats(-5, 5), se=st.floats(0.0, 3.0), df=st.floats(1, 200), margin=st.floats(0.1, 5))
def test_equivalence_is_symmetric_and_never_claimed_beyond_the_margin(change, se, df, margin):
    same = equivalent(change, se, df, -margin, margin)
    assert same == equivalent(-change, se, df, -margin, margin)
    if same:
        assert abs(change) <= margin
        assert equivalent(change, se / 2, df, -margin, margin)  # a narrower interval stays inside
