from __future__ import annotations

import json
import random

import optuna

from lrsearch.storage.opening import open_storage
from lrsearch.storage.study_storage import StudyStorage


def test_a_worker_s_postgresql_stores_long_values_with_lz4(postgres_url: str) -> None:
    # A trial's per-epoch lists are kilobytes of JSON each: stored out of line, compressed with lz4 (the
    # server has it here), the connections Optuna made before the setting included.
    storage = open_storage(postgres_url)
    assert isinstance(storage, StudyStorage)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    history = [random.random() for _ in range(200)]
    trial.set_user_attr("lr_history", history)
    study.tell(trial, 0.5)
    with storage.backend.engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT pg_column_compression(value_json), value_json FROM trial_user_attributes WHERE key = 'lr_history'"
        ).one()
        assert connection.exec_driver_sql("SHOW default_toast_compression").scalar() == "lz4"
    assert stored[0] == "lz4" and json.loads(stored[1]) == history
