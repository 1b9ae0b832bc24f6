"""``lrsearch reap``: fail the trials of vanished workers and re-enqueue them, by hand."""

from __future__ import annotations

import click

from lrsearch.cli import options
from lrsearch.search.study import load_existing
from lrsearch.storage.heartbeat import Heartbeat
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import resolve_url
from lrsearch.storage.workers import fail_stale


@click.command("reap")
@click.option("--study", "study_name", required=True, help="The study's name.")
@options.storage
@options.grace
@click.option(
    "--all",
    "all_running",
    is_flag=True,
    help="Every running trial counts as stale: when every worker is known to be gone (and for "
    "workers behind `lrsearch proxy`, which cannot send heartbeats).",
)
@options.max_retry
def command(study_name: str, storage: str | None, grace: int, all_running: bool, max_retry: int) -> None:
    """Fail running trials whose worker is gone and re-enqueue each with its parameters (as every worker
    does before it asks for trials; this is for when no worker is left to do it)."""
    heartbeat = Heartbeat(interval=max(1, grace // 4), grace=grace, max_retry=max_retry)
    study = load_existing(study_name, open_storage(resolve_url(storage), heartbeat, create=False))
    failed = fail_stale(study, all_running=all_running, max_retry=max_retry)
    if failed:
        click.echo(f"failed and re-enqueued {len(failed)} trial(s): {', '.join(f'#{n}' for n in failed)}")
    else:
        click.echo("no stale trials")
