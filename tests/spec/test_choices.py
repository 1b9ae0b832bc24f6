from __future__ import annotations

import math

import optuna
import pytest

from lrsearch.errors import ConfigError
from lrsearch.search.pruning import PercentilePruner, create_pruner
from lrsearch.spec.choices import PRUNERS, pruner_settings


def test_defaults_are_sized_to_the_run() -> None:
    median = create_pruner("median", pruner_settings("median", epochs=200, population=3))
    assert isinstance(median, PercentilePruner) and median.percentile == 50.0
    assert (median.n_startup_trials, median.n_warmup_steps) == (3, 20)
    assert create_pruner("percentile", pruner_settings("percentile", epochs=200, population=3)).percentile == 25.0
    assert create_pruner("asha", pruner_settings("asha", epochs=54, population=8))._min_resource == 2
    assert isinstance(create_pruner("none", pruner_settings("none", epochs=5, population=2)), optuna.pruners.NopPruner)
    assert set(PRUNERS) == {"median", "percentile", "successive_halving", "asha", "hyperband", "none"}


@pytest.mark.parametrize(
    ("epochs", "population", "brackets"), [(200, 16, 5), (200, 4, 4), (200, 1, 1), (54, 8, 4), (3, 8, 2)]
)
def test_hyperband_has_no_more_brackets_than_the_population_has_members(
    epochs: int, population: int, brackets: int
) -> None:
    settings = pruner_settings("hyperband", epochs=epochs, population=population)
    assert settings["max_resource"] == epochs and settings["reduction_factor"] == 3
    pruner = create_pruner("hyperband", settings)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    eta, low = settings["reduction_factor"], settings["min_resource"]
    assert math.floor(math.log(epochs / low, eta) + 1e-9) + 1 == brackets


def test_asha_is_successive_halving_s_other_name() -> None:
    for name in ("asha", "successive_halving"):
        settings = pruner_settings(name, {"reduction_factor": 4}, epochs=54, population=8)
        pruner = create_pruner(name, settings)
        assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
        assert (pruner._min_resource, pruner._reduction_factor) == (2, 4)


@pytest.mark.parametrize(
    ("name", "settings", "fragment"),
    [
        ("wavelet", {}, "unknown pruner 'wavelet'"),
        ("hyperband", {"min_resource": 20, "max_resource": 10}, r"min_resource \(20\) must be at most max_resource"),
        ("hyperband", {"reduction_factor": 1}, r"reduction_factor must be an integer in \[2, 100\]"),
        ("median", {"patience": 2}, "has no setting 'patience'"),
        ("percentile", {"percentile": 150.0}, r"percentile must be a number in \[0, 100\] but got 150"),
        ("median", {"n_startup_trials": 1.5}, r"n_startup_trials must be an integer in \[0, 10000000\] but got 1.5"),
        ("median", {"n_warmup_steps": "2"}, "n_warmup_steps must be an integer"),
        ("percentile", {"percentile": float("nan")}, "percentile must be a number"),
        ("asha", {"reduction_factor": 1}, r"reduction_factor must be an integer in \[2, 100\]"),
        (
            "asha",
            {"min_resource": "auto", "bootstrap_count": 2},
            "pruner asha: bootstrap_count > 0 and min_resource == 'auto'",
        ),
    ],
)
def test_bad_pruners(name: str, settings: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        pruner_settings(name, settings, epochs=10, population=4)
