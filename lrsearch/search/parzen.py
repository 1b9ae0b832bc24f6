"""The Parzen estimator TPE samples from and compares with: a mixture of one kernel per observed trial and a
prior, each kernel a product over the parameters of a truncated normal (on the log scale for a log
parameter; a bin of it for a stepped one) or a categorical weighting.

The rules are Optuna's (``optuna.samplers.TPESampler``, 5.0, its defaults): the bandwidth of a kernel is
the larger gap to its neighbours (the endpoints not counted), clipped to [range / min(100, kernels + 1),
range]; the prior is one more kernel, centred with the whole range as bandwidth and ``prior_weight`` as
weight; a categorical kernel puts 1 on its choice plus ``prior_weight / kernels`` on each; older trials
weigh less past the 25 newest. The random stream is used in Optuna's order (the kernels, then each
categorical parameter, then the numerical ones together), so that a sampler seeded alike suggests the
same values. The truncated normal is computed with SciPy's ``special`` functions (Optuna carries its own
port of them), which agree to float precision.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from scipy import special

__all__ = ["ParzenEstimator", "default_weights"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def default_weights(n: int) -> np.ndarray:
    """The observations' weights, oldest first: equal for the 25 newest, a ramp down to 1/n before them."""
    if n < 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, num=n - 25), np.ones(25)])


@dataclasses.dataclass(frozen=True)
class _Categorical:
    weights: np.ndarray  # [kernels, choices]

    @functools.cached_property
    def log_weights_by_choice(self) -> np.ndarray:
        """[choices, kernels]: the log of each kernel's weight on each choice (a weight of 0: -inf)."""
        with np.errstate(divide="ignore"):
            return np.log(self.weights.T)


@dataclasses.dataclass(frozen=True)
class _Numerical:
    """One parameter's kernels, on the scale TPE works in (log for a log parameter)."""

    mu: np.ndarray  # [kernels]
    sigma: np.ndarray
    low: float  # the bounds of that scale (a stepped parameter's widened by half a step)
    high: float
    step: float  # 0: continuous
    is_log: bool
    external_low: float  # the distribution's own bounds, which a stepped value is rounded within
    external_high: float

    @functools.cached_property
    def log_mass(self) -> np.ndarray:
        """Each kernel's probability mass inside the bounds (its truncation), as a log."""
        return log_gauss_mass((self.low - self.mu) / self.sigma, (self.high - self.mu) / self.sigma)


class ParzenEstimator:
    """The mixture for ``observations`` (internal representations, one array per parameter of
    ``search_space``, a trial per position, oldest first)."""

    def __init__(
        self,
        observations: dict[str, np.ndarray],
        search_space: dict[str, BaseDistribution],
        *,
        prior_weight: float = 1.0,
        consider_magic_clip: bool = True,
        consider_endpoints: bool = False,
    ) -> None:
        self.search_space = search_space
        n = len(next(iter(observations.values()))) if observations else 0
        weights = np.append(default_weights(n), prior_weight) if n else np.ones(1)
        self.weights = weights / weights.sum()
        self.kernels = [
            _categorical(observations[name], d, prior_weight)
            if isinstance(d, CategoricalDistribution)
            else _numerical(np.asarray(observations[name], dtype=float), d, consider_magic_clip, consider_endpoints)
            for name, d in search_space.items()
        ]

    def sample(self, rng: np.random.RandomState, size: int) -> dict[str, np.ndarray]:
        """``size`` draws, internal representations by parameter."""
        # RandomState.choice(len(weights), p=weights, size=size), as Optuna draws, without checking and summing
        # the weights at every ask (the legacy generator's streams are frozen: the same draws).
        active = self._cumulative.searchsorted(rng.random_sample(size), side="right")
        drawn = np.empty((size, len(self.kernels)))
        numerical = [(i, k) for i, k in enumerate(self.kernels) if isinstance(k, _Numerical)]
        for i, kernel in enumerate(self.kernels):
            if isinstance(kernel, _Categorical):
                quantile = rng.rand(size)
                cumulative = np.cumsum(kernel.weights[active], axis=-1)
                cumulative[:, -1] = 1  # against rounding
                drawn[:, i] = np.sum(cumulative < quantile[:, np.newaxis], axis=-1)
        if numerical:
            mu = np.asarray([k.mu[active] for _, k in numerical])
            sigma = np.asarray([k.sigma[active] for _, k in numerical])
            low = np.asarray([[k.low] for _, k in numerical])
            high = np.asarray([[k.high] for _, k in numerical])
            quantiles = rng.uniform(low=0, high=1, size=mu.shape)
            values = truncnorm_ppf(quantiles, (low - mu) / sigma, (high - mu) / sigma) * sigma + mu
            for row, (i, kernel) in enumerate(numerical):
                value = np.exp(values[row]) if kernel.is_log else values[row]
                if kernel.step:
                    low_, high_, step = kernel.external_low, kernel.external_high, kernel.step
                    value = np.clip(low_ + np.round((value - low_) / step) * step, low_, high_)
                drawn[:, i] = value
        return {name: drawn[:, i] for i, name in enumerate(self.search_space)}

    @functools.cached_property
    def _cumulative(self) -> np.ndarray:
        cumulative = self.weights.cumsum()
        return cumulative / cumulative[-1]

    def log_pdf(self, samples: dict[str, np.ndarray]) -> np.ndarray:
        """The mixture's log density at each sample (internal representations by parameter)."""
        x = np.asarray([samples[name] for name in self.search_space], dtype=float).T
        with np.errstate(divide="ignore"):  # a weight of zero (no prior) is a log density of -inf
            per_kernel = self._normal_exponents(x)
            for i, kernel in enumerate(self.kernels):
                if isinstance(kernel, _Categorical):
                    per_kernel += kernel.log_weights_by_choice[x[:, i].astype(np.int64)]
                elif kernel.step:
                    per_kernel += _log_bin_mass(x[:, i], kernel)
            per_kernel += self._log_scale
            top = per_kernel.max(axis=1)
            top[np.isneginf(top)] = 0  # no (-inf) - (-inf) where every kernel gives zero
            per_kernel -= top[:, np.newaxis]
            return np.log(_exp(per_kernel).sum(axis=1)) + top

    def _normal_exponents(self, x: np.ndarray) -> np.ndarray:
        """[samples, kernels]: the exponent of each kernel's normal density over the continuous parameters,
        -(1/2) sum ((v - mu) / sigma)^2, as two matrix products (the square expanded: a kernel's terms are
        computed once, and the thousand-kernel matrix is passed over twice instead of four times a
        parameter); -inf for a sample outside a parameter's bounds."""
        out = np.zeros((len(x), len(self.weights)))
        if not self._continuous:
            return out
        v = np.stack([np.log(x[:, i]) if k.is_log else x[:, i] for i, k in self._continuous], axis=1)
        squared, linear, constant = self._expanded
        np.matmul(v * v, squared, out=out)
        out += v @ linear
        out += constant
        out *= -0.5
        low = np.array([k.low for _, k in self._continuous])
        high = np.array([k.high for _, k in self._continuous])
        out[((v < low) | (v > high)).any(axis=1)] = -np.inf
        return out

    @functools.cached_property
    def _continuous(self) -> list[tuple[int, _Numerical]]:
        return [(i, k) for i, k in enumerate(self.kernels) if isinstance(k, _Numerical) and not k.step]

    @functools.cached_property
    def _expanded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """((v - mu) / sigma)^2 = v^2 / sigma^2 - 2 v mu / sigma^2 + mu^2 / sigma^2, by kernel: the
        continuous parameters' [parameters, kernels] coefficients of v^2 and v, and the constant summed."""
        inverse = np.array([1.0 / (k.sigma * k.sigma) for _, k in self._continuous])
        mu = np.array([k.mu for _, k in self._continuous])
        return inverse, -2.0 * mu * inverse, (mu * mu * inverse).sum(axis=0)

    @functools.cached_property
    def _log_scale(self) -> np.ndarray:
        """Per kernel: its log weight, less the log normalisers of its numerical parameters' truncated normals
        (a continuous one's sqrt(2 pi), bandwidth and mass inside the bounds; a stepped one's mass inside
        the bounds, which its bins' masses are divided by)."""
        scale = np.log(self.weights)
        for kernel in self.kernels:
            if isinstance(kernel, _Numerical):
                if kernel.step:
                    scale = scale - kernel.log_mass
                else:
                    scale = scale - (_LOG_SQRT_2PI + np.log(kernel.sigma) + kernel.log_mass)
        return scale


def _exp(x: np.ndarray) -> np.ndarray:
    """``np.exp(x)``, to the bit, with the exponents below -746 (whose exp is 0) left out: most of a sample's
    kernels lie far from it, and numpy's exp takes seven times as long on an exponent it underflows."""
    flat = x.ravel()
    kept = np.flatnonzero(flat > -746.0)
    out = np.zeros(x.shape)
    out.ravel()[kept] = np.exp(flat[kept])
    return out


def _categorical(observed: np.ndarray, distribution: CategoricalDistribution, prior_weight: float) -> _Categorical:
    choices = len(distribution.choices)
    if len(observed) == 0:
        return _Categorical(np.full((1, choices), 1.0 / choices))
    kernels = len(observed) + 1
    weights = np.full((kernels, choices), prior_weight / kernels)
    weights[np.arange(len(observed)), np.asarray(observed).astype(int)] += 1
    sums = weights.sum(axis=1, keepdims=True)
    return _Categorical(weights / np.where(sums == 0, 1, sums))


def _numerical(
    observed: np.ndarray,
    distribution: BaseDistribution,
    consider_magic_clip: bool,
    consider_endpoints: bool,
) -> _Numerical:
    assert isinstance(distribution, (FloatDistribution, IntDistribution))
    step = float(distribution.step or 0.0)
    low, high = distribution.low - step / 2, distribution.high + step / 2
    if distribution.log:
        observed, low, high = np.log(observed), math.log(low), math.log(high)
    order = np.argsort(observed)
    with_ends = np.concatenate([[low], observed[order], [high]])
    sigmas = np.maximum(with_ends[1:-1] - with_ends[:-2], with_ends[2:] - with_ends[1:-1])
    if not consider_endpoints and len(with_ends) >= 4:
        sigmas[0] = with_ends[2] - with_ends[1]
        sigmas[-1] = with_ends[-2] - with_ends[-3]
    unsorted = np.empty_like(sigmas)
    unsorted[order] = sigmas  # back in the observations' order
    sigmas = unsorted
    floor = (high - low) / min(100.0, len(observed) + 2.0) if consider_magic_clip else 1e-12
    sigmas = np.clip(sigmas, floor, high - low)
    return _Numerical(
        mu=np.append(observed, 0.5 * (low + high)),
        sigma=np.append(sigmas, high - low),
        low=low,
        high=high,
        step=step,
        is_log=distribution.log,
        external_low=float(distribution.low),
        external_high=float(distribution.high),
    )


def _log_bin_mass(x: np.ndarray, kernel: _Numerical) -> np.ndarray:
    """[samples, kernels]: each kernel's log mass on each sample's bin (a stepped value, half a step each
    side), not yet divided by its mass inside the bounds (``ParzenEstimator._log_scale`` does); computed
    once per distinct value and distinct kernel (both repeat: values are on the steps, and so are the
    observations the kernels sit on)."""
    values, at = np.unique(x, return_inverse=True)
    order = np.lexsort((kernel.sigma, kernel.mu))
    mu, sigma = kernel.mu[order], kernel.sigma[order]
    first = np.ones(len(mu), dtype=bool)
    first[1:] = (mu[1:] != mu[:-1]) | (sigma[1:] != sigma[:-1])
    which = np.empty(len(mu), dtype=np.int64)
    which[order] = np.cumsum(first) - 1
    mu, sigma = mu[first], sigma[first]
    half = kernel.step / 2
    left, right = values[:, np.newaxis] - half, values[:, np.newaxis] + half
    if kernel.is_log:
        left, right = np.log(left), np.log(right)
    inside = log_gauss_mass((left - mu) / sigma, (right - mu) / sigma)
    return inside[at.ravel()][:, which]  # rows, then columns: a third of np.ix_'s time


def log_gauss_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)), computed in the left tail (where it is accurate) by symmetry: an interval right
    of 0 is mirrored to the left of it; one around 0 is 1 minus both tails. Each element is computed by its
    own branch alone (most of a Parzen estimator's kernels lie around 0: the tails' logs are the costly part)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    mirrored = a > 0
    if not mirrored.any() and (b > 0).all():
        # Every interval around 0: a kernel's own truncation always is (it sits inside the bounds).
        return np.log1p(-special.ndtr(a) - special.ndtr(-b))
    low, high = np.where(mirrored, -b, a), np.where(mirrored, -a, b)
    in_tail = high <= 0
    out = np.empty(a.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        if in_tail.any():
            out[in_tail] = _log_diff(special.log_ndtr(high[in_tail]), special.log_ndtr(low[in_tail]))
        around = ~in_tail
        if around.any():
            out[around] = np.log1p(-special.ndtr(a[around]) - special.ndtr(-b[around]))
    return out


def _log_diff(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    return log_p + np.log1p(-np.exp(log_q - log_p))


def truncnorm_ppf(q: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The standard normal truncated to [a, b]: the point below which its mass is ``q``."""
    q, a, b = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q, a, b)))
    log_mass = log_gauss_mass(a, b)
    out = np.empty(q.shape)
    left = a < 0
    right = ~left
    with np.errstate(divide="ignore"):
        if left.any():
            out[left] = special.ndtri_exp(np.logaddexp(special.log_ndtr(a[left]), np.log(q[left]) + log_mass[left]))
        if right.any():
            out[right] = -special.ndtri_exp(
                np.logaddexp(special.log_ndtr(-b[right]), np.log1p(-q[right]) + log_mass[right])
            )
    out[q == 0] = a[q == 0]
    out[q == 1] = b[q == 1]
    out[a == b] = np.nan
    return out
