"""The studies as data: cells, every hyperparameter, and the documented table.

Each number below was read from the notebook that printed the documented
table (see ablation/reference/README.md); the per-run accuracies come from
ablation/reference/seed-runs.csv, a copy of every accuracy those notebooks
printed.  A study is trained by the one trainer in ablation.train.
"""

from __future__ import annotations

import csv
import dataclasses
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any, Callable

from torch import nn

from ablation.data import SOURCE_CLASSES
from ablation.models import depth_net, norm_net, order_net

PROFILES = ("full", "smoke")
SMOKE = {"per_class": 20, "epochs": 1, "test_limit": 1000}
# Replicates per cell: "pr", each study's own count (the whole table in about 46 s of training on one H200),
# "nightly", the counts at which each study's paired shift test detects 0.5 points (docs/statistics.md, "Power"),
# or "null", NULL_BLOCKS times pr: a run that bench/null_runs.py cuts into that many pseudo-runs of the bench.
PLANS = ("pr", "nightly", "null")
NULL_BLOCKS = 5


@dataclass(frozen=True)
class Hyperparameters:
    """How one cell trains: subset size, batches, optimizer, schedule and precision."""

    per_class: int
    epochs: int
    batch_size: int | None  # None: the cell's level is the batch size
    optimizer: str  # "adamw" or "sgd", torch.optim arguments in optimizer_args
    optimizer_args: dict[str, float]
    scheduler: str | None  # None, "cosine" (CosineAnnealingLR) or "step" (StepLR), stepped per epoch
    scheduler_args: dict[str, float]
    amp: bool  # bf16 autocast of forward and loss with a GradScaler (CUDA); float32 otherwise
    test_limit: int | None = None  # evaluate on the first N test images only (smoke profile)


@dataclass(frozen=True)
class Cell:
    """One documented table entry: a row (level of the study's factor) and a column (variant)."""

    factor: str
    level: int | str
    variant: str

    @property
    def id(self) -> str:
        if self.level == self.variant:
            return f"{self.factor}={self.level}"
        return f"{self.factor}={self.level}-{self.variant}"


@dataclass(frozen=True)
class Documented:
    """The documented accuracy of a cell: the notebook's runs and the table's mean of them."""

    runs: tuple[float, ...]
    notebook: str
    seeds: str

    @property
    def mean(self) -> float:
        return round(statistics.fmean(self.runs), 2)


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    notebook: str
    factor: str
    levels: tuple[Any, ...]
    variants: tuple[str, ...]
    build: Callable[[Cell, int, int, tuple[int, ...]], nn.Module]  # (cell, classes, replicates, groups) -> model
    hyperparameters: Hyperparameters
    replicates: int  # default replicates per cell (the pr plan)
    nightly_replicates: int  # replicates per cell of the nightly plan
    seed: int  # replicate i trains with seed + i
    subset_seed: int  # the class-balanced training subset, drawn once per study
    dataset: str = "cifar10"
    groups: tuple[int, ...] = ()  # GroupNorm group count per block, for studies with GroupNorm cells
    bimodal_levels: tuple[Any, ...] = ()  # levels whose runs either learn or collapse to chance
    notes: str = ""
    variant_of: str | None = None  # a variant the study document mentions but does not tabulate
    # On CUDA, `run` trains this many cells at once, each on a stream of its own (train_side_by_side).  On an
    # H100 (2026-11-26) all 14 norm-study cells at once trained in 16.4 s instead of 29.8 s, the order study's 3 in
    # 13.1-13.2 s instead of 16.7.  Sigmoid/ReLU cells gained 4-6 % and would hold several batch-512 float32 models
    # at once (one activation of 5 replicates is 335 MB, and a block keeps a few for backward): one at a time.
    side_by_side: int = 1
    cells: tuple[Cell, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.hyperparameters.amp and self.hyperparameters.optimizer != "sgd":
            raise ValueError(f"{self.name}: per-replicate GradScaler skipping supports SGD only")
        cells = tuple(
            Cell(self.factor, level, level if self.variants == ("",) else variant)
            for level in self.levels
            for variant in self.variants
        )
        object.__setattr__(self, "cells", cells)

    def cell(self, cell_id: str) -> Cell:
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        raise KeyError(f"{self.name} has no cell {cell_id!r}; its cells: {', '.join(c.id for c in self.cells)}")

    def settings(self, profile: str = "full") -> Hyperparameters:
        if profile == "smoke":
            smoke = dict(SMOKE, per_class=min(SMOKE["per_class"], self.hyperparameters.per_class))
            return dataclasses.replace(self.hyperparameters, **smoke)
        if profile != "full":
            raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
        return self.hyperparameters

    @property
    def classes(self) -> int:
        """The class count of the study's dataset: its models, documented table and findings are for that count."""
        return SOURCE_CLASSES[self.dataset]

    def model(self, cell: Cell, classes: int = 10, replicates: int = 1) -> nn.Module:
        return self.build(cell, classes, replicates, self.groups)

    def with_hyperparameters(self, **changes: Any) -> Study:
        """This study with some hyperparameters changed (smaller tests, planted faults)."""
        return dataclasses.replace(self, hyperparameters=dataclasses.replace(self.hyperparameters, **changes))

    def batch_size(self, cell: Cell, profile: str = "full") -> int:
        return self.settings(profile).batch_size or int(cell.level)

    def replicates_for(self, plan: str | int) -> int:
        """Replicates per cell of a plan (PLANS), or a number given as is."""
        if isinstance(plan, int):
            return plan
        if plan not in PLANS:
            raise ValueError(f"unknown replicate plan {plan!r}; choose one of {', '.join(PLANS)} or a number")
        return {"pr": self.replicates, "nightly": self.nightly_replicates, "null": NULL_BLOCKS * self.replicates}[plan]

    def seeds(self, replicates: int) -> list[int]:
        return [self.seed + i for i in range(replicates)]

    @cached_property
    def documented(self) -> dict[str, Documented]:
        """Cell id -> documented runs, from the notebooks' printed accuracies."""
        return _documented_runs().get(self.name, {})


def _documented_runs() -> dict[str, dict[str, Documented]]:
    runs: dict[str, dict[str, list[dict[str, str]]]] = {}
    with resources.files("ablation").joinpath("reference/seed-runs.csv").open() as f:
        for row in csv.DictReader(f):
            level: int | str = int(row["level"]) if row["level"].isdigit() else row["level"]
            cell = Cell(row["factor"], level, row["variant"])
            runs.setdefault(row["study"], {}).setdefault(cell.id, []).append(row)
    return {
        study: {
            cell_id: Documented(
                runs=tuple(float(r["accuracy"]) for r in rows),
                notebook=rows[0]["notebook"],
                seeds=",".join(r["seed"] for r in rows),
            )
            for cell_id, rows in cells.items()
        }
        for study, cells in runs.items()
    }


SGD = {"lr": 0.0195, "momentum": 0.91, "weight_decay": 0.0}

NORM_STUDY = Study(
    name="batchnorm_vs_groupnorm",
    title="BatchNorm vs GroupNorm over batch size",
    notebook="BatchNorm_vs_GroupNorm.ipynb",
    factor="batch_size",
    levels=(2, 4, 8, 16, 32, 64, 128),
    variants=("batchnorm", "groupnorm"),
    build=lambda cell, classes, r, groups: norm_net(
        "batch" if cell.variant == "batchnorm" else "group", groups, classes, r
    ),
    hyperparameters=Hyperparameters(
        per_class=200, epochs=10, batch_size=None,
        optimizer="sgd", optimizer_args=SGD,
        scheduler="cosine", scheduler_args={"T_max": 10, "eta_min": 0.003}, amp=True,
    ),
    replicates=8,
    nightly_replicates=16,
    side_by_side=14,
    seed=84035,
    subset_seed=84035,
    groups=(4, 8, 8),
    bimodal_levels=(2, 4),
    notes="CIFAR-10 and GroupNorm groups 4/8/8 as the notebook ran it (its README says CIFAR-100, 32 groups); one run.",
)


NORM_LONG = dataclasses.replace(
    NORM_STUDY,
    name="batchnorm_vs_groupnorm_long",
    title="BatchNorm vs GroupNorm over batch size, 100 epochs",
    notebook="BatchNorm_vs_GroupNorm - Many Epochs.ipynb",
    hyperparameters=dataclasses.replace(
        NORM_STUDY.hyperparameters, per_class=500, epochs=100,
        optimizer_args={"lr": 0.012, "momentum": 0.87, "weight_decay": 5e-4},
        scheduler_args={"T_max": 100, "eta_min": 0.0005},
    ),
    replicates=3,
    nightly_replicates=3,
    seed=1234,
    subset_seed=1234,
    variant_of="batchnorm_vs_groupnorm",
    notes="The 'Many Epochs' rerun 'closer to the paper'; one run, not shown in the study document.",
)

NORM_CIFAR100 = dataclasses.replace(
    NORM_STUDY,
    name="batchnorm_vs_groupnorm_cifar100",
    title="BatchNorm vs GroupNorm over batch size, CIFAR-100, 32 groups",
    notebook="(described in the study document's text; no notebook printed a table)",
    dataset="cifar100",
    groups=(16, 32, 32),
    nightly_replicates=NORM_STUDY.replicates,
    variant_of="batchnorm_vs_groupnorm",
    notes="GroupNorm of 32 groups as the document says, except the 16-channel first layer, which 32 groups "
          "cannot divide: it uses 16 (one channel per group, the GroupNorm paper's rule of at most as many "
          "groups as channels). No documented table.",
)

STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study(
            name="sigmoid_vs_relu",
            title="Sigmoid vs ReLU over depth",
            notebook="Sigmoid_vs_ReLU.ipynb",
            factor="blocks",
            levels=tuple(range(1, 9)),
            variants=("sigmoid", "relu"),
            build=lambda cell, classes, r, groups: depth_net(int(cell.level), cell.variant, classes, r),
            hyperparameters=Hyperparameters(
                per_class=300, epochs=10, batch_size=512,
                optimizer="adamw", optimizer_args={"lr": 1e-3, "weight_decay": 0.01},
                scheduler=None, scheduler_args={}, amp=False,
            ),
            replicates=5,
            nightly_replicates=16,
            seed=0,
            subset_seed=0,
            notes="5 runs with unrecorded random seeds; the table is their mean.",
        ),
        NORM_STUDY,
        Study(
            name="conv_activation_norm_position",
            title="Order of conv, norm and activation",
            notebook="Conv_Activation_Norm_Position.ipynb",
            factor="order",
            levels=("conv_bn_relu", "conv_relu_bn", "conv_leakyrelu_bn"),
            variants=("",),
            build=lambda cell, classes, r, groups: order_net(str(cell.level), classes, r),
            hyperparameters=Hyperparameters(
                per_class=500, epochs=50, batch_size=256,
                optimizer="sgd", optimizer_args=SGD,
                scheduler="step", scheduler_args={"step_size": 20, "gamma": 0.1}, amp=True,
            ),
            replicates=3,
            nightly_replicates=24,
            side_by_side=3,
            seed=99584,
            subset_seed=99584,
            notes="3 runs (seeds 99584, 88351, 97531); the table is their mean.",
        ),
        NORM_LONG,
        NORM_CIFAR100,
    )
}
DOCUMENTED = [s for s in STUDIES.values() if s.variant_of is None]  # the study document's three tables


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; choose one of: {', '.join(STUDIES)} (or 'all')")
    return STUDIES[name]
