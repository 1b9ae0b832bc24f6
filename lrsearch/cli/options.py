"""Options several commands share, spelt once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lrsearch.storage.heartbeat import Heartbeat

__all__ = ["grace", "int_option", "max_retry", "storage"]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def int_option(flag: str, default: int, text: str) -> Decorator:
    """An integer option with its default shown in the help."""
    return click.option(flag, type=int, default=default, show_default=True, help=text)


storage = click.option("--storage", help="Database URL (default: LRSEARCH_STORAGE, else sqlite:///lrsearch.db).")
grace = int_option(
    "--grace", Heartbeat.grace, "Seconds without a heartbeat after which a running trial's worker counts as gone."
)
max_retry = int_option("--max-retry", Heartbeat.max_retry, "How many times a failed trial is re-enqueued.")
