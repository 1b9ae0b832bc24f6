from __future__ import annotations

import optuna
import pytest
import sqlalchemy

from lrsearch.errors import RuntimeFailure
from lrsearch.storage.retries import retrying


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
    from lrsearch.storage.retries import transient as _transient

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
