"""``lrsearch report``: what a study answers, as tables, JSON or a self-contained HTML page (``report_page``)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lrsearch.cli import options
from lrsearch.errors import ConfigError
from lrsearch.review.page import write_page
from lrsearch.review.report import StudyReport, build_report
from lrsearch.search.study import load_existing
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import resolve_url


def report_console() -> Console:
    """Stdout, at least as wide as the comparison table (piped output defaults to 80 columns)."""
    return Console(width=max(Console().width, 130), highlight=False)


def print_report(report: StudyReport, console: Console) -> None:
    """The report as the terminal shows it (also the summary ``lrsearch run`` ends with)."""
    if report.question:
        console.print(f"[bold]Question:[/bold] {report.question}")
    c = report.counts
    console.print(
        f"Trials: {c['complete'] + c['pruned'] + c['fail'] + c['running'] + c['waiting']} "
        f"({c['complete']} complete, {c['pruned']} pruned of which {c['diverged']} diverged, {c['fail']} failed, "
        f"{c['running']} running, {c['waiting']} waiting; {c['repeats']} of them repeats)"
    )
    table = Table(
        show_edge=False,
        caption="repeats: the best configuration of each group re-run with new seeds; "
        f"test {report.metric}, mean ± 95% CI (t)",
    )
    header, rows = report.table()
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if report.comparisons:
        console.print(f"[bold]Test:[/bold] {report.test} ({report.test_why}). {report.tests_text()}")
    if report.importances:
        console.print(
            f"[bold]Parameter importances[/bold] (PED-ANOVA, completed search trials): {report.importances_text()}"
        )
    console.print(f"[bold]Verdict:[/bold] {report.verdict}")
    if report.discovered is not None:
        console.print(
            f"[bold]PBT's discovered schedule[/bold] ({report.lineage_text()}), to replay in a study file:",
            highlight=False,
        )
        console.print(report.discovered["snippet"], markup=False, highlight=False)


@click.command("report")
@click.option("--study", "study_name", required=True, help="The study's name.")
@options.storage
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write a page.")
def command(study_name: str, storage: str | None, as_json: bool, html_path: Path | None) -> None:
    """Per compared group: best trial, mean ± 95% CI over repeats, counts; the test; importances; the verdict."""
    url = resolve_url(storage)
    if html_path is not None and not html_path.parent.is_dir():
        raise ConfigError(f"folder {html_path.parent} for --html does not exist")
    study = load_existing(study_name, open_storage(url, heartbeat=None, create=False))
    report = build_report(study)
    if html_path is not None:
        write_page(report, study.get_trials(deepcopy=False), html_path)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print_report(report, report_console())
