"""Measure the population engine against the plain one-configuration-at-a-time loop, in one run (and
lrsearch's TPE against Optuna's, and many workers' time outside training).

Both sides train the same configurations on the same device with the same work per epoch (training, then a
validation pass); the plain side is ``trainers.plain``: nn.Module, DataLoader, torch.optim. These machines
are noisy, so only the ratio measured in one run means much.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from lrsearch.engine import EpochMetrics, Problem, load_problem, train_population
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.devices import timed
from lrsearch.engine.modules import ModuleModel
from lrsearch.engine.networks import blobs_mlp
from lrsearch.engine.plain import train_plain
from lrsearch.errors import ConfigError, RuntimeFailure
from lrsearch.schema import REPEAT_OF, RUN_PREFIX, TIMING_PREFIX
from lrsearch.search.runner import Tally
from lrsearch.search.samplers import create_sampler
from lrsearch.spec.files import find_study
from lrsearch.spec.studies import load_study_file
from lrsearch.storage.opening import open_storage
from lrsearch.storage.workers import count_trials

__all__ = [
    "Measurement",
    "SamplerTiming",
    "SearchTiming",
    "WorkerTiming",
    "bench_blobs",
    "bench_configs",
    "bench_lenet",
    "bench_sampler",
    "bench_search",
    "bench_workers",
    "default_population",
    "plain_search",
]


@dataclasses.dataclass(frozen=True)
class Measurement:
    label: str
    trials: int
    examples: int
    seconds: float

    @property
    def trials_per_second(self) -> float:
        return self.trials / self.seconds

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds


def bench_configs(count: int, seed: int = 0) -> list[TrainConfig]:
    """SGD configurations from a typical search range, all stable (none may leave the population early)."""
    rng = np.random.default_rng(seed)
    lrs = np.exp(rng.uniform(np.log(1e-3), np.log(0.05), count))
    momenta = rng.uniform(0.0, 0.9, count)
    return [
        TrainConfig(lr=float(lr), momentum=float(m), seed=i) for i, (lr, m) in enumerate(zip(lrs, momenta, strict=True))
    ]


def default_population(trainer: str, device: torch.device) -> int:
    if trainer == "blobs":
        return 1024 if device.type == "cuda" else 128
    return 64 if device.type == "cuda" else 4


def _timed(label: str, trials: int, examples: int, run: Callable[[], object], device: torch.device) -> Measurement:
    return Measurement(label, trials, examples, timed(device, run))


def bench_blobs(
    device: torch.device, *, population: int | None = None, baseline_trials: int = 3, epochs: int | None = None
) -> list[Measurement]:
    """Full blobs trials: P at once (the MLP's fast path, then the same nn.Module on the generic path) vs one
    at a time with a DataLoader (Optuna's PyTorch example style)."""
    problem = load_problem("blobs", device=device)
    generic = dataclasses.replace(problem, model=ModuleModel(blobs_mlp, device=device))
    epochs = problem.epochs if epochs is None else epochs
    size = population or default_population("blobs", device)
    configs = bench_configs(max(size, baseline_trials))
    examples = len(problem.dataset.train) * epochs

    def plain() -> None:
        for config in configs[:baseline_trials]:
            train_plain(problem, config, epochs=epochs)

    return [
        _timed(
            f"population of {size}",
            size,
            size * examples,
            lambda: train_population(problem, configs[:size], epochs=epochs),
            device,
        ),
        _timed(
            f"population of {size}, generic nn.Module path",
            size,
            size * examples,
            lambda: train_population(generic, configs[:size], epochs=epochs),
            device,
        ),
        _timed("one at a time, DataLoader", baseline_trials, baseline_trials * examples, plain, device),
    ]


def bench_lenet(
    device: torch.device, *, population: int | None = None, data_dir: Path | None = None, epochs: int = 1
) -> list[Measurement]:
    """LeNet epochs on Fashion-MNIST: a population (d2l's nn.Module through torch.func) vs d2l's loader
    (per-item conversion, 4 workers) and the best plain loop (tensors in a DataLoader, no workers), one
    configuration at a time."""
    problem: Problem = load_problem("fashion_mnist", device=device, data_dir=data_dir)
    size = population or default_population("fashion_mnist", device)
    configs = bench_configs(size)
    examples = len(problem.dataset.train) * epochs

    def d2l_style() -> None:
        with warnings.catch_warnings():  # d2l asks for 4 workers whatever the machine; PyTorch objects
            warnings.filterwarnings("ignore", message="This DataLoader will create")
            train_plain(problem, configs[0], epochs=epochs, per_item=True, num_workers=4)

    return [
        _timed(
            f"population of {size}",
            size,
            size * examples,
            lambda: train_population(problem, configs, epochs=epochs),
            device,
        ),
        _timed("d2l-style loop (per-item loader, 4 workers)", 1, examples, d2l_style, device),
        _timed(
            "plain loop (tensor DataLoader)",
            1,
            examples,
            lambda: train_plain(problem, configs[0], epochs=epochs),
            device,
        ),
    ]


@dataclasses.dataclass(frozen=True)
class SearchTiming:
    """``lrsearch run --study blobs_lr --pruner none --n-trials N`` as a user runs it (a whole process, the
    study's own population, sampler, repeats and report), against a plain Optuna loop as a whole process.
    Seconds; the phases from the study's records (``schema.RUN_PREFIX``, ``TIMING_PREFIX``)."""

    trials: int  # search trials
    repeats: int
    seconds: float  # the whole process, end to end
    startup: float  # the interpreter and the imports, to ``lrsearch.run``'s first line
    setup: float  # the study file, the data, the population's size, the study and its note
    training: float
    asking: float
    telling: float
    pruning: float
    searching: float  # the trials' whole time (the above, the study's other reads and heartbeats)
    report: float  # the report: its reads, tests, importances, charts and the dashboard's note
    plain_fixed: float  # the plain process's time outside its trials
    plain_per_trial: float

    @property
    def fixed(self) -> float:
        """The time outside the trials."""
        return self.seconds - self.searching

    @property
    def trials_per_second(self) -> float:
        """Trials (repeats too) per second while they run: the marginal rate."""
        return (self.trials + self.repeats) / self.searching

    @property
    def plain_seconds(self) -> float:
        """The plain loop's whole process for the same search trials."""
        return self.plain_fixed + self.trials * self.plain_per_trial

    @property
    def ratio(self) -> float:
        return self.plain_seconds / self.seconds


def bench_search(device: torch.device, *, trials: int = 256, baseline_trials: int = 3) -> SearchTiming:
    """``lrsearch run --study blobs_lr --pruner none --n-trials trials`` on a fresh SQLite file, as a process,
    against ``plain_search`` (a process too) running ``baseline_trials`` trials; the plain loop's time for
    ``trials`` is its fixed time plus ``trials`` times its time per trial."""
    from lrsearch.search.study import load_existing

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/ours.db"
        command = ["run", "--study", "blobs_lr", "--pruner", "none", "--n-trials", str(trials), "--device", str(device)]
        ours_launched = time.time()
        _process([sys.executable, "-m", "lrsearch", *command, "--storage", url], "lrsearch run")
        seconds = time.time() - ours_launched
        study = load_existing("blobs_lr", open_storage(url, heartbeat=None))
        attrs = study._storage.get_study_system_attrs(study._study_id)
        (phases,) = [v for k, v in attrs.items() if k.startswith(RUN_PREFIX)]
        (tally,) = [v for k, v in attrs.items() if k.startswith(TIMING_PREFIX)]
        repeats = sum(REPEAT_OF in t.user_attrs for t in study.get_trials(deepcopy=False))
        code = f"from lrsearch.bench import plain_search; plain_search({baseline_trials}, {str(device)!r}, {folder!r})"
        launched = time.time()
        said = _process([sys.executable, "-c", code], "the plain loop")
        plain_seconds = time.time() - launched
    optimizing = float(said.strip().splitlines()[-1])
    return SearchTiming(
        trials=trials,
        repeats=repeats,
        seconds=seconds,
        startup=phases["started"] - ours_launched,
        setup=phases["searching"] - phases["started"],
        training=tally["training"],
        asking=tally["asking"],
        telling=tally["telling"],
        pruning=tally["pruning"],
        searching=phases["searched"] - phases["searching"],
        report=phases["reported"] - phases["searched"],
        plain_fixed=plain_seconds - optimizing,
        plain_per_trial=optimizing / baseline_trials,
    )


def plain_search(trials: int, device: str, folder: str) -> None:
    """The plain alternative, as a process runs it: Optuna's ``study.optimize`` on SQLite with TPE and an
    objective that trains one ``blobs_lr`` configuration with a DataLoader and reports every epoch (Optuna's
    PyTorch example); prints the seconds ``optimize`` took."""
    spec = load_study_file(find_study("blobs_lr")).with_overrides(pruner="none", pruner_settings={}, population=1)
    problem = load_problem("blobs", device=torch.device(device))

    def objective(trial: optuna.Trial) -> float:
        config = spec.space.sample(trial, seed=spec.trial_seed(trial.number))

        def report(metrics: EpochMetrics) -> None:
            trial.report(metrics.val_metric, metrics.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = train_plain(problem, config, epochs=spec.epochs, on_epoch=report)
        if result.val_metric is None:
            raise optuna.TrialPruned()  # diverged
        return result.val_metric

    study = optuna.create_study(
        storage=f"sqlite:///{folder}/plain.db", direction="maximize", sampler=optuna.samplers.TPESampler(seed=0)
    )
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    print(time.perf_counter() - started)


def _process(command: list[str], what: str) -> str:
    """Run ``command``; its stdout, or its error as one line."""
    run = subprocess.run(command, check=False, capture_output=True, text=True)
    if run.returncode != 0:
        said = [line for line in run.stderr.splitlines() if line.strip()]
        raise RuntimeFailure(f"{what} failed (exit {run.returncode}){': ' + said[-1] if said else ''}")
    return run.stdout


@dataclasses.dataclass(frozen=True)
class SamplerTiming:
    """One round of asks with lrsearch's TPE and with Optuna's, on the same study and seed."""

    finished: int
    running: int
    population: int
    ours: float  # seconds
    optuna: float
    same: bool  # whether both suggested the same parameters (floats to float precision)

    @property
    def ratio(self) -> float:
        return self.optuna / self.ours


def bench_sampler(*, finished: int = 512, running: int = 448, population: int = 64) -> SamplerTiming:
    """A round of ``population`` asks of the ``blobs_lr`` space, as a worker makes it, on a study (in
    memory) of ``finished`` trials and ``running`` others in training (TPE's constant liar counts them):
    ``search.tpe.PopulationTPESampler`` against Optuna's ``TPESampler``, both seeded alike."""
    space = load_study_file(find_study("blobs_lr")).space

    def value(trial: optuna.Trial) -> float:  # a smooth made-up objective: only the sampler's work is timed
        config = space.sample(trial, seed=0)
        return -((math.log10(config.lr) + 1.5) ** 2) - (config.momentum - 0.8) ** 2

    def study() -> optuna.Study:
        made = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
        made.optimize(value, n_trials=finished, catch=(ConfigError,))
        for _ in range(running):
            space.sample(made.ask(), seed=0)
        return made

    def round_of_asks(sampler: optuna.samplers.BaseSampler) -> tuple[float, list[dict]]:
        made = study()
        asked = optuna.load_study(study_name=made.study_name, storage=made._storage, sampler=sampler)
        started = time.perf_counter()
        params = []
        for _ in range(population):
            trial = asked.ask()
            space.sample(trial, seed=0)
            params.append(trial.params)
        return time.perf_counter() - started, params

    ours, ours_params = round_of_asks(create_sampler("tpe", seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # TPE's group, chosen knowingly
        optunas = optuna.samplers.TPESampler(seed=1, multivariate=True, group=True)
    theirs, their_params = round_of_asks(optunas)
    same = len(ours_params) == len(their_params) and all(map(same_suggestions, ours_params, their_params))
    return SamplerTiming(finished, running, population, ours, theirs, same)


def same_suggestions(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """The same parameters, choices and integers, and floats to float precision (lrsearch's TPE computes
    the truncated normal with SciPy, Optuna with its own port of it)."""
    return ours.keys() == theirs.keys() and all(
        math.isclose(v, theirs[k], rel_tol=1e-9, abs_tol=1e-12) if isinstance(v, float) else v == theirs[k]
        for k, v in ours.items()
    )


@dataclasses.dataclass(frozen=True)
class WorkerTiming:
    """Summed over workers (``Tally.TIMES``): wall time, training, asking, pruning, telling and idle
    waiting; the rest of the wall time went to the study's other reads and to heartbeats."""

    workers: int
    trials: int
    seconds: float  # the whole run, end to end
    wall: float
    training: float
    asking: float
    pruning: float
    telling: float
    waiting: float

    @property
    def outside_training(self) -> float:
        """The fraction of the workers' busy time spent asking, telling and in the storage."""
        busy = self.wall - self.waiting
        return (busy - self.training) / busy if busy > 0 else 0.0


def bench_workers(
    storage: str,
    *,
    workers: int = 8,
    trials: int = 512,
    population: int = 64,
    epochs: int | None = None,
    sampler: str | None = None,
    pruner: str = "none",
) -> WorkerTiming:
    """``workers`` local CPU workers on one study in ``storage`` running the ``blobs_lr`` search
    (populations of ``population``; the file's sampler, TPE, unless ``sampler``; without pruning unless
    ``pruner``), each recording its timing with the study."""
    from lrsearch.search.study import load_existing

    source = find_study("blobs_lr")
    with tempfile.TemporaryDirectory() as folder:
        name = f"bench_workers_{int(time.time())}"
        path = Path(folder) / f"{name}.toml"
        path.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "lrsearch",
            "run",
            "--study",
            str(path),
            "--workers",
            str(workers),
            "--device",
            "cpu",
            "--n-trials",
            str(trials),
            "--population",
            str(population),
            "--pruner",
            pruner,
            "--no-report",
            *(["--epochs", str(epochs)] if epochs else []),
            *(["--sampler", sampler] if sampler else []),
        ]
        database = open_storage(storage, heartbeat=None)  # one that cannot be opened fails here, as one line
        started = time.perf_counter()
        run = subprocess.run(
            command,
            check=False,
            env={**os.environ, "LRSEARCH_STORAGE": storage},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        seconds = time.perf_counter() - started
        if run.returncode != 0:
            said = [line for line in run.stderr.splitlines() if line.startswith("lrsearch: ")]
            raise RuntimeFailure(
                f"the benchmark's workers failed (exit {run.returncode})"
                + (f": {said[-1].removeprefix('lrsearch: error: ')}" if said else "")
            )
        study = load_existing(name, database)
        timings = [
            v for k, v in study._storage.get_study_system_attrs(study._study_id).items() if k.startswith(TIMING_PREFIX)
        ]
        return WorkerTiming(
            workers=len(timings),
            trials=count_trials(study, tuple(optuna.trial.TrialState)),  # counted: a read took seconds (the curves)
            seconds=seconds,
            **{name: sum(t.get(name, 0.0) for t in timings) for name in Tally.TIMES},
        )
