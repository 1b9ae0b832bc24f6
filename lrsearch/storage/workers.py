"""What the workers sharing a study do to it, on any storage: in bulk on lrsearch's own (``StudyStorage``),
through Optuna's public API on any other (in memory, the gRPC proxy).

Finishing trials, heartbeats, failing the trials of vanished workers (and re-enqueueing them), claims,
counts, and a round of asks.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from lrsearch.storage import tables
from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.study_storage import StudyStorage
from lrsearch.storage.view import CompletedValues

__all__ = [
    "RoundOfAsks",
    "asking",
    "claim",
    "completed",
    "count_trials",
    "fail_stale",
    "finishing",
    "heartbeat_of",
    "holding",
    "holding_back",
    "reading_completed",
    "record_heartbeats",
    "refreshed",
    "values_at",
    "write_finished",
    "write_steps",
]


def heartbeat_of(storage: optuna.storages.BaseStorage) -> Heartbeat | None:
    """The storage's heartbeat settings: None where it keeps no heartbeats (in memory, the gRPC proxy)."""
    return storage.heartbeat if isinstance(storage, StudyStorage) else None


def write_finished(storage: optuna.storages.BaseStorage, records: Sequence[TrialRecord]) -> list[int]:
    """End trials: per-epoch values, attributes, value and state (one transaction on lrsearch's storage;
    Optuna's tell takes several per trial). A trial another worker ended meanwhile (failed as stale, say)
    is left as it is; returns the ids of the trials this call ended."""
    if isinstance(storage, StudyStorage):
        return storage.write_finished(records)
    return [r.trial_id for r in records if _finish_one(storage, r)]


def write_steps(storage: optuna.storages.BaseStorage, steps: Mapping[int, Mapping[int, float]]) -> None:
    """Running trials' per-epoch values so far (trial id -> {step: value}), as they train: in one transaction
    on lrsearch's storage, elsewhere through Optuna's API; a trial ended meanwhile is left as it is."""
    if isinstance(storage, StudyStorage):
        storage.write_steps(steps)
        return
    for trial_id, values in steps.items():
        try:
            for step, value in values.items():
                storage.set_trial_intermediate_value(trial_id, step, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue


def _finish_one(storage: optuna.storages.BaseStorage, record: TrialRecord) -> bool:
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


def finishing(study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial], records: Sequence[TrialRecord]) -> None:
    """Show ``trials``, as ``records`` end them, to this worker while their end is being written."""
    if isinstance(study._storage, StudyStorage):
        completed = {r.trial_id: r.intermediate for r in records if r.state == TrialState.COMPLETE}
        study._storage.finishing(study._study_id, trials, completed)


def record_heartbeats(storage: optuna.storages.BaseStorage, trial_ids: Sequence[int]) -> None:
    """Record a heartbeat for each running trial, in one transaction."""
    if isinstance(storage, StudyStorage):
        storage.record_heartbeats(trial_ids)


@contextlib.contextmanager
def holding(study: optuna.Study) -> Iterator[None]:
    """Within the block, the study's trials are read when ``refreshed`` says (see ``StudyStorage.hold``)."""
    if isinstance(study._storage, StudyStorage):
        with study._storage.hold(study._study_id):
            yield
    else:
        yield


def refreshed(study: optuna.Study) -> None:
    """Read the study again (a held one)."""
    if isinstance(study._storage, StudyStorage):
        study._storage.refresh(study._study_id)


class RoundOfAsks:
    """What a round of asks (``asking``) offers the one asking: enqueued trials taken at once, and word of
    each trial asked."""

    def __init__(self, study: optuna.Study, user_attrs: Mapping[str, Any]) -> None:
        self.study, self.user_attrs = study, user_attrs

    def take_waiting(self, count: int) -> list[int] | None:
        """Up to ``count`` enqueued trials taken at once on lrsearch's storage, with the round's user attrs
        (``StudyStorage.take_waiting``): their ids, first by number, for ``optuna.Trial``. None elsewhere:
        Optuna's ``ask`` takes them, one at a time."""
        storage = self.study._storage
        if isinstance(storage, StudyStorage):
            return storage.take_waiting(self.study._study_id, count)
        return None

    def started(self, trial_id: int) -> None:
        """A trial asked in the round: on any storage but lrsearch's, its user attrs are set now."""
        storage = self.study._storage
        if not isinstance(storage, StudyStorage):
            for key, value in self.user_attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)


@contextlib.contextmanager
def asking(
    study: optuna.Study, asks: int, user_attrs: Mapping[str, Any], *, batch: bool = True, settled: bool = False
) -> Iterator[RoundOfAsks]:
    """A round of up to ``asks`` asks, each started trial given ``user_attrs`` (see ``StudyStorage.asking``,
    and for ``settled``)."""
    storage = study._storage
    if isinstance(storage, StudyStorage):
        with storage.asking(study._study_id, asks, user_attrs, batch=batch, settled=settled):
            yield RoundOfAsks(study, user_attrs)
        return
    yield RoundOfAsks(study, user_attrs)


def completed(study: optuna.Study, *, max_age: float) -> CompletedValues | None:
    """The study's completed trials' per-epoch values, read again unless read less than ``max_age`` seconds
    ago; None where the storage is not lrsearch's."""
    if isinstance(study._storage, StudyStorage):
        return study._storage.completed(study._study_id, max_age=max_age)
    return None


@contextlib.contextmanager
def reading_completed(study: optuna.Study, *, period: float) -> Iterator[None]:
    """Within the block, on lrsearch's storage, the completed trials' values are read behind the training
    (``StudyStorage.reading_completed``); elsewhere each ``completed`` reads (it gives None there)."""
    if isinstance(study._storage, StudyStorage):
        with study._storage.reading_completed(study._study_id, period=period):
            yield
    else:
        yield


@contextlib.contextmanager
def holding_back(study: optuna.Study) -> Iterator[None]:
    """Within the block the work behind the training on lrsearch's storage (the teller's writes, the
    completed values' reader) waits (``StudyStorage.gate``): for a round of asks."""
    if isinstance(study._storage, StudyStorage):
        with study._storage.gate.closed():
            yield
    else:
        yield


def values_at(study: optuna.Study, steps: Iterable[int]) -> dict[int, dict[int, float]] | None:
    """trial id -> {step: value} of the study's completed trials at ``steps``, in one query, where the
    storage reads trials without their per-epoch values; None where the trials read carry them."""
    storage = study._storage
    if isinstance(storage, StudyStorage) and not storage.with_steps:
        return tables.completed_values(storage.backend, study._study_id, steps)
    return None


def count_trials(
    study: optuna.Study, states: Sequence[TrialState], *, user_attrs: Sequence[str] = (), present: bool = False
) -> int:
    """How many of the study's trials are in ``states`` (and lack every user attr of ``user_attrs``, or with
    ``present`` have one of them): on a database, one query instead of a read of the study."""
    if isinstance(study._storage, StudyStorage):
        return study._storage.count_trials(study._study_id, states, user_attrs=user_attrs, present=present)
    trials = study.get_trials(deepcopy=False, states=states)
    return sum(not user_attrs or any(k in t.user_attrs for k in user_attrs) == present for t in trials)


def claim(study: optuna.Study, key: str) -> bool:
    """True for exactly one caller per study and ``key``, whichever process or machine it runs on: the
    database's unique constraint on a study's attribute keys decides (an upsert would let every caller win)."""
    if isinstance(study._storage, StudyStorage):
        return study._storage.claim(study._study_id, key)
    # One process (in memory), or behind the proxy: first come, first served.
    if key in study._storage.get_study_system_attrs(study._study_id):
        return False
    study._storage.set_study_system_attr(study._study_id, key, True)
    return True


def fail_stale(study: optuna.Study, *, all_running: bool = False, max_retry: int = 3) -> list[int]:
    """Fail the study's running trials whose worker is gone, and re-enqueue them (``Heartbeat.max_retry``
    times at most); returns their numbers. Stale: silent for the grace period (``tables.silent_trials``).
    With ``all_running`` every running trial counts as stale (``max_retry`` retries): for when every
    worker is known to be gone."""
    storage = study._storage
    beats = heartbeat_of(storage)
    if all_running:
        candidates = [t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        retry = Heartbeat(max_retry=max_retry).retry_callback()
    elif beats is not None and isinstance(storage, StudyStorage):
        candidates = tables.silent_trials(storage.backend, study._study_id, datetime.timedelta(seconds=beats.grace))
        retry = beats.retry_callback()
    else:
        return []
    failed = []
    for trial_id in candidates:
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                frozen = storage.get_trial(trial_id)
                retry(study, frozen)
                failed.append(frozen.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    return sorted(failed)
