"""Running a study end to end: create or join it, its note, the search, the repeats and the report; in this
process, or in several local worker processes on one storage.

```python
report = lrsearch.run("cosine_vs_step", storage="sqlite:///x.db", n_trials=8)   # a name, a path or a dict
report = lrsearch.run({"question": "...", "compare": "schedule", ...}, problem=problem())
report.verdict          # the sentence the CLI prints
report.to_frame()       # the per-group table as a pandas DataFrame
report.study            # the optuna.Study
```
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import optuna_dashboard
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lrsearch.artifacts import ArtifactWriter, open_store, resolve_artifacts
from lrsearch.checks import MAX_WORKERS, integer
from lrsearch.devices import resolve_device
from lrsearch.errors import ConfigError, RuntimeFailure
from lrsearch.problem import Problem
from lrsearch.report import StudyReport, build_report
from lrsearch.review import publish
from lrsearch.search.auto_lr import resolve_auto_lr
from lrsearch.search.repeats import schedule_repeats
from lrsearch.search.runner import Search, Tally, worker_id
from lrsearch.search.study import join_study
from lrsearch.storage import Heartbeat, open_storage, retrying
from lrsearch.studies import StudySpec, load_study
from lrsearch.trainers import Problem as EngineProblem
from lrsearch.urls import masked, resolve_url

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Report", "run"]


@dataclasses.dataclass(frozen=True)
class Report:
    """What a study answers: ``summary`` is the full report (groups, intervals, tests, importances)."""

    study: optuna.Study
    summary: StudyReport

    @property
    def verdict(self) -> str:
        return self.summary.verdict

    def to_frame(self) -> pd.DataFrame:
        """The comparison, a row per compared group: the table the CLI prints."""
        import pandas as pd

        header, rows = self.summary.table()
        return pd.DataFrame(rows, columns=header)


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


def run(
    study: str | Path | Mapping[str, Any],
    *,
    problem: Problem | None = None,
    name: str = "study",
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    epochs: int | None = None,
    population: int | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    device: str = "auto",
    devices: str | None = None,
    workers: int | None = None,
    seed: int | None = None,
    heartbeat: int = Heartbeat.interval,
    grace: int = Heartbeat.grace,
    max_retry: int = Heartbeat.max_retry,
    data_dir: Path | None = None,
    artifacts: str | None = None,
    progress: bool = True,
    report: bool = True,
) -> Report | None:
    """Run (or join) ``study``: a bundled name, a path, or a mapping of a study file's keys (then called
    ``name``); ``problem`` gives the problem directly instead of the study's ``trainer``. Everything
    ``lrsearch run`` does; the other arguments are its flags. ``progress``: a bar on a terminal or in a
    notebook, a line per finished batch elsewhere; False for neither. Returns the report (None with
    ``report=False``, a worker started by another run)."""
    worker_devices = _devices(devices, device)
    if workers is not None:
        integer("workers", workers, 1, MAX_WORKERS)
    beats = Heartbeat(interval=heartbeat, grace=grace, max_retry=max_retry)
    spec = load_study(study, problem=problem, name=name).for_device(torch.device(worker_devices[0]).type)
    pruner_settings = spec.pruner_settings if pruner in (None, spec.pruner) else {}
    spec = spec.with_overrides(n_trials=n_trials, timeout=timeout, epochs=epochs, population=population,
                               sampler=sampler, pruner=pruner, pruner_settings=pruner_settings, seed=seed)  # fmt: skip
    url = resolve_url(storage)
    location = resolve_artifacts(artifacts, url)
    count = workers or len(worker_devices)
    if count > 1 and url in ("sqlite://", "sqlite:///:memory:"):
        raise ConfigError("several workers need a storage they can share; an in-memory SQLite database is not")
    if count > 1 and (problem is not None or isinstance(study, Mapping)):
        raise ConfigError("several local workers read the study file and import its trainer themselves: give a "
                          "study file whose trainer names the problem (module:callable), or run one worker")  # fmt: skip
    # The data is read (and checked) before the study is written: bad data must not leave an empty study.
    engine = None
    if count == 1:
        engine = spec.resolved_trainer.load(torch.device(worker_devices[0]), data_dir)
    else:
        spec.resolved_trainer.check_data(data_dir)  # each worker loads its own; this only checks it
    # A worker never needs other trials' per-epoch values but at the epochs its pruner decides. Every
    # storage call survives a database restart (retried), those of start-up and of the report included.
    joined = retrying(join_study, spec, open_storage(url, beats, per_epoch_values=False), worker=worker_id())
    store = open_store(location) if location else None
    if report and not retrying(optuna_dashboard.get_note, joined):
        retrying(publish, joined, spec)  # the question, before any answer
    if engine is None:
        forwarded = [f"--{flag.replace('_', '-')}={value}" for flag, value in (
            ("n_trials", n_trials), ("timeout", timeout), ("epochs", epochs), ("population", population),
            ("sampler", sampler), ("pruner", pruner), ("seed", seed), ("heartbeat", heartbeat), ("grace", grace),
            ("max_retry", max_retry), ("data_dir", data_dir), ("artifacts", location)) if value is not None]  # fmt: skip
        if progress:
            print(f"study {spec.name} in {masked(url)}: {count} workers on {', '.join(worker_devices)}", file=sys.stderr)
        _run_workers(spec, url, worker_devices, count, forwarded)
    else:
        writer = ArtifactWriter(store) if store is not None else None
        try:
            _work(spec, joined, engine, masked(url), writer, progress)
        finally:
            if writer is not None:
                writer.close()
    if not report:
        return None
    return Report(*retrying(_final_report, spec, url))


def _final_report(spec: StudySpec, url: str) -> tuple[optuna.Study, StudyReport]:
    """The study's report, also published to the dashboard. Read in full: the workers' reads leave out the
    per-epoch values and lists the charts show."""
    study = optuna.load_study(study_name=spec.name, storage=open_storage(url, heartbeat=None))
    report = build_report(study)
    publish(study, spec, report)
    return study, report


def _work(spec: StudySpec, study: optuna.Study, problem: EngineProblem, where: str, artifacts: ArtifactWriter | None,
          progress: bool) -> None:  # fmt: skip
    """This process as one worker: the search, then the repeats."""
    device = problem.device
    spec = resolve_auto_lr(spec, study, problem)
    console = Console(stderr=True, quiet=not progress)
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
