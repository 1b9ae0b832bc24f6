"""``lrsearch studies``: the study files lrsearch knows, with their questions."""

from __future__ import annotations

import click

from lrsearch.errors import ConfigError
from lrsearch.spec.studies import list_studies, load_study_file


@click.command("studies")
def command() -> None:
    """List the known studies ($LRSEARCH_STUDIES, ./studies, the bundled ones) and their questions."""
    for path in list_studies():
        try:
            spec = load_study_file(path)
        except ConfigError as exc:
            click.echo(f"{path.stem}  (invalid)\n    {exc}\n")
            continue
        budget = ", ".join(
            p
            for p in (f"{spec.n_trials} trials" if spec.n_trials else "", f"{spec.timeout:g} s" if spec.timeout else "")
            if p
        )
        click.echo(f"{spec.name}  ({spec.trainer}, {budget}, compares {spec.compare})\n    {spec.question}\n")
