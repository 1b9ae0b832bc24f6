"""Pruners by name, sized for populations, and the view of the study they decide against each epoch.

Optuna's median and percentile pruners compare a trial with the *completed* trials at the same step, and
successive halving with the values other trials recorded at each rung: a population whose members start
together can only be pruned against trials that finished before. The search refills its population as
members end, so every trial after the first wave is pruned against those; the defaults below keep the
startup count within one population so that happens from the second wave on.

``trial.should_prune()`` re-reads the study for every call (25 ms and more with a population running);
``PruningView`` is the study read once per epoch, and the pruner decides every member against that
snapshot. The median and percentile pruners look at nothing but the completed trials' values: a worker
keeps those (``CompletedTrials``) and decides a whole population against them (``percentile_decisions``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from lrsearch.checks import MAX_COUNT, MAX_STEPS, integer, number
from lrsearch.errors import ConfigError
from lrsearch.rdb_reader import completed_curves, completed_values, reads_steps
from lrsearch.storage import database

__all__ = ["PRUNERS", "CompletedTrials", "CompletedValues", "PruningView", "create_pruner", "percentile_decisions"]

PRUNERS = {
    "median": "prune below the median of completed trials at the same epoch (the default)",
    "percentile": "prune below a percentile (setting: percentile, 25) of completed trials at the same epoch",
    "asha": "asynchronous successive halving: keep the best 1/reduction_factor at each rung",
    "none": "train every trial to the end",
}
#: Each pruner's settings and their ranges (Optuna checks few of them, and not their types).
_SETTINGS: dict[str, dict[str, tuple[type, float, float]]] = {
    "median": {
        "n_startup_trials": (int, 0, MAX_COUNT),
        "n_warmup_steps": (int, 0, MAX_STEPS),
        "interval_steps": (int, 1, MAX_STEPS),
        "n_min_trials": (int, 1, MAX_COUNT),
    },
    "percentile": {
        "percentile": (float, 0.0, 100.0),
        "n_startup_trials": (int, 0, MAX_COUNT),
        "n_warmup_steps": (int, 0, MAX_STEPS),
        "interval_steps": (int, 1, MAX_STEPS),
        "n_min_trials": (int, 1, MAX_COUNT),
    },
    "asha": {
        "min_resource": (int, 1, MAX_STEPS),
        "reduction_factor": (int, 2, 100),
        "min_early_stopping_rate": (int, 0, 100),
        "bootstrap_count": (int, 0, MAX_COUNT),
    },
    "none": {},
}


def create_pruner(
    name: str, settings: Mapping[str, Any] | None = None, *, epochs: int, population: int
) -> optuna.pruners.BasePruner:
    """A pruner; unset settings are sized to the run (epochs) and to the population."""
    if not isinstance(name, str) or name not in PRUNERS:
        raise ConfigError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")
    given = dict(settings or {})
    unknown = sorted(set(given) - set(_SETTINGS[name]))
    if unknown:
        raise ConfigError(
            f"pruner {name} has no setting {unknown[0]!r} (it takes: {', '.join(sorted(_SETTINGS[name])) or 'none'})"
        )
    for key, value in given.items():
        kind, low, high = _SETTINGS[name][key]
        if key == "min_resource" and value == "auto":
            continue
        given[key] = integer(key, value, int(low), int(high)) if kind is int else number(key, value, low, high)
    try:  # what Optuna checks across settings (bootstrap_count with an automatic min_resource)
        if name == "none":
            return optuna.pruners.NopPruner()
        if name == "asha":
            given.setdefault("min_resource", max(1, round(epochs / 27)))
            return optuna.pruners.SuccessiveHalvingPruner(**given)
        given.setdefault("n_startup_trials", min(5, population))
        given.setdefault("n_warmup_steps", max(1, epochs // 10))
        if name == "median":
            return optuna.pruners.MedianPruner(**given)
        given.setdefault("percentile", 25.0)
        return optuna.pruners.PercentilePruner(**given)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pruner {name}: {exc}") from None


class _RecordingStorage:
    """The study's storage as a pruner writes to it; rung records also land in the members' mirrors."""

    def __init__(self, storage: optuna.storages.BaseStorage, mirrors: Mapping[int, dict[str, Any]]) -> None:
        self._storage, self._mirrors = storage, mirrors

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._storage.set_trial_system_attr(trial_id, key, value)
        self._mirrors[trial_id][key] = value


class PruningView:
    """The study as a pruner sees it during one epoch: its trials read once.

    ``mirrors`` holds, per running trial id, the system attributes the pruner has written (successive
    halving's rungs), which the in-memory trials carry. Where the worker reads trials without their
    per-epoch values, the completed trials get their values at ``steps`` (the epochs being decided) from
    one query.
    """

    def __init__(self, study: optuna.Study, mirrors: Mapping[int, dict[str, Any]], steps: Iterable[int] = ()) -> None:
        trials = study.get_trials(deepcopy=False)
        backend = database(study._storage)
        if backend is not None and not reads_steps(backend):
            values = completed_values(backend, study._study_id, steps)
            trials = [
                _with_values(t, values.get(t._trial_id, {})) if t.state == TrialState.COMPLETE else t for t in trials
            ]
        self._trials = trials
        self._storage = _RecordingStorage(study._storage, mirrors)
        self.direction = study.direction
        self.directions = study.directions

    def get_trials(self, deepcopy: bool = False, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]

    def should_prune(self, pruner: optuna.pruners.BasePruner, trial: FrozenTrial) -> bool:
        return pruner.prune(self, trial)  # type: ignore[arg-type]


def percentile_decisions(
    pruner: optuna.pruners.PercentilePruner,
    completed: CompletedValues,
    direction: StudyDirection,
    members: Sequence[tuple[int, float]],
) -> list[bool]:
    """What ``pruner.prune`` decides for members of a population, each given as (the step it reached, its
    best value so far) with a value at every step before (one per epoch), against the ``completed`` trials'
    values (all that Optuna's median and percentile pruners look at). Each step's percentile is computed
    once for every member at it: Optuna's pruner computes it over every completed trial, and walks the
    member's values twice, for each member it is asked about; for a population at every epoch that was most
    of a worker's time."""
    if not len(completed) or len(completed) < pruner._n_startup_trials:
        return [False] * len(members)
    warmup, interval = pruner._n_warmup_steps, pruner._interval_steps
    percentile = 100 - pruner._percentile if direction == StudyDirection.MAXIMIZE else pruner._percentile
    at_step: dict[int, float] = {}
    decisions = []
    for step, best in members:
        # Optuna's interval rule with the steps 1..step: the step before this one is the one before it.
        first_in_interval = step - 1 < (step - warmup) // interval * interval + warmup
        if step < warmup or not first_in_interval:
            decisions.append(False)
            continue
        if math.isnan(best):
            decisions.append(True)
            continue
        if step not in at_step:
            values = completed.at(step)
            at_step[step] = (
                math.nan if len(values) < pruner._n_min_trials else float(np.nanpercentile(values, percentile))
            )
        threshold = at_step[step]
        decisions.append(
            not math.isnan(threshold)
            and (best < threshold if direction == StudyDirection.MAXIMIZE else best > threshold)
        )
    return decisions


class CompletedValues:
    """Completed trials' per-epoch values, a row each: what the median and percentile pruners compare with."""

    def __init__(self) -> None:
        self._rows: dict[int, int] = {}  # trial id -> row
        self._values = np.empty((0, 0))  # NaN where a trial has no value at a step (or a NaN value)
        self._present = np.empty((0, 0), dtype=bool)

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
        width = max(self._values.shape[1], int(step.max()) + 1 if step.size else 0)
        order = np.argsort(fresh)
        at = order[np.searchsorted(fresh, trial, sorter=order)]
        values, present = np.full((fresh.size, width), np.nan), np.zeros((fresh.size, width), dtype=bool)
        values[at, step], present[at, step] = value, True
        pad = width - self._values.shape[1]
        self._values = np.vstack([np.pad(self._values, ((0, 0), (0, pad)), constant_values=np.nan), values])
        self._present = np.vstack([np.pad(self._present, ((0, 0), (0, pad))), present])
        self._rows.update((int(i), len(self._rows) + k) for k, i in enumerate(fresh))

    def at(self, step: int) -> np.ndarray:
        """The values at ``step`` of the trials that have one."""
        if step >= self._values.shape[1]:
            return np.empty(0)
        return self._values[self._present[:, step], step]


class CompletedTrials:
    """The completed trials' values of a study in a database, kept by a worker for its median or percentile
    pruner: its own trials as it completes them (``add``), the others' read once each (a completed trial
    never changes), the study asked for new ones at most every ``refresh`` seconds. Re-reading the study for
    every epoch would re-read every running trial of every worker (with eight workers, twice as long as the
    training)."""

    def __init__(self, study: optuna.Study, *, refresh: float = 1.0) -> None:
        backend = database(study._storage)
        if backend is None:
            raise ValueError(f"CompletedTrials reads a study in a database but got {type(study._storage).__name__}")
        self._backend, self._study_id, self._refresh = backend, study._study_id, refresh
        self._values = CompletedValues()
        self._looked = -math.inf

    @staticmethod
    def suits(pruner: optuna.pruners.BasePruner, study: optuna.Study) -> bool:
        """Whether ``pruner`` decides by the completed trials' values alone (median, percentile: see
        ``percentile_decisions``), on a study in a database."""
        return isinstance(pruner, optuna.pruners.PercentilePruner) and database(study._storage) is not None

    def add(self, trial_id: int, values: Mapping[int, float]) -> None:
        steps = np.fromiter(values, dtype=np.int64, count=len(values))
        self._values.add(
            [trial_id], (np.full(len(values), trial_id), steps, np.array(list(values.values()), dtype=float))
        )

    def values(self) -> CompletedValues:
        if time.monotonic() - self._looked >= self._refresh:
            self._values.add(*completed_curves(self._backend, self._study_id, known=self._values))
            self._looked = time.monotonic()
        return self._values


def _with_values(trial: FrozenTrial, values: dict[int, float]) -> FrozenTrial:
    shallow = copy.copy(trial)
    shallow.intermediate_values = values
    return shallow
