"""``lrsearch report``: what a study answers, as tables, JSON or a self-contained HTML page (``report_page``)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lrsearch.errors import ConfigError
from lrsearch.report import StudyReport, build_report
from lrsearch.report_page import write_page
from lrsearch.search.study import load_existing
from lrsearch.storage import open_storage, resolve_url


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def report_console() -> Console:
    """Stdout, at least as wide as the comparison table (piped output defaults to 80 columns)."""
    return Console(width=max(Console().width, 110), highlight=False)


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
    table = Table(show_edge=False, caption="repeats: the best configuration of each group re-run with new seeds; "
                  "test accuracy, mean ± 95% CI (t)")  # fmt: skip
    for column in (report.compare or "group", "trials", "done", "pruned", "diverged", "best val", "best test",
                   "repeats", "mean test", "± 95%"):  # fmt: skip
        table.add_column(column, justify="left" if column in (report.compare, "group") else "right")
    for g in report.groups:
        r = g.repeats
        table.add_row(str(g.value), str(g.trials), str(g.completed), str(g.pruned), str(g.diverged),
                      _fmt(g.best_val_accuracy), _fmt(g.best_test_accuracy), str(r.n) if r else "0",
                      _fmt(r.mean) if r else "-", _fmt(r.half_width) if r else "-")  # fmt: skip
    console.print(table)
    if report.comparisons:
        pairs = "; ".join(f"{c.leader} vs {c.other}: t = {c.t:.2f}, p = {c.p:.3g}" for c in report.comparisons)
        console.print(f"[bold]Test:[/bold] {report.test} ({report.test_why}). {pairs}")
    if report.importances:
        ranked = ", ".join(f"{k} {v:.2f}" for k, v in report.importances.items())
        console.print(f"[bold]Parameter importances[/bold] (PED-ANOVA, completed search trials): {ranked}")
    console.print(f"[bold]Verdict:[/bold] {report.verdict}")


@click.command("report")
@click.option("--study", "study_name", required=True, help="The study's name.")
@click.option("--storage", help="Database URL (default: LRSEARCH_STORAGE, else sqlite:///lrsearch.db).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write a page.")
def command(study_name: str, storage: str | None, as_json: bool, html_path: Path | None) -> None:
    """Per compared group: best trial, mean ± 95% CI over repeats, counts; the test; importances; the verdict."""
    url = resolve_url(storage)
    if html_path is not None and not html_path.parent.is_dir():
        raise ConfigError(f"folder {html_path.parent} for --html does not exist")
    study = load_existing(study_name, open_storage(url, heartbeat=None))
    report = build_report(study)
    if html_path is not None:
        write_page(report, study.get_trials(deepcopy=False), html_path)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print_report(report, report_console())
