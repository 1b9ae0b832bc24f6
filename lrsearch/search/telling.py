"""Telling the study how trials train and end without making the training wait.

A worker hands each batch of finished trials, and every few seconds its running trials' new per-epoch values
(``progress``: the dashboard shows a running trial's curve, and a population's end writes only its last
steps), to one background thread, which writes the batches in order (one transaction each:
``storage.write_finished``, ``storage.write_steps``). Until a batch is written, the worker's view of the
study shows its trials as finished (``storage.finishing``, with ``finished_view``), so the round of asks
that follows at once when a population ends samples with their results. The thread waits while the worker
asks (the storage's ``gate``): the population, and its device, stand idle until the round ends, and a write
meanwhile only lengthens it (eight workers on two cores: their rounds of asks took a quarter less time once
the writes and the pruner's reads behind waited). The training never waits for the database.

A worker that dies with a batch unwritten leaves those trials RUNNING without heartbeats: they are failed as
stale and retried, as the trials of any vanished worker. Storages without a database of their own (in
memory, the gRPC proxy) are written at once, in the caller's thread.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

import optuna
from optuna.trial import FrozenTrial

from lrsearch.schema import PER_EPOCH_SUFFIX
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.retries import retrying
from lrsearch.storage.study_storage import StudyStorage
from lrsearch.storage.workers import write_finished, write_steps

__all__ = ["PROGRESS_EVERY_S", "Teller", "finished_view"]

P = TypeVar("P")


#: How often a worker writes its running trials' new per-epoch values, at most (seconds).
PROGRESS_EVERY_S = 2.0


@dataclasses.dataclass
class _Batch(Generic[P]):
    future: Future[list[int] | None]
    ended: tuple[P] | None = None  # finished trials: their payload, to give back; running ones': nothing


class Teller(Generic[P]):
    """Writes batches of finished trials in the background, in order; a context manager that, on the way
    out, waits until every batch is written."""

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self._storage = storage
        # Written behind on lrsearch's storage, waiting at its gate; elsewhere at once.
        self._gate = storage.gate if isinstance(storage, StudyStorage) else None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lrsearch-tell") if self._gate is not None else None
        self._batches: collections.deque[_Batch[P]] = collections.deque()

    def __enter__(self) -> Teller[P]:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def tell(self, records: Sequence[TrialRecord], payload: P) -> None:
        """Write ``records`` (retried while the database is away); ``payload`` comes back from ``written``
        with the ids of the trials the write ended."""
        self._batches.append(_Batch(self._submit(write_finished, records), (payload,)))

    def progress(self, steps: Mapping[int, Mapping[int, float]]) -> None:
        """Write running trials' new per-epoch values (trial id -> {step: value}), before any batch told
        after this."""
        self._batches.append(_Batch(self._submit(write_steps, steps)))

    def _submit(self, write: Callable[..., list[int] | None], what: object) -> Future[list[int] | None]:
        if self._executor is None:
            future: Future[list[int] | None] = Future()
            future.set_result(retrying(write, self._storage, what))
            return future
        return self._executor.submit(self._write, write, what)

    def _write(self, write: Callable[..., list[int] | None], what: object) -> list[int] | None:
        assert self._gate is not None  # only written behind where there is one
        self._gate.wait()  # not while the worker asks
        return retrying(write, self._storage, what)

    def written(self, *, wait: bool) -> list[tuple[P, set[int]]]:
        """The batches of finished trials written since the last call, in order, each with the ids of the
        trials it ended (a trial another worker failed as stale meanwhile stays failed); with ``wait``,
        every batch. A write that failed raises its error here."""
        out = []
        while self._batches and (wait or self._batches[0].future.done()):
            batch = self._batches.popleft()
            ended = batch.future.result()
            if batch.ended is not None:
                out.append((batch.ended[0], set(ended or ())))
        return out


def finished_view(trial: FrozenTrial, record: TrialRecord, system_attrs: dict[str, Any]) -> FrozenTrial:
    """``trial`` as ``record`` ends it, as this worker would read it back: without per-epoch values and
    lists (see ``storage.tables``)."""
    user_attrs = {
        **trial.user_attrs,
        **{k: v for k, v in record.user_attrs.items() if not k.endswith(PER_EPOCH_SUFFIX)},
    }
    return FrozenTrial(
        number=trial.number,
        state=record.state,
        value=record.final_value(),
        datetime_start=trial.datetime_start,
        datetime_complete=datetime.datetime.now(),
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=user_attrs,
        system_attrs={**system_attrs, **record.system_attrs},
        intermediate_values={},
        trial_id=trial._trial_id,
    )
