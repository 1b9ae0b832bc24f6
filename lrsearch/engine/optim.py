"""Optimizers for stacked parameters: a population's trained tensors as one flat [P, D] buffer
(``flat.FlatLayout``), row p member p's, and every hyperparameter per member.

``torch.optim`` takes one rate per parameter group, so a population of P members with P rates would need P
optimizers and P times the kernel launches. These write PyTorch's update rules out as whole-buffer ops with
[P, 1] coefficient columns instead: a handful of ops (kernels) per step whatever P is and however many
tensors the network has (SGD with momentum: 3; Adam: 8), and the same numbers as ``torch.optim`` (the tests
compare them member by member, and count the ops).

Rates vary per update; ``begin_epoch`` receives the epoch's rate table [P, n_updates] and precomputes
every per-update coefficient (bias corrections, decoupled decay), so ``step`` only slices.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from lrsearch.checks import boolean, number
from lrsearch.errors import ConfigError

__all__ = ["OPTIMIZERS", "StackedOptimizer", "create_optimizer", "optimizer_settings"]

Settings = Mapping[str, Any]


class StackedOptimizer(ABC):
    """One update rule for a population of members; state rows follow the members (``select``/``extend``)."""

    name: str
    defaults: dict[str, Any]
    state_names: tuple[str, ...] = ()

    def __init__(self, settings: Sequence[Settings], params: torch.Tensor) -> None:
        self.device = params.device
        self.state: dict[str, torch.Tensor] = {name: torch.zeros_like(params) for name in self.state_names}
        # Hyperparameters live on the host, in float64 as torch.optim has them; which ops a step needs is
        # decided from them, so a step never reads the device (no per-step sync on a GPU).
        self.host = {key: np.array([float(s[key]) for s in settings]) for key in self.defaults}
        self._members_changed()
        self._coefficients = torch.empty(0)

    def _members_changed(self) -> None:
        self._flags = {key: bool(np.any(v != 0)) for key, v in self.host.items()}
        self._columns: dict[str, torch.Tensor] = {}

    def _column(self, key: str) -> torch.Tensor:
        """A hyperparameter as a [P, 1] column on the device (made once until the members change)."""
        if key not in self._columns:
            self._columns[key] = torch.tensor(self._derived(key), dtype=torch.float32, device=self.device).view(-1, 1)
        return self._columns[key]

    def _derived(self, key: str) -> np.ndarray:
        """A hyperparameter's values, or values computed from them."""
        if key.startswith("1-"):
            return 1 - self.host[key[2:]]
        return self.host[key]

    def _any(self, key: str) -> bool:
        return self._flags[key]

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the members at indices ``keep`` (in that order)."""
        rows = list(keep)
        self.host = {key: v[rows] for key, v in self.host.items()}
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        self.state = {name: t.index_select(0, index) for name, t in self.state.items()}
        self._members_changed()

    def extend(self, settings: Sequence[Settings]) -> None:
        """Append members with fresh state."""
        self.host = {key: np.concatenate([v, [float(s[key]) for s in settings]]) for key, v in self.host.items()}
        self.state = {name: torch.cat([t, t.new_zeros((len(settings), t.shape[1]))]) for name, t in self.state.items()}
        self._members_changed()

    def begin_epoch(self, lr: np.ndarray, steps_done: np.ndarray) -> None:
        """``lr`` [P, n]: each member's rate for the epoch's n updates; ``steps_done`` [P]: updates so far."""
        step_numbers = steps_done[:, None] + 1 + np.arange(lr.shape[1])[None, :]
        tables = self._per_update(lr, step_numbers)
        # [K, n, P]: update b's coefficient k is the contiguous row tables[k, b].
        self._coefficients = torch.as_tensor(np.stack(tables).transpose(0, 2, 1).copy(), dtype=torch.float32).to(
            self.device, non_blocking=True
        )

    def _per_update(self, lr: np.ndarray, step_numbers: np.ndarray) -> list[np.ndarray]:
        """Per-update coefficient tables [P, n]; the first is the rate."""
        return [lr]

    def _coefficient(self, k: int, b: int) -> torch.Tensor:
        """Coefficient ``k`` of update ``b`` as a [P, 1] column."""
        return self._coefficients[k, b].view(-1, 1)

    def _coupled_weight_decay(self, params: torch.Tensor, grads: torch.Tensor) -> None:
        if self._any("weight_decay"):
            grads.addcmul_(params, self._column("weight_decay"))

    @abstractmethod
    def step(self, params: torch.Tensor, grads: torch.Tensor, b: int) -> None:
        """Apply update ``b`` of the epoch in place to ``params`` [P, D]; ``grads`` [P, D] are scratch and may
        be overwritten."""


class SGD(StackedOptimizer):
    """torch.optim.SGD (no dampening): buf = momentum * buf + g; step along buf, or g + momentum * buf."""

    name = "sgd"
    defaults: ClassVar[dict[str, float | bool]] = {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
    state_names = ("momentum_buffer",)

    def _derived(self, key: str) -> np.ndarray:
        if key == "nesterov_keep":
            nesterov = self.host["nesterov"]
            return 1 - nesterov + nesterov * self.host["momentum"]
        return super()._derived(key)

    def step(self, params: torch.Tensor, grads: torch.Tensor, b: int) -> None:
        self._coupled_weight_decay(params, grads)
        direction = grads
        if self._any("momentum"):
            buf = self.state["momentum_buffer"]
            buf.mul_(self._column("momentum")).add_(grads)
            if self._any("nesterov"):
                # d = buf * (1 - n + n * momentum) + n * g, with n = 1 for Nesterov members and 0 otherwise.
                direction = torch.mul(buf, self._column("nesterov_keep"))
                direction.addcmul_(grads, self._column("nesterov"))
            else:
                direction = buf
        params.addcmul_(direction, self._coefficient(0, b), value=-1)


class RMSprop(StackedOptimizer):
    """torch.optim.RMSprop (not centered)."""

    name = "rmsprop"
    defaults: ClassVar[dict[str, float | bool]] = {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0}
    state_names = ("square_avg", "momentum_buffer")

    def step(self, params: torch.Tensor, grads: torch.Tensor, b: int) -> None:
        self._coupled_weight_decay(params, grads)
        square_avg = self.state["square_avg"]
        square_avg.lerp_(torch.mul(grads, grads), self._column("1-alpha"))
        avg = torch.sqrt(square_avg).add_(self._column("eps"))
        direction = grads.div_(avg)
        if self._any("momentum"):
            buf = self.state["momentum_buffer"]
            buf.mul_(self._column("momentum")).add_(direction)
            direction = buf
        params.addcmul_(direction, self._coefficient(0, b), value=-1)


class Adagrad(StackedOptimizer):
    """torch.optim.Adagrad (lr_decay 0: decay comes from the schedule and ``decay``)."""

    name = "adagrad"
    defaults: ClassVar[dict[str, float | bool]] = {"eps": 1e-10, "weight_decay": 0.0}
    state_names = ("sum",)

    def step(self, params: torch.Tensor, grads: torch.Tensor, b: int) -> None:
        self._coupled_weight_decay(params, grads)
        total = self.state["sum"]
        total.addcmul_(grads, grads)
        std = torch.sqrt(total).add_(self._column("eps"))
        params.addcmul_(grads.div_(std), self._coefficient(0, b), value=-1)


class Adam(StackedOptimizer):
    """torch.optim.Adam; ``AdamW`` decouples the weight decay."""

    name = "adam"
    defaults: ClassVar[dict[str, float | bool]] = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    state_names = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def _per_update(self, lr: np.ndarray, step_numbers: np.ndarray) -> list[np.ndarray]:
        beta1, beta2, weight_decay = (self.host[key][:, None] for key in ("beta1", "beta2", "weight_decay"))
        step_size = lr / (1 - beta1**step_numbers)
        inv_sqrt_bias2 = 1 / np.sqrt(1 - beta2**step_numbers)
        shrink = 1 - lr * weight_decay if self.decoupled else np.ones_like(lr)
        return [step_size, inv_sqrt_bias2, shrink]

    def step(self, params: torch.Tensor, grads: torch.Tensor, b: int) -> None:
        if self.decoupled:
            if self._any("weight_decay"):
                params.mul_(self._coefficient(2, b))
        else:
            self._coupled_weight_decay(params, grads)
        exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
        exp_avg.lerp_(grads, self._column("1-beta1"))
        exp_avg_sq.lerp_(grads.mul_(grads), self._column("1-beta2"))
        denom = torch.sqrt(exp_avg_sq).mul_(self._coefficient(1, b)).add_(self._column("eps"))
        params.addcmul_(exp_avg.div(denom), self._coefficient(0, b), value=-1)


class AdamW(Adam):
    """torch.optim.AdamW: weight decay applied to the parameters, scaled by the rate."""

    name = "adamw"
    defaults: ClassVar[dict[str, float | bool]] = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}
    decoupled = True


OPTIMIZERS: dict[str, type[StackedOptimizer]] = {cls.name: cls for cls in (SGD, RMSprop, Adagrad, Adam, AdamW)}


def _optimizer_class(name: str) -> type[StackedOptimizer]:
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


#: Each setting's range: the averaging coefficients below 1, eps and weight decay up to where training
#: would be nothing but them.
_RANGES = {
    "momentum": (0.0, 1.0, True),
    "alpha": (0.0, 1.0, True),
    "beta1": (0.0, 1.0, True),
    "beta2": (0.0, 1.0, True),
    "eps": (0.0, 1.0, False),
    "weight_decay": (0.0, 100.0, False),
}


def optimizer_settings(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one member's optimizer hyperparameters and fill in PyTorch's defaults."""
    cls = _optimizer_class(name)
    unknown = sorted(set(given) - set(cls.defaults))
    if unknown:
        raise ConfigError(f"optimizer {name} has no parameter {unknown[0]!r} (it takes: {', '.join(cls.defaults)})")
    settings = {**cls.defaults, **given}
    for key, value in settings.items():
        if isinstance(cls.defaults[key], bool):
            boolean(key, value)
        else:
            low, high, high_open = _RANGES[key]
            number(key, value, low, high, high_open=high_open)
    if settings.get("nesterov") and settings["momentum"] == 0:
        raise ConfigError("nesterov needs momentum > 0 but got momentum 0")
    return settings


def create_optimizer(name: str, settings: Sequence[Settings], params: torch.Tensor) -> StackedOptimizer:
    """An optimizer for members whose (validated) settings are ``settings``, over flat ``params`` [P, D]."""
    return _optimizer_class(name)(settings, params)
