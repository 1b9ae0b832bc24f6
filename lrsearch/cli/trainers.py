"""``lrsearch trainers``: every trainer lrsearch can name, bundled and installed, with a line on each."""

from __future__ import annotations

import click

from lrsearch.engine.plugins import ENTRY_POINTS, available


@click.command("trainers")
def command() -> None:
    """List the bundled trainers and the installed plug-ins (entry points in the group lrsearch.trainers).
    A study file or --trainer may also name your own as module.path:callable."""
    for name, description in available():
        click.echo(f"{name}\n    {description}\n")
    click.echo(
        f"Your own: trainer = 'module.path:callable' (a callable returning an lrsearch.Problem), looked up "
        f"beside the study file, in the working directory, then among installed packages; installed "
        f"plug-ins register under the entry-point group {ENTRY_POINTS}."
    )
