"""``lrsearch train``: train one configuration, show its progress and its epochs."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lrsearch.api import TrainResult, train
from lrsearch.engine import MemberResult
from lrsearch.engine.config import SCHEDULE_UNITS
from lrsearch.engine.optim import OPTIMIZERS
from lrsearch.engine.schedules import SCHEDULES
from lrsearch.errors import ConfigError


def parse_optimizer_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings: true/false, else a number (the optimizer checks names and ranges)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"optimizer parameter must look like key=value but got {pair!r}")
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            params[key.strip()] = lowered == "true"
            continue
        try:
            params[key.strip()] = float(text)
        except ValueError:
            raise ConfigError(f"optimizer parameter {key.strip()} must be a number but got {text!r}") from None
    return params


def result_json(trained: TrainResult, *, trainer: str) -> dict[str, Any]:
    """The ``--json`` object: config, history (1-based epochs, columns named by the metric), the metric's
    name and its validation and test values, diverged, seconds."""

    def finite(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    result, metric = trained.result, trained.metric
    return {
        "config": {
            "trainer": trainer,
            "epochs": trained.epochs,
            "batch_size": trained.batch_size,
            "device": str(trained.device),
            **result.config.to_dict(),
        },
        "history": [
            {k: finite(v) if isinstance(v, float) else v for k, v in row.items()} for row in trained.epoch_rows()
        ],
        "status": result.status,
        "selected_epoch": result.selected_epoch,
        "metric": metric,
        f"val_{metric}": finite(result.val_metric),
        f"test_{metric}": finite(result.test_metric),
        "diverged": result.diverged,
        "seconds": round(trained.seconds, 3),
    }


def _epoch_table(result: MemberResult, *, mark_selected: bool, metric: str, rows: int = 12) -> Table:
    table = Table(title="epochs", show_edge=False)
    for column in ("epoch", "lr", "train loss", f"train {metric}", "val loss", f"val {metric}"):
        table.add_column(column, justify="right")
    history = result.history
    step = max(1, math.ceil(len(history) / rows))
    shown = {*range(0, len(history), step), len(history) - 1}
    if mark_selected and result.selected_epoch:
        shown.add(result.selected_epoch - 1)
    for i in sorted(shown):
        m = history[i]
        mark = " *" if mark_selected and m.epoch == result.selected_epoch else ""
        table.add_row(
            f"{m.epoch}{mark}",
            f"{m.lr:.4g}",
            f"{m.train_loss:.4f}",
            f"{m.train_metric:.4f}",
            f"{m.val_loss:.4f}",
            f"{m.val_metric:.4f}",
        )
    return table


@click.command("train")
@click.option(
    "--trainer",
    required=True,
    metavar="NAME|MODULE:CALLABLE",
    help="The problem to train: a bundled or installed trainer (`lrsearch trainers`), or your own.",
)
@click.option("--optimizer", default="sgd", show_default=True, help=f"One of: {', '.join(OPTIMIZERS)}.")
@click.option("--lr", type=float, help="Learning rate (default: the trainer's seed rate, 0.01 blobs, 0.3 LeNet).")
@click.option("--momentum", type=float, default=0.0, show_default=True, help="SGD / RMSprop momentum.")
@click.option("--nesterov", is_flag=True, help="Nesterov momentum (SGD).")
@click.option("--weight-decay", type=float, help="L2 (AdamW: decoupled) weight decay; default the optimizer's.")
@click.option(
    "--optimizer-param",
    "optimizer_params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Other optimizer settings: alpha, beta1, beta2, eps (repeatable).",
)
@click.option(
    "--decay",
    type=float,
    default=0.0,
    show_default=True,
    help="Keras time-based decay per update: lr / (1 + decay * update), on top of the schedule.",
)
@click.option("--schedule", default="constant", show_default=True, help=f"One of: {', '.join(SCHEDULES)}.")
@click.option(
    "--schedule-param",
    "schedule_params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A schedule parameter (repeatable); a missing total defaults to the run's length.",
)
@click.option(
    "--schedule-unit",
    type=click.Choice(SCHEDULE_UNITS),
    default="epoch",
    show_default=True,
    help="What the schedule's step (and warmup) counts.",
)
@click.option("--warmup", type=int, default=0, show_default=True, help="Linear warmup length, in schedule units.")
@click.option("--warmup-start", type=float, default=0.0, show_default=True, help="Rate warmup starts from.")
@click.option("--epochs", type=int, help="Epochs (default: the trainer's, 200 blobs, 30 LeNet).")
@click.option("--batch-size", type=int, help="Batch size (default: the trainer's, 32 blobs, 256 LeNet).")
@click.option("--seed", type=int, default=0, show_default=True, help="Initialisation and data-order seed.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Folder with the IDX files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def command(
    trainer: str,
    optimizer: str,
    lr: float | None,
    momentum: float,
    nesterov: bool,
    weight_decay: float | None,
    optimizer_params: tuple[str, ...],
    decay: float,
    schedule: str,
    schedule_params: tuple[str, ...],
    schedule_unit: str,
    warmup: int,
    warmup_start: float,
    epochs: int | None,
    batch_size: int | None,
    seed: int,
    device: str,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Train one configuration and report its epochs, validation and test accuracy (or the problem's metric)."""
    trained = train(
        trainer,
        lr=lr,
        optimizer=optimizer,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        optimizer_params=parse_optimizer_params(optimizer_params),
        decay=decay,
        schedule=schedule,
        schedule_params=schedule_params,
        schedule_unit=schedule_unit,
        warmup=warmup,
        warmup_start=warmup_start,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        device=device,
        data_dir=data_dir,
        progress=not as_json and Console(stderr=True).is_terminal,
    )
    result, seconds, torch_device, metric = trained.result, trained.seconds, trained.device, trained.metric
    if as_json:
        click.echo(json.dumps(result_json(trained, trainer=trainer), indent=2))
        return
    out = Console()
    if result.history:
        out.print(_epoch_table(result, mark_selected=trained.restores_best, metric=metric))
    examples = trained.train_examples * len(result.history)
    summary = [
        f"{result.status}",
        f"val {metric} {result.val_metric:.4f}" if result.val_metric is not None else f"no val {metric}",
        f"test {metric} {result.test_metric:.4f}" if result.test_metric is not None else f"no test {metric}",
    ]
    if trained.restores_best and result.selected_epoch:
        summary.append(f"weights of epoch {result.selected_epoch} (best on validation, marked *)")
    summary.append(f"{seconds:.1f} s on {torch_device} ({examples / seconds:,.0f} examples/s)")
    if result.diverged:
        summary.append(f"diverged in epoch {len(result.history) + 1}: the loss went NaN/inf")
    out.print(" | ".join(summary))
