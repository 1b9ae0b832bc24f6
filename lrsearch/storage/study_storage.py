"""``StudyStorage``: the storage lrsearch gives Optuna, with the batch operations a population needs.

Optuna uses a ``BaseStorage`` instance as it is given (it wraps only a plain ``RDBStorage`` in its cache),
so this class is what every lrsearch study runs on: Optuna's ``RDBStorage`` for what Optuna does one call
at a time, through its public API, and lrsearch's own SQL (``tables``) for what a population does many at
a time. Reads of a study's trials go through one ``StudyView`` per study, read again at each call (as
Optuna's cache does) unless a worker ``hold``s it, in which case it is read when the worker says:
once per round of asks and once per epoch for the pruner.

A round of asks (``asking``) is where Optuna's call-at-a-time API cost most: with hundreds of trials
running, each ``ask`` re-read every one of them, created its trial under a lock on the study (then read it
back), and wrote each parameter in a transaction of its own. In a round the study is read once, the first
ask that finds no enqueued trial creates the rest of the round's trials in one transaction (with their
worker, device and first heartbeat: a trial says who runs it from its first moment), and the parameters
and system attrs the sampler sets (TPE shares its relative parameters that way) are written together at
the end of the round, shown in the view meanwhile (TPE's constant liar keeps the running trials apart).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import Container, Iterator, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

from lrsearch.periodic import Gate, every
from lrsearch.schema import SETTLED
from lrsearch.storage import tables
from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.retries import retrying
from lrsearch.storage.view import CompletedValues, StudyView

__all__ = ["StudyStorage"]


@dataclasses.dataclass
class _Round:
    """A round of asks in progress: ``asks`` trials wanted, each started trial's ``user_attrs``."""

    study_id: int
    asks: int
    user_attrs: Mapping[str, Any]
    batch: bool
    settled: bool
    asked: int = 0
    created: list[FrozenTrial] | None = None  # the trials made for this round, not yet handed out
    fresh: dict[int, FrozenTrial] = dataclasses.field(default_factory=dict)
    others: list[int] = dataclasses.field(default_factory=list)
    taken: set[int] = dataclasses.field(default_factory=set)  # enqueued trials taken at once (``take_waiting``)
    handed: set[int] = dataclasses.field(default_factory=set)  # ... of which a Trial was made (``get_trial``)
    params: list[tuple[int, str, float, BaseDistribution]] = dataclasses.field(default_factory=list)
    system_attrs: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)


class StudyStorage(BaseStorage):
    """A study database: Optuna's ``RDBStorage`` (``backend``) and lrsearch's batch operations on it.

    ``heartbeat``: the heartbeat settings of the workers using it (None: no heartbeats). ``with_steps``:
    whether its reads carry the per-epoch values (a worker's need not: see ``tables``).
    """

    def __init__(self, backend: RDBStorage, *, heartbeat: Heartbeat | None, with_steps: bool = True) -> None:
        self.backend, self.heartbeat, self.with_steps = backend, heartbeat, with_steps
        self._views: dict[int, StudyView] = {}
        self._held: set[int] = set()
        self._behind: set[int] = set()  # studies whose completed values a thread reads (``reading_completed``)
        self._round: _Round | None = None
        # What the work behind a worker's training waits at while the worker closes it (its round of asks):
        # the completed values' reader here, the teller's writes (``search.telling``).
        self.gate = Gate()

    # --- the view -----------------------------------------------------------------------------------------

    def view(self, study_id: int) -> StudyView:
        view = self._views.get(study_id)
        if view is None:
            view = self._views.setdefault(study_id, StudyView(self.backend, study_id, with_steps=self.with_steps))
        return view

    @contextlib.contextmanager
    def hold(self, study_id: int) -> Iterator[StudyView]:
        """Within the block the study's view is read only when ``refresh`` is called (a worker's search)."""
        self._held.add(study_id)
        try:
            yield self.view(study_id)
        finally:
            self._held.discard(study_id)

    def refresh(self, study_id: int) -> StudyView:
        """The study's view, read again."""
        view = self.view(study_id)
        retrying(view.refresh)
        return view

    def refresh_completed(self, study_id: int, *, max_age: float) -> StudyView:
        """The study's view with the completed trials' values read again (``StudyView.refresh_completed``),
        unless the view was read less than ``max_age`` seconds ago."""
        view = self.view(study_id)
        if max(view.read_at, view.completed_at) + max_age <= time.monotonic():
            retrying(view.refresh_completed)
        return view

    def completed(self, study_id: int, *, max_age: float) -> CompletedValues:
        """The completed trials' per-epoch values (``StudyView.completed``), the study's completed trials
        looked for again as ``refresh_completed`` says; both reads retried. While they are read behind
        (``reading_completed``), what was read last, at once."""
        if study_id in self._behind:
            return self.view(study_id).completed(read=False)
        return retrying(self.refresh_completed(study_id, max_age=max_age).completed)

    @contextlib.contextmanager
    def reading_completed(self, study_id: int, *, period: float) -> Iterator[None]:
        """Within the block a thread reads the study's completed trials' values every ``period`` seconds, and
        ``completed`` hands out what it read last without waiting for the database: the median pruner
        decides every epoch, and its once-a-second query (a round trip on a loaded server, 16 ms) was most
        of a worker's pruning. Read once before the block, so that the first epochs decide on what is there."""
        view = self.view(study_id)
        self.completed(study_id, max_age=0.0)

        def read() -> None:  # a read that failed is tried again at the next
            self.gate.wait()
            view.refresh_completed()
            view.completed()

        self._behind.add(study_id)
        try:
            with every(period, read, name="lrsearch-completed"):
                yield
        finally:
            self._behind.discard(study_id)

    # --- a round of asks ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def asking(
        self, study_id: int, asks: int, user_attrs: Mapping[str, Any], *, batch: bool = True, settled: bool = False
    ) -> Iterator[None]:
        """A round of up to ``asks`` asks (see the module), each started trial given ``user_attrs`` and a
        first heartbeat. The study is read once: as last refreshed where the view is held, else now.
        Enqueued trials are taken first; once the round has created its trials it takes no more (a retry
        enqueued meanwhile waits for the next round, so no created trial is left over), and trials a failure
        leaves unasked end FAIL (nothing ran, nothing to retry). Without ``batch`` every write goes through
        at once, as Optuna makes it (the grid sampler's). ``settled``: nothing writes to the round's trials
        until they end (their pruner writes no rungs), which their parameters' write says (``schema.SETTLED``:
        other workers' reads of the study then skip them while they run)."""
        if self._round is not None:
            raise RuntimeError("a round of asks is already in progress on this storage")
        with contextlib.ExitStack() as held:
            if study_id not in self._held:
                self.refresh(study_id)
                held.enter_context(self.hold(study_id))
            self._round = round_ = _Round(study_id, asks, dict(user_attrs), batch, settled)
            try:
                yield
            finally:
                self._round = None
                self._end_round(round_)

    def _end_round(self, round_: _Round) -> None:
        # A worker that dies before this leaves trials without parameters, and without heartbeats: they are
        # failed once their grace period is over, and their retries sample afresh.
        others = {trial_id: round_.user_attrs for trial_id in round_.others}
        if round_.batch and round_.settled:
            for trial_id in [*round_.fresh, *round_.others, *round_.taken]:
                round_.system_attrs.setdefault(trial_id, {})[SETTLED] = True
        beating = round_.others if self.heartbeat is not None else []
        if round_.params or round_.system_attrs or others:
            retrying(tables.write_round, self.backend, round_.params, round_.system_attrs, others, beating)
        if round_.created:
            unasked = [TrialRecord(t._trial_id, {}, {}, TrialState.FAIL) for t in round_.created]
            retrying(tables.write_finished, self.backend, unasked)
        if round_.taken - round_.handed:  # enqueued trials still to run: back in the queue
            retrying(tables.put_back, self.backend, sorted(round_.taken - round_.handed))

    def _in_round(self, trial_id: int) -> _Round | None:
        """The round whose writes for ``trial_id`` wait for its end, if one does."""
        round_ = self._round
        if round_ is None or not round_.batch:
            return None
        if trial_id not in round_.fresh and trial_id not in round_.others and trial_id not in round_.taken:
            return None
        return round_

    # --- trials -------------------------------------------------------------------------------------------

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        round_ = self._round
        if round_ is None or template_trial is not None or study_id != round_.study_id:
            return self.backend.create_new_trial(study_id, template_trial)
        if not round_.batch or round_.asked >= round_.asks:
            trial_id = self.backend.create_new_trial(study_id)
            self._started(round_, trial_id)
            return trial_id
        if round_.created is None:
            round_.created = retrying(
                tables.create_trials,
                self.backend,
                study_id,
                round_.asks - round_.asked,
                round_.user_attrs,
                beating=self.heartbeat is not None,
                settling=round_.settled,
            )
        trial = round_.created.pop(0)
        # Shown as it is handed out, not before: TPE sees each ask add one running trial to what it saw.
        self.view(study_id).running(trial)
        round_.fresh[trial._trial_id] = trial
        round_.asked += 1
        return trial._trial_id

    def _started(self, round_: _Round, trial_id: int) -> None:
        """A trial the round took other than from its batch (an enqueued one, one more than it planned): it
        gets the round's user attrs and a first heartbeat, at the end of the round, or at once without
        ``batch``."""
        round_.asked += 1
        if round_.batch:
            round_.others.append(trial_id)
            return
        for key, value in round_.user_attrs.items():
            self.set_trial_user_attr(trial_id, key, value)
        if self.heartbeat is not None:
            retrying(tables.record_heartbeats, self.backend, [trial_id])

    def take_waiting(self, study_id: int, count: int) -> list[int]:
        """In a round of asks: up to ``count`` of the study's enqueued trials, taken at once
        (``tables.take_waiting``: with the round's user attrs and a first heartbeat), the round's asks for
        any that others took meanwhile given up. Their ids, first by number; a ``Trial`` made for one
        reads it from the view."""
        round_ = self._round
        if round_ is None or study_id != round_.study_id:
            raise RuntimeError("enqueued trials are taken in a round of asks")
        ids, started = retrying(
            tables.take_waiting,
            self.backend,
            study_id,
            count,
            round_.user_attrs,
            beating=self.heartbeat is not None,
        )
        view = self.view(study_id)
        for trial_id in ids:
            view.taken(trial_id, started, round_.user_attrs)
        round_.taken.update(ids)
        round_.asks -= count - len(ids)
        round_.asked += len(ids)
        return ids

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        view = self._view_of(trial_id)
        try:
            changed = self.backend.set_trial_state_values(trial_id, state=state, values=values)
        except optuna.exceptions.UpdateFinishedTrialError:
            if view is not None and state == TrialState.RUNNING:
                view.set_state(trial_id, TrialState.RUNNING)  # not waiting any more: read it again next time
            raise
        if view is not None and (changed or state == TrialState.RUNNING):
            view.set_state(trial_id, state)  # RUNNING unchanged: another worker took it first
        if changed and state == TrialState.RUNNING and self._round is not None:
            self._started(self._round, trial_id)
        return changed

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        view = self._view_of(trial_id)
        round_ = self._in_round(trial_id)
        if round_ is not None and view is not None:
            view.check_param(param_name, distribution)
            round_.params.append((trial_id, param_name, param_value_internal, distribution))
        else:
            self.backend.set_trial_param(trial_id, param_name, param_value_internal, distribution)
        if view is not None:
            view.set_param(trial_id, param_name, param_value_internal, distribution)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        round_ = self._in_round(trial_id)
        if round_ is not None:
            round_.system_attrs.setdefault(trial_id, {})[key] = value
        else:
            self.backend.set_trial_system_attr(trial_id, key, value)
        view = self._view_of(trial_id)
        if view is not None:
            view.set_attr(trial_id, key, value, system=True)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.backend.set_trial_user_attr(trial_id, key, value)
        view = self._view_of(trial_id)
        if view is not None:
            view.set_attr(trial_id, key, value, system=False)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.backend.set_trial_intermediate_value(trial_id, step, intermediate_value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        round_ = self._round
        if round_ is not None and trial_id in round_.fresh:
            # A trial created just now has nothing but its number, start and attrs: no need to read it back.
            return copy.deepcopy(round_.fresh[trial_id])
        view = self._view_of(trial_id)
        held = view.get(trial_id) if view is not None else None
        if held is not None and round_ is not None and trial_id in round_.taken:
            round_.handed.add(trial_id)
            return copy.deepcopy(held)  # an enqueued trial this round took: as read with the study, and taken
        if held is not None and held.state.is_finished():
            return held
        trial = self.backend.get_trial(trial_id)
        if view is not None:
            view.running(trial)
        return trial

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        view = self.view(study_id) if study_id in self._held else self.refresh(study_id)
        trials = view.trials(states)
        return copy.deepcopy(trials) if deepcopy else trials

    def _view_of(self, trial_id: int) -> StudyView | None:
        for view in self._views.values():
            if view.get(trial_id) is not None:
                return view
        return None

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self.backend.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self.backend.get_best_trial(study_id)

    # --- what a population does many at a time ------------------------------------------------------------

    def write_finished(self, records: Sequence[TrialRecord]) -> list[int]:
        """End trials in one transaction (see ``tables.write_finished``); returns the ids of those it ended."""
        return tables.write_finished(self.backend, records)

    def write_steps(self, steps: Mapping[int, Mapping[int, float]]) -> None:
        """Running trials' per-epoch values so far, in one transaction (see ``tables.write_steps``)."""
        tables.write_steps(self.backend, steps)

    def finishing(
        self, study_id: int, trials: Sequence[FrozenTrial], completed: Mapping[int, Mapping[int, float]]
    ) -> None:
        """Show ``trials`` as ended while their end is being written (see ``StudyView.finishing``)."""
        self.view(study_id).finishing(trials, completed)

    def record_heartbeats(self, trial_ids: Sequence[int]) -> None:
        """A heartbeat for each trial, in one transaction (Optuna's takes one per trial)."""
        if self.heartbeat is not None and trial_ids:
            tables.record_heartbeats(self.backend, trial_ids)

    def count_trials(
        self, study_id: int, states: Sequence[TrialState], *, user_attrs: Sequence[str] = (), present: bool = False
    ) -> int:
        return tables.count_trials(self.backend, study_id, states, user_attrs, present)

    def claim(self, study_id: int, key: str) -> bool:
        return tables.claim(self.backend, study_id, key)

    # --- studies: Optuna's own ----------------------------------------------------------------------------

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self.backend.create_new_study(directions=directions, study_name=study_name)

    def delete_study(self, study_id: int) -> None:
        self._views.pop(study_id, None)
        self.backend.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.backend.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.backend.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.backend.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.backend.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.backend.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self.backend.get_all_studies()

    def remove_session(self) -> None:
        self.backend.remove_session()

    @property
    def engine(self) -> Any:
        return self.backend.engine
