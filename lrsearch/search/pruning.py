"""Pruners by name, sized for populations, and the view of the study they decide against each epoch.

Optuna's median and percentile pruners compare a trial with the *completed* trials at the same step, and
successive halving with the values other trials recorded at each rung: a population whose members start
together can only be pruned against trials that finished before. The search refills its population as
members end, so every trial after the first wave is pruned against those; the defaults below keep the
startup count within one population so that happens from the second wave on.

``trial.should_prune()`` re-reads the study for every call (25 ms and more with a population running);
``PruningView`` is the worker's view of the study, read once per epoch, and the pruner decides every member
against it. The median and percentile pruners look at nothing but the completed trials' values:
``PercentilePruner`` is lrsearch's own, which decides a whole population against the values the worker's
view keeps (``decide``) and one trial as Optuna's ``PercentilePruner`` does, by asking it.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from lrsearch.errors import ConfigError
from lrsearch.spec.choices import PRUNERS
from lrsearch.storage.records import replaced
from lrsearch.storage.view import CompletedValues
from lrsearch.storage.workers import values_at

__all__ = ["PercentilePruner", "PruningView", "create_pruner", "nan_percentile"]


def create_pruner(name: str, settings: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The pruner ``name`` with ``settings`` as ``spec.choices.pruner_settings`` checked and sized them."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name in ("successive_halving", "asha"):
        return optuna.pruners.SuccessiveHalvingPruner(**settings)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(**settings)
    if name in ("median", "percentile"):
        return PercentilePruner(**settings)
    raise ConfigError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")


class _RecordingStorage:
    """The study's storage as a pruner sees it in one epoch: the view's trials, and the rung records a
    pruner writes, which also land in the members' mirrors. It answers what ``optuna.Study`` asks of a
    storage to be made over it (Hyperband makes a study per bracket)."""

    def __init__(
        self,
        study: optuna.Study,
        trials: Sequence[FrozenTrial],
        mirrors: Mapping[int, dict[str, Any]],
    ) -> None:
        self._storage, self._trials, self._mirrors = study._storage, trials, mirrors
        self._name, self._study_id, self._directions = study.study_name, study._study_id, study.directions

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._storage.set_trial_system_attr(trial_id, key, value)
        self._mirrors[trial_id][key] = value

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name != self._name:
            raise KeyError(f"no study {study_name!r} in this epoch's view")
        return self._study_id

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return list(self._directions)

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]


class PruningView:
    """The study as a pruner sees it during one epoch: the worker's view of its trials.

    ``mirrors`` holds, per running trial id, the system attributes the pruner has written (successive
    halving's rungs), which the in-memory trials carry. Where the worker reads trials without their
    per-epoch values, the completed trials get their values at ``steps`` (the epochs being decided) from
    one query. It carries what Hyperband needs to make a study per bracket over it (the study's name, id,
    sampler and a storage answering for this view).
    """

    def __init__(self, study: optuna.Study, mirrors: Mapping[int, dict[str, Any]], steps: Iterable[int] = ()) -> None:
        trials = study.get_trials(deepcopy=False)
        values = values_at(study, steps)
        if values is not None:
            trials = [
                replaced(t, intermediate_values=values.get(t._trial_id, {})) if t.state == TrialState.COMPLETE else t
                for t in trials
            ]
        self._trials = trials
        self._storage = _RecordingStorage(study, trials, mirrors)
        self._study_id, self.study_name, self.sampler = study._study_id, study.study_name, study.sampler
        self.direction = study.direction
        self.directions = study.directions

    def get_trials(self, deepcopy: bool = False, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]

    def should_prune(self, pruner: optuna.pruners.BasePruner, trial: FrozenTrial) -> bool:
        return pruner.prune(self, trial)  # type: ignore[arg-type]


class PercentilePruner(optuna.pruners.BasePruner):
    """Prune a trial whose best value so far is worse than the ``percentile``-th of the completed trials'
    values at the same step (50: the median), with Optuna's ``PercentilePruner``'s parameters and rule.

    ``prune`` asks Optuna's own pruner, made with the same parameters. ``decide`` takes a population at
    once: each step's percentile computed once for every member at it, from the completed trials' values
    kept as arrays (Optuna's pruner computes it over every completed trial, and walks the member's values
    twice, for each member it is asked about; for a population at every epoch that was most of a worker's
    time). The tests hold the two equal.
    """

    def __init__(
        self,
        percentile: float,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        *,
        n_min_trials: int = 1,
    ) -> None:
        self._optuna = optuna.pruners.PercentilePruner(
            percentile, n_startup_trials, n_warmup_steps, interval_steps, n_min_trials=n_min_trials
        )  # checks the parameters as Optuna does
        self.percentile, self.n_startup_trials, self.n_warmup_steps = percentile, n_startup_trials, n_warmup_steps
        self.interval_steps, self.n_min_trials = interval_steps, n_min_trials
        # Each step's threshold for the completed values it was computed from: they change about once a
        # second, the steps asked about every epoch.
        self._thresholds_for: tuple[int, int, StudyDirection] | None = None
        self._thresholds: dict[int, float] = {}

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self._optuna.prune(study, trial)

    def decide(
        self, completed: CompletedValues, direction: StudyDirection, members: Sequence[tuple[int, float]]
    ) -> list[bool]:
        """What ``prune`` decides for members of a population, each given as (the step it reached, its best
        value so far) with a value at every step before (one per epoch), against the ``completed`` trials'
        values (all that the rule looks at)."""
        if not len(completed) or len(completed) < self.n_startup_trials:
            return [False] * len(members)
        warmup, interval = self.n_warmup_steps, self.interval_steps
        percentile = 100 - self.percentile if direction == StudyDirection.MAXIMIZE else self.percentile
        if self._thresholds_for != (id(completed), len(completed), direction):
            self._thresholds_for, self._thresholds = (id(completed), len(completed), direction), {}
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
            if step not in self._thresholds:
                values = completed.at(step)
                self._thresholds[step] = (
                    math.nan if len(values) < self.n_min_trials else nan_percentile(values, percentile)
                )
            threshold = self._thresholds[step]
            decisions.append(
                not math.isnan(threshold)
                and (best < threshold if direction == StudyDirection.MAXIMIZE else best > threshold)
            )
        return decisions


def nan_percentile(values: np.ndarray, q: float) -> float:
    """``np.nanpercentile(values, q)`` of a 1-d array, to the bit (the rule's threshold, Optuna's call), at a
    fraction of its cost: numpy's general path took most of a population's pruning decision. Linear
    interpolation between the two order statistics around ``(n - 1) q / 100``, as numpy's ``_lerp`` does it."""
    kept = values[~np.isnan(values)]  # infinities stay, as numpy keeps them
    n = len(kept)
    if n == 0:
        return math.nan
    at = (n - 1) * (q / 100)
    if at >= n - 1:  # the largest, interpolated with itself as numpy does (an infinite one gives NaN)
        below = -1
        low = high = float(kept.max())
    else:
        below = math.floor(at)
        low, high = (float(v) for v in np.partition(kept, (below, below + 1))[below : below + 2])
    t, gap = at - below, high - low
    return high - gap * (1 - t) if t >= 0.5 else low + gap * t
