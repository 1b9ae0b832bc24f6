"""The storage layer: where studies live and what the workers sharing one do to it.

``urls`` (which database, masked), ``engine`` (its settings), ``opening`` (open it as a ``StudyStorage``),
``study_storage`` (the storage lrsearch gives Optuna: its batch operations and rounds of asks), ``view``
(one worker's view of a study), ``tables`` (the one module that reads and writes Optuna's tables itself,
at the schema version it names), ``workers`` (the same operations on any storage), ``heartbeat``,
``records``, ``retries``.
"""

from __future__ import annotations

from typing import Any

#: Where each name lives: imported on first use (Optuna and SQLAlchemy take most of a second), so that a
#: command that needs only ``urls`` does not wait for them. Named here, not looked up: ``from lrsearch.storage
#: import tables`` asks this module for ``tables`` before it imports the submodule.
_NAMES = {
    "Heartbeat": "heartbeat",
    "open_storage": "opening",
    "TrialRecord": "records",
    "retrying": "retries",
    "StudyStorage": "study_storage",
    "SCHEMA_VERSION": "tables",
    "CompletedValues": "view",
    "StudyView": "view",
    **dict.fromkeys(
        (
            "asking",
            "claim",
            "completed",
            "count_trials",
            "fail_stale",
            "finishing",
            "heartbeat_of",
            "holding",
            "record_heartbeats",
            "refreshed",
            "values_at",
            "write_finished",
        ),
        "workers",
    ),
}


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f"lrsearch.storage.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'lrsearch.storage' has no attribute {name!r}")
