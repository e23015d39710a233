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
from typing import Sequence

import torch

from ablation.cli import UsageError, at_least_one, plan_text, study_datasets
from ablation.data import DataError
from ablation.numerics import compare_replicates
from ablation.results import cell_record, render
from ablation.runner import cells_at_once, in_groups, train_group
from ablation.studies import DOCUMENTED, Study, get_study
from ablation.train import CellResult, CellTraining, DeviceData, prepare, train_lanes


def groups_of(study: Study, device: torch.device) -> list[list[str]]:
    """The study's cells in the groups run_study trains at once on this device."""
    return in_groups([cell.id for cell in study.cells], cells_at_once(study, device))


def one_after_another(studies: list[Study], data: dict[str, DeviceData], replicates: dict[str, int], profile: str,
                      graphs: bool) -> tuple[dict[str, float], dict[tuple[str, str], CellResult]]:
    """Per study, seconds of training and evaluation as `run` trains it (replicates fused, as on CUDA, also on the
    CPU, where lanes fuse them too); and every cell's result."""
    seconds, results = {}, {}
    for study in studies:
        seconds[study.name] = 0.0
        for group in groups_of(study, data[study.name].train_x.device):
            trained = train_group(study, [study.cell(c) for c in group], data[study.name], replicates[study.name],
                                  profile, fuse=True, graphs=graphs)
            seconds[study.name] += trained[0].wall_s + sum(result.eval_s for result in trained)
            results.update({(study.name, cell_id): result for cell_id, result in zip(group, trained)})
    return seconds, results


def beside_each_other(studies: list[Study], data: dict[str, DeviceData], replicates: dict[str, int], profile: str,
                      graphs: bool) -> tuple[dict[str, float], float, dict[tuple[str, str], CellResult]]:
    """Per study, when its lane ended; the seconds of all lanes; and every cell's result."""
    lanes, ids = [], []
    for study in studies:
        device_data = data[study.name]
        groups = groups_of(study, device_data.train_x.device)
        lanes.append([[CellTraining(study, study.cell(c), device_data, study.seeds(replicates[study.name]), profile,
                                    graphs=graphs) for c in group] for group in groups])
        ids.append(groups)
    trained = train_lanes(lanes)
    results = {(study.name, cell_id): result
               for study, groups, results_of_lane in zip(studies, ids, trained.results)
               for group, group_results in zip(groups, results_of_lane)
               for cell_id, result in zip(group, group_results)}
    return dict(zip((s.name for s in studies), trained.lane_end_s)), trained.wall_s, results


def numerics(studies: list[Study], before: dict[tuple[str, str], CellResult],
             after: dict[tuple[str, str], CellResult], profile: str) -> str:
    """How many cells' replicates came out identical, within noise or changed between the two ways."""
    verdicts = Counter()
    for key, result in before.items():
        study = next(s for s in studies if s.name == key[0])
        compared = compare_replicates(cell_record(study, key[1], result, profile),
                                      cell_record(study, key[1], after[key], profile))
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
    data = {}
    for study in studies:
        hp = study.settings(args.profile)
        data[study.name] = prepare(datasets[study.name], hp.per_class, study.subset_seed, device, hp.test_limit)
    replicates = {study.name: study.replicates_for(args.replicates or "pr") for study in studies}

    print(plan_text(studies, {}, args.replicates or "pr", device, args.profile), file=sys.stderr)
    print("training one study after another ...", file=sys.stderr)
    alone, before = one_after_another(studies, data, replicates, args.profile, graphs)
    print("training the studies beside each other ...", file=sys.stderr)
    ended, beside, after = beside_each_other(studies, data, replicates, args.profile, graphs)
    setup = [sum(result.setup_s for result in results.values()) for results in (before, after)]
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
            + numerics(studies, before, after, args.profile))


if __name__ == "__main__":
    print(main(sys.argv[1:]))
