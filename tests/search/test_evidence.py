from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from lrsearch.search.evidence import ALPHA, degenerate, difference, look_level, t_interval, welch


def test_the_interval_is_student_s() -> None:
    values = [0.81, 0.83, 0.80, 0.85]
    interval = t_interval(values)
    assert interval is not None and interval.n == 4
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2
    assert interval.mean == pytest.approx(np.mean(values)) and interval.half_width == pytest.approx(half)
    assert t_interval([0.8]).half_width is None and t_interval([]) is None  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(5))
def test_the_difference_is_welch_s(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.8, 0.02, 5), rng.normal(0.79, 0.05, 7)
    gap = difference(a.tolist(), b.tolist())
    assert gap.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert gap.mean == pytest.approx(a.mean() - b.mean())
    # The interval excludes zero exactly when the test rejects at its level.
    assert (gap.low > 0 or gap.high < 0) == (gap.p < 0.05)
    assert gap.bound == pytest.approx(max(abs(gap.low), abs(gap.high)))


def test_repeats_without_spread_are_degenerate_and_never_significant() -> None:
    chance = [0.1, 0.1, 0.1]  # every run collapsed to chance
    assert degenerate(chance) and not degenerate([0.1, 0.1000001]) and not degenerate([0.1])
    gap = difference([0.85, 0.86, 0.84], chance)
    assert gap.degenerate and math.isnan(gap.p)  # not p = 0, a "significant" win


def _sequential_rejections(true_gap: float, simulations: int, low: int, high: int, seed: int = 0) -> float:
    """The share of simulated sequential studies that decide: two groups, ``low`` repeats each, then one
    more each per look until the difference is significant at the look level or they have ``high``."""
    rng = np.random.default_rng(seed)
    level = look_level(low, high)
    decided = 0
    for _ in range(simulations):
        a, b = rng.normal(true_gap, 1.0, high), rng.normal(0.0, 1.0, high)
        decided += any(difference(a[:n].tolist(), b[:n].tolist()).p < level for n in range(low, high + 1))
    return decided / simulations


def test_the_sequential_rule_keeps_false_positives_at_most_alpha_on_null_data() -> None:
    """No true difference: 4,000 simulated studies of 3 to 10 repeats a group. Each of the 8 looks is
    tested at 0.05 / 8; the share that declares a difference stays under 5% (measured: 2.3%, the
    looks being correlated), where testing every look at 0.05 would declare one in about 14%."""
    rate = _sequential_rejections(0.0, 4000, 3, 10)
    assert 0.005 < rate <= ALPHA
    rng = np.random.default_rng(1)
    naive = np.mean(
        [
            any(difference(a[:n].tolist(), b[:n].tolist()).p < ALPHA for n in range(3, 11))
            for a, b in (rng.normal(0, 1, (2, 10)) for _ in range(2000))
        ]
    )
    assert naive > 0.1  # why a sequential study may not test each look at 0.05


def test_the_sequential_rule_finds_a_real_difference() -> None:
    assert _sequential_rejections(2.0, 500, 3, 10) > 0.8


def test_the_look_level_is_alpha_over_the_looks() -> None:
    assert look_level(3, 10) == pytest.approx(0.05 / 8) and look_level(3, 3) == pytest.approx(0.05)


@pytest.mark.filterwarnings("ignore:Precision loss occurred")  # SciPy's, on the sample with no spread
@pytest.mark.parametrize(
    ("a", "b"), [([0.9, 0.91, 0.93], [0.8, 0.84]), ([1.0, 2.0, 3.0, 4.0], [2.5, 2.6, 2.4]), ([0.5, 0.5], [0.4, 0.6])]
)
def test_welch_is_scipy_s_welch(a: list[float], b: list[float]) -> None:
    ours, theirs = welch(a, b), stats.ttest_ind(a, b, equal_var=False)
    assert ours.t == pytest.approx(theirs.statistic, rel=1e-12) and ours.p == pytest.approx(theirs.pvalue, rel=1e-9)
    assert ours.df == pytest.approx(theirs.df, rel=1e-12)
    flat = welch([0.1, 0.1], [0.1, 0.1])  # no spread anywhere: no test, as SciPy says
    assert math.isnan(flat.t) and math.isnan(flat.p)
