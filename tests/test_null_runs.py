"""bench/null_runs.py: one large run cut into independent pseudo-runs of the bench, and their false-alarm rates."""

import copy
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ablation.compare import judge_study_shift
from ablation.results import PER_REPLICATE, read_results
from ablation.studies import get_study
from ablation.verdict import Tolerance
from bench.false_alarms import RECORDED, draw, fit
from bench.null_runs import (adaptive_power, adaptive_rates, adaptive_run, blocks, dropped, main, null_rates,
                             rates_table, resample, resampled_power, resampled_rates, wilson)

REPLICATES = 40


@pytest.fixture(scope="module")
def big():
    """The H200 bench run grown to 40 replicates per cell, drawn from the null model's fit."""
    rng = random.Random(3)
    results = read_results(RECORDED / "h200-bench.json")
    for model in fit():
        record = results["studies"][model.study]["cells"][model.cell]
        drawn = draw(model.centre(), REPLICATES, rng)
        record.update(drawn, seeds=list(range(REPLICATES)), skipped_steps=[0] * REPLICATES)
        record.setdefault("final_loss", [1.0] * REPLICATES)
        if len(record["final_loss"]) != REPLICATES:
            record["final_loss"] = [1.0] * REPLICATES
    return results


def rerun(results, shift=0.0, study="sigmoid_vs_relu"):
    """The same seeds trained again: each replicate moved by rerun noise of 0.05 points, ``shift`` in ``study``."""
    rng = random.Random(4)
    again = copy.deepcopy(results)
    for name, entry in again["studies"].items():
        for record in entry["cells"].values():
            record["accuracy"] = [a + rng.gauss(0, 0.05) + (shift if name == study and a > 11 else 0.0)
                                  for a in record["accuracy"]]
    return again


def test_blocks_are_disjoint_seeds_of_the_plans_counts(big):
    parts = blocks(big, "pr")
    counts = {name: sum(name in p["studies"] for p in parts) for name in big["studies"]}
    assert counts == {"sigmoid_vs_relu": 8, "batchnorm_vs_groupnorm": 5, "conv_activation_norm_position": 13}
    seeds = [tuple(p["studies"]["batchnorm_vs_groupnorm"]["cells"]["batch_size=2-batchnorm"]["seeds"]) for p in parts[:5]]
    assert seeds[1] == tuple(range(8, 16)) and len(set(s for block in seeds for s in block)) == 40
    whole = big["studies"]["sigmoid_vs_relu"]["cells"]["blocks=1-relu"]
    assert parts[0]["studies"]["sigmoid_vs_relu"]["cells"]["blocks=1-relu"]["wall_s"] == pytest.approx(
        whole["wall_s"] * 5 / 40)
    assert len(blocks(big, "nightly")) == 2  # 40 // 16 Sigmoid/ReLU blocks, norm likewise, the order study 1


def test_a_run_of_the_null_plan_is_five_pseudo_runs_of_every_study(big):
    """run all --replicates null: five times each study's pr count, so every study gives exactly five blocks."""
    null = copy.deepcopy(big)
    for name, entry in null["studies"].items():
        n = get_study(name).replicates_for("null")
        for cell_id, record in entry["cells"].items():
            entry["cells"][cell_id] = dict(record, **{key: record[key][:n] for key in PER_REPLICATE if key in record})
    parts = blocks(null, "pr")
    assert len(parts) == 5 and all(set(p["studies"]) == set(null["studies"]) for p in parts)


def test_the_rates_count_pseudo_runs_and_a_same_seed_shift_is_caught_in_every_block(big):
    rates = null_rates([big], [rerun(big)])
    assert rates["documented table"]["any"][1] == 5 and rates["other seeds"]["any"][1] == 2
    assert rates["same seeds"]["study_shift"] == (0, 5)
    shifted = null_rates([big], [rerun(big, shift=-0.6)])
    assert shifted["same seeds"]["study_shift"] == (5, 5)  # paired: 0.6 points against 0.05 of rerun noise


def test_same_seed_reruns_measure_the_same_training_gate_outside_the_whole_pseudo_runs_rate(big):
    """Rerun noise within the floor (0.05 points) trips no gate; one replicate's final loss 0.1 % off in one
    pseudo-run trips --same-training's there and no statistical decision, so the whole pseudo-run's rate (the
    alarm budget's) stays 0."""
    assert null_rates([big], [rerun(big)])["same seeds"]["same_training"] == (0, 5)
    again = rerun(big)
    record = again["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]
    record["final_loss"] = [record["final_loss"][0] * 1.001] + record["final_loss"][1:]
    rates = null_rates([big], [again])["same seeds"]
    assert rates["same_training"] == (1, 5) and rates["any"] == (0, 5)
    assert "same_training" not in null_rates([big])["other seeds"]  # no shared seeds: not judged, no row


def test_each_alarm_is_counted_under_its_own_decision(big):
    """A bimodal cell whose learned runs all end at chance in a rerun is the share-at-chance test's alarm, not the
    band's; a training loss 1 % higher in every Sigmoid/ReLU run is the study's loss shift's (paired, on identical
    reruns), which no cell's unpaired loss test sees."""
    runs, again = copy.deepcopy(big), rerun(big)
    before, after = (r["studies"]["batchnorm_vs_groupnorm"]["cells"]["batch_size=4-groupnorm"] for r in (runs, again))
    before["accuracy"][:8], before["collapsed"][:8] = [40.0] * 8, [False] * 8
    after["accuracy"][:8], after["collapsed"][:8] = [10.0] * 8, [True] * 8
    rates = null_rates([runs], [again])["same seeds"]
    assert rates["chance_share"] == (1, 5) and rates["baseline_cell"] == (0, 5)
    again = rerun(big)
    for record in again["studies"]["sigmoid_vs_relu"]["cells"].values():
        record["final_loss"] = [loss * 1.01 for loss in record["final_loss"]]
    rates = null_rates([big], [again])["same seeds"]
    assert rates["metric"][0] >= 1 and rates["baseline_cell"] == (0, 5)


def other_seeds(results, offset=1000, shift=0.0, study="sigmoid_vs_relu"):
    """The run with every seed moved by ``offset`` and its accuracies redrawn around their own (a run of other
    seeds of the same code), ``shift`` added in ``study``."""
    rng = random.Random(5)
    again = copy.deepcopy(results)
    for name, entry in again["studies"].items():
        for record in entry["cells"].values():
            record["seeds"] = [seed + offset for seed in record["seeds"]]
            record["accuracy"] = [rng.choice(record["accuracy"]) + (shift if name == study else 0.0)
                                  for _ in record["accuracy"]]
    return again


def test_a_resampled_pseudo_run_is_the_plans_count_of_one_runs_seeds_the_same_in_every_cell(big):
    part = resample(big, "pr", random.Random(0))
    for name, entry in part["studies"].items():
        seeds = {tuple(record["seeds"]) for record in entry["cells"].values()}
        assert len(seeds) == 1 and len(set(*seeds)) == get_study(name).replicates_for("pr")
        for cell_id, record in entry["cells"].items():
            whole = big["studies"][name]["cells"][cell_id]
            assert record["accuracy"] == [whole["accuracy"][whole["seeds"].index(seed)] for seed in record["seeds"]]
    drawn = {tuple(resample(big, "pr", random.Random(i))["studies"]["sigmoid_vs_relu"]["cells"]["blocks=1-relu"]
                   ["seeds"]) for i in range(5)}
    assert len(drawn) == 5  # at random, not the first block every time


def test_resampling_compares_runs_with_each_other_so_a_shifted_run_alarms_and_an_unshifted_one_does_not(big):
    """Every draw takes its baseline and its current run from different runs: against a run 3 points lower in the
    Sigmoid/ReLU study, nearly every draw's study shift alarms; against one of the same code, almost none."""
    same = resampled_rates([big, other_seeds(big)], 40, seed=1)["other seeds, resampled"]
    shifted = resampled_rates([big, other_seeds(big, shift=-3.0)], 40, seed=1)["other seeds, resampled"]
    assert same["study_shift"][0] <= 2 and shifted["study_shift"][0] >= 36
    assert shifted["study_shift"][1] == 40
    with pytest.raises(ValueError, match="resampling needs two runs or more"):
        resampled_rates([big], 10)
    with pytest.raises(ValueError, match="two runs share seeds; resampling needs runs of other seeds"):
        resampled_power([big, rerun(big)], 10)  # a rerun would pair with its run: a same-seed comparison


def test_resampled_rates_are_printed_without_an_interval(capsys):
    runs = [str(RECORDED / f"h200-null-{i}.json") for i in (1, 2)]
    table = main([*runs, "--resample", "3"])
    rows = [line for line in table.splitlines() if "resampled |" in line]
    assert rows and all("(" not in row for row in rows)
    assert "| other seeds, resampled | whole pseudo-run | 3 |" in table
    with pytest.raises(SystemExit) as stop:
        main([*runs, "--resample", "0"])
    assert stop.value.code == 2 and "--resample needs at least 1 draw, not 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def null_runs():
    return [read_results(RECORDED / f"h200-null-{i}.json") for i in (1, 2)]


def test_the_power_stated_for_the_study_shift_holds_on_the_null_runs_resampled(null_runs):
    """The shift `power` states at the pr counts (from the null runs' pooled per-seed spread: docs/statistics.md's
    held-out power), planted as a drop into resampled runs of real seeds, is found about 80 % of the time in every
    study: the t-test's power survives the runs' skew and correlated cells.  The shift stated for 0.1 % power (about
    none) is found about as often as the study shift's alpha."""
    measured = resampled_power(null_runs, 150, seed=3)
    assert {name: (n, round(shift, 2)) for name, (n, shift, _, _) in measured.items()} == {
        "sigmoid_vs_relu": (5, 1.64), "batchnorm_vs_groupnorm": (8, 1.87), "conv_activation_norm_position": (3, 5.35)}
    assert all(0.7 <= found / 150 <= 0.93 for _, _, found, _ in measured.values()), measured
    assert all(found <= 3 for _, _, found, _ in resampled_power(null_runs, 150, power=0.001, seed=3).values())


def test_a_drop_of_the_margin_is_rarely_called_equivalent_and_no_drop_mostly_is(null_runs):
    """TOST at the margin: at most EQUIVALENCE_ALPHA (5 %) of the draws call a 1-point drop equivalent on the real
    runs' spread, in every study; the same draws with nothing dropped are equivalent in most Sigmoid/ReLU ones."""
    measured = resampled_power(null_runs, 150, seed=4)
    assert all(equivalent / 150 <= 0.08 for _, _, _, equivalent in measured.values()), measured
    rng, same_device, name = random.Random(4), Tolerance(hardware=0.0), "sigmoid_vs_relu"
    unmoved = 0
    for _ in range(50):
        before, after = (resample(run, "pr", rng)["studies"][name]["cells"] for run in rng.sample(null_runs, 2))
        unmoved += judge_study_shift(name, before, dropped(name, before, after, 0.0), same_device).equivalent
    assert unmoved > 35


def test_the_adaptive_procedure_on_real_runs_trains_more_seeds_only_where_a_study_is_in_doubt(null_runs):
    """run --adaptive on pseudo-runs of the null runs: a drop of 5 points in Sigmoid/ReLU ends a regression at the
    first look, on the plan's 5 seeds; a drop near the stated power's shift is often in doubt at first, takes more
    seeds (at most the plan's count times the looks, 15) and ends more often caught than a single look catches it."""
    tolerance = Tolerance(hardware=0.0)

    def last_shift(drop, rng):
        before = resample(null_runs[1], "pr", rng)
        comparison = adaptive_run(before, null_runs[0], "pr", 2, rng, tolerance, {"sigmoid_vs_relu": drop})
        return next(s for s in comparison.shifts if s.study == "sigmoid_vs_relu" and s.metric == "accuracy")

    rng = random.Random(5)
    assert all(not s.passed and s.seeds == (5, 5) for s in (last_shift(5.0, rng) for _ in range(10)))
    near = [last_shift(1.5, rng) for _ in range(40)]
    assert {s.seeds[1] for s in near} <= {5, 10, 15} and sum(s.seeds[1] > 5 for s in near) >= 10
    caught_adaptive = sum(not s.passed for s in near)
    caught_once = sum(not judge_study_shift("sigmoid_vs_relu", before["studies"]["sigmoid_vs_relu"]["cells"],
                                            dropped("sigmoid_vs_relu", before["studies"]["sigmoid_vs_relu"]["cells"],
                                                    after["studies"]["sigmoid_vs_relu"]["cells"], 1.5),
                                            tolerance).passed
                      for before, after in ((resample(null_runs[1], "pr", rng), resample(null_runs[0], "pr", rng))
                                            for _ in range(40)))
    assert caught_adaptive > caught_once + 4


def test_the_adaptive_procedures_power_and_equivalence_misses_on_the_null_runs(null_runs):
    """Every study's stated shift is found at least as often as by one look, and a drop of the margin is called
    equivalent within TOST's 5 % (docs/statistics.md takes 4,000 draws)."""
    draws = 60
    adaptive = adaptive_power(null_runs, draws, "pr", 2, seed=3)
    once = resampled_power(null_runs, draws, seed=3)
    assert set(adaptive) == set(once)
    for name, (found, equivalent) in adaptive.items():
        assert found >= once[name][2] and equivalent <= 0.05 * draws + 2.6 * (0.05 * 0.95 * draws) ** 0.5, name


def test_what_the_adaptive_procedure_costs_on_unchanged_runs_is_counted(null_runs):
    """Unchanged runs against a baseline of other seeds: Sigmoid/ReLU's 5 seeds mostly settle it, while the order
    study's 3 seldom show its shift within the 1-point margin (per-seed sd about 0.9), so it mostly trains both
    extra rounds; the whole run raises no alarm (docs/statistics.md takes 5,000 draws)."""
    alarms, used = adaptive_rates(null_runs, 40, "pr", 2, seed=2)
    assert alarms["any"] == (0, 40)
    assert set(used["conv_activation_norm_position"]) <= {3, 6, 9} and used["conv_activation_norm_position"][9] >= 30
    assert set(used["sigmoid_vs_relu"]) <= {5, 10, 15} and used["sigmoid_vs_relu"][5] >= 25
    assert sum(used["batchnorm_vs_groupnorm"].values()) == 40
    text = main([str(RECORDED / f"h200-null-{i}.json") for i in (1, 2)] + ["--resample", "4", "--adaptive", "1"])
    assert "| other seeds, --adaptive with 1 more round, resampled | whole pseudo-run | 4 |" in text
    assert "run --adaptive's seeds per cell at its last look: sigmoid_vs_relu " in text
    assert "conv_activation_norm_position 3 in " in text or "conv_activation_norm_position 6 in " in text


def test_adaptive_rounds_the_runs_cannot_hold_or_without_draws_are_refused_in_one_line(capsys):
    runs = [str(RECORDED / f"h200-null-{i}.json") for i in (1, 2)]
    for args, message in ((["--resample", "5", "--adaptive", "5"],
                           "a run holds 25 replicates of sigmoid_vs_relu, fewer than the 30 that 5 more rounds of "
                           "the pr plan's count can take; ask for fewer --adaptive rounds"),
                          (["--adaptive", "2"], "--adaptive takes a number of rounds, 1 or more, and goes with"),
                          (["--power", "5", "--adaptive", "-1"], "--adaptive takes a number of rounds")):
        with pytest.raises(SystemExit) as stop:
            main([*runs, *args])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and message in err and "Traceback" not in err, (args, err)


def test_the_power_table_names_a_study_the_runs_cannot_measure_at_the_plans_counts(null_runs):
    """The order study's nightly count is 24; a null run holds 15 of its replicates."""
    table = main([str(RECORDED / f"h200-null-{i}.json") for i in (1, 2)] + ["--power", "5", "--replicates", "nightly"])
    assert "| sigmoid_vs_relu | 16 | 0.67 points | 5 |" in table and "called equivalent |" in table
    assert "| conv_activation_norm_position | 24 | not measured: a run holds fewer replicates than the plan's" in table


def test_power_is_measured_on_the_runs_alone(capsys):
    runs = [str(RECORDED / f"h200-null-{i}.json") for i in (1, 2)]
    with pytest.raises(SystemExit) as stop:
        main([*runs, "--power", "5", "--same-seeds", *runs])
    assert stop.value.code == 2 and "--power measures the power on the runs alone" in capsys.readouterr().err


def test_the_table_states_each_rate_with_its_interval(big, tmp_path):
    assert wilson(0, 20)[0] == 0 and wilson(0, 20)[1] == pytest.approx(0.161, abs=0.001)
    text = rates_table({"same seeds": {"study_shift": (1, 20), "any": (1, 20)}})
    assert "| same seeds | study_shift | 20 | 1 | 5.0% (0.9% - 23.6%) |" in text
    assert "| same seeds | whole pseudo-run | 20 | 1 |" in text


def test_a_run_too_small_to_cut_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(RECORDED / "h200-bench.json")])
    assert stop.value.code == 2
    assert "fewer than two pseudo-runs of the pr plan's replicates per cell; train more" in capsys.readouterr().err


def test_the_null_plan_is_what_is_cut_not_what_cuts(capsys):
    """--replicates names the plan whose counts cut the blocks; the null plan's runs are cut by pr's."""
    with pytest.raises(SystemExit) as stop:
        main([str(RECORDED / "h200-run-nightly.json"), "--replicates", "null"])
    err = capsys.readouterr().err  # argparse quotes the choices or not, by Python version
    assert stop.value.code == 2 and "invalid choice: 'null' (choose from " in err and "null" not in err.split("from")[1]


def test_reruns_that_do_not_match_the_runs_are_refused_in_one_line(capsys):
    """Two runs of other seeds and a same-seed rerun of only the first: every run needs its rerun."""
    with pytest.raises(SystemExit) as stop:
        main([str(RECORDED / "h200-bench.json"), str(RECORDED / "h200-repeat.json"), "--same-seeds",
              str(RECORDED / "h200-bench-graphs.json")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "the same-seed reruns hold 1 pseudo-run, the runs 2; give one rerun per run, in the same order, each with its "
        "run's seeds")


def test_reruns_in_another_order_are_refused_rather_than_judged_as_same_seed_pairs(capsys):
    """Given in the wrong order, a rerun pairs with a run of other seeds: its comparison would be the two-sample
    one, counted as a same-seed pair."""
    runs = [str(RECORDED / "h200-bench.json"), str(RECORDED / "h200-repeat.json")]
    with pytest.raises(SystemExit) as stop:
        main([*runs, "--same-seeds", *reversed(runs)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "a same-seed rerun trained other seeds than its run; give the reruns in the runs' order, each with its run's "
        "seeds")


def test_runs_of_other_seeds_add_pseudo_runs_and_shared_seeds_are_refused(big):
    """The recorded independent H200 runs (offsets 0 and 1000) are one pseudo-run each; a run twice is refused."""
    rates = null_rates([read_results(RECORDED / "h200-bench.json"), read_results(RECORDED / "h200-repeat.json")])
    assert rates["documented table"]["any"] == (0, 2) and rates["other seeds"]["any"] == (0, 1)
    with pytest.raises(ValueError, match="two pseudo-runs share seeds"):
        null_rates([big, big])
    with pytest.raises(ValueError, match="two pseudo-runs share seeds"):  # blocks that overlap, not equal
        null_rates([big, other_seeds(big, offset=1)])


@given(replicates=st.integers(1, 30), plan=st.sampled_from(["pr", "nightly", 2, 7]))
@settings(max_examples=30, deadline=None)
def test_blocks_partition_the_first_whole_blocks_of_seeds(replicates, plan):
    """However many replicates a run holds, its blocks are disjoint, each of the plan's count, and together the
    first whole blocks' worth of its seeds."""
    study = get_study("conv_activation_norm_position")
    n = study.replicates_for(plan)
    cells = {c.id: {"seeds": list(range(replicates)), "accuracy": [50.0] * replicates, "collapsed": [False] * replicates,
                    "wall_s": 1.0} for c in study.cells}
    parts = blocks({"profile": "full", "studies": {study.name: {"cells": cells}}}, plan)
    seeds = [s for p in parts for s in p["studies"][study.name]["cells"]["order=conv_bn_relu"]["seeds"]]
    assert len(parts) == replicates // n and seeds == list(range(n * (replicates // n)))


def test_the_recorded_gpu_null_runs_raise_no_false_alarm():
    """The measurement docs/statistics.md reports: two H200 runs of the null plan (c5dc948) and the two earlier
    runs of seeds of their own (the nightly run, h200-repeat) are 13 pseudo-runs of the bench, none of which alarms
    against the documented table, and 6 disjoint pairs on other seeds, none of which alarms against each other."""
    runs = [read_results(RECORDED / f"h200-{name}.json") for name in ("null-1", "null-2", "run-nightly", "repeat")]
    rates = null_rates(runs)
    assert rates["documented table"]["any"] == (0, 13) and rates["other seeds"]["any"] == (0, 6)
    assert all(count == (0, 13) for count in rates["documented table"].values())
    assert all(count == (0, 6) for count in rates["other seeds"].values())
