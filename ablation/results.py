"""Results files and the tables printed beside the documented ones.

A results file (JSON) holds every replicate's numbers for every cell run,
the hyperparameters, the data checksum and the environment, so that a later
run can be compared with it cell by cell (``python -m ablation compare``).
"""

from __future__ import annotations

import functools
import json
import math
import platform
import statistics
import subprocess
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import torch

from ablation.studies import STUDIES, Study, get_study
from ablation.train import CellResult
from ablation.verdict import at_chance, plural

SCHEMA = 2  # 2 added each replicate's train_loss_curve and test_loss; files of schema 1 are read as they are
READABLE = (1, 2)
FORMATS = ("table", "markdown", "csv", "json")
NOT_JUDGED = ("Profile {profile}: a check of the pipeline, too short to compare with the documented tables, so no "
              "cell or finding is judged.")


class ResultsError(ValueError):
    """A results file that cannot be read or used; the message says why."""


def environment(device: torch.device) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "git_commit": _git_commit(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }


@functools.cache  # asked once per process: the bench records the environment with every cell
def _git_commit(package: Path = Path(__file__).resolve().parent) -> str | None:
    """HEAD of the checkout ``package`` (by default the one this package runs from) is in, with "+dirty" when
    tracked files differ from it; None where the package's files are not tracked there (installed into a virtual
    environment inside another project's checkout, whose commit says nothing of this code)."""
    try:
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "__init__.py"], capture_output=True,
                                 timeout=5, cwd=package)
        if tracked.returncode != 0:
            return None
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=package)
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, timeout=5, cwd=package)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if changed.returncode == 0 and changed.stdout.strip() else "")


def short_commit(environment: dict[str, Any]) -> str:
    """The first 7 hex digits of the results' commit, keeping "+dirty" ("" when unknown)."""
    commit = environment.get("git_commit") or ""
    return commit[:7] + ("+dirty" if commit.endswith("+dirty") else "")


def new_results(device: torch.device, data_source: str, profile: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(device),
        "data": data_source,
        "profile": profile,
        "studies": {},
    }


def add_study(results: dict[str, Any], study: Study, profile: str, data: str, data_checksum: str,
              classes: int) -> dict[str, Any]:
    entry = {
        "data": data,
        "hyperparameters": asdict(study.settings(profile)),
        "groups": list(study.groups),
        "classes": classes,
        "data_checksum": data_checksum,
        "cells": {},
    }
    results["studies"][study.name] = entry
    return entry


def cell_record(study: Study, cell_id: str, result: CellResult, profile: str) -> dict[str, Any]:
    cell = study.cell(cell_id)
    documented = study.documented.get(cell_id)
    return {
        "level": cell.level,
        "variant": cell.variant,
        "batch_size": study.batch_size(cell, profile),
        "documented": None if documented is None else {
            "mean": documented.mean, "runs": list(documented.runs),
            "notebook": documented.notebook, "seeds": documented.seeds,
        },
        "seeds": result.seeds,
        "accuracy": result.accuracy,
        "final_loss": result.final_loss,
        "train_loss_curve": result.train_loss_curve,
        "test_loss": result.test_loss,
        "skipped_steps": result.skipped_steps,
        "collapsed": result.collapsed,
        "wall_s": round(result.wall_s, 4),
        "images_per_s": round(result.images_per_s, 1),
        "setup_s": round(result.setup_s, 4),
        "eval_s": round(result.eval_s, 4),
        "fused": result.fused,
        "cuda_graphs": result.graphs,
        "side_by_side": result.side_by_side,
    }


PER_REPLICATE = ("seeds", "accuracy", "final_loss", "train_loss_curve", "test_loss", "skipped_steps", "collapsed",
                 "fused_sizes")


def extend_cell(record: dict[str, Any], more: dict[str, Any]) -> None:
    """Append ``more``'s replicates (other seeds of the same cell) to ``record``, times summed; where they trained
    in a model of another size than the record's, "fused_sizes" says the size per replicate."""
    if set(record["seeds"]) & set(more["seeds"]):
        raise ResultsError(f"replicates of seeds {sorted(set(record['seeds']) & set(more['seeds']))} are in the cell "
                           "already; add other seeds")
    images = record["images_per_s"] * record["wall_s"] + more["images_per_s"] * more["wall_s"]
    record["fused_sizes"], more = model_sizes(record), dict(more, fused_sizes=model_sizes(more))
    for key in PER_REPLICATE:
        if key in record:
            record[key] = record[key] + more[key]
    if len(set(record["fused_sizes"])) == 1:  # one size: the record's "fused" says it
        del record["fused_sizes"]
    for key in ("wall_s", "setup_s", "eval_s"):
        record[key] = round(record[key] + more[key], 4)
    record["images_per_s"] = round(images / record["wall_s"], 1) if record["wall_s"] else 0.0


def model_sizes(record: dict[str, Any]) -> list[int | None]:
    """Per replicate, how many replicates its fused model trained (a record's "fused", unless run --adaptive
    added a round of another size)."""
    return record.get("fused_sizes") or [record.get("fused")] * len(record["seeds"])


def training_seconds(cells: Iterable[dict[str, Any]]) -> float:
    """The training time of these cell records: cells that trained side by side share their wall_s, counted once
    (files from before side by side: one cell at a time)."""
    return sum(cell["wall_s"] / cell.get("side_by_side", 1) for cell in cells)


def time_split(records: list[dict[str, Any]]) -> str:
    """Where the cells' time went: training (side-by-side groups counted once), model set-up and evaluation."""
    return (f"{plural(len(records), 'cell')}: {training_seconds(records):.1f} s training, "
            f"{sum(c['setup_s'] for c in records):.1f} s model set-up, {sum(c['eval_s'] for c in records):.1f} s "
            "evaluation")


def used_cuda_graphs(cells: Iterable[dict[str, Any]]) -> bool:
    """Whether any of these cell records trained with CUDA graphs (files from before graphs: no)."""
    return any(cell.get("cuda_graphs", False) for cell in cells)


def bench_workers(bench: dict[str, Any]) -> int:
    """The xdist workers that shared the device in a bench run (a results file's "bench"); files from before the
    count was recorded ran `-n 2`."""
    return bench.get("workers", 2)


def training_mode(results: dict[str, Any], cells: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """How a results file trained these cells, as far as it changes their speed: the bench (with how many xdist
    workers sharing the device) or `run`, CUDA graphs, replicates fused, and cells side by side."""
    cells = list(cells)
    bench = results.get("bench")
    return {
        "runner": "bench" if bench is not None else "run",
        "workers": bench_workers(bench) if bench is not None else None,
        "cuda_graphs": used_cuda_graphs(cells),
        "fused": sorted({cell.get("fused", 1) for cell in cells}),
        "side_by_side": sorted({cell.get("side_by_side", 1) for cell in cells}),
    }


def sharing_the_device(results: dict[str, Any]) -> tuple[int, set[str]] | None:
    """What trained together in a bench run whose xdist workers shared the device: into how many shards its cells
    were dealt (each shard on a device of its own), and every cell, as "study[cell]". What trains beside a study
    changes its speed: three recorded bench runs of 19 of the 33 cells, trained as the full bench was, ran a study
    x0.34-0.52 as fast as it did. None for `run` and a bench of one worker, whose cells train in groups of their
    own study (training_mode's side_by_side)."""
    bench = results.get("bench")
    if bench is None or bench_workers(bench) in (0, 1):
        return None
    shards = results["shard"]["count"] if "shard" in results else results.get("shards", 1)
    return shards, {f"{study}[{cell}]" for study, entry in results["studies"].items() for cell in entry["cells"]}


def planted_fault(results: dict[str, Any]) -> str | None:
    """The bug a bench run planted on purpose (--plant-fault NAME), or None."""
    return (results.get("bench") or {}).get("fault")


def write_json(data: dict[str, Any], path: str | Path) -> None:
    """Write the file whole or not at all (through a temporary file), so that an interrupt or a reader on another
    process never sees it half written."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    partial.replace(path)


def strict_json(data: Any) -> str:
    """JSON for other programs (run --format json, compare --json, power --json): a number that is not finite (the
    t of a shift whose differences do not spread, a diverged run's loss) becomes null, since strict parsers take no
    NaN or Infinity."""
    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: finite(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(item) for item in value]
        return value

    return json.dumps(finite(data), indent=1, allow_nan=False)


def read_results(path: str | Path) -> dict[str, Any]:
    try:
        results = json.loads(Path(path).read_text())
    except OSError as error:
        raise ResultsError(f"cannot read {path}: {error.strerror} (results files come from "
                           "`python -m ablation run ... --out FILE` or the bench's --bench-out)") from None
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path} is not JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(results, dict) or results.get("schema") not in READABLE or "studies" not in results:
        raise ResultsError(f"{path} is not an ablation-bench results file of schema "
                           f"{' or '.join(map(str, READABLE))}")
    problem = _incomplete(results)
    if problem:
        raise ResultsError(f"{path} is an incomplete or damaged results file: {problem}; write it anew with "
                           "`python -m ablation run ... --out FILE` or the bench's --bench-out")
    return results


# What every results file of this schema has held, and what compare, report and history read.
REQUIRED = {
    "file": ("created", "environment", "data", "profile", "studies"),
    "environment": ("torch", "device", "device_name"),
    "study": ("hyperparameters", "data_checksum", "cells"),
    "cell": ("level", "variant", "documented", "seeds", "accuracy", "collapsed", "wall_s", "images_per_s"),
}


def _incomplete(results: dict[str, Any]) -> str | None:
    """What a results file of the right schema lacks (a hand-edited or cut-off file), or None."""
    def lacks(where: str, part: Any, keys: tuple[str, ...] = ()) -> str | None:
        if not isinstance(part, dict):
            return f"{where} is not an object"
        missing = [key for key in keys if key not in part]
        return f"{where} lacks {', '.join(missing)}" if missing else None

    if found := (lacks("the file", results, REQUIRED["file"])
                 or lacks("environment", results["environment"], REQUIRED["environment"])
                 or lacks("studies", results["studies"])):
        return found
    for name, study in results["studies"].items():
        if found := lacks(f"study {name}", study, REQUIRED["study"]) or lacks(f"{name} cells", study["cells"]):
            return found
        for cell_id, cell in study["cells"].items():
            if found := lacks(f"{name}[{cell_id}]", cell, REQUIRED["cell"]):
                return found
            if found := _damaged(cell):
                return f"{name}[{cell_id}] {found}"
    return None


def _damaged(cell: dict[str, Any]) -> str | None:
    """What is wrong with a cell record's values (accuracies that are no percentages, per-replicate lists of other
    lengths than its seeds, times that are no numbers, a documented entry without its mean), or None.  Losses may
    be NaN or infinite: a diverged run."""
    accuracy = cell["accuracy"]
    if not (isinstance(accuracy, list) and accuracy and all(_number(a) and 0 <= a <= 100 for a in accuracy)):
        return "accuracy is not a list of the replicates' accuracies (percentages)"
    if not (isinstance(cell["seeds"], list) and all(isinstance(s, int) and not isinstance(s, bool)
                                                    for s in cell["seeds"])):
        return "seeds is not a list of whole numbers"
    for key in PER_REPLICATE:
        if key in cell and not (isinstance(cell[key], list) and len(cell[key]) == len(cell["seeds"])):
            return f"has {plural(len(cell['seeds']), 'seed')} but {key} is not a list of as many values"
    losses = [cell.get("final_loss"), cell.get("test_loss"), *(cell.get("train_loss_curve") or ())]
    if not all(isinstance(values, list) and all(_real(v) for v in values) for values in losses if values is not None):
        return "has a loss that is not a number (NaN and Infinity, a diverged run's, are numbers; null is not)"
    for key, unit in (("wall_s", "seconds"), ("images_per_s", "images per second")):
        if not (_number(cell[key]) and cell[key] >= 0):
            return f"{key} is not a number of {unit}"
    documented = cell["documented"]
    if documented is not None and not (isinstance(documented, dict) and _number(documented.get("mean"))):
        return "documented is neither null nor the documented runs' mean and runs"
    return None


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return _real(value) and math.isfinite(value)


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def measured_text(record: dict[str, Any], classes: int = 10) -> str:
    """'mean ± sd (n)', with runs that ended at chance counted: '21.30 ± 0.95 (n=5)',
    '20.1 ± 7.4 (n=8, 2 at chance)'."""
    mean, sd = mean_sd(record["accuracy"])
    failed = sum(at_chance(a, c, classes) for a, c in zip(record["accuracy"], record["collapsed"]))
    note = f"n={len(record['accuracy'])}" + (f", {failed} at chance" if failed else "")
    return f"{mean:.2f} ± {sd:.2f} ({note})"


def study_rows(name: str, entry: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The study document's table shape: one row per level, measured and documented per variant."""
    study = get_study(name)
    headers = [study.factor]
    for variant in study.variants:
        label = f"{variant} " if variant else ""
        headers += [f"{label}measured", f"{label}documented"]
    rows = []
    for level in study.levels:
        row = [str(level)]
        present = False
        for cell in (c for c in study.cells if c.level == level):
            record = entry["cells"].get(cell.id)
            documented = study.documented.get(cell.id)
            present |= record is not None
            row += [measured_text(record, entry.get("classes", 10)) if record else "-",
                    f"{documented.mean:.2f}" if documented else "-"]
        if present:
            rows.append(row)
    return headers, rows


def render(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [headers, *rows])


def study_data(results: dict[str, Any], name: str) -> str:
    """The data a study of the file trained on: its own (the CIFAR-100 variant's, beside CIFAR-10 studies), or in
    files that do not record it, the run's."""
    return results["studies"][name].get("data", results["data"])


def ordered_studies(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, entry) of the studies in a results file, in the registry's order."""
    return [(name, results["studies"][name]) for name in STUDIES if name in results["studies"]]


def results_frame(results: dict[str, Any]) -> pd.DataFrame:
    """One row per measured cell: documented mean, measured mean, sd, replicates and runs at chance."""
    rows = []
    for name, entry in ordered_studies(results):
        for cell_id, record in entry["cells"].items():
            mean, sd = mean_sd(record["accuracy"])
            rows.append({
                "study": name, "cell": cell_id, "level": record["level"], "variant": record["variant"],
                "documented": record["documented"]["mean"] if record["documented"] else None,
                "mean": round(mean, 4), "sd": round(sd, 4), "n": len(record["accuracy"]),
                "at_chance": sum(at_chance(a, c, entry.get("classes", 10))
                                 for a, c in zip(record["accuracy"], record["collapsed"])),
            })
    return pd.DataFrame(rows)


def format_results(results: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return strict_json(results)
    if fmt == "csv":
        return results_frame(results).to_csv(index=False).rstrip("\n")
    blocks = []
    for name, entry in ordered_studies(results):
        study = get_study(name)
        title = f"{study.title} ({name}), accuracy %, data: {study_data(results, name)}, profile: {results['profile']}"
        headers, rows = study_rows(name, entry)
        blocks.append(("### " if fmt == "markdown" else "") + title + "\n\n" + render(headers, rows, fmt == "markdown"))
    return "\n\n".join(blocks)
