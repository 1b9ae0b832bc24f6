"""Pruners by name, sized for populations, and the view of the study they decide against each epoch.

Optuna's median and percentile pruners compare a trial with the *completed* trials at the same step, and
successive halving with the values other trials recorded at each rung: a population whose members start
together can only be pruned against trials that finished before. The search refills its population as
members end, so every trial after the first wave is pruned against those; the defaults below keep the
startup count within one population so that happens from the second wave on.

``trial.should_prune()`` re-reads the study for every call (25 ms and more with a population running);
``PruningView`` reads it once per epoch and the pruner decides every member against that snapshot.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Iterable, Mapping
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from lrsearch.errors import ConfigError
from lrsearch.rdb_reader import completed_values, reads_steps

__all__ = ["PRUNERS", "PruningView", "create_pruner"]

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
    """The study as a pruner sees it during one epoch: its trials read once.

    ``mirrors`` holds, per running trial id, the system attributes the pruner has written (successive
    halving's rungs), which the in-memory trials carry. Where the worker reads trials without their
    per-epoch values, the completed trials get their values at ``steps`` (the epochs being decided) from
    one query: all a median or percentile pruner compares.
    """

    def __init__(self, study: optuna.Study, mirrors: Mapping[int, dict[str, Any]], steps: Iterable[int] = ()) -> None:
        trials = study.get_trials(deepcopy=False)
        backend = getattr(study._storage, "_backend", None)
        if isinstance(backend, RDBStorage) and not reads_steps(backend):
            values = completed_values(backend, study._study_id, steps)
            trials = [_with_values(t, values.get(t._trial_id, {})) if t.state == TrialState.COMPLETE else t
                      for t in trials]  # fmt: skip
        self._trials = trials
        self._storage = _RecordingStorage(study._storage, mirrors)
        self.direction = study.direction
        self.directions = study.directions

    def get_trials(self, deepcopy: bool = False, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]

    def should_prune(self, pruner: optuna.pruners.BasePruner, trial: FrozenTrial) -> bool:
        return pruner.prune(self, trial)  # type: ignore[arg-type]


def _with_values(trial: FrozenTrial, values: dict[int, float]) -> FrozenTrial:
    shallow = copy.copy(trial)
    shallow.intermediate_values = values
    return shallow
