"""Population-based training's settings in a study file (``strategy = "pbt"`` and its ``[pbt]`` table),
checked where the study is read; Ray Tune's defaults (Jaderberg et al. 2017).

Without ``members`` every trial of the study trains as PBT. With it, the study compares: its ``n_trials``
search trials try the static schedules of the space, then ``members`` more trials train as one PBT
population, and the repeats replay the best member's discovered schedule from scratch beside each static
schedule's best."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from lrsearch.checks import MAX_COUNT, MAX_STEPS, integer, number
from lrsearch.errors import ConfigError

__all__ = ["STRATEGIES", "PBTSettings", "parse_pbt"]

#: How a study trains its trials: each on its own schedule (a search), or as a PBT population.
STRATEGIES = ("search", "pbt")


@dataclasses.dataclass(frozen=True)
class PBTSettings:
    """Every ``interval`` epochs the bottom ``quantile`` of a population takes the weights and optimizer state
    of a member of the top ``quantile``, and that member's lr, momentum and decay, each multiplied by one of
    ``perturbations`` or, with ``resample_probability``, drawn afresh from the space. ``members``: the
    PBT population's trials in a study that compares it with static schedules (None: every trial is PBT)."""

    interval: int = 4
    quantile: float = 0.25
    resample_probability: float = 0.25
    perturbations: tuple[float, ...] = (0.8, 1.2)
    members: int | None = None

    def exploited(self, population: int) -> int:
        """How many members of a population of ``population`` take others' weights at each interval."""
        return math.floor(population * self.quantile)


def parse_pbt(value: Any, *, epochs: int) -> PBTSettings:
    """A ``[pbt]`` table (the keys of ``PBTSettings``), checked against the run's ``epochs``."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"pbt: must be a table of settings but got {value!r}")
    fields = {f.name for f in dataclasses.fields(PBTSettings)}
    unknown = sorted(set(value) - fields)
    if unknown:
        raise ConfigError(f"pbt.{unknown[0]}: unknown setting (known: {', '.join(sorted(fields))})")
    settings = PBTSettings(
        **{k: tuple(v) if k == "perturbations" and isinstance(v, list) else v for k, v in value.items()}
    )
    integer("pbt.interval", settings.interval, 1, min(epochs, MAX_STEPS))
    number("pbt.quantile", settings.quantile, 0.0, 0.5, low_open=True)
    number("pbt.resample_probability", settings.resample_probability, 0.0, 1.0)
    if not isinstance(settings.perturbations, tuple) or not 1 <= len(settings.perturbations) <= 10:
        raise ConfigError(f"pbt.perturbations: must list 1 to 10 factors but got {settings.perturbations!r}")
    for factor in settings.perturbations:
        number("pbt.perturbations", factor, 0.0, 100.0, low_open=True)
    if settings.members is not None:
        integer("pbt.members", settings.members, 2, MAX_COUNT)
    return settings
