from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.cli.conftest import Outcome, assert_one_line_error


def test_json_report(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch(
        "bench",
        "--trainer",
        "blobs",
        "--device",
        "cpu",
        "--population",
        "8",
        "--baseline-trials",
        "1",
        "--epochs",
        "2",
        "--json",
    )
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert report["device"].startswith("CPU")
    population, generic, plain = report["blobs"]["measurements"]
    assert population["trials"] == generic["trials"] == 8 and plain["trials"] == 1
    assert generic["label"] == "population of 8, generic nn.Module path"
    for other in (generic, plain):
        ratio = report["blobs"]["ratio"][other["label"]]
        assert ratio == pytest.approx(population["trials_per_second"] / other["trials_per_second"])


def test_table_report(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("bench", "--trainer", "blobs", "--population", "4", "--baseline-trials", "1", "--epochs", "1")
    assert outcome.code == 0 and "trials/s" in outcome.out and "population / one at a time" in outcome.out


def test_sampler_report(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch(
        "bench", "--trainer", "sampler", "--trials", "20", "--workers", "2", "--population", "4", "--json"
    )
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert (report["finished"], report["running"], report["population"], report["same"]) == (20, 4, 4, True)
    assert report["ratio"] == pytest.approx(report["optuna"] / report["ours"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--population", "0"], "--population must be an integer in [1, 4096] but got 0"),
        (["--trainer", "lenet"], "'lenet' is not one of"),
        (["--epochs", "-1"], "--epochs must be an integer in [1, 100000]"),
        (["--device", "gpu"], "device must be auto, cpu"),
        (["--trainer", "sampler", "--trials", "0"], "--trials must be an integer in [1, 100000] but got 0"),
        (["--trainer", "workers", "--pruner", "wavelet"], "'wavelet' is not one of"),
    ],
)
def test_bad_input(lrsearch: Callable[..., Outcome], args: list[str], fragment: str) -> None:
    assert_one_line_error(lrsearch("bench", *args), 2, fragment)


def test_search_report_gives_the_end_to_end_ratio_and_the_breakdown(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("bench", "--trainer", "search", "--trials", "4", "--baseline-trials", "1", "--device", "cpu")
    assert outcome.code == 0, outcome.err
    for fragment in ("--n-trials 4:", "s end to end", "fixed:", "start-up and imports", "trials/s (training", "plain"):
        assert fragment in outcome.out
    assert outcome.out.rstrip().endswith("x the plain loop")
