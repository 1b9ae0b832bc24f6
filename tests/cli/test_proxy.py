from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from tests.cli.conftest import Outcome, assert_one_line_error
from tests.conftest import write_study


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_listening(port: int, process: subprocess.Popen[str], timeout: float = 90) -> None:
    """Until the proxy accepts connections (its start-up imports torch and Optuna: seconds on a busy CI)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"the proxy did not listen on {port} within {timeout} s")


def test_workers_run_a_study_through_the_proxy(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    port = free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "lrsearch", "proxy", "--storage", db, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_listening(port, proxy)
        outcome = lrsearch(
            "run",
            "--study",
            str(write_study(tmp_path, n_trials=4, population=2, repeats=1)),
            "--storage",
            f"grpc://127.0.0.1:{port}",
        )
        assert outcome.code == 0, outcome.err
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    trials = optuna.load_study(study_name="small", storage=db).trials  # straight from the database
    assert len(trials) == 4 + 2 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert all(len(t.intermediate_values) == t.user_attrs["epochs"] for t in trials)


def test_an_unreachable_proxy_is_one_line(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = lrsearch("run", "--study", str(write_study(tmp_path)), "--storage", f"grpc://127.0.0.1:{free_port()}")
    assert outcome.code == 1 and "cannot reach the storage proxy" in outcome.err
    assert time.monotonic() - started < 30


def test_a_port_in_use_is_one_line_and_creates_nothing(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        outcome = lrsearch("proxy", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--port", str(port))
    assert_one_line_error(outcome, 1, f"cannot serve the storage proxy on 127.0.0.1:{port}", "in use")
    assert not (tmp_path / "s.db").exists()


def test_credentials_in_a_proxy_url_are_refused_and_not_shown(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    outcome = lrsearch("run", "--study", str(write_study(tmp_path)), "--storage", "grpc://me:hunter22@127.0.0.1:1")
    assert_one_line_error(outcome, 2, "grpc://me:***@127.0.0.1:1", "takes no credentials")
    assert "hunter22" not in outcome.err
