"""The three architectures: the notebooks' layers, and shapes over batch sizes, depths and replicates."""

from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ablation.models import ORDERS, depth_net, norm_net, order_net, replicate_state, stack_replicates


def notebook_depth_net(blocks, act):
    layers = [nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), act()]
    for _ in range(blocks - 1):
        layers += [nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), act()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def notebook_norm_net(norm):
    layers, channels = [], (3, 16, 32, 64)
    for i, groups in enumerate((4, 8, 8)):
        n = nn.BatchNorm2d(channels[i + 1]) if norm == "batch" else nn.GroupNorm(groups, channels[i + 1])
        layers += [nn.Conv2d(channels[i], channels[i + 1], 3, padding=1), n, nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(1024, 10))


def notebook_order_net(order):
    channels, layers = (3, 16, 32, 64, 128, 64, 32, 16, 10), []
    for i in range(8):
        act = nn.LeakyReLU(0.01) if order == "conv_leakyrelu_bn" else nn.ReLU()
        bn = nn.BatchNorm2d(channels[i + 1])
        layers += [nn.Conv2d(channels[i], channels[i + 1], 3, padding=1)]
        layers += [bn, act] if order == "conv_bn_relu" else [act, bn]
        if i % 2:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(40, 10))


ACTIVATION_CLASSES = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
# partial binds each case's values now (a lambda in a comprehension would read the loop's last ones)
CASES = [pytest.param(partial(depth_net, b, a), partial(notebook_depth_net, b, ACTIVATION_CLASSES[a]),
                      id=f"blocks={b}-{a}") for b in (1, 3, 8) for a in ACTIVATION_CLASSES]
CASES += [pytest.param(partial(norm_net, n), partial(notebook_norm_net, n), id=f"{n}norm") for n in ("batch", "group")]
CASES += [pytest.param(partial(order_net, o), partial(notebook_order_net, o), id=o) for o in ORDERS]


@pytest.mark.parametrize("ours,notebook", CASES)
def test_same_parameters_init_and_function_as_the_notebook_model(ours, notebook):
    """Same seed, same initial draws; same weights, same outputs, in training and eval mode."""
    torch.manual_seed(3)
    model = ours()
    torch.manual_seed(3)
    reference = notebook()
    ours_params, ref_params = list(model.parameters()), list(reference.parameters())
    assert [p.numel() for p in ours_params] == [p.numel() for p in ref_params]
    for p, q in zip(ours_params, ref_params):
        assert torch.equal(p.flatten(), q.flatten())
    x = torch.randn(6, 3, 32, 32)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        getattr(reference, mode)()
        assert torch.allclose(model(x)[:, 0], reference(x), atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 5), blocks=st.integers(1, 8), replicates=st.integers(1, 3),
       classes=st.sampled_from([10, 100]))
def test_output_shapes(batch, blocks, replicates, classes):
    x = torch.randn(batch, 3 * replicates, 32, 32)
    for model in (depth_net(blocks, "relu", classes, replicates), norm_net("group", (4, 8, 8), classes, replicates),
                  order_net("conv_relu_bn", classes, replicates)):
        assert model.eval()(x).shape == (batch, replicates, classes)


def test_stacking_and_unstacking_replicates_round_trips():
    singles = [order_net("conv_bn_relu") for _ in range(3)]
    fused = stack_replicates(singles, order_net("conv_bn_relu", replicates=3))
    for i, single in enumerate(singles):
        state = replicate_state(fused, 3, i)
        assert state.keys() == single.state_dict().keys()
        assert all(torch.equal(state[k], v) for k, v in single.state_dict().items())


@pytest.mark.parametrize("groups,message", [((32, 8, 8), "block1: GroupNorm with 32 groups does not divide its 16 channels"),
                                            ((4, 8, 5), "block3: GroupNorm with 5 groups does not divide its 64 channels"),
                                            ((4, 8), "needs 3 group counts")])
def test_bad_group_counts(groups, message):
    with pytest.raises(ValueError, match=message):
        norm_net("group", groups)
