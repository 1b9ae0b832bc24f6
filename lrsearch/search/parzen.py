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

The numerical parameters are held as one array, a row per parameter and a column per kernel, and computed
together: a sampler asks with a few parameters and a thousand kernels, where the cost of a numpy call, not
its arithmetic, is what an ask spends.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import cast

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
    column: int  # the parameter's position in the search space
    weights: np.ndarray  # [kernels, choices]

    @functools.cached_property
    def log_weights_by_choice(self) -> np.ndarray:
        """[choices, kernels]: the log of each kernel's weight on each choice (a weight of 0: -inf)."""
        with np.errstate(divide="ignore"):
            return np.log(self.weights.T)


@dataclasses.dataclass(frozen=True)
class _Numerical:
    """The numerical parameters' kernels, a row per parameter, on the scale TPE works in (log for a log
    parameter)."""

    columns: np.ndarray  # [parameters]: their positions in the search space
    mu: np.ndarray  # [parameters, kernels]
    sigma: np.ndarray
    low: np.ndarray  # [parameters]: the bounds of that scale (a stepped parameter's widened by half a step)
    high: np.ndarray
    step: np.ndarray  # 0: continuous
    is_log: np.ndarray
    external_low: np.ndarray  # the distributions' own bounds, which a stepped value is rounded within
    external_high: np.ndarray
    log_mass: np.ndarray  # [parameters, kernels]: each kernel's probability mass inside the bounds, as a log

    @functools.cached_property
    def continuous(self) -> np.ndarray:
        return self.step == 0


class _Bins:
    """A stepped parameter's kernels as the distinct (mu, sigma) pairs they are (values are on the steps, and
    so are the observations the kernels sit on), and each pair's log mass on the bin of each value asked
    for (half a step each side), computed once per value: an estimator is asked for the same few values
    again and again."""

    def __init__(self, kernels: _Numerical, row: int, reusing: _Bins | None) -> None:
        self.column = int(kernels.columns[row])  # the parameter's position in the search space
        mu, sigma = kernels.mu[row], kernels.sigma[row]
        order = np.lexsort((sigma, mu))
        mu, sigma = mu[order], sigma[order]
        first = np.ones(len(mu), dtype=bool)
        first[1:] = (mu[1:] != mu[:-1]) | (sigma[1:] != sigma[:-1])
        self.which = np.empty(len(mu), dtype=np.int64)  # each kernel's pair
        self.which[order] = np.cumsum(first) - 1
        self.mu, self.sigma = mu[first], sigma[first]
        self.half, self.is_log = kernels.step[row] / 2, bool(kernels.is_log[row])
        # The pairs' masses by value, shared with the bins reused where the pairs are the same.
        self.masses: dict[float, np.ndarray] = (
            reusing.masses
            if reusing is not None and np.array_equal(reusing.mu, self.mu) and np.array_equal(reusing.sigma, self.sigma)
            else {}
        )

    def log_mass(self, x: np.ndarray) -> np.ndarray:
        """[samples, kernels]: each kernel's log mass on the bin of each sample's value (``x``: [samples,
        parameters]), not yet divided by its mass inside the bounds (``ParzenEstimator._log_scale`` does)."""
        values = x[:, self.column].tolist()
        missing = [v for v in dict.fromkeys(values) if v not in self.masses]
        if missing:
            at = np.array(missing)[:, np.newaxis]
            left, right = at - self.half, at + self.half
            if self.is_log:
                left, right = np.log(left), np.log(right)
            self.masses.update(
                zip(missing, log_gauss_mass((left - self.mu) / self.sigma, (right - self.mu) / self.sigma))
            )
        return np.array([self.masses[v] for v in values])[:, self.which]


class ParzenEstimator:
    """The mixture for ``observations`` ([observations, parameters]: internal representations in the order of
    ``search_space``, oldest first)."""

    def __init__(
        self,
        observations: np.ndarray,
        search_space: dict[str, BaseDistribution],
        *,
        prior_weight: float = 1.0,
        consider_magic_clip: bool = True,
        consider_endpoints: bool = False,
        reusing: ParzenEstimator | None = None,
    ) -> None:
        """``reusing``: an estimator of the same space (TPE's ``g`` at the ask before) whose computed masses are
        taken where a kernel is the same: between two asks ``g`` gains one trial, which changes the bandwidths
        of its neighbours only."""
        self.search_space = search_space
        observations = np.asarray(observations, dtype=float).reshape(-1, len(search_space))
        n = len(observations)
        weights = np.append(default_weights(n), prior_weight) if n else np.ones(1)
        self.weights = weights / weights.sum()
        distributions = list(search_space.values())
        self.categorical = [
            _categorical(i, observations[:, i], d, prior_weight)
            for i, d in enumerate(distributions)
            if isinstance(d, CategoricalDistribution)
        ]
        numerical = [i for i, d in enumerate(distributions) if not isinstance(d, CategoricalDistribution)]
        before = reusing if reusing is not None and reusing.search_space == search_space else None
        self.numerical = (
            _numerical(
                numerical,
                observations[:, numerical],
                cast(list[FloatDistribution | IntDistribution], [distributions[i] for i in numerical]),
                consider_magic_clip,
                consider_endpoints,
                before.numerical if before is not None else None,
            )
            if numerical
            else None
        )
        # The stepped parameters' bins, in the order of the space's parameters (the same as ``before``'s).
        self._bins: list[_Bins] = []
        if self.numerical is not None:
            for i, row in enumerate(np.flatnonzero(~self.numerical.continuous)):
                self._bins.append(_Bins(self.numerical, int(row), before._bins[i] if before is not None else None))

    def sample(self, rng: np.random.RandomState, size: int) -> np.ndarray:
        """``size`` draws ([draws, parameters], internal representations)."""
        # RandomState.choice(len(weights), p=weights, size=size), as Optuna draws, without checking and summing
        # the weights at every ask (the legacy generator's streams are frozen: the same draws).
        active = self._cumulative.searchsorted(rng.random_sample(size), side="right")
        drawn = np.empty((size, len(self.search_space)))
        for kernel in self.categorical:
            quantile = rng.rand(size)
            cumulative = np.cumsum(kernel.weights[active], axis=-1)
            cumulative[:, -1] = 1  # against rounding
            drawn[:, kernel.column] = np.sum(cumulative < quantile[:, np.newaxis], axis=-1)
        kernels = self.numerical
        if kernels is not None:
            mu, sigma = kernels.mu[:, active], kernels.sigma[:, active]
            low, high = kernels.low[:, np.newaxis], kernels.high[:, np.newaxis]
            quantiles = rng.uniform(low=0, high=1, size=mu.shape)
            a, b = (low - mu) / sigma, (high - mu) / sigma
            values = truncnorm_ppf(quantiles, a, b, kernels.log_mass[:, active]) * sigma + mu
            values[kernels.is_log] = np.exp(values[kernels.is_log])
            stepped = ~kernels.continuous
            if stepped.any():
                low, high = kernels.external_low[stepped, np.newaxis], kernels.external_high[stepped, np.newaxis]
                step = kernels.step[stepped, np.newaxis]
                values[stepped] = np.clip(low + np.round((values[stepped] - low) / step) * step, low, high)
            drawn[:, kernels.columns] = values.T
        return drawn

    @functools.cached_property
    def _cumulative(self) -> np.ndarray:
        cumulative = self.weights.cumsum()
        return cumulative / cumulative[-1]

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """The mixture's log density at each sample ([samples, parameters], internal representations)."""
        with np.errstate(divide="ignore"):  # a weight of zero (no prior) is a log density of -inf
            per_kernel = self._normal_exponents(x)
            for kernel in self.categorical:
                per_kernel += kernel.log_weights_by_choice[x[:, kernel.column].astype(np.int64)]
            for bins in self._bins:
                per_kernel += bins.log_mass(x)
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
        if self._expanded is None:
            return out
        columns, is_log, low, high, squared, linear, constant = self._expanded
        v = x[:, columns]
        v[:, is_log] = np.log(v[:, is_log])
        np.matmul(v * v, squared, out=out)
        out += v @ linear
        out += constant
        out *= -0.5
        out[((v < low) | (v > high)).any(axis=1)] = -np.inf
        return out

    @functools.cached_property
    def _expanded(self) -> tuple[np.ndarray, ...] | None:
        """((v - mu) / sigma)^2 = v^2 / sigma^2 - 2 v mu / sigma^2 + mu^2 / sigma^2, by kernel: the
        continuous parameters' [parameters, kernels] coefficients of v^2 and v, and the constant summed
        (with their columns, which are on the log scale, and their bounds)."""
        kernels = self.numerical
        if kernels is None or not kernels.continuous.any():
            return None
        continuous = kernels.continuous
        mu = kernels.mu[continuous]
        inverse = 1.0 / (kernels.sigma[continuous] * kernels.sigma[continuous])
        return (
            kernels.columns[continuous],
            kernels.is_log[continuous],
            kernels.low[continuous],
            kernels.high[continuous],
            inverse,
            -2.0 * mu * inverse,
            (mu * mu * inverse).sum(axis=0),
        )

    @functools.cached_property
    def _log_scale(self) -> np.ndarray:
        """Per kernel: its log weight, less the log normalisers of its numerical parameters' truncated normals
        (a continuous one's sqrt(2 pi), bandwidth and mass inside the bounds; a stepped one's mass inside
        the bounds, which its bins' masses are divided by)."""
        scale = np.log(self.weights)
        kernels = self.numerical
        if kernels is None:
            return scale
        normalisers = kernels.log_mass.copy()
        normalisers[kernels.continuous] += _LOG_SQRT_2PI + np.log(kernels.sigma[kernels.continuous])
        return scale - normalisers.sum(axis=0)


def _exp(x: np.ndarray) -> np.ndarray:
    """``np.exp(x)``, to the bit, with the exponents below -746 (whose exp is 0) left out: most of a sample's
    kernels lie far from it, and numpy's exp takes seven times as long on an exponent it underflows."""
    flat = x.ravel()
    kept = np.flatnonzero(flat > -746.0)
    out = np.zeros(x.shape)
    out.ravel()[kept] = np.exp(flat[kept])
    return out


def _categorical(
    column: int, observed: np.ndarray, distribution: CategoricalDistribution, prior_weight: float
) -> _Categorical:
    choices = len(distribution.choices)
    if len(observed) == 0:
        return _Categorical(column, np.full((1, choices), 1.0 / choices))
    kernels = len(observed) + 1
    weights = np.full((kernels, choices), prior_weight / kernels)
    weights[np.arange(len(observed)), observed.astype(int)] += 1
    sums = weights.sum(axis=1, keepdims=True)
    return _Categorical(column, weights / np.where(sums == 0, 1, sums))


def _numerical(
    columns: list[int],
    observed: np.ndarray,
    distributions: list[FloatDistribution | IntDistribution],
    consider_magic_clip: bool,
    consider_endpoints: bool,
    previous: _Numerical | None,
) -> _Numerical:
    """The kernels of the numerical parameters ``distributions``, observed as ``observed`` ([observations,
    parameters]); their masses taken from ``previous`` (the same parameters' kernels) where it has the
    same kernel at the same place."""
    assert all(isinstance(d, (FloatDistribution, IntDistribution)) for d in distributions)
    step = np.array([float(d.step or 0.0) for d in distributions])
    is_log = np.array([d.log for d in distributions])
    external_low = np.array([float(d.low) for d in distributions])
    external_high = np.array([float(d.high) for d in distributions])
    low, high = external_low - step / 2, external_high + step / 2
    observed = observed.T.copy()  # a row per parameter
    observed[is_log] = np.log(observed[is_log])
    low[is_log], high[is_log] = np.log(low[is_log]), np.log(high[is_log])
    n = observed.shape[1]
    order = np.argsort(observed, axis=1)
    with_ends = np.concatenate([low[:, None], np.take_along_axis(observed, order, axis=1), high[:, None]], axis=1)
    gaps = np.diff(with_ends, axis=1)
    sigmas = np.maximum(gaps[:, :-1], gaps[:, 1:])
    if not consider_endpoints and n >= 2:
        sigmas[:, 0] = gaps[:, 1]
        sigmas[:, -1] = gaps[:, -2]
    unsorted = np.empty_like(sigmas)
    np.put_along_axis(unsorted, order, sigmas, axis=1)  # back in the observations' order
    span = high - low
    floor = span / min(100.0, n + 2.0) if consider_magic_clip else np.full(len(span), 1e-12)
    sigmas = np.clip(unsorted, floor[:, None], span[:, None])
    mu = np.concatenate([observed, (0.5 * (low + high))[:, None]], axis=1)
    sigma = np.concatenate([sigmas, span[:, None]], axis=1)
    return _Numerical(
        columns=np.asarray(columns, dtype=np.int64),
        mu=mu,
        sigma=sigma,
        log_mass=_log_masses(low, high, mu, sigma, previous),
        low=low,
        high=high,
        step=step,
        is_log=is_log,
        external_low=external_low,
        external_high=external_high,
    )


def _log_masses(
    low: np.ndarray, high: np.ndarray, mu: np.ndarray, sigma: np.ndarray, previous: _Numerical | None
) -> np.ndarray:
    """[parameters, kernels]: each kernel's log mass inside the bounds; ``previous``'s (the same parameters'
    kernels) where it has the same kernel (mu and sigma) at the same place (log_gauss_mass is computed element
    by element: the same inputs give the same bits)."""
    a, b = (low[:, None] - mu) / sigma, (high[:, None] - mu) / sigma
    if previous is None:
        return log_gauss_mass(a, b)
    shared = min(previous.mu.shape[1], mu.shape[1])
    computed = np.ones(mu.shape, dtype=bool)
    computed[:, :shared] = (mu[:, :shared] != previous.mu[:, :shared]) | (
        sigma[:, :shared] != previous.sigma[:, :shared]
    )
    out = np.empty(mu.shape)
    out[:, :shared] = previous.log_mass[:, :shared]
    out[computed] = log_gauss_mass(a[computed], b[computed])
    return out


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


def truncnorm_ppf(q: np.ndarray, a: np.ndarray, b: np.ndarray, log_mass: np.ndarray) -> np.ndarray:
    """The standard normal truncated to [a, b]: the point below which its mass is ``q`` (``log_mass``:
    log_gauss_mass(a, b), which the kernels hold)."""
    q, a, b, log_mass = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q, a, b, log_mass)))
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
