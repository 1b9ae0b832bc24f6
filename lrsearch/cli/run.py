"""``lrsearch run``: run (or join) a study, then its repeats, then print what it answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import optuna
import optuna_dashboard
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lrsearch.artifacts import ArtifactWriter, open_store, resolve_artifacts
from lrsearch.checks import integer
from lrsearch.cli import MAX_WORKERS
from lrsearch.cli.report import print_report, report_console
from lrsearch.devices import resolve_device
from lrsearch.errors import ConfigError, RuntimeFailure
from lrsearch.report import StudyReport, build_report
from lrsearch.review import publish
from lrsearch.search.auto_lr import resolve_auto_lr
from lrsearch.search.pruning import PRUNERS
from lrsearch.search.repeats import schedule_repeats
from lrsearch.search.runner import Search, Tally, worker_id
from lrsearch.search.samplers import SAMPLERS
from lrsearch.search.study import join_study
from lrsearch.storage import Heartbeat, open_storage, retrying
from lrsearch.studies import StudySpec, find_study, load_study_file
from lrsearch.trainers import Problem
from lrsearch.urls import masked, resolve_url


class _Display:
    """A progress bar on a terminal; elsewhere (CI, docker logs, several workers) a line on stderr per
    finished batch."""

    def __init__(self, console: Console, total: int | None, label: str) -> None:
        self.console, self.total, self.label = console, total, label
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), console=console, disable=not console.is_terminal,
        )  # fmt: skip
        self.task = self.progress.add_task("trials", total=total, status="")

    @staticmethod
    def status(t: Tally) -> str:
        best = f", best {t.best_value:.4f} (trial {t.best_trial})" if t.best_value is not None else ""
        return f"{t.completed} complete, {t.pruned} pruned ({t.diverged} diverged), {t.failed} failed{best}"

    def phase(self, description: str, total: int | None) -> None:
        self.progress.update(self.task, description=description, total=total, completed=0)

    def update(self, tally: Tally) -> None:
        self.progress.update(self.task, completed=tally.finished, status=self.status(tally))
        if not self.console.is_terminal:
            self.console.print(f"[{time.strftime('%H:%M:%S')} {self.label}] {self.status(tally)}", highlight=False)


def _devices(devices: str | None, device: str) -> list[str]:
    """The device of each worker: ``--devices``, else every visible GPU for ``auto``, else ``--device``."""
    if devices:
        names = [d.strip() for d in devices.split(",") if d.strip()]
        if not names:
            raise ConfigError(f"--devices must list devices (cuda:0,cuda:1) but got {devices!r}")
        return [str(resolve_device(name)) for name in names]
    if device == "auto" and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [str(resolve_device(device))]


def _run_workers(spec: StudySpec, url: str, devices: list[str], workers: int, forwarded: list[str]) -> None:
    """Start ``workers`` processes on ``devices`` (round robin) and wait for all of them."""
    # The URL travels in the environment, not the command line: `ps` shows command lines to everyone.
    env = {**os.environ, "LRSEARCH_STORAGE": url}
    assigned = [devices[i % len(devices)] for i in range(workers)]
    cpu_workers = sum(d == "cpu" for d in assigned)
    procs = []
    for device in assigned:
        child = dict(env)
        if device == "cpu" and "OMP_NUM_THREADS" not in env:
            # CPU workers share the cores; more threads than cores makes OpenMP spin against itself.
            child["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // cpu_workers))
        command = [sys.executable, "-m", "lrsearch", "run", "--study", str(spec.path), "--device", device,
                   "--workers", "1", "--no-report", *forwarded]  # fmt: skip
        procs.append(subprocess.Popen(command, env=child))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        # The terminal's Ctrl-C reached every worker too; let each end its trials and exit.
        for p in procs:
            p.wait()
        raise
    failed = [(i, code) for i, code in enumerate(codes) if code != 0]
    if failed:
        i, code = failed[0]
        if code in (130, -signal.SIGINT):  # a worker that Python's own handler ended dies of the signal
            raise KeyboardInterrupt
        raise RuntimeFailure(f"worker {i} on {assigned[i]} exited with code {code}")


@click.command("run")
@click.option("--study", "study_name", required=True, metavar="NAME|PATH", help="A study name or a .toml file.")
@click.option("--storage", help="Database URL (default: LRSEARCH_STORAGE, else sqlite:///lrsearch.db).")
@click.option("--n-trials", type=int, help="Study-wide number of search trials (overrides the file).")
@click.option("--timeout", type=float, help="Seconds after which no new trial starts (overrides the file).")
@click.option("--epochs", type=int, help="Epochs per trial (overrides the file; a new study definition).")
@click.option("--population", type=int, help="Trials trained at once, per worker (overrides the file).")
@click.option("--sampler", type=click.Choice(list(SAMPLERS)),
              help="Overrides the file's sampler. Not CMA-ES: Optuna's unpickles its state from the database, "
              "which is safe only on a database you trust, and a shared one is the kind you may not.")
@click.option("--pruner", type=click.Choice(list(PRUNERS)), help="Overrides the file's pruner.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--devices", help="One worker per listed device, e.g. cuda:0,cuda:1 (default: every visible GPU).")
@click.option("--workers", type=int, help="Local worker processes (default: one per device).")
@click.option("--seed", type=int, help="Base seed for trials and samplers (overrides the file).")
@click.option("--heartbeat", type=int, default=Heartbeat.interval, show_default=True,
              help="Seconds between the heartbeats of running trials.")
@click.option("--grace", type=int, default=Heartbeat.grace, show_default=True,
              help="Seconds without a heartbeat after which a trial's worker counts as gone.")
@click.option("--max-retry", type=int, default=Heartbeat.max_retry, show_default=True,
              help="How many times a failed trial is re-enqueued.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Folder with the IDX files.")
@click.option("--artifacts", metavar="DIR|s3://BUCKET|gs://BUCKET",
              help="Where each trial's curves go (default: LRSEARCH_ARTIFACTS, else beside a SQLite database).")
@click.option("--no-report", is_flag=True, hidden=True, help="A worker started by another run: no summary.")
def command(
    study_name: str, storage: str | None, n_trials: int | None, timeout: float | None, epochs: int | None,
    population: int | None, sampler: str | None, pruner: str | None, device: str, devices: str | None,
    workers: int | None, seed: int | None, heartbeat: int, grace: int, max_retry: int, data_dir: Path | None,
    artifacts: str | None, no_report: bool,
) -> None:  # fmt: skip
    """Search a study's space with a population of trials at a time; then re-run each compared group's best
    with new seeds; then print the comparison and the verdict. Several workers (here, or on other machines
    with the same --storage) share one study."""
    worker_devices = _devices(devices, device)
    if workers is not None:
        integer("--workers", workers, 1, MAX_WORKERS)
    beats = Heartbeat(interval=heartbeat, grace=grace, max_retry=max_retry)
    spec = load_study_file(find_study(study_name)).for_device(torch.device(worker_devices[0]).type)
    pruner_settings = spec.pruner_settings if pruner in (None, spec.pruner) else {}
    spec = spec.with_overrides(n_trials=n_trials, timeout=timeout, epochs=epochs, population=population,
                               sampler=sampler, pruner=pruner, pruner_settings=pruner_settings, seed=seed)  # fmt: skip
    url = resolve_url(storage)
    location = resolve_artifacts(artifacts, url)
    count = workers or len(worker_devices)
    if count > 1 and url in ("sqlite://", "sqlite:///:memory:"):
        raise ConfigError("several workers need a storage they can share; an in-memory SQLite database is not")
    # The data is read (and checked) before the study is written: bad data must not leave an empty study.
    problem = None
    if count == 1:
        problem = spec.resolved_trainer.load(torch.device(worker_devices[0]), data_dir)
    else:
        spec.resolved_trainer.check_data(data_dir)  # each worker loads its own; this only checks it
    # A worker never needs other trials' per-epoch values but at the epochs its pruner decides. Every
    # storage call survives a database restart (retried), those of start-up and of the report included.
    study = retrying(join_study, spec, open_storage(url, beats, per_epoch_values=False), worker=worker_id())
    store = open_store(location) if location else None
    if not no_report and not retrying(optuna_dashboard.get_note, study):
        retrying(publish, study, spec)  # the question, before any answer
    if problem is None:
        forwarded = [f"--{name.replace('_', '-')}={value}" for name, value in (
            ("n_trials", n_trials), ("timeout", timeout), ("epochs", epochs), ("population", population),
            ("sampler", sampler), ("pruner", pruner), ("seed", seed), ("heartbeat", heartbeat), ("grace", grace),
            ("max_retry", max_retry), ("data_dir", data_dir), ("artifacts", location)) if value is not None]  # fmt: skip
        click.echo(f"study {spec.name} in {masked(url)}: {count} workers on {', '.join(worker_devices)}", err=True)
        _run_workers(spec, url, worker_devices, count, forwarded)
    else:
        writer = ArtifactWriter(store) if store is not None else None
        try:
            _work(spec, study, problem, masked(url), writer)
        finally:
            if writer is not None:
                writer.close()
    if not no_report:
        print_report(retrying(_final_report, spec, url), report_console())


def _final_report(spec: StudySpec, url: str) -> StudyReport:
    """The study's report, also published to the dashboard. Read in full: the workers' reads leave out the
    per-epoch values and lists the charts show."""
    study = optuna.load_study(study_name=spec.name, storage=open_storage(url, heartbeat=None))
    report = build_report(study)
    publish(study, spec, report)
    return report


def _work(spec: StudySpec, study: optuna.Study, problem: Problem, where: str, artifacts: ArtifactWriter | None) -> None:
    """This process as one worker: the search, then the repeats."""
    device = problem.device
    spec = resolve_auto_lr(spec, study, problem)
    console = Console(stderr=True)
    console.print(f"study {spec.name} in {where} on {device} ({worker_id()}): {spec.question}", highlight=False)
    if artifacts is None:
        console.print("no artifact store (--artifacts or LRSEARCH_ARTIFACTS): trials keep their curves as user "
                      "attrs only", highlight=False)  # fmt: skip
    display = _Display(console, spec.n_trials, f"{device} {worker_id()}")
    search = Search(spec, study, problem, on_progress=display.update, artifacts=artifacts)
    with display.progress:
        search.run(n_trials=spec.n_trials, timeout=spec.timeout)
        if spec.repeats:
            display.phase("repeats", None)
            schedule_repeats(study, spec)
            search.run(n_trials=None, timeout=None, drain_waiting=True)
