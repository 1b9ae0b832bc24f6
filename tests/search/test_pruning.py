from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from lrsearch.errors import ConfigError
from lrsearch.search.pruning import PRUNERS, CompletedTrials, PruningView, create_pruner


def completed(study: optuna.Study, curves: list[list[float]]) -> None:
    for curve in curves:
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 0.1}, distributions={"lr": FloatDistribution(0.01, 1.0)}, value=curve[-1],
            intermediate_values={step: v for step, v in enumerate(curve, start=1)},
        ))  # fmt: skip


def running(study: optuna.Study, values: list[float]) -> FrozenTrial:
    trial = study.ask({"lr": FloatDistribution(0.01, 1.0)})
    return FrozenTrial(number=trial.number, state=TrialState.RUNNING, value=None, datetime_start=None,
                       datetime_complete=None, params=trial.params, distributions=trial.distributions, user_attrs={},
                       system_attrs={}, intermediate_values=dict(enumerate(values, start=1)), trial_id=trial._trial_id)  # fmt: skip


@pytest.mark.parametrize("values", [[0.5, 0.55, 0.6], [0.5, 0.8, 0.9], [0.1, 0.2, 0.85]])
def test_the_view_decides_as_the_pruner_does_on_the_study(values: list[float]) -> None:
    study = optuna.create_study(direction="maximize")
    completed(study, [[0.5, 0.7, 0.8], [0.6, 0.75, 0.85], [0.4, 0.65, 0.82]])
    pruner = create_pruner("median", {"n_warmup_steps": 0}, epochs=3, population=3)
    trial = running(study, values)
    view = PruningView.read(study, {trial._trial_id: {}})
    assert view.should_prune(pruner, trial) == pruner.prune(study, trial)


def test_successive_halving_rungs_are_stored_and_mirrored() -> None:
    study = optuna.create_study(direction="maximize")
    pruner = create_pruner("asha", {"min_resource": 1, "reduction_factor": 2}, epochs=8, population=2)
    trial = running(study, [0.5])
    mirror: dict[str, object] = {}
    PruningView.read(study, {trial._trial_id: mirror}).should_prune(pruner, trial)
    assert mirror == {"completed_rung_0": 0.5}
    assert study.trials[trial.number].system_attrs["completed_rung_0"] == 0.5


def test_defaults_are_sized_to_the_run() -> None:
    median = create_pruner("median", epochs=200, population=3)
    assert (median._n_startup_trials, median._n_warmup_steps) == (3, 20)
    assert create_pruner("asha", epochs=54, population=8)._min_resource == 2
    assert isinstance(create_pruner("none", epochs=5, population=2), optuna.pruners.NopPruner)
    assert set(PRUNERS) == {"median", "percentile", "asha", "none"}


@pytest.mark.parametrize(
    ("name", "settings", "fragment"),
    [("hyperband", {}, "unknown pruner 'hyperband'"), ("median", {"patience": 2}, "has no setting 'patience'"),
     ("percentile", {"percentile": 150.0}, "Percentile must be between 0 and 100")],
)  # fmt: skip
def test_bad_pruners(name: str, settings: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        create_pruner(name, settings, epochs=10, population=4)


@pytest.mark.parametrize("values", [[0.5, 0.55, 0.6], [0.5, 0.8, 0.9]])
def test_a_worker_that_reads_no_per_epoch_values_decides_the_same(tmp_path, values: list[float]) -> None:  # type: ignore[no-untyped-def]
    from lrsearch.storage import open_storage, resolve_url

    url = resolve_url(f"sqlite:///{tmp_path / 's.db'}")
    full = optuna.create_study(storage=open_storage(url, heartbeat=None), study_name="s", direction="maximize")
    completed(full, [[0.5, 0.7, 0.8], [0.6, 0.75, 0.85], [0.4, 0.65, 0.82]])
    light = optuna.load_study(study_name="s", storage=open_storage(url, heartbeat=None, per_epoch_values=False))
    assert all(not t.intermediate_values for t in light.get_trials())  # the worker's reads skip them
    pruner = create_pruner("median", {"n_warmup_steps": 0}, epochs=3, population=3)
    trial = running(full, values)
    step = {trial.last_step}
    decided = [PruningView.read(s, {trial._trial_id: {}}, step).should_prune(pruner, trial) for s in (full, light)]
    assert decided[0] == decided[1] == pruner.prune(full, trial)


@pytest.mark.parametrize("name", ["median", "percentile"])
@pytest.mark.parametrize("values", [[0.5, 0.55, 0.6], [0.5, 0.8, 0.9], [0.1, 0.2, 0.85], [0.5, float("nan"), 0.7]])
def test_the_completed_trials_alone_decide_as_the_pruner_does(storage_url: str, name: str, values: list[float]) -> None:
    from lrsearch.storage import open_storage, resolve_url

    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), heartbeat=None, per_epoch_values=False),
                                study_name="s", direction="maximize")  # fmt: skip
    completed(study, [[0.5, 0.7, 0.8], [0.6, 0.75, 0.85], [0.4, 0.65, 0.82], [0.3, 0.5]])
    pruned = study.ask()
    pruned.report(0.9, 1)
    study.tell(pruned, state=TrialState.PRUNED)  # not compared with
    pruner = create_pruner(name, {"n_warmup_steps": 0, "n_startup_trials": 4}, epochs=3, population=3)
    trial = running(study, values)
    full = optuna.load_study(study_name="s", storage=resolve_url(storage_url))  # Optuna's own reads, in full
    assert CompletedTrials.suits(pruner, study)
    view = PruningView(study, {trial._trial_id: {}}, CompletedTrials(study).trials())
    assert view.should_prune(pruner, trial) == pruner.prune(full, trial)


def test_completed_trials_are_read_once_and_looked_for_every_refresh(storage_url: str) -> None:
    from lrsearch.storage import open_storage, resolve_url

    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), heartbeat=None), study_name="s")
    completed(study, [[0.5, 0.7]])
    slow, eager = CompletedTrials(study, refresh=3600), CompletedTrials(study, refresh=0)
    assert len(slow.trials()) == len(eager.trials()) == 1
    completed(study, [[0.6, 0.8]])  # another worker's
    assert len(slow.trials()) == 1 and len(eager.trials()) == 2
    slow.add(12345, {1: 0.3})  # this worker's own, as it completes it
    assert sorted(t.intermediate_values[1] for t in slow.trials()) == [0.3, 0.5]
    assert [t.intermediate_values for t in eager.trials()] == [{1: 0.5, 2: 0.7}, {1: 0.6, 2: 0.8}]


def test_only_median_and_percentile_on_a_database_decide_by_the_completed_trials() -> None:
    in_memory = optuna.create_study()
    assert not CompletedTrials.suits(create_pruner("median", epochs=5, population=2), in_memory)
    with pytest.raises(ValueError, match="reads a study in a database"):
        CompletedTrials(in_memory)
    assert not CompletedTrials.suits(create_pruner("asha", epochs=5, population=2), in_memory)


def test_the_view_filters_its_trials_once_per_set_of_states() -> None:
    study = optuna.create_study(direction="maximize")
    completed(study, [[0.5, 0.7]])
    view = PruningView.read(study, {})
    assert view.get_trials(states=(TrialState.COMPLETE,)) is view.get_trials(states=(TrialState.COMPLETE,))
    assert len(view.get_trials()) == 1
