from __future__ import annotations

import pytest

from lrsearch.engine.config import TrainConfig
from lrsearch.errors import ConfigError


def test_defaults_are_plain_sgd() -> None:
    config = TrainConfig()
    assert config.optimizer_settings() == {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
    assert config.build_schedule(horizon=10)(9) == pytest.approx(0.01)


def test_weight_decay_none_keeps_the_optimizers_default() -> None:
    assert TrainConfig(optimizer="adamw").optimizer_settings()["weight_decay"] == 0.01
    assert TrainConfig(optimizer="adamw", weight_decay=0.0).optimizer_settings()["weight_decay"] == 0.0


def test_schedule_params_are_normalised() -> None:
    a = TrainConfig(schedule="step", schedule_params={"milestones": [5, 30]})
    b = TrainConfig(schedule="step", schedule_params={"milestones": (5.0, 30)})
    assert a == b and a.schedule_params == {"milestones": (5, 30)}


def test_the_schedule_is_checked_once_the_run_length_is_known() -> None:
    config = TrainConfig(schedule="step", schedule_params={"milestones": [3], "gamma": 0})  # no stand-in run
    with pytest.raises(ConfigError, match=r"gamma must be a number in \(0, 1000\] but got 0.0"):
        config.build_schedule(horizon=10)


@pytest.mark.parametrize(("unit", "horizon"), [("epoch", 5), ("update", 35)])
def test_the_horizon_is_counted_in_the_schedules_unit(unit: str, horizon: int) -> None:
    assert TrainConfig(schedule_unit=unit).horizon(5, updates_per_epoch=7) == horizon


def test_a_missing_total_is_fine_until_the_run_length_is_known() -> None:
    config = TrainConfig(schedule="one_cycle", warmup=2)
    assert config.build_schedule(horizon=20)(2) == pytest.approx(0.01 / 25)
    with pytest.raises(ConfigError, match="must be longer than warmup"):
        config.build_schedule(horizon=2)


def test_to_dict_is_json_ready() -> None:
    out = TrainConfig(schedule="step", schedule_params={"milestones": [3]}, optimizer="adamw").to_dict()
    assert out["schedule_params"] == {"milestones": [3]} and out["weight_decay"] == 0.01


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0}, r"lr must be a number in \(0, 10000\] but got 0"),
        ({"lr": "0.1"}, r"lr must be a number in \(0, 10000\] but got '0.1'"),
        ({"lr": float("nan")}, "lr must be a number"),
        ({"decay": -0.1}, r"decay must be a number in \[0, 1000000\]"),
        ({"schedule_unit": "step"}, "schedule_unit must be 'epoch' or 'update' but got 'step'"),
        ({"seed": 1.5}, r"seed must be an integer in \[0, 4294967295\] but got 1.5"),
        ({"warmup_start": "low"}, "warmup_start must be a number"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"optimizer": "adagrad", "momentum": 0.5}, "adagrad has no parameter 'momentum'"),
        ({"schedule": "cosine", "schedule_params": {"final": 0.1}}, "no parameter 'final'"),
    ],
)
def test_bad_values_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)
