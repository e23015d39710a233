"""Running the table across several machines: a deterministic share of the cells per shard, and merging the
shards' results files into one that compare, report and the bench's --baseline read.

Cells are dealt out by their measured training time (reference/cell-seconds.csv:
each documented cell alone on an H200, CUDA graphs, the default replicates,
2026-11-26): the longest first, each to the shard with the least time so far.
Every shard computes the same deal, so N machines given 1/N ... N/N train
every cell exactly once.
"""

from __future__ import annotations

import csv
import dataclasses
from importlib import resources
from typing import Any

from ablation.results import ResultsError, ordered_studies
from ablation.studies import STUDIES, Cell, Study


@dataclasses.dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"{text!r} is not K/N, e.g. 1/4") from None
    if not 1 <= index <= count:
        raise ValueError(f"K must be between 1 and N in {text}, e.g. 1/{max(count, 1)}")
    return Shard(index, count)


def cell_seconds() -> dict[tuple[str, str], float]:
    with resources.files("ablation").joinpath("reference/cell-seconds.csv").open() as f:
        return {(row["study"], row["cell"]): float(row["seconds"]) for row in csv.DictReader(f)}


def estimated_seconds(study: Study, cell: Cell, measured: dict[tuple[str, str], float]) -> float:
    """A cell's measured time; a variant's from its base study's, scaled by its images trained."""
    if (study.name, cell.id) in measured:
        return measured[study.name, cell.id]
    base = STUDIES[study.variant_of] if study.variant_of else None
    if base is None or (base.name, cell.id) not in measured:
        return 1.0
    work = study.hyperparameters.epochs * study.hyperparameters.per_class
    return measured[base.name, cell.id] * work / (base.hyperparameters.epochs * base.hyperparameters.per_class)


def deal(cells: list[tuple[Study, Cell]], shard: Shard) -> list[tuple[Study, Cell]]:
    """This shard's cells, in the order given: longest first to the least-loaded shard (ties: the lower one)."""
    measured = cell_seconds()
    load = [0.0] * shard.count
    mine = set()
    by_time = sorted(range(len(cells)), key=lambda i: -estimated_seconds(*cells[i], measured))
    for i in by_time:
        target = min(range(shard.count), key=lambda s: (load[s], s))
        load[target] += estimated_seconds(*cells[i], measured)
        if target == shard.index - 1:
            mine.add(i)
    return [cell for i, cell in enumerate(cells) if i in mine]


def _seeds_text(seeds: list[int]) -> str:
    return f"{len(seeds)} from {seeds[0]}" if seeds else "none"


def merge(files: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One results file from shards (or any files) of one commit, profile, device, torch, kind of kernels
    (--deterministic or not) and data, with no cell twice and every cell of a study trained with the same seeds
    (the same --seed-offset and --replicates)."""
    (first_name, first), others = files[0], files[1:]
    merged = dict(first, studies={}, merged_from=[name for name, _ in files])
    if "shard" in merged:  # how the cells were dealt out, which changes what trained beside each other
        merged["shards"] = merged.pop("shard")["count"]
    for name, results in others:
        for key, what, read in (("profile", "profile", lambda r: r["profile"]),
                                ("commit", "code", lambda r: r["environment"].get("git_commit")),
                                ("device", "device", lambda r: r["environment"]["device_name"]),
                                ("torch", "torch", lambda r: r["environment"]["torch"]),
                                ("deterministic", "kernels (--deterministic)",
                                 lambda r: r["environment"].get("deterministic", False))):
            if read(results) != read(first):
                raise ResultsError(f"{name} ran other {what} than {first_name} ({read(results)} vs {read(first)}); "
                                   "merge the shards of one run")
    check_every_shard_once(files)
    seeds_of: dict[str, tuple[str, list[int]]] = {}  # study -> the first file that holds it, and its seeds
    for name, results in files:
        for study, entry in ordered_studies(results):
            into = merged["studies"].setdefault(study, dict(entry, cells={}))
            if into["data_checksum"] != entry["data_checksum"]:
                raise ResultsError(f"{name} trained {study} on other data than {first_name} (checksums differ); "
                                   "merge the shards of one run")
            for cell_id, record in entry["cells"].items():
                if cell_id in into["cells"]:
                    raise ResultsError(f"{study}[{cell_id}] is in more than one file ({name} among them); merge "
                                       "each shard once")
                seen_in, seeds = seeds_of.setdefault(study, (name, record["seeds"]))
                if record["seeds"] != seeds:
                    raise ResultsError(f"{name} trained {study} with other seeds ({_seeds_text(record['seeds'])}) "
                                       f"than {seen_in} ({_seeds_text(seeds)}); merge the shards of one run, trained "
                                       "with the same --seed-offset and --replicates")
                into["cells"][cell_id] = record
        merged["created"] = max(merged["created"], results["created"])
    merged["studies"] = {name: dict(entry, cells={c.id: entry["cells"][c.id] for c in STUDIES[name].cells
                                                  if c.id in entry["cells"]})
                         for name, entry in ordered_studies(merged)}
    return merged


def check_every_shard_once(files: list[tuple[str, dict[str, Any]]]) -> None:
    """The files that are shards (run --shard K/N) are the N shards of one dealing, each once: a shard left out
    (its runner failed) would leave the merged run silently short of its cells."""
    shards = [(name, results["shard"]) for name, results in files if "shard" in results]
    if not shards:
        return
    counts = sorted({shard["count"] for _, shard in shards})
    if len(counts) > 1:
        raise ResultsError(f"the files are shards of {' and '.join(map(str, counts))}; merge the shards of one run")
    holder: dict[int, str] = {}
    for name, shard in shards:
        if shard["index"] in holder:
            raise ResultsError(f"shard {shard['index']}/{counts[0]} is in more than one file ({holder[shard['index']]} "
                               f"and {name}); merge each shard once")
        holder[shard["index"]] = name
    missing = [f"{k}/{counts[0]}" for k in range(1, counts[0] + 1) if k not in holder]
    if missing:
        raise ResultsError(f"no file holds shard {', '.join(missing)}; merge every shard of the run (train a missing "
                           "one with run --shard K/N)")
