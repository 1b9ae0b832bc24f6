"""``lrsearch report``: what a study answers, as tables, JSON or a self-contained HTML page."""

from __future__ import annotations

import html
import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lrsearch.errors import ConfigError, RuntimeFailure
from lrsearch.report import StudyReport, build_report
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


def write_html(report: StudyReport, path: Path) -> None:
    """A self-contained page with the comparison and the verdict."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(str(g.value))}</td><td>{g.trials}</td><td>{g.completed}</td><td>{g.pruned}</td>"
        f"<td>{g.diverged}</td><td>{_fmt(g.best_val_accuracy)}</td><td>{_fmt(g.best_test_accuracy)}</td>"
        f"<td>{e(str(g.repeats)) if g.repeats else '-'}</td></tr>"
        for g in report.groups
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(report.study)}: lrsearch report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.verdict{{font-size:1.15rem;background:#f3f6fa;padding:.8rem}}</style>
</head><body>
<h1>{e(report.study)}</h1><p><strong>Question:</strong> {e(report.question)}</p>
<p class="verdict" id="verdict">{e(report.verdict)}</p>
<table id="groups"><tr><th>{e(report.compare)}</th><th>trials</th><th>complete</th><th>pruned</th><th>diverged</th>
<th>best val</th><th>its test</th><th>repeats: test accuracy, mean ± 95% CI</th></tr>{rows}</table>
<p><strong>Test:</strong> {e(report.test)} ({e(report.test_why)})</p>
</body></html>
"""
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {path}: {exc.strerror}") from None


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
    report = build_report(load_existing(study_name, open_storage(url)))
    if html_path is not None:
        write_html(report, html_path)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print_report(report, report_console())
