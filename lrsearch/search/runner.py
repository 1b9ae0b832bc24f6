"""The search loop: ask trials, train them as one population, tell Optuna how each one ended.

    while the budget allows: ask trials for the free slots once they are worth a round (search.refill;
        members join between epochs)
    train one epoch for every member
        each member reports its validation metric; the pruner decides against the study read once
        (the median and percentile pruners: against the completed trials' values, each read once)
        a member whose loss went NaN/inf ends PRUNED with user attr diverged
    every few seconds, write the running trials' new per-epoch values, behind the training
    write the finished trials' last per-epoch values, attributes and ends in one transaction, behind the
    training (search.telling)

``n_trials`` is the study-wide count of finished search trials (COMPLETE or PRUNED) plus those running in
any worker or enqueued (a failed trial's retry runs even once the budget is taken); a timeout stops
asking, and the members in training finish. Optuna's heartbeat runs only inside ``study.optimize``, so the
search records every running trial's heartbeat itself (a thread, one transaction per beat for the whole
population), and fails the trials of vanished workers (re-enqueued with their parameters) before it asks
for more. Storage calls survive a database restart (retried). The compared parameter is balanced: each
new trial is given the least-tried group (study-wide) and the sampler searches the rest, so no group wins
by having been searched more. On Ctrl-C every trial in training ends FAIL, is re-enqueued with its
parameters (as Optuna's RetryHeartbeatStaleTrialCallback does), and the interrupt goes on up. A device out
of memory in training ends only the population's trials FAIL (``error`` says so), re-enqueues them, halves
the population for the rest of the run and carries on (``faults.INJECT_OOM`` tests it on any device).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import itertools
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from lrsearch.engine import EpochMetrics, EpochReport, MemberResult, Population, Problem
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.devices import host_device, release_memory
from lrsearch.engine.faults import injected_oom_epoch, is_out_of_memory
from lrsearch.errors import ConfigError, one_line
from lrsearch.interrupts import check as check_interrupted
from lrsearch.periodic import every
from lrsearch.schema import OUTSIDE_BUDGET, PBT_MEMBER, PBT_SCHEDULE, REPEAT_OF, REPLAY, TIMING_PREFIX
from lrsearch.search.pbt import EXPLOITS, Explorer, followed_schedule, replayed
from lrsearch.search.pruning import PercentilePruner, PruningView
from lrsearch.search.refill import Refill
from lrsearch.search.samplers import GroupSampler
from lrsearch.search.telling import PROGRESS_EVERY_S, Teller, finished_view
from lrsearch.spec.space import Choice, SearchSpace
from lrsearch.spec.studies import StudySpec
from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.retries import retrying
from lrsearch.storage.workers import (
    RoundOfAsks,
    asking,
    completed,
    count_trials,
    fail_stale,
    finishing,
    heartbeat_of,
    holding,
    holding_back,
    reading_completed,
    record_heartbeats,
    refreshed,
    write_finished,
)

__all__ = ["Search", "Tally", "TrialArtifacts", "worker_id"]

_log = logging.getLogger(__name__)

#: What counts towards ``n_trials``: the search trials finished, running and enqueued (a failed trial does
#: not count; its retry does).
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class TrialArtifacts(Protocol):
    """Where a finished trial's curves go (``review.artifacts.ArtifactWriter``): ``prepare`` returns the
    system attrs that name them, written with the trial."""

    def prepare(self, number: int, history: Sequence[EpochMetrics], metric: str) -> dict[str, Any]: ...


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclasses.dataclass
class Tally:
    """What this worker has finished so far, for the progress display and the summary, and where its time
    went: ``training`` (new members' weights and epochs), ``asking`` (rounds of asks: the sampler, failing
    stale trials, creating trials), ``pruning`` (the pruner's reads and decisions), ``telling`` (writing
    finished trials), ``waiting`` (idle while other workers' trials run); ``wall`` is the time in ``run``,
    and what it holds besides these went to the study's other reads and to heartbeats."""

    completed: int = 0
    pruned: int = 0
    diverged: int = 0
    failed: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    training: float = 0.0
    asking: float = 0.0
    pruning: float = 0.0
    telling: float = 0.0
    waiting: float = 0.0
    wall: float = 0.0

    #: The times ``timing()`` gives, kept with the study for each worker.
    TIMES = ("wall", "training", "asking", "pruning", "telling", "waiting")

    def timing(self) -> dict[str, float]:
        return {name: round(getattr(self, name), 3) for name in self.TIMES}

    @property
    def finished(self) -> int:
        return self.completed + self.pruned + self.failed


@dataclasses.dataclass(eq=False)
class _Live:
    """A trial in training: its in-memory per-epoch values and the system attrs its pruner wrote."""

    trial: optuna.Trial
    config: TrainConfig
    repeat: bool  # repeats run to the end: their point is a value nobody selected
    pbt: bool = False  # trains as PBT (exploited and explored, never pruned)
    values: dict[int, float] = dataclasses.field(default_factory=dict)
    system_attrs: dict[str, object] = dataclasses.field(default_factory=dict)
    exploits: list[dict[str, object]] = dataclasses.field(default_factory=list)  # PBT: whose weights it took
    followed: list[float] = dataclasses.field(default_factory=list)  # PBT: the rates its weights followed
    best: float = math.nan  # the best of ``values`` (NaN while there is none), kept as they come
    handed: int = 0  # how many of ``values`` were handed to the teller as the trial trained (``_progress``)

    def report(self, step: int, value: float, direction: StudyDirection) -> None:
        self.values[step] = value
        if not math.isnan(value) and (
            math.isnan(self.best) or (value > self.best if direction == StudyDirection.MAXIMIZE else value < self.best)
        ):
            self.best = value

    @functools.cached_property
    def frozen(self) -> FrozenTrial:
        """The trial as its pruner sees it, built once (``Trial.params`` copies at every call): it shares the
        per-epoch values and system attrs above as they grow."""
        t = self.trial._cached_frozen_trial
        return FrozenTrial(
            number=t.number,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=t.datetime_start,
            datetime_complete=None,
            params=t.params,
            distributions=t.distributions,
            user_attrs={},
            system_attrs=self.system_attrs,
            intermediate_values=self.values,
            trial_id=t._trial_id,
        )


#: A batch of finished members and their trials, as the teller gives it back once written.
_Finishing = list[tuple[MemberResult, _Live]]


@contextmanager
def _heartbeats(storage: optuna.storages.BaseStorage, live: Callable[[], list[int]]) -> Iterator[None]:
    """Record the heartbeats of the trials ``live()`` names, every heartbeat interval, while inside."""
    settings = heartbeat_of(storage)
    if settings is None:
        yield
        return
    # A missed beat is retried at the next; the grace period allows it.
    with every(settings.interval, lambda: record_heartbeats(storage, live()), name="lrsearch-heartbeat"):
        yield


class Search:
    """Runs a study's trials on one problem in this process (one worker)."""

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        problem: Problem,
        *,
        on_progress: Callable[[Tally], None] | None = None,
        artifacts: TrialArtifacts | None = None,
        max_retry: int = Heartbeat.max_retry,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.spec, self.study, self.problem, self.artifacts = spec, study, problem, artifacts
        self.max_retry = max_retry  # for the trials it fails itself (Ctrl-C, an error), whatever the storage
        # Trials trained at once: the study's population, halved for the rest of the run by each
        # out-of-memory error (``_out_of_memory``).
        self.population_size = spec.population
        self._refill = Refill()
        self._out_of_memory_at = injected_oom_epoch()
        self.on_notice = on_notice or _log.warning
        self.space: SearchSpace = spec.space
        self._explorer = Explorer(spec.pbt, self.space, seed=spec.seed) if spec.pbt is not None else None
        self._every_trial_pbt = spec.pbt is not None and spec.pbt_members is None
        self.pruner = study.pruner  # made once, by join_study, from the spec's checked settings
        self._direction = study.direction
        self._maximize = study.direction == StudyDirection.MAXIMIZE
        self.worker = worker_id()
        self.tally = Tally()
        self.on_progress = on_progress or (lambda tally: None)
        self._live: dict[int, _Live] = {}
        self._progress_at = time.monotonic()  # when the running trials' values were last handed on
        self._asking: optuna.Trial | None = None
        beats = heartbeat_of(study._storage)
        self._beating = beats is not None
        self._poll = min(5.0, float(beats.interval if beats is not None else 5))
        compared = self.space.find(spec.compare)
        # The study's sampler gives each new trial its group where join_study made it a GroupSampler.
        self._grouping = study.sampler if isinstance(study.sampler, GroupSampler) else None
        self._groups = (
            [Choice.encode(v) for v in compared.values]
            if self._grouping is not None and isinstance(compared, Choice)
            else []
        )
        self._unused = {group: frozenset(self.space.other_branches(spec.compare, group)) for group in self._groups}

    # --- budget -------------------------------------------------------------------------------------------

    def _search_trials(self) -> list[FrozenTrial]:
        trials = self.study.get_trials(deepcopy=False, states=BUDGET_STATES)
        return [t for t in trials if not any(key in t.user_attrs for key in OUTSIDE_BUDGET)]

    def _others_running(self, drain_waiting: bool) -> bool:
        """Whether trials of this phase are running or waiting, once this worker's population is empty (so
        not its own): if the worker running them vanishes, they come back (failed as stale, re-enqueued) and
        someone must run them. Only heartbeats can tell a vanished worker."""
        if not self._beating:
            return False
        active = (TrialState.RUNNING, TrialState.WAITING)
        return count_trials(self.study, active, user_attrs=OUTSIDE_BUDGET, present=drain_waiting) > 0

    # --- asking -------------------------------------------------------------------------------------------

    def _ask_round(self, population: Population, free: int, n_trials: int | None, drain_waiting: bool) -> bool:
        """Fail the trials of vanished workers, count the budget (once the study as last read has it taken),
        read the study, then ask up to ``free`` trials: the enqueued ones (draining), else new search trials
        within budget, in one round (``storage.asking``: each new trial's worker, device and first heartbeat
        written as it is created). Returns whether it asked fewer than ``free`` (nothing more to ask for now)."""
        started, asked = time.perf_counter(), 0.0
        try:
            retrying(fail_stale, self.study)
            # Once the study as last read has the budget taken, it is counted, not read: a worker's last rounds,
            # which ask nothing (and those of a worker waiting for others' trials), read nothing. So is it before
            # a refill (the population still training): other workers often took the budget since, and a read
            # would bring all their finished trials. Before an empty population's round, the read that the asking
            # takes anyway tells the budget (a count at every round cost the server more than the read). A retry
            # enqueued once the budget was taken runs all the same (it would be lost, and every worker would wait
            # for it).
            if (
                not drain_waiting
                and n_trials is not None
                and (population.live or len(self._search_trials()) >= n_trials)
                and retrying(count_trials, self.study, BUDGET_STATES, user_attrs=OUTSIDE_BUDGET) >= n_trials
                and not retrying(count_trials, self.study, (TrialState.WAITING,), user_attrs=OUTSIDE_BUDGET)
            ):
                return True
            refreshed(self.study)
            if drain_waiting:
                waiting = wanted = min(
                    free, len(retrying(self.study.get_trials, deepcopy=False, states=(TrialState.WAITING,)))
                )
                existing: list[FrozenTrial] = []
            else:
                existing = retrying(self._search_trials)
                # Enqueued trials (retries) come first, whatever the budget; their parameters are fixed.
                waiting = sum(t.state == TrialState.WAITING for t in existing)
                wanted = free if n_trials is None else min(free, waiting + max(0, n_trials - len(existing)))
            if wanted == 0:
                return True
            counted = collections.Counter(t.params.get(self.spec.compare) for t in existing) if self._groups else {}
            tried = {g: counted.get(g, 0) for g in self._groups}
            attrs = {"worker": self.worker, "device": host_device(self.problem.device)}
            # The grid sampler keeps Optuna's writes, one at a time: it records its grid points as system attrs.
            # Only a pruner that writes rungs (successive halving) writes to a trial while it trains.
            settled = isinstance(self.pruner, (optuna.pruners.NopPruner, PercentilePruner))
            enqueued = min(wanted, waiting)
            with asking(self.study, wanted, attrs, batch=self.spec.sampler != "grid", settled=settled) as round_:
                # The enqueued trials taken at once (those others took meanwhile are theirs: not replaced), or
                # where the storage cannot, by Optuna's ask; then new search trials, each given its group.
                taken: list[int | None] | None = round_.take_waiting(enqueued) if enqueued else []
                asks = [*(taken if taken is not None else [None] * enqueued), *[None] * (wanted - enqueued)]
                asks_started = time.perf_counter()
                for i, trial_id in enumerate(asks):
                    group = None
                    if self._groups and i >= enqueued:
                        group = min(self._groups, key=tried.__getitem__)
                    # Retried alone: an ask cut off half-way leaves at worst a trial without a heartbeat, which
                    # fail_stale ends and re-enqueues once its grace period is over.
                    retrying(self._ask, population, round_, group, trial_id)
                    if group is not None:
                        tried[group] += 1
                    if i == 0:  # the first ask holds the sampler's work for the round: it is in the price
                        asks_started = time.perf_counter()
                asked = time.perf_counter() - asks_started
            return wanted < free
        finally:
            # A round's price is what a round of one ask costs: the others are paid however slots are batched.
            self._refill.asked(time.perf_counter() - started - asked)

    def _ask(self, population: Population, round_: RoundOfAsks, group: object | None, trial_id: int | None) -> None:
        # Fix the compared parameter for this trial only; the sampler chooses everything else but the branches
        # of the other groups. Optuna samples when a parameter is suggested, so it stays fixed until the config
        # is drawn.
        fixing = (
            self._grouping.fixing({self.spec.compare: group}, unused=self._unused[group])
            if group is not None and self._grouping is not None
            else contextlib.nullcontext()
        )
        with fixing:
            self._ask_fixed(population, round_, trial_id)

    def _ask_fixed(self, population: Population, round_: RoundOfAsks, trial_id: int | None) -> None:
        """A new trial (``trial_id`` None: Optuna's ask) or an enqueued one the round took, as a new member."""
        try:
            trial = self.study.ask() if trial_id is None else optuna.Trial(self.study, trial_id)
            self._asking = trial  # from here on, a failure must end it (``_fail_live``)
            round_.started(trial._trial_id)
            attrs = trial.user_attrs
            config = self.space.sample(trial, seed=int(attrs.get("seed", self.spec.trial_seed(trial.number))))
            if REPLAY in attrs:  # a repeat of a PBT member: the schedule its weights followed, from scratch
                config = replayed(config, attrs[REPLAY])
            began = time.perf_counter()
            member = population.add(config)
            self.tally.training += time.perf_counter() - began  # the member's weights: the trainer's work
        except ConfigError as exc:
            # The file was validated at its corners; a combination inside can still be refused.
            self._asking = None
            self._end(trial, {}, {"error": str(exc), "worker": self.worker}, TrialState.FAIL)
            self.tally.failed += 1
            return
        self._asking = None
        repeat = REPEAT_OF in attrs
        # A PBT study's trials train as PBT; a comparison's only its PBT population's members.
        pbt = self._explorer is not None and not repeat and (self._every_trial_pbt or PBT_MEMBER in attrs)
        self._live[member] = _Live(trial, config, repeat=repeat, pbt=pbt)

    # --- every epoch --------------------------------------------------------------------------------------

    def _on_epoch(self, reports: Sequence[EpochReport]) -> list[int]:
        """Record each member's validation metric and ask the pruner about each (one read at the most)."""
        finite = [r for r in reports if not r.diverged]
        for r in finite:
            live = self._live[r.member]
            live.report(r.metrics.epoch, r.metrics.val_metric, self._direction)
            if live.pbt:
                live.followed.append(r.metrics.lr)
        prunable = [r for r in finite if not (self._live[r.member].repeat or self._live[r.member].pbt)]
        if isinstance(self.pruner, optuna.pruners.NopPruner) or not prunable:
            return []
        started = time.perf_counter()
        # The median and percentile pruners decide by the completed trials' values alone, which the view
        # keeps: read behind the training (``run``), or here at most every second (every epoch would read
        # every running trial of every worker each time, twice as long as the training with eight workers).
        values = completed(self.study, max_age=1.0) if isinstance(self.pruner, PercentilePruner) else None
        if values is not None:
            members = [(r.metrics.epoch, self._live[r.member].best) for r in prunable]
            decisions = self.pruner.decide(values, self._direction, members)
        else:
            refreshed(self.study)
            mirrors = {live.trial._trial_id: live.system_attrs for live in self._live.values()}
            view = retrying(PruningView, self.study, mirrors, {r.metrics.epoch for r in prunable})
            decisions = [view.should_prune(self.pruner, self._live[r.member].frozen) for r in prunable]
        self.tally.pruning += time.perf_counter() - started
        return [r.member for r, stop in zip(prunable, decisions, strict=True) if stop]

    def _exploit_and_explore(self, population: Population, explorer: Explorer) -> None:
        """PBT, every ``interval`` epochs of the population: the bottom quantile's members take the weights
        and optimizer state of members of the top quantile, and go on with those members' hyperparameters
        explored; each records it (``pbt_exploits``)."""
        assert self.spec.pbt is not None
        trained = {member: live for member, live in self._live.items() if live.pbt and live.values}
        epoch = max((len(live.values) for live in trained.values()), default=0)
        if epoch == 0 or epoch % self.spec.pbt.interval or epoch >= self.spec.epochs:
            return
        scores = {m: live.values[max(live.values)] for m, live in trained.items() if len(live.values) == epoch}
        for recipient, donor in explorer.plan(scores, maximize=self._maximize):
            live = self._live[recipient]
            # The donor's hyperparameters, explored; the member's own seed (its data order goes on).
            config = dataclasses.replace(explorer.explore(self._live[donor].config), seed=live.config.seed)
            population.exploit(recipient, donor)
            population.retune(recipient, config)
            live.config = config
            live.followed = list(self._live[donor].followed)  # the rates its weights followed so far
            live.exploits.append(
                {
                    "epoch": epoch,
                    "donor": self._live[donor].trial.number,
                    "lr": config.lr,
                    "momentum": config.momentum,
                    "decay": config.decay,
                }
            )

    # --- telling ------------------------------------------------------------------------------------------

    def _attrs(self, result: MemberResult, live: _Live) -> dict[str, object]:
        history, metric = result.history, self.problem.metric
        return {
            # Named by the problem's metric (val_accuracy, val_loss), as the report and the dashboard read them.
            f"val_{metric}": result.val_metric,
            f"test_{metric}": result.test_metric,
            "epochs": len(history),
            "selected_epoch": result.selected_epoch,
            "diverged": result.diverged,
            "train_seconds": round(result.seconds, 3),
            "device": host_device(self.problem.device),
            "seed": live.config.seed,
            "worker": self.worker,
            "lr_history": [m.lr for m in history],
            f"train_{metric}_history": [m.train_metric for m in history],  # the loss's, where the metric is the loss
            "train_loss_history": [m.train_loss for m in history],
            "val_loss_history": [m.val_loss for m in history],
            **(
                {EXPLOITS: live.exploits, PBT_SCHEDULE: followed_schedule(live.followed, live.config)}
                if live.pbt and any(rate > 0 for rate in live.followed)
                else {}
            ),
            # What the problem records of its parameters (seed 004's learned weight), epoch by epoch.
            **{
                f"{key}_history": [m.recorded.get(key) for m in history]
                for key in (history[-1].recorded if history else {})
            },
        }

    def _end(self, trial: optuna.Trial, values: dict[int, float], attrs: dict[str, object], state: TrialState) -> None:
        retrying(write_finished, self.study._storage, [TrialRecord(trial._trial_id, values, attrs, state)])

    def _finish(self, teller: Teller[_Finishing], results: Sequence[MemberResult]) -> None:
        """End the trials whose members finished, all in one transaction (Optuna's tell takes several per
        trial), written behind the training (``search.telling``)."""
        if not results:
            return
        batch = [(r, self._live[r.member]) for r in results]
        records = [
            TrialRecord(
                live.trial._trial_id,
                live.values,
                self._attrs(r, live),
                TrialState.COMPLETE if r.status == "completed" else TrialState.PRUNED,
                r.val_metric,
                self.artifacts.prepare(live.trial.number, r.history, self.problem.metric)
                if self.artifacts and r.history
                else None,
                stored=live.handed,
            )
            for r, live in batch
        ]
        views = [
            finished_view(live.trial._cached_frozen_trial, record, live.system_attrs)
            for (_, live), record in zip(batch, records, strict=True)
        ]
        for r in results:  # once their records are made: until then an error must end them (``_fail_live``)
            del self._live[r.member]
        finishing(self.study, views, records)
        teller.tell(records, batch)

    def _progress(self, teller: Teller[_Finishing]) -> None:
        """Hand the running trials' per-epoch values reported since the last call to the teller."""
        steps = {}
        for live in self._live.values():
            if len(live.values) > live.handed:
                steps[live.trial._trial_id] = dict(itertools.islice(live.values.items(), live.handed, None))
                live.handed = len(live.values)
        if steps:
            teller.progress(steps)
        self._progress_at = time.monotonic()

    def _count(self, written: list[tuple[_Finishing, set[int]]]) -> None:
        """Count the trials whose end was written; a trial another worker failed as stale meanwhile stays
        failed (its retry is enqueued) and is not counted."""
        for batch, ended in written:
            for result, live in batch:
                if live.trial._trial_id not in ended:
                    continue
                if result.status == "completed":
                    self.tally.completed += 1
                    value, sign = float(result.val_metric), 1 if self._maximize else -1  # type: ignore[arg-type]
                    if self.tally.best_value is None or sign * value > sign * self.tally.best_value:
                        self.tally.best_value, self.tally.best_trial = value, live.trial.number
                else:
                    # PRUNED keeps its last reported value; a diverged member reported only finite epochs.
                    self.tally.pruned += 1
                    self.tally.diverged += result.diverged
            self.on_progress(self.tally)

    def _written(self, teller: Teller[_Finishing], *, wait: bool) -> None:
        started = time.perf_counter()
        self._count(teller.written(wait=wait))
        self.tally.telling += time.perf_counter() - started

    def _fail_live(self, why: dict[str, object], *, retry: bool = True) -> int:
        """End every trial in training, and one being asked, as FAIL (saying ``why``), and unless ``retry`` is
        false enqueue a retry of each with its parameters (as ``--max-retry`` allows); how many ended."""
        retried = Heartbeat(max_retry=self.max_retry).retry_callback()
        ending = [(live.trial, live.values, {"seed": live.config.seed}) for live in self._live.values()]
        if self._asking is not None:
            ending.append((self._asking, {}, {}))
        for trial, values, attrs in ending:
            self._end(trial, values, {"worker": self.worker, **why, **attrs}, TrialState.FAIL)
            if retry:
                retried(self.study, self.study._storage.get_trial(trial._trial_id))
            self.tally.failed += 1
        self._live.clear()
        self._asking = None
        return len(ending)

    def _out_of_memory(self, cause: BaseException) -> None:
        """The device ran out of memory in training: the population's trials end FAIL saying so and, while
        the population can shrink, are re-enqueued and the population halved for the rest of the run; a
        trial that runs out of memory alone fails for good."""
        size, device = self.population_size, self.problem.device
        if size > 1:
            self.population_size = size // 2
            error = f"out of memory on {device} with a population of {size}; retried with {self.population_size}"
        else:
            error = f"out of memory on {device} training one trial alone; it fails for good"
        ended = self._fail_live({"error": f"{error} ({one_line(cause)})"[:500]}, retry=size > 1)
        self.on_notice(f"{error}: {ended} trial(s) ended FAIL{', re-enqueued' if size > 1 else ''}")

    def _population(self) -> Population:
        # The fault switch fires in the first population only.
        out_of_memory_at, self._out_of_memory_at = self._out_of_memory_at, None
        return Population(
            self.problem,
            epochs=self.spec.epochs,
            batch_size=self.spec.batch_size,
            out_of_memory_at=out_of_memory_at,
        )

    # --- the loop -----------------------------------------------------------------------------------------

    def run(self, *, n_trials: int | None, timeout: float | None, drain_waiting: bool = False) -> Tally:
        """Search until ``n_trials`` search trials exist study-wide or ``timeout`` seconds have passed; with
        ``drain_waiting``, run only the enqueued trials (the repeats)."""
        population = self._population()
        deadline = time.monotonic() + timeout if timeout is not None else math.inf
        live_ids = lambda: [live.trial._trial_id for live in list(self._live.values())]
        started = time.perf_counter()
        # Once a round had nothing more to ask, the next is when the population has emptied: checking the
        # budget every epoch would read the study every epoch.
        exhausted = False
        epoch = 0.0  # the last epoch's training seconds
        try:
            with (
                holding(self.study),
                _heartbeats(self.study._storage, live_ids),
                # The median and percentile pruners' values, read behind the training once a second (the
                # enqueued trials are repeats and PBT members, never pruned).
                reading_completed(self.study, period=1.0)
                if isinstance(self.pruner, PercentilePruner) and not drain_waiting
                else contextlib.nullcontext(),
                Teller[_Finishing](self.study._storage) as teller,
            ):
                while True:
                    check_interrupted()  # a Ctrl-C whose exception was lost stops the run here
                    self._written(teller, wait=False)
                    free = self.population_size - population.live
                    in_time = time.monotonic() < deadline
                    if (
                        free > 0
                        and in_time
                        and not (exhausted and population.live)
                        and self._refill.due(free, self.population_size, epoch)
                    ):
                        asking_started, training_before = time.perf_counter(), self.tally.training
                        if self.spec.sampler == "grid":
                            # Optuna's grid sampler reads its grid points from the trials' system attrs,
                            # which a finished trial's view does not carry: it waits for the writes.
                            self._written(teller, wait=True)
                        # The writes and reads behind the training wait: the population stands idle.
                        with holding_back(self.study):
                            exhausted = self._ask_round(population, free, n_trials, drain_waiting)
                        # A new member's weights are the trainer's work, counted as training in _ask.
                        self.tally.asking += (
                            time.perf_counter() - asking_started - (self.tally.training - training_before)
                        )
                    if population.live == 0:
                        # This worker's own trials are written before it judges the others' (or leaves).
                        self._written(teller, wait=True)
                        if in_time and retrying(self._others_running, drain_waiting):
                            time.sleep(self._poll)  # the next round fails the stale ones and takes their retries
                            self.tally.waiting += self._poll
                            continue
                        break
                    epoch_started, pruning_before = time.perf_counter(), self.tally.pruning
                    unused = self.population_size - population.live  # slots this epoch trains without
                    try:
                        results: list[MemberResult] | None = population.run_epoch(self._on_epoch)
                    except Exception as exc:
                        if not is_out_of_memory(exc):
                            raise
                        self._out_of_memory(exc)
                        results = None
                    telling_started = time.perf_counter()
                    epoch = telling_started - epoch_started - (self.tally.pruning - pruning_before)
                    self.tally.training += epoch
                    if results is None:
                        # A new population, once the old one and what the error held are let go.
                        population = self._population()
                        release_memory(self.problem.device)
                        exhausted = False
                        continue
                    self._refill.trained(unused, self.population_size, epoch)  # an epoch that ran
                    self._finish(teller, results)
                    if time.monotonic() - self._progress_at >= PROGRESS_EVERY_S:
                        self._progress(teller)
                    self.tally.telling += time.perf_counter() - telling_started
                    if self._explorer is not None:
                        self._exploit_and_explore(population, self._explorer)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            self._fail_live({"interrupted": True} if interrupted else {"error": f"{type(exc).__name__}: {exc}"[:500]})
            raise
        finally:
            self.tally.wall += time.perf_counter() - started
        self._record_timing()
        return self.tally

    def _record_timing(self) -> None:
        """This worker's times (``Tally.timing``) kept with the study: what a run spent outside training is
        wall - training - waiting, for any worker and run."""
        key = f"{TIMING_PREFIX}{self.worker}"
        retrying(self.study._storage.set_study_system_attr, self.study._study_id, key, self.tally.timing())
