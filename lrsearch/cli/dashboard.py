"""``lrsearch dashboard``: optuna-dashboard on the storage and artifact store that ``lrsearch run`` uses."""

from __future__ import annotations

import socket
from pathlib import Path

import click
import optuna_dashboard

from lrsearch.artifacts import open_store, resolve_artifacts
from lrsearch.cli import LOOPBACK
from lrsearch.errors import ConfigError, RuntimeFailure
from lrsearch.storage import masked, open_storage, resolve_url, sqlite_file


@click.command("dashboard")
@click.option("--storage", help="Database URL (default: LRSEARCH_STORAGE, else sqlite:///lrsearch.db).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option("--artifacts", metavar="DIR|s3://BUCKET|gs://BUCKET",
              help="The trials' artifact store (default: LRSEARCH_ARTIFACTS, else beside a SQLite database).")
def command(storage: str | None, host: str, port: int, artifacts: str | None) -> None:
    """Serve optuna-dashboard: the studies, their notes and charts, each trial's curves."""
    url = resolve_url(storage)
    location = resolve_artifacts(artifacts, url)
    database = sqlite_file(url)
    if database is not None and not Path(database).is_file():
        raise ConfigError(f"no study database at {database} (lrsearch run writes one)")
    _check_free(host, port)
    backend = open_storage(url, heartbeat=None)
    if host not in LOOPBACK:
        click.echo(f"warning: the dashboard has no authentication and anyone who can reach {host}:{port} can read "
                   "and change the studies; put it behind a reverse proxy with authentication", err=True)  # fmt: skip
    click.echo(f"dashboard for {masked(url)} (artifacts: {location or 'none'}) on http://{host}:{port}/", err=True)
    optuna_dashboard.run_server(backend, host=host, port=port, artifact_store=open_store(location) if location else None)


def _check_free(host: str, port: int) -> None:
    """Fail as one line before the server starts (it prints its banner first, then a traceback)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise RuntimeFailure(f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}") from None
