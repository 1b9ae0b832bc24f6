from __future__ import annotations

import numpy as np
import pytest
import torch

from lrsearch.engine import Problem, load_problem, train_population
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.lr_find import lr_range_test
from lrsearch.errors import ConfigError


@pytest.fixture(scope="module")
def blobs() -> Problem:
    return load_problem("blobs", device=torch.device("cpu"))


def test_the_ramp_finds_a_rate_that_trains(blobs: Problem) -> None:
    test = lr_range_test(blobs, TrainConfig(), start=1e-6, end=10.0, updates=200, seeds=4)
    assert np.all(np.diff(np.log(test.rates)) > 0) and len(test.losses) == len(test.rates)
    assert test.diverged  # rate 10 blows SGD up on blobs well before the end
    assert test.low < test.suggested < test.high == test.lr_at_minimum
    assert 1e-4 < test.suggested < 0.1  # seed 000: 1e-3 to 0.1 learn, 1 oscillates, 1e-6 learns nothing
    # The suggestion trains: 50 epochs at it beat 50 epochs at the start of the sweep.
    good, poor = train_population(blobs, [TrainConfig(lr=test.suggested), TrainConfig(lr=1e-6)], epochs=50)
    assert good.val_metric > poor.val_metric + 0.1


def test_momentum_lowers_the_suggestion(blobs: Problem) -> None:
    plain = lr_range_test(blobs, TrainConfig(), updates=200, seeds=4)
    heavy = lr_range_test(blobs, TrainConfig(momentum=0.9), updates=200, seeds=4)
    assert heavy.suggested < plain.suggested / 3  # momentum 0.9 multiplies the step about tenfold


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"start": 1.0, "end": 0.1}, "start < end"),
        ({"updates": 5}, r"updates must be an integer in \[10, 100000\]"),
        ({"start": 1e3, "end": 1e4}, "diverged within"),
    ],
)
def test_bad_ranges(blobs: Problem, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        lr_range_test(blobs, TrainConfig(), **kwargs)
