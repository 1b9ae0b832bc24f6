"""Running a study end to end: create or join it, its note, the search, the repeats and the report; in this
process, or in several local worker processes (multiprocessing's spawn) on one storage.

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
import io
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import optuna
import optuna_dashboard
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lrsearch.checks import MAX_WORKERS, integer
from lrsearch.engine import Problem as EngineProblem
from lrsearch.engine.devices import resolve_device, worker_visibility
from lrsearch.engine.faults import injected_oom_epoch
from lrsearch.engine.problem import Problem
from lrsearch.errors import ConfigError, RuntimeFailure, one_line
from lrsearch.interrupts import Interrupted, OncePerBurst, ignored, noted
from lrsearch.review.artifacts import ArtifactWriter, open_store, resolve_artifacts
from lrsearch.review.dashboard import publish
from lrsearch.review.report import StudyReport, build_report
from lrsearch.schema import RUN_PREFIX
from lrsearch.search.auto_lr import resolve_auto_lr
from lrsearch.search.auto_population import resolve_auto_population
from lrsearch.search.repeats import schedule_pbt, schedule_repeats
from lrsearch.search.runner import Search, Tally, worker_id
from lrsearch.search.study import join_study
from lrsearch.spec.studies import StudySpec, load_study
from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.opening import open_storage
from lrsearch.storage.retries import retrying
from lrsearch.storage.urls import masked, resolve_url

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
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
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
            self.console.print(
                f"[{time.strftime('%H:%M:%S')} {self.label}] {self.status(tally)}", highlight=False, soft_wrap=True
            )


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


@dataclasses.dataclass(frozen=True)
class _Job:
    """What a spawned worker runs: the study as the caller gave it, and ``run``'s arguments for one worker."""

    study: str | Path | Mapping[str, Any]
    problem: Problem | None
    settings: Mapping[str, Any]
    threads: int | None
    interruptible: bool
    verbosity: int  # Optuna's logging, as the caller set it


class _Pickler(pickle.Pickler):
    """Pickles a job, noting the functions and classes it refers to in a ``__main__`` that a spawned
    process cannot import (a notebook's, an interactive session's)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        main = sys.modules.get("__main__")
        self.importable = main is not None and getattr(main, "__file__", None) is not None
        self.stranded: list[str] = []

    def reducer_override(self, obj: Any) -> Any:
        if not self.importable and getattr(obj, "__module__", None) == "__main__" and hasattr(obj, "__qualname__"):
            self.stranded.append(obj.__qualname__)
        return NotImplemented


def _pickled(job: _Job) -> bytes:
    """The job as the workers receive it, checked before anything is written: a problem whose model or data
    only this process can see is one clear error."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer)
    try:
        pickler.dump(job)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"several local workers need a problem they can be sent ({one_line(exc)}): make its model "
            "a function defined at module level in a file, not a lambda, or run one worker"
        ) from None
    if pickler.stranded:
        raise ConfigError(
            f"several local workers cannot import {', '.join(sorted(set(pickler.stranded)))}, defined "
            "in this session's __main__ (a notebook's): put the problem in a module file, or run one "
            "worker"
        )
    return buffer.getvalue()


class _RemoteTraceback(Exception):
    """A worker's traceback, as the cause of the error it ended with (``--debug`` shows it)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _worker(parent: Connection, visible: str) -> None:
    """A spawned local worker: sees the GPUs ``visible`` (``CUDA_VISIBLE_DEVICES``) alone, receives its job
    from ``parent``, runs ``run`` for one worker and sends back its exit code and error (if any)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = visible  # before anything can start CUDA here
    code, message, details = 0, "", ""
    try:
        job: _Job = pickle.loads(parent.recv_bytes())
        if job.interruptible:  # started with SIGINT ignored, so that a Ctrl-C met no import half done
            signal.signal(signal.SIGINT, OncePerBurst())
        parent.send(("ready", 0, "", ""))
        optuna.logging.set_verbosity(job.verbosity)
        if job.threads is not None:
            torch.set_num_threads(job.threads)
        run(job.study, problem=job.problem, **job.settings)
    except KeyboardInterrupt:
        code, message = 130, "interrupted"
    except (ConfigError, RuntimeFailure) as exc:
        code, message, details = exc.exit_code, str(exc), traceback.format_exc()
    except Exception as exc:  # noqa: BLE001 - sent to the parent, which ends with it as one line
        code, message, details = 1, f"unexpected {type(exc).__name__}: {one_line(exc)}", traceback.format_exc()
    parent.send(("done", code, message, details))
    sys.exit(code)


@dataclasses.dataclass
class _Started:
    """A started worker, and what it has sent: ``ready`` (it takes Ctrl-C), ``done`` (code, message, traceback)."""

    device: str
    process: BaseProcess
    connection: Connection
    news: dict[str, tuple[int, str, str]] = dataclasses.field(default_factory=dict)
    interrupted: bool = False
    closed: bool = False  # its end of the pipe: nothing more to read

    def read(self) -> None:
        while not self.closed and self.connection.poll():
            try:
                kind, *rest = self.connection.recv()
            except EOFError:
                self.closed = True
                return
            self.news[kind] = tuple(rest)

    def send(self, payload: bytes) -> None:
        try:
            self.connection.send_bytes(payload)
        except OSError:  # it died before reading its job: its exit code says so
            self.closed = True


def _run_workers(jobs: list[tuple[str, bytes]]) -> None:
    """Start a spawned process per (device, job) and wait for all of them; the first that failed decides
    how this one ends (its error, its exit code's kind).

    Ctrl-C: a terminal's reaches every worker, a notebook's only this process; either way each worker is
    passed one once it takes them (one still starting has written nothing), ends its trials and exits."""
    context = multiprocessing.get_context("spawn")
    started: list[_Started] = []
    stop = threading.Event()
    with noted(stop):
        for device, _ in jobs:
            ours, theirs = context.Pipe()
            visible, _ = worker_visibility(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
            process = context.Process(target=_worker, args=(theirs, visible), name=f"lrsearch-worker-{len(started)}")
            with ignored():
                process.start()
            theirs.close()
            started.append(_Started(device, process, ours))
        for worker, (_, payload) in zip(started, jobs, strict=True):
            worker.send(payload)  # after the starts: a large job waits for its reader
        while alive := [w for w in started if w.process.is_alive()]:
            # Only the live ones: an ended worker's sentinel and pipe stay ready, and waiting on them would spin.
            multiprocessing.connection.wait(
                [w.process.sentinel for w in alive] + [w.connection for w in alive if not w.closed], 0.2
            )
            for worker in started:
                worker.read()
                if stop.is_set() and "ready" in worker.news and not worker.interrupted and worker.process.is_alive():
                    os.kill(worker.process.pid, signal.SIGINT)  # type: ignore[arg-type]
                    worker.interrupted = True
    if stop.is_set():
        raise Interrupted
    for i, worker in enumerate(started):
        worker.read()
        code, message, details = worker.news.get("done", (worker.process.exitcode, "", ""))
        if code == 0:
            continue
        if code in (130, -signal.SIGINT):
            raise Interrupted
        where = f"worker {i} on {worker.device}"
        error = (ConfigError if code == 2 else RuntimeFailure)(f"{where}: {message or f'exited with code {code}'}")
        raise error from (_RemoteTraceback(details) if details else None)


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
    progress: bool | Literal["lines"] = True,
    report: bool = True,
) -> Report | None:
    """Run (or join) ``study``: a bundled name, a path, or a mapping of a study file's keys (then called
    ``name``); ``problem`` gives the problem directly instead of the study's ``trainer``. Everything
    ``lrsearch run`` does; the other arguments are its flags. ``progress``: a bar on a terminal or in a
    notebook, a line per finished batch elsewhere; ``"lines"`` for lines everywhere; False for neither.
    Several ``workers`` are processes started here (multiprocessing's spawn), each sent the study and the
    problem: a problem passed in must then pickle and be importable by them (a module-level function in a
    file, not a lambda or a notebook's). Returns the report (None with ``report=False``: a worker only)."""
    phases = {"started": time.time()}  # kept with the study: where a run's time went (``lrsearch bench``)
    worker_devices = _devices(devices, device)
    injected_oom_epoch()  # a fault switch set wrong is refused before anything is written
    if workers is not None:
        integer("workers", workers, 1, MAX_WORKERS)
    if progress not in (True, False, "lines"):
        raise ConfigError(f"progress must be True, False or 'lines' but got {progress!r}")
    beats = Heartbeat(interval=heartbeat, grace=grace, max_retry=max_retry)
    spec = load_study(study, problem=problem, name=name).for_device(torch.device(worker_devices[0]).type)
    pruner_settings = spec.pruner_settings if pruner in (None, spec.pruner) else {}
    overrides = {
        "n_trials": n_trials,
        "timeout": timeout,
        "epochs": epochs,
        "population": population,
        "sampler": sampler,
        "pruner": pruner,
        "seed": seed,
    }
    spec = spec.with_overrides(**overrides, pruner_settings=pruner_settings)
    url = resolve_url(storage)
    location = resolve_artifacts(artifacts, url)
    count = workers or len(worker_devices)
    if count < len(worker_devices):
        raise ConfigError(
            f"--workers {count} is fewer than the {len(worker_devices)} devices listed: give --workers "
            f"{len(worker_devices)} or more (a worker per device at least), or list fewer devices"
        )
    if count > 1 and url in ("sqlite://", "sqlite:///:memory:"):
        raise ConfigError("several workers need a storage they can share; an in-memory SQLite database is not")
    # The data is read (and checked) before the study is written: bad data must not leave an empty study.
    engine, jobs = None, []
    if count == 1:
        engine = spec.resolved_trainer.load(torch.device(worker_devices[0]), data_dir)
        spec = resolve_auto_population(spec, engine, say=_said if progress else lambda text: None)
    else:
        spec.resolved_trainer.check_data(data_dir)  # each worker loads its own; this only checks it
        jobs = _jobs(
            study,
            problem,
            worker_devices,
            count,
            {
                **overrides,
                "name": name,
                "storage": url,
                "heartbeat": heartbeat,
                "grace": grace,
                "max_retry": max_retry,
                "data_dir": data_dir,
                "artifacts": location,
                "progress": progress and "lines",
                "report": False,
            },
        )
    # A worker never needs other trials' per-epoch values but at the epochs its pruner decides. Every
    # storage call survives a database restart (retried), those of start-up and of the report included.
    joined = retrying(
        join_study, spec, open_storage(url, beats, per_epoch_values=False, retried=True), worker=worker_id()
    )
    store = open_store(location) if location else None
    if report and not retrying(optuna_dashboard.get_note, joined):
        retrying(publish, joined, spec)  # the question, before any answer
    phases["searching"] = time.time()
    if engine is None:
        if progress:
            print(
                f"study {spec.name} in {masked(url)}: {count} workers on {', '.join(worker_devices)}", file=sys.stderr
            )
        _run_workers(jobs)
    else:
        writer = ArtifactWriter(store) if store is not None else None
        try:
            _work(spec, joined, engine, masked(url), writer, progress, max_retry)
        finally:
            if writer is not None:
                writer.close()
    phases["searched"] = time.time()
    key = f"{RUN_PREFIX}{worker_id()}"
    if not report:
        retrying(joined._storage.set_study_system_attr, joined._study_id, key, phases)
        return None
    answer = Report(*retrying(_final_report, spec, url))
    retrying(joined._storage.set_study_system_attr, joined._study_id, key, {**phases, "reported": time.time()})
    return answer


def _said(text: str) -> None:
    print(text, file=sys.stderr)


def _jobs(
    study: str | Path | Mapping[str, Any],
    problem: Problem | None,
    devices: list[str],
    count: int,
    settings: dict[str, Any],
) -> list[tuple[str, bytes]]:
    """Each local worker's device and job, round robin over ``devices``; a job is pickled once per device
    (a problem passed in may carry its data)."""
    assigned = [devices[i % len(devices)] for i in range(count)]
    # The workers share the cores: more threads than cores makes OpenMP spin against itself. A GPU worker's
    # threads feed its GPU and run its share of the host's work (the sampler, the writes).
    threads = None if "OMP_NUM_THREADS" in os.environ else max(1, (os.cpu_count() or 1) // count)
    interruptible = signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    jobs = {
        device: _pickled(
            _Job(
                study,
                problem,
                {**settings, "device": worker_visibility(device, visible)[1], "workers": 1},
                threads,
                interruptible,
                optuna.logging.get_verbosity(),
            )
        )
        for device in dict.fromkeys(assigned)
    }
    return [(device, jobs[device]) for device in assigned]


def _final_report(spec: StudySpec, url: str) -> tuple[optuna.Study, StudyReport]:
    """The study's report, also published to the dashboard. Read in full: the workers' reads leave out the
    per-epoch values and lists the charts show."""
    study = optuna.load_study(study_name=spec.name, storage=open_storage(url, heartbeat=None))
    report = build_report(study)
    publish(study, spec, report)
    return study, report


def _work(
    spec: StudySpec,
    study: optuna.Study,
    problem: EngineProblem,
    where: str,
    artifacts: ArtifactWriter | None,
    progress: bool | Literal["lines"],
    max_retry: int,
) -> None:
    """This process as one worker: the search, a PBT comparison's population, then the repeats."""
    device = problem.device
    spec = resolve_auto_lr(spec, study, problem)
    console = Console(stderr=True, quiet=not progress, force_terminal=False if progress == "lines" else None)
    console.print(
        f"study {spec.name} in {where} on {device} ({worker_id()}): {spec.question}", highlight=False, soft_wrap=True
    )
    if artifacts is None:
        console.print(
            "no artifact store (--artifacts or LRSEARCH_ARTIFACTS): trials keep their curves as user attrs only",
            highlight=False,
            soft_wrap=True,
        )
    display = _Display(console, spec.n_trials, f"{device} {worker_id()}")
    search = Search(
        spec,
        study,
        problem,
        on_progress=display.update,
        artifacts=artifacts,
        max_retry=max_retry,
        on_notice=lambda text: console.print(f"{device} {worker_id()}: {text}", highlight=False, soft_wrap=True),
    )
    with display.progress:
        search.run(n_trials=spec.n_trials, timeout=spec.timeout)
        if spec.pbt_members is not None:
            display.phase("PBT", None)
            schedule_pbt(study, spec)
            search.run(n_trials=None, timeout=None, drain_waiting=True)
        if spec.repeats:
            display.phase("repeats", None)
            schedule_repeats(study, spec)
            search.run(n_trials=None, timeout=None, drain_waiting=True)
            look = 1
            # A sequential study: a repeat more for each of the two leading groups until they are told apart.
            while spec.max_repeats and schedule_repeats(study, spec, look=look):
                search.run(n_trials=None, timeout=None, drain_waiting=True)
                look += 1
