"""The trainers reproduce their seeds: seed 000's claims on blobs, and LeNet learning real Fashion-MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrsearch.engine import MemberResult, load_problem, train_population
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.networks import lenet_d2l
from lrsearch.errors import ConfigError
from tests.conftest import REAL_FASHION_MNIST

SEEDS = range(5)


@pytest.fixture(scope="module")
def seed000() -> dict[str, list[MemberResult]]:
    """Seed 000's experiments, five seeds each, trained as one population (about two seconds)."""
    experiments = {
        "lr=1e-7": TrainConfig(lr=1e-7),
        "lr=0.1": TrainConfig(lr=0.1),
        "lr=1.0": TrainConfig(lr=1.0),
        "momentum=0": TrainConfig(lr=0.01),
        "momentum=0.9": TrainConfig(lr=0.01, momentum=0.9),
        "plateau(2)": TrainConfig(lr=0.01, schedule="plateau", schedule_params={"patience": 2}),
        "plateau(15)": TrainConfig(lr=0.01, schedule="plateau", schedule_params={"patience": 15}),
    }
    configs = [(name, TrainConfig(**{**c.__dict__, "seed": s})) for name, c in experiments.items() for s in SEEDS]
    results = train_population(load_problem("blobs", device=torch.device("cpu")), [c for _, c in configs])
    grouped: dict[str, list[MemberResult]] = {}
    for (name, _), result in zip(configs, results, strict=True):
        grouped.setdefault(name, []).append(result)
    return grouped


def val_curves(results: list[MemberResult]) -> np.ndarray:
    return np.array([[m.val_metric for m in r.history] for r in results])


def test_the_full_default_run_is_seed_000s(seed000: dict[str, list[MemberResult]]) -> None:
    for results in seed000.values():
        for r in results:
            assert r.status == "completed" and len(r.history) == 200


def test_a_tiny_rate_learns_nothing(seed000: dict[str, list[MemberResult]]) -> None:
    for r in seed000["lr=1e-7"]:
        accuracy = [m.val_metric for m in r.history]
        assert max(accuracy) - min(accuracy) < 0.03  # never moves
        assert accuracy[-1] < 0.5  # and stays far from what the problem allows (0.84)


def test_rate_0_1_learns_the_problem_near_bayes_optimal(seed000: dict[str, list[MemberResult]]) -> None:
    final = val_curves(seed000["lr=0.1"])[:, -1]
    assert 0.80 <= final.mean() <= 0.845  # Bayes-optimal on this split is 0.840
    assert final.min() >= 0.78


def test_rate_1_is_worse_than_0_1(seed000: dict[str, list[MemberResult]]) -> None:
    def final(name: str) -> float:
        return float(val_curves(seed000[name])[:, -1].mean())

    assert final("lr=1.0") < final("lr=0.1") - 0.03


def test_momentum_0_9_is_near_0_8_by_epoch_50_while_none_lags(seed000: dict[str, list[MemberResult]]) -> None:
    with_momentum, without = val_curves(seed000["momentum=0.9"]), val_curves(seed000["momentum=0"])
    assert with_momentum[:, 49].mean() >= 0.79
    assert with_momentum[:, 19].mean() > without[:, 19].mean() + 0.05

    def first_reaching(curves: np.ndarray, level: float) -> float:
        return float(np.mean([np.argmax(c >= level) if (c >= level).any() else len(c) for c in curves]))

    assert first_reaching(with_momentum, 0.78) * 2 < first_reaching(without, 0.78)


def test_plateau_patience_2_cuts_the_rate_tenfold_within_30_epochs(seed000: dict[str, list[MemberResult]]) -> None:
    for r in seed000["plateau(2)"]:
        assert r.history[29].lr <= 0.01 / 10
    # Patience 15 reduces later and less often: its rate at epoch 30 is still higher.
    for short, long in zip(seed000["plateau(2)"], seed000["plateau(15)"], strict=True):
        assert long.history[29].lr > short.history[29].lr


def test_plateau_patience_2_converges_prematurely(seed000: dict[str, list[MemberResult]]) -> None:
    # Seed 000: patience 2 and 5 stall around 65-75% training accuracy; 10 and 15 do better.
    short = np.array([r.history[-1].train_metric for r in seed000["plateau(2)"]])
    long = np.array([r.history[-1].train_metric for r in seed000["plateau(15)"]])
    assert short.mean() < 0.78 and long.mean() > short.mean()


def test_lenet_learns_real_fashion_mnist(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    problem = load_problem("fashion_mnist", device=torch.device("cpu"), data_dir=REAL_FASHION_MNIST)
    (result,) = train_population(problem, [TrainConfig(lr=0.1, momentum=0.9)], epochs=1)
    assert result.status == "completed"
    assert result.val_metric is not None and result.val_metric > 0.75
    assert result.test_metric is not None and result.test_metric > 0.75


def test_the_d2l_trainer_is_d2ls_setup(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    problem = load_problem("fashion_mnist_d2l", device=torch.device("cpu"), data_dir=REAL_FASHION_MNIST)
    assert float(problem.dataset.train.x.min()) == 0.0 and float(problem.dataset.train.x.max()) == 1.0
    assert problem.model.factory is lenet_d2l and not problem.restore_best
    assert (problem.batch_size, problem.epochs) == (256, 30)


def test_unknown_trainer() -> None:
    with pytest.raises(ConfigError, match="unknown trainer 'mnist'; choose from blobs, fashion_mnist"):
        load_problem("mnist", device=torch.device("cpu"))
