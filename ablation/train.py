"""The trainer: R replicates of one cell trained as one fused model, data resident on the device.

Replicate r has its own initial weights (seed r), its own data order (a
generator seeded with r), its own slice of the optimizer state and its own
GradScaler scale and skip decisions, so R fused replicates train exactly as
R separate notebook runs would (tests/test_train.py checks this in float64).

On CUDA the step can also be captured once in a CUDA graph and replayed for
every full batch (``graphs=True``): the small cells spend their time
launching kernels, not computing, and a replay launches them all at once.
Several cells can also train at once (train_side_by_side), each on a CUDA
stream of its own, so that the GPU runs one cell's tiny kernels while
another's wait.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ablation.data import MEAN, STD, Dataset, balanced_subset, checksum
from ablation.models import stack_replicates
from ablation.studies import Cell, Hyperparameters, Study

EVAL_CHUNK = 2000
# On CUDA, batches of at least this many images per replicate train in channels_last layout.  Time per step on
# an H200 (fused, CUDA graphs): 12-20 % less for the Sigmoid/ReLU study (batch 512), 16 % less for the order
# study (256); at the norm study's batches of 2-128, from 8 % less to 18 % more.  On CPU every cell trains
# channels_last: per step on 2 cores, x1.4-1.6 faster in the Sigmoid/ReLU and order studies, x1.3-1.9 for 8
# fused norm-study replicates at batch 2-8, x1.0-1.3 for one; evaluating, x1.25-1.55.
CHANNELS_LAST_MIN_BATCH = 256
# On CPU, replicates train fused only at batches of at most this many images per replicate.  Time per step of
# 8 replicates in channels_last, fused against one at a time (2 cores, norm study): x2.0 faster at batch 8, x1.5
# at 16, x1.25 at 32, x0.6-0.8 at 64: at small batches a step is overhead, at large ones grouped convolutions
# are slow.
CPU_FUSE_MAX_BATCH = 32
# Called after every epoch with a function that makes the epoch's progress line: the mean loss is read from the
# device (a synchronization) only when the line is shown.
Progress = Callable[[Callable[[], str]], None]
_warned_cpu_amp = False


@dataclass
class DeviceData:
    """A study's class-balanced training subset and its test set on the device, uint8 NCHW."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int
    checksum: str
    scale: torch.Tensor  # ToTensor + Normalize as one multiply-add: x * scale + shift, float32
    shift: torch.Tensor

    def normalize(self, images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return torch.addcmul(self.shift.to(dtype), images.to(dtype), self.scale.to(dtype))


def prepare(data: Dataset, per_class: int, subset_seed: int, device: str | torch.device,
            test_limit: int | None = None) -> DeviceData:
    """Draw the training subset and move it and the test set to ``device`` once."""
    subset = balanced_subset(data.train_y, per_class, subset_seed)
    train_x, train_y = data.train_x[subset], data.train_y[subset]
    test_x, test_y = data.test_x[:test_limit], data.test_y[:test_limit]
    std = torch.tensor(STD, dtype=torch.float64).view(3, 1, 1)
    mean = torch.tensor(MEAN, dtype=torch.float64).view(3, 1, 1)
    return DeviceData(
        train_x=train_x.permute(0, 3, 1, 2).contiguous().to(device),
        train_y=train_y.to(device),
        test_x=test_x.permute(0, 3, 1, 2).contiguous().to(device),
        test_y=test_y.to(device),
        classes=data.classes,
        checksum=checksum(train_x, train_y, test_x, test_y),
        scale=(1 / (255 * std)).to(device, torch.float32),  # float32: no cast per batch in the hot loop
        shift=(-mean / std).to(device, torch.float32),
    )


@dataclass
class CellResult:
    """What training one cell's replicates measured; list entries are per replicate."""

    seeds: list[int]
    accuracy: list[float]  # top-1 test accuracy, percent
    final_loss: list[float]  # mean training loss of the last epoch
    train_loss_curve: list[list[float]]  # per replicate, the mean training loss of every epoch
    test_loss: list[float]  # mean cross-entropy on the test set
    skipped_steps: list[int]  # optimizer steps the GradScaler skipped (non-finite gradients)
    collapsed: list[bool]  # one class predicted for every test image
    wall_s: float  # training time of all replicates, device synchronized
    images_per_s: float  # training images processed per second, all replicates together
    setup_s: float  # building the models, optimizer and scaler before training
    eval_s: float  # evaluating every replicate on the test set after training
    fused: int  # replicates trained together as one model
    graphs: bool  # full-batch steps replayed from a CUDA graph
    side_by_side: int = 1  # cells trained at once, sharing wall_s (see train_side_by_side)
    model: nn.Module | None = field(default=None, repr=False)


class ReplicateGradScaler:
    """torch.amp.GradScaler's rules, with one scale and one skip decision per replicate.

    Unscaling and the scale update are GradScaler's own kernels, run on each
    replicate's slice of every gradient and on each replicate's scale.
    """

    def __init__(self, replicates: int, device: torch.device, init_scale: float = 2.0**16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5, growth_interval: int = 2000) -> None:
        self.replicates = replicates
        self.scale = torch.full((replicates,), init_scale, dtype=torch.float32, device=device)
        self.growth_tracker = torch.zeros(replicates, dtype=torch.int32, device=device)
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval

    def scaled_loss(self, losses: torch.Tensor) -> torch.Tensor:
        return (losses * self.scale).sum()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """Unscale every gradient in place; return per-replicate found-inf flags (float, 1 = skip)."""
        grads = [p.grad.view(self.replicates, -1) for g in optimizer.param_groups for p in g["params"]
                 if p.grad is not None]
        found_inf = torch.zeros(self.replicates, dtype=torch.float32, device=self.scale.device)
        inv_scale = self.scale.double().reciprocal().float()
        for r in range(self.replicates):
            torch._amp_foreach_non_finite_check_and_unscale_(
                [g[r] for g in grads], found_inf[r:r + 1], inv_scale[r:r + 1])
        return found_inf

    def update(self, found_inf: torch.Tensor) -> None:
        """GradScaler.update per replicate: back off after a skip, grow after growth_interval clean steps."""
        for r in range(self.replicates):
            torch._amp_update_scale_(self.scale[r:r + 1], self.growth_tracker[r:r + 1], found_inf[r:r + 1],
                                     self.growth_factor, self.backoff_factor, self.growth_interval)


def lr_tensor(lr: float, params: list[nn.Parameter]) -> torch.Tensor:
    """The learning rate beside the parameters, in their dtype: fused kernels read it there, schedulers update it
    in place, and a CUDA graph replay reads the current value."""
    return torch.tensor(lr, dtype=params[0].dtype, device=params[0].device)


class ReplicateSGD(torch.optim.SGD):
    """torch.optim.SGD over R fused replicates whose step each replicate's GradScaler may skip on its own.

    ``step(found_inf)`` runs torch's fused SGD kernel once per replicate, on
    that replicate's slice of every parameter, with that replicate's found-inf
    flag: the way torch.amp.GradScaler steps a fused optimizer, so a flagged
    replicate's parameters and momentum stay exactly as they were.  Momentum
    buffers start at zero, which makes a replicate's first real step torch's
    first step (buffer = gradient) however many steps it skipped before.  The
    learning rate is a tensor the scheduler updates in place; nothing is read
    on the host, so a CUDA graph can capture the step.
    """

    def __init__(self, params: list[nn.Parameter], replicates: int, lr: float, **args: Any) -> None:
        if args.get("dampening", 0) != 0:
            raise ValueError("ReplicateSGD needs dampening 0: only then does a zero momentum buffer start "
                             "as torch's first step does")
        super().__init__(params, lr=lr_tensor(lr, params), fused=True, **args)
        self.replicates = replicates
        for group in self.param_groups:
            if group["momentum"]:
                for p in group["params"]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)

    @torch.no_grad()
    def step(self, found_inf: torch.Tensor) -> None:  # type: ignore[override]
        """One step of every replicate r with found_inf[r] == 0; the others keep their parameters and state."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            rows = [p.view(self.replicates, -1) for p in params]
            grads = [p.grad.view(self.replicates, -1) for p in params]
            buffers = [self.state[p]["momentum_buffer"].view(self.replicates, -1) for p in params] \
                if group["momentum"] else []
            for r in range(self.replicates):
                torch._fused_sgd_(
                    [p[r] for p in rows], [g[r] for g in grads], [b[r] for b in buffers],
                    weight_decay=group["weight_decay"], momentum=group["momentum"], lr=group["lr"],
                    dampening=group["dampening"], nesterov=group["nesterov"], maximize=group["maximize"],
                    is_first_step=False, found_inf=found_inf[r])


def make_optimizer(params: list[nn.Parameter], hp: Hyperparameters, capturable: bool = False) -> torch.optim.Optimizer:
    """The study's torch.optim optimizer; ``capturable``: the same update in a form a CUDA graph can replay.

    That form is torch's fused kernel reading the learning rate from a tensor
    (lr_tensor) and, for Adam, keeping the step count on the device too.
    """
    optimizers = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}
    args: dict[str, Any] = dict(hp.optimizer_args)
    if capturable:
        args.update(lr=lr_tensor(args["lr"], params), fused=True)
        if hp.optimizer == "adamw":
            args.update(capturable=True)
    return optimizers[hp.optimizer](params, **args)


def make_scheduler(optimizer: torch.optim.Optimizer, hp: Hyperparameters):
    schedulers = {"cosine": torch.optim.lr_scheduler.CosineAnnealingLR, "step": torch.optim.lr_scheduler.StepLR}
    return schedulers[hp.scheduler](optimizer, **hp.scheduler_args) if hp.scheduler else None


def use_deterministic_algorithms() -> None:
    """Deterministic kernels only (an error names any op without one), so that the same seeds on the same device
    and torch give bitwise the same run; cuBLAS reads its workspace setting when it first starts."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True


def fusing_pays(device: torch.device, batch_size: int) -> bool:
    """Whether a cell's replicates train faster fused than one after another (always on CUDA; see
    CPU_FUSE_MAX_BATCH)."""
    return device.type == "cuda" or batch_size <= CPU_FUSE_MAX_BATCH


def uses_channels_last(device: torch.device, batch_size: int) -> bool:
    """Whether a cell trains and evaluates in channels_last layout (CPU always, CUDA at large batches; see
    CHANNELS_LAST_MIN_BATCH)."""
    return device.type == "cpu" or (device.type == "cuda" and batch_size >= CHANNELS_LAST_MIN_BATCH)


def init_models(study: Study, cell: Cell, classes: int, seeds: list[int]) -> list[nn.Module]:
    """One R = 1 model per seed, initialized exactly as a notebook run with that seed."""
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(study.model(cell, classes))
    return models


def epoch_orders(generators: list[torch.Generator], n: int, device: torch.device) -> torch.Tensor:
    """(R, n): each replicate's shuffled order of the n training images for one epoch."""
    return torch.stack([torch.randperm(n, generator=g, device=device) for g in generators])


def batch(data: DeviceData, indices: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """indices (R, b) -> images stacked per replicate (b, R*3, 32, 32) and labels (b, R)."""
    images = data.normalize(data.train_x[indices], dtype)  # (R, b, 3, 32, 32)
    replicates, b = indices.shape
    return images.transpose(0, 1).reshape(b, replicates * 3, 32, 32), data.train_y[indices].T


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, replicates: int, dtype: torch.dtype,
             channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-replicate top-1 test accuracy (percent), collapse flags and mean test cross-entropy, in eval mode
    without autocast."""
    model.eval()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    predictions = []
    loss_sum = torch.zeros(replicates, dtype=torch.float64, device=data.test_y.device)
    for start in range(0, len(data.test_y), EVAL_CHUNK):
        images = data.normalize(data.test_x[start:start + EVAL_CHUNK], dtype).repeat(1, replicates, 1, 1)
        logits = model(images.contiguous(memory_format=layout))  # (b, R, classes)
        labels = data.test_y[start:start + EVAL_CHUNK, None].expand(-1, replicates)
        loss_sum += F.cross_entropy(logits.permute(0, 2, 1), labels, reduction="none").double().sum(0)
        predictions.append(logits.argmax(dim=2))  # (b, R)
    model.train()
    predicted = torch.cat(predictions)
    accuracy = (predicted == data.test_y[:, None]).double().mean(0) * 100
    collapsed = (predicted == predicted[:1]).all(0)
    return accuracy, collapsed, loss_sum / len(data.test_y)


class TrainStep:
    """One optimizer step of all replicates on the images ``indices`` (R, b) pick, state updated in place.

    Parameters, optimizer and scaler state and the loss and skip counters
    keep their memory from step to step: a CUDA graph captured from one call
    replays into the same tensors.  Gradients are the step's own temporaries:
    set to None first, so that backward creates them without a zeroing and an
    accumulating kernel per parameter (under capture, in the graph's memory
    pool, where every replay rewrites them).  With a capturable optimizer (see
    make_optimizer and ReplicateSGD) no device value is read on the host.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: ReplicateGradScaler | None,
                 data: DeviceData, replicates: int, dtype: torch.dtype, autocast: bool,
                 channels_last: bool = False) -> None:
        self.model, self.optimizer, self.scaler, self.data = model, optimizer, scaler, data
        self.replicates, self.dtype, self.autocast = replicates, dtype, autocast
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        device = data.train_x.device
        self.loss_sum = torch.zeros(self.replicates, dtype=torch.float64, device=device)  # this epoch's, per replicate
        self.skipped = torch.zeros(self.replicates, dtype=torch.int64, device=device)

    def __call__(self, indices: torch.Tensor) -> None:
        images, labels = batch(self.data, indices, self.dtype)
        images = images.contiguous(memory_format=self.layout)  # activations follow the input's layout
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.autocast, cache_enabled=False):
            logits = self.model(images)  # (b, R, classes)
            losses = F.cross_entropy(logits.permute(0, 2, 1), labels, reduction="none").mean(0)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            losses.sum().backward()
            self.optimizer.step()
        else:
            self.scaler.scaled_loss(losses).backward()
            found_inf = self.scaler.unscale_(self.optimizer)
            self.optimizer.step(found_inf)
            self.scaler.update(found_inf)
            self.skipped += found_inf.long()
        self.loss_sum += losses.detach().double() * labels.shape[0]


class CUDAGraphSteps:
    """Runs a capturable TrainStep: full batches by replaying one CUDA graph, a last partial batch eagerly.

    The first WARMUP_STEPS full batches train eagerly on a side stream (cuDNN
    picks its kernels, the optimizer creates its state), as CUDA graph capture
    requires; the next one is captured, and every full batch after it only
    copies its indices into the captured index buffer and replays.
    """

    WARMUP_STEPS = 3

    def __init__(self, step: TrainStep, batch_size: int) -> None:
        device = step.data.train_x.device
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {device.type}; train on --device cuda "
                             "or without CUDA graphs")
        self.step, self.batch_size = step, batch_size
        self.warmup_left = self.WARMUP_STEPS
        self.side_stream = torch.cuda.Stream()
        self.graph: torch.cuda.CUDAGraph | None = None
        self.indices: torch.Tensor | None = None

    def __call__(self, indices: torch.Tensor) -> None:
        if indices.shape[1] != self.batch_size:
            self._eagerly(indices)
        elif self.warmup_left:
            self.warmup_left -= 1
            self.side_stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side_stream):
                self._eagerly(indices)
            torch.cuda.current_stream().wait_stream(self.side_stream)
        elif self.graph is None:
            self.indices = indices.clone()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):  # records the step without running it
                self.step(self.indices)
            self.graph.replay()
        else:
            self.indices.copy_(indices)
            self.graph.replay()

    def _eagerly(self, indices: torch.Tensor) -> None:
        # torch.optim warns when a capturable optimizer steps uncaptured: by design here
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="This instance was constructed with capturable=True")
            self.step(indices)


def cell_step(study: Study, cell: Cell, data: DeviceData, seeds: list[int], profile: str = "full",
              dtype: torch.dtype = torch.float32, capturable: bool = False, channels_last: bool = False) -> TrainStep:
    """The training step of a cell's replicates, one per seed, fused: initialized model, optimizer and scaler."""
    hp = study.settings(profile)
    device = data.train_x.device
    if hp.amp and device.type != "cuda":
        _warn_cpu_amp()
    # No cuDNN autotuning: it times every algorithm for each new convolution shape (a full and a last partial
    # batch per cell), which cost more than it won: the whole table took 99.9 s with it, 69.2 s without (H200).
    torch.backends.cudnn.benchmark = False
    model = stack_replicates(init_models(study, cell, data.classes, seeds),
                             study.model(cell, data.classes, len(seeds))).to(device, dtype)
    params = list(model.parameters())
    if hp.amp:  # per-replicate GradScaler skipping; Study allows AMP with SGD only
        optimizer: torch.optim.Optimizer = ReplicateSGD(params, len(seeds), **hp.optimizer_args)
        scaler = ReplicateGradScaler(len(seeds), device)
    else:
        optimizer, scaler = make_optimizer(params, hp, capturable=capturable), None
    return TrainStep(model, optimizer, scaler, data, len(seeds), dtype, hp.amp and device.type == "cuda",
                     channels_last=channels_last)


class CellTraining:
    """One cell's replicates from set-up to evaluation, trained a step at a time (``steps``), so that cells can
    also train side by side (train_side_by_side).

    ``graphs``: replay full-batch steps from a CUDA graph (CUDA only).
    """

    def __init__(self, study: Study, cell: Cell, data: DeviceData, seeds: list[int], profile: str = "full",
                 dtype: torch.dtype = torch.float32, progress: Progress | None = None,
                 graphs: bool = False) -> None:
        setup_start = time.perf_counter()
        self.hp = study.settings(profile)
        self.data, self.seeds, self.dtype, self.progress, self.graphs = data, list(seeds), dtype, progress, graphs
        device = data.train_x.device
        self.batch_size = study.batch_size(cell, profile)
        self.channels_last = uses_channels_last(device, self.batch_size)
        self.step = cell_step(study, cell, data, seeds, profile, dtype, graphs, self.channels_last)
        self.scheduler = make_scheduler(self.step.optimizer, self.hp)
        self.run_step = CUDAGraphSteps(self.step, self.batch_size) if graphs else self.step
        self.generators = [torch.Generator(device).manual_seed(seed) for seed in seeds]
        self.total_steps = optimizer_steps(self.hp, len(data.train_y), self.batch_size)
        # each epoch's mean training loss per replicate, kept on the device: no host read while training
        self.loss_curve = torch.zeros(len(seeds), self.hp.epochs, dtype=torch.float64, device=device)
        self.setup_s = time.perf_counter() - setup_start

    def steps(self) -> Iterator[None]:
        """Train every epoch, pausing after each optimizer step (total_steps of them)."""
        n, step, device = len(self.data.train_y), self.step, self.data.train_x.device
        for epoch in range(self.hp.epochs):
            step.loss_sum.zero_()
            orders = epoch_orders(self.generators, n, device)
            for i in range(0, n, self.batch_size):
                self.run_step(orders[:, i:i + self.batch_size])
                yield
            self.loss_curve[:, epoch] = step.loss_sum / n
            if self.scheduler is not None:
                self.scheduler.step()
            if self.progress is not None:
                self.progress(lambda: f"epoch {epoch + 1}/{self.hp.epochs}  mean loss "
                                      f"{(step.loss_sum / n).mean().item():.3f}")

    def result(self, wall_s: float, side_by_side: int = 1) -> CellResult:
        """Evaluate every replicate once training is done; ``wall_s``: the training time, shared with
        ``side_by_side`` - 1 other cells when they trained at once."""
        eval_start = time.perf_counter()
        accuracy, collapsed, test_loss = evaluate(self.step.model, self.data, len(self.seeds), self.dtype,
                                                  self.channels_last)
        synchronize(self.data.train_x.device)
        images = len(self.seeds) * len(self.data.train_y) * self.hp.epochs
        return CellResult(
            seeds=self.seeds,
            accuracy=[round(a, 4) for a in accuracy.tolist()],
            final_loss=(self.step.loss_sum / len(self.data.train_y)).tolist(),
            train_loss_curve=self.loss_curve.tolist(),
            test_loss=test_loss.tolist(),
            skipped_steps=self.step.skipped.tolist(),
            collapsed=collapsed.tolist(),
            wall_s=wall_s,
            images_per_s=images / wall_s,
            setup_s=self.setup_s,
            eval_s=time.perf_counter() - eval_start,
            fused=len(self.seeds),
            graphs=self.graphs,
            side_by_side=side_by_side,
            model=self.step.model,
        )


def train_cell(study: Study, cell: Cell, data: DeviceData, seeds: list[int], profile: str = "full",
               dtype: torch.dtype = torch.float32, progress: Progress | None = None,
               graphs: bool = False) -> CellResult:
    """Train ``len(seeds)`` replicates of ``cell`` as one fused model and evaluate each on the test set.

    ``graphs``: replay full-batch steps from a CUDA graph (CUDA only).
    """
    return train_side_by_side([CellTraining(study, cell, data, seeds, profile, dtype, progress, graphs)])[0]


def train_side_by_side(trainings: list[CellTraining]) -> list[CellResult]:
    """Train the cells at once, their steps interleaved (see interleaved), each cell on a CUDA stream of its own
    when there are several on CUDA, so that the GPU can run one cell's kernels while another's wait; then
    evaluate each.  A cell's result is the same as trained alone: they share no state.  Every cell's training
    time is the group's."""
    device = trainings[0].data.train_x.device
    on_streams = device.type == "cuda" and len(trainings) > 1
    synchronize(device)  # the streams start after the set-up, which ran on the current stream
    start = time.perf_counter()
    take_turns([training.steps() for training in trainings], [training.total_steps for training in trainings],
               [torch.cuda.Stream(device) if on_streams else None for _ in trainings])
    synchronize(device)
    wall_s = time.perf_counter() - start
    return [training.result(wall_s, len(trainings)) for training in trainings]


def interleaved(steps: list[int]) -> list[int]:
    """The order in which cells with these step counts take their steps when they train side by side: each spread
    evenly over the longest, so that all start and end together.  Returns cell indices."""
    longest = max(steps)
    order, done = [], [0] * len(steps)
    for i in range(1, longest + 1):
        for cell, n in enumerate(steps):
            due = n * i // longest
            order += [cell] * (due - done[cell])
            done[cell] = due
    return order


def take_turns(steps: list[Iterator[None]], counts: list[int], streams: list[torch.cuda.Stream | None]) -> None:
    """Run every iterator of ``steps`` to its end, each under its CUDA stream (None: the current one), taking
    turns: their first ``counts`` items interleaved, so that they start and end together; whatever is left after
    those (a training's end of its last epoch) then runs one after another."""
    contexts = [contextlib.nullcontext() if stream is None else torch.cuda.stream(stream) for stream in streams]
    for index in interleaved(counts):
        with contexts[index]:
            next(steps[index])
    for context, remaining in zip(contexts, steps):
        with context:
            for _ in remaining:
                pass


def optimizer_steps(hp: Hyperparameters, images: int, batch_size: int) -> int:
    """A cell's optimizer steps over all epochs: full batches and each epoch's last partial one."""
    return hp.epochs * math.ceil(images / batch_size)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a host clock times it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _warn_cpu_amp() -> None:
    global _warned_cpu_amp
    if not _warned_cpu_amp:
        print("note: bf16 autocast needs CUDA; on this device the studies train in float32 "
              "(GradScaler kept)", file=sys.stderr)
        _warned_cpu_amp = True
