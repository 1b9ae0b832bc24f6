from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from lrsearch import __version__
from lrsearch.cli import COMMANDS
from tests.cli.conftest import Outcome, assert_one_line_error


def test_no_arguments_prints_help(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch()
    assert outcome.code == 0
    for command in ("schedule", "train", "bench"):
        assert command in outcome.out


def test_version(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("--version")
    assert outcome.code == 0 and __version__ in outcome.out


def test_unknown_command(lrsearch: Callable[..., Outcome]) -> None:
    assert_one_line_error(lrsearch("fly"), 2, "No such command 'fly'")


def test_unknown_option(lrsearch: Callable[..., Outcome]) -> None:
    assert_one_line_error(lrsearch("train", "--trainer", "blobs", "--speed", "3"), 2, "No such option '--speed'")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_imports_on_its_own(command: str) -> None:
    """A fresh process per command: its module alone imports (no cycle that another import order hides)."""
    done = subprocess.run(
        [sys.executable, "-m", "lrsearch", command, "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "Usage: lrsearch" in done.stdout, done.stderr
