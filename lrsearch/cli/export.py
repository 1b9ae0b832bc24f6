"""``lrsearch export``: a study's trials table to CSV, Parquet or JSON."""

from __future__ import annotations

from pathlib import Path

import click

from lrsearch.cli import options
from lrsearch.errors import ConfigError, RuntimeFailure
from lrsearch.search.study import load_existing
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import resolve_url

FORMATS = (".csv", ".parquet", ".json")


@click.command("export")
@click.option("--study", "study_name", required=True, help="The study's name.")
@options.storage
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Output file: .csv, .parquet or .json.",
)
def command(study_name: str, storage: str | None, out: Path) -> None:
    """Write the trials table (one row per trial: state, value, params, user attrs)."""
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"--out must end in .csv, .parquet or .json but got {out.name!r}")
    if not out.parent.is_dir():
        raise ConfigError(f"folder {out.parent} for --out does not exist")
    study = load_existing(study_name, open_storage(resolve_url(storage), heartbeat=None, create=False))
    frame = study.trials_dataframe(multi_index=False)
    try:
        if out.suffix.lower() == ".csv":
            frame.to_csv(out, index=False)
        elif out.suffix.lower() == ".parquet":
            frame.to_parquet(out, index=False)
        else:
            frame.to_json(out, orient="records", date_format="iso", indent=1)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"{len(frame)} trials -> {out}")
