"""One training configuration: what a population member (and later a trial) varies."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lrsearch.checks import MAX_RATE, MAX_SEED, MAX_STEPS, integer, number
from lrsearch.engine.optim import optimizer_settings
from lrsearch.engine.schedules import SCHEDULES, Schedule, coerce_params, create_schedule, param_types
from lrsearch.errors import ConfigError

__all__ = ["SCHEDULE_UNITS", "TrainConfig"]

SCHEDULE_UNITS = ("epoch", "update")
#: Keras's time-based decay per update: beyond this the rate is gone after one update.
MAX_DECAY = 1e6


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run. Validated on construction: a bad value raises ConfigError naming it; the
    schedule, which depends on the run's length, once that is known (``build_schedule``).

    ``decay`` is Keras's time-based decay, applied per update on top of any schedule. ``weight_decay`` None
    takes the optimizer's default (0, or 0.01 for adamw). ``schedule_unit`` says whether the schedule's step
    (and ``warmup``) counts epochs (the rate is constant within an epoch) or updates.
    """

    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float | None = None
    optimizer_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    decay: float = 0.0
    schedule: str = "constant"
    schedule_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    schedule_unit: str = "epoch"
    warmup: int = 0
    warmup_start: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        number("lr", self.lr, 0.0, MAX_RATE, low_open=True)
        number("decay", self.decay, 0.0, MAX_DECAY)
        if self.schedule_unit not in SCHEDULE_UNITS:
            raise ConfigError(f"schedule_unit must be 'epoch' or 'update' but got {self.schedule_unit!r}")
        integer("seed", self.seed, 0, MAX_SEED)
        integer("warmup", self.warmup, 0, MAX_STEPS)
        number("warmup_start", self.warmup_start, 0.0, MAX_RATE)
        if not isinstance(self.schedule_params, Mapping) or not isinstance(self.optimizer_params, Mapping):
            raise ConfigError("schedule_params and optimizer_params must be tables of settings")
        # Normalise the parameter maps so equal configurations compare (and hash into reports) equal.
        object.__setattr__(self, "schedule_params", coerce_params(self.schedule, self.schedule_params))
        self.optimizer_settings()
        # The schedule's own checks need the run's length (its default ``total``): ``build_schedule`` makes
        # them, where the length is known (a study file's corners, ``lrsearch.train``, the population).

    def optimizer_settings(self) -> dict[str, Any]:
        """The optimizer's full hyperparameters, PyTorch defaults filled in."""
        given = dict(self.optimizer_params)
        if self.momentum:
            given["momentum"] = self.momentum
        if self.nesterov:
            given["nesterov"] = True
        if self.weight_decay is not None:
            given["weight_decay"] = self.weight_decay
        return optimizer_settings(self.optimizer, given)

    def horizon(self, epochs: int, updates_per_epoch: int) -> int:
        """A run's length in the schedule's steps."""
        return epochs if self.schedule_unit == "epoch" else epochs * updates_per_epoch

    def build_schedule(self, horizon: int) -> Schedule:
        """The schedule of a run ``horizon`` schedule units long (the default ``total``), checked over it."""
        schedule = self._schedule(horizon)
        schedule.check_rates(horizon)
        return schedule

    def _schedule(self, horizon: int) -> Schedule:
        params = dict(self.schedule_params)
        if self.schedule in SCHEDULES and "seed" in param_types(self.schedule):
            params.setdefault("seed", self.seed)  # a noisy schedule: every run its own noise
        return create_schedule(
            self.schedule,
            self.lr,
            params,
            warmup=self.warmup,
            warmup_start=self.warmup_start,
            horizon=horizon,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values; ``optimizer_settings`` is spelled out in full."""
        out = dataclasses.asdict(self)
        out["schedule_params"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.schedule_params.items()}
        out["optimizer_params"] = dict(self.optimizer_params)
        out["weight_decay"] = self.optimizer_settings()["weight_decay"]
        return out
