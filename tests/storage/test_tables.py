from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.dialects.postgresql import psycopg

from lrsearch.schema import SETTLED
from lrsearch.storage import tables
from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.opening import open_storage
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.retries import retrying
from lrsearch.storage.study_storage import StudyStorage
from lrsearch.storage.tables import (
    completed_curves,
    create_trials,
    read_trials,
    record_heartbeats,
    write_finished,
    write_round,
)
from lrsearch.storage.urls import resolve_url
from tests.conftest import POSTGRES_ADMIN


@pytest.fixture
def populated(storage_url: str) -> tuple[RDBStorage, int]:
    storage = open_storage(resolve_url(storage_url), heartbeat=None)
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"])
    dists = {
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "n": IntDistribution(1, 9),
        "schedule": CategoricalDistribution(["cosine", "4,6", None]),
    }
    for i, state in enumerate(
        [
            TrialState.COMPLETE,
            TrialState.PRUNED,
            TrialState.FAIL,
            TrialState.RUNNING,
            TrialState.WAITING,
            TrialState.COMPLETE,
        ]
    ):
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                params={"lr": 10 ** -(i % 4), "n": i + 1, "schedule": ["cosine", "4,6", None][i % 3]}
                if state != TrialState.WAITING
                else {},
                distributions=dists if state != TrialState.WAITING else {},
                values=[0.5 + i / 10, math.inf if i == 5 else -i] if state == TrialState.COMPLETE else None,
                intermediate_values={1: 0.1 * i, 2: math.nan, 3: -math.inf, 4: math.inf}
                if state != TrialState.WAITING
                else {},
                user_attrs={"seed": i, "curve": [0.1, 0.2], "note": None, "lr_history": [0.1, 0.05], "a_history_x": 1},
                system_attrs={"fixed_params": {"lr": 0.1}} if i == 4 else {"k": [i]},
            )
        )
    return storage.backend, study._study_id


@pytest.mark.parametrize(
    ("states", "included", "greater_than"),
    [
        (None, set(), -1),
        ((TrialState.COMPLETE, TrialState.PRUNED), set(), -1),
        (None, {1, 2}, 3),
        (None, set(), 2),
        ((TrialState.RUNNING,), {4}, 4),
    ],
)
def test_reads_what_optunas_reader_reads(populated: tuple[RDBStorage, int], states, included, greater_than) -> None:  # type: ignore[no-untyped-def]
    storage, study_id = populated
    ours = read_trials(storage, study_id, states, included, greater_than)
    theirs = RDBStorage._get_trials(storage, study_id, states, included, greater_than)
    assert [t.number for t in ours] == [t.number for t in theirs] and ours
    for a, b in zip(ours, theirs, strict=True):
        assert (a.state, a.values, a.params, a.distributions, a.user_attrs, a.system_attrs, a._trial_id) == (
            b.state,
            b.values,
            b.params,
            b.distributions,
            b.user_attrs,
            b.system_attrs,
            b._trial_id,
        )
        assert (a.datetime_start, a.datetime_complete) == (b.datetime_start, b.datetime_complete)
        assert a.intermediate_values.keys() == b.intermediate_values.keys()
        for step, value in a.intermediate_values.items():
            assert value == b.intermediate_values[step] or (
                math.isnan(value) and math.isnan(b.intermediate_values[step])
            )


def test_without_steps_a_worker_skips_the_per_epoch_values_and_lists(populated: tuple[RDBStorage, int]) -> None:
    storage, study_id = populated
    light = read_trials(storage, study_id, None, set(), -1, with_steps=False)
    full = read_trials(storage, study_id, None, set(), -1)
    for a, b in zip(light, full, strict=True):
        assert a.intermediate_values == {} and "lr_history" in b.user_attrs
        assert a.user_attrs == {k: v for k, v in b.user_attrs.items() if k != "lr_history"}  # a_history_x stays
        assert (a.params, a.values, a.system_attrs) == (b.params, b.values, b.system_attrs)


def test_a_missing_study_raises_as_optunas_does(populated: tuple[RDBStorage, int]) -> None:
    storage, _ = populated
    with pytest.raises(KeyError):
        read_trials(storage, 999, None, set(), -1)


def test_open_storage_opens_lrsearch_s_storage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    storage = open_storage(resolve_url(f"sqlite:///{tmp_path / 's.db'}"))
    assert isinstance(storage, StudyStorage) and storage.with_steps
    assert not open_storage(resolve_url(f"sqlite:///{tmp_path / 's.db'}"), per_epoch_values=False).with_steps


def test_the_reader_builds_a_running_trial_again_only_when_it_changed(storage_url: str) -> None:
    storage = open_storage(resolve_url(storage_url), heartbeat=None, per_epoch_values=False)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    memo: dict = {}

    def running() -> FrozenTrial:
        (found,) = read_trials(
            storage.backend, study._study_id, None, {trial._trial_id}, -1, with_steps=False, running=memo
        )
        return found

    running()  # the first read stamps nothing (an unmarked trial is read again once)
    first = running()
    assert running() is first  # unchanged: the one built before
    for change in (
        lambda: trial.suggest_float("x", 0, 1),
        lambda: storage.set_trial_system_attr(trial._trial_id, "k", 1),
        lambda: trial.set_user_attr("seed", 3),
    ):
        before = running()
        change()
        after = running()
        assert after is not before and after is running()
    assert (after.params, after.system_attrs, after.user_attrs) == ({"x": trial.params["x"]}, {"k": 1}, {"seed": 3})
    trial.set_user_attr("lr_history", [0.1])  # a per-epoch list this reader skips: nothing it reads changed
    assert running() is after
    study.tell(trial, 0.5)
    ended = running()
    assert ended.state == TrialState.COMPLETE and ended.value == 0.5
    assert memo == {}  # a finished trial is not kept


def test_a_settled_running_trial_is_not_read_again_until_it_ends(storage_url: str) -> None:
    storage = open_storage(resolve_url(storage_url), heartbeat=None, per_epoch_values=False)
    study = optuna.create_study(storage=storage, study_name="s")
    settled, plain = study.ask(), study.ask()
    for trial in (settled, plain):
        trial.suggest_float("x", 0, 1)
    storage.set_trial_system_attr(settled._trial_id, SETTLED, False)  # its round's writes to come
    memo: dict = {}
    read = lambda: {
        t._trial_id: t for t in read_trials(storage.backend, study._study_id, None, set(), -1, running=memo)
    }
    settling = read()[settled._trial_id]
    assert read()[settled._trial_id] is not settling  # read again each time, stamps or not
    storage.set_trial_system_attr(settled._trial_id, SETTLED, True)
    first = read()
    assert first[settled._trial_id].system_attrs == {SETTLED: True}
    for trial in (settled, plain):
        storage.set_trial_system_attr(trial._trial_id, "k", 1)  # what a settled trial's writer never does
    second = read()
    assert settled._trial_id not in second  # not looked at again: the caller holds it
    assert memo[settled._trial_id][1] is first[settled._trial_id]
    assert second[plain._trial_id] is not first[plain._trial_id] and second[plain._trial_id].system_attrs == {"k": 1}
    study.tell(settled, 0.5)
    ended = read()[settled._trial_id]
    assert ended.state == TrialState.COMPLETE and ended.system_attrs == {SETTLED: True, "k": 1}
    assert settled._trial_id not in memo


def test_kept_running_trials_are_what_optunas_reader_reads(storage_url: str) -> None:
    storage = open_storage(resolve_url(storage_url), heartbeat=None)
    study = optuna.create_study(storage=storage, study_name="s")
    for i in range(4):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.report(0.1 * i, 1)
        trial.set_user_attr("i", i)
    memo: dict = {}
    for _ in range(2):  # the second read keeps every running trial
        ours = read_trials(storage.backend, study._study_id, None, set(), -1, running=memo)
    assert len(memo) == 4
    theirs = RDBStorage._get_trials(storage.backend, study._study_id, None, set(), -1)
    assert [(t.number, t.params, t.user_attrs, t.intermediate_values) for t in ours] == [
        (t.number, t.params, t.user_attrs, t.intermediate_values) for t in theirs
    ]


def test_completed_curves_come_as_arrays_with_what_is_not_finite(populated: tuple[RDBStorage, int]) -> None:
    storage, study_id = populated
    completed = [
        t for t in RDBStorage._get_trials(storage, study_id, None, set(), -1) if t.state == TrialState.COMPLETE
    ]
    trials, steps, values = completed_curves(storage, [t._trial_id for t in completed])
    found = {(int(t), int(s)): float(v) for t, s, v in zip(trials, steps, values, strict=True)}
    expected = {(t._trial_id, s): v for t in completed for s, v in t.intermediate_values.items()}
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert found[key] == value or (math.isnan(value) and math.isnan(found[key]))
    assert {math.inf, -math.inf} <= set(found.values()) and any(
        math.isnan(v) for v in found.values()
    )  # no value stored
    no_trials, _, _ = completed_curves(storage, [])
    assert no_trials.size == 0


def test_its_own_sql_survives_connections_the_server_dropped(postgres_url: str) -> None:
    """The driver's own calls (pipelines, COPY, arrays) fail over a lost connection as SQLAlchemy's own do:
    retried on a fresh one, not raised as a bug."""
    import psycopg

    storage = open_storage(resolve_url(postgres_url), Heartbeat(), per_epoch_values=False, retried=True)
    assert isinstance(storage, StudyStorage)
    backend, study_id = storage.backend, storage.create_new_study([StudyDirection.MAXIMIZE], "s")
    database = postgres_url.rsplit("/", 1)[1]

    def drop_every_connection() -> None:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )

    calls = [
        lambda: create_trials(backend, study_id, 2, {"worker": "w"}, beating=True, settling=True),
        lambda: record_heartbeats(backend, [1, 2]),
        lambda: write_round(backend, [(1, "x", 0.5, FloatDistribution(0, 1))], {1: {"k": 1}}, {}, [1]),
        lambda: write_finished(backend, [TrialRecord(1, {1: 0.5, 2: math.nan}, {"k": [1]}, TrialState.COMPLETE, 0.5)]),
        lambda: completed_curves(backend, [1]),
        lambda: read_trials(backend, study_id, None, set(), -1, with_steps=False),
    ]
    for call in calls:
        read_trials(backend, study_id, None, set(), -1)  # a connection in the pool
        drop_every_connection()
        retrying(call)
    first, second = read_trials(backend, study_id, None, set(), -1)
    assert first.state == TrialState.COMPLETE and first.params == {"x": 0.5} and 2 in first.intermediate_values
    assert second.state == TrialState.RUNNING


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
def test_its_arrays_carry_any_text_and_number(storage_url: str) -> None:
    """Arrays go to PostgreSQL in their text form (quotes, backslashes, braces, commas, NULL as a word)."""
    storage = open_storage(resolve_url(storage_url), Heartbeat(), per_epoch_values=False, retried=True)
    assert isinstance(storage, StudyStorage)
    backend, study_id = storage.backend, storage.create_new_study([StudyDirection.MAXIMIZE], "s")
    tricky = {'a"b': 'c\\d "e"', "{x,y}": ["NULL", "", " sp ", "é ü", {"k": 'q"r'}], "n": 1e-300}
    (trial,) = create_trials(backend, study_id, 1, tricky, beating=False)
    low = FloatDistribution(1e-300, 1.0, log=True)
    write_round(backend, [(trial._trial_id, 'p"{,}', 1e-300, low)], {trial._trial_id: tricky}, {}, [])
    (read,) = read_trials(backend, study_id, None, set(), -1)
    assert read.user_attrs == tricky and read.system_attrs == tricky and read.params == {'p"{,}': 1e-300}


def test_ids_go_to_postgresql_as_one_untyped_array() -> None:
    # Typed VARCHAR and cast in the statement, the array's text is parsed again for every row compared with
    # it (a read of a thousand trials took 40 ms instead of 2); untyped, the server takes it as the array once.
    compiled = tables._among(models.TrialModel, [3, 1, 2], "postgresql").compile(dialect=psycopg.dialect())
    assert str(compiled) == "trials.trial_id = ANY (CAST(%(ids_1)s AS INTEGER[]))"
    assert compiled.params == {"ids_1": "{3,1,2}"}
