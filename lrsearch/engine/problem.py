"""The problem contract: what a user hands lrsearch to tune their own network.

```python
lrsearch.Problem(
    model=lambda: torch.nn.Sequential(...),    # a fresh module per member, made under that member's seed
    train=(x_train, y_train), val=(x_val, y_val), test=(x_test, y_test),   # tensors; test optional
    loss="cross_entropy",                      # "mse", "mae", "huber", or (output, target) -> per-example loss
    metric="accuracy",                         # "loss" (then lower is better), or a per-example callable
    batch_size=64, epochs=30,
)
```

A problem checks itself where it is made (shapes agree, dtypes usable, sizes in range, the loss and metric
known, the model makes a module whose output the loss accepts) and names the bad value. The whole dataset
lives on the training device, as the population engine wants it: every member of every population reads
the same tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Literal

import torch
from torch import nn

from lrsearch.checks import integer
from lrsearch.engine import Problem as EngineProblem
from lrsearch.engine.data import Dataset, Split
from lrsearch.engine.modules import METRICS, ModuleModel, PerExample, loss_function, metric_function
from lrsearch.engine.networks import seeded
from lrsearch.engine.population import MAX_BATCH_SIZE, MAX_EPOCHS
from lrsearch.errors import ConfigError, one_line

__all__ = ["Direction", "Problem"]

Direction = Literal["maximize", "minimize"]
Pair = tuple[torch.Tensor, torch.Tensor]


def _pair(name: str, value: object) -> Pair:
    if not (isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(t, torch.Tensor) for t in value)):
        raise ConfigError(f"{name} must be a pair of tensors (inputs, targets) but got {type(value).__name__}")
    x, y = value
    if x.dim() == 0 or y.dim() == 0 or len(x) != len(y):
        raise ConfigError(
            f"{name}'s inputs and targets must have one row per example but got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if len(x) == 0:
        raise ConfigError(f"{name} must hold at least one example")
    if not x.is_floating_point():
        raise ConfigError(f"{name}'s inputs must be floating point but got {x.dtype}")
    return x, y


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A network to tune and the data to tune it on. ``direction`` is needed only for a callable metric
    (accuracy is maximized, the loss minimized). Without a test split the validation split is reported in
    its place, and no epoch is chosen by validation (that would report a figure chosen on itself).
    ``record``: called after every epoch with a member's parameters by name (detached), returns values to
    keep per epoch (``{"weight": float(p["weight"])}``); a study keeps each as a ``<name>_history`` attr."""

    model: Callable[[], nn.Module]
    train: Pair
    val: Pair
    test: Pair | None = None
    loss: str | PerExample = "cross_entropy"
    metric: str | PerExample = "accuracy"
    batch_size: int = 64
    epochs: int = 30
    direction: Direction | None = None
    name: str = "problem"
    record: Callable[[Mapping[str, torch.Tensor]], Mapping[str, float]] | None = None

    def __post_init__(self) -> None:
        if self.record is not None and not callable(self.record):
            raise ConfigError(f"record must be a callable (parameters -> values) but got {type(self.record).__name__}")
        if not callable(self.model):
            raise ConfigError(
                f"model must be a callable that makes a torch.nn.Module but got {type(self.model).__name__}"
            )
        splits = {"train": _pair("train", self.train), "val": _pair("val", self.val)}
        if self.test is not None:
            splits["test"] = _pair("test", self.test)
        shapes = {name: (tuple(x.shape[1:]), tuple(y.shape[1:]), y.dtype) for name, (x, y) in splits.items()}
        if len(set(shapes.values())) > 1:
            shown = "; ".join(f"{n}: inputs {s[0]}, targets {s[1]} {s[2]}" for n, s in shapes.items())
            raise ConfigError(f"the splits' examples must have one shape and dtype but got {shown}")
        integer("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        integer("epochs", self.epochs, 1, MAX_EPOCHS)
        loss = loss_function(self.loss)
        metric_function(self.metric, loss)
        if callable(self.metric):
            if self.direction not in ("maximize", "minimize"):
                raise ConfigError(
                    f"a callable metric needs direction 'maximize' or 'minimize' but got {self.direction!r}"
                )
        elif self.direction is not None and self.direction != self._named_direction():
            raise ConfigError(
                f"metric {self.metric!r} is {self._named_direction()}d but direction is {self.direction!r}"
            )
        integral = not self.train[1].is_floating_point()
        if (self.loss == "cross_entropy" or self.metric == "accuracy") and not integral:
            raise ConfigError(
                f"{self.loss if self.loss == 'cross_entropy' else 'accuracy'} needs integer class "
                f"targets but got {self.train[1].dtype}"
            )
        if self.loss in ("mse", "mae", "huber") and integral:
            raise ConfigError(f"loss {self.loss!r} needs floating-point targets but got {self.train[1].dtype}")
        self._probe(loss)

    def _named_direction(self) -> Direction:
        return "maximize" if self.metric in METRICS else "minimize"

    @property
    def objective_direction(self) -> Direction:
        """Which way the metric is better: what the study, the pruner, the repeats and the report follow."""
        return self.direction if callable(self.metric) and self.direction else self._named_direction()

    @property
    def metric_name(self) -> str:
        """How reports name the metric: its name, or a callable's own."""
        return self.metric if isinstance(self.metric, str) else getattr(self.metric, "__name__", "metric")

    def _probe(self, loss: PerExample) -> None:
        """One module, two examples: the module is made, runs on the inputs, and the loss takes its output."""
        try:
            module = seeded(self.model, 0)
        except ConfigError as exc:
            raise ConfigError(f"model(): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the user's code: its own message, as one line
            raise ConfigError(f"model() raised {type(exc).__name__}: {one_line(exc)}") from None
        x, y = self.train[0][:2], self.train[1][:2]
        try:
            with torch.no_grad():
                values = loss(module.eval()(x), y)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"{type(module).__name__} on two training examples, then the loss, raised "
                f"{type(exc).__name__}: {one_line(exc)}"
            ) from None
        if values.shape != (len(y),):
            raise ConfigError(
                f"the loss must give one value per example, shape ({len(y)},), but got {tuple(values.shape)}"
            )

    def to_engine(self, device: torch.device, *, strategy: Literal["auto", "loop", "vmap"] = "auto") -> EngineProblem:
        """The problem as the population engine trains it, its data moved onto ``device`` once."""
        train, val = Split(*self.train), Split(*self.val)
        test = Split(*self.test) if self.test is not None else val
        classes = int(self.train[1].max()) + 1 if not self.train[1].is_floating_point() else 0
        dataset = Dataset(self.name, train=train, val=val, test=test, num_classes=classes, source="user")
        try:
            dataset = dataset.to(device)
        except torch.OutOfMemoryError:
            raise ConfigError(
                f"{self.name}'s data does not fit on {device}: lrsearch keeps the whole dataset on the training device"
            ) from None
        model = ModuleModel(self.model, loss=self.loss, metric=self.metric, strategy=strategy, device=device)
        return EngineProblem(
            name=self.name,
            dataset=dataset,
            model=model,
            batch_size=self.batch_size,
            epochs=self.epochs,
            restore_best=self.test is not None,
            device=device,
            metric=self.metric_name,
            maximize=self.objective_direction == "maximize",
            record=self.record,
        )
