from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import struct
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from lrsearch.errors import RuntimeFailure
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import resolve_url


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

    from lrsearch.storage.retries import restarting as _restarting

    with pytest.raises(psycopg.OperationalError) as refusal:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{_answering_once(code, message)}/test", connect_timeout=5)
    assert _restarting(refusal.value)


def test_a_server_not_listening_is_waited_for_and_a_wrong_login_is_not() -> None:
    import psycopg

    from lrsearch.storage.retries import restarting as _restarting

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


def test_opening_retries_optuna_s_schema_check_cut_off_by_a_restart() -> None:
    """A worker that starts while PostgreSQL restarts can meet the shutdown inside Optuna's schema check,
    which Optuna re-raises as StorageInternalError: still a restart, waited out (seen in the restart test)."""
    import psycopg

    from lrsearch.storage.opening import _created

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
