from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch.bench import same_suggestions
from lrsearch.search import tpe
from lrsearch.search.tpe import PopulationTPESampler


def objective(trial: optuna.Trial) -> float:
    """A space like a study's: a log-scale rate, a choice with a branch per value, conditional parameters,
    and every kind of distribution (stepped, log-scale integers)."""
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    momentum = trial.suggest_float("momentum", 0.0, 0.99)
    decay = trial.suggest_float("decay", 0.0, 0.1, step=0.01)
    batch = trial.suggest_int("batch", 16, 256, log=True)
    schedule = trial.suggest_categorical("schedule", ["constant", "step", "cosine"])
    bonus = 0.0
    if schedule == "step":
        bonus = trial.suggest_float("step.gamma", 0.05, 0.5, log=True) + trial.suggest_int("step.k", 1, 3)
    elif schedule == "cosine":
        bonus = trial.suggest_float("cosine.final_lr", 1e-6, 1e-3, log=True)
    return -((math.log10(lr) + 1.5) ** 2) - (momentum - 0.8) ** 2 - decay + 0.1 * bonus + 1e-3 * batch


def rounds(
    make: Callable[[], optuna.samplers.BaseSampler], direction: str, *, n_rounds: int = 10, size: int = 12
) -> list[dict]:
    """Rounds of asks as a worker makes them: a population asked at once, then told; some trials pruned
    (with their values), failed, or still running into the next rounds."""
    study = optuna.create_study(direction=direction, sampler=make())
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


def optunas(seed: int, **kwargs: object) -> optuna.samplers.TPESampler:
    with warnings.catch_warnings():
        # group is experimental, and the Parzen estimator's settings deprecated: both as lrsearch's TPE has them.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, **kwargs)  # type: ignore[arg-type]


VARIANTS = {
    "defaults": {},
    "few-startup": {"n_startup_trials": 3},
    "few-candidates": {"n_ei_candidates": 5},
    "light-prior": {"prior_weight": 0.25},
    "no-prior": {"prior_weight": 0.0},
    "endpoints": {"consider_endpoints": True},
    "no-magic-clip": {"consider_magic_clip": False},
}


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # Optuna's, without a prior
@pytest.mark.parametrize("direction", ["maximize", "minimize"])
@pytest.mark.parametrize("kwargs", VARIANTS.values(), ids=VARIANTS.keys())
def test_suggests_what_optunas_tpe_suggests(kwargs: dict, direction: str) -> None:
    ours = rounds(lambda: PopulationTPESampler(seed=3, **kwargs), direction)
    theirs = rounds(lambda: optunas(3, **kwargs), direction)
    assert len(ours) == 120
    differing = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs)) if not same_suggestions(a, b)]
    assert not differing, differing[:3]


def test_shares_its_relative_values_as_optunas_tpe_does() -> None:
    """A running trial's values are where Optuna's TPE in another worker reads them."""
    study = optuna.create_study(sampler=PopulationTPESampler(seed=0, n_startup_trials=2))
    study.optimize(objective, n_trials=4)
    trial = study.ask()
    objective(trial)
    shared = json.loads(study._storage.get_trial_system_attrs(trial._trial_id)[f"{tpe.RELATIVE_PARAMS_KEY}:0"])
    # Every group is sampled, the branches the trial did not take too (lrsearch's GroupSampler leaves those out).
    assert trial.params.keys() <= shared.keys() and all(shared[k] == v for k, v in trial.params.items())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_startup_trials": -1}, "n_startup_trials must be a non-negative integer, but got -1"),
        ({"n_ei_candidates": 0}, "n_ei_candidates must be a positive integer, but got 0"),
        ({"prior_weight": math.nan}, "prior_weight must be a non-negative finite number, but got nan"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PopulationTPESampler(**kwargs)


def test_one_objective_only() -> None:
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=PopulationTPESampler(seed=0))
    with pytest.raises(ValueError, match="for one objective, but the study has 2"):
        study.ask().suggest_float("x", 0, 1)


def test_a_round_splits_the_finished_trials_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    split = tpe._split_trials
    monkeypatch.setattr(tpe, "_split_trials", lambda *args: calls.append(1) or split(*args))
    study = optuna.create_study(direction="maximize", sampler=PopulationTPESampler(seed=1))
    study.optimize(objective, n_trials=12)
    calls.clear()
    asked = [study.ask() for _ in range(16)]  # one round: the finished trials do not change
    for trial in asked:
        objective(trial)
    assert len(calls) == 1  # for every group of the space and every ask of the round
    study.tell(asked[0], 0.0)
    objective(study.ask())
    assert len(calls) == 2  # a new finished trial: split again


def _with_running(count: int) -> tuple[PopulationTPESampler, optuna.Study, list[optuna.Trial]]:
    """A study of 12 finished trials and ``count`` running ones, each asked after the one before suggested."""
    sampler = PopulationTPESampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=12)
    running = [study.ask() for _ in range(count)]
    for trial in running:
        trial.suggest_float("x", 0, 1)
    return sampler, study, running


def test_the_running_trials_rows_are_read_once() -> None:
    sampler, _, running = _with_running(5)
    (rows,) = sampler._running.values()
    assert sorted(rows.rows_by_id) == [t._trial_id for t in running[:-1]]  # the one being asked is not


def test_the_running_trials_rows_outlast_a_new_finished_trial() -> None:
    sampler, study, running = _with_running(4)
    (rows,) = sampler._running.values()
    kept = dict(rows.rows_by_id)
    study.tell(running[0], 0.5)  # the finished trials change: split again, the running rows stand
    study.ask().suggest_float("x", 0, 1)
    assert sorted(rows.rows_by_id) == [t._trial_id for t in running[1:]]  # the finished one is forgotten
    assert all(rows.rows_by_id[i] is kept[i] for i in (running[1]._trial_id, running[2]._trial_id))
