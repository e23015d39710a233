"""The whole bench's false-alarm rate, simulated from the recorded runs (bench.false_alarms), within its budget; the
paired, two-sample and finding rules at their alphas."""

import math
import random
from pathlib import Path

import pytest
import torch

import ablation
from ablation.compare import judge_study_shift, metric_values
from ablation.studies import get_study
from ablation.verdict import BUDGET, LOSS_METRICS, Tolerance, check_against_baseline
from bench.false_alarms import (DIFFERENCE_SHAPES, FITTED_ON, KINDS, RECORDED, contrast_alarms, draw, fit, main,
                                paired_alarms, paired_cell_alarms, simulate, t_beyond, two_sample_alarms)


@pytest.fixture(scope="module")
def rates():
    return simulate(500, seed=2026)


def test_a_whole_bench_run_raises_a_false_alarm_less_often_than_its_budget(rates):
    """Documented table, baseline cells, shares at chance, study shifts, findings and throughput together: in 500
    simulated runs, no more alarms than a rate at the budget gives with probability 0.1 % (exact tests spend most of
    the budget, so the estimate itself sits near it). The usual shortcuts (docs/statistics.md) give about 15 % per
    run in the same kind of simulation, which fails this by far."""
    runs, budget = 500, Tolerance().alarm_budget
    alarms = round(rates["any"] * runs)
    as_many_at_the_budget = sum(math.comb(runs, x) * budget ** x * (1 - budget) ** (runs - x)
                                for x in range(alarms, runs + 1))
    assert as_many_at_the_budget > 0.001, (alarms, as_many_at_the_budget)
    assert all(rates[kind] <= rates["any"] for kind in KINDS)


def test_the_null_model_is_fitted_on_runs_that_no_constant_of_the_rules_was_fitted_to():
    """The default fit is the null runs, held out: the package's constants name the runs they were fitted on, and
    none is a null run.  Every cell whose runs learn draws all three loss metrics; bimodal cells draw none."""
    sources = " ".join(path.read_text() for path in (Path(ablation.__file__).parent).glob("*.py"))
    assert FITTED_ON == ("h200-null-1.json", "h200-null-2.json") and "h200-bench.json" in sources
    assert not any(name in sources for name in FITTED_ON)
    models = fit()
    assert len(models) == 33 and all(m.runs == 2 * get_study(m.study).replicates_for("null") for m in models)
    assert {m.losses for m in models if m.cell.startswith(("batch_size=2-", "batch_size=4-"))} == {()}
    assert {m.losses for m in models if not m.cell.startswith(("batch_size=2-", "batch_size=4-"))} == {LOSS_METRICS}
    bn2 = next(m for m in models if m.cell == "batch_size=2-batchnorm")
    assert (bn2.chance, bn2.runs) == (69, 80)


def test_a_fit_on_runs_without_curves_draws_the_final_loss_alone():
    models = fit([RECORDED / "h200-bench.json", RECORDED / "h200-repeat.json"])
    assert {m.losses for m in models} == {(), ("final_loss",)}
    bn2 = next(m for m in models if m.cell == "batch_size=2-batchnorm")
    assert (bn2.chance, bn2.df) == (13, 1)  # 3 of 16 runs learned, in two runs: the weakest-known cell
    assert "32 of 96" in main(["--runs", "5", "--fit", str(RECORDED / "h200-bench.json"),
                               str(RECORDED / "h200-repeat.json")])


def test_drawn_loss_metrics_keep_the_fitted_covariance():
    """The three losses of a run move together (the final and mean training loss closely): draws must keep the
    fitted covariance of their logs, not only each one's spread."""
    model = next(m for m in fit() if m.cell == "blocks=8-relu")
    record = draw(model.centre(), 4000, random.Random(0))
    logs = torch.tensor([metric_values(record, metric) for metric in model.losses], dtype=torch.float64)
    fitted = torch.tensor(model.log_loss_root, dtype=torch.float64)
    fitted = fitted @ fitted.T
    drawn = torch.cov(logs)
    assert torch.allclose(drawn, fitted, rtol=0.1, atol=0.05 * fitted.diagonal().min().item())
    correlation = fitted[0, 1] / (fitted[0, 0] * fitted[1, 1]).sqrt()
    assert 0.3 < correlation < 1.0  # final and mean training loss: the case a diagonal draw would get wrong


def test_a_fit_needs_every_documented_cell():
    with pytest.raises(ValueError, match=r"lacks sigmoid_vs_relu\[blocks=1-sigmoid\]; fit on runs of the whole"):
        fit([RECORDED / "cpu-order-full-1rep.json"])


def test_a_larger_budget_raises_more_alarms_so_the_simulation_can_fail():
    loose = simulate(150, Tolerance(alarm_budget=0.5), seed=1)
    assert loose["any"] > 0.05


def test_the_command_prints_each_kind_and_the_whole_run():
    table = main(["--runs", "20"])
    assert all(f"| {kind} |" in table for kind in KINDS) and "| whole run | budget 1% |" in table
    assert "fitted on h200-null-1.json, h200-null-2.json" in table and "96 of 96" in table


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


def test_the_vectorized_study_shift_on_other_seeds_is_the_benchs_own():
    """two_sample_alarms("pooled") decides as judge_study_shift does for runs that share no seed, near the edge
    (a study alpha of 5 % here): each seed's mean is its value in both cells of the study."""
    tolerance = Tolerance(alarm_budget=0.05 * BUDGET["study_shift"][1] / BUDGET["study_shift"][0], hardware=0.0)
    generator = torch.Generator().manual_seed(5)
    current = torch.randn(150, 3, generator=generator, dtype=torch.float64) + 1.5
    baseline = torch.randn(150, 9, generator=generator, dtype=torch.float64)
    flags = two_sample_alarms(current, baseline, tolerance.alpha("study_shift"), "pooled").tolist()

    def study(means, first_seed):
        record = {"accuracy": [40.0 + m for m in means], "collapsed": [False] * len(means),
                  "seeds": list(range(first_seed, first_seed + len(means)))}
        return {"blocks=3-relu": record, "blocks=4-relu": dict(record)}

    own = []
    for now, before in zip(current.tolist(), baseline.tolist()):
        shift = judge_study_shift("sigmoid_vs_relu", study(before, 0), study(now, 100), tolerance)
        assert shift.test == "pooled"
        own.append(not shift.passed)
    assert flags == own and 30 < sum(own) < 120


def test_the_study_shift_on_unequal_seed_counts_keeps_its_alpha_where_welchs_test_does_not():
    """3 seeds against a baseline of 24 on other seeds (a pr run against a nightly baseline), normal per-seed
    means, 400,000 null draws at the study shift's alpha: the pooled t alarms at its alpha; Welch's test about 12
    times as often."""
    alpha = Tolerance().alpha("study_shift")
    generator = torch.Generator().manual_seed(6)
    rates = {}
    for rule in ("pooled", "welch"):
        current = torch.randn(400_000, 3, generator=generator, dtype=torch.float64)
        baseline = torch.randn(400_000, 24, generator=generator, dtype=torch.float64)
        rates[rule] = two_sample_alarms(current, baseline, alpha, rule).double().mean().item() / alpha
    assert 0.8 < rates["pooled"] < 1.25 and rates["welch"] > 8, rates


def test_the_vectorized_contrast_is_the_findings_own():
    """contrast_alarms("hsu") decides as findings.Contrast.test does: df the fewest replicates less one."""
    from ablation.findings import Contrast

    generator = torch.Generator().manual_seed(7)
    first = torch.randn(200, 3, generator=generator, dtype=torch.float64)
    second = torch.randn(200, 5, generator=generator, dtype=torch.float64) * 3 + 4
    alpha = 0.05
    flags = contrast_alarms(first, second, alpha, "hsu").tolist()
    contrast = Contrast("a minus b", {"a": 1.0, "b": -1.0}, 0.0)
    own = [contrast.test({"a": {"accuracy": a}, "b": {"accuracy": b}})[1] < alpha
           for a, b in zip(first.tolist(), second.tolist())]
    assert flags == own and 40 < sum(own) < 160


def test_a_finding_keeps_its_alpha_whatever_its_cells_spreads_where_welchs_df_do_not():
    """Two cells of 3 replicates whose spreads differ 10 times, the claim true at its margin, 200,000 draws at a
    finding's alpha: Welch's df fail it about 4 times as often as stated."""
    alpha = Tolerance().alpha("finding")
    generator = torch.Generator().manual_seed(8)
    rates = {}
    for rule in ("hsu", "welch"):
        first = torch.randn(200_000, 3, generator=generator, dtype=torch.float64)
        second = torch.randn(200_000, 3, generator=generator, dtype=torch.float64) * 10
        rates[rule] = contrast_alarms(first, second, alpha, rule).double().mean().item() / alpha
    assert rates["hsu"] <= 1.0 and rates["welch"] > 3, rates


def test_t_beyond_decides_exactly_as_t_sf():
    from ablation.stats import t_sf

    generator = torch.Generator().manual_seed(9)
    t = torch.rand(3000, generator=generator, dtype=torch.float64) * 20
    df = torch.rand(3000, generator=generator, dtype=torch.float64) * 40 + 1
    assert t_beyond(t, df, 1e-3).tolist() == [t_sf(a, d) < 1e-3 for a, d in zip(t.tolist(), df.tolist())]


def test_the_unpaired_table_names_every_shape_rule_and_count():
    table = main(["--unpaired", "1000"])
    assert all(f"| {shape} | pooled t (the rule) |" in table and f"| {shape} | Welch |" in table
               for shape in DIFFERENCE_SHAPES)
    assert "| 3 vs 24 seeds |" in table and "| 3 | fewest replicates - 1 (the rule) |" in table
