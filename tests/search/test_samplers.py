from __future__ import annotations

import warnings

import optuna
import pytest

from lrsearch.errors import ConfigError
from lrsearch.search.samplers import GroupSampler, create_sampler
from lrsearch.spec.choices import SAMPLERS


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_is_made_quietly_and_seeded(name: str) -> None:
    grid = {"x": [1, 2, 3]} if name == "grid" else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = create_sampler(name, seed=7, grid=grid)
    study = optuna.create_study(sampler=sampler)
    study.optimize(
        lambda t: t.suggest_categorical("x", [1, 2, 3]) if name == "grid" else t.suggest_float("x", 0, 1), n_trials=3
    )
    assert len(study.trials) == 3


def test_same_seed_same_suggestions_different_seed_different() -> None:
    def first(seed: int) -> float:
        study = optuna.create_study(sampler=create_sampler("tpe", seed=seed))
        return study.ask().suggest_float("lr", 1e-4, 1.0, log=True)

    assert first(1) == first(1) and first(1) != first(2)


def test_cmaes_is_not_offered() -> None:
    with pytest.raises(ConfigError, match="unknown sampler 'cmaes'"):
        create_sampler("cmaes", seed=0)


def test_a_fixing_sampler_samples_only_the_branch_the_trial_takes() -> None:
    def objective(trial: optuna.Trial) -> float:
        schedule = trial.suggest_categorical("schedule", ["cosine", "step"])
        branch = trial.suggest_float(f"{schedule}.x", 0, 1)
        return trial.suggest_float("lr", 1e-3, 1, log=True) + branch

    sampler = GroupSampler(create_sampler("tpe", seed=0))
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=30)
    with sampler.fixing({"schedule": "cosine"}, unused={"step.x"}):
        trial = study.ask()
        objective(trial)
    assert trial.params["schedule"] == "cosine" and "step.x" not in trial.params
    # TPE samples the groups of the relative space up front: the other branch's is not among them.
    assert set(trial.relative_params) == {"lr", "cosine.x"}
    free = study.ask()  # outside the block: the base sampler's choice, every group sampled
    objective(free)
    assert {"lr", "cosine.x", "step.x"} <= set(free.relative_params)
