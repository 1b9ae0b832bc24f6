from __future__ import annotations

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
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
    estimator = parzen.ParzenEstimator(observed[:, None], space, consider_magic_clip=False)
    samples = np.array([0.0, 0.1234, 0.5, 0.999])
    kernels = estimator.numerical
    assert kernels is not None
    (mu,), (sigma,), (low,), (high,) = kernels.mu, kernels.sigma, kernels.low, kernels.high
    per_kernel = stats.truncnorm.logpdf(samples[:, None], (low - mu) / sigma, (high - mu) / sigma, loc=mu, scale=sigma)
    expected = special.logsumexp(per_kernel + np.log(estimator.weights), axis=1)
    assert np.allclose(estimator.log_pdf(samples[:, None]), expected, rtol=1e-9, atol=0)


SPACE = {
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "momentum": FloatDistribution(0.0, 0.99),
    "warmup": IntDistribution(0, 20),
    "batch": IntDistribution(16, 256, log=True),
    "schedule": CategoricalDistribution(["constant", "step", "cosine"]),
}


def test_an_estimator_reusing_the_one_before_is_the_same_to_the_bit() -> None:
    # TPE's g, one trial more at each ask: the masses taken from the estimator before (and the bins' masses it
    # computed for its own samples) are what computing them afresh gives.
    rng = np.random.RandomState(0)
    observed = np.column_stack(
        [
            np.exp(rng.uniform(np.log(1e-4), 0.0, 300)),
            rng.uniform(0.0, 0.99, 300),
            rng.randint(0, 21, 300),
            np.round(np.exp(rng.uniform(np.log(16), np.log(256), 300))),
            rng.randint(0, 3, 300),
        ]
    ).astype(float)
    previous = None
    for n in range(0, 300, 7):
        fresh = parzen.ParzenEstimator(observed[:n], SPACE)
        reusing = parzen.ParzenEstimator(observed[:n], SPACE, reusing=previous)
        assert fresh.numerical is not None and reusing.numerical is not None
        assert np.array_equal(fresh.numerical.log_mass.view(np.int64), reusing.numerical.log_mass.view(np.int64))
        for seed in range(2):
            samples = fresh.sample(np.random.RandomState(seed), 24)
            assert np.array_equal(fresh.log_pdf(samples).view(np.int64), reusing.log_pdf(samples).view(np.int64))
        previous = reusing
