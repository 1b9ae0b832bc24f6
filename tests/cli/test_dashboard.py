from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna

from lrsearch.storage.opening import open_storage
from tests.cli.conftest import Outcome, assert_one_line_error
from tests.conftest import Reviewed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@contextmanager
def dashboard(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``lrsearch dashboard`` in a process of its own; yields its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lrsearch", "dashboard", "--port", str(port), *args], stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                get(f"{base}/api/studies")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the dashboard did not answer within 90 s"
                time.sleep(0.5)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def listening_addresses(port: int) -> set[str]:
    """The local addresses listening on ``port`` (IPv4, from /proc/net/tcp; hex, 0100007F is 127.0.0.1)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":
            found.add(address)
    return found


def test_the_dashboard_shows_the_study_on_loopback_only(reviewed: Reviewed) -> None:
    with dashboard("--storage", reviewed.url) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        assert listening_addresses(port) == {"0100007F"}
        summaries = json.loads(get(f"{base}/api/studies"))["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["small"]
        detail = json.loads(get(f"{base}/api/studies/{summaries[0]['study_id']}"))
        study = optuna.load_study(study_name="small", storage=open_storage(reviewed.url, None))
        assert len(detail["trials"]) == len(study.trials) and detail["objective_names"] == ["val_accuracy"]
        assert "**Question:**" in detail["note"]["body"] and "Verdict" in detail["note"]["body"]
        assert {g["id"] for g in detail["plotly_graph_objects"]} == {"lr_per_epoch", "accuracy_vs_lr"}
        best = next(t for t in detail["trials"] if t["number"] == study.best_trial.number)
        attrs = {a["key"] for a in best["user_attrs"]}
        assert {"val_accuracy", "test_accuracy", "lr_history", "seed", "worker", "device"} <= attrs
        assert len(best["intermediate_values"]) == 12
        svg = next(a for a in best["artifacts"] if a["filename"] == "curves.svg")
        picture = get(f"{base}/artifacts/{summaries[0]['study_id']}/{best['trial_id']}/{svg['artifact_id']}")
        assert picture.startswith(b"<svg")


def test_binding_elsewhere_warns(reviewed: Reviewed) -> None:
    with dashboard("--storage", reviewed.url, "--host", "0.0.0.0") as (_, proc):
        pass
    assert proc.stderr is not None and "no authentication" in proc.stderr.read()


def test_a_port_in_use_is_one_line(lrsearch: Callable[..., Outcome], reviewed: Reviewed) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        outcome = lrsearch("dashboard", "--storage", reviewed.url, "--port", str(taken.getsockname()[1]))
    assert_one_line_error(outcome, 1, "cannot serve the dashboard on 127.0.0.1:")


def test_bad_input(lrsearch: Callable[..., Outcome], reviewed: Reviewed) -> None:
    assert_one_line_error(lrsearch("dashboard", "--storage", reviewed.url, "--port", "0"), 2, "--port")
    assert_one_line_error(lrsearch("dashboard", "--storage", reviewed.url, "--artifacts", "s3://"), 2, "give a bucket")
    missing = reviewed.folder / "nothing.db"
    assert_one_line_error(lrsearch("dashboard", "--storage", f"sqlite:///{missing}"), 2, "no study database at")
    assert not missing.exists()
