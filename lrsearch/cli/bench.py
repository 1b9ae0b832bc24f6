"""``lrsearch bench``: the population engine against the plain loop, on this device, in one run."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lrsearch.bench import Measurement, bench_blobs, bench_lenet, bench_sampler, bench_search, bench_workers
from lrsearch.checks import MAX_WORKERS, integer
from lrsearch.engine.devices import describe_device, resolve_device
from lrsearch.engine.population import MAX_EPOCHS
from lrsearch.spec.choices import PRUNERS, SAMPLERS
from lrsearch.spec.studies import MAX_POPULATION
from lrsearch.storage.urls import masked, resolve_url


@click.command("bench")
@click.option(
    "--trainer",
    type=click.Choice(["blobs", "fashion_mnist", "search", "sampler", "workers", "all"]),
    default="all",
    show_default=True,
    help="search: the blobs_lr study through Optuna, both sides on "
    "SQLite; sampler: a round of asks, lrsearch's TPE against Optuna's; workers: --workers processes on "
    "one study in --storage, and the time they spend outside training.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--population", type=int, help="Members trained at once (default: by trainer and device).")
@click.option(
    "--baseline-trials", type=int, default=3, show_default=True, help="Blobs trials the one-at-a-time loop trains."
)
@click.option("--epochs", type=int, help="Blobs epochs per trial (default 200); LeNet always trains one epoch.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Folder with the IDX files.")
@click.option("--storage", help="For --trainer workers: the database (default: LRSEARCH_STORAGE).")
@click.option(
    "--workers",
    type=int,
    default=8,
    show_default=True,
    help="For --trainer workers: worker processes; sampler: as many workers' populations running.",
)
@click.option(
    "--trials",
    type=int,
    default=512,
    show_default=True,
    help="For --trainer workers: search trials; sampler: finished trials in the study.",
)
@click.option(
    "--sampler",
    type=click.Choice(list(SAMPLERS)),
    help="For --trainer workers: instead of the study's TPE (random: the storage's share alone).",
)
@click.option(
    "--pruner",
    type=click.Choice(list(PRUNERS)),
    default="none",
    show_default=True,
    help="For --trainer workers: the pruner (median: the study's own, as `lrsearch run` prunes).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(
    trainer: str,
    device: str,
    population: int | None,
    baseline_trials: int,
    epochs: int | None,
    data_dir: Path | None,
    storage: str | None,
    workers: int,
    trials: int,
    sampler: str | None,
    pruner: str,
    as_json: bool,
) -> None:
    """Trials/second (blobs, and the blobs_lr search through Optuna) and examples/second (LeNet) of the
    population engine and of the plain one-at-a-time loop."""
    for name, value, high in (
        ("--population", population, MAX_POPULATION),
        ("--epochs", epochs, MAX_EPOCHS),
        ("--baseline-trials", baseline_trials, 1000),
        ("--workers", workers, MAX_WORKERS),
        ("--trials", trials, 100_000),
    ):
        if value is not None:
            integer(name, value, 1, high)
    torch_device, url = resolve_device(device), resolve_url(storage)  # checked whatever the trainer
    if trainer == "sampler":
        _sampler(trials=trials, workers=workers, population=population or 64, as_json=as_json)
        return
    if trainer == "workers":
        _workers(
            url,
            workers=workers,
            trials=trials,
            population=population or 64,
            epochs=epochs,
            sampler=sampler,
            pruner=pruner,
            as_json=as_json,
        )
        return
    results: dict[str, list[Measurement]] = {}
    if trainer in ("blobs", "all"):
        results["blobs"] = bench_blobs(
            torch_device, population=population, baseline_trials=baseline_trials, epochs=epochs
        )
    if trainer in ("search", "all"):
        results["search"] = bench_search(torch_device, trials=population or 64, baseline_trials=baseline_trials)
    if trainer in ("fashion_mnist", "all"):
        results["fashion_mnist"] = bench_lenet(torch_device, population=population, data_dir=data_dir)
    if as_json:
        payload = {
            "device": describe_device(torch_device),
            **{
                name: {
                    "measurements": [
                        {
                            **vars(m),
                            "trials_per_second": m.trials_per_second,
                            "examples_per_second": m.examples_per_second,
                        }
                        for m in ms
                    ],
                    "ratio": _ratio(name, ms),
                }
                for name, ms in results.items()
            },
        }
        click.echo(json.dumps(payload, indent=2))
        return
    console = Console()
    console.print(f"device: {describe_device(torch_device)}")
    for name, ms in results.items():
        table = Table(title=name, show_edge=False)
        for column in ("", "trials", "seconds", "trials/s", "examples/s"):
            table.add_column(column, justify="right" if column else "left")
        for m in ms:
            table.add_row(
                m.label,
                str(m.trials),
                f"{m.seconds:.2f}",
                f"{m.trials_per_second:.3f}",
                f"{m.examples_per_second:,.0f}",
            )
        console.print(table)
        unit = "examples/s" if name == "fashion_mnist" else "trials/s"
        for label, ratio in _ratio(name, ms).items():
            console.print(f"  population / {label}: [bold]{ratio:.1f}x[/bold] {unit}")


def _workers(
    storage: str,
    *,
    workers: int,
    trials: int,
    population: int,
    epochs: int | None,
    sampler: str | None,
    pruner: str,
    as_json: bool,
) -> None:
    timing = bench_workers(
        storage, workers=workers, trials=trials, population=population, epochs=epochs, sampler=sampler, pruner=pruner
    )
    if as_json:
        click.echo(json.dumps({**vars(timing), "outside_training": timing.outside_training}, indent=2))
        return
    click.echo(
        f"{timing.workers} workers on {masked(storage)}: {timing.trials} trials in {timing.seconds:.1f} s; "
        f"summed over workers: {timing.wall:.1f} s wall, {timing.training:.1f} s training, "
        f"{timing.waiting:.1f} s idle waiting for others"
    )
    other = timing.wall - timing.training - timing.asking - timing.pruning - timing.telling - timing.waiting
    click.echo(
        f"outside training: {timing.asking:.1f} s asking, {timing.pruning:.1f} s pruning, "
        f"{timing.telling:.1f} s telling, {other:.1f} s other reads and heartbeats"
    )
    click.echo(f"outside training (ask, tell, storage): {timing.outside_training:.1%} of the busy time")


def _sampler(*, trials: int, workers: int, population: int, as_json: bool) -> None:
    timing = bench_sampler(finished=trials, running=(workers - 1) * population, population=population)
    if as_json:
        click.echo(json.dumps({**vars(timing), "ratio": timing.ratio}, indent=2))
        return
    click.echo(
        f"TPE, a round of {timing.population} asks on {timing.finished} finished and {timing.running} running "
        f"trials: lrsearch {timing.ours:.2f} s, Optuna {timing.optuna:.2f} s: {timing.ratio:.1f}x; "
        f"the same suggestions: {'yes' if timing.same else 'no'}"
    )


def _ratio(name: str, ms: list[Measurement]) -> dict[str, float]:
    """The population's speed over each plain loop's: trials/s for blobs, examples/s for LeNet."""
    ours, *plain = ms
    if name == "fashion_mnist":
        return {m.label: ours.examples_per_second / m.examples_per_second for m in plain}
    return {m.label: ours.trials_per_second / m.trials_per_second for m in plain}
