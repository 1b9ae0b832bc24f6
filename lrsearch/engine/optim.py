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
    #: State that starts as a copy of the parameters (schedule-free's z), not at zero.
    copied_state: tuple[str, ...] = ()
    #: Per-member values on the host that run along the updates, and where they start.
    running_start: ClassVar[dict[str, float]] = {}

    def __init__(self, settings: Sequence[Settings], params: torch.Tensor) -> None:
        self.device = params.device
        self.state: dict[str, torch.Tensor] = {name: self._fresh(name, params) for name in self.state_names}
        self.running = {key: np.full(len(settings), start) for key, start in self.running_start.items()}
        # Hyperparameters live on the host, in float64 as torch.optim has them; which ops a step needs is
        # decided from them, so a step never reads the device (no per-step sync on a GPU).
        self.host = {key: np.array([float(s[key]) for s in settings]) for key in self.defaults}
        self._members_changed()
        self._coefficients = torch.empty(0)

    def _fresh(self, name: str, params: torch.Tensor) -> torch.Tensor:
        return params.clone() if name in self.copied_state else torch.zeros_like(params)

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
        self.running = {key: v[rows] for key, v in self.running.items()}
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        self.state = {name: t.index_select(0, index) for name, t in self.state.items()}
        self._members_changed()

    def copy_member(self, recipient: int, donor: int) -> None:
        """Member ``recipient`` takes ``donor``'s state (its moments, its average, its running sums):
        population-based training's exploit, its hyperparameters kept."""
        for tensor in self.state.values():
            tensor[recipient] = tensor[donor]
        for values in self.running.values():
            values[recipient] = values[donor]

    def retune(self, member: int, settings: Settings) -> None:
        """Member ``member``'s hyperparameters from now on (population-based training's explore)."""
        for key, values in self.host.items():
            values[member] = float(settings[key])
        self._members_changed()

    def extend(self, settings: Sequence[Settings], params: torch.Tensor) -> None:
        """Append members with fresh state; ``params`` [new members, D] are their starting parameters."""
        self.host = {key: np.concatenate([v, [float(s[key]) for s in settings]]) for key, v in self.host.items()}
        self.running = {
            key: np.concatenate([v, np.full(len(settings), self.running_start[key])]) for key, v in self.running.items()
        }
        self.state = {name: torch.cat([t, self._fresh(name, params)]) for name, t in self.state.items()}
        self._members_changed()

    def evaluation_point(self, params: torch.Tensor) -> torch.Tensor:
        """The parameters a member is evaluated at (its averaged point, for a schedule-free optimizer)."""
        return params

    def begin_epoch(self, lr: np.ndarray, steps_done: np.ndarray) -> None:
        """``lr`` [P, n]: each member's rate for the epoch's n updates; ``steps_done`` [P]: updates so far."""
        step_numbers = steps_done[:, None] + 1 + np.arange(lr.shape[1])[None, :]
        tables = self._per_update(lr, step_numbers)
        # [K, n, P]: update b's coefficient k is the contiguous row tables[k, b].
        self._coefficients = torch.as_tensor(np.stack(tables).transpose(0, 2, 1).copy(), dtype=torch.float32).to(
            self.device, non_blocking=True
        )

    def _per_update(self, lr: np.ndarray, step_numbers: np.ndarray) -> list[np.ndarray]:
        """Per-update coefficient tables [P, n] (the first is the rate), ``running`` brought past them."""
        return [lr]

    def _coefficient(self, k: int, b: int) -> torch.Tensor:
        """Coefficient ``k`` of update ``b`` as a [P, 1] column."""
        return self._coefficients[k, b].view(-1, 1)

    def _adam_denominator(self, grads: torch.Tensor, bias: int, b: int, *, keep_grads: bool = True) -> torch.Tensor:
        """Adam's second moment brought up to date with ``grads`` and its denominator: sqrt(v) times the
        bias correction (coefficient ``bias``), plus eps. ``keep_grads=False`` squares them in place."""
        exp_avg_sq = self.state["exp_avg_sq"]
        exp_avg_sq.lerp_(torch.mul(grads, grads) if keep_grads else grads.mul_(grads), self._column("1-beta2"))
        return torch.sqrt(exp_avg_sq).mul_(self._coefficient(bias, b)).add_(self._column("eps"))

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
        exp_avg = self.state["exp_avg"]
        exp_avg.lerp_(grads, self._column("1-beta1"))
        denom = self._adam_denominator(grads, 1, b, keep_grads=False)
        params.addcmul_(exp_avg.div(denom), self._coefficient(0, b), value=-1)


class AdamW(Adam):
    """torch.optim.AdamW: weight decay applied to the parameters, scaled by the rate."""

    name = "adamw"
    defaults: ClassVar[dict[str, float | bool]] = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}
    decoupled = True


class NAdamW(StackedOptimizer):
    """torch.optim.NAdam with decoupled weight decay (``decoupled_weight_decay=True``): Adam with Nesterov
    momentum whose factor mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay)) warms up (Dozat 2016)."""

    name = "nadamw"
    defaults: ClassVar[dict[str, float | bool]] = {
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.01,
        "momentum_decay": 0.004,
    }
    state_names = ("exp_avg", "exp_avg_sq")
    running_start: ClassVar[dict[str, float]] = {"mu_product": 1.0}

    def _per_update(self, lr: np.ndarray, step_numbers: np.ndarray) -> list[np.ndarray]:
        beta1, beta2, weight_decay, psi = (
            self.host[key][:, None] for key in ("beta1", "beta2", "weight_decay", "momentum_decay")
        )
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step_numbers * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step_numbers + 1) * psi))
        mu_product = self.running["mu_product"][:, None] * np.cumprod(mu, axis=1)
        self.running["mu_product"] = mu_product[:, -1].copy()
        inv_sqrt_bias2 = 1 / np.sqrt(1 - beta2**step_numbers)
        # params -= lr (1 - mu) / (1 - prod mu) g / denom + lr mu' / (1 - prod mu mu') m / denom
        grad_step = lr * (1.0 - mu) / (1.0 - mu_product)
        avg_step = lr * mu_next / (1.0 - mu_product * mu_next)
        return [lr, inv_sqrt_bias2, 1 - lr * weight_decay, grad_step, avg_step]

    def step(self, params: torch.Tensor, grads: torch.Tensor, b: int) -> None:
        if self._any("weight_decay"):
            params.mul_(self._coefficient(2, b))
        exp_avg = self.state["exp_avg"]
        exp_avg.lerp_(grads, self._column("1-beta1"))
        denom = self._adam_denominator(grads, 1, b)
        params.addcdiv_(grads.mul_(self._coefficient(3, b)), denom, value=-1)
        params.addcdiv_(exp_avg * self._coefficient(4, b), denom, value=-1)


class _ScheduleFree(StackedOptimizer):
    """Schedule-free (Defazio et al. 2024, the ``schedulefree`` package's update): a base sequence z steps
    along the gradient, x is z's weighted average (weights lr_max ** weight_lr_power), and the gradient is
    taken at y = (1 - beta) z + beta x, which the parameters hold while training; a member is evaluated at
    x (``evaluation_point``). ``warmup_steps`` is their warmup: the rate scaled by (k + 1) / warmup_steps for
    the first updates, so the run's schedule should be ``constant``."""

    state_names: tuple[str, ...] = ("z",)
    copied_state = ("z",)
    running_start: ClassVar[dict[str, float]] = {"lr_max": -1.0, "weight_sum": 0.0}
    beta = "momentum"  # the hyperparameter that mixes x into y

    def _per_update(self, lr: np.ndarray, step_numbers: np.ndarray) -> list[np.ndarray]:
        warmup = self.host["warmup_steps"][:, None]
        rate = lr * np.where(step_numbers <= warmup, step_numbers / np.maximum(warmup, 1), 1.0)
        lr_max = np.maximum(self.running["lr_max"][:, None], np.maximum.accumulate(rate, axis=1))
        weight = step_numbers ** self.host["r"][:, None] * lr_max ** self.host["weight_lr_power"][:, None]
        weight_sum = self.running["weight_sum"][:, None] + np.cumsum(weight, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            average = np.where(weight_sum > 0, weight / weight_sum, 0.0)
        self.running["lr_max"], self.running["weight_sum"] = lr_max[:, -1].copy(), weight_sum[:, -1].copy()
        beta = self.host[self.beta][:, None]
        return [rate, average, rate * (beta * (1.0 - average) - 1.0)]

    def _derived(self, key: str) -> np.ndarray:
        if key == "x_from_y":
            return 1.0 - 1.0 / self.host[self.beta]
        return super()._derived(key)

    def evaluation_point(self, params: torch.Tensor) -> torch.Tensor:
        return torch.lerp(params, self.state["z"], self._column("x_from_y"))

    @abstractmethod
    def _direction(self, params: torch.Tensor, grads: torch.Tensor, b: int) -> torch.Tensor:
        """The step z takes per unit of rate (the gradient, normalised for AdamW), weight decay at y added."""

    def step(self, params: torch.Tensor, grads: torch.Tensor, b: int) -> None:
        direction = self._direction(params, grads, b)
        z = self.state["z"]
        params.lerp_(z, self._coefficient(1, b))
        params.addcmul_(direction, self._coefficient(2, b))
        z.addcmul_(direction, self._coefficient(0, b), value=-1)


class ScheduleFreeSGD(_ScheduleFree):
    """schedulefree.SGDScheduleFree: momentum in (0, 1) is its beta."""

    name = "schedulefree_sgd"
    defaults: ClassVar[dict[str, float | bool]] = {
        "momentum": 0.9,
        "weight_decay": 0.0,
        "warmup_steps": 0,
        "r": 0.0,
        "weight_lr_power": 2.0,
    }

    def _direction(self, params: torch.Tensor, grads: torch.Tensor, b: int) -> torch.Tensor:
        self._coupled_weight_decay(params, grads)
        return grads


class ScheduleFreeAdamW(_ScheduleFree):
    """schedulefree.AdamWScheduleFree: beta1 is its beta; the gradient normalised by Adam's second moment,
    the weight decay taken at y."""

    name = "schedulefree_adamw"
    defaults: ClassVar[dict[str, float | bool]] = {
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "warmup_steps": 0,
        "r": 0.0,
        "weight_lr_power": 2.0,
    }
    state_names = ("z", "exp_avg_sq")
    beta = "beta1"

    def _per_update(self, lr: np.ndarray, step_numbers: np.ndarray) -> list[np.ndarray]:
        inv_sqrt_bias2 = 1 / np.sqrt(1 - self.host["beta2"][:, None] ** step_numbers)
        return [*super()._per_update(lr, step_numbers), inv_sqrt_bias2]

    def _direction(self, params: torch.Tensor, grads: torch.Tensor, b: int) -> torch.Tensor:
        grads.div_(self._adam_denominator(grads, 3, b))
        if self._any("weight_decay"):
            grads.addcmul_(params, self._column("weight_decay"))
        return grads


OPTIMIZERS: dict[str, type[StackedOptimizer]] = {
    cls.name: cls for cls in (SGD, RMSprop, Adagrad, Adam, AdamW, NAdamW, ScheduleFreeSGD, ScheduleFreeAdamW)
}


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
    "momentum_decay": (0.0, 1.0, False),
    "warmup_steps": (0.0, 1e9, False),
    "r": (0.0, 100.0, False),
    "weight_lr_power": (0.0, 100.0, False),
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
    if issubclass(cls, _ScheduleFree) and settings[cls.beta] == 0:
        raise ConfigError(f"{name} needs {cls.beta} > 0 (it averages with weight 1 / {cls.beta}) but got 0")
    return settings


def create_optimizer(name: str, settings: Sequence[Settings], params: torch.Tensor) -> StackedOptimizer:
    """An optimizer for members whose (validated) settings are ``settings``, over flat ``params`` [P, D]."""
    return _optimizer_class(name)(settings, params)
