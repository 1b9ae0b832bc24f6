"""What lrsearch relies on in Optuna beyond its documented API, each checked with a message that says what
moved: the release pinned in pyproject.toml passes; a newer one that fails here must not be allowed until
lrsearch is changed."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import TrialState

from lrsearch.search import tpe
from lrsearch.storage.tables import SCHEMA_VERSION as SCHEMA


def test_the_database_schema_is_the_one_lrsearch_writes() -> None:
    storage = RDBStorage("sqlite:///:memory:")
    assert storage.get_current_version() == SCHEMA, (
        f"Optuna's schema is now {storage.get_current_version()}; lrsearch writes trials, values and attributes "
        f"into {SCHEMA}'s tables itself (lrsearch/storage/tables.py): check it"
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
    """tables.create_trials numbers a round's trials as Optuna does: the count of the study's trials."""
    storage = RDBStorage("sqlite:///:memory:")
    first, second = (optuna.create_study(storage=storage, study_name=n) for n in ("a", "b"))
    numbers = [first.ask().number, second.ask().number, first.ask().number, second.ask().number, first.ask().number]
    assert numbers == [0, 0, 1, 1, 2], "Optuna numbers trials differently now: tables.create_trials must follow"


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


def test_a_storage_that_is_not_rdb_is_used_as_given(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lrsearch.storage.opening import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", None)
    assert optuna.create_study(storage=storage)._storage is storage, (
        "Optuna now wraps a BaseStorage it is given: lrsearch's StudyStorage (its rounds and its view) is bypassed"
    )


class _Recording(optuna.storages.InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __getattribute__(self, name: str):  # type: ignore[no-untyped-def]
        if name in ("get_all_trials", "set_trial_state_values", "create_new_trial", "get_trial", "set_trial_param"):
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)


def test_an_ask_goes_through_the_storage_calls_a_round_takes_over() -> None:
    """StudyStorage.asking stands in for these calls of Optuna's ask, in this order: it hands out the round's
    trials from create_new_trial (once the enqueued ones, read with get_all_trials and taken with
    set_trial_state_values, are gone), serves get_trial from them, and buffers set_trial_param."""
    storage = _Recording()
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"x": 0.5})
    storage.calls.clear()
    study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    taken = [c for c in storage.calls if c != "get_all_trials"]
    assert storage.calls[0] == "get_all_trials" and taken[:2] == ["set_trial_state_values", "get_trial"], storage.calls
    assert "set_trial_param" in taken and "create_new_trial" not in taken, storage.calls
    storage.calls.clear()
    study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    created = [c for c in storage.calls if c != "get_all_trials"]
    assert created[:2] == ["create_new_trial", "get_trial"] and "set_trial_param" in created, storage.calls


def test_optunas_tpe_reads_the_running_values_lrsearch_shares() -> None:
    """search.tpe shares a running trial's relatively sampled values where Optuna's TPE reads them (so a
    worker running Optuna's TPE on the same study counts them as lrsearch's do, and back)."""
    from optuna.samplers._tpe import sampler as optunas_tpe

    assert optunas_tpe._RELATIVE_PARAMS_KEY == tpe.RELATIVE_PARAMS_KEY, "Optuna's TPE shares running values elsewhere"
    assert optunas_tpe._SYSTEM_ATTR_MAX_LENGTH == tpe._ATTR_LENGTH
