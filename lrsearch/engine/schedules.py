"""The learning-rate schedule catalogue.

A schedule is a pure function of the step ``t`` (an epoch or an update number, see ``schedule_unit``): calling
it on an int gives a float, on a numpy array an array, so a run's whole rate table is one vectorised call.
``warmup`` is one wrapper that works with every type, ``create_schedule`` is the one factory and rejects
unknown names and parameters. ``plateau`` is the one metric-driven type: its function is the rate before any
reduction, and ``PlateauState`` applies ReduceLROnPlateau's reductions from the validation loss.

Parameter names and types are part of the interface: study files and the CLI use them.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from lrsearch.checks import MAX_RATE, MAX_SEED, MAX_STEPS, integer, number
from lrsearch.errors import ConfigError

__all__ = [
    "SCHEDULES",
    "PlateauState",
    "Schedule",
    "Warmup",
    "coerce_params",
    "create_schedule",
    "parse_params",
    "update_rates",
]


#: The largest factor a schedule multiplies its rate by (per step or per milestone).
MAX_FACTOR = 1e3


def _rate(name: str, value: float) -> None:
    """A rate a schedule starts from, falls to or is held at: 0 allowed."""
    number(name, value, 0.0, MAX_RATE)


def _factor(name: str, value: float) -> None:
    number(name, value, 0.0, MAX_FACTOR, low_open=True)


def _steps(name: str, value: int, low: int = 1) -> None:
    integer(name, value, low, MAX_STEPS)


@dataclasses.dataclass(frozen=True)
class Schedule(ABC):
    """A learning rate as a function of the step ``t >= 0``; ``lr`` is the base (peak) rate."""

    name: ClassVar[str]
    lr: float

    def __post_init__(self) -> None:
        number("lr", self.lr, 0.0, MAX_RATE, low_open=True)
        self._validate()

    def _validate(self) -> None:
        """Check the type's own parameters; raise ConfigError naming the bad one."""

    def __call__(self, t: Any) -> Any:
        steps = np.asarray(t, dtype=np.float64)
        if np.any(steps < 0):
            raise ValueError(f"schedule step must be >= 0 but got {t}")
        rates = self._rate(steps)
        return float(rates) if rates.ndim == 0 else rates

    @abstractmethod
    def _rate(self, t: np.ndarray) -> np.ndarray: ...

    def tracker(self) -> PlateauState | None:
        """The metric-driven state a run must keep beside the rate table, if this type has one."""
        return None

    def check_rates(self, horizon: int) -> None:
        """Refuse a schedule whose rate outgrows ``MAX_RATE`` within ``horizon`` steps (exponential growth,
        a gamma above 1). Every type is either bounded by its rates or monotone between its breakpoints,
        so a grid with both ends finds the peak."""
        steps = np.unique(np.linspace(0, max(0, horizon - 1), 65).round())
        with np.errstate(over="ignore", invalid="ignore"):
            rates = np.asarray(self(steps))
        bad = ~(np.isfinite(rates) & (rates <= MAX_RATE))
        if bad.any():
            step = int(steps[np.argmax(bad)])
            raise ConfigError(
                f"the {self.name} schedule's rate grows past {MAX_RATE:g} by step {step} "
                f"(it reaches {rates[np.argmax(bad)]:.3g}); lower its growth"
            )


@dataclasses.dataclass(frozen=True)
class Constant(Schedule):
    name = "constant"

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return np.full_like(t, self.lr)


@dataclasses.dataclass(frozen=True)
class InverseTime(Schedule):
    """Keras's time-based ``decay``: lr / (1 + decay * t)."""

    name = "inverse_time"
    decay: float

    def _validate(self) -> None:
        number("decay", self.decay, 0.0, 1e6)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return self.lr / (1.0 + self.decay * t)


@dataclasses.dataclass(frozen=True)
class Exponential(Schedule):
    """TensorFlow's ExponentialDecay; PyTorch's ExponentialLR is decay_steps = 1."""

    name = "exponential"
    decay_rate: float
    decay_steps: float = 1.0
    staircase: bool = False

    def _validate(self) -> None:
        _factor("decay_rate", self.decay_rate)
        number("decay_steps", self.decay_steps, 0.0, MAX_STEPS, low_open=True)

    def _exponent(self, t: np.ndarray) -> np.ndarray:
        exponent = t / self.decay_steps
        return np.floor(exponent) if self.staircase else exponent

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return self.lr * self.decay_rate ** self._exponent(t)


@dataclasses.dataclass(frozen=True)
class Step(Schedule):
    """Times gamma at each milestone (PyTorch's MultiStepLR, d2l's multi-factor scheduler), or every
    ``step_size`` steps (PyTorch's StepLR): one of the two."""

    name = "step"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    step_size: int | None = None

    def _validate(self) -> None:
        if (self.step_size is None) == (not self.milestones):
            raise ConfigError("step needs milestones or a step_size (one of the two)")
        if self.step_size is not None:
            _steps("step_size", self.step_size)
        elif not 1 <= len(self.milestones) <= 1000:
            raise ConfigError(f"milestones must list 1 to 1000 steps but got {len(self.milestones)}")
        for m in self.milestones:
            _steps("each milestone", m, low=0)
        # Unsorted is most likely a typo, which PyTorch would sort silently; a repeat counts twice, as there.
        if any(a > b for a, b in itertools.pairwise(self.milestones)):
            raise ConfigError(f"milestones must be in increasing order but got {list(self.milestones)}")
        _factor("gamma", self.gamma)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        if self.step_size is not None:
            return self.lr * self.gamma ** np.floor(t / self.step_size)
        passed = np.searchsorted(np.asarray(self.milestones), t, side="right")
        return self.lr * self.gamma**passed


@dataclasses.dataclass(frozen=True)
class Piecewise(Schedule):
    """TensorFlow's PiecewiseConstantDecay, its values as multiples of ``lr``: ``values[0]`` up to and at
    ``boundaries[0]``, ``values[k]`` after ``boundaries[k - 1]`` up to and at ``boundaries[k]``, the last value
    after the last boundary."""

    name = "piecewise"
    boundaries: tuple[int, ...]
    values: tuple[float, ...]

    def _validate(self) -> None:
        if not 1 <= len(self.boundaries) <= 1000:
            raise ConfigError(f"boundaries must list 1 to 1000 steps but got {len(self.boundaries)}")
        for b in self.boundaries:
            _steps("each boundary", b, low=0)
        if any(a >= b for a, b in itertools.pairwise(self.boundaries)):
            raise ConfigError(f"boundaries must be strictly increasing but got {list(self.boundaries)}")
        if len(self.values) != len(self.boundaries) + 1:
            raise ConfigError(
                f"values must hold one more entry than boundaries ({len(self.boundaries) + 1}) "
                f"but got {len(self.values)}"
            )
        for v in self.values:
            # A zero piece is a pause (a warmup from 0 starts with one, and a discovered schedule replays it).
            number("each value", v, 0.0, MAX_FACTOR)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        piece = np.searchsorted(np.asarray(self.boundaries), t, side="left")
        return self.lr * np.asarray(self.values)[piece]


@dataclasses.dataclass(frozen=True)
class NaturalExp(Exponential):
    """TensorFlow's natural_exp_decay: lr * exp(-decay_rate * t / decay_steps), floored with ``staircase``."""

    name = "natural_exp"

    def _validate(self) -> None:
        number("decay_rate", self.decay_rate, 0.0, MAX_FACTOR)
        number("decay_steps", self.decay_steps, 0.0, MAX_STEPS, low_open=True)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return self.lr * np.exp(-self.decay_rate * self._exponent(t))


@dataclasses.dataclass(frozen=True)
class LinearCosine(Schedule):
    """TensorFlow's linear_cosine_decay (Bello et al. 2017) over ``total`` steps (its decay_steps):
    lr * ((alpha + linear) * cosine + beta), linear = 1 - t / total, cosine = (1 + cos(2 pi num_periods t /
    total)) / 2, held at its end value after ``total``."""

    name = "linear_cosine"
    total: int
    num_periods: float = 0.5
    alpha: float = 0.0
    beta: float = 0.001

    def _validate(self) -> None:
        _steps("total", self.total)
        number("num_periods", self.num_periods, 0.0, MAX_STEPS)
        number("alpha", self.alpha, 0.0, MAX_FACTOR)
        number("beta", self.beta, 0.0, MAX_FACTOR)

    def _parts(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        step = np.minimum(t, self.total)
        return (self.total - step) / self.total, 0.5 * (
            1.0 + np.cos(math.pi * 2 * self.num_periods * step / self.total)
        )

    def _rate(self, t: np.ndarray) -> np.ndarray:
        linear, cosine = self._parts(t)
        return self.lr * ((self.alpha + linear) * cosine + self.beta)


def _standard_normal(seed: int, steps: np.ndarray) -> np.ndarray:
    """One N(0, 1) draw per integer step, a pure function of (seed, step): splitmix64 of the pair, then
    Box-Muller, vectorised (a generator per step would cost microseconds each)."""

    def mix(x: np.ndarray) -> np.ndarray:
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))

    with np.errstate(over="ignore"):
        base = mix(np.floor(steps).astype(np.uint64) * np.uint64(2) + mix(np.full(steps.shape, seed, dtype=np.uint64)))
        u1 = ((base >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
        u2 = ((mix(base) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)


@dataclasses.dataclass(frozen=True)
class NoisyLinearCosine(LinearCosine):
    """TensorFlow's noisy_linear_cosine_decay: linear_cosine with N(0, initial_variance / (1 + t) **
    variance_decay) added to the linear part, drawn per step from ``seed`` (a run's own seed unless given:
    every member its own noise). Clamped at 0, where TensorFlow's rate can go negative."""

    name = "noisy_linear_cosine"
    initial_variance: float = 1.0
    variance_decay: float = 0.55
    seed: int = 0

    def _validate(self) -> None:
        super()._validate()
        number("initial_variance", self.initial_variance, 0.0, MAX_FACTOR)
        number("variance_decay", self.variance_decay, 0.0, MAX_FACTOR)
        integer("seed", self.seed, 0, MAX_SEED)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        linear, cosine = self._parts(t)
        std = np.sqrt(self.initial_variance / (1.0 + np.minimum(t, self.total)) ** self.variance_decay)
        noisy = linear + std * _standard_normal(self.seed, np.minimum(t, self.total))
        return np.maximum(0.0, self.lr * ((self.alpha + noisy) * cosine + self.beta))


@dataclasses.dataclass(frozen=True)
class Factor(Schedule):
    """d2l's FactorScheduler: multiply by ``factor`` each step, never below ``min_lr``."""

    name = "factor"
    factor: float
    min_lr: float = 0.0

    def _validate(self) -> None:
        _factor("factor", self.factor)
        _rate("min_lr", self.min_lr)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return np.maximum(self.min_lr, self.lr * self.factor**t)


@dataclasses.dataclass(frozen=True)
class Sqrt(Schedule):
    """d2l's SquareRootScheduler."""

    name = "sqrt"

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return self.lr * (t + 1.0) ** -0.5


@dataclasses.dataclass(frozen=True)
class Polynomial(Schedule):
    """TensorFlow's PolynomialDecay; PyTorch's PolynomialLR is final_lr = 0."""

    name = "polynomial"
    total: int
    power: float = 1.0
    final_lr: float = 0.0

    def _validate(self) -> None:
        _steps("total", self.total)
        _factor("power", self.power)
        _rate("final_lr", self.final_lr)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        remaining = 1.0 - np.minimum(t, self.total) / self.total
        return (self.lr - self.final_lr) * remaining**self.power + self.final_lr


@dataclasses.dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine annealing to ``final_lr`` at ``total`` (d2l's CosineScheduler), held there afterwards."""

    name = "cosine"
    total: int
    final_lr: float = 0.0

    def _validate(self) -> None:
        _steps("total", self.total)
        _rate("final_lr", self.final_lr)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        progress = np.minimum(t, self.total) / self.total
        return self.final_lr + (self.lr - self.final_lr) / 2.0 * (1.0 + np.cos(math.pi * progress))


#: How ``wsd`` falls, as a function of the decay phase's progress p in [0, 1] (1 at its start, 0 at its end).
WSD_SHAPES = {
    "1-sqrt": lambda p: 1.0 - np.sqrt(p),
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: (1.0 + np.cos(math.pi * p)) / 2.0,
}


@dataclasses.dataclass(frozen=True)
class WSD(Schedule):
    """Warmup-stable-decay (Hägele et al. 2024; transformers' ``get_wsd_schedule``): ``lr`` until the last
    D = decay_fraction * total steps, then down to ``final_lr`` in ``shape`` over them, ``final_lr`` after
    ``total`` (the warmup is the shared wrapper's)."""

    name = "wsd"
    total: int
    decay_fraction: float = 0.2
    shape: str = "1-sqrt"
    final_lr: float = 0.0

    def _validate(self) -> None:
        _steps("total", self.total)
        number("decay_fraction", self.decay_fraction, 0.0, 1.0, low_open=True)
        if self.shape not in WSD_SHAPES:
            raise ConfigError(f"wsd shape must be one of {', '.join(WSD_SHAPES)} but got {self.shape!r}")
        _rate("final_lr", self.final_lr)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        decay = self.decay_fraction * self.total
        progress = np.clip((t - (self.total - decay)) / decay, 0.0, 1.0)
        return self.final_lr + (self.lr - self.final_lr) * WSD_SHAPES[self.shape](progress)


@dataclasses.dataclass(frozen=True)
class Linear(Schedule):
    """Straight down to ``final_lr`` over ``total`` steps, held there after (linear decay to zero: Defazio
    et al. 2023, Bergsma et al. 2025)."""

    name = "linear"
    total: int
    final_lr: float = 0.0

    def _validate(self) -> None:
        _steps("total", self.total)
        _rate("final_lr", self.final_lr)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return self.lr + (self.final_lr - self.lr) * np.minimum(t, self.total) / self.total


@dataclasses.dataclass(frozen=True)
class InverseSqrt(Schedule):
    """The transformer's rule after warmup: lr * sqrt(timescale / (t + timescale))."""

    name = "inverse_sqrt"
    timescale: float = 1.0

    def _validate(self) -> None:
        number("timescale", self.timescale, 0.0, MAX_STEPS, low_open=True)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return self.lr * np.sqrt(self.timescale / (t + self.timescale))


@dataclasses.dataclass(frozen=True)
class Rex(Schedule):
    """REX (Chen et al. 2022): lr * (1 - p) / (1 - p / 2), p = min(t, total) / total."""

    name = "rex"
    total: int

    def _validate(self) -> None:
        _steps("total", self.total)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        progress = np.minimum(t, self.total) / self.total
        return self.lr * (1.0 - progress) / (1.0 - progress / 2.0)


@dataclasses.dataclass(frozen=True)
class CosineRestarts(Schedule):
    """SGDR, as PyTorch's CosineAnnealingWarmRestarts (T_0 = period, T_mult = t_mult, eta_min = final_lr)."""

    name = "cosine_restarts"
    period: int
    t_mult: int = 1
    final_lr: float = 0.0

    def _validate(self) -> None:
        _steps("period", self.period)
        integer("t_mult", self.t_mult, 1, 1000)
        _rate("final_lr", self.final_lr)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        # Cycle starts by exact integer arithmetic: PyTorch's log() form misplaces some restarts by one step.
        starts, length = [0], self.period
        while starts[-1] <= t.max(initial=0):
            starts.append(starts[-1] + length)
            length *= self.t_mult
        starts_arr = np.asarray(starts, dtype=np.float64)
        cycle = np.searchsorted(starts_arr, t, side="right") - 1
        t_cur = t - starts_arr[cycle]
        t_i = self.period * float(self.t_mult) ** cycle
        return self.final_lr + (self.lr - self.final_lr) / 2.0 * (1.0 + np.cos(math.pi * t_cur / t_i))


@dataclasses.dataclass(frozen=True)
class OneCycle(Schedule):
    """PyTorch's OneCycleLR with cosine annealing; ``lr`` is max_lr. Held at its minimum after ``total``."""

    name = "one_cycle"
    total: int
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def _validate(self) -> None:
        _steps("total", self.total)
        number("pct_start", self.pct_start, 0.0, 1.0, low_open=True, high_open=True)
        number("div_factor", self.div_factor, 1.0, 1e9)
        number("final_div_factor", self.final_div_factor, 1.0, 1e12)
        if not (self.pct_start * self.total > 1 and self.total - self.pct_start * self.total > 0):
            raise ConfigError(
                f"one_cycle needs pct_start * total > 1 so both phases have steps "
                f"but got total={self.total}, pct_start={self.pct_start}"
            )

    def _rate(self, t: np.ndarray) -> np.ndarray:
        initial = self.lr / self.div_factor
        minimum = initial / self.final_div_factor
        peak_step = self.pct_start * self.total - 1.0
        last_step = self.total - 1.0

        def anneal(start: float, end: float, pct: np.ndarray) -> np.ndarray:
            return end + (start - end) / 2.0 * (np.cos(math.pi * pct) + 1.0)

        rising = anneal(initial, self.lr, t / peak_step)
        falling = anneal(self.lr, minimum, np.minimum(1.0, (t - peak_step) / (last_step - peak_step)))
        return np.where(t <= peak_step, rising, falling)


@dataclasses.dataclass(frozen=True)
class Cyclic(Schedule):
    """PyTorch's CyclicLR, triangular: from ``min_lr`` up to ``lr`` in ``step_size_up`` steps and back."""

    name = "cyclic"
    min_lr: float
    step_size_up: int

    def _validate(self) -> None:
        _rate("min_lr", self.min_lr)
        _steps("step_size_up", self.step_size_up)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        cycle_length = 2.0 * self.step_size_up
        position = t / cycle_length - np.floor(t / cycle_length)  # in [0, 1)
        scale = np.where(position <= 0.5, position / 0.5, (position - 1.0) / -0.5)
        return self.min_lr + (self.lr - self.min_lr) * scale


@dataclasses.dataclass(frozen=True)
class Plateau(Schedule):
    """ReduceLROnPlateau on the validation loss (PyTorch semantics, absolute ``min_delta`` as in Keras).

    As a function of t it is the rate before any reduction; its ``tracker()`` follows the metric.
    """

    name = "plateau"
    factor: float = 0.1
    patience: int = 10
    min_delta: float = 0.0
    cooldown: int = 0
    min_lr: float = 0.0

    def _validate(self) -> None:
        number("factor", self.factor, 0.0, 1.0, low_open=True, high_open=True)
        _steps("patience", self.patience, low=0)
        number("min_delta", self.min_delta, 0.0, 1e6)
        _steps("cooldown", self.cooldown, low=0)
        _rate("min_lr", self.min_lr)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return np.full_like(t, self.lr)

    def tracker(self) -> PlateauState:
        return PlateauState(self)


class PlateauState:
    """One run's ReduceLROnPlateau state; ``step(val_loss)`` returns the factor to apply to later rates."""

    # PyTorch skips reductions smaller than this, so a rate at its floor stays put.
    _EPS = 1e-8

    def __init__(self, schedule: Plateau) -> None:
        self.schedule = schedule
        self.lr = schedule.lr
        self.best = math.inf
        self.bad_epochs = 0
        self.cooldown_left = 0

    def step(self, val_loss: float) -> float:
        s = self.schedule
        if val_loss < self.best - s.min_delta:
            self.best = val_loss
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > s.patience:
            self.cooldown_left = s.cooldown
            self.bad_epochs = 0
            new_lr = max(self.lr * s.factor, s.min_lr)
            if self.lr - new_lr > self._EPS:
                ratio = new_lr / self.lr
                self.lr = new_lr
                return ratio
        return 1.0


@dataclasses.dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warmup from ``start`` to ``lr`` over ``steps``, then ``main`` on t - steps (d2l's warmup)."""

    name = "warmup"
    main: Schedule
    steps: int
    start: float = 0.0

    def _validate(self) -> None:
        _steps("warmup", self.steps)
        _rate("warmup_start", self.start)

    def tracker(self) -> PlateauState | None:
        return self.main.tracker()

    def _rate(self, t: np.ndarray) -> np.ndarray:
        ramp = self.start + (self.lr - self.start) * t / self.steps
        return np.where(t < self.steps, ramp, self.main._rate(np.maximum(t - self.steps, 0.0)))


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls
    for cls in (
        Constant,
        InverseTime,
        Exponential,
        NaturalExp,
        Step,
        Piecewise,
        Factor,
        Sqrt,
        Polynomial,
        Cosine,
        WSD,
        Linear,
        InverseSqrt,
        Rex,
        LinearCosine,
        NoisyLinearCosine,
        CosineRestarts,
        OneCycle,
        Cyclic,
        Plateau,
    )
}


def _schedule_class(name: str) -> type[Schedule]:
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
    return SCHEDULES[name]


def param_types(name: str) -> dict[str, type]:
    """The parameters a schedule type takes (besides ``lr``) and their types."""
    return dict(_param_types(_schedule_class(name)))


@functools.cache
def _param_types(cls: type) -> dict[str, type]:
    # Resolving the string annotations is most of what checking a configuration costs: every trial asked
    # builds one, and a search asks thousands.
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name != "lr"}


def _required(name: str) -> list[str]:
    cls = _schedule_class(name)
    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.name != "lr" and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


def _coerce(schedule: str, key: str, value: Any, kind: type) -> Any:
    """The value as its parameter's type (an integral float counts as an int); the ranges are the
    schedule's own checks."""
    where = f"{schedule} parameter {key}"
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string but got {value!r}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false but got {value!r}")
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer but got {value!r}")
        return value
    if kind is float:
        return number(where, value, -math.inf, math.inf)
    if typing.get_origin(kind) is tuple:  # milestones, boundaries, values
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(_coerce(schedule, key, item, typing.get_args(kind)[0]) for item in items)
    # X | None: a value is never None here (TOML has no null), so it is an X
    return _coerce(schedule, key, value, next(a for a in typing.get_args(kind) if a is not type(None)))


def coerce_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check typed parameter values (from a study file or code) against the type's parameters."""
    types = param_types(name)
    unknown = sorted(set(params) - set(types))
    if unknown:
        accepted = ", ".join(types) or "none"
        raise ConfigError(f"schedule {name} has no parameter {unknown[0]!r} (it takes: {accepted})")
    return {key: _coerce(name, key, value, types[key]) for key, value in params.items()}


def _parse_text(text: str, kind: type) -> Any:
    if kind is str:
        return text.strip()
    if kind is bool:
        lowered = text.strip().lower()
        return {"true": True, "false": False}.get(lowered, text)
    if typing.get_origin(kind) is tuple:
        return [_parse_text(part, typing.get_args(kind)[0]) for part in text.split(",")]
    for parse in (int, float):  # an int, a float or X | None; the types are checked by coerce_params
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def parse_params(name: str, pairs: Sequence[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings (CLI flags): lists comma-separated, booleans true/false."""
    types = param_types(name)
    raw: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"schedule parameter must look like key=value but got {pair!r}")
        raw[key] = _parse_text(text, types[key]) if key in types else text
    return coerce_params(name, raw)


def create_schedule(
    name: str,
    lr: float,
    params: Mapping[str, Any] | None = None,
    *,
    warmup: int = 0,
    warmup_start: float = 0.0,
    horizon: int | None = None,
) -> Schedule:
    """Build a schedule by name.

    ``horizon`` is the run's length in schedule steps: it is the default ``total`` for the types that take
    one. With ``warmup`` W, ``total`` shrinks to total - W so the schedule still ends where it was meant to.
    """
    cls = _schedule_class(name)
    number("lr", lr, 0.0, MAX_RATE, low_open=True)
    kwargs = coerce_params(name, params or {})
    integer("warmup", warmup, 0, MAX_STEPS)
    fields = param_types(name)
    if "total" in fields:
        if "total" not in kwargs and horizon is not None:
            kwargs["total"] = horizon
        if "total" in kwargs:
            if kwargs["total"] <= warmup:
                raise ConfigError(f"{name} total ({kwargs['total']}) must be longer than warmup ({warmup})")
            kwargs["total"] -= warmup
    missing = [key for key in _required(name) if key not in kwargs]
    if missing:
        raise ConfigError(f"schedule {name} needs parameter {missing[0]!r}")
    schedule = cls(lr=float(lr), **kwargs)
    if warmup:
        start = number("warmup_start", warmup_start, 0.0, MAX_RATE)
        return Warmup(lr=float(lr), main=schedule, steps=warmup, start=start)
    return schedule


def update_rates(
    schedule: Schedule,
    *,
    n_updates: int,
    updates_per_epoch: int,
    unit: str = "epoch",
    decay: float = 0.0,
    start: int = 0,
) -> np.ndarray:
    """The rate of updates ``start`` .. ``start + n_updates - 1`` of a run: the schedule stepped per epoch
    or per update, then Keras's time-based ``decay`` applied per update on top (lr / (1 + decay * update))."""
    if unit not in ("epoch", "update"):
        raise ConfigError(f"schedule_unit must be 'epoch' or 'update' but got {unit!r}")
    updates = np.arange(start, start + n_updates, dtype=np.float64)
    steps = np.floor_divide(updates, updates_per_epoch) if unit == "epoch" else updates
    return np.asarray(schedule(steps)) / (1.0 + decay * updates)
