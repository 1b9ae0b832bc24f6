from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from lrsearch.search.pruning import PruningView, create_pruner, nan_percentile
from lrsearch.spec.choices import pruner_settings
from lrsearch.storage.study_storage import StudyStorage
from lrsearch.storage.view import CompletedValues
from lrsearch.storage.workers import completed as completed_values


def make_pruner(name: str, settings: dict | None = None, *, epochs: int, population: int) -> optuna.pruners.BasePruner:
    return create_pruner(name, pruner_settings(name, settings, epochs=epochs, population=population))


def completed(study: optuna.Study, curves: list[list[float]]) -> None:
    for curve in curves:
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": 0.1},
                distributions={"lr": FloatDistribution(0.01, 1.0)},
                value=curve[-1],
                intermediate_values={step: v for step, v in enumerate(curve, start=1)},
            )
        )


def running(study: optuna.Study, values: list[float]) -> FrozenTrial:
    trial = study.ask({"lr": FloatDistribution(0.01, 1.0)})
    return FrozenTrial(
        number=trial.number,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=None,
        datetime_complete=None,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs={},
        system_attrs={},
        intermediate_values=dict(enumerate(values, start=1)),
        trial_id=trial._trial_id,
    )


@pytest.mark.parametrize("values", [[0.5, 0.55, 0.6], [0.5, 0.8, 0.9], [0.1, 0.2, 0.85]])
def test_the_view_decides_as_the_pruner_does_on_the_study(values: list[float]) -> None:
    study = optuna.create_study(direction="maximize")
    completed(study, [[0.5, 0.7, 0.8], [0.6, 0.75, 0.85], [0.4, 0.65, 0.82]])
    pruner = make_pruner("median", {"n_warmup_steps": 0}, epochs=3, population=3)
    trial = running(study, values)
    view = PruningView(study, {trial._trial_id: {}})
    assert view.should_prune(pruner, trial) == pruner.prune(study, trial)


def test_successive_halving_rungs_are_stored_and_mirrored() -> None:
    study = optuna.create_study(direction="maximize")
    pruner = make_pruner("asha", {"min_resource": 1, "reduction_factor": 2}, epochs=8, population=2)
    trial = running(study, [0.5])
    mirror: dict[str, object] = {}
    PruningView(study, {trial._trial_id: mirror}).should_prune(pruner, trial)
    assert mirror == {"completed_rung_0": 0.5}
    assert study.trials[trial.number].system_attrs["completed_rung_0"] == 0.5


@pytest.mark.parametrize("values", [[0.5, 0.55, 0.6], [0.5, 0.8, 0.9]])
def test_a_worker_that_reads_no_per_epoch_values_decides_the_same(tmp_path, values: list[float]) -> None:  # type: ignore[no-untyped-def]
    from lrsearch.storage.opening import open_storage
    from lrsearch.storage.urls import resolve_url

    url = resolve_url(f"sqlite:///{tmp_path / 's.db'}")
    full = optuna.create_study(storage=open_storage(url, heartbeat=None), study_name="s", direction="maximize")
    completed(full, [[0.5, 0.7, 0.8], [0.6, 0.75, 0.85], [0.4, 0.65, 0.82]])
    light = optuna.load_study(study_name="s", storage=open_storage(url, heartbeat=None, per_epoch_values=False))
    assert all(not t.intermediate_values for t in light.get_trials())  # the worker's reads skip them
    pruner = make_pruner("median", {"n_warmup_steps": 0}, epochs=3, population=3)
    trial = running(full, values)
    step = {trial.last_step}
    decided = [PruningView(s, {trial._trial_id: {}}, step).should_prune(pruner, trial) for s in (full, light)]
    assert decided[0] == decided[1] == pruner.prune(full, trial)


@pytest.mark.parametrize("name", ["median", "percentile"])
@pytest.mark.parametrize("values", [[0.5, 0.55, 0.6], [0.5, 0.8, 0.9], [0.1, 0.2, 0.85], [0.5, float("nan"), 0.7]])
def test_the_completed_trials_alone_decide_as_the_pruner_does(storage_url: str, name: str, values: list[float]) -> None:
    from lrsearch.storage.opening import open_storage
    from lrsearch.storage.urls import resolve_url

    study = optuna.create_study(
        storage=open_storage(resolve_url(storage_url), heartbeat=None, per_epoch_values=False),
        study_name="s",
        direction="maximize",
    )
    completed(study, [[0.5, 0.7, 0.8], [0.6, 0.75, 0.85], [0.4, 0.65, 0.82], [0.3, 0.5]])
    pruned = study.ask()
    pruned.report(0.9, 1)
    study.tell(pruned, state=TrialState.PRUNED)  # not compared with
    pruner = make_pruner(name, {"n_warmup_steps": 0, "n_startup_trials": 4}, epochs=3, population=3)
    trial = running(study, values)
    full = optuna.load_study(study_name="s", storage=resolve_url(storage_url))  # Optuna's own reads, in full
    given = [(trial.last_step, float(np.nanmax(values)))]
    (decided,) = pruner.decide(completed_values(study, max_age=0), study.direction, given)  # type: ignore[union-attr]
    assert (
        decided
        == pruner.prune(full, trial)
        == optuna.pruners.PercentilePruner(pruner.percentile, 4, 0, n_min_trials=1).prune(full, trial)
    )


def test_completed_trials_are_read_once_and_looked_for_every_refresh(storage_url: str) -> None:
    from lrsearch.storage.opening import open_storage
    from lrsearch.storage.urls import resolve_url

    storage = open_storage(resolve_url(storage_url), heartbeat=None, per_epoch_values=False)
    assert isinstance(storage, StudyStorage)
    study = optuna.create_study(storage=storage, study_name="s")
    completed(study, [[0.5, 0.7]])
    with storage.hold(study._study_id):
        first = completed_values(study, max_age=3600)
        assert first is not None and len(first) == 1
        completed(study, [[0.6, 0.8]])  # another worker's
        assert len(completed_values(study, max_age=3600)) == 1  # type: ignore[arg-type]
        values = completed_values(study, max_age=0)
        assert values is first and len(values) == 2 and sorted(values.at(2)) == [0.7, 0.8]
        assert len(values.at(3)) == 0
    assert completed_values(optuna.create_study(), max_age=0) is None  # in memory: no view of lrsearch's


def test_completed_values_keep_what_is_not_finite_and_what_is_missing() -> None:
    held = CompletedValues()
    trials = np.array([7, 7, 7, 9, 9])
    held.add([7, 9, 11], (trials, np.array([1, 2, 3, 1, 5]), np.array([0.5, np.nan, np.inf, 0.25, -np.inf])))
    assert len(held) == 3 and 11 in held and 8 not in held  # 11 completed without a value
    assert sorted(held.at(1)) == [0.25, 0.5] and np.isnan(held.at(2)).tolist() == [True]  # a NaN counts
    assert held.at(3).tolist() == [np.inf] and held.at(5).tolist() == [-np.inf] and held.at(4).size == 0
    held.add([7, 12], (np.array([7, 12]), np.array([1, 9]), np.array([0.0, 0.75])))  # 7 is held: left as it is
    assert sorted(held.at(1)) == [0.25, 0.5] and held.at(9).tolist() == [0.75] and len(held) == 4


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
@pytest.mark.parametrize(
    "settings",
    [
        {"name": "median", "n_warmup_steps": 0},
        {"name": "median", "n_warmup_steps": 3, "interval_steps": 2},
        {"name": "percentile", "percentile": 10.0, "n_min_trials": 4},
        {"name": "median", "n_startup_trials": 30},
    ],
)
def test_a_populations_decisions_are_the_pruners_own(direction: str, settings: dict) -> None:
    rng = np.random.default_rng(len(str(settings)) + len(direction))
    study = optuna.create_study(direction=direction)
    curves = rng.uniform(0, 1, (12, 8)).cumsum(axis=1) / 8
    curves[3, 5] = np.nan  # a NaN among the completed values
    completed(study, [list(c[: 8 - i % 3]) for i, c in enumerate(curves)])  # some lack the later steps
    members = []
    for i in range(40):
        values = list(rng.uniform(0, 1, rng.integers(1, 9)).cumsum() / 8)
        if i % 9 == 0:
            values[-1] = float("nan")  # a member whose loss went NaN at its last step
        members.append(running(study, values))
    members += [running(study, [extreme] * 7) for extreme in (-10.0, 10.0)]  # the worst either way
    config = dict(settings)
    pruner = make_pruner(config.pop("name"), config, epochs=8, population=4)
    best = np.nanmax if direction == "maximize" else np.nanmin
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a member whose only value is NaN: its best is NaN
        given = [(m.last_step, float(best(list(m.intermediate_values.values())))) for m in members]
    held = CompletedValues()
    for i, t in enumerate(study.get_trials(states=(TrialState.COMPLETE,))):
        if i == 6:  # decided on half of them first: the thresholds then follow the values that come after
            pruner.decide(held, study.direction, given)  # type: ignore[attr-defined]
        steps = list(t.intermediate_values)
        held.add(
            [t._trial_id],
            (np.full(len(steps), t._trial_id), np.array(steps), np.array(list(t.intermediate_values.values()))),
        )
    ours = pruner.decide(held, study.direction, given)  # type: ignore[attr-defined]
    assert ours == [pruner.prune(study, member) for member in members]
    assert any(ours) or settings.get("n_startup_trials") == 30


@pytest.mark.parametrize("q", [0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 100.0, 33.3])
@pytest.mark.parametrize("shape", ["plain", "ties", "nans", "infinities", "all_nan", "one"])
def test_nan_percentile_is_numpys_to_the_bit(q: float, shape: str) -> None:
    rng = np.random.default_rng(int(q * 10) + len(shape))
    for n in (1, 2, 3, 7, 64, 513):
        values = rng.normal(size=1 if shape == "one" else n) * 10 ** rng.uniform(-5, 5)
        if shape == "ties":
            values = np.round(values, 1)
        elif shape == "nans":
            values[rng.random(len(values)) < 0.3] = np.nan
        elif shape == "infinities":
            values[rng.random(len(values)) < 0.3] = np.inf * rng.choice([-1, 1])
        elif shape == "all_nan":
            values[:] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on an all-NaN slice
            expected = float(np.nanpercentile(values, q))
        got = nan_percentile(values, q)
        assert got == expected or (np.isnan(expected) and np.isnan(got))
