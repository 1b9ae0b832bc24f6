from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable

import pytest

from lrsearch.cli import main


@dataclasses.dataclass
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture
def lrsearch(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Run the CLI in this process, as the console script would."""

    def run(*args: str) -> Outcome:
        code = main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def run_process(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m lrsearch`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "lrsearch", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_one_line_error(outcome: Outcome, code: int, *fragments: str) -> None:
    assert outcome.code == code, outcome
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrsearch: error: "), outcome.err
    assert "Traceback" not in outcome.err
    for fragment in fragments:
        assert fragment in lines[0]
