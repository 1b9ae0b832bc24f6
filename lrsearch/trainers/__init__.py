"""The problems lrsearch trains, and the population engine that trains many configurations at once."""

from __future__ import annotations

from lrsearch.trainers.population import (
    EpochMetrics,
    EpochReport,
    MemberResult,
    Population,
    check_run_length,
    train_population,
)
from lrsearch.trainers.problems import TRAINERS, Problem, load_dataset, load_problem

__all__ = [
    "TRAINERS",
    "EpochMetrics",
    "EpochReport",
    "MemberResult",
    "Population",
    "Problem",
    "check_run_length",
    "load_dataset",
    "load_problem",
    "train_population",
]
