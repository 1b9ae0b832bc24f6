"""Opening a study database (``urls`` says which) as lrsearch's ``StudyStorage``, or the gRPC proxy;
creating it on first use, waiting out a server that restarts, refusing what lrsearch cannot read, in one
line with the password masked."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import optuna
import sqlalchemy
from optuna.storages import RDBStorage

from lrsearch.errors import ConfigError, RuntimeFailure, one_line
from lrsearch.storage import tables
from lrsearch.storage.engine import CONNECT_TIMEOUT_S, engine_kwargs, lz4_sessions, one_creator, sqlite_transactions
from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.retries import restarting
from lrsearch.storage.study_storage import StudyStorage
from lrsearch.storage.urls import GRPC, grpc_address, masked, redact, sqlite_file

__all__ = ["open_storage"]

T = TypeVar("T")

#: How long a worker that starts while the server restarts keeps trying to connect (well under 30 s).
_RESTART_PATIENCE_S = 10.0
#: Workers' heartbeats unless told otherwise.
_HEARTBEAT = Heartbeat()


def open_storage(
    url: str,
    heartbeat: Heartbeat | None = _HEARTBEAT,
    *,
    per_epoch_values: bool = True,
    create: bool = True,
    retried: bool = False,
) -> optuna.storages.BaseStorage:
    """Open the study database (on first use, with ``create``, creating it), or connect to ``lrsearch
    proxy``. Without ``create`` (the commands that only read) a database lrsearch has not written is a
    ConfigError, and nothing is written. One that cannot be reached is one RuntimeFailure within about
    ``CONNECT_TIMEOUT_S`` + ``_RESTART_PATIENCE_S`` seconds, with the password masked.
    Through the proxy there are no heartbeats (Optuna's gRPC API has none): see ``lrsearch reap --all``.
    A worker opens it without ``per_epoch_values``: its trials are read without them (see ``tables``), and
    ``retried``: it retries every call through a restart (``retries``), so its connections are not checked
    before each use (see ``engine.engine_kwargs``)."""
    if url.startswith(GRPC):
        return _proxy(url)
    database = sqlite_file(url)
    if database is not None:
        if not create and not Path(database).is_file():
            raise ConfigError(f"no study database at {database} (lrsearch run writes one)")
        if not Path(database).resolve().parent.is_dir():
            raise ConfigError(f"folder {Path(database).parent} for the study database does not exist")
    try:
        if not create and not _has_studies(url):
            raise ConfigError(f"{masked(url)} holds no studies (lrsearch run creates them)")
        with one_creator(database):
            backend = _created(
                lambda: _checked(RDBStorage(url, engine_kwargs=engine_kwargs(url, ping=not retried)), url)
            )
        if database is not None:
            sqlite_transactions(backend.engine)
        elif backend.engine.dialect.name == "postgresql":
            lz4_sessions(backend.engine)
        return StudyStorage(backend, heartbeat=heartbeat, with_steps=per_epoch_values)
    except (sqlalchemy.exc.NoSuchModuleError, ImportError) as exc:  # a driver named, or the default, not installed
        raise RuntimeFailure(f"no database driver for {masked(url)} (install it): {_reason(exc, url)}") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        raise RuntimeFailure(f"cannot open the study database {masked(url)}: {_reason(exc, url)}") from None
    except RuntimeError as exc:
        if "compatible with the table schema" not in str(exc):  # Optuna's check of the schema version
            raise
        raise RuntimeFailure(
            f"the study database {masked(url)} has a schema this Optuna does not read (lrsearch "
            f"writes schema {tables.SCHEMA_VERSION}): `optuna storage upgrade` upgrades an older one"
        ) from None


def _checked(backend: RDBStorage, url: str) -> RDBStorage:
    tables.check_version(backend, url)
    return backend


def _proxy(url: str) -> optuna.storages.BaseStorage:
    host, port = grpc_address(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = optuna.storages.GrpcStorageProxy(host=host, port=port)
    try:
        proxy.wait_server_ready(timeout=CONNECT_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - grpc's own timeout error types vary by version
        raise RuntimeFailure(f"cannot reach the storage proxy at {masked(url)}: {_reason(exc, url)}") from None
    return proxy


def _has_studies(url: str) -> bool:
    engine = sqlalchemy.create_engine(url, **engine_kwargs(url))
    try:
        return tables.has_tables(engine)
    finally:
        engine.dispose()


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
            elif restarting(orig) and time.monotonic() + 1 < deadline:
                time.sleep(1)
            elif cause is not exc and isinstance(cause, sqlalchemy.exc.DBAPIError):
                raise cause from None  # the database's own error, which open_storage turns into one line
            else:
                raise


def _reason(exc: BaseException, url: str) -> str:
    """What went wrong, in one line without the password (a driver may quote the URL)."""
    original = getattr(exc, "orig", None) or exc
    return redact(one_line(original), [url])[:300]
