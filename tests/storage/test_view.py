from __future__ import annotations

import datetime
import operator
import random
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from lrsearch.storage.records import replaced
from lrsearch.storage.view import StudyView

X = optuna.distributions.FloatDistribution(0, 1)
STATES = [
    frozenset({TrialState.RUNNING}),
    frozenset({TrialState.COMPLETE, TrialState.PRUNED}),
    frozenset({TrialState.WAITING, TrialState.RUNNING}),
    frozenset(TrialState),
]


def running(number: int) -> FrozenTrial:
    return FrozenTrial(
        number=number,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=datetime.datetime.now(),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values={},
        trial_id=number + 100,
    )


@pytest.mark.parametrize("seed", range(5))
def test_the_trials_by_states_are_the_trials_shown_in_them_after_any_change(tmp_path: Path, seed: int) -> None:
    """The lists by states are kept through a worker's changes (a trial replaced in place, the newest
    appended) and made again otherwise: after each change, each is the sorted list filtered, trial for trial."""
    view = StudyView(RDBStorage(f"sqlite:///{tmp_path / 'v.db'}"), 1, with_steps=False)
    rng = random.Random(seed)
    numbers = [0]
    view.running(running(0))
    handed = {states: view.trials(states) for states in STATES}
    for _ in range(300):
        held = view.trials()
        trial = rng.choice(held)
        step = rng.random()
        if step < 0.3:  # an ask: the newest trial
            numbers.append(numbers[-1] + 1)
            view.running(running(numbers[-1]))
        elif step < 0.4 and len(numbers) > 3:  # another worker's older trial, read late
            view.running(running(-len(numbers)))
            numbers.append(numbers[-1] + 1)
        elif step < 0.7 and not trial.state.is_finished():
            view.set_param(trial._trial_id, f"p{rng.randrange(3)}", rng.random(), X)
        elif step < 0.8 and not trial.state.is_finished():
            view.set_attr(trial._trial_id, "k", rng.random(), system=rng.random() < 0.5)
        elif step < 0.9 and not trial.state.is_finished():
            view.set_state(trial._trial_id, rng.choice([TrialState.WAITING, TrialState.RUNNING]))
        elif not trial.state.is_finished():
            ended = rng.choice([TrialState.COMPLETE, TrialState.PRUNED])
            view.finishing([replaced(trial, state=ended, values=[0.5])], {})
        shown = view.trials()
        for states in STATES:
            got = view.trials(states)
            expected = [t for t in shown if t.state in states]
            assert len(got) == len(expected) and all(map(operator.is_, got, expected))
    # A list handed out is the caller's: the view's changes since never touched it.
    assert [t.number for t in handed[STATES[0]]] == [0] and handed[STATES[0]][0].params == {}
