"""The samplers and pruners a study may name, and the pruners' settings: checked (names, types, ranges, the
one rule Optuna has across them) and sized to the run, once, where a study is read; ``search`` makes them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lrsearch.checks import MAX_COUNT, MAX_STEPS, integer, number
from lrsearch.errors import ConfigError

__all__ = ["PRUNERS", "SAMPLERS", "pruner_settings"]

# CMA-ES is left out on purpose: Optuna's CmaEsSampler unpickles its state from the database, which is
# only safe on a database you trust, and a shared study database is exactly the one you may not.
SAMPLERS = {
    "tpe": "TPE, multivariate over the parameters chosen together (the default)",
    "random": "independent uniform / log-uniform draws",
    "qmc": "quasi-Monte Carlo (Sobol) over the space",
    "gp": "Gaussian-process Bayesian optimisation (slower to ask, for small budgets)",
    "grid": "every combination of the listed values (all searched parameters must be lists)",
}


PRUNERS = {
    "median": "prune below the median of completed trials at the same epoch (the default)",
    "percentile": "prune below a percentile (setting: percentile, 25) of completed trials at the same epoch",
    "successive_halving": "asynchronous successive halving: keep the best 1/reduction_factor at each rung",
    "asha": "successive_halving's other name",
    "hyperband": "Hyperband: successive halving in brackets of different first rungs, one per population member",
    "none": "train every trial to the end",
}
#: Each pruner's settings and their ranges (Optuna checks few of them, and not their types).
_SETTINGS: dict[str, dict[str, tuple[type, float, float]]] = {
    "median": {
        "n_startup_trials": (int, 0, MAX_COUNT),
        "n_warmup_steps": (int, 0, MAX_STEPS),
        "interval_steps": (int, 1, MAX_STEPS),
        "n_min_trials": (int, 1, MAX_COUNT),
    },
    "percentile": {
        "percentile": (float, 0.0, 100.0),
        "n_startup_trials": (int, 0, MAX_COUNT),
        "n_warmup_steps": (int, 0, MAX_STEPS),
        "interval_steps": (int, 1, MAX_STEPS),
        "n_min_trials": (int, 1, MAX_COUNT),
    },
    "successive_halving": {
        "min_resource": (int, 1, MAX_STEPS),
        "reduction_factor": (int, 2, 100),
        "min_early_stopping_rate": (int, 0, 100),
        "bootstrap_count": (int, 0, MAX_COUNT),
    },
    "hyperband": {
        "min_resource": (int, 1, MAX_STEPS),
        "max_resource": (int, 1, MAX_STEPS),
        "reduction_factor": (int, 2, 100),
        "bootstrap_count": (int, 0, MAX_COUNT),
    },
    "none": {},
}
_SETTINGS["asha"] = _SETTINGS["successive_halving"]


def _sized_hyperband(given: dict[str, Any], epochs: int, population: int) -> dict[str, Any]:
    """Hyperband over the run's epochs, its first rung set so that there are no more brackets than the
    population has members (each population then trains every bracket at once): with reduction factor eta,
    floor(log_eta(max / min)) + 1 brackets."""
    given.setdefault("max_resource", epochs)
    eta = given.setdefault("reduction_factor", 3)
    if "min_resource" not in given:
        most = max(1, math.floor(math.log(given["max_resource"], eta) + 1e-9) + 1)
        brackets = min(population, most)
        given["min_resource"] = max(1, given["max_resource"] // eta ** (brackets - 1))
    if given["min_resource"] != "auto" and given["min_resource"] > given["max_resource"]:
        raise ConfigError(
            f"pruner hyperband: min_resource ({given['min_resource']}) must be at most max_resource "
            f"({given['max_resource']}), the run's epochs unless given"
        )
    return given


def pruner_settings(
    name: str, settings: Mapping[str, Any] | None = None, *, epochs: int, population: int
) -> dict[str, Any]:
    """The settings pruner ``name`` is made with: ``settings`` checked, the unset ones sized to the run
    (epochs) and to the population."""
    if not isinstance(name, str) or name not in PRUNERS:
        raise ConfigError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")
    given = dict(settings or {})
    unknown = sorted(set(given) - set(_SETTINGS[name]))
    if unknown:
        raise ConfigError(
            f"pruner {name} has no setting {unknown[0]!r} (it takes: {', '.join(sorted(_SETTINGS[name])) or 'none'})"
        )
    for key, value in given.items():
        kind, low, high = _SETTINGS[name][key]
        if key == "min_resource" and value == "auto":
            continue
        given[key] = integer(key, value, int(low), int(high)) if kind is int else number(key, value, low, high)
    if name == "none":
        return given
    if name in ("successive_halving", "asha", "hyperband"):
        # Optuna's one rule across settings.
        if given.get("bootstrap_count", 0) > 0 and given.get("min_resource") == "auto":
            raise ConfigError(
                f"pruner {name}: bootstrap_count > 0 and min_resource == 'auto' are mutually incompatible, "
                f"bootstrap_count is {given['bootstrap_count']}"
            )
        if name != "hyperband":
            given.setdefault("min_resource", max(1, round(epochs / 27)))
            return given
        return _sized_hyperband(given, epochs, population)
    given.setdefault("n_startup_trials", min(5, population))
    given.setdefault("n_warmup_steps", max(1, epochs // 10))
    given.setdefault("percentile", 50.0 if name == "median" else 25.0)
    return given
