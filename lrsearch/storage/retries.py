"""Storage calls that survive a database restart: which errors are passing, and retrying through them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import optuna
import sqlalchemy

from lrsearch.errors import RuntimeFailure, one_line

__all__ = ["restarting", "retrying", "transient"]

T = TypeVar("T")

_log = logging.getLogger(__name__)

#: What libpq says, with no SQLSTATE, of a connection a server restarting refuses: nobody listens for a
#: moment, and the server that does says it is shutting down, starting up or recovering (57P03 in its logs).
_RESTART_MESSAGES = ("connection refused", "the database system is", "server closed the connection unexpectedly")


def restarting(error: BaseException | None) -> bool:
    """A PostgreSQL server shutting down or starting up (SQLSTATE 57P01-57P03), a connection lost (08...),
    or refused while it restarts (no SQLSTATE: a failed connection attempt has none)."""
    state = getattr(error, "sqlstate", None)
    if state is not None:
        return state in ("57P01", "57P02", "57P03") or state.startswith("08")
    text = str(error).lower()
    return type(error).__module__.startswith("psycopg") and any(m in text for m in _RESTART_MESSAGES)


def transient(exc: BaseException | None) -> bool:
    """An error that a later attempt may not meet: the server away or restarting, a connection dropped or
    invalidated, a session left to roll back after one of these."""
    # Optuna re-raises any database error inside its sessions as StorageInternalError; look at the cause.
    if isinstance(exc, optuna.exceptions.StorageInternalError):
        exc = exc.__cause__
    if isinstance(
        exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.PendingRollbackError)
    ):
        return True
    return isinstance(exc, sqlalchemy.exc.DBAPIError) and (exc.connection_invalidated or restarting(exc.orig))


def retrying(action: Callable[..., T], *args: Any, patience: float = 120.0, **kwargs: Any) -> T:
    """``action(*args, **kwargs)``, retried with backoff while the database is unreachable (a server
    restarting, a dropped connection) for up to ``patience`` seconds."""
    deadline = time.monotonic() + patience
    wait = 0.5
    while True:
        try:
            return action(*args, **kwargs)
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            if not transient(exc):
                raise
            if time.monotonic() + wait > deadline:
                raise RuntimeFailure(
                    f"the study database stayed unreachable for {patience:.0f} s: "
                    f"{one_line(getattr(exc, 'orig', exc))[:200]}"
                ) from exc
            _log.warning("database unreachable, retrying in %.1f s: %s", wait, exc)
            time.sleep(wait)
            wait = min(wait * 2, 10.0)
