"""Many workers, one study, on the real PostgreSQL: totals, a killed worker, a restarted server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch.schema import REPEAT_OF
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import resolve_url
from tests.cli.conftest import Outcome
from tests.conftest import write_study


def trials(url: str, name: str = "small") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).trials


def running(url: str) -> bool:
    """Whether the study exists and has a trial in training."""
    storage = open_storage(resolve_url(url), None)  # races the workers to create the schema: open_storage copes
    if "small" not in [s.study_name for s in storage.get_all_studies()]:
        return False
    return any(t.state == TrialState.RUNNING for t in trials(url))


class Worker:
    """A worker process whose stderr goes to a file: a pipe nobody reads until the end fills up (64 KiB of
    warnings during a restart) and blocks the worker, which blocks the other workers waiting for its trials."""

    def __init__(self, study: Path, url: str, extra: tuple[str, ...], log: Path) -> None:
        env = {**os.environ, "LRSEARCH_STORAGE": url, "PYTHONFAULTHANDLER": "1"}
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lrsearch",
                    "--debug",
                    "run",
                    "--study",
                    str(study),
                    "--device",
                    "cpu",
                    "--no-report",
                    *extra,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def finish(self, timeout: float) -> tuple[int, str]:
        """Its exit code and stderr; one still running after ``timeout`` seconds fails the test with every
        thread's stack (faulthandler prints them on SIGABRT)."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            self.process.wait()
            pytest.fail(f"a worker was still running after {timeout} s:\n{self.log.read_text()[-20000:]}")
        return code, self.log.read_text()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Starts worker processes (with --debug: a failure shows its traceback); kills whatever is left of them
    after the test."""
    started: list[Worker] = []

    def start(study: Path, url: str, *extra: str) -> Worker:
        started.append(Worker(study, url, extra, tmp_path / f"worker-{len(started)}.err"))
        return started[-1]

    yield start
    for worker in started:
        worker.process.kill()
        worker.process.wait()


def test_four_workers_reach_the_study_wide_total(
    lrsearch: Callable[..., Outcome], tmp_path: Path, postgres_url: str
) -> None:
    # Populations of seconds, none pruned, and two rounds of them for each worker: one whose start-up lags
    # a round behind the others (2 s in a CI run, with pruning) still finds trials to run.
    study = write_study(tmp_path, n_trials=16, population=2, epochs=1500, pruner='"none"')
    outcome = lrsearch("run", "--study", str(study), "--storage", postgres_url, "--workers", "4", "--device", "cpu")
    assert outcome.code == 0, outcome.err
    found = trials(postgres_url)
    assert 16 <= len(found) <= 16 + 4 * 2  # at most one population of overshoot per worker
    assert sorted(t.number for t in found) == list(range(len(found)))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in found)
    assert len({t.user_attrs["worker"] for t in found}) == 4 and "Verdict:" in outcome.out


def test_a_killed_workers_trials_fail_and_their_retries_finish(
    tmp_path: Path, postgres_url: str, worker: Callable[..., Worker]
) -> None:
    study = write_study(tmp_path, n_trials=4, population=2, epochs=600, pruner='"none"')
    beats = ("--heartbeat", "1", "--grace", "3")
    doomed = worker(study, postgres_url, *beats)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until its first population is training
        time.sleep(0.5)
        try:
            if sum(t.state == TrialState.RUNNING for t in trials(postgres_url)) == 2:
                break
        except KeyError:
            pass
    time.sleep(1)
    killed_at = time.monotonic()
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait()
    survivor = worker(study, postgres_url, *beats)
    code, err = survivor.finish(timeout=300)
    assert code == 0, err
    assert time.monotonic() - killed_at < 300
    found = trials(postgres_url)
    failed = [t for t in found if t.state == TrialState.FAIL]
    assert len(failed) == 2  # the killed worker's trials, which say whose they were
    assert all(
        t.user_attrs["worker"].endswith(f":{doomed.process.pid}") and t.user_attrs["device"] == "cpu" for t in failed
    )
    retries = [t for t in found if t.system_attrs.get("failed_trial") in {f.number for f in failed}]
    assert len(retries) == 2 and all(t.state == TrialState.COMPLETE for t in retries)
    by_number = {t.number: t for t in found}
    for retry in retries:
        assert retry.params == by_number[retry.system_attrs["failed_trial"]].params
    assert not [t for t in found if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert Counter(t.state for t in found)[TrialState.COMPLETE] == 4


def test_workers_carry_on_through_a_postgres_restart(
    tmp_path: Path, postgres_url: str, worker: Callable[..., Worker]
) -> None:
    cluster = next(iter(os.listdir("/etc/postgresql")))
    study = write_study(tmp_path, n_trials=8, population=2, epochs=400, pruner='"none"')
    workers = [worker(study, postgres_url, "--heartbeat", "2", "--grace", "20") for _ in range(2)]
    deadline = time.monotonic() + 120
    while not running(postgres_url):  # in the middle of the study
        assert time.monotonic() < deadline and all(w.process.poll() is None for w in workers)
        time.sleep(0.5)
    try:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for w in workers:  # a minute here; a slow CI machine has taken five
            code, err = w.finish(timeout=600)
            assert code == 0, err
    finally:
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode != 0:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "start"], check=False, timeout=60
            )
    found = trials(postgres_url)
    search = [t for t in found if REPEAT_OF not in t.user_attrs]
    done = [t for t in search if t.state == TrialState.COMPLETE]
    assert len(done) >= 8 and not [t for t in found if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # At worst a trial in flight failed and its retry finished.
    assert all(
        any(r.system_attrs.get("failed_trial") == f.number for r in found) for f in search if f.state == TrialState.FAIL
    )


@pytest.mark.parametrize(
    "url", ["postgresql://nobody:hunter2@127.0.0.1:5432/test", "postgresql://postgres:hunter2@127.0.0.1:1/test"]
)
def test_bad_credentials_or_an_unreachable_server(lrsearch: Callable[..., Outcome], tmp_path: Path, url: str) -> None:
    started = time.monotonic()
    outcome = lrsearch("run", "--study", str(write_study(tmp_path)), "--storage", url)
    assert time.monotonic() - started < 30
    assert outcome.code == 1 and len(outcome.err.strip().splitlines()) == 1
    assert "hunter2" not in outcome.err and ":***@" in outcome.err


def test_a_wrong_password_is_one_line_without_it(
    lrsearch: Callable[..., Outcome], tmp_path: Path, password_postgres: tuple[str, str]
) -> None:
    url, password = password_postgres
    study = str(write_study(tmp_path, n_trials=2, population=2))
    # The right password, URL-encoded (it has braces, which Optuna's str.format would choke on): it runs.
    assert lrsearch("run", "--study", study, "--storage", url).code == 0
    wrong = url.replace("Right", "Wrong")
    started = time.monotonic()
    outcome = lrsearch("run", "--study", study, "--storage", wrong)
    assert time.monotonic() - started < 30
    assert outcome.code == 1 and len(outcome.err.strip().splitlines()) == 1
    assert "password authentication failed" in outcome.err and ":***@" in outcome.err
    assert "Wrong" not in outcome.err and password not in outcome.err
