"""The seeds' networks as plain ``torch.nn`` modules, exactly as the seeds write them: the one source of truth
for the bundled trainers (trained through the generic path, or a fast path tested equal to it); and how a
member's module is made under its seed."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from lrsearch.engine.devices import manual_seed
from lrsearch.errors import ConfigError

__all__ = ["blobs_mlp", "lenet", "lenet_d2l", "seeded"]


def seeded(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``factory()`` under torch's global seed ``seed`` (its own initialisation, as it would be trained
    alone), the caller's random state left as it was; a module whose tensors can be stacked."""
    with torch.random.fork_rng(devices=[]):
        manual_seed(seed, torch.device("cpu"))
        module = factory()
    if not isinstance(module, nn.Module):
        raise ConfigError(f"the model factory must return a torch.nn.Module but got {type(module).__name__}")
    if any(is_lazy(t) for t in (*module.parameters(), *module.buffers())):
        raise ConfigError(
            f"{type(module).__name__} has lazy parameters (nn.LazyLinear and the like): give their "
            "sizes, so that every member's tensors can be stacked"
        )
    return module


def blobs_mlp(inputs: int = 2, hidden: int = 50, classes: int = 3) -> nn.Sequential:
    """Seed 000's Keras network: Dense(hidden, relu, he_uniform) -> Dense(classes, glorot_uniform), zero biases."""
    net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    nn.init.kaiming_uniform_(net[0].weight, nonlinearity="relu")  # Keras' he_uniform: U(+-sqrt(6 / fan_in))
    nn.init.xavier_uniform_(net[2].weight)
    for layer in (net[0], net[2]):
        nn.init.zeros_(layer.bias)
    return net


def lenet() -> nn.Sequential:
    """Seed 001: d2l's modern LeNet (ReLU, max pooling) with PyTorch's default initialisation."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def lenet_d2l() -> nn.Sequential:
    """d2l's LeNet as d2l initialises it (``init_cnn``): Xavier-uniform weights, PyTorch's default biases."""
    net = lenet()
    for layer in net:
        if isinstance(layer, nn.Linear | nn.Conv2d):
            nn.init.xavier_uniform_(layer.weight)
    return net
