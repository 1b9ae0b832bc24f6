from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from lrsearch.review.figures import accuracy_vs_lr, learning_curves, lr_curves, peak_lr
from lrsearch.schema import REPEAT_OF

DISTS = {"schedule": CategoricalDistribution(["cosine", "step"]), "lr": FloatDistribution(1e-3, 1, log=True)}


def trial(
    number: int, schedule: str, lr: float, value: float | None, state: TrialState = TrialState.COMPLETE, **attrs: object
) -> FrozenTrial:
    made = optuna.trial.create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params={"schedule": schedule, "lr": lr},
        distributions=DISTS,
        intermediate_values={1: 0.5, 2: value or 0.5},
        user_attrs={"lr_history": [lr, lr / 2], "train_loss_history": [1.0, 0.5], **attrs},
    )
    made.number = number
    return made


TRIALS = [
    trial(0, "cosine", 0.1, 0.8),
    trial(1, "cosine", 0.3, 0.9),  # cosine's best
    trial(2, "step", 0.01, 0.7),  # step's best
    trial(3, "step", 0.5, None, TrialState.PRUNED),
    trial(4, "step", 1.0, None, TrialState.PRUNED, diverged=True),
    trial(5, "cosine", 0.3, 0.95, **{REPEAT_OF: 1}),  # a repeat: not a search trial
    trial(6, "step", 0.2, None, TrialState.FAIL),
]


def test_lr_curves_show_the_best_of_each_group() -> None:
    fig = lr_curves(TRIALS, "schedule")
    assert [t.name for t in fig.data] == ["cosine (trial 1)", "step (trial 2)"]
    assert list(fig.data[0].y) == [0.3, 0.15] and list(fig.data[0].x) == [1, 2]
    assert fig.layout.yaxis.type == "log"


def test_learning_curves_pair_accuracy_and_loss() -> None:
    fig = learning_curves(TRIALS, "schedule")
    assert [t.name for t in fig.data] == [
        "cosine: validation accuracy",
        "cosine: training loss",
        "step: validation accuracy",
        "step: training loss",
    ]
    assert list(fig.data[0].y) == [0.5, 0.9] and fig.data[1].yaxis == "y2"


def test_accuracy_vs_lr_marks_pruned_and_diverged() -> None:
    fig = accuracy_vs_lr(TRIALS, "schedule")
    traces = {t.name: t for t in fig.data}
    assert set(traces) == {"cosine (complete)", "step (complete)", "step (pruned)", "step (diverged)"}
    assert list(traces["cosine (complete)"].x) == [0.1, 0.3] and list(traces["cosine (complete)"].customdata) == [0, 1]
    assert traces["step (pruned)"].marker.symbol == "circle-open" and list(traces["step (pruned)"].y) == [0.5]
    assert traces["step (diverged)"].marker.symbol == "x" and list(traces["step (diverged)"].y) == [0.0]
    assert traces["step (pruned)"].marker.color == traces["step (complete)"].marker.color
    assert fig.layout.xaxis.type == "log"


@pytest.mark.parametrize(
    ("params", "history", "expected"),
    [
        ({"lr": 0.2}, [0.0, 0.1, 0.2], 0.2),  # sampled
        ({}, [0.0, 0.15, 0.3, 0.1], 0.3),  # an arm's fixed rate, after warmup
        ({}, [], None),
    ],
)
def test_peak_lr(params: dict, history: list[float], expected: float | None) -> None:
    made = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        value=0.5,
        params=params,
        distributions={k: DISTS[k] for k in params},
        user_attrs={"lr_history": history},
    )
    assert peak_lr(made) == expected
