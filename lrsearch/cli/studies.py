"""``lrsearch studies``: the study files lrsearch knows, with their questions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lrsearch.errors import ConfigError
from lrsearch.spec.files import list_studies, read_study_file


@click.command("studies")
@click.option(
    "--check",
    is_flag=True,
    help="Validate each file completely, as `lrsearch run` does (slower: it loads the trainers).",
)
def command(check: bool) -> None:
    """List the known studies ($LRSEARCH_STUDIES, ./studies, the bundled ones) and their questions. The
    listing reads each file's TOML only; --check validates every file as a run would."""
    for path in list_studies():
        try:
            if check:
                from lrsearch.spec.studies import load_study_file  # the trainers, torch: seconds

                load_study_file(path)
            line = _listed(path, read_study_file(path))
        except ConfigError as exc:
            click.echo(f"{path.stem}  (invalid)\n    {exc}\n")
            continue
        click.echo(line)


def _listed(path: Path, raw: dict[str, Any]) -> str:
    """A study's entry from its file's keys as written."""
    for key in ("question", "compare"):
        if not isinstance(raw.get(key), str):
            raise ConfigError(f"{path}: {key}: missing, or not text")
    pbt = raw.get("pbt") if raw.get("strategy") == "pbt" else None
    members = pbt.get("members") if isinstance(pbt, dict) else None
    budget = ", ".join(
        part
        for part in (
            f"{raw['n_trials']} trials" if raw.get("n_trials") else "",
            f"{members} PBT members" if members else "",
            f"{raw['timeout']:g} s" if isinstance(raw.get("timeout"), (int, float)) else "",
        )
        if part
    )
    trainer = raw.get("trainer", "?")
    return f"{path.stem}  ({trainer}, {budget}, compares {raw['compare']})\n    {raw['question'].strip()}\n"
