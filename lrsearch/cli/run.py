"""``lrsearch run``: run (or join) a study, then its repeats, then print what it answers (``lrsearch.run``)."""

from __future__ import annotations

from pathlib import Path

import click

from lrsearch.cli import options
from lrsearch.cli.report import print_report, report_console
from lrsearch.runs import run
from lrsearch.spec.choices import PRUNERS, SAMPLERS
from lrsearch.storage.heartbeat import Heartbeat


@click.command("run")
@click.option("--study", "study_name", required=True, metavar="NAME|PATH", help="A study name or a .toml file.")
@options.storage
@click.option("--n-trials", type=int, help="Study-wide number of search trials (overrides the file).")
@click.option("--timeout", type=float, help="Seconds after which no new trial starts (overrides the file).")
@click.option("--epochs", type=int, help="Epochs per trial (overrides the file; a new study definition).")
@click.option("--population", type=int, help="Trials trained at once, per worker (overrides the file).")
@click.option(
    "--sampler",
    type=click.Choice(list(SAMPLERS)),
    help="Overrides the file's sampler. Not CMA-ES: Optuna's unpickles its state from the database, "
    "which is safe only on a database you trust, and a shared one is the kind you may not.",
)
@click.option("--pruner", type=click.Choice(list(PRUNERS)), help="Overrides the file's pruner.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--devices", help="One worker per listed device, e.g. cuda:0,cuda:1 (default: every visible GPU).")
@click.option("--workers", type=int, help="Local worker processes (default: one per device).")
@click.option("--seed", type=int, help="Base seed for trials and samplers (overrides the file).")
@options.int_option("--heartbeat", Heartbeat.interval, "Seconds between the heartbeats of running trials.")
@options.grace
@options.max_retry
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Folder with the IDX files.")
@click.option(
    "--artifacts",
    metavar="DIR|s3://BUCKET|gs://BUCKET",
    help="Where each trial's curves go (default: LRSEARCH_ARTIFACTS, else beside a SQLite database).",
)
@click.option("--no-report", is_flag=True, hidden=True, help="A worker started by another run: no summary.")
def command(
    study_name: str,
    storage: str | None,
    n_trials: int | None,
    timeout: float | None,
    epochs: int | None,
    population: int | None,
    sampler: str | None,
    pruner: str | None,
    device: str,
    devices: str | None,
    workers: int | None,
    seed: int | None,
    heartbeat: int,
    grace: int,
    max_retry: int,
    data_dir: Path | None,
    artifacts: str | None,
    no_report: bool,
) -> None:
    """Search a study's space with a population of trials at a time; then re-run each compared group's best
    with new seeds; then print the comparison and the verdict. Several workers (here, or on other machines
    with the same --storage) share one study."""
    answer = run(
        study_name,
        storage=storage,
        n_trials=n_trials,
        timeout=timeout,
        epochs=epochs,
        population=population,
        sampler=sampler,
        pruner=pruner,
        device=device,
        devices=devices,
        workers=workers,
        seed=seed,
        heartbeat=heartbeat,
        grace=grace,
        max_retry=max_retry,
        data_dir=data_dir,
        artifacts=artifacts,
        report=not no_report,
    )
    if answer is not None:
        print_report(answer.summary, report_console())
