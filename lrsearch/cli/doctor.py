"""``lrsearch doctor``: whether this device trains populations right and fast, in a few minutes."""

from __future__ import annotations

import dataclasses
import json

import click
from rich.console import Console
from rich.table import Table

from lrsearch.doctor import PARTS, run_checks
from lrsearch.engine.devices import describe_device, resolve_device
from lrsearch.errors import RuntimeFailure


@click.command("doctor")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(PARTS),
    help="Run only this part (repeatable): optimizers, syncs, speed, oom (out of memory), workers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(device: str, only: tuple[str, ...], as_json: bool) -> None:
    """Check the device: each optimizer's population against a reference (the CPU, or the plain loop on a
    CPU), no host sync per batch, blobs trials/minute and LeNet examples/second at three population sizes
    (with peak GPU memory), recovery from an out-of-memory error in a worker, and two workers on one
    study. Exits 1 if a check fails."""
    torch_device = resolve_device(device)
    checks, speeds = run_checks(torch_device, only or PARTS)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "device": describe_device(torch_device),
                    "checks": [dataclasses.asdict(c) for c in checks],
                    "speeds": [dataclasses.asdict(s) for s in speeds],
                }
            )
        )
    else:
        console = Console()
        console.print(f"lrsearch doctor on {describe_device(torch_device)}")
        table = Table("check", "", "found")
        for check in checks:
            table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAILED[/]", check.detail)
        console.print(table)
        if speeds:
            figures = Table("trainer", "population", "rate", "peak GPU memory")
            for s in speeds:
                memory = f"{s.peak_memory / 2**20:,.0f} MiB" if s.peak_memory is not None else "-"
                figures.add_row(s.what, str(s.population), f"{s.rate:,.0f} {s.unit}", memory)
            console.print(figures)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise RuntimeFailure(f"doctor: {len(failed)} check(s) failed: {', '.join(failed)}")
