"""The command line end to end: tables, results files, and one-line errors with exit status 2."""

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import ablation.train as train
from ablation.cli import main
from ablation.results import read_results, short_commit

RECORDED = Path(__file__).resolve().parent.parent / "bench" / "recorded"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_studies_cells_and_hyperparameters(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for text in ("sigmoid_vs_relu", "blocks=8-relu", "batch_size=2-batchnorm", "order=conv_leakyrelu_bn",
                 "optimizer=adamw", "'momentum': 0.91", "eta_min", "step_size", "amp=True"):
        assert text in out


def test_smoke_run_of_all_studies_on_the_real_copy(capsys, tmp_path, small_cifar_npz):
    out_file = tmp_path / "results.json"
    code, out, err = run(capsys, "run", "all", "--profile", "smoke", "--device", "cpu", "--replicates", "1",
                         "--data", str(small_cifar_npz), "--out", str(out_file))
    assert code == 0, err
    for title in ("Sigmoid vs ReLU over depth", "BatchNorm vs GroupNorm over batch size", "Order of conv, norm and activation"):
        assert title in out
    assert "62.64" in out and "10.01" in out and "37.61" in out  # documented values beside the measured
    assert out.rstrip().endswith("Profile smoke: a check of the pipeline, too short to compare with the documented "
                                 "tables, so no cell or finding is judged.")
    assert err.splitlines()[0] == ("training 33 cells, 33 models (sigmoid_vs_relu: 16 x 1, batchnorm_vs_groupnorm: "
                                   "14 x 1, conv_activation_norm_position: 3 x 1) on cpu, profile smoke")
    assert "[conv_activation_norm_position 3/3] order=conv_leakyrelu_bn" in err  # progress on stderr
    summary = re.fullmatch(r"33 cells: ([\d.]+) s training, ([\d.]+) s model set-up, ([\d.]+) s evaluation; "
                           r"([\d.]+) s since the run began \(.*\)", err.splitlines()[-2])
    assert summary, err.splitlines()[-2]
    training, setup, evaluation, total = map(float, summary.groups())
    assert training > 0 and setup > 0 and evaluation > 0 and training + setup + evaluation <= total
    results = read_results(out_file)
    assert set(results["studies"]) == {"sigmoid_vs_relu", "batchnorm_vs_groupnorm", "conv_activation_norm_position"}
    env = results["environment"]
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and "git_commit" in env
    assert results["data"] == str(small_cifar_npz) and results["profile"] == "smoke"
    order = results["studies"]["conv_activation_norm_position"]
    assert len(order["data_checksum"]) == 16 and order["hyperparameters"]["epochs"] == 1
    record = order["cells"]["order=conv_bn_relu"]
    assert record["documented"]["runs"] == [62.32, 62.23, 63.38] and record["seeds"] == [99584]
    assert len(record["accuracy"]) == len(record["final_loss"]) == len(record["collapsed"]) == 1
    assert 0 <= record["accuracy"][0] <= 100 and record["images_per_s"] > 0
    assert record["setup_s"] > 0 and record["eval_s"] > 0


def synthetic_run(capsys, data, *extra):
    """Two norm-study cells on generated data (``data``: the tiny_npz fixture), smoke profile."""
    return run(capsys, "run", "batchnorm_vs_groupnorm", "--data", str(data), "--device", "cpu", "--profile", "smoke",
               "--cell", "batch_size=64-batchnorm", "--cell", "batch_size=64-groupnorm", "--replicates", "2",
               "--quiet", *extra)


def test_markdown_table_in_the_study_documents_shape(capsys, tmp_path, monkeypatch, tiny_npz):
    monkeypatch.setattr(train, "_warned_cpu_amp", False)  # said once per process: make this test the first
    code, out, err = synthetic_run(capsys, tiny_npz, "--format", "markdown")
    assert code == 0 and err.startswith("note: bf16 autocast needs CUDA") and err.count("\n") == 1  # --quiet: no progress
    lines = out.splitlines()
    assert lines[0].startswith("### BatchNorm vs GroupNorm")
    header = "| batch_size | batchnorm measured | batchnorm documented | groupnorm measured | groupnorm documented |"
    assert header in lines
    row = next(line for line in lines if line.startswith("| 64 |"))
    assert "(n=2" in row and "| 53.18 |" in row and "| 51.37 |" in row
    assert not any(line.startswith("| 2 |") for line in lines)  # cells not run are not shown


def test_csv_and_json_formats(capsys, tmp_path, tiny_npz):
    _, out, _ = synthetic_run(capsys, tiny_npz, "--format", "csv")
    lines = out.splitlines()
    assert lines[0] == "study,cell,level,variant,documented,mean,sd,n,at_chance"
    assert lines[1].startswith("batchnorm_vs_groupnorm,batch_size=64-batchnorm,64,batchnorm,53.18,")
    assert lines[1].split(",")[-2] == "2" and lines[1].split(",")[-1] in {"0", "1", "2"}
    _, out, _ = synthetic_run(capsys, tiny_npz, "--format", "json")
    cells = json.loads(out)["studies"]["batchnorm_vs_groupnorm"]["cells"]
    assert cells["batch_size=64-groupnorm"]["seeds"] == [84035, 84036]


def test_json_format_is_strict_where_a_run_diverged():
    """A diverged replicate's loss is NaN or infinite in the results file (read back as such); on stdout, for other
    programs, it is null."""
    from ablation.results import format_results

    results = read_results(RECORDED / "h200-bench.json")
    cell = results["studies"]["sigmoid_vs_relu"]["cells"]["blocks=7-sigmoid"]
    cell["final_loss"][1], cell["final_loss"][2] = math.nan, math.inf

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    printed = json.loads(format_results(results, "json"), parse_constant=refuse)
    assert printed["studies"]["sigmoid_vs_relu"]["cells"]["blocks=7-sigmoid"]["final_loss"][:3] == [
        cell["final_loss"][0], None, None]


def test_runs_at_chance_are_counted_at_the_studys_chance():
    """Chance is 1 % on CIFAR-100: a run at 5 % learned something there, where on CIFAR-10 it would be at chance."""
    from ablation.results import results_frame

    cell = {"level": 2, "variant": "batchnorm", "documented": None, "accuracy": [5.0, 1.2, 0.9],
            "collapsed": [False, False, False]}
    frame = results_frame({"studies": {"batchnorm_vs_groupnorm_cifar100": {
        "classes": 100, "cells": {"batch_size=2-batchnorm": cell}}}})
    assert frame["at_chance"].tolist() == [2]


@pytest.mark.parametrize("no_fuse", [False, True])
def test_on_cpu_replicates_train_fused_only_at_small_batches(capsys, no_fuse, tiny_npz):
    """On a CPU fusing is faster at batches of 32 or fewer and slower above (train.CPU_FUSE_MAX_BATCH)."""
    code, out, err = run(capsys, "run", "batchnorm_vs_groupnorm", "--data", str(tiny_npz), "--device", "cpu",
                         "--profile", "smoke", "--cell", "batch_size=32-groupnorm", "--cell", "batch_size=64-groupnorm",
                         "--replicates", "2", "--quiet", "--format", "json", *(["--no-fuse"] if no_fuse else []))
    assert code == 0, err
    cells = json.loads(out)["studies"]["batchnorm_vs_groupnorm"]["cells"]
    fused = cells["batch_size=32-groupnorm"]["fused"], cells["batch_size=64-groupnorm"]["fused"]
    assert fused == ((1, 1) if no_fuse else (2, 1))


def test_runs_at_chance_are_marked(capsys, monkeypatch, tmp_path, tiny_npz):
    import ablation.train as train

    def constant_predictions(model, data, replicates, dtype, channels_last):
        n = len(data.test_y)
        return (torch.full((replicates,), float((data.test_y == 0).sum()) / n * 100),
                torch.ones(replicates, dtype=torch.bool), torch.full((replicates,), 2.3))

    monkeypatch.setattr(train, "evaluate", constant_predictions)
    code, out, _ = synthetic_run(capsys, tiny_npz)
    assert code == 0 and "(n=2, 2 at chance)" in out


def test_results_name_the_commit_and_whether_the_checkout_had_changes(tmp_path):
    """A results file made from edited code must not pass for the commit it started from."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    from ablation import results

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    commit = results._git_commit.__wrapped__  # uncached: the clone's state changes below
    assert commit(clone / "ablation") == head
    (clone / "README.md").write_text("edited\n")
    assert commit(clone / "ablation") == head + "+dirty"
    assert commit(tmp_path) is None  # not a checkout
    installed = clone / ".venv" / "site-packages" / "ablation"  # installed into a venv inside another checkout
    shutil.copytree(clone / "ablation", installed)
    assert commit(installed) is None
    assert results.environment(torch.device("cpu"))["git_commit"] == results._git_commit()  # this checkout's
    assert short_commit({"git_commit": head + "+dirty"}) == head[:7] + "+dirty"  # how report and history show it


@pytest.mark.parametrize("argv,message", [
    (["run", "resnet"], "unknown study 'resnet'; choose one of: sigmoid_vs_relu"),
    (["run", "sigmoid_vs_relu", "--cell", "blocks=9-relu"], "sigmoid_vs_relu has no cell 'blocks=9-relu'"),
    (["run", "all", "--cell", "blocks=1-relu"], "--cell needs a single study, not 'all': name the study"),
    (["run", "sigmoid_vs_relu", "--replicates", "0"], "argument --replicates: must be at least 1, got 0"),
    (["run", "sigmoid_vs_relu", "--replicates", "two"],
     "argument --replicates: 'two' is not a plan (pr, nightly, null) or a whole number"),
    (["run", "batchnorm_vs_groupnorm", "--groups", "32,8,8"], "block1: GroupNorm with 32 groups does not divide its 16 channels"),
    (["run", "batchnorm_vs_groupnorm", "--groups", "4,8"], "GroupNorm needs 3 group counts"),
    (["run", "batchnorm_vs_groupnorm", "--groups=-4,8,8"], "argument --groups: group counts must be at least 1, got -4,8,8"),
    (["run", "batchnorm_vs_groupnorm", "--groups", "4,0,8"], "argument --groups: group counts must be at least 1, got 4,0,8"),
    (["run", "sigmoid_vs_relu", "--groups", "4,8,8"], "--groups applies only to studies with GroupNorm cells"),
    (["run", "sigmoid_vs_relu", "--data", "missing.npz"], "no such data file missing.npz; pass --data PATH.npz"),
    (["run", "sigmoid_vs_relu", "--data", "images.tar"], "unknown data source 'images.tar'"),
    (["run", "all", "--data", "synthetic:100", "--profile", "smoke"],  # smoke: fails fast should the check go
     "sigmoid_vs_relu is a study of 10 classes, but --data synthetic:100 holds 100; use cifar10 or synthetic, "
     "or a PATH.npz of 10 classes"),
    (["run", "batchnorm_vs_groupnorm_cifar100", "--data", "synthetic", "--profile", "smoke"],
     "batchnorm_vs_groupnorm_cifar100 is a study of 100 classes, but --data synthetic holds 10; use cifar100 or "
     "synthetic:100, or a PATH.npz of 100 classes"),
    (["speed", "batchnorm_vs_groupnorm", "--device", "cpu", "--data", "synthetic:100", "--profile", "smoke"],
     "batchnorm_vs_groupnorm is a study of 10 classes, but --data synthetic:100 holds 100"),
    (["run", "sigmoid_vs_relu", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["run", "sigmoid_vs_relu", "--format", "html"], "argument --format: invalid choice"),
    (["run", "sigmoid_vs_relu", "--out", "no/such/dir/r.json"], "directory no/such/dir does not exist"),
    (["run", "sigmoid_vs_relu", "--side-by-side", "0"], "argument --side-by-side: must be at least 1, got 0"),
    (["run", "sigmoid_vs_relu", "--side-by-side", "2"], "--side-by-side needs CUDA streams; on cpu drop it (cells "
                                                        "train one after another)"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_status_2(capsys, argv, message):
    code, out, err = run(capsys, *argv, "--device", "cpu") if "--device" not in argv and argv[0] == "run" else run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ablation: error: ") and message in err
    assert out == ""


def test_malformed_npz_and_directory_out(capsys, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 broken")  # a zip cut off after its first bytes
    code, _, err = run(capsys, "run", "sigmoid_vs_relu", "--device", "cpu", "--data", str(bad))
    assert code == 2 and "bad.npz is not a complete .npz archive" in err and err.count("\n") == 1
    code, _, err = run(capsys, "run", "sigmoid_vs_relu", "--device", "cpu", "--out", str(tmp_path))
    assert code == 2 and "is a directory; give a file name" in err


def test_a_run_refuses_to_overwrite_its_own_baseline(capsys, tmp_path, monkeypatch):
    """--out naming the --baseline file (here through another spelling of its path) would replace the baseline
    with the run's results after the first cell: refused before anything is read or trained."""
    baseline = tmp_path / "baseline.json"
    baseline.write_text("{}")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "run", "sigmoid_vs_relu", "--device", "cpu", "--data", "synthetic",
                       "--baseline", str(baseline), "--out", "./baseline.json")
    assert code == 2 and err == ("ablation: error: --out baseline.json is the --baseline file, which the run would "
                                 "overwrite with its own results; write them to another file\n")
    assert baseline.read_text() == "{}"


def test_data_of_another_class_count_is_refused_by_name_before_any_download_or_once_loaded(
        capsys, hundred_class_npz, monkeypatch):
    import ablation.cli as cli

    code, _, err = run(capsys, "run", "sigmoid_vs_relu", "--device", "cpu", "--data", str(hundred_class_npz))
    assert code == 2 and err == ("ablation: error: sigmoid_vs_relu is a study of 10 classes, but --data "
                                 f"{hundred_class_npz} holds 100; use cifar10 or synthetic, or a PATH.npz of 10 "
                                 "classes\n")
    monkeypatch.setattr(cli, "load_dataset", lambda *args: pytest.fail("loaded data that its name rules out"))
    code, _, err = run(capsys, "run", "all", "--device", "cpu", "--data", "cifar100")
    assert code == 2 and err == ("ablation: error: sigmoid_vs_relu is a study of 10 classes, but --data cifar100 "
                                 "holds 100; use cifar10 or synthetic, or a PATH.npz of 10 classes\n")


def test_an_unwritable_out_stops_the_run_before_training(capsys, tmp_path, monkeypatch):
    """As root (this suite's machines) every path is writable, so the permission check is asked of a stub."""
    import ablation.cli as cli

    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    code, out, err = run(capsys, "run", "sigmoid_vs_relu", "--device", "cpu", "--out", str(tmp_path / "r.json"))
    assert (code, out) == (2, "")
    assert err == f"ablation: error: --out {tmp_path / 'r.json'} is not writable; choose another path\n"


def test_cuda_requested_without_cuda(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(capsys, "run", "sigmoid_vs_relu", "--device", "cuda")
    assert code == 2 and err == "ablation: error: --device cuda, but CUDA is not available here; use --device cpu\n"


def test_offline_without_data_names_the_fix(tmp_path):
    """As a user sees it: python -m ablation, no traceback, exit status 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "ablation", "run", "sigmoid_vs_relu", "--device", "cpu", "--data", "nope.npz"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["ablation: error: no such data file nope.npz; pass --data PATH.npz (a local copy) or --data synthetic"]


def test_cifar100_variant_reads_torchvision_cifar100_by_default(capsys, monkeypatch, tmp_path):
    import numpy as np
    from torchvision import datasets

    made = []

    class FakeCIFAR100:
        classes = [str(i) for i in range(100)]

        def __init__(self, root, train, download):
            made.append((root, train, download))
            rng = np.random.default_rng(int(train))
            n = 2000 if train else 200
            self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            self.targets = list(np.arange(n) % 100)

    monkeypatch.setattr(datasets, "CIFAR100", FakeCIFAR100)
    code, out, err = run(capsys, "run", "batchnorm_vs_groupnorm_cifar100", "--device", "cpu", "--profile", "smoke",
                         "--replicates", "1", "--cell", "batch_size=128-batchnorm", "--data-root", str(tmp_path),
                         "--format", "json")
    assert code == 0, err
    assert made == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    entry = json.loads(out)["studies"]["batchnorm_vs_groupnorm_cifar100"]
    assert entry["data"] == "cifar100" and entry["classes"] == 100


@pytest.mark.parametrize("device,argv,graphs,side_by_side", [
    ("cuda", [], True, None), ("cuda", ["--no-cuda-graphs"], False, None), ("cpu", [], False, None),
    ("cuda", ["--side-by-side", "6"], True, 6), ("cuda", ["--side-by-side", "1"], True, 1)])
def test_run_replays_cuda_graphs_on_cuda_unless_told_not_to(monkeypatch, device, argv, graphs, side_by_side):
    import ablation.cli as cli

    class Stop(Exception):
        pass

    seen = {}

    def first_study(*args, **kwargs):
        seen.update(kwargs, device=args[3].type)
        raise Stop

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # no CUDA work starts: training stops first
    monkeypatch.setattr(cli, "new_results", lambda *args: {})
    monkeypatch.setattr(cli, "run_study", first_study)
    with pytest.raises(Stop):
        main(["run", "sigmoid_vs_relu", "--data", "synthetic", "--device", device, *argv])
    assert seen["device"] == device and seen["graphs"] is graphs and seen["side_by_side"] == side_by_side


def test_side_by_side_cells_train_fused(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the check comes before any CUDA work
    code, _, err = run(capsys, "run", "sigmoid_vs_relu", "--device", "cuda", "--side-by-side", "2", "--no-fuse")
    assert code == 2 and err == "ablation: error: --side-by-side trains each cell's replicates fused; drop --no-fuse\n"


@pytest.mark.parametrize("device,fuse,asked,groups", [
    ("cuda", None, None, [3]), ("cuda", False, None, [1, 1, 1]), ("cpu", None, None, [1, 1, 1]),
    ("cuda", None, 2, [2, 1]), ("cuda", None, 1, [1, 1, 1])])
def test_on_cuda_a_study_trains_its_own_number_of_cells_at_once_unless_told(monkeypatch, device, fuse, asked,
                                                                            groups, tiny_data):
    """The order study's 3 cells (Study.side_by_side 3): all at once on CUDA where they train fused, one after
    another on the CPU or unfused, and as many as --side-by-side says when it says."""
    import ablation.runner as runner
    from ablation.studies import get_study

    study = get_study("conv_activation_norm_position")
    assert study.side_by_side == len(study.cells) == 3
    trained = []

    def result(n):
        return train.CellResult(seeds=[0], accuracy=[50.0], final_loss=[1.0], train_loss_curve=[[1.0]],
                                test_loss=[1.5], skipped_steps=[0], collapsed=[False],
                                wall_s=1.0, images_per_s=1.0, setup_s=0.0, eval_s=0.0, fused=1, graphs=False,
                                side_by_side=n)

    def alone(*args, **kwargs):
        trained.append(1)
        return result(1)

    def together(trainings):
        trained.append(len(trainings))
        return [result(len(trainings)) for _ in trainings]

    monkeypatch.setattr(runner, "prepare", lambda *args: SimpleNamespace(classes=10, checksum="checksum"))
    monkeypatch.setattr(runner, "run_cell", alone)
    monkeypatch.setattr(runner, "CellTraining", lambda *args, **kwargs: None)
    monkeypatch.setattr(runner, "train_side_by_side", together)
    entry = runner.run_study({"studies": {}}, study, tiny_data, torch.device(device), 1, fuse=fuse,
                             side_by_side=asked)
    assert trained == groups and [c["side_by_side"] for c in entry["cells"].values()] == [
        n for n in groups for _ in range(n)]


def test_a_study_side_by_side_records_each_cell_as_alone_and_counts_shared_time_once(tiny_data):
    """Three cells two at a time (on the CPU, without streams): the same accuracies as one after another, the
    first two sharing their training time, which the run's total counts once."""
    from ablation.results import training_seconds
    from ablation.runner import run_study
    from ablation.studies import get_study

    study = get_study("batchnorm_vs_groupnorm")
    cells = [study.cell(c) for c in ("batch_size=32-batchnorm", "batch_size=32-groupnorm", "batch_size=64-batchnorm")]
    runs, lines, saved = [], [], []
    for side_by_side in (1, 2):
        entry = run_study({"studies": {}}, study, tiny_data, torch.device("cpu"), 2, "smoke", cells, log=lines.append,
                          after_cell=lambda: saved.append(1), side_by_side=side_by_side)
        runs.append(list(entry["cells"].values()))
    alone, paired = runs
    assert [c["accuracy"] for c in paired] == [c["accuracy"] for c in alone]
    assert [c["side_by_side"] for c in paired] == [2, 2, 1] and paired[0]["wall_s"] == paired[1]["wall_s"]
    assert training_seconds(paired) == pytest.approx(paired[0]["wall_s"] + paired[2]["wall_s"])
    assert len(saved) == 6 and "s beside 1 other cell, " in lines[3] and "beside" not in lines[5]
    with pytest.raises(ValueError, match="fuse=False needs side_by_side=1"):
        run_study({"studies": {}}, study, tiny_data, torch.device("cpu"), 2, "smoke", cells, fuse=False,
                  side_by_side=2)


def test_a_log_that_is_not_a_terminal_hears_from_long_cells_at_most_every_heartbeat(tiny_data, monkeypatch):
    """In CI, where stderr is a file, a cell or a group of cells side by side that trains for minutes says which
    epoch it is in every HEARTBEAT_S (a group by its first cell: its cells take their epochs together); short
    cells say nothing until they finish."""
    import ablation.runner as runner
    from ablation.studies import get_study

    study = get_study("batchnorm_vs_groupnorm")
    cells = [study.cell(c) for c in ("batch_size=32-batchnorm", "batch_size=32-groupnorm", "batch_size=16-groupnorm")]
    lines = []
    runner.run_study({"studies": {}}, study, tiny_data, torch.device("cpu"), 2, "smoke", cells, log=lines.append,
                     side_by_side=2)
    assert len(lines) == 3 and not any("epoch" in line for line in lines)
    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.0)
    lines.clear()
    runner.run_study({"studies": {}}, study, tiny_data, torch.device("cpu"), 2, "smoke", cells, log=lines.append,
                     side_by_side=2)
    epochs = [line for line in lines if "epoch" in line]
    assert [line.split("  mean loss")[0] for line in epochs] == [  # the smoke profile trains one epoch
        "[batchnorm_vs_groupnorm 1-2/3]: epoch 1/1", "[batchnorm_vs_groupnorm 3/3] batch_size=16-groupnorm: epoch 1/1"]
    assert all(re.fullmatch(r".*  mean loss \d+\.\d{3}", line) for line in epochs)


def test_an_interrupt_while_the_results_file_is_rewritten_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    """`run --out` rewrites the file after every cell; Ctrl-C in the middle of a write must not cut it."""
    from ablation.results import write_json

    path = tmp_path / "results.json"
    write_json({"cells": 1}, path)
    real_write = Path.write_text

    def cut_short(self, text, *args, **kwargs):
        real_write(self, text[:len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", cut_short)
    with pytest.raises(KeyboardInterrupt):
        write_json({"cells": 2, "more": "x" * 100}, path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"cells": 1}


def test_an_interrupted_run_keeps_its_finished_cells_and_exits_130(capsys, tmp_path, monkeypatch, tiny_npz):
    """Ctrl-C in the third cell: one line on stderr, no traceback, and --out holds the two cells before it."""
    import ablation.runner as runner

    run_cell = runner.run_cell
    started = []

    def interrupted_at_the_third(study, cell, *args, **kwargs):
        started.append(cell.id)
        if len(started) == 3:
            raise KeyboardInterrupt
        return run_cell(study, cell, *args, **kwargs)

    monkeypatch.setattr(runner, "run_cell", interrupted_at_the_third)
    out_file = tmp_path / "results.json"
    three_cells = ["--cell", "batch_size=128-batchnorm", "--cell", "batch_size=128-groupnorm"]
    code, out, err = synthetic_run(capsys, tiny_npz, *three_cells[:2], "--out", str(out_file))
    assert code == 130 and out == ""
    assert err.splitlines()[-1] == f"ablation: interrupted; {out_file} holds the 2 cells finished before it"
    assert list(read_results(out_file)["studies"]["batchnorm_vs_groupnorm"]["cells"]) == started[:2]
    assert list(tmp_path.iterdir()) == [out_file]  # no partial file left beside it

    started.clear()
    code, _, err = synthetic_run(capsys, tiny_npz, *three_cells)
    assert code == 130 and err.splitlines()[-1] == "ablation: interrupted"


def test_a_run_out_of_device_memory_says_what_to_train_fewer_of_in_one_line(capsys, tmp_path, monkeypatch, tiny_npz,
                                                                            tiny_data):
    """The device's memory runs out in the second cell (more fused replicates than fit): exit 2, one line naming
    the cell and what to lower, no traceback, and --out keeps the cell before it.  Cells side by side are named
    together, with --side-by-side 1 offered first."""
    import ablation.runner as runner
    from ablation.studies import get_study

    run_cell, started = runner.run_cell, []

    def out_of_memory_at_the_second(study, cell, *args, **kwargs):
        started.append(cell.id)
        if len(started) == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return run_cell(study, cell, *args, **kwargs)

    monkeypatch.setattr(runner, "run_cell", out_of_memory_at_the_second)
    out_file = tmp_path / "results.json"
    code, out, err = synthetic_run(capsys, tiny_npz, "--out", str(out_file))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.splitlines()[-1] == (
        "ablation: error: out of cpu memory training batchnorm_vs_groupnorm batch_size=64-groupnorm (2 replicates); "
        f"train fewer at once: fewer --replicates; {out_file} holds the 1 cell finished before it")
    assert list(read_results(out_file)["studies"]["batchnorm_vs_groupnorm"]["cells"]) == started[:1]

    def out_of_memory(trainings):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(runner, "train_side_by_side", out_of_memory)
    study = get_study("batchnorm_vs_groupnorm")
    with pytest.raises(runner.OutOfDeviceMemory, match=re.escape(
            "training batchnorm_vs_groupnorm batch_size=2-batchnorm, batch_size=2-groupnorm (1 replicate, 2 cells at "
            "once); train fewer at once: --side-by-side 1 (one cell at a time) or fewer --replicates")):
        runner.run_study({"studies": {}}, study, tiny_data, torch.device("cpu"), 1, "smoke", study.cells[:2],
                         side_by_side=2)


def test_help_and_errors_name_the_command_as_it_was_invoked(capsys, monkeypatch):
    """The installed script is `ablation`; from a checkout it is `python -m ablation`."""
    from ablation.cli import entry_point

    monkeypatch.setattr(sys, "argv", ["ablation", "--help"])
    with pytest.raises(SystemExit):
        entry_point()
    out = capsys.readouterr().out
    assert out.startswith("usage: ablation [-h]") and "  ablation run all --data cifar10" in out
    monkeypatch.setattr(sys, "argv", ["ablation", "run", "all", "--replicates", "0"])
    with pytest.raises(SystemExit) as exit_info:
        entry_point()
    assert exit_info.value.code == 2 and "(see ablation run --help)" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "ablation", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.startswith("usage: python -m ablation [-h]")


@pytest.mark.parametrize("command", ["list", "run", "compare", "report", "history", "speed", "merge", "power"])
def test_every_commands_help_renders(capsys, command):
    """argparse formats help text only when it is asked for (a bare % there crashes --help)."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith(f"usage: python -m ablation {command}")


@pytest.mark.parametrize("module", ["faults", "false_alarms", "null_runs", "roofline", "side_by_side_gain",
                                    "step_times"])
def test_every_bench_tools_help_renders(capsys, module):
    import importlib

    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"bench.{module}").main(["--help"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith(f"usage: python -m bench.{module}")


def test_a_full_run_on_the_cpu_says_first_that_it_takes_hours(capsys, monkeypatch):
    """A full-profile cell of Sigmoid/ReLU alone trains for about a minute on two CPU cores, the table for hours:
    before the first cell, run says so and names the smoke profile."""
    import ablation.runner as runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_cell", interrupted)
    code, _, err = run(capsys, "run", "all", "--device", "cpu", "--data", "synthetic")
    assert code == 130 and err.splitlines()[:2] == [
        "training 33 cells, 201 models (sigmoid_vs_relu: 16 x 5, batchnorm_vs_groupnorm: 14 x 8, "
        "conv_activation_norm_position: 3 x 3) on cpu, profile full",
        "note: the full profile takes hours on a CPU (a CUDA GPU trains the whole table in about a minute); "
        "--profile smoke checks the pipeline in minutes"]


def test_a_seed_offset_trains_other_seeds(tmp_path, run_norm_cells):
    path = run_norm_cells(tmp_path / "offset.json", "--seed-offset", "5")
    cells = read_results(path)["studies"]["batchnorm_vs_groupnorm"]["cells"]
    assert [c["seeds"] for c in cells.values()] == [[84040, 84041]] * 2
