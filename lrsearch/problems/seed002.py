"""Seed 002's recommended example: f(x) = x with one weight from 0, squared loss on linspace(1, 2, 10)."""

from __future__ import annotations

import torch
from torch import nn

import lrsearch


def _weight_from_zero() -> nn.Linear:
    layer = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(layer.weight)  # tf.Variable(tf.constant(0.0))
    return layer


def identity() -> lrsearch.Problem:
    """Seed 002: f(x) = x, one weight starting at 0, squared loss on linspace(1, 2, 10), the whole set a batch."""
    x = torch.linspace(1, 2, 10).unsqueeze(1)
    return lrsearch.Problem(
        model=_weight_from_zero,
        train=(x, x),
        val=(x, x),
        loss="mse",
        metric="loss",
        batch_size=10,
        epochs=10,
        name="seed002_identity",
        record=lambda params: {"weight": float(params["weight"])},
    )
