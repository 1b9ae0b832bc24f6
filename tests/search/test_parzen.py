from __future__ import annotations

import numpy as np
import pytest
from optuna.distributions import FloatDistribution

from lrsearch.search import parzen


@pytest.mark.parametrize(
    "values",
    [
        np.array([[0.0, -1.0, -745.0, -745.2, -746.0, -800.0, -np.inf]]),
        np.linspace(-760.0, 0.0, 24 * 900).reshape(24, 900),  # underflowing, subnormal and ordinary exponents
        np.empty((0, 5)),
    ],
    ids=["edges", "a-sweep", "empty"],
)
def test_exp_is_numpys_to_the_bit(values: np.ndarray) -> None:
    ours, theirs = parzen._exp(values), np.exp(values)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours.view(np.int64), theirs.view(np.int64))


def test_a_densitys_far_kernels_count_for_nothing() -> None:
    space = {"x": FloatDistribution(0.0, 1.0)}
    estimator = parzen.ParzenEstimator({"x": np.array([0.01, 0.02, 0.99])}, space, consider_magic_clip=False)
    near, far = estimator.log_pdf({"x": np.array([0.015, 0.5])})
    assert np.isfinite(near) and np.isfinite(far) and near > far
