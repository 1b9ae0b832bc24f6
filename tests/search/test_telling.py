from __future__ import annotations

import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch.search import telling
from lrsearch.search.telling import Teller, finished_view
from lrsearch.storage.opening import open_storage
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.urls import resolve_url
from lrsearch.storage.workers import finishing, holding_back

X = {"x": optuna.distributions.FloatDistribution(0, 1)}


def record(trial: optuna.Trial, value: float) -> TrialRecord:
    return TrialRecord(
        trial._trial_id, {1: value / 2, 2: value}, {"seed": 1, "lr_history": [0.1, 0.1]}, TrialState.COMPLETE, value
    )


def test_batches_are_written_behind_and_shown_as_finished_meanwhile(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), None), study_name="s")
    trials = [study.ask(X) for _ in range(3)]
    gate = threading.Event()
    write = telling.write_finished
    monkeypatch.setattr(telling, "write_finished", lambda *args: gate.wait(10) and write(*args))
    elsewhere = optuna.load_study(study_name="s", storage=open_storage(resolve_url(storage_url), None))
    with study._storage.hold(study._study_id), Teller[str](study._storage) as teller:  # type: ignore[attr-defined]
        study._storage.refresh(study._study_id)  # type: ignore[attr-defined]
        records = [record(t, 0.5 + i / 10) for i, t in enumerate(trials)]
        views = [finished_view(t._cached_frozen_trial, r, {}) for t, r in zip(trials, records, strict=True)]
        finishing(study, views, records)
        teller.tell(records[:2], "first")
        teller.tell(records[2:], "second")
        assert teller.written(wait=False) == []  # nothing written yet: the database still says RUNNING
        assert {t.state for t in elsewhere.get_trials()} == {TrialState.RUNNING}
        assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 3  # this worker's view
        gate.set()
        done = teller.written(wait=True)
    assert done == [("first", {trials[0]._trial_id, trials[1]._trial_id}), ("second", {trials[2]._trial_id})]
    found = study.get_trials()
    assert [t.value for t in found] == [0.5, 0.6, 0.7] and found[2].intermediate_values == {1: 0.35, 2: 0.7}


def test_batches_wait_while_the_worker_asks(storage_url: str) -> None:
    """A round of asks holds the writes back (``holding_back``): the population stands idle until it ends."""
    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), None), study_name="s")
    trial = study.ask(X)
    elsewhere = optuna.load_study(study_name="s", storage=open_storage(resolve_url(storage_url), None))
    with Teller[str](study._storage) as teller:
        with holding_back(study):
            teller.tell([record(trial, 0.5)], "held")
            time.sleep(0.5)  # a write takes milliseconds
            assert teller.written(wait=False) == []
            assert elsewhere.get_trials()[0].state == TrialState.RUNNING
        assert teller.written(wait=True) == [("held", {trial._trial_id})]
    assert elsewhere.get_trials()[0].state == TrialState.COMPLETE


def test_a_trial_failed_as_stale_meanwhile_stays_failed(storage_url: str) -> None:
    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), None), study_name="s")
    kept, lost = study.ask(X), study.ask(X)
    study._storage.set_trial_state_values(lost._trial_id, TrialState.FAIL)  # another worker failed it as stale
    with Teller[None](study._storage) as teller:
        teller.tell([record(kept, 0.5), record(lost, 0.6)], None)
        assert teller.written(wait=True) == [(None, {kept._trial_id})]
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE, TrialState.FAIL]


def test_without_a_database_the_write_is_at_once() -> None:
    study = optuna.create_study()  # in memory
    trial = study.ask(X)
    with Teller[int](study._storage) as teller:
        teller.tell([record(trial, 0.5)], 7)
        assert study.trials[0].state == TrialState.COMPLETE
        assert teller.written(wait=False) == [(7, {trial._trial_id})]


def test_a_failed_write_raises_where_it_is_collected(storage_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), None), study_name="s")
    trial = study.ask(X)

    def broken(*args: object) -> list[int]:
        raise ValueError("disk on fire")

    monkeypatch.setattr(telling, "write_finished", broken)
    with Teller[None](study._storage) as teller:
        teller.tell([record(trial, 0.5)], None)
        with pytest.raises(ValueError, match="disk on fire"):
            teller.written(wait=True)


def test_a_finished_view_is_the_trial_as_a_worker_reads_it_back() -> None:
    study = optuna.create_study()
    trial = study.ask(X)
    trial.set_user_attr("repeat_of", 3)
    pruned = TrialRecord(
        trial._trial_id,
        {1: 0.4, 2: 0.3},
        {"seed": 5, "val_loss_history": [1.0, 2.0]},
        TrialState.PRUNED,
        None,
        {"artifacts:a": {"x": 1}},
    )
    view = finished_view(trial._cached_frozen_trial, pruned, {"completed_rung_0": 0.4})
    assert (view.state, view.value, view.number, view.params) == (TrialState.PRUNED, 0.3, 0, trial.params)
    assert view.user_attrs == {"repeat_of": 3, "seed": 5} and view.intermediate_values == {}
    assert view.system_attrs == {"completed_rung_0": 0.4, "artifacts:a": {"x": 1}}
    view._validate()


def test_running_trials_values_go_before_their_end_and_once(storage_url: str) -> None:
    study = optuna.create_study(storage=open_storage(resolve_url(storage_url), None), study_name="s")
    trial, gone = study.ask(X), study.ask(X)
    study._storage.set_trial_state_values(gone._trial_id, TrialState.FAIL)  # another worker failed it as stale
    with Teller[str](study._storage) as teller:
        teller.progress({trial._trial_id: {1: 0.25}, gone._trial_id: {1: 0.5}})
        teller.progress({trial._trial_id: {2: 0.5}})
        ended = TrialRecord(trial._trial_id, {1: 0.25, 2: 0.5, 3: 0.75}, {}, TrialState.COMPLETE, 0.75, stored=2)
        teller.tell([ended], "end")
        assert teller.written(wait=True) == [("end", {trial._trial_id})]  # the values' batches give nothing back
    found = {t.number: t for t in study.get_trials()}
    assert found[trial.number].intermediate_values == {1: 0.25, 2: 0.5, 3: 0.75}
    assert found[gone.number].intermediate_values == {}  # ended elsewhere: left as it is
