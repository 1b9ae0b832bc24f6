"""Seeds 002 and 004 as plug-ins: installed under their entry points, and their claims on their toy problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lrsearch
from lrsearch.engine.plugins import available, resolve


@pytest.mark.parametrize("name", ["seed004_identity", "seed004_affine", "seed002_identity"])
def test_each_seed_problem_is_an_installed_trainer(name: str) -> None:
    trainer = resolve(name)
    assert trainer.problem is not None and not trainer.maximize and trainer.metric == "loss"
    assert dict(available())[name].startswith("Seed 00")


def test_seed004_sgd_rates_random_walk_oscillate_or_creep() -> None:
    """0.1 random-walks (no better than it started), 0.001 converges then oscillates, 0.0001 is slow but
    tight: after 100 epochs the smallest rate is the closest, and 0.001's loss still jumps between epochs."""
    problem = resolve("seed004_identity").problem
    runs = {
        lr: lrsearch.train(problem, lr=lr, progress=False).history["val_loss"].to_numpy() for lr in (0.1, 1e-3, 1e-4)
    }
    assert runs[0.1][-20:].min() > 10  # MAE of tens on targets 80..99: nothing learned
    assert runs[1e-4][-1] < runs[1e-3][-1] < runs[0.1][-1]
    assert np.abs(np.diff(runs[1e-3][-20:])).max() > np.abs(np.diff(runs[1e-4][-20:])).max()


def test_seed002_exponential_decay_with_adam_prints_tensorflow_s_rates() -> None:
    """Seed 002's recommended code: Adam at 0.01, exponential decay 0.9 every 10 steps, ten full-batch steps;
    its printed rates after each step, and the weight moving from 0 towards 1."""
    result = lrsearch.train(
        "seed002_identity",
        lr=0.01,
        optimizer="adam",
        schedule="exponential",
        schedule_params={"decay_rate": 0.9, "decay_steps": 10},
        schedule_unit="update",
        progress=False,
    )
    printed = [
        0.009895192,
        0.009791483,
        0.009688861,
        0.009587315,
        0.009486833,
        0.009387404,
        0.009289017,
        0.00919166,
        0.009095325,
        0.009,
    ]
    # The history's lr is the rate of each epoch's (here: the only) update, one step before TensorFlow's print.
    np.testing.assert_allclose(result.history["lr"].to_numpy()[1:], printed[:-1], rtol=1e-6)
    losses = result.history["val_loss"].to_numpy()
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    ("study", "worst", "rest_below"),
    [
        ("seed004_sgd_rates", 0.1, 10.0),  # 0.1 random-walks; 0.001 and 0.0001 learn (their order varies by draw)
        ("seed004_optimizers", "adam", 5.0),  # Adam's default rate is still far off after 200 epochs
    ],
)
def test_the_bundled_seed_studies_rank_as_the_seed_says(
    tmp_path: Path, study: str, worst: object, rest_below: float
) -> None:
    report = lrsearch.run(study, storage=f"sqlite:///{tmp_path / 's.db'}", progress=False)
    assert report is not None and not report.summary.maximize
    means = {g.value: g.repeats.mean for g in report.summary.groups if g.repeats}
    assert max(means, key=means.get) == worst
    assert all(mean < rest_below for value, mean in means.items() if value != worst)
    # Every trial keeps its learned weight per epoch, as the seed plots it.
    for trial in report.study.trials:
        assert len(trial.user_attrs["weight_history"]) == trial.user_attrs["epochs"]


def test_seed004_sgd_with_momentum_finds_the_weight_and_the_bias_lags() -> None:
    """The seed: SGD with momentum learned W = 2.071 and b = 0.23 in 200 epochs (the target is 2x + 5)."""
    history = lrsearch.train("seed004_affine", lr=1e-4, momentum=0.9, progress=False).history
    assert list(history.columns[-2:]) == ["weight", "bias"]
    assert abs(history["weight"].iloc[-1] - 2) < 0.15 and history["bias"].iloc[-1] < 1
