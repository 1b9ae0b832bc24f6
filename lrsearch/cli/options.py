"""Options several commands share, spelt once."""

from __future__ import annotations

import click

from lrsearch.storage import Heartbeat

__all__ = ["grace", "max_retry", "storage"]

storage = click.option("--storage", help="Database URL (default: LRSEARCH_STORAGE, else sqlite:///lrsearch.db).")
grace = click.option(
    "--grace",
    type=int,
    default=Heartbeat.grace,
    show_default=True,
    help="Seconds without a heartbeat after which a running trial's worker counts as gone.",
)
max_retry = click.option(
    "--max-retry",
    type=int,
    default=Heartbeat.max_retry,
    show_default=True,
    help="How many times a failed trial is re-enqueued.",
)
