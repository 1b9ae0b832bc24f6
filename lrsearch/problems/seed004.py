"""Seed 004's toy problems: learn f(x) = x with one weight, and f(x) = 2x + 5 with a weight and a bias."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

import lrsearch


def _line(bias: bool) -> nn.Linear:
    """Keras's Dense(1): a Glorot-uniform weight, a zero bias."""
    layer = nn.Linear(1, 1, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def _weights(params: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The learned weight (and bias) after each epoch, as the seed plots them."""
    return {name: float(value) for name, value in params.items()}


def identity() -> lrsearch.Problem:
    """Seed 004: f(x) = x, one weight and no bias, MAE, X = 0..99 (the first 80 train, the rest validate)."""
    x = torch.arange(100, dtype=torch.float32).unsqueeze(1)
    return lrsearch.Problem(
        model=lambda: _line(bias=False),
        train=(x[:80], x[:80]),
        val=(x[80:], x[80:]),
        loss="mae",
        metric="loss",
        batch_size=32,
        epochs=100,
        name="seed004_identity",
        record=_weights,
    )


def affine() -> lrsearch.Problem:
    """Seed 004: f(x) = 2x + 5, a weight and a bias, MAE, scikit-learn's splits as the seed makes them."""
    x = np.arange(100, dtype=np.float32).reshape(-1, 1)
    y = 2 * x + 5
    x_full, x_test, y_full, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    x_train, x_val, y_train, y_val = train_test_split(x_full, y_full, test_size=0.2, random_state=42)

    def pair(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(a), torch.from_numpy(b)

    return lrsearch.Problem(
        model=lambda: _line(bias=True),
        train=pair(x_train, y_train),
        val=pair(x_val, y_val),
        test=pair(x_test, y_test),
        loss="mae",
        metric="loss",
        batch_size=32,
        epochs=200,
        name="seed004_affine",
        record=_weights,
    )
