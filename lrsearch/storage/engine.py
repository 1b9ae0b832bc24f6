"""Engine settings for a study database: SQLite's locking and journal, PostgreSQL's pool, timeouts and compression."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.engine import make_url

from lrsearch.storage.urls import sqlite_file

__all__ = ["CONNECT_TIMEOUT_S", "engine_kwargs", "lz4_sessions", "one_creator", "sqlite_transactions"]

CONNECT_TIMEOUT_S = 10


def _sqlite_connection(database: str) -> sqlite3.Connection:
    # A few local processes share one file: wait up to 30 s for the writer's lock instead of failing. WAL
    # lets them read while one writes, and with synchronous=NORMAL a commit is one write, not two fsyncs
    # (a killed process loses nothing; only a power cut can lose the last commits).
    # isolation_level=None: the driver begins no transactions of its own (it would begin one only at the
    # first write, so a read and the write after it would not be atomic); sqlite_transactions begins them.
    connection = sqlite3.connect(database, timeout=30, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def sqlite_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """Every transaction on a SQLite file takes the write lock when it begins (BEGIN IMMEDIATE, waiting up
    to the busy timeout): with the driver's own transactions, two workers could both read an enqueued trial
    as WAITING and both take it (Optuna's check-then-set relies on SELECT ... FOR UPDATE, which SQLite
    ignores)."""
    sqlalchemy.event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))


def lz4_sessions(engine: sqlalchemy.engine.Engine) -> None:
    """PostgreSQL: the engine's sessions compress what they store out of line (a trial's per-epoch lists,
    kilobytes of JSON each) with lz4 where the server has it (PostgreSQL 14 and later, built with it), not
    pglz: a population's end writes hundreds of them at once, and pglz took 0.9 s of the server's time for
    6,000 such lists where lz4 takes 0.25, and stores them smaller. Readers need nothing: the server
    decompresses either. The connections the engine made before (Optuna's schema checks) are let go, to be
    made again with it."""
    sqlalchemy.event.listen(engine, "connect", _lz4_where_supported)
    engine.dispose()


def _lz4_where_supported(connection: Any, record: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")
        if cursor.fetchone() is not None:
            cursor.execute("SET default_toast_compression = lz4")
    connection.commit()


def engine_kwargs(url: str, *, ping: bool = True) -> dict[str, Any]:
    """The engine's settings; with ``ping``, connections are checked before each use, so that one a restarted
    server or a firewall dropped is noticed before a call, not in it. A worker, which retries every call,
    goes without: the check is a round trip per call (with eight workers on a busy machine, longer than
    most of the queries), and a dropped connection fails one call, which SQLAlchemy takes as a sign to
    replace the whole pool."""
    if make_url(url).get_backend_name() == "sqlite":
        database = sqlite_file(url)
        return {"creator": functools.partial(_sqlite_connection, database)} if database else {}
    kwargs: dict[str, Any] = {"pool_pre_ping": ping, "pool_size": 2, "max_overflow": 4, "pool_recycle": 1800}
    kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return kwargs


@contextlib.contextmanager
def one_creator(database: str | None) -> Iterator[None]:
    """Processes that open one SQLite file at once take turns while Optuna creates or checks its schema
    (not atomic there: the second would fail on the first's tables, or on its version row). A lock on the
    folder: one on the file itself would be dropped with SQLite's own when the descriptor closes."""
    if database is None:
        yield
        return
    folder = os.open(Path(database).resolve().parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)
