from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lrsearch
from lrsearch.engine import train_population
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.problem import Problem
from lrsearch.errors import ConfigError

CPU = torch.device("cpu")


def classes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def line(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g)
    return x, 2 * x + 5


def classifier() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))


def test_the_public_name_is_the_problem_class() -> None:
    assert lrsearch.Problem is Problem


def test_a_classification_problem_trains_and_reports_on_its_test_split() -> None:
    problem = Problem(
        model=classifier, train=classes(96, 0), val=classes(48, 1), test=classes(48, 2), batch_size=16, epochs=5
    )
    assert problem.objective_direction == "maximize"
    (member,) = train_population(problem.to_engine(CPU), [TrainConfig(lr=0.1, momentum=0.9, seed=1)])
    assert member.status == "completed" and member.test_metric is not None and member.test_metric > 0.6
    best = max(m.val_metric for m in member.history)
    assert member.val_metric == best  # restored the best validation epoch: higher is better


def test_a_regression_problem_is_minimized_and_keeps_its_lowest_loss_epoch() -> None:
    problem = Problem(
        model=lambda: nn.Linear(1, 1),
        train=line(80, 0),
        val=line(20, 1),
        test=line(20, 2),
        loss="mse",
        metric="loss",
        batch_size=8,
        epochs=12,
    )
    assert problem.objective_direction == "minimize"
    (member,) = train_population(problem.to_engine(CPU), [TrainConfig(lr=0.3, momentum=0.9, seed=1)])
    losses = [m.val_metric for m in member.history]  # the metric column holds the metric: here the loss
    assert member.val_metric == min(losses) and losses[-1] < losses[0]


def test_without_a_test_split_validation_is_reported_and_no_epoch_is_chosen_on_it() -> None:
    problem = Problem(model=classifier, train=classes(64, 0), val=classes(32, 1), batch_size=16, epochs=3)
    engine = problem.to_engine(CPU)
    assert engine.dataset.test.x is engine.dataset.val.x and not engine.restore_best


def test_a_callable_metric_with_its_direction() -> None:
    def within(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((out - y).abs() < 0.5).float().flatten()

    problem = Problem(
        model=lambda: nn.Linear(1, 1),
        train=line(40, 0),
        val=line(20, 1),
        loss="mae",
        metric=within,
        direction="maximize",
        batch_size=8,
        epochs=8,
    )
    (member,) = train_population(problem.to_engine(CPU), [TrainConfig(lr=0.3, momentum=0.9, seed=2)])
    assert 0 <= member.history[-1].val_metric <= 1


def _raises() -> nn.Module:
    raise RuntimeError("no such layer")


GOOD = {"model": classifier, "train": classes(16, 0), "val": classes(8, 1)}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "resnet"}, "model must be a callable that makes a torch.nn.Module but got str"),
        ({"model": lambda: 3}, r"model\(\): the model factory must return a torch.nn.Module but got int"),
        ({"model": lambda: nn.LazyLinear(2)}, r"model\(\): LazyLinear has lazy parameters .*: give their sizes"),
        ({"model": _raises}, r"model\(\) raised RuntimeError: no such layer"),
        ({"model": lambda: nn.Linear(3, 2)}, r"Linear on two training examples, then the loss, raised RuntimeError"),
        ({"train": (torch.zeros(4, 4),)}, "train must be a pair of tensors"),
        ({"train": [np.zeros((4, 4)), np.zeros(4)]}, "train must be a pair of tensors"),
        ({"train": (torch.zeros(4, 4), torch.zeros(3, dtype=torch.long))}, r"shapes \(4, 4\) and \(3,\)"),
        ({"train": (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))}, "at least one example"),
        ({"train": (torch.zeros(4, 4, dtype=torch.long), torch.zeros(4, dtype=torch.long))}, "floating point"),
        ({"val": (torch.zeros(4, 5), torch.zeros(4, dtype=torch.long))}, "one shape and dtype"),
        (
            {"train": (torch.zeros(4, 4), torch.zeros(4)), "val": (torch.zeros(2, 4), torch.zeros(2))},
            "cross_entropy needs integer class targets",
        ),
        ({"loss": "mse", "metric": "loss"}, "loss 'mse' needs floating-point targets"),
        ({"loss": "hinge"}, "loss must be one of cross_entropy, mse, mae, huber or a callable but got 'hinge'"),
        ({"metric": "f1"}, "metric must be one of accuracy, loss or a callable but got 'f1'"),
        ({"metric": lambda o, y: o.sum(1)}, "a callable metric needs direction 'maximize' or 'minimize' but got None"),
        ({"direction": "minimize"}, "metric 'accuracy' is maximized but direction is 'minimize'"),
        ({"loss": lambda o, y: o.sum()}, r"one value per example, shape \(2,\), but got \(\)"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 10**9}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"record": "weights"}, "record must be a callable .* but got str"),
    ],
)
def test_a_bad_problem_names_the_bad_value(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Problem(**{**GOOD, **change})
