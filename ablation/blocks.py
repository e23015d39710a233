"""The one configurable conv block that every model in the studies is built from.

A block holds a 3x3 convolution, a normalization and an activation, in any
order.  ``replicates`` stacks R independent copies side by side along the
channel axis (grouped convolution, per-replicate norm statistics), so that R
replicates of a cell train as one model; R = 1 is the plain notebook block.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

PARTS = ("conv", "norm", "act")
NORMS = ("batch", "group", "none")
ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
}


class ConvBlock(nn.Sequential):
    """Conv(k3, pad 1), norm and activation as children named by part, in ``order``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        order: Sequence[str] = PARTS,
        norm: str = "batch",
        groups: int | None = None,
        activation: str = "relu",
        replicates: int = 1,
        name: str = "block",
    ) -> None:
        if sorted(order) != sorted(PARTS):
            raise ValueError(f"{name}: order {tuple(order)} must be a permutation of {PARTS}")
        if norm not in NORMS:
            raise ValueError(f"{name}: unknown norm {norm!r}; choose one of {NORMS}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"{name}: unknown activation {activation!r}; choose one of {tuple(ACTIVATIONS)}")
        super().__init__()
        norm_channels = out_channels if order.index("norm") > order.index("conv") else in_channels
        parts = {
            "conv": nn.Conv2d(
                replicates * in_channels, replicates * out_channels, 3, padding=1, groups=replicates
            ),
            "norm": _norm(norm, groups, norm_channels, replicates, name),
            "act": ACTIVATIONS[activation](),
        }
        for part in order:
            self.add_module(part, parts[part])
        self.order = tuple(order)


def _norm(norm: str, groups: int | None, channels: int, replicates: int, name: str) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(replicates * channels)
    if norm == "none":
        return nn.Identity()
    if groups is None or groups < 1 or channels % groups:
        raise ValueError(
            f"{name}: GroupNorm with {groups} groups does not divide its {channels} channels; "
            f"choose a group count that divides {channels}"
        )
    return nn.GroupNorm(replicates * groups, replicates * channels)
