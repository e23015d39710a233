"""The three architectures of the studies, exactly as the notebooks defined them.

Every model maps images stacked per replicate, shape (N, R*3, 32, 32), to
logits of shape (N, R, classes).  The linear head is a convolution whose
kernel covers the whole remaining feature map: the same function, the same
fan-in and the same initial draws as ``Linear`` over the flattened map, and
it stacks replicates with ``groups=R`` like every other layer.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ablation.blocks import ConvBlock


def head(channels: int, spatial: int, classes: int, replicates: int) -> nn.Sequential:
    """Linear(channels*spatial*spatial -> classes) per replicate, as logits (N, R, classes)."""
    return nn.Sequential(
        nn.Conv2d(replicates * channels, replicates * classes, spatial, groups=replicates),
        nn.Flatten(),
        nn.Unflatten(1, (replicates, classes)),
    )


def depth_net(blocks: int, activation: str, classes: int = 10, replicates: int = 1) -> nn.Sequential:
    """Sigmoid vs ReLU: ``blocks`` Conv-BN-act blocks of 32 channels, global average pool, linear."""
    if blocks < 1:
        raise ValueError(f"blocks must be at least 1, got {blocks}")
    layers = [
        ConvBlock(3 if i == 0 else 32, 32, activation=activation, replicates=replicates, name=f"block{i + 1}")
        for i in range(blocks)
    ]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), head(32, 1, classes, replicates))


def norm_net(
    norm: str, groups: Sequence[int] = (4, 8, 8), classes: int = 10, replicates: int = 1
) -> nn.Sequential:
    """BatchNorm vs GroupNorm: three Conv-norm-ReLU-MaxPool stages (16, 32, 64 channels), linear."""
    channels = (3, 16, 32, 64)
    if norm == "group" and len(groups) != 3:
        raise ValueError(f"GroupNorm needs 3 group counts, one per block (16, 32, 64 channels), got {tuple(groups)}")
    layers: list[nn.Module] = []
    for i in range(3):
        layers += [
            ConvBlock(
                channels[i],
                channels[i + 1],
                norm=norm,
                groups=groups[i] if norm == "group" else None,
                replicates=replicates,
                name=f"block{i + 1}",
            ),
            nn.MaxPool2d(2),
        ]
    return nn.Sequential(*layers, head(64, 4, classes, replicates))


ORDERS = {
    "conv_bn_relu": (("conv", "norm", "act"), "relu"),
    "conv_relu_bn": (("conv", "act", "norm"), "relu"),
    "conv_leakyrelu_bn": (("conv", "act", "norm"), "leaky_relu"),
}


def order_net(order: str, classes: int = 10, replicates: int = 1) -> nn.Sequential:
    """Order study: eight conv layers 3-16-32-64-128-64-32-16-10, MaxPool after every second, linear."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; choose one of {tuple(ORDERS)}")
    parts, activation = ORDERS[order]
    channels = (3, 16, 32, 64, 128, 64, 32, 16, 10)
    layers: list[nn.Module] = []
    for i in range(8):
        layers.append(
            ConvBlock(channels[i], channels[i + 1], order=parts, activation=activation,
                      replicates=replicates, name=f"block{i + 1}")
        )
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, head(10, 2, classes, replicates))


def stack_replicates(models: Sequence[nn.Module], fused: nn.Module) -> nn.Module:
    """Load R single-replicate models (R = 1 each) into ``fused``, built the same way with R replicates."""
    states = [m.state_dict() for m in models]
    fused.load_state_dict({
        key: torch.cat([s[key] for s in states]) if value.dim() else states[0][key]
        for key, value in fused.state_dict().items()
    })
    return fused


def replicate_state(fused: nn.Module, replicates: int, index: int) -> dict[str, torch.Tensor]:
    """The state dict of replicate ``index`` of a fused model, shaped as an R = 1 model's."""
    return {
        key: value.chunk(replicates)[index] if value.dim() else value
        for key, value in fused.state_dict().items()
    }
