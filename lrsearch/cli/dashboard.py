"""``lrsearch dashboard``: optuna-dashboard on the storage and artifact store that ``lrsearch run`` uses."""

from __future__ import annotations

import click
import optuna_dashboard

from lrsearch.cli import LOOPBACK, check_free, options
from lrsearch.review.artifacts import open_store, resolve_artifacts
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import masked, resolve_url


@click.command("dashboard")
@options.storage
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--artifacts",
    metavar="DIR|s3://BUCKET|gs://BUCKET",
    help="The trials' artifact store (default: LRSEARCH_ARTIFACTS, else beside a SQLite database).",
)
def command(storage: str | None, host: str, port: int, artifacts: str | None) -> None:
    """Serve optuna-dashboard: the studies, their notes and charts, each trial's curves."""
    url = resolve_url(storage)
    location = resolve_artifacts(artifacts, url)
    backend = open_storage(url, heartbeat=None, create=False)
    check_free(host, port, "the dashboard")
    if host not in LOOPBACK:
        click.echo(
            f"warning: the dashboard has no authentication and anyone who can reach {host}:{port} can read "
            "and change the studies; put it behind a reverse proxy with authentication",
            err=True,
        )
    click.echo(f"dashboard for {masked(url)} (artifacts: {location or 'none'}) on http://{host}:{port}/", err=True)
    optuna_dashboard.run_server(
        backend, host=host, port=port, artifact_store=open_store(location) if location else None
    )
