"""Figures, the Markdown report and run history, on the recorded H200 runs and on generated data."""

import copy
import json
import random
import re
import shutil
import statistics
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from ablation.cli import main
from ablation.report import history, markdown_report, plot_results, study_figure
from ablation.results import format_results, read_results
from ablation.studies import get_study

RECORDED = Path(__file__).resolve().parent.parent / "bench" / "recorded"


@pytest.fixture(scope="module")
def bench_run():
    return read_results(RECORDED / "h200-bench.json")


def test_batch_size_figure_shows_means_replicates_and_documented_values(bench_run):
    figure = study_figure(bench_run, "batchnorm_vs_groupnorm")
    ax = figure.axes[0]
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "test accuracy (%)"
    assert "NVIDIA H200" in ax.get_title() and "cifar10-small.npz" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["batchnorm: documented", "batchnorm: measured mean ± sd", "chance",
                              "groupnorm: documented", "groupnorm: measured mean ± sd"]
    cells = bench_run["studies"]["batchnorm_vs_groupnorm"]["cells"]
    means = [c for c in ax.containers if c.get_label() == "batchnorm: measured mean ± sd"][0].lines[0]
    assert list(means.get_xdata()) == [2, 4, 8, 16, 32, 64, 128]
    assert list(means.get_ydata()) == pytest.approx(
        [statistics.fmean(cells[f"batch_size={b}-batchnorm"]["accuracy"]) for b in (2, 4, 8, 16, 32, 64, 128)])
    dots = sum(len(c.get_offsets()) for c in ax.collections if c.get_label().startswith("_child"))
    assert dots == 14 * 8  # every replicate, the ones at chance included
    documented = [c for c in ax.collections if c.get_label() == "batchnorm: documented"][0]
    assert documented.get_offsets()[0].tolist() == [2.0, 10.01]


def test_order_figure_is_bars_with_documented_markers(bench_run):
    ax = study_figure(bench_run, "conv_activation_norm_position").axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx([60.20, 56.90, 58.18], abs=0.01)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv → bn → relu", "conv → relu → bn",
                                                          "conv → leakyrelu → bn"]


def test_plot_writes_one_png_per_study(bench_run, tmp_path):
    paths = plot_results(bench_run, tmp_path / "figures")
    assert [p.name for p in paths] == ["sigmoid_vs_relu.png", "batchnorm_vs_groupnorm.png",
                                       "conv_activation_norm_position.png"]
    for path in paths:
        assert matplotlib.image.imread(path).shape[:2] == (576, 900)


def test_markdown_report_mirrors_the_documents_tables(bench_run):
    text = markdown_report(bench_run)
    assert text.startswith("# ablation-bench report\n\nNVIDIA H200 · torch 2.11.0+cu130")
    titles = [line for line in text.splitlines() if line.startswith("## ")]
    assert titles == ["## Sigmoid vs ReLU over depth (`sigmoid_vs_relu`)",
                      "## BatchNorm vs GroupNorm over batch size (`batchnorm_vs_groupnorm`)",
                      "## Order of conv, norm and activation (`conv_activation_norm_position`)", "## Power",
                      "## Findings"]
    assert "| blocks | variant | documented | measured | difference | verdict |" in text
    assert "| 2 | batchnorm | 10.01 | 11.84 ± 5.62 (n=8, 7 at chance) | +1.83 | ok |" in text
    assert "| conv_bn_relu |  | 62.64 | 60.20 ± 0.55 (n=3) | -2.44 | ok |" in text
    assert text.count("- holds: ") == 5
    assert "CUDA graphs" not in text


def test_markdown_report_marks_a_failed_finding(bench_run):
    """ReLU at depth 8 ends at chance: the claim that ReLU rises with depth fails (12 points below depth 1, where
    it must gain 5), and the report says so."""
    broken = copy.deepcopy(bench_run)
    broken["studies"]["sigmoid_vs_relu"]["cells"]["blocks=8-relu"]["accuracy"] = [10.0, 10.1, 9.9, 10.0, 10.05]
    findings = markdown_report(broken).split("## Findings\n")[1]
    assert "- **fails**: ReLU accuracy rises 5 points or more from depth 1 to 8, Sigmoid's at most 2" in findings
    assert findings.count("- holds: ") == 3


def test_a_finding_whose_cells_were_not_all_run_is_left_out_not_failed(bench_run):
    """run --cell on part of a study: findings on the cells it has are judged, the others are not reported."""
    partial = copy.deepcopy(bench_run)
    cells = partial["studies"]["sigmoid_vs_relu"]["cells"]
    partial["studies"]["sigmoid_vs_relu"]["cells"] = {c: cells[c] for c in ("blocks=1-sigmoid", "blocks=1-relu",
                                                                              "blocks=8-sigmoid", "blocks=8-relu")}
    findings = markdown_report(partial).split("## Findings\n")[1]
    assert "- holds: ReLU accuracy rises 5 points or more from depth 1 to 8, Sigmoid's at most 2" in findings
    assert "ReLU beats Sigmoid by 5 points" not in findings and "**fails**" not in findings
    assert findings.count("- holds: ") == 4


def test_a_smoke_run_is_shown_but_not_judged(bench_run):
    """One epoch on 20 images per class cannot be held to the documented tables: no verdict, no finding."""
    low = copy.deepcopy(bench_run)  # 20 points lower: in a full run, 24 of the 33 cells are regressions (the order
    for entry in low["studies"].values():  # study's 3 replicates and the single documented runs of the norm study
        for record in entry["cells"].values():  # leave the others wide bands)
            record["accuracy"] = [max(a - 20, 0.0) for a in record["accuracy"]]
    assert markdown_report(low).count("| **regression** |") == 24
    text = markdown_report(dict(low, profile="smoke"))
    assert "Profile smoke: a check of the pipeline, too short to compare with the documented tables" in text
    assert "| conv_bn_relu |  | 62.64 | 40.20 ± 0.55 (n=3) | -22.44 | not judged |" in text
    assert "## Findings" not in text and "regression" not in text
    assert text.count("| not judged |") == 33


def test_report_says_when_training_replayed_cuda_graphs(bench_run):
    graphed = copy.deepcopy(bench_run)
    for cell in graphed["studies"]["sigmoid_vs_relu"]["cells"].values():
        cell["cuda_graphs"] = True
    assert "profile full · CUDA graphs · commit" in markdown_report(graphed).splitlines()[2]


def test_the_example_report_in_docs_is_what_report_prints_for_its_recorded_run():
    """docs/h200-report.md, the README's example, stays what the code prints (regenerate it with `python -m ablation
    report bench/recorded/h200-bench-1018f58.json --markdown docs/h200-report.md`)."""
    example = RECORDED.parent.parent / "docs" / "h200-report.md"
    assert markdown_report(read_results(RECORDED / "h200-bench-1018f58.json")) == example.read_text()


def test_the_variants_report_in_docs_is_what_report_prints_and_names_each_studys_data():
    """docs/h200-variants-report.md (regenerate it with `python -m ablation report bench/recorded/h200-variants.json
    --markdown docs/h200-variants-report.md`): the CIFAR-100 variant trained on generated data beside the long
    variant's CIFAR-10, and its table, section and figure say so."""
    results = read_results(RECORDED / "h200-variants.json")
    text = markdown_report(results)
    assert text == (RECORDED.parent.parent / "docs" / "h200-variants-report.md").read_text()
    cifar100 = text.split("(`batchnorm_vs_groupnorm_cifar100`)")[1]
    assert cifar100.startswith("\n\nData: `synthetic:100`\n\n|")
    assert "Data:" not in text.split("(`batchnorm_vs_groupnorm_cifar100`)")[0]
    titles = [line for line in format_results(results, "table").splitlines() if "accuracy %, data:" in line]
    assert [t.split("data: ")[1] for t in titles] == [".gpu-data/cifar10-small.npz, profile: full",
                                                      "synthetic:100, profile: full"]
    assert "data synthetic:100," in study_figure(results, "batchnorm_vs_groupnorm_cifar100").axes[0].get_title()


def test_a_report_of_a_planted_fault_run_says_so_before_its_verdicts():
    text = markdown_report(read_results(RECORDED / "h200-fault-lr_times_10.json")).splitlines()
    assert text[4] == ("Trained with a planted fault, lr_times_10 (bench/faults.py): what the bench catches of it, "
                       "not what the code trains.")
    assert not any("planted fault" in line for line in markdown_report(read_results(RECORDED / "h200-bench.json"))
                   .splitlines())


def test_history_marks_drift_from_the_run_before(tmp_path):
    for name, created in (("h200-bench", "2026-11-26T05:42"), ("h200-repeat", "2026-11-26T05:46"),
                          ("h200-fault-lr_times_10", "2026-11-26T05:50")):
        results = json.loads((RECORDED / f"{name}.json").read_text())
        results["created"] = created
        (tmp_path / f"{name}.json").write_text(json.dumps(results))
    (tmp_path / "notes.json").write_text('{"not": "results"}')
    frame, notes, _ = history(tmp_path)
    assert list(frame.columns) == ["2026-11-26T05:42 abd3fd8", "2026-11-26T05:46 abd3fd8", "2026-11-26T05:50 abd3fd8"]
    assert frame.loc["sigmoid_vs_relu[blocks=1-relu]"].tolist() == ["21.95", "22.33", "29.27 !"]
    assert frame.loc["batchnorm_vs_groupnorm[batch_size=2-batchnorm]"].tolist()[2] == "-"
    assert not any("!" in v for v in frame.iloc[:, 1])  # the unchanged repeat drifted nowhere
    assert notes == [f"passed over: {tmp_path / 'notes.json'} is not an ablation-bench results file of schema 1 or 2"]


def test_history_keeps_runs_of_one_commit_made_in_the_same_minute_apart(tmp_path):
    """Two runs whose column would read the same (one commit, one minute: two runners at once) each keep their
    own values, told apart by their file's name; before, the later run's values filled both columns."""
    for name, created in (("h200-bench", "2026-11-26T05:42:10"), ("h200-fault-lr_times_10", "2026-11-26T05:42:50")):
        results = json.loads((RECORDED / f"{name}.json").read_text())
        results["created"] = created
        (tmp_path / f"{name}.json").write_text(json.dumps(results))
    frame, _, _ = history(tmp_path)
    assert list(frame.columns) == ["2026-11-26T05:42 abd3fd8 h200-bench.json",
                                   "2026-11-26T05:42 abd3fd8 h200-fault-lr_times_10.json"]
    assert frame.loc["sigmoid_vs_relu[blocks=1-relu]"].tolist() == ["21.95", "29.27 !"]


def test_history_shows_the_newest_runs_and_judges_them_against_the_hidden_ones(tmp_path, capsys):
    """--last 1 shows one column; its mark still compares it with the run before it, which is not shown."""
    for name, created in (("h200-bench", "2026-11-26T05:42"), ("h200-fault-lr_times_10", "2026-11-26T05:50")):
        results = json.loads((RECORDED / f"{name}.json").read_text())
        results["created"] = created
        (tmp_path / f"{name}.json").write_text(json.dumps(results))
    assert main(["history", str(tmp_path), "--last", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["cell", "2026-11-26T05:50", "abd3fd8"]
    assert re.search(r"^sigmoid_vs_relu\[blocks=1-relu\] +29.27 !$", out, re.MULTILINE)
    assert "showing the newest 1 of 2 runs" in err
    assert main(["history", str(tmp_path), "--last", "5"]) == 0
    assert "showing" not in capsys.readouterr().err


def test_report_and_history_commands(capsys, tmp_path):
    shutil.copy(RECORDED / "h200-bench.json", tmp_path / "a.json")
    assert main(["report", str(tmp_path / "a.json"), "--markdown", str(tmp_path / "r.md"),
                 "--plot", str(tmp_path / "png")]) == 0
    assert (tmp_path / "r.md").read_text().startswith("# ablation-bench report")
    assert capsys.readouterr().err.splitlines() == [f"report written to {tmp_path / 'r.md'}"] + [
        f"figure written to {tmp_path / 'png' / name}.png" for name in
        ("sigmoid_vs_relu", "batchnorm_vs_groupnorm", "conv_activation_norm_position")]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "batchnorm_vs_groupnorm.png", "conv_activation_norm_position.png", "sigmoid_vs_relu.png"]
    assert main(["history", str(tmp_path), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| cell | 2026-11-26T05:42 abd3fd8 |")


@pytest.mark.parametrize("argv,message", [
    (["history", "README.md"], "README.md is not a folder"),
    (["report", "absent.json"], "cannot read absent.json"),
    (["report", str(RECORDED / "h200-bench.json"), "--plot", "README.md"], "--plot README.md is a file"),
    (["run", "sigmoid_vs_relu", "--device", "cpu", "--plot", "no/such/dir/figs"], "directory no/such/dir does not exist"),
    (["report", str(RECORDED / "h200-bench.json"), "--markdown", "no/such/dir/r.md"],
     "--markdown no/such/dir/r.md: directory no/such/dir does not exist"),
    (["report", str(RECORDED / "h200-bench.json"), "--markdown", "docs"], "--markdown docs is a directory"),
    (["compare", str(RECORDED / "h200-bench.json"), str(RECORDED / "h200-repeat.json"), "--markdown", "docs"],
     "give a file name such as docs/drift.md"),
])
def test_bad_report_input_is_one_line_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_run_with_plot_writes_the_figure_from_its_own_results(capsys, tmp_path):
    code = main(["run", "conv_activation_norm_position", "--data", "synthetic", "--device", "cpu", "--profile",
                 "smoke", "--replicates", "1", "--cell", "order=conv_bn_relu", "--quiet", "--plot", str(tmp_path)])
    assert code == 0 and (tmp_path / "conv_activation_norm_position.png").is_file()


def test_variant_of_cifar100_runs_on_generated_100_class_data(capsys, tmp_path):
    from ablation.data import synthetic

    data = synthetic(classes=100, train_per_class=20, test_per_class=1)
    path = tmp_path / "hundred.npz"
    np.savez(path, train_x=data.train_x.numpy(), train_y=data.train_y.numpy(), test_x=data.test_x.numpy(),
             test_y=data.test_y.numpy())
    code = main(["run", "batchnorm_vs_groupnorm_cifar100", "--data", str(path), "--device", "cpu", "--profile",
                 "smoke", "--replicates", "1", "--cell", "batch_size=128-groupnorm", "--quiet",
                 "--out", str(tmp_path / "r.json")])
    assert code == 0
    results = read_results(tmp_path / "r.json")
    entry = results["studies"]["batchnorm_vs_groupnorm_cifar100"]
    assert entry["classes"] == 100 and entry["groups"] == [16, 32, 32] and entry["data"] == str(path)
    assert get_study("batchnorm_vs_groupnorm_cifar100").model(
        get_study("batchnorm_vs_groupnorm_cifar100").cells[1], classes=100)[0].norm.num_groups == 16
    chance = study_figure(results, "batchnorm_vs_groupnorm_cifar100").axes[0].get_lines()[0]
    assert chance.get_label() == "chance" and list(chance.get_ydata()) == [1.0, 1.0]


def write_history(folder, seed, drop, other_data_from=None):
    """Ten runs of the recorded H200 bench a day apart, every replicate moved by noise of sd 0.15 and lowered by
    drop(run, cell_id) points; from run ``other_data_from`` on, trained on another copy of the data."""
    rng = random.Random(seed)
    base = json.loads((RECORDED / "h200-bench.json").read_text())
    for run in range(10):
        results = copy.deepcopy(base)
        results["created"] = f"2026-11-{10 + run:02d}T00:00"
        for entry in results["studies"].values():
            if other_data_from is not None and run >= other_data_from:
                entry["data_checksum"] = "other copy"
            for cell_id, record in entry["cells"].items():
                record["accuracy"] = [a - drop(run, cell_id) + rng.gauss(0, 0.15) for a in record["accuracy"]]
        (folder / f"run{run}.json").write_text(json.dumps(results))
    return folder


def test_history_flags_a_step_in_a_cells_level_that_no_pair_of_runs_shows(tmp_path, monkeypatch):
    """Ten runs; from the sixth on, ReLU at depth 4 runs 1.5 points lower, each run within its band of the one
    before (a step of 1.5 against 5 replicates of spread 1). The change point is found where the new level starts;
    the other cells, which only wander, and a single low run are not flagged.  Each of the 33 cells' series is
    tested at the history's alpha over the 33 (Bonferroni), so the whole history keeps it."""
    import ablation.report as report

    alphas = []

    def recorded_level_shift(series, alpha, *args):
        alphas.append(alpha)
        return level_shift(series, alpha, *args)

    level_shift = report.level_shift
    monkeypatch.setattr(report, "level_shift", recorded_level_shift)

    def drop(run, cell_id):
        return (1.5 if cell_id == "blocks=4-relu" and run >= 5 else 0.0) + (
            4.0 if cell_id == "blocks=6-relu" and run == 7 else 0.0)

    frame, notes, _ = history(write_history(tmp_path, 1, drop))
    assert set(alphas) == {0.01 / 33}  # docs/statistics.md: 1 % over the whole history's 33 series
    flagged = [note for note in notes if note.startswith("level shift")]
    assert len(flagged) == 1 and re.match(r"level shift: sigmoid_vs_relu\[blocks=4-relu\] from 33\.0\d to 31\.5\d from "
                                          r"2026-11-15T00:00 abd3fd8 on \(pooled t, adjusted p ", flagged[0])
    row = frame.loc["sigmoid_vs_relu[blocks=4-relu]"].tolist()
    assert row[5].endswith(" ^") and not any(v.endswith("^") for v in row[:5] + row[6:])
    assert not any("!" in v for v in row)  # no run left the band of the run before it
    assert not frame.loc["sigmoid_vs_relu[blocks=6-relu]"].str.endswith("^").any()


def test_history_alert_fails_the_night_a_level_shift_first_shows_and_only_that_night(tmp_path, capsys):
    """A nightly job runs `history --alert` on its growing folder: ReLU at depth 4 steps 1.5 points down from the
    sixth run, which three runs of the new level first show (the eighth run): that night exits 1 naming it, the
    nights before and after exit 0, as does a history without the step."""
    def drop(run, cell_id):
        return 1.5 if cell_id == "blocks=4-relu" and run >= 5 else 0.0

    runs = sorted(write_history(tmp_path, 1, drop).glob("run*.json"), key=lambda path: int(path.stem[3:]))
    codes = {}
    for nights in (7, 8, 9):
        folder = tmp_path / f"night{nights}"
        folder.mkdir()
        for run in runs[:nights]:
            shutil.copy(run, folder)
        codes[nights] = main(["history", str(folder), "--alert"])
        out = capsys.readouterr().out
        assert ("ALERT: the newest run brings a level shift: sigmoid_vs_relu[blocks=4-relu] from 33.0" in out) == (
            nights == 8)
    assert codes == {7: 0, 8: 1, 9: 0}
    assert main(["history", str(tmp_path / "night8")]) == 0  # without --alert: the table only
    (tmp_path / "steady").mkdir()
    assert main(["history", str(write_history(tmp_path / "steady", 1, lambda run, cell_id: 0.0)), "--alert"]) == 0


def test_history_looks_for_level_shifts_among_runs_on_the_same_data(tmp_path):
    """Five runs on one copy of the data, then five on another where one cell learns 3 points less: a new level of
    the data, not of the code. Each copy's runs are a series of their own, and neither shifts; the same runs all on
    one copy shift there."""
    def drop(run, cell_id):
        return 3.0 if cell_id == "blocks=4-relu" and run >= 5 else 0.0

    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    frame, notes, _ = history(write_history(tmp_path / "two", 2, drop, other_data_from=5))
    assert not [note for note in notes if note.startswith("level shift")]
    assert not frame.loc["sigmoid_vs_relu[blocks=4-relu]"].str.endswith("^").any()
    _, notes, _ = history(write_history(tmp_path / "one", 2, drop))
    assert [note.split(" from ")[0] for note in notes if note.startswith("level shift")] == [
        "level shift: sigmoid_vs_relu[blocks=4-relu]"]


def test_history_marks_drift_from_the_run_before_on_the_same_data(tmp_path):
    """A run on another copy in between does not hide a drop: the third run is judged against the first."""
    def drop(run, cell_id):
        return 20.0 if cell_id == "blocks=4-relu" and run == 2 else 0.0

    write_history(tmp_path, 3, drop)
    between = json.loads((tmp_path / "run1.json").read_text())
    for entry in between["studies"].values():
        entry["data_checksum"] = "other copy"
    (tmp_path / "run1.json").write_text(json.dumps(between))
    for run in range(3, 10):
        (tmp_path / f"run{run}.json").unlink()
    frame, _, _ = history(tmp_path)
    assert frame.loc["sigmoid_vs_relu[blocks=4-relu]"].tolist()[2].endswith(" !")


def test_a_history_with_no_change_is_flagged_at_most_at_its_alpha():
    """2,000 histories of 30 runs with no change (normal run means), no minimum effect, alpha 1 %: the pooled t over
    every split, Bonferroni, flags fewer than 1 %."""
    from ablation.stats import level_shift

    rng = random.Random(0)
    flagged = sum(level_shift([rng.gauss(0, 1) for _ in range(30)], 0.01, 0.0) is not None for _ in range(2000))
    assert flagged <= 20


def test_a_level_shift_needs_three_runs_a_side_and_the_minimum_effect():
    from ablation.stats import level_shift

    step = [10.0, 10.1, 9.9, 10.0, 12.0, 12.1, 11.9, 12.0]
    assert level_shift(step, 0.01, 1.0) == (4, pytest.approx(10.0), pytest.approx(12.0), pytest.approx(
        level_shift(step, 0.01, 1.0)[3]))
    assert level_shift(step, 0.01, 2.5) is None  # smaller than the minimum effect
    assert level_shift([20.0] * 4 + [21.0] * 4, 0.01, 1.0)[:3] == (4, 20.0, 21.0)  # exactly the minimum effect
    assert level_shift([10.0, 10.1, 9.9, 10.0, 10.1, 9.9, 10.0, 14.0], 0.01, 1.0) is None  # one late run
    assert level_shift(step[:5], 0.01, 1.0) is None
