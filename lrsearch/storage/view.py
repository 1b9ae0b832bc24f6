"""One worker's view of one study: its trials as last read, what the worker changed since, and the completed
trials' per-epoch values.

A worker reads the study when it asks for trials and when its pruner decides (``refresh``), not at every
call Optuna makes: Optuna's cache re-reads every running trial of every worker at each ``ask`` and each
read of the study, which with hundreds of trials running was most of a worker's time. Between two reads
the view is what the sampler, the pruner, the teller and the budget see:

- the trials as the database had them, each finished trial read once (a finished trial never changes) and
  each running one read again only while it is settling or when its rows changed; a settled one not until
  it ends (``tables.read_trials``, ``schema.SETTLED``);
- what this worker wrote since, applied as it wrote it (new trials, parameters, attrs, states);
- the trials this worker finished whose end is not yet written (``finishing``), shown finished over a
  database that still says RUNNING; once the database says the trial ended, its word stands (another
  worker may have failed it as stale);
- the completed trials' per-epoch values as arrays (``completed()``), for the median and percentile
  pruners: this worker's as it finished them, the others' read once each, and only once asked for (a
  study pruned otherwise, or not at all, never reads them).
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from lrsearch.storage import tables
from lrsearch.storage.records import replaced

__all__ = ["CompletedValues", "StudyView"]


class CompletedValues:
    """Completed trials' per-epoch values, a row each: what the median and percentile pruners compare with.
    Rows are added by one thread while another reads (``at``): the arrays are replaced together, never
    changed in place."""

    def __init__(self) -> None:
        self._rows: dict[int, int] = {}  # trial id -> row
        # NaN where a trial has no value at a step (or a NaN value), and where it has one.
        self._table = (np.empty((0, 0)), np.empty((0, 0), dtype=bool))

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._rows

    def add(self, trial_ids: Sequence[int], rows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Completed trials (those held already stay as they are) and their values as (trial id, step, value)
        arrays."""
        fresh = np.array([i for i in dict.fromkeys(trial_ids) if i not in self._rows], dtype=np.int64)
        if not fresh.size:
            return
        trial, step, value = rows
        keep = np.isin(trial, fresh)
        trial, step, value = trial[keep], step[keep], value[keep]
        old_values, old_present = self._table
        width = max(old_values.shape[1], int(step.max()) + 1 if step.size else 0)
        order = np.argsort(fresh)
        at = order[np.searchsorted(fresh, trial, sorter=order)]
        values, present = np.full((fresh.size, width), np.nan), np.zeros((fresh.size, width), dtype=bool)
        values[at, step], present[at, step] = value, True
        pad = width - old_values.shape[1]
        self._table = (
            np.vstack([np.pad(old_values, ((0, 0), (0, pad)), constant_values=np.nan), values]),
            np.vstack([np.pad(old_present, ((0, 0), (0, pad))), present]),
        )
        self._rows.update((int(i), len(self._rows) + k) for k, i in enumerate(fresh))

    def at(self, step: int) -> np.ndarray:
        """The values at ``step`` of the trials that have one."""
        values, present = self._table
        if step >= values.shape[1]:
            return np.empty(0)
        return values[present[:, step], step]


@dataclasses.dataclass
class _InStates:
    """The trials shown in some states, by number, with each one's place in the list."""

    changes: int  # the sum of the states' change counts it was made at
    trials: list[FrozenTrial]
    place: dict[int, int]  # trial id -> index

    def replace(self, trial: FrozenTrial) -> None:
        at = self.place.get(trial._trial_id)
        if at is not None:
            self.trials[at] = trial

    def append(self, trial: FrozenTrial) -> None:
        self.place[trial._trial_id] = len(self.trials)
        self.trials.append(trial)


class StudyView:
    """One study's trials as this worker last read them, with its own changes since (see the module)."""

    def __init__(self, backend: RDBStorage, study_id: int, *, with_steps: bool) -> None:
        self.backend, self.study_id, self.with_steps = backend, study_id, with_steps
        self._completed = CompletedValues()
        self._known: dict[int, Mapping[int, float]] = {}  # completed trials' values not yet in _completed
        self._unread: dict[int, None] = {}  # completed trials whose values are not read yet, in order
        self._lock = threading.RLock()  # a storage may serve several threads (the gRPC proxy's)
        self._trials: dict[int, FrozenTrial] = {}  # by id, as read or as this worker changed them
        self._unfinished: set[int] = set()
        self._last_finished = -1
        self._memo: dict[int, tuple[tables.Stamp | None, FrozenTrial]] = {}  # running trials as read, stamps if any
        self._finishing: dict[int, FrozenTrial] = {}  # ended here, not yet written
        self._distributions: dict[str, BaseDistribution] = {}
        self._sorted: list[FrozenTrial] | None = None  # the trials shown, by number; rebuilt when None
        self._position: dict[int, int] = {}  # trial id -> its place in _sorted
        # The trials shown in some states, by the states asked for (the sampler asks at every ask), kept as
        # the sorted list is; made again once a trial in them changed otherwise (``_add``).
        self._in_states: dict[frozenset[TrialState], _InStates] = {}
        self._changes = dict.fromkeys(TrialState, 0)  # changes in each state the lists by states did not take in
        self.read_at = -float("inf")  # time.monotonic() of the last full read
        self.completed_at = -float("inf")  # ... and of the last read of the completed trials' values

    # --- reading ------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read what changed since the last read: new and finished trials, running ones whose rows changed."""
        with self._lock:
            read = tables.read_trials(
                self.backend,
                self.study_id,
                None,
                self._unfinished,
                self._last_finished,
                with_steps=self.with_steps,
                running=self._memo,
            )
            self.read_at = time.monotonic()
            for trial in read:
                if trial.state.is_finished() and self._finishing.pop(trial._trial_id, None) is not None:
                    self._sorted = None  # the database's word stands over what this worker showed
                self._add(trial)
                if trial.state.is_finished():
                    self._last_finished = max(self._last_finished, trial._trial_id)
                    self._unfinished.discard(trial._trial_id)
                    if trial.state == TrialState.COMPLETE:
                        self._completed_now(trial._trial_id, trial.intermediate_values if self.with_steps else None)
                else:
                    self._unfinished.add(trial._trial_id)

    def _completed_now(self, trial_id: int, values: Mapping[int, float] | None) -> None:
        """A trial found completed, with its values (None: to be read when they are asked for)."""
        if trial_id in self._completed or trial_id in self._known:
            return
        if values is None:
            self._unread[trial_id] = None
        else:
            self._known[trial_id] = values

    def refresh_completed(self) -> None:
        """Find the trials completed since the last read, and nothing else: what the median and percentile
        pruners need, at a fraction of a full read's cost with hundreds of trials running (the rest of the
        trials are read at the next full read). The database is read outside the lock: a thread that reads
        behind the training (the pruner's) never holds up the one training."""
        with self._lock:
            # Every trial before the first one unfinished when last read, and before the last read, was read.
            since = min([self._last_finished + 1, *self._unfinished])
        ids = tables.completed_ids(self.backend, self.study_id, since)
        with self._lock:
            self.completed_at = time.monotonic()
            for trial_id in ids:
                self._completed_now(trial_id, None)

    def completed(self, *, read: bool = True) -> CompletedValues:
        """The completed trials' per-epoch values: those found since last asked read now, in one query
        (outside the lock), unless not ``read`` (then only those this worker completed are added)."""
        with self._lock:
            unread = [i for i in self._unread if i not in self._completed and i not in self._known] if read else []
        curves = tables.completed_curves(self.backend, unread) if unread else None
        with self._lock:
            if curves is not None:
                self._completed.add(unread, curves)
            if self._known:
                ids = list(self._known)
                values = [self._known[i] for i in ids]
                count = sum(map(len, values))
                arrays = (
                    np.repeat(np.array(ids, dtype=np.int64), list(map(len, values))),
                    np.fromiter(itertools.chain.from_iterable(values), dtype=np.int64, count=count),
                    np.fromiter(itertools.chain.from_iterable(c.values() for c in values), dtype=float, count=count),
                )
                self._completed.add(ids, arrays)
                self._known = {}
            self._unread = {i: None for i in self._unread if i not in self._completed}
            return self._completed

    def trials(self, states: Iterable[TrialState] | None = None) -> list[FrozenTrial]:
        """The trials by number (as Optuna's samplers expect), those ended here shown as they ended."""
        with self._lock:
            if self._sorted is None:
                shown = (self._finishing.get(tid, t) for tid, t in self._trials.items())
                self._sorted = sorted(shown, key=lambda t: t.number)
                self._position = {t._trial_id: i for i, t in enumerate(self._sorted)}
                self._in_states = {}
            if states is None:
                return list(self._sorted)
            key = frozenset(states)
            changes = sum(self._changes[state] for state in key)  # only ever grows
            held = self._in_states.get(key)
            if held is None or held.changes != changes:
                shown = [t for t in self._sorted if t.state in key]
                held = self._in_states[key] = _InStates(changes, shown, {t._trial_id: i for i, t in enumerate(shown)})
            return list(held.trials)

    def get(self, trial_id: int) -> FrozenTrial | None:
        """A trial as the view holds it, if it holds it."""
        with self._lock:
            return self._trials.get(trial_id)

    # --- this worker's changes ----------------------------------------------------------------------------

    def _add(self, trial: FrozenTrial) -> None:
        trial_id = trial._trial_id
        held = self._trials.get(trial_id)
        self._trials[trial_id] = trial
        for name, distribution in trial.distributions.items():
            self._distributions.setdefault(name, distribution)
        # The sorted list, and the lists by states, kept where they can be (every ask changes a running trial
        # or adds the newest, several times an ask): the trial takes the old one's place, or is appended.
        # Samplers that keep the lists they read (TPE) tell what changed by the trials' identity.
        if self._sorted is not None and trial_id not in self._finishing:
            if trial_id in self._position:
                self._sorted[self._position[trial_id]] = trial
                if held is not None and held.state == trial.state:
                    for states, shown in self._in_states.items():
                        if trial.state in states:
                            shown.replace(trial)
                    return
            elif not self._sorted or trial.number > self._sorted[-1].number:
                self._position[trial_id] = len(self._sorted)
                self._sorted.append(trial)
                if held is None:
                    for states, shown in self._in_states.items():
                        if trial.state in states:
                            shown.append(trial)
                    return
            else:
                self._sorted = None
        # The lists by states this changes are made again when next asked for.
        if held is not None:
            self._changes[held.state] += 1
        self._changes[trial.state] += 1

    def running(self, trial: FrozenTrial) -> None:
        """A running trial as this worker created it or has just read it by itself (read again at the next
        refresh); a finished one is left to the refresh."""
        with self._lock:
            if not trial.state.is_finished():
                self._add(trial)
                self._unfinished.add(trial._trial_id)

    def taken(self, trial_id: int, started: datetime.datetime | None, user_attrs: Mapping[str, Any]) -> None:
        """An enqueued trial this worker took (``tables.take_waiting``): RUNNING since ``started``, with
        ``user_attrs`` (one the view does not hold yet is read when asked for)."""
        with self._lock:
            trial = self._trials.get(trial_id)
            if trial is not None:
                changes = {"state": TrialState.RUNNING, "datetime_start": started}
                self._change(trial_id, **changes, user_attrs={**trial.user_attrs, **user_attrs})

    def check_param(self, name: str, distribution: BaseDistribution) -> None:
        """Raise if ``distribution`` is not the one the study's trials give ``name`` (as Optuna's storage does)."""
        with self._lock:
            known = self._distributions.setdefault(name, distribution)
        check_distribution_compatibility(known, distribution)

    def _change(self, trial_id: int, **changes: Any) -> None:
        # A new FrozenTrial: the one held may be in a list a caller holds (Optuna's samplers keep them).
        trial = self._trials.get(trial_id)
        if trial is not None and not trial.state.is_finished():
            self._add(replaced(trial, **changes))

    def set_param(self, trial_id: int, name: str, internal: float, distribution: BaseDistribution) -> None:
        with self._lock:
            trial = self._trials.get(trial_id)
            if trial is not None:
                self._change(
                    trial_id,
                    distributions={**trial.distributions, name: distribution},
                    params={**trial.params, name: distribution.to_external_repr(internal)},
                )

    def set_attr(self, trial_id: int, key: str, value: object, *, system: bool) -> None:
        with self._lock:
            trial = self._trials.get(trial_id)
            if trial is not None and system:
                self._change(trial_id, system_attrs={**trial.system_attrs, key: value})
            elif trial is not None:
                self._change(trial_id, user_attrs={**trial.user_attrs, key: value})

    def set_state(self, trial_id: int, state: TrialState) -> None:
        """A state change this worker made, or learnt of (a waiting trial another worker took: RUNNING)."""
        with self._lock:
            self._change(trial_id, state=state)

    def finishing(self, trials: Sequence[FrozenTrial], completed: Mapping[int, Mapping[int, float]]) -> None:
        """Trials this worker ended whose end is not yet written, as it ended them, and the per-epoch values
        of those it completed."""
        with self._lock:
            for trial in trials:
                if trial._trial_id in self._unfinished:
                    self._finishing[trial._trial_id] = trial
            for trial_id, values in completed.items():
                self._completed_now(trial_id, values)
            self._sorted = None
