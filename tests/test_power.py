"""python -m ablation power: minimum detectable shifts from a results file's own replicates."""

import json
import math
import re
import statistics
from pathlib import Path

import pytest

from ablation.cli import main
from ablation.power import FINDING, Power, finding_power, study_power
from ablation.results import PER_REPLICATE, ordered_studies, read_results
from ablation.stats import detectable_in_se, t_quantile, t_test_power

RECORDED = Path(__file__).resolve().parent.parent / "bench" / "recorded"


def test_the_t_tests_power_is_its_alpha_at_no_shift_and_grows_with_the_shift():
    for df in (2, 8, 40, 1000):
        for alpha in (0.05, 1e-3, 1.5e-5):
            critical = t_quantile(alpha / 2, df)
            assert t_test_power(critical, df, 0.0) == pytest.approx(alpha, rel=1e-5)
            assert t_test_power(t_quantile(alpha, df), df, 0.0, two_sided=False) == pytest.approx(alpha, rel=1e-5)
            assert t_test_power(critical, df, 1.0) < t_test_power(critical, df, 3.0) < t_test_power(critical, df, 9.0)


def test_the_noncentral_t_finds_its_detectable_shift_with_the_stated_power_where_the_shortcut_does_not():
    """Simulated t statistics, 400,000 each: at the noncentral t's detectable shift, 80 %; at the shortcut's
    t(alpha / 2) + t(1 - power), 65-70 % at these small df and alphas."""
    import torch

    generator = torch.Generator().manual_seed(3)
    for df, alpha in ((4, 1e-3), (2, 1e-3), (8, 1.5e-5)):
        critical = t_quantile(alpha / 2, df)
        z = torch.randn(400_000, generator=generator, dtype=torch.float64)
        spread = (torch.randn(df, 400_000, generator=generator, dtype=torch.float64).square().sum(0) / df).sqrt()
        for shift, low, high in ((detectable_in_se(alpha, df, 0.8), 0.795, 0.805),
                                 (critical + t_quantile(0.2, df), 0.6, 0.72)):
            assert low < ((z + shift) / spread).abs().gt(critical).double().mean().item() < high, (df, alpha, shift)


def test_the_detectable_shift_is_the_noncentral_ts_in_standard_errors():
    p = Power("sigmoid_vs_relu", "accuracy", 5, seed_sd=0.5, alpha=0.001, power=0.8)
    assert p.detectable() == pytest.approx(detectable_in_se(0.001, 8, 0.8) * 0.5 * math.sqrt(2 / 5))
    paired = Power("sigmoid_vs_relu", "accuracy", 5, seed_sd=0.5, alpha=0.001, power=0.8, paired=True)
    assert paired.detectable() == pytest.approx(detectable_in_se(0.001, 4, 0.8) * 0.5 / math.sqrt(5))
    assert p.detectable(20) < p.detectable(10) < p.detectable()  # more replicates, smaller shifts
    needed = p.replicates_needed(0.5)
    assert p.detectable(needed) <= 0.5 < p.detectable(needed - 1)
    assert Power("s", "accuracy", 2, None, 0.001, 0.8).replicates_needed(0.5) is None


def test_a_study_shift_at_the_detectable_size_is_found_with_the_stated_power():
    """Simulated: per-seed means of spread 1 point, a true shift of the detectable size, the study shift's pooled
    t-test on other seeds at alpha 0.05: found 80 % of the time, within sampling error."""
    import random

    from ablation.compare import judge_study_shift
    from ablation.verdict import BUDGET, Tolerance

    rng = random.Random(3)
    tolerance = Tolerance(alarm_budget=0.05 / BUDGET["study_shift"][0] * BUDGET["study_shift"][1], hardware=0.0)
    shift = Power("s", "accuracy", 8, 1.0, tolerance.alpha("study_shift"), 0.8).detectable()
    found = 0
    for _ in range(2000):
        seeds_before, seeds_after = ([rng.gauss(0, 1.0) for _ in range(8)] for _ in range(2))
        cells = ("blocks=1-relu", "blocks=2-relu")  # a seed's luck is the same in every cell
        before = {c: {"accuracy": [40 + b for b in seeds_before]} for c in cells}
        after = {c: {"accuracy": [40 + shift + b for b in seeds_after]} for c in cells}
        found += not judge_study_shift("sigmoid_vs_relu", before, after, tolerance).passed
    assert 0.77 < found / 2000 < 0.83


def test_power_of_a_recorded_run(capsys):
    assert main(["power", str(RECORDED / "h200-bench.json"), "--target-shift", "0.5"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("sigmoid_vs_relu") and "accuracy" in line)
    assert row.split()[2:] == ["5", "pooled", "0.208", "0.001", "0.82", "points", "9"]
    assert "replicates for 0.5 points" in out.splitlines()[0]


@pytest.mark.parametrize("path", sorted(RECORDED.glob("*.json")), ids=lambda path: path.stem)
def test_power_states_every_recorded_runs_studies(capsys, path):
    """Each recorded file, whatever its schema, replicate counts or studies: an accuracy row per study it holds."""
    assert main(["power", str(path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    accuracy = [row[0] for row in rows if row[1] == "accuracy"]
    assert accuracy == [name for name, _ in ordered_studies(read_results(path))]


def test_power_as_json_and_too_few_replicates_said(capsys, tmp_path):
    results = read_results(RECORDED / "h200-bench.json")
    for cell in results["studies"]["conv_activation_norm_position"]["cells"].values():
        cell.update({key: cell[key][:2] for key in PER_REPLICATE if key in cell})
    (tmp_path / "two.json").write_text(json.dumps(results))
    assert main(["power", str(tmp_path / "two.json"), "--json"]) == 0
    rows = {(r["study"], r["metric"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows["conv_activation_norm_position", "accuracy"]["seed_sd"] is None
    assert rows["conv_activation_norm_position", "accuracy"]["detectable_shift"] is None
    assert main(["power", str(tmp_path / "two.json")]) == 0
    assert "too few (3 needed)" in capsys.readouterr().out


def test_losses_that_diverged_or_span_orders_of_magnitude_are_stated_not_a_traceback(capsys, tmp_path):
    """A cell whose final loss is NaN in a replicate (a diverged run) has no log to estimate from: the study's
    loss power leaves it out (15 of 16 Sigmoid/ReLU cells).  Losses from 1e-12 to 1e12 put the detectable ratio
    beyond what a float holds: it is printed as a power of ten."""
    results = read_results(RECORDED / "h200-bench.json")
    results["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]["final_loss"][0] = math.nan
    for cell in results["studies"]["conv_activation_norm_position"]["cells"].values():
        cell["final_loss"] = [1e-12, 1e12, 1e-12]
    (tmp_path / "spread.json").write_text(json.dumps(results))
    loss_sd = {p.study: p.seed_sd for p in study_power(read_results(tmp_path / "spread.json"))
               if p.metric == "final_loss"}
    kept = [cell["final_loss"] for cell_id, cell in results["studies"]["sigmoid_vs_relu"]["cells"].items()
            if cell_id != "blocks=4-relu"]
    assert len(kept) == 15 and loss_sd["sigmoid_vs_relu"] == pytest.approx(
        statistics.stdev(statistics.fmean(math.log(cell[r]) for cell in kept) for r in range(5)))
    assert loss_sd["conv_activation_norm_position"] == pytest.approx(statistics.stdev([-27.631, 27.631, -27.631]),
                                                                     rel=1e-4)
    assert main(["power", str(tmp_path / "spread.json")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("conv_activation_norm_position") and "final_loss" in line)
    assert re.search(r"x10\^\d+\.\d$", row)


@pytest.mark.parametrize("argv,message", [
    (["--power", "0.49"], "--power must be 0.5 or more, got 0.49"),
    (["--alpha", "2"], "argument --alpha: must be between 0 and 1, got 2"),
    (["--target-shift", "0"], "argument --target-shift: must be above 0, got 0"),
])
def test_bad_power_options_are_one_line(capsys, argv, message):
    assert main(["power", str(RECORDED / "h200-bench.json"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_report_states_the_power_beside_the_verdicts():
    from ablation.report import markdown_report

    text = markdown_report(read_results(RECORDED / "h200-bench.json"))
    assert "## Power" in text and "| sigmoid_vs_relu | accuracy | 5 | pooled | 0.208 | 0.001 | 0.82 points |" in text
    assert "| sigmoid_vs_relu | accuracy, median cell | 5 | band | 1.205 | 1.5e-05 | 8.41 points |" in text
    assert len(study_power(read_results(RECORDED / "h200-run-order-eager.json"))) == 2


def test_against_a_same_seed_baseline_the_power_is_the_paired_tests(capsys):
    """Same seeds, CUDA graphs against eager steps on the H200: the per-seed differences spread 0.08-0.29 points,
    3-8 times less than the per-seed means, so the paired test sees shifts of about a third of a point at 5 and 8
    replicates (the order study's 3 leave it 2 df)."""
    assert main(["power", str(RECORDED / "h200-bench-graphs.json"), "--baseline", str(RECORDED / "h200-bench.json"),
                 "--target-shift", "0.5"]) == 0
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["sigmoid_vs_relu", "accuracy"] == ["5", "paired", "0.084", "0.001", "0.40", "points", "5"]
    assert rows["batchnorm_vs_groupnorm", "accuracy"] == ["8", "paired", "0.158", "0.001", "0.37", "points", "7"]
    assert rows["conv_activation_norm_position", "accuracy"][:6] == ["3", "paired", "0.293", "0.001", "6.77", "points"]
    assert rows["note:", "the"][:6] == ["paired", "rows", "are", "the", "power", "against"]


def test_a_baseline_on_other_seeds_gives_the_two_sample_power_and_says_why(capsys):
    """`power --baseline` with a baseline that shares no seed (the independent H200 run): the rows are the
    two-sample test's from the file's own spread, and a note names the studies that could not pair; a same-seed
    baseline gets no note."""
    assert main(["power", str(RECORDED / "h200-bench.json"), "--baseline", str(RECORDED / "h200-repeat.json")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:5] == ["sigmoid_vs_relu", "accuracy", "5", "pooled", "0.208"]
    assert out.rstrip().endswith(
        f"note: {RECORDED / 'h200-repeat.json'} shares too few seeds with {RECORDED / 'h200-bench.json'} to pair "
        "sigmoid_vs_relu, batchnorm_vs_groupnorm, conv_activation_norm_position (3 or more in every compared cell): "
        f"those rows are the two-sample test's, from the spread of {RECORDED / 'h200-bench.json'} alone")
    assert main(["power", str(RECORDED / "h200-bench.json"), "--baseline", str(RECORDED / "h100-bench.json")]) == 0
    assert "shares too few seeds" not in capsys.readouterr().out


def test_the_nightly_plan_detects_half_a_point_where_the_seeds_pair():
    """The nightly counts meet the 0.5-point target with the paired spread measured between same-seed runs; the pr
    counts do not for the order study, and unpaired (other seeds) the nightly counts do not either."""
    from ablation.studies import DOCUMENTED

    paired = {p.study: p for p in study_power(read_results(RECORDED / "h200-bench-graphs.json"),
                                               baseline=read_results(RECORDED / "h200-bench.json"))
              if p.metric == "accuracy"}
    unpaired = {p.study: p for p in study_power(read_results(RECORDED / "h200-bench.json"))
                if p.metric == "accuracy"}
    for study in DOCUMENTED:
        assert paired[study.name].paired and paired[study.name].detectable(study.nightly_replicates) <= 0.5
    assert paired["conv_activation_norm_position"].detectable(3) > 5
    assert unpaired["conv_activation_norm_position"].detectable(24) > 0.5


def test_identical_same_seed_runs_state_no_power_rather_than_zero(capsys):
    """A run against itself (the CPU's same-seed reruns are bitwise equal): the differences have no spread, so
    there is no power to state; not a detectable shift of 0 points."""
    path = str(RECORDED / "h200-bench.json")
    assert main(["power", path, "--baseline", path, "--target-shift", "0.5"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("sigmoid_vs_relu  "))
    assert re.search(r"paired +0 \(identical runs: no power to state\)", row) and row.split()[-2:] == ["-", "-"]


def cell_detectable(baseline, current):
    """Per non-bimodal cell of each study, its detectable shift at the nightly counts paired (from the per-seed
    differences' sd) and unpaired (from the runs' pooled sd, never below the sd floor, as the band takes it)."""
    from ablation.studies import DOCUMENTED
    from ablation.stats import pooled_sd
    from ablation.verdict import Tolerance

    alpha = Tolerance().alpha("baseline_cell") / 2
    found = {}
    for study in DOCUMENTED:
        n, found[study.name] = study.nightly_replicates, []
        for cell in study.cells:
            if cell.level in study.bimodal_levels:
                continue
            before, after = (run["studies"][study.name]["cells"][cell.id]["accuracy"] for run in (baseline, current))
            paired = statistics.stdev([a - b for a, b in zip(after, before)])
            unpaired = max(pooled_sd(before, after), Tolerance().sd_floor)
            found[study.name].append((Power(study.name, "accuracy", n, paired, alpha, 0.8, True).detectable(),
                                      Power(study.name, "accuracy", n, unpaired, alpha, 0.8).detectable()))
    return found


def test_at_the_nightly_counts_a_cell_paired_by_seed_detects_shifts_several_times_smaller():
    """docs/statistics.md's table: same-seed H200 runs whose numerics changed (eager against CUDA-graph steps), at
    the cell band's alpha and 16 / 16 / 24 pairs: per study the median cell's detectable shift each way and the
    range of the per-cell gain (unpaired over paired).  Every cell gains, the least where the change unpaired the
    seeds most (x1.18 in the order study: half the df, a standard error not much smaller)."""
    eager, graphs = (read_results(RECORDED / name) for name in ("h200-bench.json", "h200-bench-graphs.json"))
    table = {}
    for study, cells in cell_detectable(eager, graphs).items():
        gains = [unpaired / paired for paired, unpaired in cells]
        table[study] = [round(statistics.median(p for p, _ in cells), 2), round(statistics.median(u for _, u in cells), 2),
                        round(min(gains), 2), round(max(gains), 1)]
    assert table == {"sigmoid_vs_relu": [0.12, 2.63, 2.51, 109.6],
                     "batchnorm_vs_groupnorm": [1.04, 2.44, 1.28, 13.1],
                     "conv_activation_norm_position": [0.89, 1.66, 1.16, 5.2]}


def sigmoid_relu_cells(differences, seeds=range(12)):
    """The Sigmoid/ReLU study with 12 seeds in every cell: seed effects spread about 0.4 points, plus
    ``differences`` (per seed, the same in every cell)."""
    from ablation.studies import get_study

    cells = {}
    for i, cell in enumerate(get_study("sigmoid_vs_relu").cells):
        accuracy = [40.0 + i + 0.5 * math.sin(7 * s) + d for s, d in zip(seeds, differences)]
        cells[cell.id] = {"accuracy": accuracy, "collapsed": [False] * len(accuracy), "seeds": list(seeds)}
    return {"studies": {"sigmoid_vs_relu": {"cells": cells}}}


def test_a_cells_power_is_its_bands_median_cell_paired_from_twelve_shared_seeds():
    from ablation.power import CELL_ACCURACY, cell_power
    from ablation.verdict import Tolerance

    differences = [0.1 * (-1) ** s + 0.02 * s for s in range(12)]
    before, after = sigmoid_relu_cells([0.0] * 12), sigmoid_relu_cells(differences)
    (paired,) = cell_power(after, baseline=before)
    alpha = Tolerance().alpha("baseline_cell") / 2
    assert (paired.metric, paired.test, paired.replicates) == (CELL_ACCURACY, "paired", 12)
    assert paired.seed_sd == pytest.approx(statistics.stdev(differences)) and paired.alpha == alpha
    (unpaired,) = cell_power(after, baseline=sigmoid_relu_cells([0.0] * 12, seeds=range(100, 112)))
    assert unpaired.test == "band" and unpaired.seed_sd == 1.0  # the sd floor, above the cells' own spread
    assert unpaired.detectable() > 9 * paired.detectable()
    assert paired.replicates_needed(5.0) == 12  # the band pairs from 12 seeds on, however small the spread


def test_power_prints_the_median_cell_beside_the_studies(capsys, tmp_path):
    path = RECORDED / "h200-bench.json"
    assert main(["power", str(path), "--target-shift", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if "median cell" in line]
    studies = ["sigmoid_vs_relu", "batchnorm_vs_groupnorm", "conv_activation_norm_position"]
    assert [row[0] for row in rows] == studies * 2
    assert rows[0][4:] == ["5", "band", "1.205", "1.5e-05", "8.41", "points", "83"]
    assert rows[3][1:] == ["documented", "table,", "median", "cell", "5", "band", "1.486", "2.3e-05", "13.83", "points",
                           "never", "(allowances", "4", "points)"]  # 1 hardware, 3 the offline copy's downward
    assert rows[4][5:10] == ["8", "band", "1.073", "2.3e-05", "17.52"]  # one documented run a cell
    assert main(["power", str(path), "--target-shift", "4"]) == 0  # a drop of exactly the allowances: never either
    documented = next(line for line in capsys.readouterr().out.splitlines() if "documented table" in line)
    assert documented.endswith("never (allowances 4 points)")


def test_against_the_documented_table_a_cell_is_found_at_its_stated_drop_with_the_stated_power():
    """Simulated: 3 documented runs and 8 replicates of spread 2 points, the replicates lowered by the stated
    detectable drop, judged by the cell's own rule against the documented runs (the offline copy's allowances):
    found 80 % of the time, within sampling error, and no replicate count takes it below the allowances."""
    import random

    from ablation.power import DOCUMENTED_ACCURACY
    from ablation.verdict import Tolerance, check_cell

    tolerance = Tolerance()
    row = Power("sigmoid_vs_relu", DOCUMENTED_ACCURACY, 8, 2.0, tolerance.alpha("documented_cell") / 2, 0.8,
                reference=3, allowance=tolerance.hardware + tolerance.data_copy)
    drop = row.detectable()
    rng = random.Random(8)
    found = 0
    for _ in range(2000):
        documented = [40 + rng.gauss(0, 2.0) for _ in range(3)]
        measured = [40 - drop + rng.gauss(0, 2.0) for _ in range(8)]
        record = {"accuracy": measured, "collapsed": [False] * 8}
        found += not check_cell("sigmoid_vs_relu", "blocks=4-relu", record, documented, tolerance, copy=True).passed
    assert 0.77 < found / 2000 < 0.83
    assert 4.0 < row.detectable(512) < row.detectable(16) < drop  # the documented runs' own error stays


def test_a_findings_power_is_how_far_below_its_margin_its_weakest_contrast_must_fall():
    """Two ReLU-against-Sigmoid depths (of 6 contrasts) spread more than the others; the finding's row is the
    widest contrast's, at the finding's alpha over its 6 contrasts, one-sided on 4 df. A shortfall of that size is
    found by the finding itself at least 80 % of the time (simulated; more, since the contrast's standard error
    rests on two cells' spreads, not on 4 df alone)."""
    import random

    from ablation.findings import FINDINGS
    from ablation.verdict import Tolerance

    sds = {d: 3.0 if d in (4, 7) else 1.0 for d in range(1, 9)}
    rng = random.Random(5)

    def cells(lead_at_7):
        return {f"blocks={d}-{a}": {"accuracy": [m + (lead_at_7 if (a, d) == ("relu", 7) else 0)
                                                 + rng.gauss(0, sds[d]) for _ in range(5)]}
                for d in range(1, 9) for a, m in (("sigmoid", 20.0), ("relu", 25.0))}

    drawn = cells(0.0)
    row = next(p for p in finding_power({"studies": {"sigmoid_vs_relu": {"cells": drawn}}})
               if p.metric == FINDING + "relu_beats_sigmoid_at_depth")
    widest = max(math.sqrt(sum(statistics.variance(drawn[f"blocks={d}-{a}"]["accuracy"]) for a in ("relu", "sigmoid"))
                           / 5) for d in range(3, 9))
    assert row.test == "contrast" and row.replicates == 5
    assert row.alpha == pytest.approx(Tolerance().alpha("finding") / 6)
    assert row.detectable() == pytest.approx(detectable_in_se(row.alpha, 4, 0.8, two_sided=False) * widest)
    finding = next(f for f in FINDINGS if f.name == "relu_beats_sigmoid_at_depth")
    true_sd = math.sqrt(2 * 9 / 5)  # depth 7's contrast, from the true spreads
    shortfall = detectable_in_se(row.alpha, 4, 0.8, two_sided=False) * true_sd
    failed = sum(finding.judge({"studies": {"sigmoid_vs_relu": {"cells": cells(-shortfall)}}})[0] is False
                 for _ in range(1000))
    assert 0.77 < failed / 1000 < 0.95



def recorded_faults():
    """Per recorded planted-fault run and study it trained: the fault, the study, the same-seed baseline's cells,
    the fault run's and the cells a study shift compares."""
    from ablation.compare import comparable_cells

    baseline = read_results(RECORDED / "h200-bench.json")
    for path in sorted(RECORDED.glob("h200-fault-*.json")):
        for name, entry in read_results(path)["studies"].items():
            before = baseline["studies"][name]["cells"]
            yield (path.stem.removeprefix("h200-fault-"), name, before, entry["cells"],
                   comparable_cells(name, before, entry["cells"], "accuracy"))


def fault_spreads():
    """Per recorded planted fault and study: its shift, the spread of its per-seed differences from the same-seed
    baseline, that spread over unchanged training's on the same cells (CUDA-graph against eager steps), and the
    paired test's detectable shift at that spread for the pr and the nightly counts."""
    from ablation.compare import paired_differences
    from ablation.studies import get_study

    unchanged = read_results(RECORDED / "h200-bench-graphs.json")
    table = {}
    for fault, name, before, after, cells in recorded_faults():
        study = get_study(name)
        differences = paired_differences(before, after, cells, "accuracy")
        quiet = paired_differences(before, unchanged["studies"][name]["cells"], cells, "accuracy")
        sd = statistics.stdev(differences)
        power = Power(name, "accuracy", len(differences), sd, study_power(unchanged)[0].alpha, 0.8, paired=True)
        table[fault, name] = [round(statistics.fmean(differences), 2), round(sd, 2),
                              round(sd / statistics.stdev(quiet), 1), round(power.detectable(study.replicates), 2),
                              round(power.detectable(study.nightly_replicates), 2)]
    return table


def test_against_the_recorded_faults_the_paired_power_is_that_of_a_wider_spread():
    """docs/statistics.md's held-out check of the paired power (none of these runs chose a constant): a fault
    that changes what a seed's run does spreads the per-seed differences 2-10 times as much as unchanged training,
    and the paired test finds shifts that much larger; a fault that leaves a study alone (Sigmoid/ReLU has no
    scheduler to drop) does not."""
    assert fault_spreads() == {
        ("groupnorm_one_group", "batchnorm_vs_groupnorm"): [-0.67, 1.6, 8.3, 3.77, 2.02],
        ("lr_times_10", "conv_activation_norm_position"): [-1.93, 1.63, 5.6, 37.84, 1.56],
        ("lr_times_10", "sigmoid_vs_relu"): [0.18, 0.62, 7.5, 2.98, 0.79],
        ("no_normalization", "sigmoid_vs_relu"): [-1.77, 0.87, 10.4, 4.16, 1.1],
        ("no_normalization", "conv_activation_norm_position"): [0.63, 0.52, 1.8, 12.08, 0.5],
        ("no_scheduler", "conv_activation_norm_position"): [-0.02, 0.81, 2.8, 18.71, 0.77],
        ("no_scheduler", "sigmoid_vs_relu"): [0.01, 0.01, 0.1, 0.04, 0.01],
        ("norm_after_activation", "conv_activation_norm_position"): [-1.34, 0.56, 1.9, 13.0, 0.54],
        ("norm_after_activation", "sigmoid_vs_relu"): [2.61, 0.27, 3.3, 1.3, 0.34]}
    widest = {}
    for (_, study), (_, sd, *_) in fault_spreads().items():
        widest[study] = max(widest.get(study, 0.0), sd)
    assert {study: Power(study, "accuracy", 16, sd, 1e-3, 0.8, paired=True).replicates_needed(0.5)
            for study, sd in widest.items()} == {"batchnorm_vs_groupnorm": 181, "conv_activation_norm_position": 187,
                                                 "sigmoid_vs_relu": 58}


def test_on_the_recorded_faults_the_two_sample_test_sees_what_the_paired_one_sees():
    """The trade-off of pairing from 3 seeds (compare.MIN_PAIRED) on the recorded faults: where a fault moved a
    study by a point or more, the two-sample test on the same files' per-seed means has the smaller p (twice the
    df, at a spread the fault made as wide), yet at the study shift's alpha neither catches a fault the other
    misses."""
    from ablation.compare import metric_values, paired_differences, seed_means
    from ablation.stats import paired_t, pooled_t, t_sf

    alpha = study_power(read_results(RECORDED / "h200-bench.json"))[0].alpha
    larger_shifts, verdicts = [], []
    for _, _, before, after, cells in recorded_faults():
        tests = {"paired": paired_t(paired_differences(before, after, cells, "accuracy")),
                 "pooled": pooled_t(*(seed_means([metric_values(side[c], "accuracy") for c in cells])
                                      for side in (before, after)))}
        p = {test: 2 * t_sf(abs(change) / se, df) for test, (change, se, df) in tests.items()}
        if abs(tests["paired"][0]) >= 1:
            larger_shifts.append(p["pooled"] < p["paired"])
        verdicts.append((p["paired"] < alpha, p["pooled"] < alpha))
    assert larger_shifts == [True] * 4
    assert verdicts.count((True, True)) == 1 and all(paired == pooled for paired, pooled in verdicts)
