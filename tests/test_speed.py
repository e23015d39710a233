"""The speed comparison: the notebook pipeline sees the same images, and every mode is timed."""

import os
from pathlib import Path

import pytest
import torch

from ablation.cli import main
from ablation.data import synthetic
from ablation.speed import NotebookImages, measure, speed_table
from ablation.studies import get_study
from ablation.train import prepare

RECORDED = Path(__file__).resolve().parent.parent / "bench" / "recorded"


def test_notebook_pipeline_feeds_the_same_normalized_images():
    data = synthetic(train_per_class=5, test_per_class=1)
    device_data = prepare(data, 5, 0, "cpu")
    notebook = NotebookImages(data.train_x, data.train_y)
    ours = device_data.normalize(data.train_x[:4].permute(0, 3, 1, 2), torch.float32)
    theirs = torch.stack([notebook[i][0] for i in range(4)])
    assert torch.allclose(ours, theirs, atol=1e-5) and [notebook[i][1] for i in range(4)] == data.train_y[:4].tolist()


def test_every_mode_is_timed_over_the_same_training_images(tiny_data):
    study = get_study("batchnorm_vs_groupnorm")
    row = measure(study, tiny_data, torch.device("cpu"), 2, "smoke", 0, [study.cell("batch_size=64-groupnorm")])
    assert row["study"] == "batchnorm_vs_groupnorm" and row["images"] == 1 * 2 * 200 * 1
    assert all(row[mode] > 0 for mode in ("notebook", "eager", "fused")) and "graphs" not in row  # CUDA only
    table = speed_table([row, dict(row, study="other")], "cpu")
    assert table.startswith("Training time on cpu") and "whole table" in table and "fused / notebook" in table
    assert "graphs" not in table


def test_speed_table_states_each_speed_up_as_a_time_ratio():
    row = {"study": "s", "images": 1000, "replicates": 2, "timed_sequential": 2,
           "notebook": 100.0, "eager": 20.0, "fused": 10.0, "graphs": 4.0}
    lines = speed_table([row, dict(row, study="t")], "NVIDIA H200", markdown=True).splitlines()
    header, total = ([c.strip() for c in line.strip("|").split("|")] for line in (lines[2], lines[-1]))
    cells = dict(zip(header, total))
    assert cells["study"] == "whole table" and cells["graphs s"] == "8.0" and cells["graphs img/s"] == "250"
    assert (cells["eager / notebook"], cells["fused / eager"], cells["graphs / notebook"], cells["graphs / fused"]) == (
        "x5.0", "x2.0", "x25.0", "x2.5")


def test_one_after_another_modes_can_time_a_sample_of_replicates_and_scale_up(monkeypatch, tiny_data):
    """Notebook and eager train replicates one after another, so timing 1 of 4 and multiplying by 4 estimates
    all 4; the fused modes always train them all."""
    import ablation.speed as speed

    trained = []

    def notebook_train(study, cell, dataset, seeds, *args):
        trained.append(("notebook", len(seeds)))
        return 0.5 * len(seeds)

    def run_cell(study, cell, data, replicates, profile, fuse, graphs):
        trained.append(("fused" if fuse else "eager", replicates))
        return type("Result", (), {"wall_s": 0.25 * replicates if not fuse else 1.0})

    monkeypatch.setattr(speed, "notebook_train", notebook_train)
    monkeypatch.setattr(speed, "run_cell", run_cell)
    study = get_study("batchnorm_vs_groupnorm")
    cells = [study.cell("batch_size=64-groupnorm"), study.cell("batch_size=128-groupnorm")]
    progress = []
    row = measure(study, tiny_data, torch.device("cpu"), 4, "smoke", 0, cells, log=progress.append,
                  sequential_replicates=1)
    assert trained == [("notebook", 1), ("eager", 1), ("fused", 4)] * 2
    assert progress[1] == ("[speed batchnorm_vs_groupnorm] batch_size=128-groupnorm: notebook 2.0 s, eager 1.0 s, "
                           "fused 1.0 s")  # the cell's own times, not the study's so far
    assert (row["notebook"], row["eager"], row["fused"]) == (2 * 0.5 * 4, 2 * 0.25 * 4, 2 * 1.0)
    table = speed_table([row], "cpu")
    assert table.endswith("notebook and eager timed on 1 of 4 replicates per cell (batchnorm_vs_groupnorm), "
                          "times scaled up to all: those modes train replicates one after another")
    assert "timed on" not in speed_table([measure(study, tiny_data, torch.device("cpu"), 4, "smoke", 0, cells)],
                                         "cpu")


def test_speed_command(capsys):
    assert main(["speed", "conv_activation_norm_position", "--data", "synthetic", "--device", "cpu", "--profile",
                 "smoke", "--replicates", "1", "--workers", "2", "--cell", "order=conv_relu_bn", "--quiet",
                 "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| conv_activation_norm_position |" in out and "| eager / notebook |" in out
    assert main(["speed", "all", "--workers", "-1", "--device", "cpu"]) == 2
    assert "--workers must be 0 or more, got -1" in capsys.readouterr().err
    assert main(["speed", "all", "--sequential-replicates", "0", "--device", "cpu"]) == 2
    assert "argument --sequential-replicates: must be at least 1, got 0" in capsys.readouterr().err


def test_the_notebook_pipeline_takes_no_more_workers_than_cpus(capsys, monkeypatch):
    """The notebooks ran 8 DataLoader workers; on fewer cores that many oversubscribe them (and torch warns)."""
    for cpus, default in ((2, 2), (16, 8)):
        monkeypatch.setattr(os, "cpu_count", lambda: cpus)
        with pytest.raises(SystemExit):
            main(["speed", "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert f"(default {default}: the notebooks' 8, or this machine's CPU count where it is smaller)" in help_text


def test_speed_times_only_the_modes_asked_for(capsys):
    assert main(["speed", "batchnorm_vs_groupnorm", "--data", "synthetic", "--device", "cpu", "--profile", "smoke",
                 "--replicates", "2", "--cell", "batch_size=128-groupnorm", "--quiet", "--markdown",
                 "--modes", "fused,eager"]) == 0
    header = capsys.readouterr().out.splitlines()[2]
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "study", "eager s", "fused s", "eager img/s", "fused img/s", "fused / eager"]


@pytest.mark.parametrize("modes,message", [
    ("fused,turbo", "argument --modes: unknown mode 'turbo'; choose from notebook,eager,fused,graphs"),
    ("fused,graphs", "--modes graphs needs CUDA; on cpu choose from notebook,eager,fused"),
])
def test_bad_modes_are_one_line(capsys, modes, message):
    assert main(["speed", "all", "--device", "cpu", "--modes", modes]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def eager_compile(model):
    """torch.compile's graph capture and autograd decomposition without Inductor's code generation, which takes
    about 20 s a shape on 2 CPU cores."""
    return torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=False)


def test_step_times_prints_each_way_per_sample_and_marks_the_cuda_only_ones(monkeypatch):
    import bench.step_times
    from bench.step_times import WAYS, main as step_times

    monkeypatch.setattr(bench.step_times, "compiled", eager_compile)
    table = step_times(["--data", "synthetic", "--device", "cpu", "--scale", "0.01",
                        "--cell", "batchnorm_vs_groupnorm:batch_size=2-batchnorm"])
    header, _, row = table.splitlines()[2:]
    assert header == "| cell (R) | " + " | ".join(WAYS) + " | compile s | ops |"
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "batch_size=2-batchnorm (8)" and cells[3:5] == ["-", "-"]
    assert all(float(cells[i]) > 0 for i in (1, 2, 5, 6))  # the compiled way runs on the CPU, without graphs
    assert 50 < int(cells[7]) < 120  # forward, backward and 3 GradScaler/SGD ops per replicate: 86 with torch 2.14


def test_step_times_reports_a_compile_that_fails_and_keeps_the_other_ways(monkeypatch, capsys):
    import bench.step_times

    def fails(model):
        raise RuntimeError("no compiler here\nand a second line")

    monkeypatch.setattr(bench.step_times, "compiled", fails)
    table = bench.step_times.main(["--data", "synthetic", "--device", "cpu", "--scale", "0.01",
                                   "--cell", "batchnorm_vs_groupnorm:batch_size=2-batchnorm"])
    cells = [c.strip() for c in table.splitlines()[-1].strip("|").split("|")]
    assert cells[5:7] == ["failed", "-"] and float(cells[1]) > 0
    assert capsys.readouterr().err.strip().endswith(
        "note: batchnorm_vs_groupnorm:batch_size=2-batchnorm: the compiled way failed: RuntimeError: no compiler here")


@pytest.mark.parametrize("cell_id", ["batch_size=8-batchnorm", "batch_size=8-groupnorm"])
def test_a_compiled_model_trains_as_the_eager_one_in_float64(cell_id):
    """The compiled candidate of step_times: after three fused steps of two replicates, every parameter and
    running statistic equals the eager model's (float64; Inductor's kernels themselves are only timed, on a GPU)."""
    from ablation.data import synthetic
    from ablation.studies import get_study
    from ablation.train import cell_step, prepare

    study = get_study("batchnorm_vs_groupnorm")
    data = prepare(synthetic(classes=10), 20, study.subset_seed, "cpu")
    eager, compiled = (cell_step(study, study.cell(cell_id), data, [0, 1], dtype=torch.float64) for _ in range(2))
    compiled.model = eager_compile(compiled.model)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        indices = torch.stack([torch.randperm(len(data.train_y), generator=generator)[:8] for _ in range(2)])
        eager(indices)
        compiled(indices)
    for (name, a), b in zip(eager.model.state_dict().items(), compiled.model.state_dict().values()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12), name


@pytest.mark.parametrize("argv,message", [
    (["--data", "missing.npz", "--device", "cpu"], "no such data file missing.npz"),
    (["--data", "synthetic", "--device", "cpu", "--scale", "0"], "argument --scale: must be above 0, got 0"),
    (["--data", "synthetic", "--device", "cuda"], "--device cuda, but CUDA is not available here"),
    (["--data", "synthetic:100", "--device", "cpu"], "batchnorm_vs_groupnorm is a study of 10 classes, but --data "
                                                     "synthetic:100 holds 100; use cifar10 or synthetic"),
])
def test_step_times_rejects_bad_input_in_one_line(capsys, monkeypatch, argv, message):
    from bench.step_times import main as step_times

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        step_times(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err.splitlines()[-1]


def test_side_by_side_gain_finds_the_groups_and_sets_their_time_against_one_after_another(tmp_path, capsys):
    """From two results files of the same table: the norm study's first four cells in pairs that each took as
    long as the slower of the two alone, the last cell alone."""
    import json

    from bench.side_by_side_gain import groups, main as side_by_side_gain

    alone = json.loads((RECORDED / "h200-run-replicate-sgd.json").read_text())
    norm = alone["studies"]["batchnorm_vs_groupnorm"]
    norm["cells"] = {c: norm["cells"][c] for c in list(norm["cells"])[:5]}
    alone["studies"] = {"batchnorm_vs_groupnorm": norm}
    together = json.loads(json.dumps(alone))
    cells = list(together["studies"]["batchnorm_vs_groupnorm"]["cells"].values())
    for pair in (cells[0:2], cells[2:4]):
        slower = max(c["wall_s"] for c in pair)
        for cell in pair:
            cell.update(wall_s=slower, side_by_side=2)
    assert groups(together["studies"]["batchnorm_vs_groupnorm"]["cells"]) == [
        ["batch_size=2-batchnorm", "batch_size=2-groupnorm"], ["batch_size=4-batchnorm", "batch_size=4-groupnorm"],
        ["batch_size=8-batchnorm"]]
    for name, results in (("alone", alone), ("together", together)):
        (tmp_path / f"{name}.json").write_text(json.dumps(results))
    rows = side_by_side_gain([str(tmp_path / "alone.json"), str(tmp_path / "together.json")]).splitlines()[2:]
    assert rows[0] == ("| batchnorm_vs_groupnorm | batch_size=2-batchnorm batch_size=2-groupnorm | 12.60 | 6.34 "
                       "| x1.99 |")  # 6.34 s + 6.27 s one after another
    assert rows[2] == "| batchnorm_vs_groupnorm | batch_size=8-batchnorm | 1.87 | 1.87 | x1.00 |"
    assert rows[-1] == "| **whole table** |  | 21.23 | 11.64 | x1.82 |"

    alone["studies"] = {}
    (tmp_path / "alone.json").write_text(json.dumps(alone))
    with pytest.raises(SystemExit):
        side_by_side_gain([str(tmp_path / "alone.json"), str(tmp_path / "together.json")])
    assert ("batchnorm_vs_groupnorm: batch_size=2-batchnorm is not in the file of cells one after another"
            in capsys.readouterr().err)

    together["environment"]["device_name"] = "NVIDIA H100 80GB HBM3"
    (tmp_path / "together.json").write_text(json.dumps(together))
    with pytest.raises(SystemExit) as exit_info:
        side_by_side_gain([str(tmp_path / "alone.json"), str(tmp_path / "together.json")])
    assert exit_info.value.code == 2 and "the files ran on different devices" in capsys.readouterr().err
