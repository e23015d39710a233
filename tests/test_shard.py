"""Shards (run --shard K/N) and merge: every cell once over the shards, and the merged file as good as one run."""

import json

import pytest

from ablation.cli import main
from ablation.results import read_results
from ablation.shard import Shard, cell_seconds, deal, estimated_seconds
from ablation.studies import DOCUMENTED, STUDIES



@pytest.mark.parametrize("count", [1, 2, 3, 5, 33, 40])
def test_the_shards_deal_every_cell_once_balanced_by_measured_time(count):
    cells = [(s, c) for s in DOCUMENTED for c in s.cells]
    shards = [deal(cells, Shard(k, count)) for k in range(1, count + 1)]
    dealt = [(s.name, c.id) for shard in shards for s, c in shard]
    assert sorted(dealt) == sorted((s.name, c.id) for s, c in cells)
    measured = cell_seconds()
    loads = [sum(estimated_seconds(s, c, measured) for s, c in shard) for shard in shards]
    assert max(loads) - min(loads) <= max(measured.values())  # greedy: within one cell of each other
    assert deal(cells, Shard(1, count)) == shards[0]  # the same deal on every machine


@pytest.mark.parametrize("count", [2, 3, 4, 5, 6])
def test_longest_cells_first_keep_every_shard_within_2_percent_of_an_even_share(count):
    """Dealt longest first, the 33 cells' shards of 2-6 machines each take at most 2 % more than an even share
    of the measured time (in the order given, the same greedy rule leaves the slowest 4-30 % over it)."""
    cells = [(s, c) for s in DOCUMENTED for c in s.cells]
    measured = cell_seconds()
    loads = [sum(estimated_seconds(s, c, measured) for s, c in deal(cells, Shard(k, count)))
             for k in range(1, count + 1)]
    assert max(loads) <= 1.02 * sum(loads) / count


def test_a_variant_is_estimated_from_its_base_studys_time_scaled_by_its_work():
    long, base = STUDIES["batchnorm_vs_groupnorm_long"], STUDIES["batchnorm_vs_groupnorm"]
    measured = cell_seconds()
    cell = long.cell("batch_size=8-groupnorm")
    assert estimated_seconds(long, cell, measured) == pytest.approx(
        measured["batchnorm_vs_groupnorm", cell.id] * (100 * 500) / (10 * 200))
    assert estimated_seconds(base, cell, measured) == measured["batchnorm_vs_groupnorm", cell.id]


def test_two_shards_merged_are_the_whole_run(capsys, tmp_path, run_norm_cells):
    whole = run_norm_cells(tmp_path / "whole.json")
    shards = [run_norm_cells(tmp_path / f"shard{k}.json", "--shard", f"{k}/2") for k in (1, 2)]
    later = read_results(shards[1])
    later["created"] = "2099-01-01T00:00:00+00:00"  # the shards finish at different times
    shards[1].write_text(json.dumps(later))
    parts = [read_results(p) for p in shards]
    assert [p["shard"] for p in parts] == [{"index": 1, "count": 2}, {"index": 2, "count": 2}]
    assert [len(p["studies"]["batchnorm_vs_groupnorm"]["cells"]) for p in parts] == [1, 1]
    assert main(["merge", *map(str, shards), "-o", str(tmp_path / "merged.json")]) == 0
    assert capsys.readouterr().out.startswith("2 files merged: 2 cells of 1 study written to")
    merged = read_results(tmp_path / "merged.json")
    assert list(merged["studies"]["batchnorm_vs_groupnorm"]["cells"]) == ["batch_size=64-batchnorm",
                                                                          "batch_size=64-groupnorm"]
    assert "shard" not in merged and merged["shards"] == 2 and merged["merged_from"] == [str(p) for p in shards]
    assert merged["created"] == "2099-01-01T00:00:00+00:00"  # the last shard's: where history places the run
    assert main(["compare", str(whole), str(tmp_path / "merged.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["numerics"] for c in report["cells"]] == ["identical", "identical"]
    assert main(["merge", str(shards[0]), "-o", str(tmp_path / "half.json")]) == 2  # shard 2's runner failed
    assert capsys.readouterr().err == ("ablation: error: no file holds shard 2/2; merge every shard of the run (train "
                                       "a missing one with run --shard K/N)\n")
    assert main(["merge", str(whole), "-o", str(tmp_path / "again.json")]) == 0
    assert capsys.readouterr().out.startswith("1 file merged: 2 cells of 1 study written to")


@pytest.mark.parametrize("change,message", [
    (lambda r: r.update(profile="full"), "ran other profile than"),
    (lambda r: r["environment"].update(git_commit="0" * 40), "ran other code than"),
    (lambda r: r["environment"].update(deterministic=True), "ran other kernels (--deterministic) than"),
    (lambda r: r["studies"]["batchnorm_vs_groupnorm"].update(data_checksum="0" * 16), "on other data than"),
    (lambda r: None, "is in more than one file"),  # shard 2's file holding shard 1's cells
    (lambda r: r["shard"].update(index=1), "shard 1/2 is in more than one file"),
    (lambda r: r["shard"].update(count=3), "the files are shards of 2 and 3; merge the shards of one run"),
])
def test_merge_refuses_shards_of_other_runs_in_one_line(capsys, tmp_path, run_norm_cells, change, message):
    first = run_norm_cells(tmp_path / "a.json", "--shard", "1/2")
    other = json.loads(first.read_text())
    other["shard"]["index"] = 2
    change(other)
    (tmp_path / "b.json").write_text(json.dumps(other))
    assert main(["merge", str(first), str(tmp_path / "b.json"), "-o", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("other", [["--seed-offset", "5"], ["--replicates", "3"]])
def test_merge_refuses_shards_trained_with_other_seeds(capsys, tmp_path, run_norm_cells, other):
    """Shards of one run train every cell of a study with the same seeds; a shard with another --seed-offset or
    --replicates would leave the merged study's replicate r a different seed in different cells, which the
    study shift pairs as one."""
    first = run_norm_cells(tmp_path / "a.json", "--shard", "1/2")
    second = run_norm_cells(tmp_path / "b.json", "--shard", "2/2", *other)
    assert main(["merge", str(first), str(second), "-o", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not (tmp_path / "m.json").exists()
    assert f"{second} trained batchnorm_vs_groupnorm with other seeds (" in err
    assert f"than {first} (2 from 84035); merge the shards of one run, trained with the same --seed-offset" in err


@pytest.mark.parametrize("argv,message", [
    (["--shard", "3/2"], "argument --shard: K must be between 1 and N in 3/2, e.g. 1/2"),
    (["--shard", "two"], "argument --shard: 'two' is not K/N, e.g. 1/4"),
    (["--shard", "3/3", "--cell", "batch_size=64-groupnorm"], "shard 3/3 of this selection holds no cell"),
])
def test_bad_shards_are_one_line(capsys, argv, message):
    assert main(["run", "batchnorm_vs_groupnorm", "--data", "synthetic", "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
