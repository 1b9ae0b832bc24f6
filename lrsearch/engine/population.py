"""The population engine: many configurations trained at once as stacked tensors.

Each member has its own initialisation seed, data order, optimizer settings, schedule, warmup and decay;
members with the same optimizer form one sub-population whose parameters are [P, ...] tensors. One epoch:

    for every sub-population: shuffle each member's data, then for each batch:
        loss and gradients for all members at once -> one stacked optimizer step
    validation for all members -> one host sync for the epoch's metrics
    divergence check (a member whose loss is NaN/inf is dropped, the others never see it)
    the epoch callback sees every member's metrics and may stop members (the pruning hook)
    finished, stopped and diverged members are dropped: they cost nothing afterwards

Members may join at any epoch boundary (``add``), so a search can refill the population as trials end.
A member gets the same numbers in a population as trained alone (to float tolerance).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch

from lrsearch.checks import integer
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.faults import INJECT_OOM
from lrsearch.engine.flat import FlatLayout
from lrsearch.engine.optim import StackedOptimizer, create_optimizer
from lrsearch.engine.problems import Problem
from lrsearch.engine.schedules import PlateauState, Schedule, update_rates
from lrsearch.errors import ConfigError

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_EPOCHS",
    "EpochMetrics",
    "EpochReport",
    "MemberResult",
    "OnEpoch",
    "Population",
    "check_run_length",
    "member_seeds",
    "train_population",
    "update_seed",
]


def member_seeds(seed: int) -> tuple[int, int, int]:
    """A member's seeds for its initialisation, its data order and its random ops (dropout), from its one
    seed: the same wherever it trains (a population, alone, the plain loop)."""
    init, data, noise = np.random.SeedSequence(seed).generate_state(3)
    return int(init), int(data), int(noise)


def update_seed(noise_seed: int, update: int) -> int:
    """The seed of a member's random ops in its update ``update`` (counted over the whole run)."""
    # A large odd multiplier spreads the pairs over torch's 64-bit seeds.
    return (noise_seed * 0x9E3779B97F4A7C15 + update) % (1 << 63)


@dataclasses.dataclass(frozen=True)
class EpochMetrics:
    """One member's epoch: ``lr`` is the rate of the epoch's last update; train figures are running
    averages over the epoch (as Keras and d2l report them), validation is measured after it. ``recorded``:
    what the problem's ``record`` read off the member's parameters after the epoch (a learned weight)."""

    epoch: int
    lr: float
    train_loss: float
    train_metric: float
    val_loss: float
    val_metric: float
    recorded: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EpochReport:
    member: int
    metrics: EpochMetrics
    diverged: bool


@dataclasses.dataclass(frozen=True)
class MemberResult:
    """How a member ended. ``history`` holds its finite epochs; ``selected_epoch`` is the epoch whose weights
    ``val_metric`` and ``test_metric`` describe (the last, or the best on validation where the problem
    restores the best). Stopped and diverged members have no test accuracy."""

    member: int
    config: TrainConfig
    status: Literal["completed", "stopped", "diverged"]
    history: tuple[EpochMetrics, ...]
    selected_epoch: int | None
    val_metric: float | None
    test_metric: float | None
    seconds: float

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"


#: Called after every epoch with each member's report; returns the members to stop.
OnEpoch = Callable[[Sequence[EpochReport]], Iterable[int]]


class _Rates:
    """A member's rate for each update, computed a window at a time (a whole run's table could be billions
    of updates); a plateau reduction scales the rest of the run."""

    WINDOW = 1 << 16

    def __init__(self, schedule: Schedule, config: TrainConfig, *, n_updates: int, updates_per_epoch: int) -> None:
        self.schedule, self.config = schedule, config
        self.n_updates, self.updates_per_epoch = n_updates, updates_per_epoch
        self.scale = 1.0
        self.start = 0
        self.values = np.empty(0)

    def take(self, first: int, count: int) -> np.ndarray:
        """The rates of updates ``first`` .. ``first + count - 1``."""
        if first < self.start or first + count > self.start + len(self.values):
            size = min(max(count, self.WINDOW), self.n_updates - first)
            self.values = self.scale * update_rates(
                self.schedule,
                start=first,
                n_updates=size,
                updates_per_epoch=self.updates_per_epoch,
                unit=self.config.schedule_unit,
                decay=self.config.decay,
            )
            self.start = first
        return self.values[first - self.start : first - self.start + count]

    def reduce(self, ratio: float, first: int) -> None:
        """Scale the rates from update ``first`` on."""
        self.scale *= ratio
        self.values[first - self.start :] *= ratio


@dataclasses.dataclass(eq=False)
class _Member:
    id: int
    config: TrainConfig
    rates: _Rates
    plateau: PlateauState | None
    data_rng: torch.Generator
    noise_seed: int
    started: float
    steps_done: int = 0
    history: list[EpochMetrics] = dataclasses.field(default_factory=list)
    best_val: float | None = None
    best_epoch: int | None = None


class _Group:
    """Members that share an optimizer kind, their parameters stacked row by row: the trained ones as views
    of one flat [P, D] buffer (``flat``), which the optimizer updates whole."""

    def __init__(self, problem: Problem, optimizer: str) -> None:
        self.problem = problem
        self.optimizer_name = optimizer
        model = problem.model
        self.layout = FlatLayout([shape for _, shape in model.shapes[: model.trainable]])
        self.members: list[_Member] = []
        self.flat = torch.empty(0)
        self.params: list[torch.Tensor] = []
        self.best: list[torch.Tensor] = []  # the best-validation weights, where the problem restores them
        self.optimizer: StackedOptimizer | None = None

    def _hold(self, flat: torch.Tensor, buffers: Iterable[torch.Tensor]) -> None:
        """Hold ``flat`` and ``buffers`` as the parameters: the trained ones as leaves sharing ``flat``'s
        memory (the optimizer's updates of ``flat`` are theirs)."""
        model = self.problem.model
        self.flat = flat
        self.params = [
            *(v.detach().requires_grad_(model.needs_autograd) for v in self.layout.views(flat)),
            *(b.detach() for b in buffers),
        ]

    @property
    def buffers(self) -> list[torch.Tensor]:
        return self.params[self.problem.model.trainable :]

    def evaluated(self) -> list[torch.Tensor]:
        """The parameters the members are evaluated at: their own, or a schedule-free member's averaged
        point (``StackedOptimizer.evaluation_point``)."""
        assert self.optimizer is not None
        point = self.optimizer.evaluation_point(self.flat)
        return self.params if point is self.flat else [*self.layout.views(point), *self.buffers]

    def join(self, members: Sequence[_Member], inits: Sequence[Sequence[torch.Tensor]]) -> None:
        device, trainable = self.problem.device, self.problem.model.trainable
        new = [torch.stack([init[i] for init in inits]).to(device) for i in range(len(inits[0]))]
        settings = [m.config.optimizer_settings() for m in members]
        packed = self.layout.pack(new[:trainable]).contiguous()
        if self.optimizer is None:
            self._hold(packed, new[trainable:])
            self.optimizer = create_optimizer(self.optimizer_name, settings, self.flat)
        else:
            buffers = (torch.cat([b, n]) for b, n in zip(self.buffers, new[trainable:], strict=True))
            self._hold(torch.cat([self.flat, packed]), buffers)
            self.optimizer.extend(settings, packed)
        if self.problem.restore_best:
            self.best = [p.detach().clone() for p in self.params]
        self.members.extend(members)

    def keep(self, rows: Sequence[int]) -> None:
        index = torch.tensor(rows, dtype=torch.long, device=self.problem.device)
        self._hold(self.flat.index_select(0, index), (b.index_select(0, index) for b in self.buffers))
        self.best = [b.index_select(0, index) for b in self.best]
        assert self.optimizer is not None
        self.optimizer.select(rows)
        self.members = [self.members[r] for r in rows]

    def train_epoch(self, batch_size: int) -> np.ndarray:
        """Train every member one epoch; [5, P] host array: train loss, train acc, val loss, val acc, lr."""
        problem, model, optimizer = self.problem, self.problem.model, self.optimizer
        assert optimizer is not None
        train = problem.dataset.train
        n, device = len(train), problem.device
        n_updates = math.ceil(n / batch_size)
        perms = torch.stack([torch.randperm(n, generator=m.data_rng) for m in self.members]).to(device)
        rates = np.stack([m.rates.take(m.steps_done, n_updates) for m in self.members])
        optimizer.begin_epoch(rates, np.array([m.steps_done for m in self.members]))
        loss_sum = torch.zeros(len(self.members), device=device)
        correct = torch.zeros(len(self.members), device=device)
        for b in range(n_updates):
            x, target = model.batch(train, perms[:, b * batch_size : (b + 1) * batch_size])
            loss, hits, grads = model.loss_and_grads(self.params, x, target, functools.partial(self._seeds, b))
            loss_sum += loss
            correct += hits
            with torch.no_grad():
                optimizer.step(self.flat, self.layout.pack(grads), b)
        val_loss, val_acc = model.evaluate(self.evaluated(), problem.dataset.val)
        stats = torch.stack([loss_sum / n, correct / n, val_loss, val_acc]).cpu().numpy().astype(np.float64)
        for m in self.members:
            m.steps_done += n_updates
        return np.concatenate([stats, rates[:, -1][None, :]])

    def _seeds(self, b: int) -> list[int]:
        """Each member's seed for the random ops of the epoch's update ``b``."""
        return [update_seed(m.noise_seed, m.steps_done + b) for m in self.members]

    def recorded(self) -> list[dict[str, float]]:
        """The problem's ``record`` of each member's parameters (at its evaluation point, found once for all of
        them), by name; nothing without a record."""
        record = self.problem.record
        if record is None:
            return [{} for _ in self.members]
        names = [name for name, _ in self.problem.model.shapes]
        point = self.evaluated()
        with torch.no_grad():
            return [
                {
                    str(k): float(v)
                    for k, v in record({n: t[row].detach() for n, t in zip(names, point, strict=True)}).items()
                }
                for row in range(len(self.members))
            ]

    def remember_best(self, rows: Sequence[int]) -> None:
        """Copy the current weights of members ``rows`` into their best-validation snapshot."""
        if self.best and rows:
            index = torch.tensor(rows, dtype=torch.long, device=self.problem.device)
            for best, param in zip(self.best, self.evaluated(), strict=True):
                best.index_copy_(0, index, param.detach().index_select(0, index))

    def test_metric(self, rows: Sequence[int]) -> np.ndarray:
        index = torch.tensor(rows, dtype=torch.long, device=self.problem.device)
        weights = self.best or self.evaluated()
        _, accuracy = self.problem.model.evaluate(
            [w.detach().index_select(0, index) for w in weights], self.problem.dataset.test
        )
        return accuracy.cpu().numpy().astype(np.float64)


#: The longest run, and the largest batch.
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 2**20


def check_run_length(epochs: int | None, batch_size: int | None) -> None:
    """Reject a bad epoch count or batch size (None: the problem's default) before any data is loaded."""
    if epochs is not None:
        integer("epochs", epochs, 1, MAX_EPOCHS)
    if batch_size is not None:
        integer("batch_size", batch_size, 1, MAX_BATCH_SIZE)


class Population:
    """Trains members together; ``add`` configurations, then ``run`` (or ``run_epoch`` one at a time).
    ``out_of_memory_at``: the fault switch (``faults.INJECT_OOM``): raise ``torch.OutOfMemoryError`` at the
    start of this epoch of the population's, once."""

    def __init__(
        self,
        problem: Problem,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        out_of_memory_at: int | None = None,
    ) -> None:
        check_run_length(epochs, batch_size)
        self.problem = problem
        self.epochs = problem.epochs if epochs is None else epochs
        self.batch_size = problem.batch_size if batch_size is None else batch_size
        self.updates_per_epoch = math.ceil(len(problem.dataset.train) / self.batch_size)
        self._groups: dict[str, _Group] = {}
        self._pending: list[tuple[_Member, list[torch.Tensor]]] = []
        self._next_id = 0
        self._epochs_run = 0
        self._out_of_memory_at = out_of_memory_at

    def add(self, config: TrainConfig) -> int:
        """Queue a member; it joins at the next epoch boundary. Returns its id. Raises ConfigError first."""
        n_updates = self.epochs * self.updates_per_epoch
        schedule = config.build_schedule(config.horizon(self.epochs, self.updates_per_epoch))
        rates = _Rates(schedule, config, n_updates=n_updates, updates_per_epoch=self.updates_per_epoch)
        init_seed, data_seed, noise_seed = member_seeds(config.seed)
        init = self.problem.model.init(torch.Generator().manual_seed(init_seed))
        member = _Member(
            id=self._next_id,
            config=config,
            rates=rates,
            plateau=schedule.tracker(),
            data_rng=torch.Generator().manual_seed(data_seed),
            noise_seed=noise_seed,
            started=time.perf_counter(),
        )
        self._next_id += 1
        self._pending.append((member, init))
        return member.id

    @property
    def live(self) -> int:
        """Members training or waiting to join."""
        return len(self._pending) + sum(len(g.members) for g in self._groups.values())

    def _join_pending(self) -> None:
        by_optimizer: dict[str, list[tuple[_Member, list[torch.Tensor]]]] = {}
        for member, init in self._pending:
            by_optimizer.setdefault(member.config.optimizer, []).append((member, init))
        for name, joining in by_optimizer.items():
            group = self._groups.setdefault(name, _Group(self.problem, name))
            group.join([m for m, _ in joining], [init for _, init in joining])
        self._pending = []

    def _find(self, member_id: int) -> tuple[_Group, int]:
        for group in self._groups.values():
            for row, member in enumerate(group.members):
                if member.id == member_id:
                    return group, row
        raise KeyError(f"no member {member_id} is training (a pending one joins at the next epoch)")

    def exploit(self, recipient: int, donor: int) -> None:
        """Member ``recipient`` continues from ``donor``'s weights, optimizer state and best snapshot
        (population-based training's exploit: index copies of the stacked tensors, no checkpoint files),
        keeping its own hyperparameters, schedule position, data order and seeds. Both must be training with
        the same optimizer."""
        group, to = self._find(recipient)
        donor_group, source = self._find(donor)
        if donor_group is not group:
            raise ConfigError(
                f"member {recipient} ({group.optimizer_name}) cannot take the state of member {donor} "
                f"({donor_group.optimizer_name}): their optimizers differ"
            )
        with torch.no_grad():
            group.flat[to] = group.flat[source]
            for tensor in (*group.buffers, *group.best):
                tensor[to] = tensor[source]
        assert group.optimizer is not None
        group.optimizer.copy_member(to, source)
        member, other = group.members[to], group.members[source]
        member.best_val, member.best_epoch = other.best_val, other.best_epoch

    def retune(self, member_id: int, config: TrainConfig) -> None:
        """Member ``member_id`` trains with ``config``'s rate, schedule, decay and optimizer settings from
        its next update on (population-based training's explore); its optimizer and seed stay."""
        group, row = self._find(member_id)
        member = group.members[row]
        if config.optimizer != member.config.optimizer:
            raise ConfigError(f"retuning cannot change member {member_id}'s optimizer ({member.config.optimizer})")
        n_updates = self.epochs * self.updates_per_epoch
        schedule = config.build_schedule(config.horizon(self.epochs, self.updates_per_epoch))
        member.config = config
        member.rates = _Rates(schedule, config, n_updates=n_updates, updates_per_epoch=self.updates_per_epoch)
        member.plateau = schedule.tracker()
        assert group.optimizer is not None
        group.optimizer.retune(row, config.optimizer_settings())

    def run_epoch(self, on_epoch: OnEpoch | None = None) -> list[MemberResult]:
        """Train every live member one epoch; returns the members that finished in it."""
        self._epochs_run += 1
        if self._epochs_run == self._out_of_memory_at:
            self._out_of_memory_at = None
            raise torch.OutOfMemoryError(f"injected at epoch {self._epochs_run} ({INJECT_OOM})")
        self._join_pending()
        groups = [g for g in self._groups.values() if g.members]
        epoch_stats = [g.train_epoch(self.batch_size) for g in groups]
        reports: list[EpochReport] = []
        for group, stats in zip(groups, epoch_stats, strict=True):
            improved = []
            recorded = group.recorded()
            for row, member in enumerate(group.members):
                train_loss, train_acc, val_loss, val_acc, lr = (float(v) for v in stats[:, row])
                metrics = EpochMetrics(
                    len(member.history) + 1, lr, train_loss, train_acc, val_loss, val_acc, recorded[row]
                )
                diverged = not (math.isfinite(train_loss) and math.isfinite(val_loss))
                reports.append(EpochReport(member.id, metrics, diverged))
                if diverged:
                    continue
                member.history.append(metrics)
                if member.plateau is not None:
                    member.rates.reduce(member.plateau.step(val_loss), member.steps_done)
                if not self.problem.restore_best or self._better(val_acc, member.best_val):
                    member.best_val, member.best_epoch = val_acc, metrics.epoch
                    improved.append(row)
            group.remember_best(improved)
        stop = set(on_epoch(reports)) if on_epoch else set()
        diverged_ids = {r.member for r in reports if r.diverged}
        return [result for group in groups for result in self._retire(group, stop, diverged_ids)]

    def _better(self, value: float, best: float | None) -> bool:
        return best is None or (value > best if self.problem.maximize else value < best)

    def _retire(self, group: _Group, stop: set[int], diverged: set[int]) -> list[MemberResult]:
        """Drop the members that ended this epoch from ``group``; their results."""
        ended: dict[int, Literal["completed", "stopped", "diverged"]] = {}
        for row, m in enumerate(group.members):
            if m.id in diverged:
                ended[row] = "diverged"
            elif len(m.history) >= self.epochs:
                ended[row] = "completed"  # even if stopped now: it has trained every epoch
            elif m.id in stop:
                ended[row] = "stopped"
        if not ended:
            return []
        completed = [row for row, status in ended.items() if status == "completed"]
        test = dict(zip(completed, group.test_metric(completed), strict=True)) if completed else {}
        now = time.perf_counter()
        results = []
        for row, status in ended.items():
            m = group.members[row]
            finite = status != "diverged"
            results.append(
                MemberResult(
                    member=m.id,
                    config=m.config,
                    status=status,
                    history=tuple(m.history),
                    selected_epoch=m.best_epoch if finite else None,
                    val_metric=m.best_val if finite and m.best_epoch else None,
                    test_metric=float(test[row]) if row in test else None,
                    seconds=now - m.started,
                )
            )
        group.keep([row for row in range(len(group.members)) if row not in ended])
        return results

    def run(self, on_epoch: OnEpoch | None = None) -> list[MemberResult]:
        """Train until every member has ended; results in the order members ended."""
        results: list[MemberResult] = []
        while self.live:
            results.extend(self.run_epoch(on_epoch))
        return results


def train_population(
    problem: Problem,
    configs: Sequence[TrainConfig],
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    on_epoch: OnEpoch | None = None,
) -> list[MemberResult]:
    """Train ``configs`` as one population; results in the order of ``configs``."""
    population = Population(problem, epochs=epochs, batch_size=batch_size)
    ids = [population.add(config) for config in configs]
    by_id = {r.member: r for r in population.run(on_epoch)}
    return [by_id[i] for i in ids]
