"""Where studies live: opening the database (``urls`` says which), engine settings, and what populations
and many workers need from it: bulk writes, heartbeats, failing the trials of vanished workers, claims and
retries. Passwords are never printed.

A finished trial's per-epoch values and attributes go to the database in one transaction (the public API
takes one transaction per value: 2-3 ms each, minutes for a blobs population), and intermediate values
are written when a trial ends rather than every epoch: Optuna re-reads every running trial, values and
all, on each ask and each prune check, so values stored for running trials would slow every later ask.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import enum
import fcntl
import functools
import json
import logging
import os
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from lrsearch import rdb_reader
from lrsearch.checks import integer
from lrsearch.errors import ConfigError, RuntimeFailure, one_line
from lrsearch.schema import FAILURE_ATTRS
from lrsearch.urls import GRPC, grpc_address, masked, redact, sqlite_file

__all__ = [
    "SCHEMA_VERSION",
    "AskRound",
    "Heartbeat",
    "TrialRecord",
    "claim",
    "count_trials",
    "database",
    "fail_stale",
    "mark_started",
    "one_read",
    "open_storage",
    "record_heartbeats",
    "retrying",
    "write_finished",
]

T = TypeVar("T")

#: Optuna's database schema that lrsearch's own writes (COPY, bulk finishes) and reader were written for; a
#: database at another version is refused (tests/contract/test_optuna_contract.py checks Optuna's is this).
SCHEMA_VERSION = "v3.2.0.a"
_CONNECT_TIMEOUT_S = 10
#: How long a worker that starts while the server restarts keeps trying to connect (well under 30 s).
_RESTART_PATIENCE_S = 10.0


def _sqlite_connection(database: str) -> sqlite3.Connection:
    # A few local processes share one file: wait up to 30 s for the writer's lock instead of failing. WAL
    # lets them read while one writes, and with synchronous=NORMAL a commit is one write, not two fsyncs
    # (a killed process loses nothing; only a power cut can lose the last commits).
    # isolation_level=None: the driver begins no transactions of its own (it would begin one only at the
    # first write, so a read and the write after it would not be atomic); _sqlite_transactions begins them.
    connection = sqlite3.connect(database, timeout=30, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _sqlite_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """Every transaction on a SQLite file takes the write lock when it begins (BEGIN IMMEDIATE, waiting up
    to the busy timeout): with the driver's own transactions, two workers could both read an enqueued trial
    as WAITING and both take it (Optuna's check-then-set relies on SELECT ... FOR UPDATE, which SQLite
    ignores)."""
    sqlalchemy.event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))


def _engine_kwargs(url: str) -> dict[str, Any]:
    if make_url(url).get_backend_name() == "sqlite":
        database = sqlite_file(url)
        return {"creator": functools.partial(_sqlite_connection, database)} if database else {}
    # Connections dropped by a restarted server or a firewall are noticed before use, not mid-trial.
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 4, "pool_recycle": 1800}
    kwargs["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    return kwargs


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """Every running trial's heartbeat is recorded each ``interval`` seconds; one silent for ``grace``
    seconds is failed (its worker is gone) and re-enqueued with its parameters up to ``max_retry`` times."""

    interval: int = 30
    grace: int = 120
    max_retry: int = 3

    def __post_init__(self) -> None:
        integer("heartbeat interval", self.interval, 1, 3600)
        integer("grace period", self.grace, 2, 7 * 24 * 3600)
        integer("max_retry", self.max_retry, 0, 100)
        if self.grace <= self.interval:
            raise ConfigError(
                f"the grace period ({self.grace} s) must be longer than the heartbeat interval ({self.interval} s)"
            )

    def retry_callback(self) -> optuna.storages.RetryHeartbeatStaleTrialCallback:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _Retry(max_retry=self.max_retry)


class _Retry(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a failed trial (its parameters, ``failed_trial``, ``retry_history``), without the
    failed run's account of itself: a retry that completed would still say ``interrupted``."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        kept = copy.copy(trial)
        kept.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in FAILURE_ATTRS}
        super().__call__(study, kept)


def open_storage(
    url: str, heartbeat: Heartbeat | None = Heartbeat(), *, per_epoch_values: bool = True, create: bool = True
) -> optuna.storages.BaseStorage:
    """Open the study database (on first use, with ``create``, creating it), or connect to ``lrsearch
    proxy``. Without ``create`` (the commands that only read) a database lrsearch has not written is a
    ConfigError, and nothing is written. One that cannot be reached is one RuntimeFailure within about
    ``_CONNECT_TIMEOUT_S`` + ``_RESTART_PATIENCE_S`` seconds, with the password masked.
    Through the proxy there are no heartbeats (Optuna's gRPC API has none): see ``lrsearch reap --all``.
    A worker opens it without ``per_epoch_values``: its trials are read without them (see rdb_reader)."""
    if url.startswith(GRPC):
        return _proxy(url)
    database = sqlite_file(url)
    if database is not None:
        if not create and not Path(database).is_file():
            raise ConfigError(f"no study database at {database} (lrsearch run writes one)")
        if not Path(database).resolve().parent.is_dir():
            raise ConfigError(f"folder {Path(database).parent} for the study database does not exist")
    beats: dict[str, Any] = {}
    if heartbeat is not None:
        beats = {
            "heartbeat_interval": heartbeat.interval,
            "grace_period": heartbeat.grace,
            "heartbeat_stale_trial_callback": heartbeat.retry_callback(),
        }
    try:
        if not create and not _has_studies(url):
            raise ConfigError(f"{masked(url)} holds no studies (lrsearch run creates them)")
        with warnings.catch_warnings(), _one_creator(database):
            # Heartbeats are marked experimental in Optuna 5; lrsearch relies on them knowingly.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage, version = _created(lambda: _versioned(RDBStorage(url, engine_kwargs=_engine_kwargs(url), **beats)))
        if version != SCHEMA_VERSION:
            raise RuntimeFailure(
                f"the study database {masked(url)} has Optuna's schema {version}; lrsearch writes "
                f"and reads schema {SCHEMA_VERSION} only"
            )
        if database is not None:
            _sqlite_transactions(storage.engine)
        rdb_reader.install(storage, with_steps=per_epoch_values)
        return storage
    except (sqlalchemy.exc.NoSuchModuleError, ImportError) as exc:  # a driver named, or the default, not installed
        raise RuntimeFailure(f"no database driver for {masked(url)} (install it): {_reason(exc, url)}") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        raise RuntimeFailure(f"cannot open the study database {masked(url)}: {_reason(exc, url)}") from None
    except RuntimeError as exc:
        if "compatible with the table schema" not in str(exc):  # Optuna's check of the schema version
            raise
        raise RuntimeFailure(
            f"the study database {masked(url)} has a schema this Optuna does not read (lrsearch "
            f"writes schema {SCHEMA_VERSION}): `optuna storage upgrade` upgrades an older one"
        ) from None


def _proxy(url: str) -> optuna.storages.BaseStorage:
    host, port = grpc_address(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = optuna.storages.GrpcStorageProxy(host=host, port=port)
    try:
        proxy.wait_server_ready(timeout=_CONNECT_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - grpc's own timeout error types vary by version
        raise RuntimeFailure(f"cannot reach the storage proxy at {masked(url)}: {_reason(exc, url)}") from None
    return proxy


def _has_studies(url: str) -> bool:
    """Whether the database holds Optuna's tables, looked at without creating anything."""
    engine = sqlalchemy.create_engine(url, **_engine_kwargs(url))
    try:
        return sqlalchemy.inspect(engine).has_table(models.StudyModel.__tablename__)
    finally:
        engine.dispose()


@contextlib.contextmanager
def _one_creator(database: str | None) -> Iterator[None]:
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


def _versioned(storage: RDBStorage) -> tuple[RDBStorage, str]:
    return storage, storage.get_current_version()


def _created(connect: Callable[[], T], *, patience: float = _RESTART_PATIENCE_S) -> T:
    """``connect()``, again when another process created the schema of a fresh database at the same moment
    (the loser's CREATE fails with "already exists" once the winner has committed, and a retry finds it),
    or while the server restarts (for up to ``patience`` seconds: an unreachable one still fails soon)."""
    deadline = time.monotonic() + patience
    schema_races = 0
    while True:
        try:
            return connect()
        except (sqlalchemy.exc.DBAPIError, optuna.exceptions.StorageInternalError) as exc:
            # Optuna's schema check re-raises a database error inside its session as StorageInternalError.
            cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
            orig = getattr(cause, "orig", None)
            if orig is not None and "already exists" in str(orig) and schema_races < 2:
                schema_races += 1
            elif _restarting(orig) and time.monotonic() + 1 < deadline:
                time.sleep(1)
            elif cause is not exc and isinstance(cause, sqlalchemy.exc.DBAPIError):
                raise cause from None  # the database's own error, which open_storage turns into one line
            else:
                raise


#: What libpq says, with no SQLSTATE, of a connection a server restarting refuses: nobody listens for a
#: moment, and the server that does says it is shutting down, starting up or recovering (57P03 in its logs).
_RESTART_MESSAGES = ("connection refused", "the database system is", "server closed the connection unexpectedly")


def _restarting(error: BaseException | None) -> bool:
    """A PostgreSQL server shutting down or starting up (SQLSTATE 57P01-57P03), a connection lost (08...),
    or refused while it restarts (no SQLSTATE: a failed connection attempt has none)."""
    state = getattr(error, "sqlstate", None)
    if state is not None:
        return state in ("57P01", "57P02", "57P03") or state.startswith("08")
    text = str(error).lower()
    return type(error).__module__.startswith("psycopg") and any(m in text for m in _RESTART_MESSAGES)


def _reason(exc: BaseException, url: str) -> str:
    """What went wrong, in one line without the password (a driver may quote the URL)."""
    original = getattr(exc, "orig", None) or exc
    return redact(one_line(original), [url])[:300]


class TrialRecord:
    """How a trial ends: its state, its value (COMPLETE), its per-epoch values, its user attributes and
    new system attributes (its artifacts')."""

    __slots__ = ("intermediate", "state", "system_attrs", "trial_id", "user_attrs", "value")

    def __init__(
        self,
        trial_id: int,
        intermediate: Mapping[int, float],
        user_attrs: Mapping[str, Any],
        state: TrialState,
        value: float | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.trial_id, self.intermediate, self.user_attrs = trial_id, intermediate, user_attrs
        self.state, self.value, self.system_attrs = state, value, system_attrs or {}

    def final_value(self) -> float | None:
        """COMPLETE: its value; PRUNED: its last reported value (as Optuna's tell does); FAIL: none."""
        if self.state == TrialState.COMPLETE:
            return self.value
        if self.state == TrialState.PRUNED and self.intermediate:
            return self.intermediate[max(self.intermediate)]
        return None


def _utc_now() -> datetime.datetime:
    """Now as Optuna 5 stores trial times: naive UTC."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def write_finished(storage: optuna.storages.BaseStorage, records: Sequence[TrialRecord]) -> list[int]:
    """End trials: per-epoch values, attributes, value and state, in one transaction on a database (Optuna's
    tell takes several per trial). A trial another worker ended meanwhile (failed as stale, say) is left
    as it is; returns the ids of the trials this call ended."""
    backend = database(storage)
    if backend is None:
        return [r.trial_id for r in records if _finish_one(storage, r)]
    if not records:
        return []
    now = _utc_now()
    trials = models.TrialModel
    with _create_scoped_session(backend.scoped_session) as session:
        ids = [r.trial_id for r in records]
        running = set(
            session.scalars(
                sqlalchemy.select(trials.trial_id)
                .where(trials.trial_id.in_(ids), trials.state == TrialState.RUNNING)
                .with_for_update()
            )
        )
        ending = [r for r in records if r.trial_id in running]
        if not ending:
            return []
        rows = []
        for r in ending:
            for step, value in r.intermediate.items():
                stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                rows.append(
                    {
                        "trial_id": r.trial_id,
                        "step": step,
                        "intermediate_value": stored,
                        "intermediate_value_type": kind,
                    }
                )
        _insert(session, models.TrialIntermediateValueModel, rows)
        # A trial keeps what it was enqueued with (a repeat's repeat_of); a retry's copy of its original's
        # attributes is overwritten where this run has news.
        _set_attrs(session, models.TrialUserAttributeModel, {r.trial_id: r.user_attrs for r in ending})
        _set_attrs(session, models.TrialSystemAttributeModel, {r.trial_id: r.system_attrs for r in ending})
        value_rows = []
        for r in ending:
            final = r.final_value()
            if final is not None:
                stored, kind = models.TrialValueModel.value_to_stored_repr(final)
                value_rows.append({"trial_id": r.trial_id, "objective": 0, "value": stored, "value_type": kind})
        _insert(session, models.TrialValueModel, value_rows)
        for state in {r.state for r in ending}:
            session.execute(
                sqlalchemy.update(trials)
                .where(trials.trial_id.in_([r.trial_id for r in ending if r.state == state]))
                .values(state=state, _datetime_complete_utc=now)
            )
    return [r.trial_id for r in ending]


def _insert(session: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in the session's transaction: on PostgreSQL with COPY
    (a population's per-epoch values are thousands of rows: 2-4x faster than executemany), elsewhere with
    one Core executemany (the ORM's bulk insert builds an object per row)."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        columns = list(rows[0])
        with (
            connection.connection.driver_connection.cursor() as cursor,
            cursor.copy(f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([v.name if isinstance(v, enum.Enum) else v for v in row.values()])
    else:
        connection.execute(model.__table__.insert(), rows)


def _set_attrs(session: Any, model: Any, attrs: Mapping[int, Mapping[str, Any]]) -> None:
    """Set trials' attributes (trial id -> {key: value}) in the session's transaction, replacing only the
    keys given. One DELETE per set of keys (a population's trials share theirs): a list of (trial, key)
    pairs costs more to build and to plan than the rows it removes."""
    by_keys: dict[frozenset[str], list[int]] = {}
    for trial_id, values in attrs.items():
        if values:
            by_keys.setdefault(frozenset(values), []).append(trial_id)
    for keys, ids in by_keys.items():
        session.execute(sqlalchemy.delete(model).where(model.trial_id.in_(ids), model.key.in_(sorted(keys))))
    _insert(
        session,
        model,
        [
            {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
            for trial_id, values in attrs.items()
            for k, v in values.items()
        ],
    )


def _finish_one(storage: optuna.storages.BaseStorage, record: TrialRecord) -> bool:
    """The same through the public storage API (in memory, the gRPC proxy)."""
    try:
        if storage.get_trial(record.trial_id).state != TrialState.RUNNING:
            return False
        for step, value in record.intermediate.items():
            storage.set_trial_intermediate_value(record.trial_id, step, value)
        for key, value in record.user_attrs.items():
            storage.set_trial_user_attr(record.trial_id, key, value)
        for key, value in record.system_attrs.items():
            storage.set_trial_system_attr(record.trial_id, key, value)
        final = record.final_value()
        return storage.set_trial_state_values(record.trial_id, record.state, None if final is None else [final])
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def database(storage: optuna.storages.BaseStorage) -> RDBStorage | None:
    """The database behind ``storage``, which lrsearch talks to itself; None in memory or behind the proxy."""
    backend = getattr(storage, "_backend", storage)  # create_study wraps an RDBStorage in a cache
    return backend if isinstance(backend, RDBStorage) else None


def count_trials(
    study: optuna.Study, states: Sequence[TrialState], *, user_attr: str | None = None, present: bool = False
) -> int:
    """How many of the study's trials are in ``states`` (and have the user attr ``user_attr``, or lack it
    unless ``present``): on a database, one query instead of a read of the study."""
    backend = database(study._storage)
    if backend is None:
        trials = study.get_trials(deepcopy=False, states=states)
        return sum(user_attr is None or (user_attr in t.user_attrs) == present for t in trials)
    trials, attrs = models.TrialModel, models.TrialUserAttributeModel
    query = (
        sqlalchemy.select(sqlalchemy.func.count())
        .select_from(trials)
        .where(trials.study_id == study._study_id, trials.state.in_(list(states)))
    )
    if user_attr is not None:
        marked = sqlalchemy.exists().where(attrs.trial_id == trials.trial_id, attrs.key == user_attr)
        query = query.where(marked if present else ~marked)
    with _create_scoped_session(backend.scoped_session) as session:
        return int(session.scalar(query))


def record_heartbeats(storage: optuna.storages.BaseStorage, trial_ids: Sequence[int]) -> None:
    """Record a heartbeat for each running trial, in one transaction (Optuna's takes one per trial)."""
    backend = database(storage)
    if backend is None or backend.get_heartbeat_interval() is None or not trial_ids:
        return
    with _create_scoped_session(backend.scoped_session, True) as session:
        _beat(session, trial_ids)


def _beat(session: Any, trial_ids: Sequence[int]) -> None:
    now = session.execute(sqlalchemy.func.now()).scalar()
    model = models.TrialHeartbeatModel
    beats = {b.trial_id: b for b in session.query(model).filter(model.trial_id.in_(list(trial_ids))).with_for_update()}
    for trial_id in trial_ids:
        if trial_id in beats:
            beats[trial_id].heartbeat = now
        else:
            session.add(model(trial_id=trial_id, heartbeat=now))


def mark_started(storage: optuna.storages.BaseStorage, trial_ids: Sequence[int], user_attrs: Mapping[str, Any]) -> None:
    """Say who runs trials that have just started (``user_attrs``: the worker and its device) and record
    their first heartbeat, in one transaction: a trial running, or left by a worker that died, names its
    worker from its first moment. Through the public API where there is no database of lrsearch's own."""
    if not trial_ids:
        return
    backend = database(storage)
    if backend is None:
        for trial_id in trial_ids:
            for key, value in user_attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
        return
    with _create_scoped_session(backend.scoped_session, True) as session:
        _set_attrs(session, models.TrialUserAttributeModel, dict.fromkeys(trial_ids, user_attrs))
        if backend.get_heartbeat_interval() is not None:
            _beat(session, trial_ids)


def fail_stale(study: optuna.Study, *, all_running: bool = False, max_retry: int = 3) -> list[int]:
    """Fail the study's running trials whose worker is gone, and re-enqueue them (the storage's retry
    callback); returns their numbers. Stale: no heartbeat for the grace period, or, for a trial whose first
    heartbeat never came (its worker died at once), started longer ago than the grace period. With
    ``all_running`` every running trial counts as stale: for when every worker is known to be gone."""
    if all_running:
        retry = Heartbeat(max_retry=max_retry).retry_callback()
        failed = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            try:
                if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                    retry(study, study._storage.get_trial(trial._trial_id))
                    failed.append(trial.number)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
        return failed
    backend = database(study._storage)
    if backend is None or backend.get_heartbeat_interval() is None:
        return []
    grace = datetime.timedelta(seconds=backend.grace_period or 2 * backend.get_heartbeat_interval())
    trials, beats = models.TrialModel, models.TrialHeartbeatModel
    with _create_scoped_session(backend.scoped_session) as session:
        # Heartbeats are stamped by the database's clock.
        db_now = session.execute(sqlalchemy.func.now()).scalar().replace(tzinfo=None)
        rows = session.execute(
            sqlalchemy.select(trials.trial_id, trials._datetime_start_utc, beats.heartbeat)
            .outerjoin(beats, beats.trial_id == trials.trial_id)
            .where(trials.study_id == study._study_id, trials.state == TrialState.RUNNING)
        ).all()
    now = _utc_now()  # Optuna stores start times in UTC, from the clock of the worker that started the trial
    stale = [
        trial_id
        for trial_id, started, beat in rows
        if (beat is not None and db_now - beat.replace(tzinfo=None) > grace)
        or (beat is None and started is not None and now - started > grace)
    ]
    callback = backend.get_heartbeat_stale_trial_callback()
    failed = []
    for trial_id in stale:
        try:
            if backend.set_trial_state_values(trial_id, state=TrialState.FAIL):
                frozen = backend.get_trial(trial_id)
                if callback is not None:
                    callback(study, frozen)
                failed.append(frozen.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    return sorted(failed)


_log = logging.getLogger(__name__)


def _transient(exc: BaseException | None) -> bool:
    """An error that a later attempt may not meet: the server away or restarting, a connection dropped or
    invalidated, a session left to roll back after one of these."""
    # Optuna re-raises any database error inside its sessions as StorageInternalError; look at the cause.
    if isinstance(exc, optuna.exceptions.StorageInternalError):
        exc = exc.__cause__
    if isinstance(
        exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.PendingRollbackError)
    ):
        return True
    return isinstance(exc, sqlalchemy.exc.DBAPIError) and (exc.connection_invalidated or _restarting(exc.orig))


def retrying(action: Callable[..., T], *args: Any, patience: float = 120.0, **kwargs: Any) -> T:
    """``action(*args, **kwargs)``, retried with backoff while the database is unreachable (a server
    restarting, a dropped connection) for up to ``patience`` seconds."""
    deadline = time.monotonic() + patience
    wait = 0.5
    while True:
        try:
            return action(*args, **kwargs)
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            if not _transient(exc):
                raise
            if time.monotonic() + wait > deadline:
                raise RuntimeFailure(
                    f"the study database stayed unreachable for {patience:.0f} s: "
                    f"{one_line(getattr(exc, 'orig', exc))[:200]}"
                ) from exc
            _log.warning("database unreachable, retrying in %.1f s: %s", wait, exc)
            time.sleep(wait)
            wait = min(wait * 2, 10.0)


def claim(study: optuna.Study, key: str) -> bool:
    """True for exactly one caller per study and ``key``, whichever process or machine it runs on: the
    database's unique constraint on a study's attribute keys decides (an upsert would let every caller win)."""
    backend = database(study._storage)
    if backend is None:  # one process (in memory), or behind the proxy: first come, first served
        if key in study._storage.get_study_system_attrs(study._study_id):
            return False
        study._storage.set_study_system_attr(study._study_id, key, True)
        return True
    try:
        with _create_scoped_session(backend.scoped_session) as session:
            session.add(models.StudySystemAttributeModel(study_id=study._study_id, key=key, value_json="true"))
    except sqlalchemy.exc.IntegrityError:
        return False
    return True


@dataclasses.dataclass
class AskRound:
    """What ``one_read`` yields: set ``new`` to the number of new trials the round asks for before the first
    ask, and call ``remember`` with each trial asked once its parameters are drawn."""

    new: int = 0
    remember: Callable[[optuna.Trial], None] = lambda trial: None


@contextlib.contextmanager
def one_read(study: optuna.Study, finished: Sequence[optuna.trial.FrozenTrial] = ()) -> Iterator[AskRound]:
    """Within the block (a round of asks), the study is read from the database once, the round's new
    trials are created in one transaction, and the sampled parameters are written once.

    Optuna's cached storage re-reads every running trial, of every worker, on each ``ask``, creates each
    trial under a lock on the study (then reads it back), and writes each parameter in a transaction of its
    own: with hundreds of trials running, that is most of a worker's time. Inside, the cache syncs once;
    the first ask that finds no enqueued trial creates the rest of the round's trials at once (after which
    the round takes no more enqueued trials: a retry enqueued meanwhile waits for the next round, so no
    created trial is left over; a round a failure cuts short ends those it did not ask FAIL); the trials
    asked are put into the cache with their parameters by the round's ``remember``, so the sampler still
    sees them as running (TPE's constant liar keeps them apart); the parameters, and the system attrs the sampler sets
    (TPE shares its relative parameters that way), are written together on the way out.
    Trials other workers start meanwhile are seen at the next round. ``finished``: trials this worker has
    finished but not yet written (see ``search.telling``), shown as such over what the read finds.
    """
    storage = study._storage
    backend = database(storage)
    if backend is None or not isinstance(storage, optuna.storages._CachedStorage):
        yield AskRound()
        return
    sync, create, get = storage._read_trials_from_remote_storage, storage.create_new_trial, storage.get_trial
    synced: set[int] = set()
    pending: list[dict[str, Any]] = []
    pending_attrs: dict[int, dict[str, Any]] = {}
    asked = 0
    batch: list[optuna.trial.FrozenTrial] | None = None
    fresh: dict[int, optuna.trial.FrozenTrial] = {}

    def read_once(study_id: int) -> None:
        if study_id not in synced:
            sync(study_id)
            synced.add(study_id)
            if study_id == study._study_id:
                # Only over what the read still finds running: a trial it found ended is read no more, so a
                # view put over it would stay.
                unfinished = storage._studies[study_id].unfinished_trial_ids
                storage._add_trials_to_cache(study_id, [copy.copy(t) for t in finished if t._trial_id in unfinished])

    def buffer_param(
        trial_id: int, name: str, internal: float, distribution: optuna.distributions.BaseDistribution
    ) -> None:
        known = storage._studies[study._study_id].param_distribution
        if name in known:
            optuna.distributions.check_distribution_compatibility(known[name], distribution)
        else:
            known[name] = distribution
        pending.append(
            {
                "trial_id": trial_id,
                "param_name": name,
                "param_value": internal,
                "distribution_json": optuna.distributions.distribution_to_json(distribution),
            }
        )

    def buffer_system_attr(trial_id: int, key: str, value: Any) -> None:
        pending_attrs.setdefault(trial_id, {})[key] = value

    def create_in_batch(study_id: int, template_trial: optuna.trial.FrozenTrial | None = None) -> int:
        nonlocal batch
        if template_trial is not None or study_id != study._study_id or asked >= round_.new:
            return create(study_id, template_trial)
        if batch is None:
            batch = _create_trials(backend, study_id, round_.new - asked)
        if not batch:
            return create(study_id, template_trial)
        trial = batch.pop(0)
        storage._add_trials_to_cache(study_id, [trial])
        fresh[trial._trial_id] = trial
        return trial._trial_id

    def get_fresh(trial_id: int) -> optuna.trial.FrozenTrial:
        # A trial created just now has nothing but its number and start: no need to read it back.
        return copy.deepcopy(fresh[trial_id]) if trial_id in fresh else get(trial_id)

    def remember(trial: optuna.Trial) -> None:
        nonlocal asked
        asked += 1
        storage._add_trials_to_cache(study._study_id, [copy.deepcopy(trial._cached_frozen_trial)])

    round_ = AskRound(remember=remember)
    pop_waiting = study._pop_waiting_trial_id
    storage._read_trials_from_remote_storage = read_once  # type: ignore[method-assign]
    storage.set_trial_param = buffer_param  # type: ignore[method-assign]
    storage.set_trial_system_attr = buffer_system_attr  # type: ignore[method-assign]
    storage.create_new_trial = create_in_batch  # type: ignore[method-assign]
    storage.get_trial = get_fresh  # type: ignore[method-assign]
    study._pop_waiting_trial_id = lambda: None if batch is not None else pop_waiting()  # type: ignore[method-assign]
    try:
        yield round_
    finally:
        # The classes' methods again.
        del storage._read_trials_from_remote_storage, storage.set_trial_param, storage.set_trial_system_attr
        del storage.create_new_trial, storage.get_trial, study._pop_waiting_trial_id
        if pending or pending_attrs:
            # A worker that dies before this leaves trials without parameters, and without heartbeats: they
            # are failed once their grace period is over, and their retries sample afresh.
            retrying(_write_round, backend, pending, pending_attrs)
        if batch:
            # Created for asks that a failure cut short: nothing ran, nothing to retry, none left RUNNING.
            retrying(write_finished, storage, [TrialRecord(t._trial_id, {}, {}, TrialState.FAIL) for t in batch])


def _create_trials(backend: RDBStorage, study_id: int, count: int) -> list[optuna.trial.FrozenTrial]:
    """``count`` new RUNNING trials in one transaction, numbered as Optuna numbers them (under the same lock
    on the study row, so no other worker's trial takes a number in between)."""
    trials = models.TrialModel
    with _create_scoped_session(backend.scoped_session, True) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        first = session.scalar(
            sqlalchemy.select(sqlalchemy.func.count(trials.trial_id)).where(trials.study_id == study_id)
        )
        now = datetime.datetime.now()
        rows = [
            trials(study_id=study_id, number=first + i, state=TrialState.RUNNING, datetime_start=now)
            for i in range(count)
        ]
        session.add_all(rows)
        session.flush()
        return [
            optuna.trial.FrozenTrial(
                number=r.number,
                state=TrialState.RUNNING,
                value=None,
                values=None,
                datetime_start=r.datetime_start,
                datetime_complete=None,
                params={},
                distributions={},
                user_attrs={},
                system_attrs={},
                intermediate_values={},
                trial_id=r.trial_id,
            )
            for r in rows
        ]


def _write_round(
    backend: RDBStorage, params: list[dict[str, Any]], system_attrs: Mapping[int, Mapping[str, Any]]
) -> None:
    with _create_scoped_session(backend.scoped_session) as session:
        _insert(session, models.TrialParamModel, params)
        _set_attrs(session, models.TrialSystemAttributeModel, system_attrs)
