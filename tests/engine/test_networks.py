from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lrsearch.engine.networks import blobs_mlp, lenet, lenet_d2l, seeded
from lrsearch.errors import ConfigError

FANS = {"0": (25, 150), "3": (150, 400), "7": (400, 120), "9": (120, 84), "11": (84, 10)}  # layer: fan in, out


def test_lenet_is_d2l_s_network_with_pytorch_s_default_initialisation() -> None:
    net = seeded(lenet, 0)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    for name, value in net.requires_grad_(False).named_parameters():
        fan_in = FANS[name.split(".")[0]][0]
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a = sqrt(5)) for weights, and the bias likewise
        assert 0.5 * bound < float(value.abs().max()) <= bound


def test_lenet_d2l_is_xavier_on_weights_only() -> None:
    for name, value in seeded(lenet_d2l, 0).requires_grad_(False).named_parameters():
        fan_in, fan_out = FANS[name.split(".")[0]]
        bound = math.sqrt(6 / (fan_in + fan_out)) if name.endswith("weight") else 1 / math.sqrt(fan_in)
        assert 0.5 * bound < float(value.abs().max()) <= bound


def test_blobs_mlp_is_he_uniform_then_glorot_with_zero_biases() -> None:
    first, _, last = seeded(blobs_mlp, 0).requires_grad_(False)
    assert 0.8 * math.sqrt(6 / 2) < float(first.weight.abs().max()) <= math.sqrt(6 / 2)
    assert float(last.weight.abs().max()) <= math.sqrt(6 / 53)
    assert not first.bias.any() and not last.bias.any()


def test_seeded_makes_the_same_module_for_the_same_seed_and_leaves_torch_s_state_alone() -> None:
    state = torch.get_rng_state()
    a, b, c = seeded(lenet, 3), seeded(lenet, 3), seeded(lenet, 4)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)


def test_seeded_refuses_a_factory_that_makes_no_module() -> None:
    with pytest.raises(ConfigError, match="must return a torch.nn.Module but got Tensor"):
        seeded(lambda: torch.zeros(1), 0)
    assert isinstance(seeded(nn.Identity, 0), nn.Identity)


def test_seeded_refuses_a_lazy_module() -> None:
    with pytest.raises(ConfigError, match=r"^Sequential has lazy parameters \(nn.LazyLinear and the like\)"):
        seeded(lambda: nn.Sequential(nn.LazyLinear(3)), 0)
