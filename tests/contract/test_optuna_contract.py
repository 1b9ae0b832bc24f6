"""What lrsearch relies on in Optuna beyond its documented API, each checked with a message that says what
moved: the release pinned in pyproject.toml passes; a newer one that fails here must not be allowed until
lrsearch is changed (issue 11 removes most of these)."""

from __future__ import annotations

import inspect

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import TrialState

from lrsearch.storage import SCHEMA_VERSION as SCHEMA


def test_the_database_schema_is_the_one_lrsearch_writes() -> None:
    storage = RDBStorage("sqlite:///:memory:")
    assert storage.get_current_version() == SCHEMA, (
        f"Optuna's schema is now {storage.get_current_version()}; lrsearch writes trials, values and attributes "
        f"into {SCHEMA}'s tables itself (storage.write_finished, _create_trials, rdb_reader): check them"
    )
    tables = {
        m.__tablename__
        for m in (
            models.TrialModel,
            models.TrialParamModel,
            models.TrialValueModel,
            models.TrialIntermediateValueModel,
            models.TrialUserAttributeModel,
            models.TrialSystemAttributeModel,
            models.TrialHeartbeatModel,
        )
    }
    assert tables == {
        "trials",
        "trial_params",
        "trial_values",
        "trial_intermediate_values",
        "trial_user_attributes",
        "trial_system_attributes",
        "trial_heartbeats",
    }, "Optuna renamed a table lrsearch writes"


def test_trials_are_numbered_by_count_within_their_study() -> None:
    """storage._create_trials numbers a round's trials as Optuna does: the count of the study's trials."""
    storage = RDBStorage("sqlite:///:memory:")
    first, second = (optuna.create_study(storage=storage, study_name=n) for n in ("a", "b"))
    numbers = [first.ask().number, second.ask().number, first.ask().number, second.ask().number, first.ask().number]
    assert numbers == [0, 0, 1, 1, 2], "Optuna numbers trials differently now: storage._create_trials must follow"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # heartbeats are, in Optuna 5
def test_the_retry_callback_records_what_lrsearch_reads() -> None:
    storage = RDBStorage("sqlite:///:memory:", heartbeat_interval=60, grace_period=120)
    study = optuna.create_study(storage=storage)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(study, storage.get_trial(trial._trial_id))
    (retry,) = study.get_trials(states=(TrialState.WAITING,))
    assert retry.system_attrs.get("failed_trial") == trial.number and retry.params == trial.params, (
        "RetryHeartbeatStaleTrialCallback no longer marks a retry with failed_trial: the worker tests, reap "
        "and the report's retry accounting read it"
    )
    assert retry.system_attrs.get("retry_history") == [trial.number]


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (optuna.storages._CachedStorage, "_read_trials_from_remote_storage"),
        (optuna.storages._CachedStorage, "_add_trials_to_cache"),
        (optuna.storages._CachedStorage, "create_new_trial"),
        (optuna.storages._CachedStorage, "set_trial_param"),
        (optuna.storages._CachedStorage, "set_trial_system_attr"),
        (optuna.storages._CachedStorage, "get_trial"),
        (optuna.Study, "_pop_waiting_trial_id"),
        (RDBStorage, "_get_trials"),
        (optuna.Study, "_get_trials"),
    ],
)
def test_the_private_methods_lrsearch_still_uses_exist(owner: type, name: str) -> None:
    """storage.one_read, rdb_reader and search.tpe call or stand in for these (issue 11 retires them)."""
    assert callable(getattr(owner, name, None)), f"{owner.__name__}.{name} is gone: storage.one_read / rdb_reader break"
    if (owner, name) == (RDBStorage, "_get_trials"):
        parameters = list(inspect.signature(RDBStorage._get_trials).parameters)
        assert parameters == ["self", "study_id", "states", "included_trial_ids", "trial_id_greater_than"], parameters
