"""``lrsearch proxy``: Optuna's gRPC storage proxy in front of the database, for large fleets."""

from __future__ import annotations

import warnings

import click
import optuna

from lrsearch.cli import LOOPBACK, check_free, options
from lrsearch.errors import RuntimeFailure
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import masked, resolve_url


@click.command("proxy")
@options.storage
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=13000, show_default=True, help="Port to listen on.")
def command(storage: str | None, host: str, port: int) -> None:
    """Serve the study database to workers (`--storage grpc://HOST:PORT`): one set of database connections
    and one cache for hundreds of workers instead of a pool each."""
    url = resolve_url(storage)
    check_free(host, port, "the storage proxy")  # before the database is created
    backend = open_storage(url, heartbeat=None)
    if host not in LOOPBACK:
        click.echo(
            "warning: the storage proxy has no authentication or encryption; serve it on a private network only",
            err=True,
        )
    click.echo(f"storage proxy for {masked(url)} on grpc://{host}:{port}", err=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # chosen knowingly
            optuna.storages.run_grpc_proxy_server(backend, host=host, port=port)
    except RuntimeError as exc:  # gRPC could not bind after all (taken between the check and now)
        raise RuntimeFailure(f"cannot serve the storage proxy on {host}:{port}: {exc}") from None
