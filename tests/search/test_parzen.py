from __future__ import annotations

import numpy as np
import pytest
from optuna.distributions import FloatDistribution
from scipy import special, stats

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


def test_a_density_with_far_kernels_is_the_mixtures_own() -> None:
    # Kernels so narrow that most lie hundreds of bandwidths from a sample (their exponents underflow): the
    # density is still the weighted mixture of truncated normals, computed here kernel by kernel.
    observed = np.linspace(0.0, 1.0, 300)
    space = {"x": FloatDistribution(0.0, 1.0)}
    estimator = parzen.ParzenEstimator({"x": observed}, space, consider_magic_clip=False)
    samples = np.array([0.0, 0.1234, 0.5, 0.999])
    (kernel,) = estimator.kernels
    per_kernel = stats.truncnorm.logpdf(
        samples[:, None],
        (kernel.low - kernel.mu) / kernel.sigma,
        (kernel.high - kernel.mu) / kernel.sigma,
        loc=kernel.mu,
        scale=kernel.sigma,
    )
    expected = special.logsumexp(per_kernel + np.log(estimator.weights), axis=1)
    assert np.allclose(estimator.log_pdf({"x": samples}), expected, rtol=1e-9, atol=0)
