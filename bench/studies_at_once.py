"""Whether training the studies beside each other pays: the table trained one study after another, as `run`
trains it, and with every study in a lane of its own beside the others (ablation.train.train_lanes), timed side
by side in one process, each cell's numbers compared between the two.

    python -m bench.studies_at_once --data PATH.npz [--studies A,B,...] [--replicates N] [--profile full|smoke]

A lane trains its study's cells in the groups `run` trains them in (on CUDA,
the norm study's 14 cells at once, the order study's 3, Sigmoid/ReLU's one at
a time), and the lanes take turns step by step, so that the GPU runs one
study's large kernels while another's small ones leave it idle.  Times are
training and evaluation together (a lane evaluates each group as it ends);
set-up is the same work both ways and reported apart.  "Numerics" compares
each cell's replicates between the two ways as `compare` does: training
beside other studies should change no number.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any, Sequence

import torch

from ablation.cli import UsageError, at_least_one, plan_text, study_datasets
from ablation.data import DataError, Dataset
from ablation.numerics import compare_replicates
from ablation.results import cell_record, new_results, render, training_seconds
from ablation.runner import cells_at_once, in_groups, run_study
from ablation.studies import DOCUMENTED, Study, get_study
from ablation.train import CellTraining, prepare, train_lanes


def groups_of(study: Study, device: torch.device) -> list[list[str]]:
    """The study's cells in the groups run_study trains at once on this device."""
    return in_groups([cell.id for cell in study.cells], cells_at_once(study, device))


def one_after_another(studies: list[Study], datasets: dict[str, Dataset], device: torch.device,
                      replicates: dict[str, int], profile: str, graphs: bool
                      ) -> tuple[dict[str, float], dict[tuple[str, str], dict[str, Any]]]:
    """Per study, seconds of training and evaluation as `run` trains it (run_study; replicates fused, as on CUDA,
    also on the CPU, where lanes fuse them too); and every cell's record."""
    results = new_results(device, "", profile)
    seconds, records = {}, {}
    for study in studies:
        cells = run_study(results, study, datasets[study.name], device, replicates[study.name], profile, fuse=True,
                          graphs=graphs)["cells"]
        seconds[study.name] = training_seconds(cells.values()) + sum(record["eval_s"] for record in cells.values())
        records.update({(study.name, cell_id): record for cell_id, record in cells.items()})
    return seconds, records


def beside_each_other(studies: list[Study], datasets: dict[str, Dataset], device: torch.device,
                      replicates: dict[str, int], profile: str, graphs: bool
                      ) -> tuple[dict[str, float], float, dict[tuple[str, str], dict[str, Any]]]:
    """Per study, when its lane ended; the seconds of all lanes; and every cell's record."""
    lanes, ids = [], []
    for study in studies:
        hp = study.settings(profile)
        data = prepare(datasets[study.name], hp.per_class, study.subset_seed, device, hp.test_limit)
        groups = in_groups([cell.id for cell in study.cells], cells_at_once(study, device))
        lanes.append([[CellTraining(study, study.cell(c), data, study.seeds(replicates[study.name]), profile,
                                    graphs=graphs) for c in group] for group in groups])
        ids.append(groups)
    trained = train_lanes(lanes)
    records = {(study.name, cell_id): cell_record(study, cell_id, result, profile)
               for study, groups, results_of_lane in zip(studies, ids, trained.results)
               for group, group_results in zip(groups, results_of_lane)
               for cell_id, result in zip(group, group_results)}
    return dict(zip((s.name for s in studies), trained.lane_end_s)), trained.wall_s, records


def numerics(before: dict[tuple[str, str], dict[str, Any]], after: dict[tuple[str, str], dict[str, Any]]) -> str:
    """How many cells' replicates came out identical, within noise or changed between the two ways."""
    verdicts = Counter()
    for key, record in before.items():
        compared = compare_replicates(record, after[key])
        verdicts[compared.verdict if compared else "not compared"] += 1
    return ", ".join(f"{verdict} {count}" for verdict, count in sorted(verdicts.items()))


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.studies_at_once", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="PATH.npz, cifar10 or synthetic")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--studies", default=",".join(s.name for s in DOCUMENTED), metavar="A,B",
                        help="the studies to train, each in a lane (default: the three documented ones)")
    parser.add_argument("--replicates", type=at_least_one, help="replicates per cell (default: each study's own)")
    parser.add_argument("--profile", choices=("full", "smoke"), default="full")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but CUDA is not available here; use --device cpu")
    try:
        studies = [get_study(name) for name in args.studies.split(",")]
        datasets = study_datasets(studies, args.data, None)
    except (KeyError, DataError, UsageError) as error:
        parser.error(str(error).strip("'\"").replace(" (or 'all')", ""))
    if len(studies) < 2:
        parser.error("--studies needs two or more studies: a lane trains beside others")
    if len({study.name for study in studies}) < len(studies):
        parser.error("--studies names a study twice; name each once")
    device, graphs = torch.device(args.device), args.device == "cuda"
    replicates = {study.name: study.replicates_for(args.replicates or "pr") for study in studies}

    print(plan_text(studies, {}, args.replicates or "pr", device, args.profile), file=sys.stderr)
    print("training one study after another ...", file=sys.stderr)
    alone, before = one_after_another(studies, datasets, device, replicates, args.profile, graphs)
    print("training the studies beside each other ...", file=sys.stderr)
    ended, beside, after = beside_each_other(studies, datasets, device, replicates, args.profile, graphs)
    setup = [sum(record["setup_s"] for record in records.values()) for records in (before, after)]
    total = sum(alone.values())
    rows = [["one after another (as run)", *(f"{alone[s.name]:.1f}" for s in studies), f"{total:.1f}",
             f"{setup[0]:.1f}", "x1.00"],
            ["beside each other", *(f"ended at {ended[s.name]:.1f}" for s in studies), f"{beside:.1f}",
             f"{setup[1]:.1f}", f"x{total / beside:.2f}"]]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return (f"Training and evaluation seconds on {name}, torch {torch.__version__}, profile {args.profile}, "
            f"replicates {', '.join(str(replicates[s.name]) for s in studies)}\n\n"
            + render(["way", *(s.name for s in studies), "all", "set-up s", "speed-up"], rows, markdown=True)
            + f"\n\nnumerics of the {len(before)} cells beside each other against one after another: "
            + numerics(before, after))


if __name__ == "__main__":
    print(main(sys.argv[1:]))
