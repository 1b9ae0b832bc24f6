"""TPE for populations: Optuna's TPESampler, with the same suggestions, for a study asked many trials at a time.

At every ask Optuna's TPE redoes work that only the study's finished trials decide: the groups of the
search space (a pass over every finished trial), and for each group the split of the trials into good and
bad, the density of the good ones and the observations of the bad ones (passes over every trial). A worker
asks a whole population between two reads of the study, so it did that work up to a population's times
over the same inputs: on a study of 1000 trials, most of a worker's time outside training. Here it is done
once per set of finished trials, and each ask reads only the running trials (which TPE's constant liar
counts among the bad ones) and draws its candidates as Optuna does, from the same random stream.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
from optuna.samplers._tpe.sampler import _split_trials, default_gamma
from optuna.trial import FrozenTrial, TrialState

__all__ = ["PopulationTPESampler"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_WITH_RUNNING = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


@dataclasses.dataclass
class _Split:
    """What one group's suggestions share while the finished trials stay the same: the good trials' density,
    and the bad finished trials' numbers and internal values (those holding every parameter of the group)."""

    below: _ParzenEstimator
    above_numbers: np.ndarray
    above: dict[str, np.ndarray]
    # The running trials last seen, and the numbers and internal values of those holding every parameter.
    # Between two reads of the study each ask adds one running trial (the one asked before it).
    running: list[FrozenTrial] = dataclasses.field(default_factory=list)
    running_numbers: list[int] = dataclasses.field(default_factory=list)
    running_rows: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)


class PopulationTPESampler(optuna.samplers.TPESampler):
    """``TPESampler`` (single objective, constant liar: Optuna's defaults) that computes what a set of
    finished trials decides once, instead of at every ask; any other use is Optuna's own code."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._space_for: tuple[int, ...] | None = None  # the finished trials the groups were computed for
        self._space: dict[str, BaseDistribution] = {}
        self._splits_for: tuple[int, ...] | None = None
        self._splits: dict[tuple[tuple[str, BaseDistribution], ...], _Split] = {}
        # The trials one ask samples against, read once for all its groups: (trial id, finished, their
        # fingerprint, running).
        self._seen: tuple[int, list[FrozenTrial], tuple[int, ...], list[FrozenTrial]] | None = None

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if not self._group or not self._is_multivariate(study):
            return super().infer_relative_search_space(study, trial)
        # Optuna folds every finished trial into the groups again at each ask; finished trials never change,
        # so the same finished trials mean the same groups.
        finished = _fingerprint(study._get_trials(deepcopy=False, states=_FINISHED, use_cache=True))
        if finished != self._space_for:
            self._space = super().infer_relative_search_space(study, trial)
            self._space_for = finished
        return dict(self._space)

    def _sample(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not self._constant_liar or study._is_multi_objective():
            return super()._sample(study, trial, search_space)
        if self._seen is None or self._seen[0] != trial._trial_id:
            trials = study._get_trials(deepcopy=False, states=_WITH_RUNNING, use_cache=False)
            finished = [t for t in trials if t.state != TrialState.RUNNING]
            self._seen = (
                trial._trial_id,
                finished,
                _fingerprint(finished),
                [t for t in trials if t.state == TrialState.RUNNING and t.number != trial.number],
            )
        _, finished, fingerprint, running = self._seen
        split = self._split(study, finished, fingerprint, search_space)
        self._see_running(study, split, running, search_space)
        # The bad trials in the order Optuna gives them (by number): TPE weighs older observations less.
        order = np.argsort(
            np.concatenate([split.above_numbers, np.asarray(split.running_numbers, dtype=np.int64)]), kind="stable"
        )
        above = {
            name: _joined(split.above[name], np.asarray([row[i] for row in split.running_rows]))[order]
            for i, name in enumerate(search_space)
        }
        mpe_above = self._parzen_estimator_cls(above, search_space, self._parzen_estimator_parameters)
        samples = split.below.sample(self._rng.rng, self._n_ei_candidates)
        best = optuna.samplers.TPESampler._compare(
            samples, self._compute_acquisition_func(samples, split.below, mpe_above)
        )
        return {name: distribution.to_external_repr(best[name]) for name, distribution in search_space.items()}

    def _split(
        self,
        study: optuna.Study,
        finished: list[FrozenTrial],
        fingerprint: tuple[int, ...],
        search_space: dict[str, BaseDistribution],
    ) -> _Split:
        if fingerprint != self._splits_for:
            self._splits_for, self._splits = fingerprint, {}
        key = tuple(search_space.items())
        split = self._splits.get(key)
        if split is None:
            if self._gamma is None:
                self._gamma = default_gamma
            # Running trials always go to the bad side, so splitting the finished ones alone is the same split.
            below, above = _split_trials(study, finished, self._gamma(len(finished)))
            kept = [t for t in above if search_space.keys() <= self._get_params(t, study).keys()]
            split = _Split(
                below=self._build_parzen_estimator(study, search_space, below, handle_below=True),
                above_numbers=np.asarray([t.number for t in kept], dtype=np.int64),
                above=self._get_internal_repr(kept, search_space, study),
            )
            self._splits[key] = split
        return split

    def _see_running(
        self, study: optuna.Study, split: _Split, running: list[FrozenTrial], search_space: dict[str, BaseDistribution]
    ) -> None:
        """Bring the split's running rows up to ``running``: only the trials added since the last ask, unless
        the study was read again (list equality is identity first, else the trials' contents)."""
        seen = len(split.running)
        if running[:seen] != split.running:
            split.running, split.running_numbers, split.running_rows, seen = [], [], [], 0
        for t in running[seen:]:
            params = self._get_params(t, study)
            if search_space.keys() <= params.keys():
                split.running_numbers.append(t.number)
                split.running_rows.append(tuple(d.to_internal_repr(params[n]) for n, d in search_space.items()))
        split.running = list(running)


def _fingerprint(finished: list[FrozenTrial]) -> tuple[int, ...]:
    """The numbers of the finished trials: a trial only ever joins them, but for a worker's own view of a
    trial it finished (``search.telling``) that another worker had failed as stale meanwhile."""
    return tuple(t.number for t in finished)


def _joined(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Concatenated, keeping the dtype Optuna's single list would have had (an empty part has no say)."""
    parts = [a for a in (first, second) if a.size]
    return np.concatenate(parts) if parts else first
