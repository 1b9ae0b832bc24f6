from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import datetime
import socket
import struct
import threading
import time
import warnings
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from lrsearch.errors import ConfigError, RuntimeFailure
from lrsearch.storage import (
    Heartbeat,
    TrialRecord,
    claim,
    count_trials,
    fail_stale,
    mark_started,
    one_read,
    open_storage,
    record_heartbeats,
    retrying,
    write_finished,
)
from lrsearch.urls import resolve_url


def test_an_unreachable_database_is_one_error_within_30_seconds() -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeFailure) as error:
        open_storage(resolve_url("postgresql://me:s3cret@127.0.0.1:9/nowhere"))
    assert time.monotonic() - started < 30
    assert "cannot open the study database postgresql+psycopg://me:***@127.0.0.1:9/nowhere" in str(error.value)
    assert "s3cret" not in str(error.value)


def _answering_once(code: str, message: str) -> int:
    """A port on which a server answers one connection attempt as PostgreSQL does when it refuses it (an
    ErrorResponse to the startup message): the states of a restart cannot be timed on the real server."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        connection, _ = server.accept()
        with connection, server:
            while True:
                (length,) = struct.unpack("!I", connection.recv(4))
                if struct.unpack("!I", connection.recv(length - 4)[:4])[0] not in (80877103, 80877104):
                    break
                connection.sendall(b"N")  # no SSL or GSS encryption: the startup message follows
            fields = f"SFATAL\0VFATAL\0C{code}\0M{message}\0\0".encode()
            connection.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)

    threading.Thread(target=answer, daemon=True).start()
    return server.getsockname()[1]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("57P03", "the database system is shutting down"),
        ("57P03", "the database system is starting up"),
        ("57P03", "the database system is not yet accepting connections"),
        ("57P03", "the database system is in recovery mode"),
    ],
)
def test_a_server_in_the_middle_of_a_restart_is_waited_for(code: str, message: str) -> None:
    import psycopg

    from lrsearch.storage import _restarting

    with pytest.raises(psycopg.OperationalError) as refusal:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{_answering_once(code, message)}/test", connect_timeout=5)
    assert _restarting(refusal.value)


def test_a_server_not_listening_is_waited_for_and_a_wrong_login_is_not() -> None:
    import psycopg

    from lrsearch.storage import _restarting

    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect("postgresql://postgres@127.0.0.1:1/test", connect_timeout=5)
    with pytest.raises(psycopg.OperationalError) as nobody:
        psycopg.connect("postgresql://nobody@127.0.0.1:5432/test", connect_timeout=5)
    assert _restarting(refused.value) and not _restarting(nobody.value)


def test_a_sqlite_transaction_holds_from_its_first_read(tmp_path: Path) -> None:
    # Optuna pops an enqueued trial by reading it (WAITING) and then writing RUNNING; unless the read is
    # inside the transaction, two workers can both take the same trial (it happened in CI).
    storage = open_storage(resolve_url(f"sqlite:///{tmp_path / 's.db'}"), None)
    with storage.engine.connect() as connection:
        with connection.begin():
            connection.exec_driver_sql("SELECT 1").all()
            assert connection.connection.driver_connection.in_transaction  # the write lock is held already
        assert not connection.connection.driver_connection.in_transaction


@pytest.mark.parametrize("attempt", range(3))
def test_workers_creating_a_fresh_database_at_once(storage_url: str, attempt: int) -> None:
    # Optuna creates its schema on first use; workers started together race to create it (on PostgreSQL,
    # CREATE TYPE fails in all but one; on SQLite, the second fails on the first's tables, its version row,
    # or "database is locked"). Every one must end up with a working storage.
    url = resolve_url(storage_url)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        storages = list(pool.map(lambda _: open_storage(url, None), range(6)))
    optuna.create_study(storage=storages[0], study_name="s")
    assert all(optuna.study.get_all_study_names(storage=s) == ["s"] for s in storages)


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
        TrialRecord(pruned._trial_id, {1: 0.4, 2: 0.3}, {"seed": 1}, TrialState.PRUNED),
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


# --- heartbeats, stale trials, claims, retries ------------------------------------------------------------


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


# --- a round of asks ---------------------------------------------------------------------------------------


X = {"x": optuna.distributions.FloatDistribution(0, 1)}


def test_a_round_creates_its_trials_at_once_and_numbers_them_among_other_workers(storage_url: str) -> None:
    mine = optuna.create_study(storage=open_storage(resolve_url(storage_url), None), study_name="s")
    other = optuna.load_study(study_name="s", storage=open_storage(resolve_url(storage_url), None))
    other.ask(X)  # number 0
    with one_read(mine) as round_:
        round_.new = 3
        for _ in range(3):
            trial = mine.ask(X)
            round_.remember(trial)
            other.ask(X)  # another worker, between this round's asks: its own numbers after the batch
    found = optuna.load_study(study_name="s", storage=open_storage(resolve_url(storage_url), None)).get_trials()
    assert [t.number for t in found] == list(range(7))
    assert sorted(t.number for t in found if t.params) == list(range(7))  # every parameter written
    assert [t.state for t in found] == [TrialState.RUNNING] * 7


def test_a_round_takes_enqueued_trials_first_and_leaves_no_created_trial_over(storage_url: str) -> None:
    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), None), study_name="s")
    study.enqueue_trial({"x": 0.25})
    with one_read(study) as round_:
        round_.new = 3
        first = study.ask(X)
        round_.remember(first)
        second = study.ask(X)  # creates the round's other two
        round_.remember(second)
        study.enqueue_trial({"x": 0.75})  # a retry arriving mid-round waits for the next round
        third = study.ask(X)
        round_.remember(third)
    assert first.params == {"x": 0.25} and first.number == 0 and [second.number, third.number] == [1, 2]
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING] * 3 + [TrialState.WAITING]
    assert study.ask(X).params == {"x": 0.75}  # after the round: Optuna's own ask again


def test_a_round_shows_this_workers_unwritten_trials_as_finished(storage_url: str) -> None:
    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), None), study_name="s")
    done = study.ask(X)
    done.suggest_float("x", 0, 1)
    view = copy.copy(study._storage.get_trial(done._trial_id))
    view.state, view.value, view.datetime_complete = TrialState.COMPLETE, 0.5, datetime.datetime.now()
    with one_read(study, [view]):
        assert [(t.state, t.value) for t in study.get_trials()] == [(TrialState.COMPLETE, 0.5)]
    assert study.get_trials()[0].state == TrialState.RUNNING  # the database's word once the round is over
    study.tell(done, 0.75)  # written: a view of it is not put over what the database says
    with one_read(study, [view]):
        assert [(t.state, t.value) for t in study.get_trials()] == [(TrialState.COMPLETE, 0.75)]
    assert study.get_trials()[0].value == 0.75


def test_a_round_writes_the_samplers_system_attrs_with_the_parameters(storage_url: str) -> None:
    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), None), study_name="s")
    study.enqueue_trial({"x": 0.25}, user_attrs={"k": 1})
    waiting = study.get_trials()[0]
    study._storage.set_trial_system_attr(waiting._trial_id, "shared", "old")  # as a retry's copy carries it
    with one_read(study) as round_:
        round_.new = 1
        for _ in range(2):
            trial = study.ask(X)
            study._storage.set_trial_system_attr(trial._trial_id, "shared", f"new {trial.number}")
            round_.remember(trial)
        other = optuna.load_study(study_name="s", storage=open_storage(resolve_url(storage_url), None))
        assert all("new" not in str(t.system_attrs.get("shared")) for t in other.get_trials())  # not yet
    found = optuna.load_study(study_name="s", storage=open_storage(resolve_url(storage_url), None)).get_trials()
    assert [t.system_attrs["shared"] for t in found] == ["new 0", "new 1"]  # the old one replaced, not doubled


def test_counting_trials_without_reading_them(storage_url: str) -> None:
    for storage in (open_storage(resolve_url(storage_url), None), optuna.storages.InMemoryStorage()):
        study = optuna.create_study(storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        study.ask(X).set_user_attr("repeat_of", 0)
        study.ask(X)
        running = (TrialState.RUNNING,)
        assert count_trials(study, (TrialState.COMPLETE, TrialState.RUNNING)) == 5
        assert count_trials(study, (TrialState.COMPLETE, TrialState.RUNNING), user_attr="repeat_of") == 4
        assert count_trials(study, running, user_attr="repeat_of") == 1 and count_trials(study, (TrialState.FAIL,)) == 0
        assert count_trials(study, running, user_attr="repeat_of", present=True) == 1


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")), True),
        (sqlalchemy.exc.PendingRollbackError("roll back first"), True),
        (sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("lost"), connection_invalidated=True), True),
        (sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")), False),
        (sqlalchemy.exc.ProgrammingError("SELECT", {}, Exception("syntax error")), False),
    ],
)
def test_which_errors_are_retried(error: Exception, transient: bool) -> None:
    from lrsearch.storage import (
        _transient,
    )

    wrapped = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
    wrapped.__cause__ = error
    assert _transient(error) is transient and _transient(wrapped) is transient


def test_retrying_waits_out_a_dropped_connection() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return "done"

    assert retrying(flaky) == "done" and len(calls) == 3

    def down() -> None:
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("down"))

    with pytest.raises(RuntimeFailure, match="stayed unreachable"):
        retrying(down, patience=0.1)

    def bug() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError):  # not a database outage: no retry
        retrying(bug)


def test_opening_retries_optuna_s_schema_check_cut_off_by_a_restart() -> None:
    """A worker that starts while PostgreSQL restarts can meet the shutdown inside Optuna's schema check,
    which Optuna re-raises as StorageInternalError: still a restart, waited out (seen in the restart test)."""
    import psycopg
    import sqlalchemy

    from lrsearch.storage import _created

    calls = []

    def connect() -> str:
        calls.append(1)
        if len(calls) == 1:
            try:
                raise sqlalchemy.exc.OperationalError("COMMIT", {}, psycopg.errors.AdminShutdown("terminating"))
            except sqlalchemy.exc.OperationalError as exc:
                raise optuna.exceptions.StorageInternalError("during the commit") from exc
        return "opened"

    assert _created(connect, patience=10) == "opened" and len(calls) == 2  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["memory", "sqlite", "postgresql"])
def test_started_trials_name_their_worker_and_beat_at_once(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    beats = Heartbeat(interval=5, grace=60)
    if where == "memory":
        storage: optuna.storages.BaseStorage = optuna.storages.InMemoryStorage()
    else:
        url = f"sqlite:///{tmp_path / 's.db'}" if where == "sqlite" else request.getfixturevalue("postgres_url")
        storage = open_storage(resolve_url(url), beats)
    study = optuna.create_study(storage=storage)
    trials = [study.ask() for _ in range(3)]
    mark_started(storage, [t._trial_id for t in trials[:2]], {"worker": "host:1", "device": "cpu"})
    found = {t.number: t for t in study.get_trials()}
    assert [found[t.number].user_attrs for t in trials] == [{"worker": "host:1", "device": "cpu"}] * 2 + [{}]
    assert all(t.state == TrialState.RUNNING for t in found.values())
    if where != "memory":  # the first heartbeat came with them: none of them is stale, the unmarked one is not beating
        with storage.engine.connect() as connection:  # type: ignore[attr-defined]
            beating = {row[0] for row in connection.exec_driver_sql("SELECT trial_id FROM trial_heartbeats")}
        assert beating == {t._trial_id for t in trials[:2]}


def test_a_database_at_another_schema_version_is_one_line(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 's.db'}"
    open_storage(resolve_url(url), None)
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'v3.0.0.d'")
        connection.commit()
    with pytest.raises(
        RuntimeFailure, match=r"has a schema this Optuna does not read \(lrsearch writes schema v3\.2\.0\.a\)"
    ):
        open_storage(resolve_url(url), None)
