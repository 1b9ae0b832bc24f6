"""A study's search space and how an Optuna trial samples a training configuration from it.

Top-level parameters use the engine's names (``lr``, ``momentum``, ``decay``, ``optimizer``, ``schedule``,
``warmup``, ...). A schedule's or an optimizer's own parameters live in a branch named after it and are
sampled only when that schedule or optimizer is chosen, as ``<branch>.<name>`` (``step.gamma``,
``adam.beta2``), so every Optuna parameter keeps one distribution. Lists (step milestones) cannot be
Optuna categories; they are offered as their comma-joined text and parsed back.

Arms are named configurations compared as wholes (d2l's schedules, each at its own rate; optimizers at
their Keras defaults): the categorical parameter ``arm`` picks one, and its settings are fixed values.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import optuna

from lrsearch.engine.config import TrainConfig
from lrsearch.engine.optim import OPTIMIZERS
from lrsearch.engine.schedules import param_types

__all__ = ["ARM", "Choice", "FloatRange", "IntRange", "Param", "SearchSpace", "Suggester"]

#: The parameter that picks an arm.
ARM = "arm"

#: Parameters a space may search or fix at the top level (TrainConfig fields).
TOP_LEVEL = (
    "lr",
    "optimizer",
    "momentum",
    "nesterov",
    "weight_decay",
    "decay",
    "schedule",
    "schedule_unit",
    "warmup",
    "warmup_start",
)
#: Parameters an optimizer branch may hold besides the optimizer's own settings.
OPTIMIZER_BRANCH = ("lr", "momentum", "nesterov", "weight_decay")
#: The optimizer and schedule a space that does not name them trains with (TrainConfig's defaults).
DEFAULT_BRANCHES = {"optimizer": "sgd", "schedule": "constant"}
#: Optimizers whose update rule has momentum (top-level ``momentum`` is sampled only for these).
WITH_MOMENTUM = tuple(name for name, cls in OPTIMIZERS.items() if "momentum" in cls.defaults)


@dataclasses.dataclass(frozen=True)
class FloatRange:
    """``auto``: the bounds are the range test's sweep, replaced by what the test finds before a study runs."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    auto: bool = False

    def suggest(self, trial: Suggester, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def extremes(self) -> tuple[float, ...]:
        return (self.low, self.high)


@dataclasses.dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False
    step: int = 1

    def suggest(self, trial: Suggester, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def extremes(self) -> tuple[int, ...]:
        return (self.low, self.high)


@dataclasses.dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]

    @staticmethod
    def encode(value: Any) -> Any:
        """Lists become their comma-joined text: Optuna categories are scalars."""
        return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value

    def suggest(self, trial: Suggester, name: str) -> Any:
        chosen = trial.suggest_categorical(name, [self.encode(v) for v in self.values])
        return next(v for v in self.values if self.encode(v) == chosen)

    def extremes(self) -> tuple[Any, ...]:
        return self.values


Param = FloatRange | IntRange | Choice


class Suggester(Protocol):
    """What sampling needs from an Optuna trial (``optuna.Trial`` and ``FixedTrial`` both are one)."""

    def suggest_float(
        self, name: str, low: float, high: float, *, log: bool = ..., step: float | None = ...
    ) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = ..., step: int = ...) -> int: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """``params``: searched top-level parameters; ``fixed``: top-level values every trial shares;
    ``branches``: per schedule or optimizer name, its own parameters (searched ones, or fixed values);
    ``arms``: named configurations (their settings fixed), picked by the parameter ``arm``."""

    params: Mapping[str, Param]
    fixed: Mapping[str, Any]
    branches: Mapping[str, Mapping[str, Param | Any]]
    arms: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def param_names(self) -> list[str]:
        """Every Optuna parameter name the space can produce."""
        names = list(self.params)
        for branch, entries in self.branches.items():
            names += [f"{branch}.{k}" for k, v in entries.items() if isinstance(v, Param)]
        return names

    def find(self, name: str) -> Param | None:
        """The parameter behind an Optuna name (``lr``, ``step.gamma``), or None."""
        if name in self.params:
            return self.params[name]
        branch, _, key = name.partition(".")
        entry = self.branches.get(branch, {}).get(key)
        return entry if isinstance(entry, Param) else None

    def other_branches(self, name: str, value: Any) -> set[str]:
        """The Optuna names a trial whose choice ``name`` is ``value`` never suggests: the parameters of the
        branches named after the choice's other values (a cosine trial has no ``step.gamma``)."""
        choice = self.params.get(name)
        if not isinstance(choice, Choice):
            return set()
        others = {Choice.encode(v) for v in choice.values} - {Choice.encode(value)}
        return {n for n in self.param_names() if "." in n and n.partition(".")[0] in others}

    def sample(self, trial: Suggester, *, seed: int) -> TrainConfig:
        """The configuration ``trial`` chooses (raises ConfigError if the combination is invalid)."""

        arm = self.arms[self.params[ARM].suggest(trial, ARM)] if self.arms else {}

        def pick(name: str, default: Any = None) -> Any:
            if name in arm:
                return arm[name]
            if name in self.params:
                return self.params[name].suggest(trial, name)
            return self.fixed.get(name, default)

        values: dict[str, Any] = {}
        optimizer = pick("optimizer", DEFAULT_BRANCHES["optimizer"])
        schedule = pick("schedule", DEFAULT_BRANCHES["schedule"])
        for name in TOP_LEVEL:
            if name in ("optimizer", "schedule"):
                continue
            if name in ("momentum", "nesterov") and optimizer not in WITH_MOMENTUM:
                continue  # conditional: only optimizers with momentum sample it
            if name in arm or name in self.params or name in self.fixed:
                values[name] = pick(name)
        # An arm's other settings belong to its schedule or its optimizer (the study file was checked).
        schedule_params = {k: v for k, v in arm.items() if k in param_types(schedule)}
        optimizer_params: dict[str, Any] = {
            k: v for k, v in arm.items() if k not in TOP_LEVEL and k not in schedule_params
        }
        for key, entry in self.branches.get(optimizer, {}).items():
            value = entry.suggest(trial, f"{optimizer}.{key}") if isinstance(entry, Param) else entry
            if key in OPTIMIZER_BRANCH:
                values[key] = value
            else:
                optimizer_params[key] = value
        for key, entry in self.branches.get(schedule, {}).items():
            schedule_params[key] = entry.suggest(trial, f"{schedule}.{key}") if isinstance(entry, Param) else entry
        return TrainConfig(
            optimizer=optimizer,
            schedule=schedule,
            optimizer_params=optimizer_params,
            schedule_params=schedule_params,
            seed=seed,
            **values,
        )

    def corners(self) -> Iterator[TrainConfig]:
        """One configuration for every combination of categorical values and range ends (each branch only
        with the schedule or optimizer that selects it): what validation builds, so that no reachable
        combination fails only once a study runs."""
        top = list(self.params)
        for combination in itertools.product(*(self.params[n].extremes() for n in top)):
            chosen = dict(zip(top, combination, strict=True))
            arm = self.arms.get(chosen.get(ARM), {})
            selected = [
                arm.get(key, chosen.get(key, self.fixed.get(key, default))) for key, default in DEFAULT_BRANCHES.items()
            ]
            branch_names = [
                f"{branch}.{key}"
                for branch in selected
                for key, entry in self.branches.get(branch, {}).items()
                if isinstance(entry, Param)
            ]
            extremes = [self.find(name).extremes() for name in branch_names]  # type: ignore[union-attr]
            for branch_combination in itertools.product(*extremes):
                values = {**chosen, **dict(zip(branch_names, branch_combination, strict=True))}
                yield self.sample(optuna.trial.FixedTrial({n: Choice.encode(v) for n, v in values.items()}), seed=0)
