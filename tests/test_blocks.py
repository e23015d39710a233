"""The conv block: its parts in the asked order, and behaviour that shows the order."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ablation.blocks import ACTIVATIONS, PARTS, ConvBlock

orders = st.permutations(PARTS)
activations = st.sampled_from(sorted(ACTIVATIONS))


@settings(max_examples=30, deadline=None)
@given(order=orders, activation=activations, norm=st.sampled_from(["batch", "group", "none"]))
def test_children_follow_the_asked_order(order, activation, norm):
    block = ConvBlock(8, 16, order=order, norm=norm, groups=4, activation=activation)
    assert [name for name, _ in block.named_children()] == list(order)
    kinds = {"batch": nn.BatchNorm2d, "group": nn.GroupNorm, "none": nn.Identity}
    assert isinstance(block.norm, kinds[norm])
    assert isinstance(block.conv, nn.Conv2d) and block.conv.kernel_size == (3, 3) and block.conv.padding == (1, 1)


@settings(max_examples=25, deadline=None)
@given(order=orders, activation=activations, seed=st.integers(0, 2**16), batch=st.integers(2, 6))
def test_output_statistics_reveal_the_order(order, activation, seed, batch):
    torch.manual_seed(seed)
    block = ConvBlock(3, 8, order=order, activation=activation).train()
    y = block(torch.randn(batch, 3, 12, 12) * 3 + 1)
    mean, var = y.mean(dim=(0, 2, 3)), y.var(dim=(0, 2, 3), unbiased=False)
    if order[-1] == "norm":
        # BatchNorm last in training mode: every channel standardized (affine starts at 1, 0)
        assert torch.allclose(mean, torch.zeros(8), atol=1e-5)
        assert torch.allclose(var, torch.ones(8), atol=1e-3)
    elif order[-1] == "act":
        low = {"relu": 0.0, "sigmoid": 0.0, "leaky_relu": -float("inf")}[activation]
        assert y.min() >= low
        if activation == "sigmoid":
            assert y.max() <= 1
        assert not torch.allclose(mean, torch.zeros(8), atol=1e-3)
    else:  # conv last: a linear map of normalized or activated inputs, neither bounded nor standardized
        assert not torch.allclose(var, torch.ones(8), atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(groups=st.sampled_from([1, 2, 4, 8, 16]), seed=st.integers(0, 2**16))
def test_groupnorm_normalizes_each_group_of_channels(groups, seed):
    torch.manual_seed(seed)
    block = ConvBlock(3, 16, order=("conv", "norm", "act"), norm="group", groups=groups, activation="relu")
    x = torch.randn(3, 3, 8, 8) * 2
    conv_out = block.conv(x)
    by_group = conv_out.reshape(3, groups, -1)
    mean = by_group.mean(-1, keepdim=True)
    var = by_group.var(-1, unbiased=False, keepdim=True)
    expected = ((by_group - mean) / torch.sqrt(var + block.norm.eps)).reshape_as(conv_out)
    assert torch.allclose(block.norm(conv_out), expected, atol=1e-5)
    # and the statistics really are per group: with more than one group, pooled ones differ
    pooled = (conv_out - conv_out.mean(dim=(1, 2, 3), keepdim=True)) / conv_out.std(dim=(1, 2, 3), unbiased=False, keepdim=True)
    assert (groups == 1) == torch.allclose(block.norm(conv_out), pooled, atol=1e-4)


@pytest.mark.parametrize("channels,groups", [(16, 32), (16, 3), (10, 4), (16, 0)])
def test_groupnorm_that_does_not_divide_names_layer_and_numbers(channels, groups):
    with pytest.raises(ValueError, match=rf"layer7: GroupNorm with {groups} groups does not divide its {channels} channels"):
        ConvBlock(3, channels, norm="group", groups=groups, name="layer7")


def test_norm_before_conv_normalizes_the_input_channels():
    block = ConvBlock(4, 16, order=("norm", "conv", "act"), norm="group", groups=2)
    assert block.norm.num_channels == 4 and block.norm.num_groups == 2


@pytest.mark.parametrize("bad", [("conv", "act"), ("conv", "conv", "act"), ("conv", "norm", "pool")])
def test_order_must_be_a_permutation_of_the_three_parts(bad):
    with pytest.raises(ValueError, match="must be a permutation"):
        ConvBlock(3, 8, order=bad)


@pytest.mark.parametrize("order", list(itertools.permutations(PARTS)))
@pytest.mark.parametrize("norm", ["batch", "group"])
def test_replicated_block_is_independent_blocks_side_by_side(order, norm):
    torch.manual_seed(0)
    singles = [ConvBlock(4, 8, order=order, norm=norm, groups=2) for _ in range(3)]
    fused = ConvBlock(4, 8, order=order, norm=norm, groups=2, replicates=3)
    fused.load_state_dict({k: torch.cat([s.state_dict()[k] for s in singles]) if v.dim() else v
                           for k, v in fused.state_dict().items()})
    xs = [torch.randn(5, 4, 6, 6) for _ in singles]
    out = fused(torch.cat(xs, dim=1))
    assert torch.allclose(out, torch.cat([s(x) for s, x in zip(singles, xs)], dim=1), atol=1e-5)
