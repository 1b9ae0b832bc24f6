from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch.errors import ConfigError
from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.opening import open_storage
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.urls import resolve_url
from lrsearch.storage.workers import (
    claim,
    count_trials,
    fail_stale,
    record_heartbeats,
    write_finished,
    write_steps,
)

X = {"x": optuna.distributions.FloatDistribution(0, 1)}


def test_finishing_in_bulk_lands_as_the_public_api_reads_it(tmp_path: Path, storage_url: str) -> None:
    storage = open_storage(resolve_url(storage_url), heartbeat=None)
    study = optuna.create_study(storage=storage, direction="maximize")
    done, pruned, failed, taken = (study.ask() for _ in range(4))
    study.tell(taken, state=TrialState.FAIL)  # another worker ended it meanwhile
    records = [
        TrialRecord(
            done._trial_id,
            {1: 0.5, 2: 0.7},
            {"seed": 0, "curve": [0.1, 0.2]},
            TrialState.COMPLETE,
            0.7,
            {"artifacts:a": '{"artifact_id": "a"}'},
        ),
        # A diverged member's last values have no finite form: stored without one, by kind.
        TrialRecord(pruned._trial_id, {1: 0.4, 2: math.nan, 3: math.inf, 4: -math.inf, 5: 0.3}, {}, TrialState.PRUNED),
        TrialRecord(failed._trial_id, {}, {"error": "x"}, TrialState.FAIL),
        TrialRecord(taken._trial_id, {1: 0.9}, {"seed": 3}, TrialState.COMPLETE, 0.9),
    ]
    ended = write_finished(study._storage, records)
    assert sorted(ended) == sorted([done._trial_id, pruned._trial_id, failed._trial_id])
    trials = {t.number: t for t in study.get_trials()}
    assert trials[done.number].state == TrialState.COMPLETE and trials[done.number].value == pytest.approx(0.7)
    assert trials[done.number].intermediate_values == {1: 0.5, 2: pytest.approx(0.7)}
    assert trials[done.number].user_attrs == {"seed": 0, "curve": [0.1, 0.2]}
    assert trials[done.number].system_attrs == {"artifacts:a": '{"artifact_id": "a"}'}
    assert trials[done.number].datetime_complete is not None
    assert trials[pruned.number].state == TrialState.PRUNED and trials[pruned.number].value == pytest.approx(0.3)
    steps = trials[pruned.number].intermediate_values
    assert steps.keys() == {1, 2, 3, 4, 5} and math.isnan(steps[2]) and (steps[3], steps[4]) == (math.inf, -math.inf)
    assert (steps[1], steps[5]) == (pytest.approx(0.4), pytest.approx(0.3))
    assert trials[failed.number].state == TrialState.FAIL and trials[failed.number].value is None
    assert trials[taken.number].state == TrialState.FAIL and trials[taken.number].user_attrs == {}  # untouched


def test_finishing_keeps_what_a_trial_was_enqueued_with(tmp_path: Path) -> None:
    study = optuna.create_study(storage=open_storage(resolve_url(f"sqlite:///{tmp_path / 's.db'}"), heartbeat=None))
    study.enqueue_trial({}, user_attrs={"repeat_of": 3, "seed": 7})
    trial = study.ask()
    write_finished(
        study._storage, [TrialRecord(trial._trial_id, {1: 0.5}, {"seed": 7, "epochs": 1}, TrialState.COMPLETE, 0.5)]
    )
    assert study.trials[0].user_attrs == {"repeat_of": 3, "seed": 7, "epochs": 1}


def test_finishing_through_a_storage_without_a_database() -> None:
    study = optuna.create_study()
    trial = study.ask()
    record = TrialRecord(trial._trial_id, {1: 0.25}, {"k": "v"}, TrialState.PRUNED, system_attrs={"s": 1})
    assert write_finished(study._storage, [record])
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.intermediate_values == {1: 0.25} and frozen.user_attrs == {"k": "v"} and frozen.value == 0.25
    assert frozen.system_attrs == {"s": 1}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"interval": 0}, r"heartbeat interval must be an integer in \[1, 3600\] but got 0"),
        ({"interval": 10, "grace": 10}, "must be longer than the heartbeat"),
        ({"max_retry": -1}, r"max_retry must be an integer in \[0, 100\] but got -1"),
    ],
)
def test_heartbeat_settings(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Heartbeat(**kwargs)


def test_silent_trials_fail_and_come_back(storage_url: str) -> None:
    storage = open_storage(resolve_url(storage_url), Heartbeat(interval=1, grace=2))
    study = optuna.create_study(storage=storage, study_name="s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns that asking outside optimize() needs its own heartbeat
        beating, silent, never = (study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}) for _ in range(3))
    record_heartbeats(study._storage, [beating._trial_id, silent._trial_id])
    assert fail_stale(study) == []  # nobody is stale yet
    time.sleep(3.2)  # grace 2 s, plus 1 s: SQLite's clock (CURRENT_TIMESTAMP) has whole seconds
    record_heartbeats(study._storage, [beating._trial_id])
    assert fail_stale(study) == [silent.number, never.number]  # never beat at all: started too long ago
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[beating.number] == "RUNNING" and states[silent.number] == states[never.number] == "FAIL"
    retries = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.system_attrs["failed_trial"] for t in retries) == [silent.number, never.number]
    assert all(t.params["x"] == study.trials[t.system_attrs["failed_trial"]].params["x"] for t in retries)


def test_all_running_fails_every_running_trial(storage_url: str) -> None:
    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), heartbeat=None), study_name="s")
    trials = [study.ask() for _ in range(2)]
    assert fail_stale(study, all_running=True) == [t.number for t in trials]
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 2


def test_a_claim_is_won_once(storage_url: str) -> None:
    first = optuna.create_study(storage=open_storage(resolve_url(storage_url)), study_name="s")
    second = optuna.load_study(study_name="s", storage=open_storage(resolve_url(storage_url)))  # another worker
    assert [claim(first, "k"), claim(second, "k"), claim(first, "k")] == [True, False, False]
    assert claim(second, "other") is True


def test_counting_trials_without_reading_them(storage_url: str) -> None:
    for storage in (open_storage(resolve_url(storage_url), None), optuna.storages.InMemoryStorage()):
        study = optuna.create_study(storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        study.ask(X).set_user_attr("repeat_of", 0)
        study.ask(X)
        running = (TrialState.RUNNING,)
        assert count_trials(study, (TrialState.COMPLETE, TrialState.RUNNING)) == 5
        assert count_trials(study, (TrialState.COMPLETE, TrialState.RUNNING), user_attrs=("repeat_of",)) == 4
        assert (
            count_trials(study, running, user_attrs=("repeat_of",)) == 1
            and count_trials(study, (TrialState.FAIL,)) == 0
        )
        assert count_trials(study, running, user_attrs=("repeat_of",), present=True) == 1
        # Several attrs: trials with any of them, or with none.
        study.ask(X).set_user_attr("pbt_member", True)
        both = ("repeat_of", "pbt_member")
        assert count_trials(study, running, user_attrs=both, present=True) == 2
        assert count_trials(study, running, user_attrs=both) == 1


def test_running_trials_values_are_written_once_each_and_only_while_they_run(storage_url: str) -> None:
    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), heartbeat=None))
    running, ended = study.ask(), study.ask()
    study.tell(ended, 0.5)
    write_steps(study._storage, {running._trial_id: {1: 0.5, 2: math.nan}, ended._trial_id: {1: 0.1}})
    write_steps(study._storage, {running._trial_id: {2: 0.9, 3: math.inf}})  # step 2 again: the first stays
    # Its end may carry every value again (an interrupted trial's): those written stay as they are.
    everything = {1: 0.5, 2: math.nan, 3: math.inf, 4: -math.inf}
    assert write_finished(study._storage, [TrialRecord(running._trial_id, everything, {}, TrialState.FAIL)])
    steps = study.trials[0].intermediate_values
    assert steps.keys() == {1, 2, 3, 4} and steps[1] == 0.5 and math.isnan(steps[2])
    assert (steps[3], steps[4]) == (math.inf, -math.inf) and study.trials[1].intermediate_values == {}
