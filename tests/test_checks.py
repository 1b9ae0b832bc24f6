from __future__ import annotations

import math

import pytest

from lrsearch.checks import boolean, integer, number, text
from lrsearch.errors import ConfigError


@pytest.mark.parametrize("value", [0, 5, 10])
def test_integers_in_range_pass(value: int) -> None:
    assert integer("n", value, 0, 10) == value


@pytest.mark.parametrize("value", [-1, 11, 10**400, 1.0, 2.5, True, "3", None, [1], math.nan])
def test_integers_out_of_range_or_of_another_type_are_named(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^n must be an integer in \[0, 10\] but got "):
        integer("n", value, 0, 10)


@pytest.mark.parametrize("value", [0.0, 0.5, 1, 1.0])
def test_numbers_in_range_pass_as_floats(value: float) -> None:
    assert number("x", value, 0.0, 1.0) == float(value) and isinstance(number("x", value, 0.0, 1.0), float)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, -0.5, 1.5, True, "0.5", None])
def test_numbers_that_are_not_finite_in_range_or_numbers_are_named(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^x must be a number in \[0, 1\] but got "):
        number("x", value, 0.0, 1.0)


def test_open_ends_and_unbounded_intervals_say_so() -> None:
    with pytest.raises(ConfigError, match=r"x must be a number in \(0, 1\) but got 0"):
        number("x", 0, 0.0, 1.0, low_open=True, high_open=True)
    with pytest.raises(ConfigError, match=r"x must be a number in \(0, 1\) but got 1"):
        number("x", 1, 0.0, 1.0, low_open=True, high_open=True)
    with pytest.raises(ConfigError, match="x must be a finite number but got inf"):
        number("x", math.inf, -math.inf, math.inf)
    with pytest.raises(ConfigError, match=r"in \[0, 1e\+06\]|in \[0, 1000000\]"):
        number("x", -1, 0.0, 1e6)


def test_a_long_value_is_shown_cut() -> None:
    with pytest.raises(ConfigError) as error:
        integer("n", "x" * 500, 0, 1)
    assert len(str(error.value)) < 120


def test_booleans_and_text() -> None:
    assert boolean("b", True) is True
    with pytest.raises(ConfigError, match="b must be true or false but got 1"):
        boolean("b", 1)
    assert text("q", "a question?\nyes") == "a question?\nyes"
    for bad, fragment in (
        ("", "non-empty"),
        ("  ", "non-empty"),
        (3, "non-empty"),
        ("a\x00b", "control"),
        ("x" * 11, "at most 10"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            text("q", bad, max_length=10)
