"""The tolerance band, bimodal cells, findings, and their calibration on recorded H200 runs."""

import math
from pathlib import Path

import pytest

from ablation.compare import compare
from ablation.findings import FINDINGS
from ablation.results import read_results
from ablation.verdict import Tolerance, at_chance, band, check_cell, check_documented

RECORDED = Path(__file__).resolve().parent.parent / "bench" / "recorded"


def record(accuracy, collapsed=None):
    return {"accuracy": accuracy, "collapsed": collapsed or [False] * len(accuracy)}


def test_band_combines_sampling_hardware_and_data_copy():
    tolerance = Tolerance(z=2.0, sd_floor=0.5, hardware=1.0, data_copy=3.0)
    reference, measured = [10.0, 12.0], [11.0, 13.0, 12.0]
    ss = 2.0 + 2.0  # squared deviations around 11 and around 12
    se = math.sqrt(ss / 3) * math.sqrt(1 / 2 + 1 / 3)
    low, high, got_se = band(reference, measured, tolerance, copy=True)
    assert got_se == pytest.approx(se)
    assert (low, high) == pytest.approx((11 - 2 * se - 1 - 3, 11 + 2 * se + 1))
    assert band(reference, measured, tolerance, copy=False)[0] == pytest.approx(11 - 2 * se - 1)


def test_sd_floor_applies_when_runs_agree_too_well():
    low, high, se = band([50.0], [50.0, 50.0], Tolerance(z=1.0, sd_floor=2.0, hardware=0.0), copy=False)
    assert se == pytest.approx(2.0 * math.sqrt(1.5)) and high - low == pytest.approx(2 * se)


def test_data_copy_allowance_is_downward_only():
    tolerance = Tolerance(z=1.0, sd_floor=1.0, hardware=0.0, data_copy=3.0)
    below = check_cell("sigmoid_vs_relu", "blocks=4-relu", record([33.0, 33.2, 32.8]), [35.0, 35.2, 34.8], tolerance, True)
    above = check_cell("sigmoid_vs_relu", "blocks=4-relu", record([37.0, 37.2, 36.8]), [35.0, 35.2, 34.8], tolerance, True)
    assert below.passed and not above.passed and "above the band" in above.reason


@pytest.mark.parametrize("accuracy,collapsed,expected", [(9.19, False, True), (10.4, False, True), (10.6, False, False),
                                                         (25.0, True, True)])
def test_at_chance(accuracy, collapsed, expected):
    assert at_chance(accuracy, collapsed, 10) is expected


def test_a_documented_collapse_must_be_reproduced():
    cell, tol = "batch_size=2-batchnorm", Tolerance()
    reproduced = check_cell("batchnorm_vs_groupnorm", cell, record([25.7, 9.98, 30.0]), [10.01], tol, True)
    missed = check_cell("batchnorm_vs_groupnorm", cell, record([25.7, 28.0, 30.0]), [10.01], tol, True)
    assert reproduced.passed and not missed.passed and "none reproduced it" in missed.reason


def test_bimodal_cells_judge_the_runs_that_learned():
    cell, tol = "batch_size=2-groupnorm", Tolerance()
    learners_fit = check_cell("batchnorm_vs_groupnorm", cell, record([10.0, 29.0, 31.0, 9.9], [True, False, False, False]),
                              [30.89], tol, True)
    assert learners_fit.passed and learners_fit.measured == pytest.approx(30.0)
    none_learned = check_cell("batchnorm_vs_groupnorm", cell, record([10.0, 9.9]), [30.89], tol, True)
    assert not none_learned.passed and "ended at chance" in none_learned.reason
    # the same numbers in a cell that is not bimodal: the runs at chance count, and fail it
    assert not check_cell("batchnorm_vs_groupnorm", "batch_size=64-groupnorm", record([10.0, 29.0, 31.0, 9.9]),
                          [30.89], tol, True).passed


def test_failure_message_names_documented_value_replicates_band_and_reason():
    rec = record([40.0, 41.0])
    verdict = check_cell("sigmoid_vs_relu", "blocks=1-relu", rec, [23.88, 21.63], Tolerance(), True)
    message = verdict.message(rec, [23.88, 21.63])
    assert "REGRESSION" in message and "[23.88, 21.63]" in message and "[40.00, 41.00]" in message
    assert "band [" in message and "above the band" in message


@pytest.fixture(scope="module")
def recorded():
    return {p.stem.removeprefix("h200-"): read_results(p) for p in RECORDED.glob("h200-*.json")}


def test_unchanged_code_passes_twice_on_the_h200(recorded):
    """Two independent full bench runs (seed offsets 0 and 1000): no cell, no finding, no drift fails."""
    for name in ("bench", "repeat"):
        assert all(v.passed for v in check_documented(recorded[name], Tolerance())), name
        assert [f.judge(recorded[name])[0] for f in FINDINGS] == [True] * 4 + [None, True], name
    drifts, throughputs = compare(recorded["bench"], recorded["repeat"], Tolerance())
    assert len(drifts) == 33 and all(d.verdict.passed for d in drifts) and all(t.ok for t in throughputs)


@pytest.mark.parametrize("fault,finding,min_cells", [
    ("norm_after_activation", "standard_order_ranks_first", 5),
    ("lr_times_10", "relu_rises_sigmoid_does_not", 3),
])
def test_planted_faults_are_caught(recorded, fault, finding, min_cells):
    results = recorded[f"fault-{fault}"]
    assert results["bench"]["fault"] == fault
    failed = {f.name for f in FINDINGS if f.judge(results)[0] is False}
    assert failed == {finding}
    drifts, _ = compare(recorded["bench"], results, Tolerance())
    assert sum(not d.verdict.passed for d in drifts) >= min_cells


def test_the_cifar100_claim_holds_on_the_cifar10_runs_and_needs_its_own_cells(recorded):
    from ablation.findings import batchnorm_degrades_more

    assert batchnorm_degrades_more(recorded["bench"]["studies"]["batchnorm_vs_groupnorm"]["cells"])[0]
    cifar100 = next(f for f in FINDINGS if f.study == "batchnorm_vs_groupnorm_cifar100")
    assert cifar100.judge(recorded["bench"]) == (None, "not judged: 14 of its cells were not measured")
