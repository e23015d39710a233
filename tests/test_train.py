"""The trainer: it learns, it is deterministic on CPU, and fused replicates are separate runs."""

import pytest
import torch
import torch.nn.functional as F

import ablation.runner as runner
import ablation.train as train
from ablation.data import synthetic
from ablation.models import replicate_state
from ablation.studies import get_study
from ablation.train import CellResult, ReplicateGradScaler, ReplicateSGD, TrainStep, prepare, train_cell
from bench.step_times import Dispatched


def shrink(name, **changes):
    return get_study(name).with_hyperparameters(**changes)


@pytest.fixture(scope="module")
def generated():
    return synthetic(train_per_class=60, test_per_class=30)


def test_trainer_beats_chance_clearly_on_generated_data(generated):
    study = shrink("batchnorm_vs_groupnorm", per_class=60, epochs=3)
    data = prepare(generated, 60, 0, "cpu")
    result = train_cell(study, study.cell("batch_size=32-groupnorm"), data, [0, 1])
    assert min(result.accuracy) > 60  # chance is 10 %
    assert result.collapsed == [False, False] and result.skipped_steps == [0, 0]
    assert max(result.final_loss) < 1.5 < 2.3  # below the untrained loss, ln(10) = 2.3
    assert result.wall_s > 0 and result.images_per_s == pytest.approx(2 * 600 * 3 / result.wall_s)


def test_same_seed_same_result_on_cpu(generated, monkeypatch):
    study = shrink("sigmoid_vs_relu", per_class=30, epochs=2, batch_size=64)
    data = prepare(generated, 30, 0, "cpu", test_limit=200)
    cell = study.cell("blocks=2-relu")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)  # a caller's autotuning is turned off
    first, again, other = (train_cell(study, cell, data, seeds) for seeds in ([7], [7], [8]))
    assert torch.backends.cudnn.benchmark is False
    assert first.accuracy == again.accuracy and first.final_loss == again.final_loss
    assert first.final_loss != other.final_loss


def reference_runs(study, cell, data, seeds, dtype):
    """R independent runs written as the notebooks wrote them: one model, torch.optim, torch.amp.GradScaler.

    Returns each run's final state, test accuracy, mean training loss of every epoch and test loss."""
    hp = study.settings()
    states, accuracies, curves, test_losses = [], [], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        model = study.model(cell, data.classes).to(dtype)
        optimizer = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}[hp.optimizer](model.parameters(), **hp.optimizer_args)
        scheduler = {"cosine": torch.optim.lr_scheduler.CosineAnnealingLR, "step": torch.optim.lr_scheduler.StepLR,
                     None: None}[hp.scheduler]
        scheduler = scheduler(optimizer, **hp.scheduler_args) if scheduler else None
        scaler = torch.amp.GradScaler("cpu", enabled=hp.amp)
        generator = torch.Generator().manual_seed(seed)
        curve = []
        for _ in range(hp.epochs):
            order = torch.randperm(len(data.train_y), generator=generator)
            loss_sum = 0.0
            for i in range(0, len(order), study.batch_size(cell)):
                idx = order[i:i + study.batch_size(cell)]
                loss = F.cross_entropy(model(data.normalize(data.train_x[idx], dtype))[:, 0], data.train_y[idx])
                loss_sum += loss.item() * len(idx)
                optimizer.zero_grad()
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            curve.append(loss_sum / len(order))
            if scheduler:
                scheduler.step()
        model.eval()
        with torch.no_grad():
            logits = model(data.normalize(data.test_x, dtype))[:, 0]
        accuracies.append((logits.argmax(1) == data.test_y).double().mean().item() * 100)
        test_losses.append(F.cross_entropy(logits, data.test_y).item())
        states.append(model.state_dict())
        curves.append(curve)
    return states, accuracies, curves, test_losses


CELLS = [
    ("sigmoid_vs_relu", "blocks=3-sigmoid", {"batch_size": 16}),
    ("batchnorm_vs_groupnorm", "batch_size=16-batchnorm", {"batch_size": 16}),
    ("batchnorm_vs_groupnorm", "batch_size=16-groupnorm", {"batch_size": 16}),
    ("conv_activation_norm_position", "order=conv_leakyrelu_bn", {"batch_size": 16, "scheduler_args": {"step_size": 1, "gamma": 0.5}}),
    ("batchnorm_vs_groupnorm_long", "batch_size=16-batchnorm", {"batch_size": 16}),  # SGD weight decay 5e-4
]


HOST_READS = {"_local_scalar_dense", "is_nonzero", "nonzero", "item"}  # ops that fail under CUDA graph capture


def host_reads(dispatched: Dispatched) -> list[str]:
    return [op for op in dispatched.ops if op in HOST_READS]


def state_addresses(step: TrainStep) -> list[int]:
    """Where every tensor a training step carries to the next lives: a graph replay writes exactly there.

    Gradients are not carried: each step sets them to None and makes them anew.
    """
    tensors = list(step.model.parameters()) + list(step.model.buffers()) + [step.loss_sum, step.skipped]
    tensors += [v for state in step.optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    tensors += [g["lr"] for g in step.optimizer.param_groups if torch.is_tensor(g["lr"])]
    if step.scaler is not None:
        tensors += [step.scaler.scale, step.scaler.growth_tracker]
    return [t.data_ptr() for t in tensors]


class EagerGraphStandIn:
    """Runs CUDAGraphSteps' step eagerly on the CPU, checking what capture and replay rely on.

    No host reads, and from the second step on (capture comes after warm-up)
    every piece of training state stays in the memory it had.
    """

    instances: list["EagerGraphStandIn"] = []

    def __init__(self, step: TrainStep, batch_size: int) -> None:
        self.step, self.host_reads, self.addresses = step, [], []
        self.instances.append(self)

    def __call__(self, indices: torch.Tensor) -> None:
        with Dispatched() as dispatched:
            self.step(indices)
        self.host_reads += host_reads(dispatched)
        self.addresses.append(state_addresses(self.step))


@pytest.fixture
def graph_stand_in(monkeypatch):
    EagerGraphStandIn.instances.clear()
    monkeypatch.setattr(train, "CUDAGraphSteps", EagerGraphStandIn)
    return EagerGraphStandIn.instances


def assert_capturable(stand_ins):
    (runner,) = stand_ins
    assert runner.host_reads == []
    assert len(runner.addresses) > 2 and all(a == runner.addresses[1] for a in runner.addresses[1:])


@pytest.fixture
def conv_input_layouts():
    """(train or eval, memory layout) of every convolution's input while the test runs."""
    layouts = set()

    def record(module, inputs):
        if isinstance(module, torch.nn.Conv2d) and inputs[0].shape[-1] > 1:  # 1x1: both layouts at once
            layout = "channels_last" if not inputs[0].is_contiguous() else "contiguous"
            layouts.add(("train" if module.training else "eval", layout))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    yield layouts
    handle.remove()


@pytest.mark.parametrize("way", ["eager", "graph-ready", "channels-last"])
@pytest.mark.parametrize("name,cell_id,changes", CELLS, ids=[f"{c[0]}:{c[1]}" for c in CELLS])
def test_fused_replicates_equal_separate_runs_in_float64(generated, graph_stand_in, monkeypatch, conv_input_layouts,
                                                         name, cell_id, changes, way):
    """3 replicates, 20 images in batches of 16 (a last batch of 4), 2 epochs, every study's model.

    graph-ready: the step CUDA graphs capture (fused optimizer kernels, lr as a
    tensor, per-replicate GradScaler skipping), run eagerly, is the same training.
    channels-last: the layout every cell takes on CPU, and large batches on CUDA,
    changes nothing computed; the test set is evaluated in the layout trained in.
    """
    study = shrink(name, per_class=2, epochs=2, **changes)
    data = prepare(generated, 2, 0, "cpu", test_limit=20)
    cell, seeds = study.cell(cell_id), [11, 12, 13]
    monkeypatch.setattr(train, "uses_channels_last", lambda device, batch_size: way == "channels-last")
    graphs = way == "graph-ready"
    fused = train_cell(study, cell, data, seeds, dtype=torch.float64, graphs=graphs)
    layout = "channels_last" if way == "channels-last" else "contiguous"
    assert conv_input_layouts == {("train", layout), ("eval", layout)}
    states, accuracies, curves, test_losses = reference_runs(study, cell, data, seeds, torch.float64)
    for r, state in enumerate(states):
        ours = replicate_state(fused.model, 3, r)
        for key, expected in state.items():
            assert torch.allclose(ours[key], expected, rtol=1e-6, atol=1e-7), f"replicate {r}: {key}"
    assert fused.accuracy == pytest.approx(accuracies, abs=1e-9)
    assert fused.final_loss == pytest.approx([curve[-1] for curve in curves], rel=1e-6)
    for ours, theirs in zip(fused.train_loss_curve, curves):
        assert ours == pytest.approx(theirs, rel=1e-6)
    assert fused.test_loss == pytest.approx(test_losses, rel=1e-6)
    if graphs:
        assert_capturable(graph_stand_in)


def test_replicates_one_after_another_add_up_to_the_cells_result(monkeypatch):
    """Unfused (--no-fuse), a cell's replicates train one by one: the cell's times are their sums and its
    images/s is all their images over all that time, comparable with a fused cell's."""
    walls = iter([1.0, 3.0])

    def one_replicate(study, cell, data, seeds, profile, progress=None, graphs=False):
        wall = next(walls)
        return CellResult(seeds=seeds, accuracy=[float(seeds[0])], final_loss=[0.5], train_loss_curve=[[0.5]],
                          test_loss=[0.7], skipped_steps=[seeds[0]],
                          collapsed=[False], wall_s=wall, images_per_s=600 / wall, setup_s=0.25, eval_s=0.125,
                          fused=1, graphs=False)

    monkeypatch.setattr(runner, "train_cell", one_replicate)
    study = get_study("sigmoid_vs_relu")
    result = runner.run_cell(study, study.cell("blocks=1-relu"), None, 2, fuse=False)
    assert result.seeds == [0, 1] and result.accuracy == [0.0, 1.0] and result.skipped_steps == [0, 1]
    assert (result.wall_s, result.setup_s, result.eval_s, result.fused) == (4.0, 0.5, 0.25, 1)
    assert result.images_per_s == pytest.approx(1200 / 4.0)


def test_recorded_accuracy_is_the_models_to_one_test_image(generated):
    """Accuracy is recorded to the test set's resolution (one image of 10,000 is 0.01 points; of 30 here, 3.33):
    the same-seed numerics and the paired tests see a run that moved by one image."""
    study = shrink("sigmoid_vs_relu", per_class=2, epochs=1, batch_size=8)
    data = prepare(generated, 2, 0, "cpu", test_limit=30)
    result = train_cell(study, study.cell("blocks=1-relu"), data, [0, 1])
    result.model.eval()
    with torch.no_grad():
        logits = result.model(data.normalize(data.test_x, torch.float32).repeat(1, 2, 1, 1))
    exact = ((logits.argmax(2) == data.test_y[:, None]).double().mean(0) * 100).tolist()
    assert any(round(a, 1) != a for a in exact)  # a resolution coarser than the test set's would show
    assert result.accuracy == pytest.approx(exact, abs=5e-5)


def test_on_cpu_every_cell_trains_and_evaluates_channels_last(generated, conv_input_layouts):
    """channels_last was the faster layout on the CPU for every study, training and evaluating; on CUDA only
    from batch 256 (train.CHANNELS_LAST_MIN_BATCH)."""
    study = shrink("batchnorm_vs_groupnorm", per_class=6, epochs=1)
    data = prepare(generated, 6, 0, "cpu", test_limit=50)
    train_cell(study, study.cell("batch_size=2-groupnorm"), data, [1, 2])
    assert conv_input_layouts == {("train", "channels_last"), ("eval", "channels_last")}
    cuda = torch.device("cuda")
    assert not train.uses_channels_last(cuda, 128) and train.uses_channels_last(cuda, 256)


@pytest.mark.parametrize("graphs", [False, True], ids=["eager", "graph-ready"])
def test_each_replicate_has_its_own_gradscaler_skip_decisions(generated, never_finite_second_replicate,
                                                              graph_stand_in, graphs):
    """A replicate whose gradients are never finite skips every step and backs its scale off; the others train on."""
    study = shrink("batchnorm_vs_groupnorm", per_class=6, epochs=2, batch_size=16)
    data = prepare(generated, 6, 0, "cpu", test_limit=100)
    cell, seeds = study.cell("batch_size=16-batchnorm"), [11, 12, 13]
    fused = train_cell(study, cell, data, seeds, dtype=torch.float64, graphs=graphs)
    steps = 2 * 4
    assert fused.skipped_steps == [0, steps, 0]
    clean_states, *_ = reference_runs(study, cell, data, [11, 13], torch.float64)
    for r, state in zip((0, 2), clean_states):
        ours = replicate_state(fused.model, 3, r)
        assert all(torch.allclose(ours[k], v, rtol=1e-6, atol=1e-7) for k, v in state.items())
    assert torch.isinf(replicate_state(fused.model, 3, 1)["0.conv.weight"]).any()
    if graphs:
        assert_capturable(graph_stand_in)


def test_the_stand_in_notices_a_host_read_such_as_torch_gradscalers_step():
    """torch.amp.GradScaler.step asks the host whether to step, which a CUDA graph cannot capture; the fused step
    avoids that read, and the stand-in must see it wherever it happens."""
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(param.sum()).backward()
    with Dispatched() as dispatched:
        scaler.step(optimizer)
    assert host_reads(dispatched)


def test_the_gradscaler_step_costs_ops_per_replicate_not_per_parameter(generated):
    """Launch overhead: unscaling, the skippable SGD step and the scale update run the same ops for the norm
    model's 14 parameter tensors as for the order model's 34 (a small-batch step is launch-bound on a GPU)."""
    data = prepare(generated, 6, 0, "cpu", test_limit=100)
    counts = []
    for name, cell_id in (("batchnorm_vs_groupnorm", "batch_size=2-batchnorm"),
                          ("conv_activation_norm_position", "order=conv_bn_relu")):
        study = get_study(name)
        step = train.cell_step(study, study.cell(cell_id), data, [1, 2, 3], capturable=True)
        step(torch.arange(12).view(3, 4))  # leaves gradients to unscale
        with Dispatched() as dispatched:
            found_inf = step.scaler.unscale_(step.optimizer)
            step.optimizer.step(found_inf)
            step.scaler.update(found_inf)
        counts.append(sorted(dispatched.ops))
    assert counts[0] == counts[1]
    assert counts[0].count("_fused_sgd_") == 3  # one per replicate


def test_cuda_graphs_on_the_cpu_fail_before_training(generated):
    study = shrink("sigmoid_vs_relu", per_class=6, epochs=1, batch_size=16)
    data = prepare(generated, 6, 0, "cpu", test_limit=100)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device, not cpu"):
        train_cell(study, study.cell("blocks=1-relu"), data, [0], graphs=True)


def test_scaler_follows_torch_gradscaler_rules():
    """Backoff on a non-finite gradient and growth after growth_interval clean steps, per replicate."""
    param = torch.nn.Parameter(torch.zeros(2, 3))
    optimizer = ReplicateSGD([param], 2, lr=1.0, momentum=0.9)
    scaler = ReplicateGradScaler(2, torch.device("cpu"), init_scale=8.0, growth_interval=2)
    for grad in ([[1.0, 1, 1], [float("nan"), 1, 1]], [[1.0, 1, 1], [1.0, 1, 1]], [[1.0, 1, 1], [1.0, 1, 1]]):
        param.grad = torch.tensor(grad) * scaler.scale[:, None]
        found = scaler.unscale_(optimizer)
        optimizer.step(found)
        scaler.update(found)
    assert scaler.scale.tolist() == [16.0, 8.0]  # replicate 0 grew after 2 clean steps; 1 halved then grew
    # replicate 1 skipped its first step: two steps of momentum SGD on grad 1, as if it had started later
    assert param[0].tolist() == pytest.approx([-(1 + 1.9 + 2.71)] * 3)
    assert param[1].tolist() == pytest.approx([-(1 + 1.9)] * 3)


def test_cells_side_by_side_take_their_steps_spread_evenly_and_all_of_them():
    assert train.interleaved([4, 2]) == [0, 0, 1, 0, 0, 1]
    order = train.interleaved([800, 800, 400, 200, 240])
    assert [order.count(cell) for cell in range(5)] == [800, 800, 400, 200, 240]
    halfway = order[:len(order) // 2]
    assert [halfway.count(cell) for cell in range(5)] == [400, 400, 200, 100, 120]


def test_cells_side_by_side_train_exactly_as_each_alone(generated, monkeypatch):
    """Two cells of different batch sizes (so different step counts), their steps interleaved: every replicate's
    parameters, losses and accuracy are those of the cell trained alone, the cosine schedule included, and every
    epoch's progress is shown; the group's training time is each cell's."""
    study = shrink("batchnorm_vs_groupnorm", per_class=12, epochs=2)
    data = prepare(generated, 12, 0, "cpu", test_limit=100)
    cells = [study.cell("batch_size=8-batchnorm"), study.cell("batch_size=16-groupnorm")]
    alone = [train_cell(study, cell, data, [3, 4]) for cell in cells]

    stepped, shown = [], {cell.id: [] for cell in cells}
    step_call = TrainStep.__call__
    monkeypatch.setattr(TrainStep, "__call__", lambda self, indices: (stepped.append(indices.shape[1]),
                                                                      step_call(self, indices)))
    trainings = [train.CellTraining(study, cell, data, [3, 4], progress=lambda line, c=cell.id: shown[c].append(line()))
                 for cell in cells]
    assert [t.total_steps for t in trainings] == [2 * 15, 2 * 8]
    together = train.train_side_by_side(trainings)

    assert stepped[:6] == [8, 8, 16, 8, 8, 16] and len(stepped) == 30 + 16  # interleaved, all of them
    for one, both in zip(alone, together):
        assert both.accuracy == one.accuracy and both.final_loss == one.final_loss
        assert all(torch.equal(a, b) for a, b in zip(one.model.state_dict().values(), both.model.state_dict().values()))
    assert [len(lines) for lines in shown.values()] == [2, 2] and shown[cells[0].id][-1].startswith("epoch 2/2")
    assert together[0].wall_s == together[1].wall_s and [r.side_by_side for r in together] == [2, 2]
    assert together[1].images_per_s == pytest.approx(2 * 120 * 2 / together[1].wall_s)


def test_on_cuda_each_cell_side_by_side_steps_on_a_stream_of_its_own(stubbed_cuda_streams):
    """With the GPU stubbed out: several cells each take every step under their own stream; one cell alone keeps
    the current stream."""
    current = stubbed_cuda_streams

    class Training:
        data = type("Data", (), {"train_x": type("X", (), {"device": torch.device("cuda")})})

        def __init__(self, steps):
            self.total_steps, self.taken = steps, []

        def steps(self):
            for _ in range(self.total_steps):
                self.taken.append(current[-1])
                yield
            self.taken.append(f"end on {current[-1]}")

        def result(self, wall_s, side_by_side):
            return side_by_side

    a, b = Training(2), Training(1)
    assert train.train_side_by_side([a, b]) == [2, 2]
    assert a.taken == ["stream 0", "stream 0", "end on stream 0"] and b.taken == ["stream 1", "end on stream 1"]
    alone = Training(1)
    assert train.train_side_by_side([alone]) == [1] and alone.taken == ["default", "end on default"]
