"""The problems lrsearch trains, and the population engine that trains many configurations at once."""

from __future__ import annotations

from lrsearch.engine.population import (
    EpochMetrics,
    EpochReport,
    MemberResult,
    Population,
    check_run_length,
    member_seeds,
    train_population,
    update_seed,
)
from lrsearch.engine.problems import TRAINERS, Problem, load_dataset, load_problem

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
    "member_seeds",
    "train_population",
    "update_seed",
]
