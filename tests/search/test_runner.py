from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from lrsearch.engine import Problem, load_problem
from lrsearch.engine.models import MLP
from lrsearch.schema import REPEAT_OF, SETTLED
from lrsearch.search import runner
from lrsearch.search.refill import Refill
from lrsearch.search.repeats import REPEAT_SEED_BASE, enqueue_repeats
from lrsearch.search.runner import Search, worker_id
from lrsearch.search.study import join_study
from lrsearch.spec.studies import StudySpec, load_study_file
from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import resolve_url
from lrsearch.storage.workers import holding
from tests.conftest import write_study


@pytest.fixture(scope="module")
def blobs() -> Problem:
    return load_problem("blobs", device=torch.device("cpu"))


def open_study(spec: StudySpec, url: str, *, per_epoch_values: bool = True) -> optuna.Study:
    return join_study(spec, open_storage(resolve_url(url), per_epoch_values=per_epoch_values), worker=worker_id())


def search_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if REPEAT_OF not in t.user_attrs]


def interrupted_in_epoch(search: Search, epoch: int, look: Callable[[], None] = lambda: None) -> Search:
    """``search``, made to raise KeyboardInterrupt (as Ctrl-C does) in its ``epoch``-th epoch, once ``look``
    has looked at the study."""
    original, seen = search._on_epoch, []

    def interrupting(reports):  # type: ignore[no-untyped-def]
        seen.append(reports[0].metrics.epoch)
        if len(seen) == epoch:
            look()
            raise KeyboardInterrupt
        return original(reports)

    search._on_epoch = interrupting  # type: ignore[method-assign]
    return search


def test_the_study_wide_total_and_every_trial_ends(tmp_path: Path, storage_url: str, blobs: Problem) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=8, population=3))
    study = open_study(spec, storage_url)
    Search(spec, study, blobs).run(n_trials=spec.n_trials, timeout=None)
    states = [t.state for t in study.get_trials()]
    assert len(states) == 8 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    # Another worker (or a rerun) with the same total asks nothing more.
    Search(spec, open_study(spec, storage_url), blobs).run(n_trials=spec.n_trials, timeout=None)
    assert len(study.get_trials()) == 8
    assert sorted(t.number for t in study.get_trials()) == list(range(8))


def test_finished_trials_carry_their_epochs_and_attributes(tmp_path: Path, storage_url: str, blobs: Problem) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=4, population=4, pruner='"none"'))
    study = open_study(spec, storage_url)
    Search(spec, study, blobs).run(n_trials=4, timeout=None)
    for trial in study.get_trials():
        assert trial.state == TrialState.COMPLETE
        attrs = trial.user_attrs
        assert set(attrs) >= {
            "val_accuracy",
            "test_accuracy",
            "epochs",
            "diverged",
            "train_seconds",
            "device",
            "seed",
            "worker",
            "lr_history",
        }
        assert sorted(trial.intermediate_values) == list(range(1, 13)) and attrs["epochs"] == 12
        assert len(attrs["lr_history"]) == 12 and attrs["diverged"] is False
        assert trial.value == pytest.approx(attrs["val_accuracy"]) == pytest.approx(trial.intermediate_values[12])
        assert attrs["worker"] == worker_id() and attrs["device"] == "cpu" and attrs["seed"] == trial.number
    assert study.metric_names == ["val_accuracy"]


@pytest.mark.parametrize("per_epoch_values", [True, False], ids=["full-reads", "worker-reads"])
def test_trials_after_the_first_wave_are_pruned(tmp_path: Path, blobs: Problem, per_epoch_values: bool) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=16, population=2, epochs=20, lr_low=1e-5, lr_high=0.5))
    study = open_study(spec, f"sqlite:///{tmp_path / 's.db'}", per_epoch_values=per_epoch_values)
    tally = Search(spec, study, blobs).run(n_trials=16, timeout=None)
    pruned = optuna.load_study(study_name="small", storage=f"sqlite:///{tmp_path / 's.db'}").get_trials(
        states=(TrialState.PRUNED,)
    )  # read in full
    assert pruned and tally.pruned == len(pruned)
    for trial in pruned:
        assert trial.user_attrs["epochs"] < 20 and len(trial.intermediate_values) == trial.user_attrs["epochs"]
        assert trial.value == trial.intermediate_values[max(trial.intermediate_values)]  # PRUNED keeps its last value
    assert all(t.number >= 2 for t in pruned)  # the first wave has no completed trial to be compared with


@pytest.mark.parametrize("pruner", ["hyperband", "successive_halving"])
def test_the_halving_pruners_prune_at_their_rungs(tmp_path: Path, blobs: Problem, pruner: str) -> None:
    """Sized to the run and the population, as a study gets them: pruned trials stop at a rung (Hyperband's
    brackets rung at 1, 3, 9 and 27 here), the rest run to the end."""
    spec = load_study_file(write_study(tmp_path, n_trials=24, population=8, epochs=30, pruner=f'"{pruner}"'))
    study = open_study(spec, f"sqlite:///{tmp_path / 's.db'}")
    Search(spec, study, blobs).run(n_trials=24, timeout=None)
    trials = study.get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(trials) == 24 and pruned and len(pruned) < 24
    rungs = {1, 3, 9, 27} if pruner == "hyperband" else {1, 4, 16}  # successive halving: a factor of 4
    assert {t.user_attrs["epochs"] for t in pruned} <= rungs
    assert all(t.user_attrs["epochs"] == 30 for t in trials if t.state == TrialState.COMPLETE)
    assert any(k.startswith("completed_rung_") for t in pruned for k in t.system_attrs)


@pytest.mark.parametrize(
    ("pruner", "settled"),
    [('"median"', True), ('"none"', True), ('{ name = "asha", min_resource = 2 }', False)],
    ids=["median", "none", "asha"],
)
def test_trials_are_marked_settled_unless_their_pruner_writes_to_them(
    tmp_path: Path, blobs: Problem, pruner: str, settled: bool
) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=4, population=2, epochs=6, pruner=pruner))
    study = open_study(spec, f"sqlite:///{tmp_path / 's.db'}")
    Search(spec, study, blobs).run(n_trials=4, timeout=None)
    trials = optuna.load_study(study_name="small", storage=f"sqlite:///{tmp_path / 's.db'}").get_trials()
    assert len(trials) == 4 and [t.system_attrs.get(SETTLED) for t in trials] == [settled or None] * 4


def test_diverged_trials_end_pruned_and_say_so(tmp_path: Path, blobs: Problem) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=3, population=3, lr_low=50.0, lr_high=100.0, pruner='"none"'))
    study = open_study(spec, f"sqlite:///{tmp_path / 's.db'}")
    tally = Search(spec, study, blobs).run(n_trials=3, timeout=None)
    assert tally.diverged == 3
    for trial in study.get_trials():
        assert trial.state == TrialState.PRUNED and trial.user_attrs["diverged"] is True


def test_the_compared_groups_get_equal_shares(tmp_path: Path, blobs: Problem) -> None:
    path = write_study(
        tmp_path, n_trials=9, population=3, schedules='["constant", "cosine", "exponential"]', pruner='"none"'
    )
    path.write_text(path.read_text() + "\n[space.exponential]\ndecay_rate = 0.98\n", encoding="utf-8")
    spec = load_study_file(path)
    study = open_study(spec, f"sqlite:///{tmp_path / 's.db'}")
    Search(spec, study, blobs).run(n_trials=9, timeout=None)
    counts = {
        g: sum(t.params["schedule"] == g for t in study.get_trials()) for g in ("constant", "cosine", "exponential")
    }
    assert counts == {"constant": 3, "cosine": 3, "exponential": 3}


class _Priced(Refill):
    """The refill rule as it is, at a price the test sets whatever the rounds cost; records the rounds' own
    prices and the epochs it was told of."""

    def __init__(self, price: float) -> None:
        super().__init__(price=price)
        self.set, self.prices, self.epochs = price, [], []

    def trained(self, free: int, size: int, epoch: float) -> None:
        self.epochs.append((free, size, epoch))
        super().trained(free, size, epoch)

    def asked(self, price: float) -> None:
        self.prices.append(price)
        super().asked(self.set)


@pytest.mark.parametrize("price", [0.0, math.inf], ids=["free", "priceless"])
def test_free_slots_are_asked_for_once_worth_a_round(tmp_path: Path, blobs: Problem, price: float) -> None:
    # Pruned members free slots before their population ends: refilled at the next epoch when a round costs
    # nothing, left free until the population empties when it costs more than any epoch's idle share.
    spec = load_study_file(write_study(tmp_path, n_trials=16, population=4, epochs=12, lr_low=1e-5, lr_high=0.5))
    search = Search(spec, open_study(spec, f"sqlite:///{tmp_path / 's.db'}"), blobs)
    search._refill = refill = _Priced(price)
    ask_round, ask, rounds, asks = search._ask_round, search._ask, [], []

    def asking(population, free, *args):  # type: ignore[no-untyped-def]
        started, live = time.perf_counter(), population.live
        asks.clear()
        exhausted = ask_round(population, free, *args)
        rounds.append((live, time.perf_counter() - started, list(asks)))
        return exhausted

    def one(*args):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        ask(*args)
        asks.append(time.perf_counter() - started)

    search._ask_round, search._ask = asking, one  # type: ignore[method-assign]
    tally = search.run(n_trials=16, timeout=None)
    assert tally.pruned > 0 and len(search_trials(search.study)) == 16
    refilled = [live for live, _, times in rounds if times and live]
    assert bool(refilled) == (price == 0.0)
    # Every epoch told with its free slots (some stood free while the priceless population trained on).
    assert refill.epochs and all(0 <= free < size == 4 and epoch > 0 for free, size, epoch in refill.epochs)
    assert price == 0.0 or any(free for free, _, _ in refill.epochs)
    # A round's price: what it cost besides its asks after the first (which carries the sampler's work).
    assert len(refill.prices) == len(rounds)
    for (_, seconds, times), cost in zip(rounds, refill.prices, strict=True):
        assert sum(times[:1]) <= cost <= seconds - sum(times[1:])


def test_an_interrupt_fails_the_running_trials_and_requeues_them(
    tmp_path: Path, storage_url: str, blobs: Problem
) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=6, population=3, pruner='"none"'))
    study = open_study(spec, storage_url)
    with pytest.raises(KeyboardInterrupt):
        interrupted_in_epoch(Search(spec, study, blobs), 5).run(n_trials=6, timeout=None)
    failed = study.get_trials(states=(TrialState.FAIL,))
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(failed) == 3 and len(waiting) == 3 and not study.get_trials(states=(TrialState.RUNNING,))
    assert sorted(t.system_attrs["failed_trial"] for t in waiting) == sorted(t.number for t in failed)
    by_number = {t.number: t for t in failed}
    for retry in waiting:
        assert retry.params == by_number[retry.system_attrs["failed_trial"]].params
    # The next run picks the retries up first and the study reaches its total.
    Search(spec, open_study(spec, storage_url), blobs).run(n_trials=6, timeout=None)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6
    assert not study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))


def test_repeats_rerun_each_groups_best_with_new_seeds(tmp_path: Path, blobs: Problem) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=6, population=3, repeats=2, pruner='"none"'))
    study = open_study(spec, f"sqlite:///{tmp_path / 's.db'}")
    search = Search(spec, study, blobs)
    search.run(n_trials=6, timeout=None)
    assert enqueue_repeats(study, spec) == 4  # 2 groups x 2 seeds
    assert enqueue_repeats(study, spec) == 0  # nothing missing: a second worker adds none
    search.run(n_trials=None, timeout=None, drain_waiting=True)
    repeats = [t for t in study.get_trials() if REPEAT_OF in t.user_attrs]
    assert len(repeats) == 4 and all(t.state == TrialState.COMPLETE for t in repeats)
    for trial in repeats:
        best = study.trials[trial.user_attrs[REPEAT_OF]]
        assert trial.params == best.params and REPEAT_OF not in best.user_attrs
        assert trial.user_attrs["seed"] in {REPEAT_SEED_BASE * k + best.number for k in (1, 2)}
        assert len(trial.intermediate_values) == spec.epochs  # never pruned
    assert len(search_trials(study)) == 6


def test_a_worker_keeps_where_its_time_went_with_the_study(tmp_path: Path, storage_url: str, blobs: Problem) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=6, population=3))
    study = open_study(spec, storage_url)
    tally = Search(spec, study, blobs).run(n_trials=6, timeout=None)
    timing = study._storage.get_study_system_attrs(study._study_id)[f"lrsearch:timing:{worker_id()}"]
    assert set(timing) == set(tally.TIMES) and timing == tally.timing()
    parts = sum(timing[name] for name in tally.TIMES if name != "wall")
    assert all(timing[name] >= 0 for name in tally.TIMES) and timing["training"] > 0 and parts <= timing["wall"] + 1e-3
    # Each part timed (unrounded: the study keeps milliseconds, and a few epochs' pruning can take less).
    assert tally.asking > 0 and tally.pruning > 0 and tally.telling > 0


def test_the_work_behind_waits_while_the_worker_asks(tmp_path: Path, storage_url: str, blobs: Problem) -> None:
    # The population stands idle while its worker asks: the teller's writes and the pruner's reads wait.
    spec = load_study_file(write_study(tmp_path, n_trials=4, population=2))
    search = Search(spec, open_study(spec, storage_url), blobs)
    gate = search.study._storage.gate  # type: ignore[attr-defined]
    while_asking, while_training = [], []
    ask_round, on_epoch = search._ask_round, search._on_epoch

    def asking(*args):  # type: ignore[no-untyped-def]
        while_asking.append(gate.is_open)
        return ask_round(*args)

    def training(reports):  # type: ignore[no-untyped-def]
        while_training.append(gate.is_open)
        return on_epoch(reports)

    search._ask_round, search._on_epoch = asking, training  # type: ignore[method-assign]
    search.run(n_trials=4, timeout=None)
    assert while_asking and not any(while_asking) and while_training and all(while_training)


def test_the_budget_is_counted_once_the_study_as_read_has_it_taken_or_before_a_refill(
    tmp_path: Path, storage_url: str, blobs: Problem, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty population's round reads the study anyway, which tells the budget: a count before it only cost
    # the server. A refill counts first: other workers may have taken the budget since the last read.
    spec = load_study_file(write_study(tmp_path, n_trials=8, population=3))
    search = Search(spec, open_study(spec, storage_url), blobs)
    counted, count, ask_round, training = [], runner.count_trials, search._ask_round, [0]

    def asking(population, *args):  # type: ignore[no-untyped-def]
        training[0] = population.live
        return ask_round(population, *args)

    def counting(study: optuna.Study, states: tuple[TrialState, ...], **kwargs: object) -> int:
        if TrialState.COMPLETE in states:  # the budget's count (not the poll for others' running trials)
            counted.append((len(search._search_trials()), training[0]))
        return count(study, states, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "count_trials", counting)
    search._ask_round = asking  # type: ignore[method-assign]
    search.run(n_trials=8, timeout=None)
    assert counted and all(as_read >= 8 or live for as_read, live in counted)
    assert len(search_trials(search.study)) == 8


def test_a_refill_learns_that_others_took_the_budget_without_reading_the_study(
    tmp_path: Path, storage_url: str, blobs: Problem, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=4, population=2))
    search = Search(spec, open_study(spec, storage_url), blobs)
    reads, read = [], runner.refreshed
    monkeypatch.setattr(runner, "refreshed", lambda study: reads.append(study) or read(study))
    with holding(search.study):
        population = search._population()
        assert not search._ask_round(population, 2, 4, False) and population.live == 2 and len(reads) == 1
        other = open_study(spec, storage_url)
        for _ in range(2):  # another worker takes the rest of the budget
            other.ask()
        assert search._ask_round(population, 1, 4, False)  # a slot freed: counted, nothing more to ask
        assert len(reads) == 1 and population.live == 2
        assert search._ask_round(search._population(), 2, 4, False) and len(reads) == 2  # an empty one reads


def test_a_retry_enqueued_once_the_budget_is_taken_still_runs(tmp_path: Path, storage_url: str, blobs: Problem) -> None:
    # A trial failed (a worker vanished, a database restart) while other workers filled the budget: its
    # retry waits, and every worker must take it rather than wait for it forever.
    spec = load_study_file(write_study(tmp_path, n_trials=4, population=2, pruner='"none"'))
    study = open_study(spec, storage_url)
    Search(spec, study, blobs).run(n_trials=3, timeout=None)
    lost = study.ask({"schedule": optuna.distributions.CategoricalDistribution(["constant", "cosine"])})
    study.tell(study.ask(), 0.5)  # another worker's trial fills the budget
    study._storage.set_trial_state_values(lost._trial_id, state=TrialState.FAIL)
    Heartbeat().retry_callback()(study, study._storage.get_trial(lost._trial_id))
    Search(spec, open_study(spec, storage_url), blobs).run(n_trials=4, timeout=60)
    retry = [t for t in study.get_trials() if t.system_attrs.get("failed_trial") == lost.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and lost.params.items() <= retry[0].params.items()
    assert len(study.get_trials()) == 6


class _OutOfMemory(MLP):
    """The real MLP, until its third member's weights cannot be allocated (a fault a real run meets)."""

    def __init__(self) -> None:
        super().__init__()
        self.made = 0

    def init(self, generator: torch.Generator) -> list[torch.Tensor]:
        self.made += 1
        if self.made == 3:
            raise MemoryError("cannot allocate the weights")
        return super().init(generator)


def test_a_crash_while_asking_leaves_no_trial_running(tmp_path: Path, storage_url: str, blobs: Problem) -> None:
    """Two members training, one being asked when the crash comes, one created for the round but not yet
    asked: all end FAIL, the three with parameters come back enqueued, none stays RUNNING."""
    spec = load_study_file(write_study(tmp_path, n_trials=4, population=4, sampler="random"))
    study = open_study(spec, storage_url)
    with pytest.raises(MemoryError):
        Search(spec, study, dataclasses.replace(blobs, model=_OutOfMemory())).run(n_trials=4, timeout=None)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL"] * 4 + ["WAITING"] * 3
    assert all(t.user_attrs["error"] == "MemoryError: cannot allocate the weights" for t in trials[:3])
    assert [t.params for t in trials[4:]] == [t.params for t in trials[:3]] and trials[3].params == {}


def test_a_retry_does_not_inherit_how_its_original_failed(tmp_path: Path, storage_url: str, blobs: Problem) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=1, population=1, pruner='"none"'))
    study = open_study(spec, storage_url)
    original = study.ask()
    spec.space.sample(original, seed=5)
    for key, value in {"interrupted": True, "worker": "gone:1", "seed": 5}.items():
        original.set_user_attr(key, value)
    study._storage.set_trial_system_attr(original._trial_id, SETTLED, True)
    study.tell(original, state=TrialState.FAIL)
    Heartbeat().retry_callback()(study, study.get_trials()[0])
    assert SETTLED not in study.get_trials()[1].system_attrs  # its round is still to write to it
    Search(spec, study, blobs).run(n_trials=1, timeout=None)
    retry = study.get_trials()[1]
    assert retry.state == TrialState.COMPLETE and retry.params == study.get_trials()[0].params
    assert "interrupted" not in retry.user_attrs and retry.user_attrs["seed"] == 5
    assert retry.user_attrs["worker"] == worker_id() and retry.system_attrs["failed_trial"] == 0


class _BrokenStore:
    """Artifacts that cannot be written: a failure while the finished trials' records are made."""

    def prepare(self, number: int, history: object, metric: str) -> dict[str, object]:
        raise OSError("the artifact store is gone")


def test_an_error_while_ending_trials_fails_them_and_loses_none(tmp_path: Path, blobs: Problem) -> None:
    spec = load_study_file(write_study(tmp_path, n_trials=3, population=3, pruner='"none"', epochs=2))
    study = open_study(spec, f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(OSError, match="the artifact store is gone"):
        Search(spec, study, blobs, artifacts=_BrokenStore()).run(n_trials=3, timeout=None)
    trials = study.get_trials()
    assert len(trials) >= 3 and all(t.state in (TrialState.FAIL, TrialState.WAITING) for t in trials)
    assert sum(t.state == TrialState.FAIL for t in trials) == 3  # each ended, and its retry waits


def test_running_trials_show_their_curves_and_keep_them_when_interrupted(
    tmp_path: Path, storage_url: str, blobs: Problem, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's per-epoch values are written as it trains (the dashboard draws its curve), once each: its
    end writes only the rest, and an interrupt ends it FAIL with every value it reported."""
    monkeypatch.setattr(runner, "PROGRESS_EVERY_S", 0.0)  # every epoch's values handed on at once
    spec = load_study_file(write_study(tmp_path, n_trials=3, population=3, pruner='"none"'))
    study = open_study(spec, storage_url)
    # Read as the dashboard reads (Optuna's storage, which reads running trials afresh every time); a
    # worker's view keeps a settled running trial as it first read it, which a poll would never see grow.
    elsewhere = optuna.load_study(study_name=spec.name, storage=resolve_url(storage_url))

    def curves_so_far() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the teller writes behind: wait for it
            running = elsewhere.get_trials(states=(TrialState.RUNNING,))
            if len(running) == 3 and all(len(t.intermediate_values) >= 6 for t in running):
                break
            time.sleep(0.05)
        assert all(sorted(t.intermediate_values) == list(range(1, len(t.intermediate_values) + 1)) for t in running)
        assert all(len(t.intermediate_values) >= 6 for t in running)

    with pytest.raises(KeyboardInterrupt):
        interrupted_in_epoch(Search(spec, study, blobs), 8, curves_so_far).run(n_trials=3, timeout=None)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 3 and all(sorted(t.intermediate_values) == list(range(1, 8)) for t in failed)
    monkeypatch.undo()
    Search(spec, open_study(spec, storage_url), blobs).run(n_trials=3, timeout=None)  # the retries, to the end
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 3 and all(sorted(t.intermediate_values) == list(range(1, 13)) for t in done)
