"""Repeats: the best configuration of each compared group, re-run with new seeds in the same study.

A search picks its best trials as the maximum of many noisy runs, which flatters them; re-running each
group's best with fresh seeds gives values that were not selected, and so a fair mean and interval.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch.errors import RuntimeFailure
from lrsearch.schema import REPEAT_OF, repeat_keys
from lrsearch.spec.studies import StudySpec
from lrsearch.storage import claim, fail_stale, retrying

__all__ = ["REPEAT_SEED_BASE", "best_per_group", "enqueue_repeats", "group_of", "schedule_repeats"]

#: Repeat k of trial n gets seed REPEAT_SEED_BASE * (k + 1) + n: never a search trial's seed (``StudySpec.trial_seed``).
REPEAT_SEED_BASE = 1_000_000


def group_of(trial: FrozenTrial, compare: str) -> object | None:
    """The compared parameter's value for ``trial`` (as its study shows it), or None if it has none."""
    return trial.params.get(compare)


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


def enqueue_repeats(study: optuna.Study, spec: StudySpec) -> int:
    """Enqueue the repeats still missing (none if another worker already did); returns how many."""
    trials = study.get_trials(deepcopy=False)
    existing: dict[int, int] = {}
    for trial in trials:
        if REPEAT_OF in trial.user_attrs and trial.state != TrialState.FAIL:
            existing[trial.user_attrs[REPEAT_OF]] = existing.get(trial.user_attrs[REPEAT_OF], 0) + 1
    added = 0
    for best in best_per_group(trials, spec.compare, maximize=spec.resolved_trainer.maximize).values():
        for k in range(existing.get(best.number, 0), spec.repeats):
            study.enqueue_trial(
                best.params, user_attrs={REPEAT_OF: best.number, "seed": REPEAT_SEED_BASE * (k + 1) + best.number}
            )
            added += 1
    return added


def _search_running(study: optuna.Study) -> bool:
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    return any(REPEAT_OF not in t.user_attrs for t in running)


def schedule_repeats(study: optuna.Study, spec: StudySpec, *, poll: float = 2.0, patience: float = 600.0) -> None:
    """The repeats, once per study however many workers share it: when no search trial is left running in
    any worker, exactly one worker (the one that claims it) enqueues them, and the others wait until it has.
    A later, longer search (more trials) gets its own claim, and repeats for any new best."""
    deadline = time.monotonic() + patience
    while retrying(_search_running, study):
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"search trials of study {spec.name} still running after {patience:.0f} s")
        retrying(fail_stale, study)  # a vanished worker's trials would keep everyone waiting
        time.sleep(poll)
    searched = sum(REPEAT_OF not in t.user_attrs for t in retrying(study.get_trials, deepcopy=False))
    key, ready = repeat_keys(searched)
    if retrying(claim, study, key):
        retrying(enqueue_repeats, study, spec)
        retrying(study._storage.set_study_system_attr, study._study_id, ready, True)
        return
    while not retrying(lambda: ready in study._storage.get_study_system_attrs(study._study_id)):
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"the repeats of study {spec.name} were claimed but never enqueued")
        time.sleep(poll)
