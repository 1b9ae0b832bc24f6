"""The checks behind ``lrsearch doctor``: that a device trains populations right, without host syncs, fast,
through an out-of-memory error, and with two workers on one study, in a few minutes.

Every part runs on any device: on a GPU each optimizer's population is compared with the same population
on the CPU (to 1e-3: cuDNN runs convolutions in TF32 by default), on a CPU with the plain one-at-a-time
loop (to 1e-4). The sync audit counts the ops that make the host wait for the device (``.item()``,
``nonzero``, copies to the host) in an epoch of the population engine: they must not grow with the epoch's
batches. The LeNet figures train on Fashion-MNIST-shaped random images (the speed of an epoch does not
depend on what the pixels show, and nothing needs downloading).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lrsearch.bench import bench_configs
from lrsearch.engine import Population, load_problem, train_population
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.data import Dataset, Split
from lrsearch.engine.devices import timed
from lrsearch.engine.faults import INJECT_OOM
from lrsearch.engine.modules import ModuleModel
from lrsearch.engine.networks import lenet
from lrsearch.engine.optim import OPTIMIZERS
from lrsearch.engine.plain import TORCH_OPTIMIZERS, train_plain
from lrsearch.engine.problems import Problem
from lrsearch.errors import ConfigError

__all__ = ["PARTS", "Check", "HostSyncs", "Speed", "lenet_problem", "run_checks"]

#: A small blobs study for the worker checks (seconds on a CPU).
_STUDY = """\
question = "Does the device train a study with workers?"
trainer = "blobs"
epochs = {epochs}
compare = "schedule"
repeats = 0
n_trials = {n_trials}
population = {population}
sampler = "random"
pruner = "none"

[space]
lr = {{ low = 1e-3, high = 0.3, log = true }}
schedule = ["constant", "cosine"]
"""


@dataclasses.dataclass(frozen=True)
class Check:
    """One check: whether it passed, and what it found."""

    name: str
    ok: bool
    detail: str


@dataclasses.dataclass(frozen=True)
class Speed:
    """One throughput figure: ``rate`` of ``unit`` at a population of ``population``."""

    what: str
    population: int
    rate: float
    unit: str
    peak_memory: int | None  # bytes, on a GPU


def _rates(name: str) -> list[float]:
    adaptive = ("adam", "adamw", "nadamw", "rmsprop", "schedulefree_adamw")
    return [1e-3, 3e-3, 1e-2] if name in adaptive else [0.01, 0.03, 0.1]


def check_optimizers(device: torch.device, *, epochs: int = 1) -> Check:
    """Each optimizer's blobs population on ``device`` against a reference: the same population on the CPU
    (a GPU, to 1e-3: cuDNN convolutions run in TF32 by default), or each member trained alone by the plain
    loop (a CPU, to 1e-4). One epoch: its 16 updates use every part of each update rule, and past it SGD at
    these rates amplifies the two paths' rounding (the order of a matrix product's sums, which differs by
    CPU) to 4e-4 by the third epoch on some machines."""
    tolerance = 1e-3 if device.type == "cuda" else 1e-4
    problem = load_problem("blobs", device=device)
    reference = load_problem("blobs", device=torch.device("cpu"))
    worst: dict[str, float] = {}
    # The plain loop trains with torch.optim, which has no schedule-free optimizer.
    for name in OPTIMIZERS if device.type == "cuda" else TORCH_OPTIMIZERS:
        configs = [TrainConfig(lr=lr, optimizer=name, seed=i) for i, lr in enumerate(_rates(name))]
        ours = [[m.val_loss for m in r.history] for r in train_population(problem, configs, epochs=epochs)]
        if device.type == "cuda":
            theirs = [[m.val_loss for m in r.history] for r in train_population(reference, configs, epochs=epochs)]
        else:
            theirs = [[m.val_loss for m in train_plain(reference, c, epochs=epochs).history] for c in configs]
        worst[name] = max(_largest_difference(x, y) for x, y in zip(ours, theirs, strict=True))
    against = "the CPU" if device.type == "cuda" else "the plain loop"
    detail = ", ".join(f"{name} {diff:.1e}" for name, diff in worst.items())
    ok = all(diff <= tolerance for diff in worst.values())
    return Check("optimizers", ok, f"largest val-loss difference from {against} (at most {tolerance:g}): {detail}")


def _largest_difference(ours: Sequence[float], theirs: Sequence[float]) -> float:
    if len(ours) != len(theirs):
        return math.inf  # one diverged where the other did not
    return max((abs(a - b) for a, b in zip(ours, theirs, strict=True)), default=0.0)


_SYNCING = {
    torch.ops.aten._local_scalar_dense,  # .item(), float(t), bool(t)
    torch.ops.aten.is_nonzero,
    torch.ops.aten.nonzero,
    torch.ops.aten.equal,
    torch.ops.aten.masked_select,
}


class HostSyncs(TorchDispatchMode):
    """Counts, while active, the ops that make the host wait for the device: a value read on the host, an
    output whose size depends on the data, a copy from a GPU to the host."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func.overloadpacket in _SYNCING or self._to_host(func, args, kwargs):
            self.count += 1
        return func(*args, **kwargs)

    @staticmethod
    def _to_host(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
        source = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if source is None or source.device.type == "cpu":
            return False
        if func.overloadpacket is torch.ops.aten._to_copy:
            return torch.device(kwargs.get("device") or source.device).type == "cpu"
        if func.overloadpacket is torch.ops.aten.copy_ and len(args) > 1:
            return source.device.type == "cpu" and args[1].device.type != "cpu"
        return False


def lenet_problem(device: torch.device, train_examples: int, *, eval_examples: int = 256) -> Problem:
    """LeNet on Fashion-MNIST-shaped random images (10 classes) on ``device``."""
    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        return Split(torch.randn(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator))

    dataset = Dataset("random images", split(train_examples), split(eval_examples), split(eval_examples), 10, "random")
    return Problem(
        name="lenet",
        dataset=dataset.to(device),
        model=ModuleModel(lenet, device=device),
        batch_size=128,
        epochs=1,
        restore_best=True,
        device=device,
    )


def _syncs_per_epoch(make: Callable[[int], Problem], batches: int, members: int) -> int:
    problem = make(batches)
    population = Population(problem, epochs=3)
    for config in bench_configs(members):
        population.add(config)
    population.run_epoch()  # the first epoch may sync (vmap's check, the first kernels)
    with HostSyncs() as syncs:
        population.run_epoch()
    return syncs.count


def check_syncs(device: torch.device, problems: dict[str, Callable[[int], Problem]] | None = None) -> Check:
    """An epoch's host syncs do not grow with its batches: none is made per batch (on a GPU, under
    ``torch.cuda.set_sync_debug_mode("warn")`` as well). ``problems``: name -> a problem of so many batches."""
    problems = problems or {
        "blobs": lambda batches: _blobs_of(device, batches),
        "lenet": lambda batches: dataclasses.replace(lenet_problem(device, 128 * batches), batch_size=128),
    }
    found = {}
    for name, make in problems.items():
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            found[name] = (_syncs_per_epoch(make, 4, 4), _syncs_per_epoch(make, 8, 4))
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
    ok = all(short == long for short, long in found.values())
    detail = "; ".join(
        f"{name}: {short} in an epoch of 4 batches, {long} of 8" for name, (short, long) in found.items()
    )
    return Check("host syncs", ok, detail)


def _blobs_of(device: torch.device, batches: int) -> Problem:
    problem = load_problem("blobs", device=device)
    train = problem.dataset.train
    size = batches * problem.batch_size
    return dataclasses.replace(
        problem, dataset=dataclasses.replace(problem.dataset, train=Split(train.x[:size], train.y[:size]))
    )


def measure_speed(device: torch.device, *, blobs_sizes: Sequence[int], lenet_sizes: Sequence[int]) -> list[Speed]:
    """Full 200-epoch blobs trials per minute (from 20 epochs on a CPU), and LeNet training examples per
    second over one epoch (60,000 images on a GPU, 2,048 on a CPU), with the GPU's peak memory."""
    cuda = device.type == "cuda"
    speeds = []
    problem = load_problem("blobs", device=device)
    epochs = problem.epochs if cuda else 20
    for size in blobs_sizes:
        seconds, peak = _timed(device, functools.partial(train_population, problem, bench_configs(size), epochs=epochs))
        speeds.append(Speed("blobs", size, size / seconds * epochs / problem.epochs * 60, "trials/min", peak))
    images = 60_000 if cuda else 2_048
    lenet_run = lenet_problem(device, images)
    for size in lenet_sizes:
        seconds, peak = _timed(device, functools.partial(train_population, lenet_run, bench_configs(size), epochs=1))
        speeds.append(Speed("lenet", size, size * images / seconds, "examples/s", peak))
    return speeds


def _timed(device: torch.device, run: Callable[[], object]) -> tuple[float, int | None]:
    """``run``'s seconds, and on a GPU the peak memory it allocated."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = timed(device, run)
    return seconds, torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def _study_file(folder: Path, **values: int) -> Path:
    path = folder / "doctor.toml"
    path.write_text(_STUDY.format(**values), encoding="utf-8")
    return path


def check_out_of_memory(device: torch.device, folder: Path) -> Check:
    """A worker process whose first population runs out of memory (``LRSEARCH_INJECT_OOM``): its trials end
    FAIL and come back, the population halves, and the study reaches its total."""
    storage = f"sqlite:///{folder / 'oom.db'}"
    study = _study_file(folder, epochs=4, n_trials=8, population=4)
    command = [sys.executable, "-m", "lrsearch", "run", "--study", str(study), "--storage", storage]
    run = subprocess.run(
        [*command, "--device", str(device), "--no-report"],
        env={**os.environ, INJECT_OOM: "2"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if run.returncode != 0:
        said = run.stderr.strip().splitlines()[-1:] or [f"exit {run.returncode}"]
        return Check("out of memory", False, f"the worker did not carry on: {said[0]}")
    trials = optuna.load_study(study_name="doctor", storage=storage).trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    retried = [t for t in trials if "failed_trial" in t.system_attrs and t.state == optuna.trial.TrialState.COMPLETE]
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    halved = "with a population of 4; retried with 2" in run.stderr
    ok = len(failed) == 4 and len(retried) == 4 and complete == 8 and halved
    return Check(
        "out of memory",
        ok,
        f"{len(failed)} trials failed at epoch 2, {len(retried)} retried and completed, "
        f"population {'halved to 2' if halved else 'not halved'}, {complete}/8 complete",
    )


def check_two_workers(device: torch.device, folder: Path) -> Check:
    """Two local worker processes on one study (both on ``device``): every trial completes, each says which
    worker and device ran it (how the trials fell between the workers is reported, not checked: a worker
    may take them all before the other has started)."""
    from lrsearch.runs import run

    storage = f"sqlite:///{folder / 'workers.db'}"
    trials_wanted = 16
    study = _study_file(folder, epochs=200, n_trials=trials_wanted, population=2)
    started = time.perf_counter()
    run(study, storage=storage, workers=2, devices=f"{device},{device}", progress=False, report=False)
    seconds = time.perf_counter() - started
    trials = optuna.load_study(study_name="doctor", storage=storage).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    workers = {t.user_attrs.get("worker") for t in complete}
    devices = sorted({str(t.user_attrs.get("device")) for t in complete})
    named = all(t.user_attrs.get("worker") and t.user_attrs.get("device") for t in complete)
    ok = len(complete) == trials_wanted == len(trials) and named
    return Check(
        "two workers",
        ok,
        f"{len(complete)}/{trials_wanted} complete, by {len(workers)} worker(s) on {', '.join(devices)}; "
        f"{len(complete) / seconds * 60:.0f} trials/min end to end",
    )


#: The parts of the doctor, by the name ``--only`` takes.
PARTS = ("optimizers", "syncs", "speed", "oom", "workers")


def run_checks(device: torch.device, parts: Sequence[str] = PARTS) -> tuple[list[Check], list[Speed]]:
    """The checks, and the throughput figures, on ``device``: every part, or those named."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ConfigError(f"doctor has no part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    cuda = device.type == "cuda"
    checks, speeds = [], []
    if "optimizers" in parts:
        checks.append(check_optimizers(device))
    if "syncs" in parts:
        checks.append(check_syncs(device))
    if "speed" in parts:
        speeds = measure_speed(
            device, blobs_sizes=(16, 256, 1024) if cuda else (16, 128), lenet_sizes=(8, 32, 128) if cuda else (2, 4)
        )
    with tempfile.TemporaryDirectory() as folder:
        if "oom" in parts:
            checks.append(check_out_of_memory(device, Path(folder)))
        if "workers" in parts:
            checks.append(check_two_workers(device, Path(folder)))
    return checks, speeds
