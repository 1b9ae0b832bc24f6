"""Checks of user-given values where they enter: the type, a finite number, a sane range. A bad value is a
ConfigError that names it and says what was expected ("epochs must be an integer in [1, 100000] but got 0").

Every number lrsearch takes has both bounds: a value that passes cannot overflow a table, a count or a
float further on (a run of 10**12 epochs, a rate of 1e308). The bounds that more than one module shares
are here.
"""

from __future__ import annotations

import math
from typing import Any

from lrsearch.errors import ConfigError

__all__ = [
    "MAX_COUNT",
    "MAX_RATE",
    "MAX_SECONDS",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_WORKERS",
    "boolean",
    "integer",
    "number",
    "text",
]

#: Steps of a schedule (epochs or updates: a total, a period, a milestone, a warmup).
MAX_STEPS = 10**9
#: Learning rates (and rates a schedule starts from or falls to).
MAX_RATE = 1e4
#: Seeds: what every random generator lrsearch seeds accepts.
MAX_SEED = 2**32 - 1
#: Durations: a year.
MAX_SECONDS = 366 * 24 * 3600.0
#: Counts of things (trials, retries, repeats).
MAX_COUNT = 10**7
#: Local worker processes one run starts at the most.
MAX_WORKERS = 256


def _bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e8 else f"{x:g}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def integer(name: str, value: Any, low: int, high: int) -> int:
    """An int (not a bool, not a float) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in [{low}, {high}] but got {_shown(value)}")
    return value


def number(name: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> float:
    """A finite int or float (not a bool) in the interval from ``low`` to ``high`` (open at an end where
    asked); returned as a float."""
    interval = f"{'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
    bounded = f"a number in {interval}" if math.isfinite(low) or math.isfinite(high) else "a finite number"
    expected = f"{name} must be {bounded} but got {_shown(value)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(expected)
    try:
        x = float(value)
    except OverflowError:  # an int beyond any float
        raise ConfigError(expected) from None
    if not math.isfinite(x) or x < low or x > high or (low_open and x == low) or (high_open and x == high):
        raise ConfigError(expected)
    return x


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false but got {_shown(value)}")
    return value


def text(name: str, value: Any, *, max_length: int = 1000) -> str:
    """A non-empty string of at most ``max_length`` characters, without control characters but newlines."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string but got {_shown(value)}")
    if len(value) > max_length:
        raise ConfigError(f"{name} must be at most {max_length} characters but got {len(value)}")
    if any(ord(c) < 32 and c not in "\n\t" or ord(c) == 127 for c in value):
        raise ConfigError(f"{name} must not hold control characters but got {_shown(value)}")
    return value
