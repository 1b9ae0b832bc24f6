from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pytest
import schedulefree
import torch

from lrsearch.engine import EpochReport, MemberResult, Population, load_problem, train_population
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.modules import ModuleModel
from lrsearch.engine.networks import blobs_mlp
from lrsearch.engine.plain import TORCH_OPTIMIZERS, train_plain
from lrsearch.engine.population import _Rates
from lrsearch.engine.problems import Problem
from lrsearch.engine.schedules import update_rates
from lrsearch.errors import ConfigError
from tests.conftest import tiny_image_problem

CPU = torch.device("cpu")

BLOBS_CONFIGS = [
    TrainConfig(lr=0.05, momentum=0.9, seed=3, schedule="cosine", warmup=3),
    TrainConfig(lr=0.01, optimizer="adam", seed=1, decay=1e-3),
    TrainConfig(lr=0.03, seed=5, schedule="step", schedule_params={"milestones": [40]}, schedule_unit="update"),
    # A stable rate: at 0.02 this run is chaotic, and the float32 noise between kernels decided on one machine
    # when the plateau cut the rate. At 0.005 the cut still comes (epoch 7) and both loops agree to 1e-6.
    TrainConfig(lr=0.005, momentum=0.5, nesterov=True, seed=7, schedule="plateau", schedule_params={"patience": 1}),
    TrainConfig(lr=0.01, optimizer="rmsprop", seed=2, schedule="exponential", schedule_params={"decay_rate": 0.8}),
    TrainConfig(lr=0.05, optimizer="adagrad", seed=4, weight_decay=1e-3),
    TrainConfig(lr=0.005, optimizer="adamw", seed=6, schedule="one_cycle"),
    TrainConfig(lr=0.003, optimizer="nadamw", seed=8, schedule="wsd"),
    TrainConfig(lr=0.05, optimizer="schedulefree_sgd", seed=9, optimizer_params={"warmup_steps": 20}),
    TrainConfig(lr=0.005, optimizer="schedulefree_adamw", seed=10, weight_decay=1e-3),
]

#: The plain loop's optimizers, with the schedule-free ones from their reference implementation.
REFERENCE_OPTIMIZERS = {
    **TORCH_OPTIMIZERS,
    "schedulefree_sgd": lambda p, s: schedulefree.SGDScheduleFree(
        p, lr=0.0, momentum=s["momentum"], weight_decay=s["weight_decay"], warmup_steps=int(s["warmup_steps"])
    ),
    "schedulefree_adamw": lambda p, s: schedulefree.AdamWScheduleFree(
        p,
        lr=0.0,
        betas=(s["beta1"], s["beta2"]),
        eps=s["eps"],
        weight_decay=s["weight_decay"],
        warmup_steps=int(s["warmup_steps"]),
    ),
}


@pytest.fixture(scope="module")
def blobs() -> Problem:
    return load_problem("blobs", device=CPU)


def curves(result: MemberResult) -> np.ndarray:
    return np.array([[m.lr, m.train_loss, m.train_metric, m.val_loss, m.val_metric] for m in result.history])


def assert_same_run(a: MemberResult, b: MemberResult) -> None:
    assert a.status == b.status and len(a.history) == len(b.history)
    np.testing.assert_allclose(curves(a), curves(b), rtol=1e-4, atol=1e-5)


def test_member_in_a_population_equals_member_alone(blobs: Problem) -> None:
    together = train_population(blobs, BLOBS_CONFIGS, epochs=15)
    for config, member in zip(BLOBS_CONFIGS, together, strict=True):
        (alone,) = train_population(blobs, [config], epochs=15)
        assert_same_run(member, alone)


@pytest.mark.parametrize("config", BLOBS_CONFIGS, ids=lambda c: f"{c.optimizer}-{c.schedule}")
def test_member_equals_the_plain_pytorch_loop(blobs: Problem, config: TrainConfig) -> None:
    (member,) = train_population(blobs, [config], epochs=10)
    plain = train_plain(blobs, config, epochs=10, optimizers=REFERENCE_OPTIMIZERS)
    reference = np.array([[m.lr, m.train_loss, m.train_metric, m.val_loss, m.val_metric] for m in plain.history])
    # Different kernels (stacked bmm vs nn.Linear): float32 noise, which a chaotic run amplifies a little,
    # and at most one validation example flipped. A wrong update rule is off by far more.
    np.testing.assert_allclose(curves(member), reference, rtol=2e-3, atol=2e-3)
    assert member.selected_epoch == plain.selected_epoch
    assert member.test_metric == pytest.approx(plain.test_metric, abs=2e-3)


def test_the_mlp_fast_path_equals_its_module_on_the_generic_path(blobs: Problem) -> None:
    generic = dataclasses.replace(blobs, model=ModuleModel(blobs_mlp))
    fast, slow = train_population(blobs, BLOBS_CONFIGS, epochs=8), train_population(generic, BLOBS_CONFIGS, epochs=8)
    for a, b in zip(fast, slow, strict=True):
        assert_same_run(a, b)
        assert a.test_metric == pytest.approx(b.test_metric, abs=2e-3)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_lenet_members_are_independent_and_equal_the_plain_loop(strategy: Literal["loop", "vmap"]) -> None:
    problem = tiny_image_problem(strategy)
    configs = [
        TrainConfig(lr=0.05, momentum=0.9, seed=1),
        TrainConfig(lr=0.01, optimizer="adam", seed=2),
        TrainConfig(lr=0.1, seed=3, schedule="cosine"),
    ]
    together = train_population(problem, configs)
    for config, member in zip(configs, together, strict=True):
        (alone,) = train_population(problem, [config])
        assert_same_run(member, alone)
        plain = train_plain(problem, config)
        np.testing.assert_allclose(
            curves(member)[:, 1:],
            [[m.train_loss, m.train_metric, m.val_loss, m.val_metric] for m in plain.history],
            rtol=1e-4,
            atol=1e-5,
        )
        assert member.selected_epoch == plain.selected_epoch
        assert member.test_metric == pytest.approx(plain.test_metric)


def test_a_diverging_member_stops_and_leaves_the_others_untouched(blobs: Problem) -> None:
    good = [BLOBS_CONFIGS[0], BLOBS_CONFIGS[3]]
    # Rises past any stable rate during warmup: finite for the first epochs, then NaN/inf.
    bad = TrainConfig(lr=1e4, momentum=0.9, warmup=8, warmup_start=1e-4, seed=9)
    with_bad = train_population(blobs, [good[0], bad, good[1]], epochs=12)
    without = train_population(blobs, good, epochs=12)
    diverged = with_bad[1]
    assert diverged.status == "diverged" and diverged.diverged
    assert 0 < len(diverged.history) < 12  # its finite epochs are kept
    assert diverged.test_metric is None and diverged.val_metric is None
    assert all(np.isfinite(curves(diverged)).all(axis=1))
    for a, b in zip([with_bad[0], with_bad[2]], without, strict=True):
        np.testing.assert_array_equal(curves(a), curves(b))
        assert a.test_metric == b.test_metric


def test_the_callback_sees_every_member_and_stops_some(blobs: Problem) -> None:
    population = Population(blobs, epochs=6)
    ids = [population.add(c) for c in BLOBS_CONFIGS[:4]]
    seen: list[list[int]] = []

    def on_epoch(reports: Sequence[EpochReport]) -> list[int]:
        seen.append(sorted(r.member for r in reports))
        epoch = reports[0].metrics.epoch
        # A stop in the last epoch comes too late: that member has trained every epoch, and completes.
        return [ids[1]] if epoch == 2 else [ids[2]] if epoch == 4 else [ids[3]] if epoch == 6 else []

    results = {}
    live = []
    while population.live:
        results.update({r.member: r for r in population.run_epoch(on_epoch)})
        live.append(population.live)
    assert seen[:2] == [sorted(ids)] * 2 and seen[2] == sorted([ids[0], ids[2], ids[3]])
    assert live == [4, 3, 3, 2, 2, 0]  # stopped members leave the population at once
    assert results[ids[1]].status == "stopped" and len(results[ids[1]].history) == 2
    assert results[ids[2]].status == "stopped" and len(results[ids[2]].history) == 4
    assert results[ids[1]].test_metric is None
    # The others trained on as if nothing happened.
    for i in (0, 3):
        (alone,) = train_population(blobs, [BLOBS_CONFIGS[i]], epochs=6)
        assert_same_run(results[ids[i]], alone)
        assert results[ids[i]].status == "completed" and results[ids[i]].test_metric is not None


def test_members_can_join_between_epochs(blobs: Problem) -> None:
    population = Population(blobs, epochs=5)
    first = population.add(BLOBS_CONFIGS[0])
    population.run_epoch()
    population.run_epoch()
    late = population.add(BLOBS_CONFIGS[4])  # same optimizer kind as nobody yet: a new sub-population
    later = population.add(BLOBS_CONFIGS[3])  # joins the running SGD sub-population
    results = {r.member: r for r in population.run()}
    assert len(results[first].history) == len(results[late].history) == 5
    for member, config in ((late, BLOBS_CONFIGS[4]), (later, BLOBS_CONFIGS[3])):
        (alone,) = train_population(blobs, [config], epochs=5)
        assert_same_run(results[member], alone)


def test_restore_best_reports_the_best_validation_epoch() -> None:
    problem = tiny_image_problem(n_train=128)
    config = TrainConfig(lr=0.05, momentum=0.9, seed=4)
    (member,) = train_population(problem, [config], epochs=6)
    accuracies = [m.val_metric for m in member.history]
    assert member.selected_epoch == int(np.argmax(accuracies)) + 1
    assert member.val_metric == max(accuracies)
    # The reported test accuracy is the one of the selected epoch's weights: train only that far.
    short = dataclasses.replace(problem, restore_best=False)
    (truncated,) = train_population(short, [config], epochs=member.selected_epoch)
    assert member.test_metric == pytest.approx(truncated.test_metric)


def test_without_restore_best_the_last_epoch_is_reported(blobs: Problem) -> None:
    (member,) = train_population(blobs, [BLOBS_CONFIGS[0]], epochs=8)
    assert member.selected_epoch == 8 and member.val_metric == member.history[-1].val_metric
    assert member.test_metric == pytest.approx(member.history[-1].val_metric)  # blobs: val is the test set


def test_history_lr_is_the_last_update_of_each_epoch(blobs: Problem) -> None:
    config = TrainConfig(lr=0.1, schedule="inverse_time", schedule_params={"decay": 0.01}, schedule_unit="update")
    (member,) = train_population(blobs, [config], epochs=3)
    assert [m.lr for m in member.history] == pytest.approx([0.1 / (1 + 0.01 * (16 * e - 1)) for e in (1, 2, 3)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"epochs must be an integer in \[1, 100000\] but got 0"),
        ({"epochs": 10**12}, "epochs must be"),
        ({"batch_size": -3}, "batch_size must be"),
    ],
)
def test_bad_population_settings(blobs: Problem, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Population(blobs, **kwargs)


def test_a_schedule_longer_than_the_run_is_caught_when_added(blobs: Problem) -> None:
    population = Population(blobs, epochs=5)
    with pytest.raises(ConfigError, match=r"cosine total \(5\) must be longer than warmup \(5\)"):
        population.add(TrainConfig(schedule="cosine", warmup=5))


def test_the_longest_run_allocates_no_table_for_its_rates(blobs: Problem) -> None:
    """100000 epochs of updates (1.6 million) for each member: rates are computed a window at a time."""
    population = Population(blobs, epochs=100_000)
    for seed in range(4):
        population.add(TrainConfig(lr=0.05, schedule="cosine", schedule_unit="update", seed=seed))
    population.run_epoch()
    member = population._groups["sgd"].members[0]
    assert len(member.rates.values) <= _Rates.WINDOW and member.steps_done == 16


def test_rates_a_window_at_a_time_are_the_whole_run_s() -> None:
    """Across windows and after a plateau's reduction, the rates are those of the whole table."""
    config = TrainConfig(
        lr=0.1, schedule="cosine", schedule_params={"total": 200_000}, schedule_unit="update", decay=1e-5, warmup=10
    )
    schedule = config.build_schedule(200_000)
    whole = update_rates(schedule, n_updates=200_000, updates_per_epoch=100, unit="update", decay=1e-5)
    rates = _Rates(schedule, config, n_updates=200_000, updates_per_epoch=100)
    taken = [rates.take(start, 100) for start in range(0, 150_000, 100)]
    np.testing.assert_allclose(np.concatenate(taken), whole[:150_000])
    rates.reduce(0.1, 150_000)
    np.testing.assert_allclose(rates.take(150_000, 50_000), whole[150_000:] * 0.1)


def _two_members(blobs: Problem, second: TrainConfig | None = None) -> tuple[Population, int, int]:
    population = Population(blobs, epochs=6)
    donor = population.add(TrainConfig(lr=0.05, momentum=0.9, seed=1))
    recipient = population.add(second or TrainConfig(lr=0.01, momentum=0.5, seed=2))
    return population, donor, recipient


def test_exploit_copies_a_donor_s_weights_and_optimizer_state_and_leaves_the_donor_alone(blobs: Problem) -> None:
    population, donor, recipient = _two_members(blobs)
    reference, _, _ = _two_members(blobs)
    for _ in range(3):
        population.run_epoch()
        reference.run_epoch()
    population.exploit(recipient, donor)
    (group,) = population._groups.values()
    assert torch.equal(group.flat[1], group.flat[0])
    assert torch.equal(group.optimizer.state["momentum_buffer"][1], group.optimizer.state["momentum_buffer"][0])
    assert group.optimizer.host["momentum"].tolist() == pytest.approx([0.9, 0.5])  # its own hyperparameters
    results = {r.member: r for r in population.run()}
    alone = {r.member: r for r in reference.run()}
    assert_same_run(results[donor], alone[donor])  # the donor never noticed
    # The recipient went on from the donor's weights at epoch 3, with its own rate and data order.
    assert results[recipient].history[3].lr == pytest.approx(0.01)
    assert results[recipient].history[3].val_loss != pytest.approx(alone[recipient].history[3].val_loss)


def test_retune_changes_a_member_s_rate_from_its_next_update(blobs: Problem) -> None:
    population, _, recipient = _two_members(blobs)
    for _ in range(2):
        population.run_epoch()
    population.retune(recipient, TrainConfig(lr=0.02, momentum=0.7, seed=2))
    (group,) = population._groups.values()
    assert group.optimizer.host["momentum"][1] == pytest.approx(0.7)
    result = next(r for r in population.run() if r.member == recipient)
    assert [m.lr for m in result.history] == pytest.approx([0.01, 0.01, 0.02, 0.02, 0.02, 0.02])


def test_exploit_and_retune_refuse_what_they_cannot_do(blobs: Problem) -> None:
    population, donor, recipient = _two_members(blobs, TrainConfig(lr=0.001, optimizer="adam", seed=2))
    population.run_epoch()
    with pytest.raises(ConfigError, match="their optimizers differ"):
        population.exploit(recipient, donor)
    with pytest.raises(ConfigError, match="cannot change member"):
        population.retune(donor, TrainConfig(lr=0.01, optimizer="adam"))
    with pytest.raises(KeyError, match="no member 99"):
        population.exploit(99, donor)
