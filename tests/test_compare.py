"""python -m ablation compare: drift tables, exit 1 on a regression, 2 on unusable input."""

import copy
import json
import math
import re
from pathlib import Path

import pytest

from ablation.cli import main
from ablation.compare import judge_throughput
from ablation.results import PER_REPLICATE, read_results

RECORDED = Path(__file__).resolve().parent.parent / "bench" / "recorded"
BENCH, REPEAT = RECORDED / "h200-bench.json", RECORDED / "h200-repeat.json"


def compare(capsys, *argv):
    code = main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_unchanged_code_shows_no_drift(capsys, tmp_path):
    code, out, _ = compare(capsys, BENCH, REPEAT, "--markdown", tmp_path / "drift.md")
    assert code == 0
    assert ("33 cells compared: 0 outside their band, 0 loss metrics moved, 0 of 6 study shifts, 0 of 3 timed "
            "studies slower than x0.54 of the baseline (alarm budget 1% per run") in out
    markdown = (tmp_path / "drift.md").read_text()
    assert markdown.startswith("## Drift against the baseline")
    assert "| sigmoid_vs_relu | blocks=4-relu | 33.09 | 31.52 | -1.57 | 17.00 - 49.19 | 1 | inconclusive | - | 0.99 |" in markdown
    assert "| sigmoid_vs_relu | accuracy | 16 | -0.22 | pooled | -0.69 | 8.0 | 0.51 | 1 | equivalent |" in markdown
    assert "cells: 24 equivalent (shown within ±3 points), 9 inconclusive" in out
    assert ("inconclusive: conv_activation_norm_position: the accuracy shift is neither a regression nor shown within "
            "±1 points") in out


def test_a_study_that_shifts_as_a_whole_is_a_regression(capsys):
    """A swapped layer order (H200): no cell out of its band, and the Sigmoid/ReLU study 2.61 points higher
    over all its cells, judged paired (the fault run kept the baseline's seeds); a budget small enough passes it."""
    fault = RECORDED / "h200-fault-norm_after_activation.json"
    code, out, _ = compare(capsys, BENCH, fault)
    assert code == 1 and "0 outside their band, 14 loss metrics moved, 2 of 4 study shifts" in out
    assert ("- sigmoid_vs_relu: mean accuracy over 16 cells moved +2.61 points against the baseline "
            "(paired t = +21.45, 4.0 df, p = 2.8e-05, adjusted p = 0.00028)") in out
    assert ("- sigmoid_vs_relu: final loss over 16 cells moved x0.927 against the baseline (paired t = -131.23, "
            "4.0 df, p = 2e-08, adjusted p = 1.3e-05)") in out
    code, out, _ = compare(capsys, BENCH, fault, "--alarm-budget", "1e-8")
    assert code == 0 and "0 outside their band, 0 loss metrics moved, 0 of 4 study shifts" in out


def test_a_cell_out_of_its_band_fails_with_its_band_and_adjusted_p(capsys):
    """A learning rate x10 (H200): ReLU at depth 1 learned 7.3 points more, beyond its band."""
    code, out, _ = compare(capsys, BENCH, RECORDED / "h200-fault-lr_times_10.json")
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("sigmoid_vs_relu ") and "blocks=1-relu" in line)
    assert row.split()[2:9] == ["21.95", "29.27", "+7.32", "15.86", "-", "28.05", "1.7e-05"] and "CHANGED: higher" in row
    assert "- sigmoid_vs_relu[blocks=1-relu]: CHANGED: higher: mean of 5 replicates 29.27 vs reference 21.95" in out
    assert "note: the current file was trained with a planted fault, lr_times_10 (bench/faults.py)" in out
    assert ("note: replicates at chance where every baseline run learned (a seed that diverged?): "
            "sigmoid_vs_relu[blocks=7-sigmoid] (1 of 5)") in out  # a learning rate x10 diverged one seed


def test_a_rise_beyond_the_band_is_named_a_change_not_a_regression(capsys, tmp_path):
    higher = read_results(REPEAT)
    cell = higher["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]
    cell["accuracy"] = [a + 20 for a in cell["accuracy"]]
    (tmp_path / "higher.json").write_text(json.dumps(higher))
    code, out, _ = compare(capsys, BENCH, tmp_path / "higher.json")
    assert code == 1 and "- sigmoid_vs_relu[blocks=4-relu]: CHANGED: higher: mean of 5 replicates 51.52" in out
    assert "above the band [17.00, 49.19]" in out


def test_throughput_regression_is_judged_per_study_on_the_same_device(capsys, tmp_path):
    slow = json.loads(REPEAT.read_text())
    for cell in slow["studies"]["sigmoid_vs_relu"]["cells"].values():
        cell["images_per_s"] *= 0.5
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    code, out, _ = compare(capsys, BENCH, tmp_path / "slow.json")
    assert code == 0 and "26,525         0.57   ok" in out  # within the limit: unchanged reruns moved by x0.87
    for cell in slow["studies"]["sigmoid_vs_relu"]["cells"].values():
        cell["images_per_s"] *= 0.5
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    code, out, _ = compare(capsys, BENCH, tmp_path / "slow.json")
    assert code == 1 and "sigmoid_vs_relu: 13,262 img/s is x0.29 of the baseline's 46,389" in out
    slow["environment"]["device_name"] = "NVIDIA H100 80GB HBM3"
    (tmp_path / "other.json").write_text(json.dumps(slow))
    code, out, _ = compare(capsys, BENCH, tmp_path / "other.json")
    assert code == 0 and "not judged: other device" in out
    before, after = [{"images_per_s": 1000.0, "wall_s": 8.0}], [{"images_per_s": 500.0, "wall_s": 8.0}]
    assert judge_throughput("sigmoid_vs_relu", before, after, 0.5).ok  # exactly at the limit passes
    assert judge_throughput("sigmoid_vs_relu", before, after, 0.5001).ok is False


def test_throughput_with_cuda_graphs_against_a_baseline_without_is_not_judged(capsys, tmp_path):
    """Turning graphs off slows training without any regression in the code: say so, do not alert."""
    eager = json.loads(REPEAT.read_text())
    graphed = json.loads(REPEAT.read_text())
    for cell in graphed["studies"]["sigmoid_vs_relu"]["cells"].values():
        cell["images_per_s"] *= 3
        cell["cuda_graphs"] = True
    (tmp_path / "eager.json").write_text(json.dumps(eager))
    (tmp_path / "graphed.json").write_text(json.dumps(graphed))
    code, out, _ = compare(capsys, tmp_path / "graphed.json", tmp_path / "eager.json")
    assert code == 0 and "not judged: trained another way (cuda_graphs: True vs False)" in out
    assert out.count("not judged") == 1  # the other studies ran the same path and are judged


def test_a_bench_file_from_before_the_worker_count_was_recorded_ran_two_workers():
    """h200-bench-graphs.json holds no worker count: it ran -n 2, as the later bench did, so the later bench's
    Sigmoid/ReLU throughput is judged against it; the norm and order studies, trained side by side now, are not."""
    from ablation.compare import compare as compared
    from ablation.verdict import Tolerance

    older = read_results(RECORDED / "h200-bench-graphs.json")
    later = read_results(RECORDED / "h200-bench-side-by-side.json")
    assert "workers" not in older["bench"] and later["bench"]["workers"] == 2
    timed = {t.study: (t.ok, t.why_not_judged) for t in compared(older, later, Tolerance()).throughputs}
    assert timed["sigmoid_vs_relu"] == (True, "")
    assert timed["batchnorm_vs_groupnorm"] == (None, "trained another way (side_by_side: [1] vs [14])")


@pytest.mark.parametrize("fault", ["lr_times_10", "no_scheduler"])
def test_a_bench_run_of_other_cells_than_the_baselines_is_not_timed_against_it(capsys, tmp_path, fault):
    """Recorded fault runs trained 19 of the bench's 33 cells, two xdist workers sharing the H200: what trained
    beside a study changed its speed (x0.34-0.45 of the full bench's for these two faults, which leave the step's
    work alone), and x0.54 would call that a regression. Not judged, saying why. Without workers sharing the device
    (-n 0 or 1) each cell trains in its own study's groups and the study is timed."""
    run = RECORDED / f"h200-fault-{fault}.json"
    _, out, _ = compare(capsys, BENCH, run)
    reason = "not judged: other cells shared the device (the baseline's bench: 33 cells in 1 shard; this one: 19 in 1)"
    throughput_rows = [line for line in out.splitlines() if line.endswith(reason)]
    assert len(throughput_rows) == 2 and "img/s is x" not in out and " study shifts, no study timed (" in out
    one_worker = []
    for path in (BENCH, run):
        results = read_results(path)
        results["bench"]["workers"] = 1
        one_worker.append(tmp_path / path.name)
        one_worker[-1].write_text(json.dumps(results))
    _, out, _ = compare(capsys, *one_worker)
    assert "other cells shared the device" not in out and "2 of 2 timed studies slower than x0.54" in out


def test_bench_shards_merged_are_not_timed_against_a_bench_run_in_one_piece(capsys, tmp_path):
    """The same 33 cells dealt into two shards, each on a device of its own, trained beside other cells than in
    one bench run: not judged, saying why; against a baseline dealt the same way, judged."""
    sharded = read_results(REPEAT)
    sharded["shards"] = 2
    (tmp_path / "sharded.json").write_text(json.dumps(sharded))
    _, out, _ = compare(capsys, BENCH, tmp_path / "sharded.json")
    reason = "not judged: other cells shared the device (the baseline's bench: 33 cells in 1 shard; this one: 33 in 2)"
    assert len([line for line in out.splitlines() if line.endswith(reason)]) == 3
    del sharded["shards"]
    sharded["shard"] = {"index": 1, "count": 2}  # one shard's own file, before merge, says the same
    (tmp_path / "sharded.json").write_text(json.dumps(sharded))
    _, out, _ = compare(capsys, BENCH, tmp_path / "sharded.json")
    assert len([line for line in out.splitlines() if line.endswith(reason)]) == 3
    baseline = read_results(BENCH)
    baseline["shards"] = 2
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    _, out, _ = compare(capsys, tmp_path / "baseline.json", tmp_path / "sharded.json")
    assert "0 of 3 timed studies slower than x0.54" in out


def test_cells_side_by_side_count_their_shared_training_time_once(capsys, tmp_path):
    """Two cells that trained at once share one wall time: the study's images/s counts it once, so the same work in
    the same total time is the same throughput; the cells' own images/s are not comparable and are not shown."""
    paired = json.loads(REPEAT.read_text())
    a, b = (paired["studies"]["sigmoid_vs_relu"]["cells"][c] for c in ("blocks=1-relu", "blocks=1-sigmoid"))
    together = a["wall_s"] + b["wall_s"]
    for cell in (a, b):
        cell.update(images_per_s=cell["images_per_s"] * cell["wall_s"] / together, wall_s=together, side_by_side=2)
    (tmp_path / "paired.json").write_text(json.dumps(paired))
    _, alone, _ = compare(capsys, BENCH, REPEAT, "--markdown", tmp_path / "alone.md")
    code, out, _ = compare(capsys, BENCH, tmp_path / "paired.json", "--markdown", tmp_path / "paired.md")
    assert code == 0
    throughput = [line for line in alone.splitlines() if line.startswith("sigmoid_vs_relu ") and "ok" in line][-1]
    paired_row = [line for line in out.splitlines() if line.startswith("sigmoid_vs_relu ")][-1]
    assert paired_row.split()[:4] == throughput.split()[:4]  # the same images/s, counted once
    assert paired_row.endswith("not judged: trained another way (side_by_side: [1] vs [1, 2])")
    rows = {line.split(" | ")[1]: line for line in (tmp_path / "paired.md").read_text().splitlines()
            if line.startswith("| sigmoid_vs_relu | blocks=")}
    assert rows["blocks=1-relu"].endswith("| - |") and rows["blocks=1-sigmoid"].endswith("| - |")
    assert not rows["blocks=2-relu"].endswith("| - |")


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r.update(schema=3), "is not an ablation-bench results file of schema 1 or 2"),
    (lambda r: r.update(studies={}), "the files share no study"),
    (lambda r: r.update(profile="smoke"), "the baseline ran the full profile and the current file the smoke one; "
                                          "compare runs of the same profile"),
    (lambda r: r["studies"]["sigmoid_vs_relu"].update(data_checksum="0" * 16), "sigmoid_vs_relu was measured on different data"),
])
def test_unusable_input_exits_2(capsys, tmp_path, mutate, message):
    current = json.loads(REPEAT.read_text())
    mutate(current)
    (tmp_path / "current.json").write_text(json.dumps(current))
    code, out, err = compare(capsys, BENCH, tmp_path / "current.json")
    assert code == 2 and message in err and err.count("\n") == 1 and out == ""


def test_two_runs_with_the_same_collapsed_replicate_show_no_drift(capsys, tmp_path):
    """A replicate that predicted one class, scoring above chance on an unbalanced test set, in both files."""
    results = read_results(BENCH)
    results["studies"]["sigmoid_vs_relu"]["cells"]["blocks=6-sigmoid"].update(accuracy=[11.2] * 5, collapsed=[True] * 5)
    (tmp_path / "collapsed.json").write_text(json.dumps(results))
    code, out, _ = compare(capsys, tmp_path / "collapsed.json", tmp_path / "collapsed.json")
    assert code == 0 and "0 outside their band" in out


def test_missing_and_broken_files_exit_2(capsys, tmp_path):
    code, _, err = compare(capsys, BENCH, tmp_path / "absent.json")
    assert code == 2 and "cannot read" in err
    (tmp_path / "broken.json").write_text("{not json")
    code, _, err = compare(capsys, tmp_path / "broken.json", BENCH)
    assert code == 2 and "is not JSON" in err


def test_a_replicate_whose_training_diverged_is_named_and_its_non_finite_losses_are_not_judged(capsys, tmp_path):
    """A replicate whose loss went NaN or infinite (and whose accuracy fell to chance): a loss with no log has no
    t-test, so that cell's loss metric is left out of the cell's and the study's tests and named in a note; its
    accuracy is judged as any run's (one run at chance among 5 is no evidence at a cell's alpha), and the same-seed
    numerics mark the change, which --same-training fails.  Not a traceback."""
    results = read_results(BENCH)
    record = results["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]
    record.update(accuracy=[10.0, *record["accuracy"][1:]], collapsed=[True, *record["collapsed"][1:]],
                  final_loss=[math.nan, *record["final_loss"][1:]])
    bimodal = results["studies"]["batchnorm_vs_groupnorm"]["cells"]["batch_size=4-groupnorm"]  # a run at chance is
    bimodal.update(accuracy=[10.0, *bimodal["accuracy"][1:]])  # the share test's, not a diverged seed's
    infinite = copy.deepcopy(results)
    infinite["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]["final_loss"][0] = math.inf
    for name, diverged in (("nan.json", results), ("inf.json", infinite)):
        (tmp_path / name).write_text(json.dumps(diverged))
        code, out, err = compare(capsys, BENCH, tmp_path / name)
        assert code == 0 and err == ""
        assert "33 cells compared: 0 outside their band, 0 loss metrics moved, 0 of 6 study shifts" in out
        assert re.search(r"^sigmoid_vs_relu +final_loss +15 ", out, re.MULTILINE)  # of 16 cells
        assert "- sigmoid_vs_relu[blocks=4-relu]: numerics changed: final loss is not finite in one run of a seed" in out
        assert ("note: loss not finite in some replicate (training diverged): sigmoid_vs_relu[blocks=4-relu] "
                "(final_loss); those loss metrics are not judged, in the cell or its study (the runs' accuracy is)"
                ) in out
        assert ("note: replicates at chance where every baseline run learned (a seed that diverged?): "
                "sigmoid_vs_relu[blocks=4-relu] (1 of 5); not a failure by the cell's prediction bound at these "
                "counts (docs/statistics.md); on shared seeds --same-training fails it") in out
        code, out, _ = compare(capsys, BENCH, tmp_path / name, "--same-training")
        assert code == 1 and re.search(r"blocks=4-relu .* CHANGED: numerics +changed", out)
        code, out, _ = compare(capsys, tmp_path / name, tmp_path / name, "--same-training")
        assert code == 0 and "numerics changed in 0 of 33" in out and "loss not finite in some replicate" in out
        assert "replicates at chance where every baseline run learned" not in out  # the baseline's run too


def test_cells_only_one_file_holds_are_named_not_silently_left_out(capsys, tmp_path):
    """An interrupted run (its finished cells kept) against a whole baseline: what was compared passes, and a note
    names what was not, either way."""
    results = read_results(REPEAT)
    del results["studies"]["conv_activation_norm_position"]
    cells = results["studies"]["sigmoid_vs_relu"]["cells"]
    for cell_id in [c for c in cells if c.startswith(("blocks=7", "blocks=8"))]:
        del cells[cell_id]
    (tmp_path / "cut.json").write_text(json.dumps(results))
    code, out, _ = compare(capsys, BENCH, tmp_path / "cut.json")
    assert code == 0 and "\n26 cells compared: 0 outside their band" in out
    assert ("note: 7 cells only in the baseline, not compared: conv_activation_norm_position[order=conv_bn_relu], "
            "conv_activation_norm_position[order=conv_relu_bn], conv_activation_norm_position[order=conv_leakyrelu_bn], "
            "sigmoid_vs_relu[blocks=7-sigmoid], ...") in out
    code, out, _ = compare(capsys, tmp_path / "cut.json", BENCH)
    assert "note: 7 cells only in the current file, not compared: " in out
    results["studies"] = {"sigmoid_vs_relu": dict(results["studies"]["sigmoid_vs_relu"],
                                                  cells={"blocks=4-relu": cells["blocks=4-relu"]})}
    (tmp_path / "one.json").write_text(json.dumps(results))
    code, out, _ = compare(capsys, BENCH, tmp_path / "one.json")
    assert "\n1 cell compared: 0 outside their band" in out and "32 cells only in the baseline" in out


def test_a_study_too_small_for_its_shift_test_says_why_it_has_none(capsys, tmp_path):
    """One replicate a cell: no seed spread to test a study's shift by, so the summary says there is none and a
    note says what the test needs, rather than "0 of 0 study shifts"."""
    results = read_results(BENCH)
    for entry in results["studies"].values():
        for record in entry["cells"].values():
            record.update({key: record[key][:1] for key in PER_REPLICATE if key in record})
    (tmp_path / "one.json").write_text(json.dumps(results))
    code, out, _ = compare(capsys, BENCH, tmp_path / "one.json")
    assert code == 0 and "33 cells compared: 0 outside their band, 0 loss metrics moved, no study shift, " in out
    assert ("note: no study shift for batchnorm_vs_groupnorm, conv_activation_norm_position, sigmoid_vs_relu: it "
            "needs two compared cells whose runs learn, with 2 replicates a side (3 shared seeds to pair them)") in out


@pytest.mark.parametrize("change,message", [
    (lambda r: r.pop("profile"), "the file lacks profile"),
    (lambda r: r["environment"].pop("device_name"), "environment lacks device_name"),
    (lambda r: r.update(studies=[]), "studies is not an object"),
    (lambda r: r["studies"]["sigmoid_vs_relu"].pop("data_checksum"), "study sigmoid_vs_relu lacks data_checksum"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"].pop("wall_s"),
     "sigmoid_vs_relu[blocks=4-relu] lacks wall_s"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"].update(accuracy=[]),
     "sigmoid_vs_relu[blocks=4-relu] accuracy is not a list of the replicates' accuracies (percentages)"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]["accuracy"].__setitem__(0, "61.2"),
     "sigmoid_vs_relu[blocks=4-relu] accuracy is not a list of the replicates' accuracies (percentages)"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]["accuracy"].__setitem__(0, math.nan),
     "sigmoid_vs_relu[blocks=4-relu] accuracy is not a list of the replicates' accuracies (percentages)"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]["accuracy"].__setitem__(0, 161.0),
     "sigmoid_vs_relu[blocks=4-relu] accuracy is not a list of the replicates' accuracies (percentages)"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]["seeds"].__setitem__(0, 0.5),
     "sigmoid_vs_relu[blocks=4-relu] seeds is not a list of whole numbers"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]["collapsed"].pop(),
     "sigmoid_vs_relu[blocks=4-relu] has 5 seeds but collapsed is not a list of as many values"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]["accuracy"].pop(),
     "sigmoid_vs_relu[blocks=4-relu] has 5 seeds but accuracy is not a list of as many values"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"]["final_loss"].__setitem__(0, None),
     "sigmoid_vs_relu[blocks=4-relu] has a loss that is not a number (NaN and Infinity, a diverged run's, are "
     "numbers; null is not)"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"].update(train_loss_curve=[[2.0, None]] * 5),
     "sigmoid_vs_relu[blocks=4-relu] has a loss that is not a number (NaN and Infinity, a diverged run's, are "
     "numbers; null is not)"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"].update(wall_s="12"),
     "sigmoid_vs_relu[blocks=4-relu] wall_s is not a number of seconds"),
    (lambda r: r["studies"]["sigmoid_vs_relu"]["cells"]["blocks=4-relu"].update(documented="23.01"),
     "sigmoid_vs_relu[blocks=4-relu] documented is neither null nor the documented runs' mean and runs"),
])
def test_an_incomplete_or_damaged_results_file_names_what_is_wrong(capsys, tmp_path, change, message):
    """A hand-edited or cut-off file of the right schema: one line that says where, not a KeyError's key or a
    TypeError deep in the statistics."""
    results = read_results(BENCH)
    change(results)
    (tmp_path / "edited.json").write_text(json.dumps(results))
    code, out, err = compare(capsys, BENCH, tmp_path / "edited.json")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"edited.json is an incomplete or damaged results file: {message}; write it anew" in err


@pytest.mark.parametrize("option,value,message", [
    ("--alarm-budget", "0", "argument --alarm-budget: must be between 0 and 1, got 0"),
    ("--alarm-budget", "1", "argument --alarm-budget: must be between 0 and 1, got 1"),
    ("--sd-floor", "-1", "argument --sd-floor: must be 0 or more, got -1"),
    ("--allowance-hardware", "x", "argument --allowance-hardware: 'x' is not a number"),
    ("--min-throughput", "-0.5", "argument --min-throughput: must be 0 or more, got -0.5"),
])
def test_a_tolerance_that_would_flag_everything_or_nothing_is_refused(capsys, option, value, message):
    """A budget of 0 passes everything and of 1 fails everything; a negative floor or allowance narrows bands."""
    code, out, err = compare(capsys, BENCH, REPEAT, option, value)
    assert code == 2 and message in err and err.count("\n") == 1 and out == ""


def twelve_seeds(results, shift=None):
    """The Sigmoid/ReLU study with 12 seeds a cell (the recorded 5, then 7 more around each cell's mean), each
    seed's accuracy moved by ``shift`` (cell -> points) where given."""
    import math

    results = json.loads(json.dumps(results))
    for cell_id, record in results["studies"]["sigmoid_vs_relu"]["cells"].items():
        mean = sum(record["accuracy"]) / len(record["accuracy"])
        record["accuracy"] += [mean + math.sin(3 * seed) for seed in range(5, 12)]
        record["accuracy"] = [a + (shift or {}).get(cell_id, 0.0) for a in record["accuracy"]]
        record["seeds"] = list(range(12))
        for key in PER_REPLICATE:
            if key not in ("accuracy", "seeds") and record.get(key) is not None:
                record[key] += record[key][:1] * 7
    return results


def test_cells_sharing_twelve_seeds_are_judged_seed_by_seed(capsys, tmp_path):
    """A 0.8-point drop in one cell, the same for every seed: paired, a regression (its runs spread about 1.3
    points, so unpaired it would pass); the summary and --json say which cells were paired."""
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    bench = read_results(BENCH)
    before.write_text(json.dumps(twelve_seeds(bench)))
    after.write_text(json.dumps(twelve_seeds(bench, {"blocks=4-relu": -0.8})))
    code, out, _ = compare(capsys, before, after)
    assert code == 1 and "- sigmoid_vs_relu[blocks=4-relu]: REGRESSION: mean of the 12 replicates paired by seed" in out
    assert "; 16 judged seed by seed" in out
    code, out, _ = compare(capsys, before, after, "--json")
    cells = {c["cell"]: c["verdicts"]["accuracy"] for c in json.loads(out)["cells"] if c["study"] == "sigmoid_vs_relu"}
    assert all(v["paired"] for v in cells.values()) and not cells["blocks=4-relu"]["passed"]
    other_seeds = json.loads(after.read_text())
    for record in other_seeds["studies"]["sigmoid_vs_relu"]["cells"].values():
        record["seeds"] = [seed + 100 for seed in record["seeds"]]
    after.write_text(json.dumps(other_seeds))
    code, out, _ = compare(capsys, before, after)
    assert "blocks=4-relu" not in out.split("cells compared")[1] and "judged seed by seed" not in out


def test_a_study_shift_on_seed_counts_four_times_apart_says_its_rate_needs_near_normal_means(capsys, tmp_path):
    """12 baseline seeds against 3 on other seeds: the pooled t holds its rate only for near-normal per-seed means
    (heavy tails: x1.0-1.2 of it at 3 against 12, simulated), and the output says so; 12 against 5 stay within it."""
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(twelve_seeds(read_results(BENCH))))
    repeat = read_results(REPEAT)
    for record in repeat["studies"]["sigmoid_vs_relu"]["cells"].values():
        record.update({key: record[key][:3] for key in PER_REPLICATE if record.get(key) is not None})
    after.write_text(json.dumps(repeat))
    _, out, _ = compare(capsys, before, after)
    assert ("note: sigmoid_vs_relu (3 seeds against 12): a study shift on other seeds with counts 4 or more times "
            "apart holds its false-alarm rate only where the per-seed means are near normal") in out
    assert re.findall(r"\w+ \(\d+ seeds against \d+\)", out) == ["sigmoid_vs_relu (3 seeds against 12)"]
    _, out, _ = compare(capsys, before, after, "--json")
    shift = next(s for s in json.loads(out)["study_shifts"] if s["study"] == "sigmoid_vs_relu" and
                 s["metric"] == "accuracy")
    assert shift["seeds"] == {"baseline": 12, "current": 3} and shift["test"] == "pooled"
    _, out, _ = compare(capsys, before, REPEAT)
    assert "seeds against" not in out


def test_a_study_trained_for_under_5_seconds_is_too_short_to_time(tmp_path):
    """A study's throughput is judged from 5 s of training a side: the order study of a recorded run, its training
    time scaled to 4.9 s on one side, is not timed and says why; at 5.1 s it is."""
    from ablation.compare import compare
    from ablation.results import training_seconds
    from ablation.verdict import Tolerance

    run = read_results(RECORDED / "h200-run-side-by-side.json")
    verdicts = {}
    for seconds in (4.9, 5.1):
        short = json.loads(json.dumps(run))
        cells = short["studies"]["conv_activation_norm_position"]["cells"].values()
        scale = seconds / training_seconds(cells)
        for cell in cells:
            cell["wall_s"] *= scale
            cell["images_per_s"] /= scale
        throughput = {t.study: t for t in compare(run, short, Tolerance()).throughputs}
        verdicts[seconds] = throughput["conv_activation_norm_position"]
    assert verdicts[4.9].ok is None and verdicts[4.9].why_not_judged == "under 5 s of training"
    assert verdicts[5.1].ok is True and verdicts[5.1].why_not_judged == ""


def test_replicates_trained_one_after_another_are_not_timed_against_fused_ones():
    """`run --no-fuse` trains each replicate alone (fused 1 in the file), several times slower on a GPU than the
    fused default: another way of training, whose speed says nothing about the code's."""
    from ablation.compare import compare
    from ablation.verdict import Tolerance

    run = read_results(RECORDED / "h200-run-side-by-side.json")
    one_by_one = json.loads(json.dumps(run))
    for cell in one_by_one["studies"]["sigmoid_vs_relu"]["cells"].values():
        cell["fused"] = 1
    throughput = {t.study: t for t in compare(run, one_by_one, Tolerance()).throughputs}
    assert throughput["sigmoid_vs_relu"].why_not_judged == "trained another way (fused: [5] vs [1])"
    assert throughput["conv_activation_norm_position"].ok is True
