"""``lrsearch bench``: the population engine against the plain loop, on this device, in one run."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lrsearch.bench import (
    Measurement,
    SearchTiming,
    bench_blobs,
    bench_lenet,
    bench_sampler,
    bench_search,
    bench_workers,
)
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
    help="search: `lrsearch run --study blobs_lr --pruner none` end to end against a plain Optuna loop, "
    "each a whole process on SQLite; sampler: a round of asks, lrsearch's TPE against Optuna's; workers: "
    "--workers processes on one study in --storage, and the time they spend outside training.",
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
    help="For --trainer search: its trials (default 256); workers: search trials (512); sampler: finished "
    "trials in the study (512).",
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
    trials: int | None,
    sampler: str | None,
    pruner: str,
    as_json: bool,
) -> None:
    """Trials/second (blobs) and examples/second (LeNet) of the population engine and of the plain
    one-at-a-time loop, and `lrsearch run` end to end against a plain Optuna loop (search)."""
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
    if trainer == "search":
        _search(bench_search(torch_device, trials=trials or 256, baseline_trials=baseline_trials), as_json)
        return
    trials = trials or 512
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
        if trainer == "all":
            payload["search"] = _search_json(bench_search(torch_device, baseline_trials=baseline_trials))
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
    if trainer == "all":
        _search(bench_search(torch_device, baseline_trials=baseline_trials), as_json=False)


def _search_json(timing: SearchTiming) -> dict[str, float]:
    derived = ("fixed", "trials_per_second", "plain_seconds", "ratio")
    return {**vars(timing), **{name: getattr(timing, name) for name in derived}}


def _search(timing: SearchTiming, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(_search_json(timing), indent=2))
        return
    other = timing.searching - timing.training - timing.asking - timing.telling - timing.pruning
    click.echo(
        f"lrsearch run --study blobs_lr --pruner none --n-trials {timing.trials}: {timing.seconds:.1f} s end to end "
        f"({timing.trials} trials and {timing.repeats} repeats)\n"
        f"  fixed: {timing.fixed:.1f} s (start-up and imports {timing.startup:.1f}, study, data and population "
        f"{timing.setup:.1f}, report {timing.report:.1f}, exit {timing.fixed - timing.startup - timing.setup - timing.report:.1f})\n"
        f"  trials: {timing.searching:.1f} s, {timing.trials_per_second:.1f} trials/s (training {timing.training:.1f}, "
        f"asking {timing.asking:.1f}, telling {timing.telling:.1f}, pruning {timing.pruning:.1f}, other {other:.1f})\n"
        f"plain Optuna loop (study.optimize, DataLoader objective), a process: {timing.plain_fixed:.1f} s fixed + "
        f"{timing.plain_per_trial:.2f} s per trial = {timing.plain_seconds:.0f} s for {timing.trials} trials\n"
        f"end to end: {timing.ratio:.1f}x the plain loop"
    )


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
