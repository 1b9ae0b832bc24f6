from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import lrsearch
from lrsearch.engine.problem import Problem
from lrsearch.errors import ConfigError


def line(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g)
    return x, 2 * x + 5


def regression() -> Problem:
    return Problem(
        model=lambda: nn.Linear(1, 1),
        train=line(64, 0),
        val=line(16, 1),
        test=line(16, 2),
        loss="mse",
        metric="loss",
        batch_size=8,
        epochs=6,
    )


def test_train_a_problem_object_and_read_its_history() -> None:
    result = lrsearch.train(regression(), lr=0.1, momentum=0.9, schedule="cosine", progress=False)
    assert isinstance(result, lrsearch.TrainResult) and result.status == "completed"
    history = result.history
    assert list(history.columns) == ["epoch", "lr", "train_loss", "val_loss"]  # the metric is the loss
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6] and history["lr"].iloc[-1] < history["lr"].iloc[0]
    assert result.selected_epoch == int(history["val_loss"].idxmin()) + 1  # lower is better: the lowest is kept
    assert result.test is not None and result.test < float(history["val_loss"].iloc[0])


def test_train_a_bundled_trainer_by_name_with_its_seed_rate() -> None:
    result = lrsearch.train("blobs", epochs=3, progress=False)
    assert result.config.lr == 0.01 and result.metric == "accuracy" and len(result.history) == 3
    assert list(result.history.columns)[-1] == "val_accuracy"


def test_each_epoch_can_be_watched() -> None:
    seen: list[int] = []
    lrsearch.train("blobs", epochs=4, progress=False, on_epoch=lambda report: seen.append(report.metrics.epoch))
    assert seen == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("problem", "kwargs", "message"),
    [
        (regression, {}, "lr: required for a problem of your own"),
        (lambda: 3, {"lr": 0.1}, "problem must be an lrsearch.Problem or a trainer name but got int"),
        (lambda: "mnist", {"lr": 0.1}, "unknown trainer 'mnist'"),
        (regression, {"lr": -1.0}, r"lr must be a number in \(0, 10000\] but got -1.0"),
        (regression, {"lr": 0.1, "epochs": 0}, r"epochs must be an integer in \[1, 100000\] but got 0"),
        (regression, {"lr": 0.1, "schedule": "cosinus"}, "unknown schedule 'cosinus'"),
        # The run's own length (3 epochs here), before any data is read.
        (lambda: "blobs", {"epochs": 3, "schedule": "cosine", "warmup": 4}, r"cosine total \(3\) must be longer"),
    ],
)
def test_bad_arguments_name_the_bad_value(problem: Callable[[], object], kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        lrsearch.train(problem(), progress=False, **kwargs)
