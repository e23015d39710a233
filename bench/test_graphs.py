"""CUDA graphs change nothing that is computed: graph replays equal the same step run eagerly on the GPU.

The eager side runs the very step that gets captured (fused optimizer
kernels, lr as a device tensor, per-replicate skipping; tests/test_train.py
shows in float64 on the CPU that this step is the notebooks' training), so
any difference here comes from capture and replay alone.  Small generated
data; no CIFAR copy needed.  Each case has full batches to warm up, capture
and replay, learning-rate changes between epochs, and a last partial batch
per epoch that runs eagerly between replays.
"""

from __future__ import annotations

import math

import pytest
import torch

import ablation.train as train
from ablation.data import synthetic
from ablation.models import replicate_state
from ablation.studies import Cell, Study, get_study

CASES = [  # study, cell, hyperparameter changes: 300 images, 2-3 epochs
    ("batchnorm_vs_groupnorm", "batch_size=8-batchnorm", {}),  # GradScaler path, cosine lr; 37 full batches and 4
    ("batchnorm_vs_groupnorm", "batch_size=64-groupnorm", {"epochs": 3}),  # 4 full batches and 44 images
    ("sigmoid_vs_relu", "blocks=3-relu", {"batch_size": 64}),  # AdamW
    ("conv_activation_norm_position", "order=conv_relu_bn",
     {"batch_size": 64, "scheduler_args": {"step_size": 1, "gamma": 0.5}}),
]


class Counted(train.CUDAGraphSteps):
    """CUDAGraphSteps that counts its replays."""

    replays = 0

    def __call__(self, indices: torch.Tensor) -> None:
        super().__call__(indices)
        if self.graph is not None and indices.shape[1] == self.batch_size:
            Counted.replays += 1


def eager_and_graphed(monkeypatch, study: Study, cell: Cell, data: train.DeviceData, seeds: list[int]):
    """The cell trained twice with the graph-ready step: run eagerly, then captured and replayed."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # the same kernels for both
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(train, "CUDAGraphSteps", lambda step, batch_size: step)
    eager = train.train_cell(study, cell, data, seeds, graphs=True)
    Counted.replays = 0
    monkeypatch.setattr(train, "CUDAGraphSteps", Counted)
    graphed = train.train_cell(study, cell, data, seeds, graphs=True)
    full_batches = study.settings().epochs * (len(data.train_y) // study.batch_size(cell))
    assert Counted.replays == full_batches - Counted.WARMUP_STEPS
    return eager, graphed


def assert_same_state(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    for key, value in ours.items():
        assert torch.allclose(value.float(), theirs[key].float(), rtol=1e-5, atol=1e-6), (
            f"{key}: max difference {(value.float() - theirs[key].float()).abs().max():.3g}")


def small(name: str, **changes) -> Study:
    """The study on 300 images for 2 epochs (or as changed)."""
    return get_study(name).with_hyperparameters(**{"per_class": 30, "epochs": 2, **changes})


@pytest.mark.gpu
@pytest.mark.parametrize("name,cell_id,changes", CASES, ids=[c[1] for c in CASES])
def test_graph_replays_equal_eager_steps(cuda, monkeypatch, name, cell_id, changes):
    study = small(name, **changes)
    data = train.prepare(synthetic(train_per_class=30, test_per_class=20), 30, 0, "cuda")
    eager, graphed = eager_and_graphed(monkeypatch, study, study.cell(cell_id), data, [3, 4, 5])
    assert_same_state(graphed.model.state_dict(), eager.model.state_dict())
    assert graphed.accuracy == pytest.approx(eager.accuracy, abs=0.5)
    assert graphed.skipped_steps == eager.skipped_steps
    assert graphed.final_loss == pytest.approx(eager.final_loss, rel=1e-4)


@pytest.mark.gpu
def test_a_replicate_whose_gradients_are_never_finite_skips_every_replayed_step(cuda, monkeypatch,
                                                                              never_finite_second_replicate):
    """GradScaler skipping inside the graph: each replicate's fused SGD kernel reads that replicate's found-inf
    flag on the device, so replicate 1 (an inf weight) never moves while 0 and 2 train as they do eagerly."""
    study = small("batchnorm_vs_groupnorm")
    cell, seeds = study.cell("batch_size=8-batchnorm"), [3, 4, 5]
    data = train.prepare(synthetic(train_per_class=30, test_per_class=20), 30, 0, "cuda")
    initial = never_finite_second_replicate(study, cell, data.classes, seeds)[1].state_dict()
    eager, graphed = eager_and_graphed(monkeypatch, study, cell, data, seeds)

    steps = study.settings().epochs * math.ceil(len(data.train_y) / study.batch_size(cell))
    assert graphed.skipped_steps == eager.skipped_steps == [0, steps, 0]
    never_moved = replicate_state(graphed.model, 3, 1)
    for key, value in initial.items():
        if "running" not in key and "num_batches" not in key:  # statistics follow the forward pass, skipped or not
            assert torch.equal(never_moved[key].cpu(), value), key
    for r in (0, 2):
        assert_same_state(replicate_state(graphed.model, 3, r), replicate_state(eager.model, 3, r))


@pytest.mark.gpu
def test_cells_side_by_side_on_cuda_streams_train_as_each_alone(cuda, monkeypatch):
    """Three cells replaying their CUDA graphs at once, each on a stream of its own (run --side-by-side), end
    where each ends trained alone: a missing wait between streams would show here as a different state."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    study = small("batchnorm_vs_groupnorm")
    cells = [study.cell(c) for c in ("batch_size=8-batchnorm", "batch_size=8-groupnorm", "batch_size=64-groupnorm")]
    data = train.prepare(synthetic(train_per_class=30, test_per_class=20), 30, 0, "cuda")
    alone = [train.train_cell(study, cell, data, [3, 4, 5], graphs=True) for cell in cells]
    together = train.train_side_by_side([train.CellTraining(study, cell, data, [3, 4, 5], graphs=True)
                                         for cell in cells])
    for one, both in zip(alone, together):
        assert_same_state(both.model.state_dict(), one.model.state_dict())
        assert both.accuracy == pytest.approx(one.accuracy, abs=0.5) and both.skipped_steps == one.skipped_steps
    assert [r.side_by_side for r in together] == [3, 3, 3]
