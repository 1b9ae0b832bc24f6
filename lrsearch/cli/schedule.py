"""``lrsearch schedule``: print (and plot) a schedule's rate for each step."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from lrsearch.checks import integer
from lrsearch.engine.schedules import SCHEDULES, create_schedule, parse_params
from lrsearch.review.plots import check_plot_path, line_chart

#: The most steps printed (a CSV line each).
MAX_PRINTED = 10**7


@click.command(
    "schedule",
    help=f"Print TYPE's learning rate for each step as CSV (step,lr). TYPE is one of: {', '.join(SCHEDULES)}. "
    "A missing total defaults to --steps.",
)
@click.argument("schedule_type", metavar="TYPE")
@click.option("--lr", type=float, required=True, help="Base (peak) learning rate.")
@click.option("--steps", type=int, required=True, help="Steps to print: t = 0 .. N-1.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A schedule parameter (repeatable); lists comma-separated, booleans true/false.",
)
@click.option("--warmup", type=int, default=0, show_default=True, help="Linear warmup steps.")
@click.option("--warmup-start", type=float, default=0.0, show_default=True, help="Rate warmup starts from.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), help="Also draw it (.png or .html).")
def command(
    schedule_type: str,
    lr: float,
    steps: int,
    params: tuple[str, ...],
    warmup: int,
    warmup_start: float,
    plot: Path | None,
) -> None:
    integer("--steps", steps, 1, MAX_PRINTED)
    if plot is not None:
        check_plot_path(plot)
    schedule = create_schedule(
        schedule_type,
        lr,
        parse_params(schedule_type, params) if schedule_type in SCHEDULES else {},
        warmup=warmup,
        warmup_start=warmup_start,
        horizon=steps,
    )
    schedule.check_rates(steps)
    if schedule.tracker() is not None:
        click.echo("note: plateau lowers the rate when the validation loss stalls; shown without reductions", err=True)
    t = np.arange(steps)
    rates = schedule(t)
    lines = ["step,lr", *(f"{step},{rate:.10g}" for step, rate in zip(t, rates, strict=True))]
    click.echo("\n".join(lines))
    if plot is not None:
        label = schedule_type + (f" + warmup {warmup}" if warmup else "")
        line_chart(
            plot,
            {label: (t, rates)},
            title=f"{label}, lr {lr:g}",
            x_label="step",
            y_label="learning rate",
            stepwise=True,
        )
