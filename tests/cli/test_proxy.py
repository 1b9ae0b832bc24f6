from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from tests.cli.conftest import Outcome
from tests.conftest import write_study


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_workers_run_a_study_through_the_proxy(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "lrsearch", "proxy", "--storage", db, "--port", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(3)
        outcome = lrsearch("run", "--study", str(write_study(tmp_path, n_trials=4, population=2, repeats=1)),
                           "--storage", f"grpc://127.0.0.1:{port}")  # fmt: skip
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
