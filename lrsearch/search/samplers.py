"""Samplers by name. Each worker seeds its sampler differently: equal seeds would suggest duplicates."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Container, Iterator, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from lrsearch.errors import ConfigError
from lrsearch.search.tpe import PopulationTPESampler
from lrsearch.spec.choices import SAMPLERS

__all__ = ["GroupSampler", "create_sampler"]


class _GridSampler(optuna.samplers.GridSampler):
    """GridSampler for ask-and-tell: Optuna's stops ``study.optimize`` when the grid is covered (and raises
    outside it); here the study's budget decides when to stop."""

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        pass


class GroupSampler(optuna.samplers.BaseSampler):
    """A sampler that, for the trial being asked, fixes some parameters (``fixing``: the compared group the
    search gives the trial) and leaves out of the relative sampling the ones the trial will never suggest
    (the other branches of a fixed choice); the base sampler chooses everything else. TPE with groups
    samples every group at each ask, the branches not taken too, and shares those values with other
    workers' constant liar as if the trial used them. Optuna's PartialFixedSampler, with the fixed values
    changed between asks by its owner rather than by swapping the study's sampler."""

    def __init__(self, base: optuna.samplers.BaseSampler) -> None:
        self.base = base
        self._fixed: Mapping[str, Any] = {}
        self._unused: Container[str] = frozenset()

    @contextlib.contextmanager
    def fixing(self, fixed: Mapping[str, Any], *, unused: Container[str] = frozenset()) -> Iterator[None]:
        """Within the block (one ask and its sampling), ``fixed`` parameters take their values."""
        self._fixed, self._unused = dict(fixed), unused
        try:
            yield
        finally:
            self._fixed, self._unused = {}, frozenset()

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = self.base.infer_relative_search_space(study, trial)
        return {name: d for name, d in space.items() if name not in self._fixed and name not in self._unused}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if param_name in self._fixed:
            return self._fixed[param_name]
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self.base.after_trial(study, trial, state, values)


def create_sampler(
    name: str, *, seed: int, grid: Mapping[str, Sequence[Any]] | None = None
) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        # The QMC sampler is marked experimental; it is chosen knowingly.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _create(name, seed, grid)


def _create(name: str, seed: int, grid: Mapping[str, Sequence[Any]] | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # Multivariate, in groups: conditional branches (step.gamma only with step) are modelled together.
        return PopulationTPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "grid":
        if not grid:
            raise ConfigError("the grid sampler needs at least one searched parameter, all of them lists")
        return _GridSampler(dict(grid), seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
