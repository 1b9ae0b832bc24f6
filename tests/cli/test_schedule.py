from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lrsearch.engine.schedules import create_schedule
from tests.cli.conftest import Outcome, assert_one_line_error


def rows(outcome: Outcome) -> list[tuple[int, float]]:
    header, *lines = outcome.out.strip().splitlines()
    assert header == "step,lr"
    return [(int(step), float(lr)) for step, lr in (line.split(",") for line in lines)]


@pytest.mark.parametrize(
    ("args", "schedule"),
    [
        (
            ["cosine", "--lr", "0.5", "--steps", "25", "--param", "final_lr=0.01", "--warmup", "5"],
            create_schedule("cosine", 0.5, {"final_lr": 0.01}, warmup=5, horizon=25),
        ),
        (
            ["step", "--lr", "0.5", "--steps", "40", "--param", "milestones=5,30", "--param", "gamma=0.5"],
            create_schedule("step", 0.5, {"milestones": [5, 30], "gamma": 0.5}),
        ),
        (
            [
                "exponential",
                "--lr",
                "0.01",
                "--steps",
                "12",
                "--param",
                "decay_rate=0.9",
                "--param",
                "decay_steps=10",
                "--param",
                "staircase=true",
            ],
            create_schedule("exponential", 0.01, {"decay_rate": 0.9, "decay_steps": 10, "staircase": True}),
        ),
        (
            ["constant", "--lr", "0.1", "--steps", "3", "--warmup", "2", "--warmup-start", "0.02"],
            create_schedule("constant", 0.1, warmup=2, warmup_start=0.02),
        ),
    ],
)
def test_prints_one_row_per_step(lrsearch: Callable[..., Outcome], args: list[str], schedule) -> None:
    outcome = lrsearch("schedule", *args)
    assert outcome.code == 0 and outcome.err == ""
    printed = rows(outcome)
    steps = int(args[args.index("--steps") + 1])
    assert [step for step, _ in printed] == list(range(steps))
    np.testing.assert_allclose([lr for _, lr in printed], schedule(np.arange(steps)), rtol=1e-9)


def test_plateau_is_shown_without_reductions_and_says_so(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("schedule", "plateau", "--lr", "0.1", "--steps", "4")
    assert outcome.code == 0 and [lr for _, lr in rows(outcome)] == [0.1] * 4
    assert "plateau" in outcome.err


@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_plot(lrsearch: Callable[..., Outcome], tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"rate{suffix}"
    outcome = lrsearch("schedule", "one_cycle", "--lr", "0.4", "--steps", "50", "--plot", str(target))
    assert outcome.code == 0
    data = target.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
    else:
        text = data.decode()
        assert "one_cycle" in text and "Plotly.newPlot" in text
        assert not re.search(r"<script[^>]*src=\"https?://", text)  # plotly.js is inlined: opens offline


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["cosinus", "--lr", "0.1", "--steps", "5"], ["unknown schedule 'cosinus'", "cosine"]),
        (["step", "--lr", "0.1", "--steps", "5", "--param", "milestones=2,x"], ["milestones must be an integer"]),
        (["step", "--lr", "0.1", "--steps", "5", "--param", "gama=0.2", "--param", "milestones=2"], ["'gama'"]),
        (["step", "--lr", "0.1", "--steps", "5"], ["step needs milestones or a step_size"]),
        (["constant", "--lr", "-0.1", "--steps", "5"], ["lr must be a number in (0, 10000] but got -0.1"]),
        (["constant", "--lr", "0", "--steps", "5"], ["lr must be a number in (0, 10000] but got 0.0"]),
        (["constant", "--lr", "fast", "--steps", "5"], ["'--lr'", "'fast' is not a valid float"]),
        (["constant", "--lr", "0.1", "--steps", "0"], ["--steps must be an integer in [1, 10000000] but got 0"]),
        (["constant", "--lr", "0.1"], ["Missing option '--steps'"]),
        (["constant", "--lr", "0.1", "--steps", "5", "--plot", "x.pdf"], [".png or .html", "x.pdf"]),
        (["cosine", "--lr", "0.1", "--steps", "5", "--warmup", "5"], ["must be longer than warmup"]),
        (["constant", "--lr", "0.1", "--steps", "100000000000"], ["--steps must be an integer in [1, 10000000]"]),
        (
            ["constant", "--lr", "0.1", "--steps", "5", "--warmup", "2", "--warmup-start", "nan"],
            ["warmup_start must be"],
        ),
        (
            ["exponential", "--lr", "1", "--steps", "30", "--param", "decay_rate=2"],
            ["rate grows past 10000 by step 14"],
        ),
        (["cosine", "--lr", "0.1", "--steps", "5", "--param", "total=1e400"], ["total must be an integer"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    lrsearch: Callable[..., Outcome], args: list[str], fragments: list[str]
) -> None:
    outcome = lrsearch("schedule", *args)
    assert_one_line_error(outcome, 2, *fragments)
    assert outcome.out == ""
