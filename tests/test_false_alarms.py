"""The whole bench's false-alarm rate, simulated from the recorded runs (bench.false_alarms), within its budget."""

import pytest
import torch

from ablation.verdict import BUDGET, Tolerance, check_against_baseline
from bench.false_alarms import DIFFERENCE_SHAPES, KINDS, fit, main, paired_alarms, paired_cell_alarms, simulate


@pytest.fixture(scope="module")
def rates():
    return simulate(500, seed=2026)


def test_a_whole_bench_run_raises_a_false_alarm_less_often_than_its_budget(rates):
    """Documented table, baseline cells, shares at chance, study shifts, findings and throughput together; the
    rules this replaced gave about 15 % per run in the same kind of simulation."""
    assert rates["any"] <= Tolerance().alarm_budget
    assert all(rates[kind] <= rates["any"] for kind in KINDS)


def test_the_null_model_rests_on_the_two_independent_seed_runs_only():
    models = fit()
    assert len(models) == 33 and all(m.runs == 2 * m.replicates for m in models)
    bn2 = next(m for m in models if m.cell == "batch_size=2-batchnorm")
    assert (bn2.chance, bn2.df) == (13, 1)  # 3 of 16 runs learned, in two runs: the weakest-known cell


def test_a_larger_budget_raises_more_alarms_so_the_simulation_can_fail():
    loose = simulate(150, Tolerance(alarm_budget=0.5), seed=1)
    assert loose["any"] > 0.05


def test_the_command_prints_each_kind_and_the_whole_run():
    table = main(["--runs", "20"])
    assert all(f"| {kind} |" in table for kind in KINDS) and "| whole run | budget 1% |" in table


def test_the_vectorized_paired_rule_is_the_cells_own():
    """The paired simulation decides as check_against_baseline does, on draws near the edge of the band (alpha
    5 % for the band here, so about half of these alarm)."""
    budget = 0.1 * BUDGET["baseline_cell"][1] / BUDGET["baseline_cell"][0]
    tolerance = Tolerance(alarm_budget=budget, hardware=0.0)
    generator = torch.Generator().manual_seed(4)
    differences = torch.randn(200, 12, generator=generator, dtype=torch.float64) + 0.6
    flags = paired_alarms(differences, tolerance.alpha("baseline_cell") / 2).tolist()
    seeds = list(range(12))
    baseline = {"accuracy": [40.0 + s for s in seeds], "collapsed": [False] * 12, "seeds": seeds}
    own = [not check_against_baseline("sigmoid_vs_relu", "blocks=4-relu",
                                      dict(baseline, accuracy=[b + d for b, d in zip(baseline["accuracy"], row)]),
                                      baseline, tolerance).passed for row in differences.tolist()]
    assert flags == own and 40 < sum(own) < 160


def test_the_paired_rate_is_its_alpha_for_normal_differences():
    """At an alpha of 5 % (a large budget), 20,000 draws of 12 normal differences: 5 %, within sampling error."""
    budget = 0.1 * BUDGET["baseline_cell"][1] / BUDGET["baseline_cell"][0]
    rate = paired_cell_alarms(12, "normal", 20_000, Tolerance(alarm_budget=budget)) / 20_000
    assert 0.045 < rate < 0.055, rate


def test_the_paired_table_names_every_shape_and_count():
    table = main(["--paired", "1000"])
    assert all(f"| {shape} |" in table for shape in DIFFERENCE_SHAPES)
    assert "| differences | 12 pairs | 16 pairs | 24 pairs |" in table
