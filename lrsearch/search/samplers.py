"""Samplers by name. Each worker seeds its sampler differently: equal seeds would suggest duplicates."""

from __future__ import annotations

import warnings
from collections.abc import Container, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from lrsearch.errors import ConfigError
from lrsearch.search.tpe import PopulationTPESampler
from lrsearch.spec.choices import SAMPLERS

__all__ = ["FixingSampler", "create_sampler"]


class _GridSampler(optuna.samplers.GridSampler):
    """GridSampler for ask-and-tell: Optuna's stops ``study.optimize`` when the grid is covered (and raises
    outside it); here the study's budget decides when to stop."""

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        pass


class FixingSampler(optuna.samplers.PartialFixedSampler):
    """Optuna's PartialFixedSampler (fixed values for some parameters, the base sampler for the rest) that
    also leaves out of the relative sampling the parameters the trial will never suggest (``unused``: the
    other branches of a fixed choice). TPE with groups samples every group at each ask, the branches not
    taken too, and shares those values with other workers' constant liar as if the trial used them."""

    def __init__(
        self,
        fixed_params: Mapping[str, Any],
        base_sampler: optuna.samplers.BaseSampler,
        *,
        unused: Container[str] = frozenset(),
    ) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(dict(fixed_params), base_sampler)
        self._unused = unused

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = super().infer_relative_search_space(study, trial)
        return {name: d for name, d in space.items() if name not in self._unused}


def create_sampler(
    name: str, *, seed: int, grid: Mapping[str, Sequence[Any]] | None = None
) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        # TPE's ``group`` and the QMC sampler are marked experimental; they are chosen knowingly.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _create(name, seed, grid)


def _create(name: str, seed: int, grid: Mapping[str, Sequence[Any]] | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # multivariate + group: conditional branches (step.gamma only with step) are modelled together.
        return PopulationTPESampler(seed=seed, multivariate=True, group=True)
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
