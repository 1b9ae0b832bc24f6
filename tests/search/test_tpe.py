from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch.search import tpe
from lrsearch.search.tpe import PopulationTPESampler


def objective(trial: optuna.Trial) -> float:
    """A space like a study's: a log-scale rate, a choice with a branch per value, a conditional integer."""
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    momentum = trial.suggest_float("momentum", 0.0, 0.99)
    schedule = trial.suggest_categorical("schedule", ["constant", "step", "cosine"])
    bonus = 0.0
    if schedule == "step":
        bonus = trial.suggest_float("step.gamma", 0.05, 0.5, log=True) + trial.suggest_int("step.k", 1, 3)
    elif schedule == "cosine":
        bonus = trial.suggest_float("cosine.final_lr", 1e-6, 1e-3, log=True)
    return -((math.log10(lr) + 1.5) ** 2) - (momentum - 0.8) ** 2 + 0.1 * bonus


def rounds(make: Callable[[], optuna.samplers.BaseSampler], *, n_rounds: int = 10, size: int = 12) -> list[dict]:
    """Rounds of asks as a worker makes them: a population asked at once, then told; some trials pruned
    (with their values), failed, or still running into the next rounds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(direction="maximize", sampler=make())
    suggested = []
    for r in range(n_rounds):
        trials = [study.ask() for _ in range(size)]
        for i, trial in enumerate(trials):
            value = objective(trial)
            suggested.append(dict(trial.params))
            if i % 5 == 4:
                trial.report(value, 3)
                study.tell(trial, state=TrialState.PRUNED)
            elif i % 7 == 6:
                study.tell(trial, state=TrialState.FAIL)
            elif i % 4 != 3 or r == n_rounds - 1:  # the rest stay running (constant liar) for a while
                study.tell(trial, value)
    return suggested


VARIANTS = {
    "multivariate-group": {"multivariate": True, "group": True},
    "multivariate": {"multivariate": True},
    "independent": {"multivariate": False},
    "no-liar": {"multivariate": True, "group": True, "constant_liar": False},
}


@pytest.mark.parametrize("kwargs", VARIANTS.values(), ids=VARIANTS.keys())
def test_suggests_what_optunas_tpe_suggests(kwargs: dict) -> None:
    ours = rounds(lambda: PopulationTPESampler(seed=3, **kwargs))
    theirs = rounds(lambda: optuna.samplers.TPESampler(seed=3, **kwargs))
    assert len(ours) == 120 and ours == theirs


def test_a_round_splits_the_finished_trials_once_per_group(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    split = tpe._split_trials
    monkeypatch.setattr(tpe, "_split_trials", lambda *args: calls.append(1) or split(*args))
    study = optuna.create_study(direction="maximize", sampler=PopulationTPESampler(seed=1, multivariate=True))
    study.optimize(objective, n_trials=12)
    calls.clear()
    asked = [study.ask() for _ in range(16)]  # one round: the finished trials do not change
    for trial in asked:
        objective(trial)
    # One split for the relative group and one per parameter sampled on its own, not one per ask.
    assert 1 <= len(calls) <= 6
    study.tell(asked[0], 0.0)
    study.ask()
    assert len(calls) > 1  # a new finished trial: split again


def test_the_running_trials_are_read_as_they_grow() -> None:
    sampler = PopulationTPESampler(seed=0, multivariate=True)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=12)
    running = [study.ask() for _ in range(5)]
    for trial in running:
        trial.suggest_float("x", 0, 1)
    (split,) = sampler._splits.values()
    assert [t.number for t in split.running] == [t.number for t in running[:-1]]  # the one being asked is not
    assert len(split.running_rows) == 4
