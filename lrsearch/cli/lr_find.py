"""``lrsearch lr-find``: the learning-rate range test, a suggested rate and a search range."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lrsearch.cli.train import parse_optimizer_params
from lrsearch.engine import check_run_length
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.devices import resolve_device
from lrsearch.engine.lr_find import lr_range_test
from lrsearch.engine.optim import OPTIMIZERS
from lrsearch.engine.plugins import resolve
from lrsearch.review.plots import check_plot_path, line_chart


@click.command("lr-find")
@click.option(
    "--trainer",
    required=True,
    metavar="NAME|MODULE:CALLABLE",
    help="The problem to test on: a bundled or installed trainer (`lrsearch trainers`), or your own.",
)
@click.option("--optimizer", default="sgd", show_default=True, help=f"One of: {', '.join(OPTIMIZERS)}.")
@click.option("--momentum", type=float, default=0.0, show_default=True, help="SGD / RMSprop momentum.")
@click.option(
    "--optimizer-param",
    "optimizer_params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Other optimizer settings: alpha, beta1, beta2, eps (repeatable).",
)
@click.option("--start", type=float, default=1e-7, show_default=True, help="Rate of the first update.")
@click.option("--end", type=float, default=10.0, show_default=True, help="Rate of the last update.")
@click.option("--updates", type=int, default=300, show_default=True, help="Updates from start to end.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Initialisations averaged (one population).")
@click.option("--batch-size", type=int, help="Batch size (default: the trainer's).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Folder with the IDX files.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), help="Loss against rate (.png or .html).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(
    trainer: str,
    optimizer: str,
    momentum: float,
    optimizer_params: tuple[str, ...],
    start: float,
    end: float,
    updates: int,
    seeds: int,
    batch_size: int | None,
    device: str,
    data_dir: Path | None,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Raise the rate exponentially each update and watch the loss: prints the suggested rate (steepest
    descent of the smoothed loss) and a search range for a study's lr bounds."""
    config = TrainConfig(
        optimizer=optimizer, momentum=momentum, optimizer_params=parse_optimizer_params(optimizer_params)
    )
    check_run_length(None, batch_size)
    if plot is not None:
        check_plot_path(plot)
    torch_device = resolve_device(device)
    problem = resolve(trainer).load(torch_device, data_dir)
    test = lr_range_test(problem, config, start=start, end=end, updates=updates, seeds=seeds, batch_size=batch_size)
    if plot is not None:
        line_chart(
            plot,
            {f"{trainer}, {optimizer}, {seeds} seeds": (test.rates, test.losses)},
            title=f"Range test: suggested {test.suggested:.3g}",
            x_label="learning rate",
            y_label="training loss (smoothed)",
            log_x=True,
        )
    result = {
        "suggested": test.suggested,
        "range": [test.low, test.high],
        "lr_at_minimum_loss": test.lr_at_minimum,
        "updates_run": len(test.rates),
        "diverged": test.diverged,
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"suggested lr: {test.suggested:.3g}")
    click.echo(
        f"search range: {test.low:.3g} .. {test.high:.3g}   (in a study: lr = {{ low = {test.low:.3g}, "
        f"high = {test.high:.3g}, log = true }}, or lr = 'auto')"
    )
    click.echo(
        f"minimum loss at lr {test.lr_at_minimum:.3g}; {len(test.rates)} updates"
        + (", stopped when the loss diverged" if test.diverged else "")
    )
