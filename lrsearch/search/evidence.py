"""What the repeats say: a group's mean with its 95% interval, the difference between two groups with its
interval (Welch), whether a group's repeats are degenerate, and the sequential rule that adds repeats until
the two leading groups are told apart.

The sequential rule (``repeats = { min, max }``): after the ``min`` repeats of each group, and after each
further repeat of the two leading groups, the difference between them is tested; the study stops adding
repeats once it is significant, or at ``max``. With L = max - min + 1 looks, each look is tested at level
alpha / L (Bonferroni over the looks: whatever the looks' correlation, the chance that any of them rejects a
true null is at most alpha). ``tests/search/test_evidence.py`` measures the rate on simulated null data.

Student's t distribution comes from ``scipy.special`` (what ``scipy.stats`` computes it with; importing
``scipy.stats`` itself takes half a second, which every run and report would wait for).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import special

__all__ = ["ALPHA", "Difference", "Interval", "Welch", "degenerate", "difference", "look_level", "t_interval", "welch"]

#: The error rate the verdicts are held to.
ALPHA = 0.05


@dataclasses.dataclass(frozen=True)
class Interval:
    """Mean of ``values`` with a two-sided 95% t-interval (None below two values)."""

    values: tuple[float, ...]
    mean: float
    half_width: float | None

    @property
    def n(self) -> int:
        return len(self.values)

    def __str__(self) -> str:
        if self.half_width is None:
            return f"{self.mean:.4f} (n={self.n})"
        return f"{self.mean:.4f} ± {self.half_width:.4f} (n={self.n})"


def _finite(values: Sequence[float | None]) -> tuple[float, ...]:
    return tuple(float(v) for v in values if v is not None and math.isfinite(v))


def t_interval(values: Sequence[float | None], level: float = 0.95) -> Interval | None:
    clean = _finite(values)
    if not clean:
        return None
    mean = float(np.mean(clean))
    if len(clean) < 2:
        return Interval(clean, mean, None)
    sem = float(np.std(clean, ddof=1)) / math.sqrt(len(clean))
    return Interval(clean, mean, _t_quantile(0.5 + level / 2, len(clean) - 1) * sem)


def _t_quantile(q: float, df: float) -> float:
    """The point below which Student's t with ``df`` degrees of freedom has mass ``q``."""
    return float(special.stdtrit(df, q))


@dataclasses.dataclass(frozen=True)
class Welch:
    """Welch's two-sample t-test: the statistic, its degrees of freedom (Welch-Satterthwaite), the standard
    error of the difference of the means, and the two-sided p; t and p are NaN where both samples have no
    spread (as ``scipy.stats.ttest_ind`` gives them)."""

    t: float
    df: float
    se: float
    p: float


def welch(a: Sequence[float], b: Sequence[float]) -> Welch:
    """Welch's test of ``a`` against ``b`` (two values each at least)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    if se == 0:
        return Welch(math.nan, math.nan, 0.0, math.nan)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    t = float(x.mean() - y.mean()) / se
    return Welch(t, df, se, float(2 * special.stdtr(df, -abs(t))))


def degenerate(values: Sequence[float | None]) -> bool:
    """Two or more repeats that are all the same value (every run collapsed to chance, say): no spread to
    test a difference against, so never evidence of one."""
    clean = _finite(values)
    return len(clean) >= 2 and max(clean) == min(clean)


@dataclasses.dataclass(frozen=True)
class Difference:
    """``a``'s mean less ``b``'s, its interval at ``level`` and Welch's two-sided p (NaN where no test applies:
    fewer than two repeats on a side, or a degenerate group)."""

    mean: float
    low: float
    high: float
    p: float
    level: float
    degenerate: bool

    @property
    def bound(self) -> float:
        """The largest difference, either way, that the interval leaves possible."""
        return max(abs(self.low), abs(self.high))


def difference(a: Sequence[float | None], b: Sequence[float | None], level: float = 0.95) -> Difference:
    x, y = np.asarray(_finite(a)), np.asarray(_finite(b))
    mean = float(x.mean() - y.mean()) if len(x) and len(y) else math.nan
    stuck = degenerate(x.tolist()) or degenerate(y.tolist())
    if len(x) < 2 or len(y) < 2 or stuck:
        return Difference(mean, math.nan, math.nan, math.nan, level, stuck)
    test = welch(x, y)  # both have spread here: not degenerate
    half = _t_quantile(0.5 + level / 2, test.df) * test.se
    return Difference(mean, mean - half, mean + half, test.p, level, False)


def look_level(min_repeats: int, max_repeats: int, alpha: float = ALPHA) -> float:
    """The level each look of the sequential rule is tested at: alpha over the number of looks."""
    return alpha / (max_repeats - min_repeats + 1)
