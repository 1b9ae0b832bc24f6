from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Outcome, assert_one_line_error


def test_json_and_plot(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    plot = tmp_path / "range.png"
    outcome = lrsearch(
        "lr-find", "--trainer", "blobs", "--updates", "120", "--seeds", "2", "--json", "--plot", str(plot)
    )
    assert outcome.code == 0, outcome.err
    result = json.loads(outcome.out)
    low, high = result["range"]
    assert low < result["suggested"] < high and plot.read_bytes().startswith(b"\x89PNG")


def test_text(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("lr-find", "--trainer", "blobs", "--updates", "60", "--seeds", "1")
    assert outcome.code == 0 and outcome.out.startswith("suggested lr: ") and "search range:" in outcome.out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--start", "1", "--end", "0.5"], "start < end but got start=1.0, end=0.5"),
        (["--optimizer", "adam", "--momentum", "0.9"], "no parameter 'momentum'"),
        (["--plot", "x.gif"], "must end in .png or .html"),
    ],
)
def test_bad_input(lrsearch: Callable[..., Outcome], args: list[str], fragment: str) -> None:
    assert_one_line_error(lrsearch("lr-find", "--trainer", "blobs", *args), 2, fragment)
