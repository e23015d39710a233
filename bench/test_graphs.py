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

import dataclasses

import pytest
import torch

import ablation.train as train
from ablation.data import synthetic
from ablation.studies import get_study

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


@pytest.mark.gpu
@pytest.mark.parametrize("name,cell_id,changes", CASES, ids=[c[1] for c in CASES])
def test_graph_replays_equal_eager_steps(cuda, monkeypatch, name, cell_id, changes):
    study = get_study(name)
    hp = dataclasses.replace(study.hyperparameters, **{"per_class": 30, "epochs": 2, **changes})
    study = dataclasses.replace(study, hyperparameters=hp)
    data = train.prepare(synthetic(train_per_class=30, test_per_class=20), 30, 0, "cuda")
    cell, seeds = study.cell(cell_id), [3, 4, 5]
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # the same kernels for both
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)

    monkeypatch.setattr(train, "CUDAGraphSteps", lambda step, batch_size: step)
    eager = train.train_cell(study, cell, data, seeds, graphs=True)
    Counted.replays = 0
    monkeypatch.setattr(train, "CUDAGraphSteps", Counted)
    graphed = train.train_cell(study, cell, data, seeds, graphs=True)

    full_batches = hp.epochs * (len(data.train_y) // study.batch_size(cell))
    assert Counted.replays == full_batches - Counted.WARMUP_STEPS
    for (key, ours), theirs in zip(graphed.model.state_dict().items(), eager.model.state_dict().values()):
        assert torch.allclose(ours.float(), theirs.float(), rtol=1e-5, atol=1e-6), (
            f"{key}: max difference {(ours.float() - theirs.float()).abs().max():.3g}")
    assert graphed.accuracy == pytest.approx(eager.accuracy, abs=0.5)
    assert graphed.skipped_steps == eager.skipped_steps
    assert graphed.final_loss == pytest.approx(eager.final_loss, rel=1e-4)
