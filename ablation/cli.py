"""python -m ablation: list the studies, run them, and print measured beside documented tables."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

import torch

from ablation.adaptive import adaptive_compare, looks_text
from ablation.compare import MIN_PAIRED, as_json, compare, min_throughput, report
from ablation.data import DATA_ROOT_ENV, SOURCE_CLASSES, DataError, Dataset, load_dataset, sources_with
from ablation.numerics import check_same_training
from ablation.report import history, history_text, markdown_report, plot_results
from ablation.results import (FORMATS, NOT_JUDGED, ResultsError, environment, extend_cell, format_results, new_results,
                              plural, read_results, strict_json, time_split, write_json)
from ablation.power import power_rows, power_table, takes_target
from ablation.shard import Shard, deal, merge, parse_shard
from ablation.runner import OutOfDeviceMemory, fused_size, run_study
from ablation.speed import MODES, NOTEBOOK_WORKERS, available_modes, measure, speed_table
from ablation.studies import DOCUMENTED, PLANS, PROFILES, STUDIES, Cell, Study, get_study
from ablation.train import use_deterministic_algorithms
from ablation.verdict import Tolerance


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser(prog: str = "python -m ablation") -> argparse.ArgumentParser:
    """The command line's parser; ``prog``: how it was invoked (the installed ``ablation`` script, or python -m)."""
    parser = Parser(prog=prog, description=__doc__.replace("python -m ablation", prog),
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog=f"example:\n  {prog} run all --data cifar10 --out results.json\n"
                           f"  {prog} compare baseline.json results.json")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    commands.add_parser("list", help="show the studies, their cells and hyperparameters")

    run = commands.add_parser("run", help="train a study (or all) and print its table beside the documented one")
    add_selection_options(run)
    run.add_argument("--groups", type=group_counts, metavar="G1,G2,G3",
                     help="GroupNorm group counts of the norm study's three blocks (default 4,8,8)")
    run.add_argument("--no-fuse", action="store_true",
                     help="train replicates one after another instead of as one fused model (by default fused "
                          "on CUDA, and on CPU at batches of 32 or fewer, where that is faster)")
    run.add_argument("--no-cuda-graphs", action="store_true",
                     help="on CUDA, launch every training step's kernels one by one instead of replaying each "
                          "full-batch step from a captured CUDA graph")
    run.add_argument("--side-by-side", type=at_least_one, metavar="N",
                     help="on CUDA, train a study's cells N at a time, in the study's order, each on a CUDA stream "
                          "of its own, their steps interleaved; 1: one after another (default: each study's own "
                          "number on CUDA, all cells of the norm and order studies, Sigmoid/ReLU one at a time; "
                          "elsewhere 1)")
    run.add_argument("--shard", type=shard_option, metavar="K/N",
                     help="train only the K-th of N shares of the cells, dealt by measured time, so that N machines "
                          "train the table once between them; join their --out files with merge (default: all)")
    run.add_argument("--seed-offset", type=int, default=0, metavar="N",
                     help="add N to every replicate seed, for runs independent of the default ones (default "
                          "%(default)s)")
    run.add_argument("--deterministic", action="store_true",
                     help="deterministic kernels only: the same seeds on the same device and torch give bitwise the "
                          "same run (compare's numerics verdict is then exact); may be slower on CUDA")
    run.add_argument("--baseline", metavar="FILE",
                     help="after training, compare against this results file as compare does, and exit 1 on a "
                          "regression (default: none)")
    run.add_argument("--adaptive", action="store_true",
                     help="with --baseline: a study whose accuracy shift is inconclusive (neither a regression nor "
                          "shown within the margin) trains another round of replicates, the baseline's next seeds, "
                          "and is judged again; every look at the alarm budget over the looks")
    run.add_argument("--max-rounds", type=at_least_one, default=2, metavar="N",
                     help="with --adaptive: at most this many more rounds of replicates (default %(default)s)")
    run.add_argument("--out", help="write every replicate's numbers and the environment to this JSON file "
                                   "(default: none)")
    run.add_argument("--format", choices=FORMATS, default="table",
                     help="how the tables are printed on stdout; json: the whole results file as strict JSON, a "
                          "loss that is not finite as null (--out keeps it) (default %(default)s)")
    run.add_argument("--plot", metavar="DIR", help="also write one PNG figure per study into DIR (default: none)")

    report = commands.add_parser("report", help="Markdown report (and figures) of a results file")
    report.add_argument("results", help="results JSON of `run --out` or the bench")
    report.add_argument("--plot", metavar="DIR", help="write one PNG figure per study into DIR")
    report.add_argument("--markdown", metavar="FILE", help="write the report to FILE instead of stdout")

    past = commands.add_parser("history", help="each cell's accuracy over the results files in a folder")
    past.add_argument("directory", help="folder of results JSON files")
    past.add_argument("--markdown", action="store_true", help="print a Markdown table")
    past.add_argument("--last", type=at_least_one, metavar="N",
                      help="show only the newest N runs' columns; the marks and alerts still weigh every run "
                           "(default: all)")
    past.add_argument("--min-shift", type=above_zero, default=1.0, metavar="POINTS",
                      help="smallest change of level flagged with ^ (default %(default)s)")
    past.add_argument("--alert", action="store_true",
                      help="exit 1 when the newest run brings a level shift the history before it did not show "
                           "(for a nightly job: each shift fails it once)")

    speed = commands.add_parser("speed", help="time the notebooks' pipeline, the eager loop and the fused one "
                                              "(on CUDA also with CUDA graphs, as run trains each cell there)")
    add_selection_options(speed)
    workers = min(NOTEBOOK_WORKERS, os.cpu_count() or 1)
    speed.add_argument("--workers", type=int, default=workers,
                       help=f"DataLoader workers of the notebook pipeline (default {workers}: the notebooks' "
                            f"{NOTEBOOK_WORKERS}, or this machine's CPU count where it is smaller)")
    speed.add_argument("--modes", type=speed_modes, metavar="M1,M2",
                       help=f"time only these of {','.join(MODES)} (default: all; graphs needs CUDA), e.g. "
                            "fused,graphs for the whole table without the slow notebook pipeline")
    speed.add_argument("--sequential-replicates", type=at_least_one, metavar="N",
                       help="time the notebook and eager modes, which train replicates one after another, on N "
                            "replicates per cell and scale their times up to all (default: time all)")
    speed.add_argument("--markdown", action="store_true", help="print a Markdown table")

    join = commands.add_parser("merge", help="join results files of shards (run --shard K/N) into one")
    join.add_argument("results", nargs="+", help="results JSON files of one commit, profile, device and data")
    join.add_argument("-o", "--out", required=True, help="the merged results JSON file to write")

    power = commands.add_parser("power", help="the smallest shift each study's test detects at a results file's "
                                              "replicate counts, and the replicates a target shift needs")
    power.add_argument("results", help="results JSON of `run --out` or the bench")
    power.add_argument("--alpha", type=probability,
                       help="two-sided false-alarm probability of one study's test (default: the study shift's and "
                            "the loss metrics' shares of a 1 %% alarm budget)")
    power.add_argument("--power", type=probability, default=0.8,
                       help="probability of detecting the shift, 0.5 or more (default %(default)s)")
    power.add_argument("--baseline", metavar="FILE",
                       help="a results file of the same seeds: the power of the paired test against it, from the "
                            "spread of the per-seed differences (default: none, the two-sample test on other seeds)")
    power.add_argument("--target-shift", type=above_zero, metavar="POINTS",
                       help="also the replicates per cell that detect this accuracy shift (default: none)")
    power.add_argument("--markdown", action="store_true", help="print a Markdown table")
    power.add_argument("--json", action="store_true", help="print strict JSON (null for a number that is not finite)")

    compare = commands.add_parser("compare", help="drift between two results files, per cell and per study; "
                                  "exit 1 on a regression")
    compare.add_argument("baseline", help="results JSON of a known-good run")
    compare.add_argument("current", help="results JSON to check")
    compare.add_argument("--markdown", metavar="FILE", help="also write the drift table as Markdown (a CI comment)")
    compare.add_argument("--json", action="store_true",
                         help="print the whole comparison as strict JSON (per cell and metric: verdict, band, "
                              "p-values, numerics; null for a number that is not finite) instead of the tables")
    add_tolerance_options(compare.add_argument)
    add_tolerance_options(run.add_argument)
    return parser


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """What to train, on what data and device: shared by run and speed."""
    parser.add_argument("study", help=f"one of {', '.join(STUDIES)}, or 'all' (the three documented studies)")
    parser.add_argument("--cell", action="append", metavar="ID",
                        help="only this cell (repeatable), e.g. blocks=4-relu (default: every cell)")
    parser.add_argument("--replicates", type=replicate_plan, default="pr", metavar="PLAN|N",
                        help="runs per cell: pr (each study's own count, 5 / 8 / 3), nightly (16 / 16 / 24, a "
                             "0.5-point study shift detectable against a same-seed baseline), null (25 / 40 / 15: "
                             "five pseudo-runs of the bench for python -m bench.null_runs) or a number "
                             "(default %(default)s)")
    parser.add_argument("--data", help="cifar10, cifar100, synthetic, synthetic:100 or PATH.npz, of the study's "
                                       "class count (default: the study's dataset)")
    parser.add_argument("--data-root", help=f"where torchvision data is downloaded (default: ${DATA_ROOT_ENV} "
                                             "or ~/.cache/ablation-bench)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--profile", choices=PROFILES, default="full",
                        help="smoke: 20 images per class, one epoch, 1000 test images, to check the pipeline "
                             "(default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress output on stderr")


def add_tolerance_options(add: Callable[..., Any]) -> None:
    """The verdicts' options, shared by compare and the bench: ``add`` is argparse's add_argument or pytest's
    addoption."""
    default = Tolerance()
    add("--alarm-budget", type=probability, default=default.alarm_budget,
        help="false-alarm probability of one whole comparison or bench run, split over its decisions "
             "(default %(default)s)")
    add("--sd-floor", type=zero_or_more, default=default.sd_floor,
        help="smallest run-to-run sd assumed, points, where a cell is not paired by seed (default %(default)s)")
    add("--allowance-hardware", type=zero_or_more, default=default.hardware,
        help="points allowed either way between devices with no measured allowance (default %(default)s; "
             "0 on the same device)")
    add("--min-throughput", type=zero_or_more,
        help="a study's images/s below this fraction of the baseline's is a regression (default "
             f"{min_throughput(default):.2f}, from the alarm budget and the measured spread)")
    add("--margin", type=above_zero, default=default.margin,
        help="a study's accuracy shift shown within this many points (beyond the hardware allowance) is "
             "equivalent (default %(default)s)")
    add("--cell-margin", type=above_zero, default=default.cell_margin,
        help="the same for a cell (default %(default)s)")
    add("--same-training", action="store_true",
        help="the change claims to leave the training alone (a refactor, a speed-up): fail where a cell's "
             "numerics changed against the baseline's same seeds on the same device and torch (bitwise, when both "
             "ran --deterministic)")


def main(argv: Sequence[str] | None = None, prog: str = "python -m ablation") -> int:
    try:
        args = build_parser(prog).parse_args(argv)
        if args.command == "list":
            print(list_studies())
            return 0
        if args.command == "compare":
            return compare_files(args)
        if args.command == "speed":
            return time_pipelines(args)
        if args.command == "report":
            return report_file(args)
        if args.command == "history":
            return show_history(args)
        if args.command == "power":
            return show_power(args)
        if args.command == "merge":
            return merge_files(args)
        return run(args)
    except UsageError as error:
        print(f"ablation: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        after_progress = "\n" if sys.stderr.isatty() else ""  # a live progress line ends without one
        detail = f"; {interrupt}" if str(interrupt) else ""
        print(f"{after_progress}ablation: interrupted{detail}", file=sys.stderr)
        return 130
    except (KeyError, ValueError, DataError, ResultsError) as error:
        message = error.args[0] if isinstance(error, KeyError) else str(error)
        print(f"ablation: error: {message}", file=sys.stderr)
        return 2


def list_studies() -> str:
    lines = []
    for study in STUDIES.values():
        hp = asdict(study.settings())
        variant = f", a variant of {study.variant_of}" if study.variant_of else ""
        at_once = f", on CUDA {study.side_by_side} cells at once" if study.side_by_side > 1 else ""
        lines.append(f"{study.name}: {study.title} [{study.notebook}, {study.dataset}, "
                     f"{study.replicates} replicates by default{at_once}{variant}]")
        lines.append("  cells: " + " ".join(cell.id for cell in study.cells))
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in hp.items() if k != "test_limit"))
        if study.groups:
            lines.append(f"  GroupNorm groups per block: {study.groups}; runs at batch sizes "
                         f"{study.bimodal_levels} either learn or end at chance")
        if study.notes:
            lines.append(f"  note: {study.notes}")
    return "\n".join(lines)


def selection(args: argparse.Namespace) -> tuple[list[Study], dict[str, list[Cell]], torch.device]:
    """The studies, cells and device a run or speed command asked for, checked before any work starts."""
    studies = DOCUMENTED if args.study == "all" else [get_study(args.study)]
    if args.cell and len(studies) > 1:
        raise UsageError("--cell needs a single study, not 'all': name the study the cell belongs to")
    cells = {s.name: [s.cell(c) for c in args.cell] for s in studies} if args.cell else {}
    if getattr(args, "groups", None):
        if any(not s.groups for s in studies):
            raise UsageError("--groups applies only to studies with GroupNorm cells (batchnorm_vs_groupnorm...)")
        studies = [dataclasses.replace(s, groups=args.groups) for s in studies]
    for study in studies:
        for cell in study.cells:
            study.model(cell)  # a bad layer configuration fails here, before any data is loaded
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but CUDA is not available here; use --device cpu")
    return studies, cells, device


def study_datasets(studies: list[Study], source: str | None, root: str | None) -> dict[str, Dataset]:
    """Study name -> its data: ``source`` for all, or each study's own dataset, each loaded once.

    ``source`` must have every study's class count (its models, documented table and findings are for that
    count): a named source is checked by its name, before any download, a .npz once loaded.
    """
    if source is None:
        own = {name: load_dataset(name, root) for name in dict.fromkeys(study.dataset for study in studies)}
        return {study.name: own[study.dataset] for study in studies}
    if source in SOURCE_CLASSES:
        _check_classes(studies, source, SOURCE_CLASSES[source])
    dataset = load_dataset(source, root)
    _check_classes(studies, source, dataset.classes)
    return {study.name: dataset for study in studies}


def _check_classes(studies: list[Study], source: str, classes: int) -> None:
    for study in studies:
        if study.classes != classes:
            raise UsageError(f"{study.name} is a study of {study.classes} classes, but --data {source} holds "
                             f"{classes}; use {sources_with(study.classes)}")


def time_pipelines(args: argparse.Namespace) -> int:
    studies, cells, device = selection(args)
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    if args.modes and not set(args.modes) <= set(available_modes(device)):
        raise UsageError(f"--modes graphs needs CUDA; on {device.type} choose from {','.join(available_modes(device))}")
    datasets = study_datasets(studies, args.data, args.data_root)
    rows = [measure(study, datasets[study.name], device, study.replicates_for(args.replicates), args.profile,
                    args.workers, cells.get(study.name), log=None if args.quiet else _log, modes=args.modes,
                    sequential_replicates=args.sequential_replicates) for study in studies]
    print(speed_table(rows, environment(device)["device_name"], args.markdown))
    return 0


def run(args: argparse.Namespace) -> int:
    studies, cells, device = selection(args)
    studies = [dataclasses.replace(s, seed=s.seed + args.seed_offset) for s in studies]
    if args.shard:
        mine = deal([(s, c) for s in studies for c in cells.get(s.name, s.cells)], args.shard)
        cells = {s.name: [c for study, c in mine if study.name == s.name] for s in studies}
        studies = [s for s in studies if cells[s.name]]
        if not studies:
            raise UsageError(f"shard {args.shard} of this selection holds no cell; use fewer shards")
    if args.side_by_side and args.side_by_side > 1:
        if device.type != "cuda":
            raise UsageError(f"--side-by-side needs CUDA streams; on {device.type} drop it (cells train one after "
                             "another)")
        if args.no_fuse:
            raise UsageError("--side-by-side trains each cell's replicates fused; drop --no-fuse")
    if args.out:
        check_writable(Path(args.out), "--out", "results.json")
        check_keeps_baseline(Path(args.out), "--out", args.baseline)
    if args.plot:
        check_directory(Path(args.plot))
    baseline = baseline_for(args, studies, cells, device)

    if args.deterministic:
        use_deterministic_algorithms()
    log = None if args.quiet else _log
    start = time.perf_counter()
    datasets = study_datasets(studies, args.data, args.data_root)
    if log:
        log(plan_text(studies, cells, args.replicates, device, args.profile))
    results = new_results(device, args.data or ",".join(dict.fromkeys(s.dataset for s in studies)), args.profile)
    if args.shard:
        results["shard"] = {"index": args.shard.index, "count": args.shard.count}
    save = (lambda: write_json(results, args.out)) if args.out else None

    def train(study: Study, replicates: int, into: dict[str, Any], after_cell: Callable[[], None] | None) -> None:
        run_study(into, study, datasets[study.name], device, replicates, args.profile, cells.get(study.name),
                  fuse=False if args.no_fuse else None, log=log,
                  graphs=device.type == "cuda" and not args.no_cuda_graphs, after_cell=after_cell,
                  side_by_side=args.side_by_side)

    def more(name: str, first_seed: int, count: int) -> None:
        """Another round of an inconclusive study (--adaptive): ``count`` replicates from ``first_seed``."""
        study = next(s for s in studies if s.name == name)
        if log:
            log(f"{name}: inconclusive; training {count} more replicates per cell (seeds {first_seed}-"
                f"{first_seed + count - 1})")
        scratch = new_results(device, results["data"], args.profile)
        train(dataclasses.replace(study, seed=first_seed), count, scratch, None)
        for cell_id, record in scratch["studies"][name]["cells"].items():
            extend_cell(results["studies"][name]["cells"][cell_id], record)
        if save:
            save()

    comparison, unusable = None, None
    try:
        for study in studies:
            train(study, study.replicates_for(args.replicates), results, save)
        if baseline is not None:
            rounds = args.max_rounds if args.adaptive else 0
            try:
                comparison, looks = adaptive_compare(baseline, results, tolerance_of(args), more, rounds,
                                                     {s.name: s.replicates_for(args.replicates) for s in studies},
                                                     args.min_throughput)
            except ResultsError as error:  # the run's tables still print, then the error
                unusable = error
            else:
                if args.adaptive and log:
                    log(looks_text(looks, rounds))
    except KeyboardInterrupt:
        if not args.out:
            raise
        raise KeyboardInterrupt(kept(results, args.out)) from None
    except OutOfDeviceMemory as error:
        raise UsageError(f"{error}{'; ' + kept(results, args.out) if args.out else ''}") from None
    print(format_results(results, args.format))
    if args.profile != "full" and args.format in ("table", "markdown"):
        print("\n" + NOT_JUDGED.format(profile=args.profile))
    if log:
        records = [c for study in results["studies"].values() for c in study["cells"].values()]
        log(f"{time_split(records)}; {time.perf_counter() - start:.1f} s since the run began (the rest: loading "
            "data, starting the device)")
    if args.out and log:
        log(f"results written to {args.out}")
    for path in plot_results(results, args.plot) if args.plot else []:
        if log:
            log(f"figure written to {path}")
    if unusable is not None:
        raise ResultsError(f"--baseline {args.baseline}: {unusable}")
    if comparison is None:
        return 0
    print("\n" + report(comparison, markdown=args.format == "markdown"))
    return 1 if comparison.regressed else 0


def plan_text(studies: list[Study], cells: dict[str, list[Cell]], replicates: str | int, device: torch.device,
              profile: str) -> str:
    """What run is about to train, before it starts; on a CPU at the full profile, that it takes hours."""
    counts = [(s.name, len(cells.get(s.name, s.cells)), s.replicates_for(replicates)) for s in studies]
    cells_total, models = sum(n for _, n, _ in counts), sum(n * r for _, n, r in counts)
    text = (f"training {plural(cells_total, 'cell')}, {plural(models, 'model')} "
            f"({', '.join(f'{name}: {n} x {r}' for name, n, r in counts)}) on {device.type}, profile {profile}")
    if device.type == "cpu" and profile == "full":
        text += ("\nnote: the full profile takes hours on a CPU (a CUDA GPU trains the whole table in about a "
                 "minute); --profile smoke checks the pipeline in minutes")
    return text


def baseline_for(args: argparse.Namespace, studies: list[Study], cells: dict[str, list[Cell]],
                 device: torch.device) -> dict[str, Any] | None:
    """The --baseline file run judges against, checked before any training (None without one)."""
    if args.adaptive and not args.baseline:
        raise UsageError("--adaptive needs --baseline FILE: it trains more replicates where the comparison with a "
                         "baseline is inconclusive")
    if args.same_training and not args.baseline:
        raise UsageError("--same-training needs --baseline FILE: it compares this run's replicates with the "
                         "baseline's of the same seeds")
    if not args.baseline:
        return None
    baseline = read_results(args.baseline)
    if baseline["profile"] != args.profile:
        raise UsageError(f"--baseline {args.baseline} ran the {baseline['profile']} profile; run --profile "
                         f"{baseline['profile']}, or choose a baseline of the {args.profile} profile")
    if not any(s.name in baseline["studies"] for s in studies):
        raise UsageError(f"--baseline {args.baseline} holds none of the studies to run (it holds "
                         f"{', '.join(baseline['studies']) or 'none'})")
    if args.format in ("csv", "json"):
        raise UsageError(f"--baseline prints its verdicts as tables, which --format {args.format} output cannot "
                         "hold; write --out FILE and run `compare BASELINE FILE --json`")
    if args.same_training:  # refused before training, not after it
        current = {"environment": environment(device)}
        for study in studies:
            base_cells = baseline["studies"].get(study.name, {}).get("cells", {})
            seeds = study.seeds(study.replicates_for(args.replicates))
            for cell in cells.get(study.name, study.cells):
                if cell.id in base_cells:
                    fused = fused_size(study, cell, device, len(seeds), args.profile,
                                       False if args.no_fuse else None)
                    check_same_training(baseline, current, f"{study.name}[{cell.id}]", base_cells[cell.id],
                                        {"seeds": seeds, "fused": fused})
    return baseline


def report_file(args: argparse.Namespace) -> int:
    results = read_results(args.results)
    if args.markdown:
        check_writable(Path(args.markdown), "--markdown", "report.md")
    if args.plot:
        check_directory(Path(args.plot))
    text = markdown_report(results)
    if args.markdown:
        Path(args.markdown).write_text(text)
        print(f"report written to {args.markdown}", file=sys.stderr)
    else:
        print(text, end="")
    for path in plot_results(results, args.plot) if args.plot else []:
        print(f"figure written to {path}", file=sys.stderr)
    return 0


def show_history(args: argparse.Namespace) -> int:
    if not Path(args.directory).is_dir():
        raise UsageError(f"{args.directory} is not a folder; pass the folder that holds the results files")
    frame, notes, alerts = history(args.directory, min_shift=args.min_shift)
    runs = len(frame.columns)
    if args.last and args.last < runs:
        frame = frame.iloc[:, -args.last:]
        notes = [f"showing the newest {args.last} of {runs} runs", *notes]
    print(history_text(frame, args.markdown))
    print("! = outside the band against the run before it; ^ = a new level starts here (change point)",
          file=sys.stderr)
    for note in notes:
        print(note, file=sys.stderr)
    if args.alert:
        for alert in alerts:
            print(f"ALERT: the newest run brings a {alert}")
        return 1 if alerts else 0
    return 0


def merge_files(args: argparse.Namespace) -> int:
    check_writable(Path(args.out), "--out", "results.json")
    merged = merge([(path, read_results(path)) for path in args.results])
    write_json(merged, args.out)
    cells = sum(len(entry["cells"]) for entry in merged["studies"].values())
    studies = len(merged["studies"])
    print(f"{plural(len(args.results), 'file')} merged: {plural(cells, 'cell')} of {studies} "
          f"stud{'y' if studies == 1 else 'ies'} written to {args.out}")
    return 0


def shard_option(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def show_power(args: argparse.Namespace) -> int:
    if args.power < 0.5:
        raise UsageError(f"--power must be 0.5 or more, got {args.power}")
    results = read_results(args.results)
    baseline = read_results(args.baseline) if args.baseline else None
    powers = power_rows(results, power=args.power, alpha=args.alpha, baseline=baseline)
    if not powers:
        raise UsageError(f"{args.results} holds no study with two comparable cells; power needs a whole study")
    if args.json:
        print(strict_json([{"study": p.study, "metric": p.metric, "replicates": p.replicates, "test": p.test,
                           "seed_sd": p.seed_sd, "alpha": p.alpha, "power": p.power, "detectable_shift": p.detectable(),
                           "replicates_for_target": p.replicates_needed(args.target_shift)
                           if args.target_shift and takes_target(p.metric) else None} for p in powers]))
    else:
        print(power_table(powers, args.target_shift, args.markdown))
        unpaired = [p.study for p in powers if p.metric == "accuracy" and not p.paired]
        if baseline is not None and unpaired:
            print(f"\nnote: {args.baseline} shares too few seeds with {args.results} to pair {', '.join(unpaired)} "
                  f"({MIN_PAIRED} or more in every compared cell): those rows are the two-sample test's, from the "
                  f"spread of {args.results} alone")
        if any(p.paired for p in powers):
            print(f"\nnote: the paired rows are the power against a change that leaves each seed's run as close to "
                  f"its baseline as {args.results} is to {args.baseline}; a change to what a seed's run does spreads "
                  "the per-seed differences wider (the recorded planted faults: 2-10 times unchanged training's) "
                  "and needs a shift that much larger (docs/statistics.md, Power)")
    return 0


def speed_modes(text: str) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",")))
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown mode {unknown[0]!r}; choose from {','.join(MODES)}")
    return modes


def at_least_one(text: str, expected: str = "a whole number") -> int:
    """A count option (replicates, cells side by side): a whole number, 1 or more (0 would silently mean the
    default where a count is optional); ``expected``: what else the option takes, for the error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {expected}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def replicate_plan(text: str) -> str | int:
    """--replicates: a plan of PLANS or a count."""
    return text if text in PLANS else at_least_one(text, f"a plan ({', '.join(PLANS)}) or a whole number")


def above_zero(text: str) -> float:
    """A tolerance option that must be above 0 (a z of 0 or less would flag every cell or study)."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def probability(text: str) -> float:
    """A probability option (alarm budget, alpha, power): strictly between 0 and 1, where 0 or 1 would make every
    test pass or fail."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def zero_or_more(text: str) -> float:
    """A tolerance option that may be 0 (no allowance) but not negative."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def group_counts(text: str) -> tuple[int, ...]:
    try:
        groups = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if min(groups) < 1:
        raise argparse.ArgumentTypeError(f"group counts must be at least 1, got {text}")
    return groups


def compare_files(args: argparse.Namespace) -> int:
    """Exit 0 when no cell, study accuracy or study throughput regressed, 1 when one did, 2 on unusable input."""
    if args.markdown:
        check_writable(Path(args.markdown), "--markdown", "drift.md")
    comparison = compare(read_results(args.baseline), read_results(args.current), tolerance_of(args),
                         args.min_throughput)
    print(strict_json(as_json(comparison)) if args.json else report(comparison, markdown=False))
    if args.markdown:
        Path(args.markdown).write_text(report(comparison, markdown=True) + "\n")
    return 1 if comparison.regressed else 0


def tolerance_of(args: argparse.Namespace, **more: float) -> Tolerance:
    """The Tolerance of add_tolerance_options' options in ``args`` (the command line's, or the bench's), and
    ``more`` fields."""
    return Tolerance(alarm_budget=args.alarm_budget, sd_floor=args.sd_floor, hardware=args.allowance_hardware,
                     margin=args.margin, cell_margin=args.cell_margin, same_training=args.same_training, **more)


def check_directory(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--plot {path} is a file; give a folder for the figures")
    if not path.exists() and not path.parent.is_dir():
        raise UsageError(f"--plot {path}: directory {path.parent} does not exist; create it first")


def kept(results: dict[str, Any], out: str) -> str:
    """What the --out file of a run stopped early (interrupted, out of memory) holds."""
    finished = sum(len(study["cells"]) for study in results["studies"].values())
    return f"{out} holds the {plural(finished, 'cell')} finished before it"


def check_writable(path: Path, option: str, example: str) -> None:
    """Fail before any work, not after it, when the file ``option`` names cannot be written."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory; give a file name such as {path / example}")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: directory {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path} is not writable; choose another path")


def check_keeps_baseline(path: Path, option: str, baseline: str | None) -> None:
    """Refuse a results file ``option`` that is the baseline itself: the run would replace its reference with its
    own results (a regressed run becoming the next run's baseline)."""
    if baseline and path.resolve() == Path(baseline).resolve():
        raise UsageError(f"{option} {path} is the --baseline file, which the run would overwrite with its own "
                         "results; write them to another file")


def _log(message: str) -> None:
    if sys.stderr.isatty():
        message = f"\r{message}\033[K"
    print(message, file=sys.stderr, flush=True)


def entry_point() -> None:
    """The installed ``ablation`` script."""
    sys.exit(main(prog="ablation"))
