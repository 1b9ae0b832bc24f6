from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Outcome, assert_one_line_error
from tests.conftest import write_study


@pytest.fixture
def finished(lrsearch: Callable[..., Outcome], tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert (
        lrsearch(
            "run", "--study", str(write_study(tmp_path, n_trials=4, population=4, repeats=2)), "--storage", url
        ).code
        == 0
    )
    return url


def test_json(lrsearch: Callable[..., Outcome], finished: str) -> None:
    outcome = lrsearch("report", "--study", "small", "--storage", finished, "--json")
    assert outcome.code == 0
    report = json.loads(outcome.out)
    assert report["compare"] == "schedule" and {g["value"] for g in report["groups"]} == {"constant", "cosine"}
    assert all(g["repeats"]["n"] == 2 for g in report["groups"]) and report["verdict"]
    assert report["test"] == "Welch's t-test"


def test_tables_and_html(lrsearch: Callable[..., Outcome], finished: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    outcome = lrsearch("report", "--study", "small", "--storage", finished, "--html", str(page))
    assert outcome.code == 0 and "Verdict:" in outcome.out
    text = page.read_text()
    assert 'id="verdict"' in text and "cosine" in text and "<script src" not in text


def test_unknown_study(lrsearch: Callable[..., Outcome], finished: str) -> None:
    assert_one_line_error(
        lrsearch("report", "--study", "nope", "--storage", finished), 2, "no study named 'nope'", "small"
    )


def test_a_study_that_does_not_exist_creates_no_database(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    assert_one_line_error(
        lrsearch("report", "--study", "x", "--storage", f"sqlite:///{tmp_path / 's.db'}"),
        2,
        f"no study database at {tmp_path / 's.db'}",
    )
    assert list(tmp_path.iterdir()) == []


def test_an_empty_postgres_database_gets_no_tables(lrsearch: Callable[..., Outcome], postgres_url: str) -> None:
    import psycopg

    assert_one_line_error(lrsearch("report", "--study", "x", "--storage", postgres_url), 2, "holds no studies")
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
