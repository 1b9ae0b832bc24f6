"""The Python API, for a program or a notebook: what ``lrsearch train`` does, returned as objects.

```python
result = lrsearch.train(problem(), lr=0.1, momentum=0.9, schedule="cosine", epochs=20)
result.history          # per-epoch DataFrame: epoch, lr, train/val loss and metric
```
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lrsearch.engine import TRAINERS, EpochMetrics, EpochReport, MemberResult, Population, check_run_length
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.devices import resolve_device
from lrsearch.engine.plugins import Trainer, check_name, from_problem, resolve
from lrsearch.engine.problem import Problem
from lrsearch.engine.schedules import SCHEDULES, parse_params
from lrsearch.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TrainResult", "train"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """One configuration's run. ``val`` and ``test`` are the metric at ``selected_epoch`` (the best on
    validation where the problem has a test split of its own, else the last); None for a diverged run."""

    result: MemberResult
    metric: str
    maximize: bool
    restores_best: bool
    device: torch.device
    epochs: int
    batch_size: int
    train_examples: int
    seconds: float

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def config(self) -> TrainConfig:
        return self.result.config

    @property
    def selected_epoch(self) -> int | None:
        return self.result.selected_epoch

    @property
    def val(self) -> float | None:
        return self.result.val_metric

    @property
    def test(self) -> float | None:
        return self.result.test_metric

    def columns(self) -> list[str]:
        """The history's columns: epoch, lr, train_loss, train_<metric>, val_loss, val_<metric> (no metric
        columns of their own where the metric is the loss), then what the problem records."""
        names = [self._named(f.name) for f in dataclasses.fields(EpochMetrics) if f.name != "recorded"]
        recorded = self.result.history[-1].recorded if self.result.history else {}
        return [*(n for n in names if n is not None), *recorded]

    def _named(self, field: str) -> str | None:
        if field in ("train_metric", "val_metric"):
            return None if self.metric == "loss" else field.replace("metric", self.metric)
        return field

    def epoch_rows(self) -> list[dict[str, Any]]:
        """One dict per finished epoch, keyed by ``columns``."""
        rows = []
        for m in self.result.history:
            named = {self._named(k): v for k, v in vars(m).items() if k != "recorded"}
            rows.append({k: v for k, v in named.items() if k is not None} | m.recorded)
        return rows

    @property
    def history(self) -> pd.DataFrame:
        """One row per finished epoch (``columns``)."""
        import pandas as pd

        return pd.DataFrame(self.epoch_rows(), columns=self.columns())


def _trainer(problem: Problem | str) -> Trainer:
    if isinstance(problem, Problem):
        return from_problem(problem)
    if not isinstance(problem, str):
        raise ConfigError(f"problem must be an lrsearch.Problem or a trainer name but got {type(problem).__name__}")
    return resolve(problem)


def train(
    problem: Problem | str,
    *,
    lr: float | None = None,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float | None = None,
    optimizer_params: Mapping[str, Any] | None = None,
    decay: float = 0.0,
    schedule: str = "constant",
    schedule_params: Mapping[str, Any] | Sequence[str] | None = None,
    schedule_unit: str = "epoch",
    warmup: int = 0,
    warmup_start: float = 0.0,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    data_dir: Path | None = None,
    progress: bool = True,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainResult:
    """Train one configuration of ``problem`` (a Problem, or a trainer name as the CLI takes it).
    ``schedule_params``: a mapping, or ``key=value`` strings as ``--schedule-param`` takes them.
    Everything is checked before any data is loaded (a trainer of your own reads its data when named)."""
    if isinstance(problem, str):
        check_name(problem)
    if lr is None and not (isinstance(problem, str) and problem in TRAINERS):
        raise ConfigError("lr: required for a problem of your own (a bundled trainer defaults to its seed's rate)")
    if isinstance(schedule_params, Sequence) and not isinstance(schedule_params, str):
        schedule_params = parse_params(schedule, schedule_params) if schedule in SCHEDULES else {}
    config = TrainConfig(
        lr=TRAINERS[problem].lr if lr is None else lr,  # type: ignore[index]
        optimizer=optimizer,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        optimizer_params=dict(optimizer_params or {}),
        decay=decay,
        schedule=schedule,
        schedule_params=dict(schedule_params or {}),
        schedule_unit=schedule_unit,
        warmup=warmup,
        warmup_start=warmup_start,
        seed=seed,
    )
    check_run_length(epochs, batch_size)
    trainer = _trainer(problem)
    per_epoch = math.ceil(trainer.train_examples / (batch_size or trainer.batch_size))
    config.build_schedule(config.horizon(epochs or trainer.epochs, per_epoch))  # the schedule, before any data
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    engine = trainer.load(torch_device, data_dir)
    population = Population(engine, epochs=epochs, batch_size=batch_size)
    population.add(config)
    started = time.perf_counter()
    with _progress(progress, f"{trainer.name} epochs", population.epochs) as advance:

        def each_epoch(reports: Sequence[EpochReport]) -> list[int]:
            m = reports[0].metrics
            advance(m.epoch, f"loss {m.train_loss:.4f}  val {engine.metric} {m.val_metric:.4f}")
            if on_epoch is not None:
                on_epoch(reports[0])
            return []

        (result,) = population.run(each_epoch)
    return TrainResult(
        result=result,
        metric=engine.metric,
        maximize=engine.maximize,
        restores_best=engine.restore_best,
        device=torch_device,
        epochs=population.epochs,
        batch_size=population.batch_size,
        train_examples=len(engine.dataset.train),
        seconds=time.perf_counter() - started,
    )


@contextmanager
def _progress(enabled: bool, description: str, total: int) -> Iterator[Callable[[int, str], None]]:
    """A Rich progress bar (on a terminal or in a notebook) while ``enabled``; yields ``advance(done, status)``."""
    if not enabled:
        yield lambda done, status: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(description, total=total, status="")
        yield lambda done, status: bar.update(task, completed=done, status=status)
