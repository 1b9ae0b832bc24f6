"""Pruners by name, sized for populations, and the view of the study they decide against each epoch.

Optuna's median and percentile pruners compare a trial with the *completed* trials at the same step, and
successive halving with the values other trials recorded at each rung: a population whose members start
together can only be pruned against trials that finished before. The search refills its population as
members end, so every trial after the first wave is pruned against those; the defaults below keep the
startup count within one population so that happens from the second wave on.

``trial.should_prune()`` re-reads the study for every call (25 ms and more with a population running);
``PruningView`` is the study read once per epoch, and the pruner decides every member against that
snapshot; for the median and percentile pruners, which look at nothing but the completed trials' values,
it holds just those (``CompletedTrials``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Container, Iterable, Mapping
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from lrsearch.errors import ConfigError
from lrsearch.rdb_reader import completed_values, reads_steps

__all__ = ["PRUNERS", "CompletedTrials", "PruningView", "create_pruner"]

PRUNERS = {
    "median": "prune below the median of completed trials at the same epoch (the default)",
    "percentile": "prune below a percentile (setting: percentile, 25) of completed trials at the same epoch",
    "asha": "asynchronous successive halving: keep the best 1/reduction_factor at each rung",
    "none": "train every trial to the end",
}
_SETTINGS = {
    "median": {"n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"},
    "percentile": {"percentile", "n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"},
    "asha": {"min_resource", "reduction_factor", "min_early_stopping_rate", "bootstrap_count"},
    "none": set(),
}


def create_pruner(
    name: str, settings: Mapping[str, Any] | None = None, *, epochs: int, population: int
) -> optuna.pruners.BasePruner:
    """A pruner; unset settings are sized to the run (epochs) and to the population."""
    if name not in PRUNERS:
        raise ConfigError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")
    given = dict(settings or {})
    unknown = sorted(set(given) - _SETTINGS[name])
    if unknown:
        raise ConfigError(f"pruner {name} has no setting {unknown[0]!r} (it takes: {', '.join(sorted(_SETTINGS[name])) or 'none'})")
    try:
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
    """The study as a pruner sees it during one epoch: ``trials`` (read once) and the study's directions.

    ``mirrors`` holds, per running trial id, the system attributes the pruner has written (successive
    halving's rungs), which the in-memory trials carry.
    """

    def __init__(self, study: optuna.Study, mirrors: Mapping[int, dict[str, Any]], trials: list[FrozenTrial]) -> None:
        self._trials = trials
        self._filtered: dict[tuple[TrialState, ...], list[FrozenTrial]] = {}
        self._storage = _RecordingStorage(study._storage, mirrors)
        self.direction = study.direction
        self.directions = study.directions

    @classmethod
    def read(cls, study: optuna.Study, mirrors: Mapping[int, dict[str, Any]], steps: Iterable[int] = ()) -> PruningView:
        """The view of every trial of the study, read now. Where the worker reads trials without their
        per-epoch values, the completed ones get theirs at ``steps`` (the epochs being decided) from one
        query: all a median or percentile pruner compares."""
        trials = study.get_trials(deepcopy=False)
        backend = _database(study)
        if backend is not None and not reads_steps(backend):
            values = completed_values(backend, study._study_id, steps)
            trials = [_with_values(t, values.get(t._trial_id, {})) if t.state == TrialState.COMPLETE else t
                      for t in trials]  # fmt: skip
        return cls(study, mirrors, trials)

    def get_trials(self, deepcopy: bool = False, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        # Asked once per member: filtered once per set of states.
        key = tuple(states) if isinstance(states, (tuple, list)) else None
        if key is None or key not in self._filtered:
            found = [t for t in self._trials if states is None or t.state in states]
            if key is None:
                return found
            self._filtered[key] = found
        return self._filtered[key]

    def should_prune(self, pruner: optuna.pruners.BasePruner, trial: FrozenTrial) -> bool:
        return pruner.prune(self, trial)  # type: ignore[arg-type]


class CompletedTrials:
    """The completed trials of a study in a database, with every per-epoch value, as a median or percentile
    pruner looks at them (nothing else): this worker's own as it completes them (``add``), the others' read
    once each (a completed trial never changes), the study asked for new ones at most every ``refresh``
    seconds. Re-reading the study for every epoch would re-read every running trial of every worker (with
    eight workers, twice as long as the training)."""

    def __init__(self, study: optuna.Study, *, refresh: float = 1.0) -> None:
        backend = _database(study)
        if backend is None:
            raise ValueError(f"CompletedTrials reads a study in a database but got {type(study._storage).__name__}")
        self._backend, self._study_id, self._refresh = backend, study._study_id, refresh
        self._trials: dict[int, FrozenTrial] = {}
        self._looked = -math.inf

    @staticmethod
    def suits(pruner: optuna.pruners.BasePruner, study: optuna.Study) -> bool:
        """Whether ``pruner`` decides by the completed trials' values alone (median, percentile), on a
        study in a database."""
        return isinstance(pruner, optuna.pruners.PercentilePruner) and _database(study) is not None

    def add(self, trial_id: int, values: dict[int, float]) -> None:
        self._trials[trial_id] = _completed(trial_id, dict(values))

    def trials(self) -> list[FrozenTrial]:
        if time.monotonic() - self._looked >= self._refresh:
            for trial_id, values in completed_values(self._backend, self._study_id, known=self._trials).items():
                self._trials[trial_id] = _completed(trial_id, values)
            self._looked = time.monotonic()
        return list(self._trials.values())


def _database(study: optuna.Study) -> RDBStorage | None:
    backend = getattr(study._storage, "_backend", study._storage)
    return backend if isinstance(backend, RDBStorage) else None


def _completed(trial_id: int, values: dict[int, float]) -> FrozenTrial:
    """A completed trial as the median and percentile pruners see it: its per-epoch values."""
    return FrozenTrial(number=-1, state=TrialState.COMPLETE, value=None, values=None, datetime_start=None,
                       datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
                       intermediate_values=values, trial_id=trial_id)  # fmt: skip


def _with_values(trial: FrozenTrial, values: dict[int, float]) -> FrozenTrial:
    shallow = copy.copy(trial)
    shallow.intermediate_values = values
    return shallow
