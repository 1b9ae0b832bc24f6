from __future__ import annotations

import copy
import datetime
import itertools
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.storages._rdb import models
from optuna.trial import TrialState

from lrsearch.schema import SETTLED
from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.opening import open_storage
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.study_storage import StudyStorage
from lrsearch.storage.urls import resolve_url
from lrsearch.storage.workers import asking, finishing, write_finished

X = {"x": optuna.distributions.FloatDistribution(0, 1)}
WHO = {"worker": "host:1", "device": "cpu"}


def _open(url: str, heartbeat: Heartbeat | None = None) -> StudyStorage:
    storage = open_storage(resolve_url(url), heartbeat)
    assert isinstance(storage, StudyStorage)
    return storage


def _elsewhere(url: str) -> list[optuna.trial.FrozenTrial]:
    """The study as another worker reads it now."""
    return optuna.load_study(study_name="s", storage=_open(url)).get_trials()


def test_optuna_uses_it_as_given(storage_url: str) -> None:
    storage = _open(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    assert study._storage is storage  # not wrapped in Optuna's cache
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert [t.state for t in _elsewhere(storage_url)] == [TrialState.COMPLETE] * 3
    assert study.best_trial.number in (0, 1, 2)


def test_a_round_creates_its_trials_at_once_and_numbers_them_among_other_workers(storage_url: str) -> None:
    mine = optuna.create_study(storage=_open(storage_url), study_name="s")
    other = optuna.load_study(study_name="s", storage=_open(storage_url))
    other.ask(X)  # number 0
    with asking(mine, 3, WHO) as round_:
        for _ in range(3):
            round_.started(mine.ask(X)._trial_id)
            other.ask(X)  # another worker, between this round's asks: its own numbers after the batch
    found = _elsewhere(storage_url)
    assert [t.number for t in found] == list(range(7))
    assert sorted(t.number for t in found if t.params) == list(range(7))  # every parameter written
    assert [t.state for t in found] == [TrialState.RUNNING] * 7
    assert [t.number for t in found if t.user_attrs == WHO] == [1, 2, 3]


def test_a_round_takes_enqueued_trials_first_and_leaves_no_created_trial_over(storage_url: str) -> None:
    study = optuna.create_study(storage=_open(storage_url), study_name="s")
    study.enqueue_trial({"x": 0.25})
    study._storage.refresh(study._study_id)
    with asking(study, 3, WHO):
        first = study.ask(X)
        second = study.ask(X)  # creates the round's other two
        study.enqueue_trial({"x": 0.75})  # a retry arriving mid-round waits for the next round
        third = study.ask(X)
    assert first.params == {"x": 0.25} and first.number == 0 and [second.number, third.number] == [1, 2]
    found = _elsewhere(storage_url)
    assert [t.state for t in found] == [TrialState.RUNNING] * 3 + [TrialState.WAITING]
    assert [t.user_attrs for t in found[:3]] == [WHO] * 3  # the enqueued one too
    assert study.ask(X).params == {"x": 0.75}  # after the round: Optuna's own ask again


def test_a_round_takes_enqueued_trials_at_once_leaving_others_theirs(storage_url: str) -> None:
    study = optuna.create_study(storage=_open(storage_url, Heartbeat()), study_name="s")
    other = optuna.load_study(study_name="s", storage=_open(storage_url, Heartbeat()))
    for x in (0.1, 0.2, 0.3, 0.4):
        study.enqueue_trial({"x": x}, user_attrs={"repeat_of": 0, "worker": "gone:1"})  # a retry's copied worker
    study._storage.refresh(study._study_id)
    with asking(other, 1, {"worker": "other:2", "device": "cpu"}) as theirs:
        (first,) = theirs.take_waiting(1)  # another worker took the first meanwhile
        optuna.Trial(other, first)
    with asking(study, 4, WHO) as round_:
        taken = round_.take_waiting(4)
        assert len(taken) == 3
        trials = [optuna.Trial(study, trial_id) for trial_id in taken]
        assert [t.suggest_float("x", 0, 1) for t in trials] == [0.2, 0.3, 0.4]
        assert study.ask(X).number == 4  # the round's asks: the three taken, then none (not one in place of the fourth)
    found = _elsewhere(storage_url)
    assert [t.state for t in found] == [TrialState.RUNNING] * 5 and found[4].params.keys() == {"x"}
    assert [t.user_attrs["worker"] for t in found[:4]] == ["other:2", *[WHO["worker"]] * 3]
    assert all(t.user_attrs["repeat_of"] == 0 and t.datetime_start is not None for t in found[:4])
    assert [t.params for t in found[1:4]] == [{"x": 0.2}, {"x": 0.3}, {"x": 0.4}]
    assert all(t.system_attrs.get(SETTLED) is None for t in found)  # a round settles its trials only when told
    beats = sqlalchemy.select(models.TrialHeartbeatModel.trial_id)
    with study._storage.engine.connect() as connection:  # a worker that dies now leaves nothing without a beat
        assert {t._trial_id for t in found} <= set(connection.scalars(beats))


def test_a_round_cut_short_puts_the_enqueued_trials_it_took_back(storage_url: str) -> None:
    study = optuna.create_study(storage=_open(storage_url, Heartbeat()), study_name="s")
    for x in (0.1, 0.2, 0.3):
        study.enqueue_trial({"x": x})
    study._storage.refresh(study._study_id)
    with pytest.raises(KeyboardInterrupt), asking(study, 3, WHO) as round_:
        (first, *_) = round_.take_waiting(3)
        optuna.Trial(study, first).suggest_float("x", 0, 1)
        raise KeyboardInterrupt
    found = _elsewhere(storage_url)
    assert [t.state for t in found] == [TrialState.RUNNING, TrialState.WAITING, TrialState.WAITING]
    assert [t.datetime_start is None for t in found] == [False, True, True]
    assert study.ask(X).params == {"x": 0.2}  # the next worker's ask runs it


def test_a_round_cut_short_ends_the_trials_it_did_not_ask(storage_url: str) -> None:
    study = optuna.create_study(storage=_open(storage_url), study_name="s")
    with pytest.raises(KeyboardInterrupt), asking(study, 4, WHO):
        study.ask(X)
        raise KeyboardInterrupt
    assert [t.state for t in _elsewhere(storage_url)] == [TrialState.RUNNING] + [TrialState.FAIL] * 3


def test_a_round_writes_the_samplers_system_attrs_with_the_parameters(storage_url: str) -> None:
    study = optuna.create_study(storage=_open(storage_url), study_name="s")
    study.enqueue_trial({"x": 0.25}, user_attrs={"k": 1})
    waiting = study.get_trials()[0]
    study._storage.set_trial_system_attr(waiting._trial_id, "shared", "old")  # as a retry's copy carries it
    with asking(study, 2, WHO):
        for _ in range(2):
            trial = study.ask(X)
            study._storage.set_trial_system_attr(trial._trial_id, "shared", f"new {trial.number}")
        assert all("new" not in str(t.system_attrs.get("shared")) for t in _elsewhere(storage_url))  # not yet
        # ...but this worker's sampler sees them, and the parameters, at once.
        assert [t.system_attrs["shared"] for t in study.get_trials()] == ["new 0", "new 1"]
        assert all("x" in t.params for t in study.get_trials())
    assert [t.system_attrs["shared"] for t in _elsewhere(storage_url)] == ["new 0", "new 1"]  # replaced, not doubled


@pytest.mark.parametrize("settled", [True, False])
def test_a_settled_round_marks_its_trials_with_their_parameters(storage_url: str, settled: bool) -> None:
    study = optuna.create_study(storage=_open(storage_url), study_name="s")
    study.enqueue_trial({"x": 0.25})
    study._storage.refresh(study._study_id)
    with asking(study, 2, WHO, settled=settled):
        for _ in range(2):
            study.ask(X)
        before = [t.system_attrs.get(SETTLED) for t in _elsewhere(storage_url)]
        assert before == [None, False if settled else None]  # the enqueued one, the one the round created
    found = _elsewhere(storage_url)
    assert [SETTLED in t.system_attrs for t in found] == [settled, settled]  # the enqueued one too
    assert all("x" in t.params for t in found)


def test_a_round_refuses_a_parameter_the_study_knows_otherwise(storage_url: str) -> None:
    study = optuna.create_study(storage=_open(storage_url), study_name="s")
    study.ask(X).suggest_float("x", 0, 1)
    with asking(study, 1, WHO), pytest.raises(ValueError, match="Cannot set different distribution"):
        study.ask({"x": optuna.distributions.IntDistribution(0, 3)})


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_a_started_trial_names_its_worker_and_beats_from_the_moment_it_exists(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}" if where == "sqlite" else request.getfixturevalue("postgres_url")
    storage = _open(url, Heartbeat(interval=5, grace=60))
    study = optuna.create_study(storage=storage, study_name="s")
    with asking(study, 2, WHO):
        study.ask(X)
        # Mid-round, before any parameter is written: another worker (or `lrsearch reap`) sees who runs it.
        assert [t.user_attrs for t in _elsewhere(url)] == [WHO, WHO]
        with storage.engine.connect() as connection:
            beating = {row[0] for row in connection.exec_driver_sql("SELECT trial_id FROM trial_heartbeats")}
        assert beating == {t._trial_id for t in _elsewhere(url)}
        study.ask(X)
    outside = study.ask(X)  # outside a round: no worker of its own
    assert {t.number: t.user_attrs for t in _elsewhere(url)} == {0: WHO, 1: WHO, outside.number: {}}


def test_elsewhere_the_round_sets_the_attrs_through_optunas_api() -> None:
    study = optuna.create_study()
    with asking(study, 2, WHO) as round_:
        assert round_.take_waiting(1) is None  # Optuna's ask takes enqueued trials here
        for _ in range(2):
            round_.started(study.ask(X)._trial_id)
    study.ask(X)
    assert [t.user_attrs for t in study.get_trials()] == [WHO, WHO, {}]


def test_a_held_view_is_read_only_when_refreshed(storage_url: str) -> None:
    storage = _open(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    other = optuna.load_study(study_name="s", storage=_open(storage_url))
    with storage.hold(study._study_id):
        other.ask(X)
        assert study.get_trials() == []
        storage.refresh(study._study_id)
        assert len(study.get_trials()) == 1
        other.ask(X)
        assert len(study.get_trials()) == 1
    assert len(study.get_trials()) == 2  # not held: every read reads


def test_a_held_views_trials_by_state_follow_every_change(storage_url: str) -> None:
    storage = _open(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    other = optuna.load_study(study_name="s", storage=_open(storage_url))
    finished, running = (TrialState.COMPLETE, TrialState.PRUNED), (TrialState.RUNNING,)
    numbers = lambda states: [t.number for t in study.get_trials(deepcopy=False, states=states)]
    with storage.hold(study._study_id):
        first, second = study.ask(X), study.ask(X)
        storage.refresh(study._study_id)
        assert (numbers(finished), numbers(running)) == ([], [0, 1])
        study.tell(first, 0.5)  # this worker's change
        assert (numbers(finished), numbers(running)) == ([0], [1])
        assert numbers(finished) == [0]  # asked again, nothing changed
        other.tell(second.number, state=TrialState.PRUNED)  # another worker's, seen once read
        other.ask(X)
        assert (numbers(finished), numbers(running)) == ([0], [1])
        storage.refresh(study._study_id)
        assert (numbers(finished), numbers(running)) == ([0, 1], [2])
        assert numbers(frozenset(finished)) == [0, 1]


def test_this_workers_unwritten_trials_show_as_finished_until_the_database_says_otherwise(storage_url: str) -> None:
    storage = _open(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    done, failed = study.ask(X), study.ask(X)
    views = []
    for trial, value in ((done, 0.5), (failed, 0.25)):
        view = copy.copy(storage.get_trial(trial._trial_id))
        view.state, view.value, view.datetime_complete = TrialState.COMPLETE, value, datetime.datetime.now()
        views.append(view)
    records = [TrialRecord(t._trial_id, {1: v}, {}, TrialState.COMPLETE, v) for t, v in ((done, 0.5), (failed, 0.25))]
    with storage.hold(study._study_id):
        storage.refresh(study._study_id)
        finishing(study, views, records)
        assert [(t.state, t.value) for t in study.get_trials()] == [
            (TrialState.COMPLETE, 0.5),
            (TrialState.COMPLETE, 0.25),
        ]
        assert sorted(storage.view(study._study_id).completed().at(1)) == [0.25, 0.5]  # the pruner's values, at once
        other = optuna.load_study(study_name="s", storage=_open(storage_url))
        other.tell(failed.number, state=TrialState.FAIL)  # another worker failed it as stale meanwhile
        assert write_finished(storage, records) == [done._trial_id]
        storage.refresh(study._study_id)
        assert [(t.state, t.value) for t in study.get_trials()] == [(TrialState.COMPLETE, 0.5), (TrialState.FAIL, None)]


def test_reading_the_completed_values_alone_leaves_the_trials_to_the_next_full_read(storage_url: str) -> None:
    storage = _open(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    other = optuna.load_study(study_name="s", storage=_open(storage_url))
    with storage.hold(study._study_id):
        storage.refresh(study._study_id)
        started = other.ask(X)
        done = other.ask(X)
        done.report(0.5, 1)
        other.tell(done, 0.5)
        view = storage.refresh_completed(study._study_id, max_age=0)
        assert study.get_trials() == [] and view.completed().at(1).tolist() == [0.5]  # the pruner's values only
        storage.refresh(study._study_id)
        assert [(t.number, t.state) for t in study.get_trials()] == [(0, TrialState.RUNNING), (1, TrialState.COMPLETE)]
        started.report(0.25, 1)
        other.tell(started, 0.25)
        assert len(storage.refresh_completed(study._study_id, max_age=3600).completed()) == 1  # read just now
        assert sorted(storage.refresh_completed(study._study_id, max_age=0).completed().at(1)) == [0.25, 0.5]


def test_the_completed_values_read_behind_are_handed_out_at_once(storage_url: str) -> None:
    storage = _open(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    other = optuna.load_study(study_name="s", storage=_open(storage_url))
    first = other.ask(X)
    first.report(0.5, 1)
    other.tell(first, 0.5)
    with storage.hold(study._study_id), storage.reading_completed(study._study_id, period=0.2):
        assert storage.completed(study._study_id, max_age=0).at(1).tolist() == [0.5]  # read before the block
        second = other.ask(X)
        second.report(0.25, 1)
        other.tell(second, 0.25)
        waited = 0.0
        while len(storage.completed(study._study_id, max_age=0)) < 2 and waited < 10:
            time.sleep(0.05)
            waited += 0.05
        checkouts: list[threading.Thread] = []
        sqlalchemy.event.listen(storage.engine, "checkout", lambda *_: checkouts.append(threading.current_thread()))
        assert sorted(storage.completed(study._study_id, max_age=0).at(1)) == [0.25, 0.5]  # the thread read it
        assert threading.current_thread() not in checkouts  # handed out without a read here
    assert not [t for t in threading.enumerate() if t.name == "lrsearch-completed"]


def test_the_completed_values_are_not_read_behind_while_the_worker_asks(storage_url: str) -> None:
    storage = _open(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    other = optuna.load_study(study_name="s", storage=_open(storage_url))
    with storage.hold(study._study_id), storage.reading_completed(study._study_id, period=0.05):
        with storage.gate.closed():
            done = other.ask(X)
            done.report(0.5, 1)
            other.tell(done, 0.5)
            time.sleep(0.5)  # ten periods
            assert len(storage.completed(study._study_id, max_age=0)) == 0
        waited = 0.0
        while len(storage.completed(study._study_id, max_age=0)) < 1 and waited < 10:
            time.sleep(0.05)
            waited += 0.05
        assert storage.completed(study._study_id, max_age=0).at(1).tolist() == [0.5]


def test_each_ask_of_a_round_changes_only_the_trial_it_asks(storage_url: str) -> None:
    """TPE tells what changed since its last ask by the trials' identity (``search.tpe``): the trials shown
    before an ask are the same objects after it but the one asked, and the round's next trials appear only
    as they are handed out."""
    storage = _open(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    study.ask(X).suggest_float("x", 0, 1)
    with storage.hold(study._study_id):
        storage.refresh(study._study_id)
        with asking(study, 3, WHO):
            seen = [study.get_trials(deepcopy=False)]
            for _ in range(3):
                study.ask(X).suggest_float("x", 0, 1)
                seen.append(study.get_trials(deepcopy=False))
        for before, after in itertools.pairwise(seen):
            assert len(after) == len(before) + 1 and all(a is b for a, b in zip(after, before, strict=False))
        assert [t.number for t in seen[-1]] == [0, 1, 2, 3] and all("x" in t.params for t in seen[-1])
