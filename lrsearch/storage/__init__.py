"""The storage layer: where studies live and what the workers sharing one do to it.

``urls`` (which database, masked), ``engine`` (its settings), ``opening`` (open it as a ``StudyStorage``),
``study_storage`` (the storage lrsearch gives Optuna: its batch operations and rounds of asks), ``view``
(one worker's view of a study), ``tables`` (the one module that reads and writes Optuna's tables itself,
at the schema version it names), ``workers`` (the same operations on any storage), ``heartbeat``,
``records``, ``retries``.
"""

from __future__ import annotations

from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.opening import open_storage
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.retries import retrying
from lrsearch.storage.study_storage import StudyStorage
from lrsearch.storage.tables import SCHEMA_VERSION
from lrsearch.storage.view import CompletedValues, StudyView
from lrsearch.storage.workers import (
    asking,
    claim,
    completed,
    count_trials,
    fail_stale,
    finishing,
    heartbeat_of,
    holding,
    record_heartbeats,
    refreshed,
    values_at,
    write_finished,
)

__all__ = [
    "SCHEMA_VERSION",
    "CompletedValues",
    "Heartbeat",
    "StudyStorage",
    "StudyView",
    "TrialRecord",
    "asking",
    "claim",
    "completed",
    "count_trials",
    "fail_stale",
    "finishing",
    "heartbeat_of",
    "holding",
    "open_storage",
    "record_heartbeats",
    "refreshed",
    "retrying",
    "values_at",
    "write_finished",
]
