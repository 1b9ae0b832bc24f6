"""The two kinds of expected failure, and the exit code the CLI gives each."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad input from the user (a flag, a parameter, a study file): exit code 2."""

    exit_code = 2


class RuntimeFailure(RuntimeError):
    """The input was fine but the work could not be done (missing data, unreachable database): exit 1."""

    exit_code = 1


def one_line(error: object) -> str:
    """An error's text on one line (a message quotes it inside its own single line)."""
    return " ".join(str(error).split())
