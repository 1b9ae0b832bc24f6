from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from lrsearch.errors import ConfigError
from lrsearch.search.pruning import PRUNERS, PruningView, create_pruner


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
    view = PruningView(study, {trial._trial_id: {}})
    assert view.should_prune(pruner, trial) == pruner.prune(study, trial)


def test_successive_halving_rungs_are_stored_and_mirrored() -> None:
    study = optuna.create_study(direction="maximize")
    pruner = create_pruner("asha", {"min_resource": 1, "reduction_factor": 2}, epochs=8, population=2)
    trial = running(study, [0.5])
    mirror: dict[str, object] = {}
    PruningView(study, {trial._trial_id: mirror}).should_prune(pruner, trial)
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
    decided = [PruningView(s, {trial._trial_id: {}}, step).should_prune(pruner, trial) for s in (full, light)]
    assert decided[0] == decided[1] == pruner.prune(full, trial)
