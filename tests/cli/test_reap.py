from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna

from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import resolve_url
from tests.cli.conftest import Outcome, assert_one_line_error


def abandoned(url: str) -> optuna.Study:
    """A study whose two running trials lost their worker (no heartbeat ever recorded)."""
    study = optuna.create_study(storage=open_storage(resolve_url(url), Heartbeat(interval=1, grace=2)), study_name="s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    return study


def test_reap_after_the_grace_period(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = abandoned(url)
    assert lrsearch("reap", "--study", "s", "--storage", url, "--grace", "2").out.strip() == "no stale trials"
    time.sleep(2.5)
    outcome = lrsearch("reap", "--study", "s", "--storage", url, "--grace", "2")
    assert outcome.code == 0 and outcome.out.startswith("failed and re-enqueued 2 trial(s): #0, #1")
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "FAIL", "WAITING", "WAITING"]


def test_reap_all(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    abandoned(url)
    assert "2 trial(s)" in lrsearch("reap", "--study", "s", "--storage", url, "--all").out


def test_unknown_study(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    abandoned(url)
    assert_one_line_error(lrsearch("reap", "--study", "x", "--storage", url), 2, "no study named 'x'")


def test_no_database_is_created(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    outcome = lrsearch("reap", "--study", "x", "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert_one_line_error(outcome, 2, f"no study database at {tmp_path / 's.db'}")
    assert list(tmp_path.iterdir()) == []
