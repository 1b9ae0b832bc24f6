"""What follows the search, enqueued once per study however many workers share it: a PBT comparison's
population, then the repeats (the best configuration of each compared group, re-run with new seeds).

A search picks its best trials as the maximum of many noisy runs, which flatters them; re-running each
group's best with fresh seeds gives values that were not selected, and so a fair mean and interval. A
repeat of a PBT member replays from scratch the schedule its weights followed (``search.pbt``). A study
with ``repeats = { min, max }`` then adds a repeat to each of the two leading groups at a time until their
difference is significant at the sequential rule's level, or they have ``max`` (``search.evidence``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch.errors import RuntimeFailure
from lrsearch.schema import PBT_GROUP, PBT_MEMBER, PBT_SCHEDULE, REPEAT_OF, REPLAY, pbt_keys, repeat_keys
from lrsearch.search.evidence import degenerate, difference, look_level
from lrsearch.spec.studies import StudySpec
from lrsearch.storage.retries import retrying
from lrsearch.storage.workers import claim, fail_stale

__all__ = [
    "REPEAT_SEED_BASE",
    "best_per_group",
    "enqueue_more_repeats",
    "enqueue_repeats",
    "group_of",
    "schedule_pbt",
    "schedule_repeats",
]

#: Repeat k of trial n gets seed REPEAT_SEED_BASE * (k + 1) + n: never a search trial's seed (``StudySpec.trial_seed``).
REPEAT_SEED_BASE = 1_000_000


def group_of(trial: FrozenTrial, compare: str) -> object | None:
    """The compared parameter's value for ``trial`` (as its study shows it; ``"pbt"`` for a member of a PBT
    comparison's population), or None if it has none."""
    return PBT_GROUP if PBT_MEMBER in trial.user_attrs else trial.params.get(compare)


def best_per_group(trials: Iterable[FrozenTrial], compare: str, *, maximize: bool = True) -> dict[object, FrozenTrial]:
    """The best completed search trial of each group (the highest value, or the lowest where lower is better)."""
    best: dict[object, FrozenTrial] = {}
    for trial in trials:
        group = group_of(trial, compare)
        if trial.state != TrialState.COMPLETE or REPEAT_OF in trial.user_attrs or group is None:
            continue
        if group not in best or (trial.value > best[group].value if maximize else trial.value < best[group].value):  # type: ignore[operator]
            best[group] = trial
    return best


def _repeat(study: optuna.Study, best: FrozenTrial, k: int) -> None:
    attrs = {REPEAT_OF: best.number, "seed": REPEAT_SEED_BASE * (k + 1) + best.number}
    if PBT_SCHEDULE in best.user_attrs:
        attrs[REPLAY] = best.user_attrs[PBT_SCHEDULE]
    study.enqueue_trial(best.params, user_attrs=attrs)


def _repeats_of(trials: Iterable[FrozenTrial]) -> dict[int, list[FrozenTrial]]:
    """The repeats that did not fail (done, running or waiting), by the number of the trial they repeat."""
    out: dict[int, list[FrozenTrial]] = {}
    for trial in trials:
        if REPEAT_OF in trial.user_attrs and trial.state != TrialState.FAIL:
            out.setdefault(trial.user_attrs[REPEAT_OF], []).append(trial)
    return out


def enqueue_more_repeats(study: optuna.Study, spec: StudySpec) -> int:
    """One more repeat each for the two leading groups (by their repeats' mean test metric; a degenerate
    group is no contender) while their difference is not significant at the sequential rule's level and
    they have fewer than ``max_repeats``; returns how many."""
    assert spec.max_repeats is not None
    trials = study.get_trials(deepcopy=False)
    maximize, key = spec.resolved_trainer.maximize, f"test_{spec.resolved_trainer.metric}"
    repeats = _repeats_of(trials)
    done = {
        number: [t.user_attrs.get(key) for t in runs if t.state == TrialState.COMPLETE]
        for number, runs in repeats.items()
    }
    contenders = [
        best
        for best in best_per_group(trials, spec.compare, maximize=maximize).values()
        if len(done.get(best.number, [])) >= 2 and not degenerate(done[best.number])
    ]
    if len(contenders) < 2:
        return 0
    contenders.sort(key=lambda b: np.mean([v for v in done[b.number] if v is not None]), reverse=maximize)
    leader, runner_up = contenders[:2]
    if difference(done[leader.number], done[runner_up.number]).p < look_level(spec.repeats, spec.max_repeats):
        return 0  # decided
    added = 0
    for best in (leader, runner_up):
        have = len(repeats.get(best.number, []))
        if have < spec.max_repeats:
            _repeat(study, best, have)
            added += 1
    return added


def enqueue_repeats(study: optuna.Study, spec: StudySpec) -> int:
    """Enqueue the repeats still missing (none if another worker already did); returns how many."""
    trials = study.get_trials(deepcopy=False)
    existing = {number: len(runs) for number, runs in _repeats_of(trials).items()}
    added = 0
    for best in best_per_group(trials, spec.compare, maximize=spec.resolved_trainer.maximize).values():
        for k in range(existing.get(best.number, 0), spec.repeats):
            _repeat(study, best, k)
            added += 1
    return added


def _still_running(study: optuna.Study, repeats: bool) -> bool:
    """Whether search trials (or, with ``repeats``, any trials) are running or waiting in any worker."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    return any(repeats or REPEAT_OF not in t.user_attrs for t in running)


def enqueue_members(study: optuna.Study, spec: StudySpec) -> int:
    """A PBT comparison's population: ``members`` trials the sampler gives their first hyperparameters."""
    assert spec.pbt_members is not None
    for _ in range(spec.pbt_members):
        study.enqueue_trial({}, user_attrs={PBT_MEMBER: True})
    return spec.pbt_members


def schedule_pbt(study: optuna.Study, spec: StudySpec, *, poll: float = 2.0, patience: float = 600.0) -> int:
    """A PBT comparison's population, once per study: enqueued by one worker when no search trial is left
    running in any worker; returns how many members."""
    return _once(study, spec, pbt_keys, enqueue_members, everything=False, poll=poll, patience=patience)


def schedule_repeats(
    study: optuna.Study, spec: StudySpec, *, look: int = 0, poll: float = 2.0, patience: float = 600.0
) -> int:
    """The repeats, once per study: when no search trial is left running in any worker (for a sequential
    study's ``look`` 1, 2, ...: no trial at all); returns how many were enqueued. A later, longer search (more
    trials) gets its own claim, and repeats for any new best."""
    return _once(
        study,
        spec,
        lambda searched: repeat_keys(searched, look),
        enqueue_repeats if look == 0 else enqueue_more_repeats,
        everything=look > 0,
        poll=poll,
        patience=patience,
    )


def _once(
    study: optuna.Study,
    spec: StudySpec,
    keys: Callable[[int], tuple[str, str]],
    enqueue: Callable[[optuna.Study, StudySpec], int],
    *,
    everything: bool,
    poll: float,
    patience: float,
) -> int:
    """Wait until no search trial (``everything``: no trial) is running or waiting in any worker; then exactly
    one worker (the one that claims ``keys(searched trials)``) runs ``enqueue`` and marks it done, and the
    others wait for the mark; returns how many trials were enqueued."""
    deadline = time.monotonic() + patience
    while retrying(_still_running, study, everything):
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"trials of study {spec.name} still running after {patience:.0f} s")
        retrying(fail_stale, study)  # a vanished worker's trials would keep everyone waiting
        time.sleep(poll)
    searched = sum(REPEAT_OF not in t.user_attrs for t in retrying(study.get_trials, deepcopy=False))
    key, ready = keys(searched)
    if retrying(claim, study, key):
        added = retrying(enqueue, study, spec)
        retrying(study._storage.set_study_system_attr, study._study_id, ready, added)
        return added
    while (added := retrying(lambda: study._storage.get_study_system_attrs(study._study_id).get(ready))) is None:
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"what follows the search in study {spec.name} was claimed but never enqueued")
        time.sleep(poll)
    return int(added)
