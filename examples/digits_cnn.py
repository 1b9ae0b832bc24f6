"""A user's own network, as a new user would write it: a small CNN with BatchNorm and dropout on
scikit-learn's bundled handwritten digits (8x8 images, no download), tuned by lrsearch.

    python examples/digits_cnn.py                      # the study beside this file, through lrsearch.run
    lrsearch run --study examples/digits_cnn.toml      # the same from the command line
    lrsearch train --trainer digits_cnn:problem --lr 0.05 --momentum 0.9   # one configuration (from examples/)
"""

from __future__ import annotations

from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

import lrsearch


class DigitsCNN(nn.Module):
    def __init__(self, dropout: float = 0.25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(32 * 4 * 4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def problem() -> lrsearch.Problem:
    """A small CNN (BatchNorm, dropout) on scikit-learn's 8x8 digits: 1,200 train / 300 val / 297 test."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return lrsearch.Problem(
        model=DigitsCNN,
        train=(x[:1200], y[:1200]),
        val=(x[1200:1500], y[1200:1500]),
        test=(x[1500:], y[1500:]),
        batch_size=32,
        epochs=8,
        name="digits_cnn",
    )


def main() -> None:
    report = lrsearch.run(Path(__file__).with_name("digits_cnn.toml"), storage="sqlite:///digits_cnn.db")
    assert report is not None
    print(report.to_frame().to_string(index=False))
    print(report.verdict)


if __name__ == "__main__":
    main()
