"""The report as one self-contained HTML page (plotly's script inlined once: it opens offline)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from optuna.trial import FrozenTrial

from lrsearch.errors import RuntimeFailure
from lrsearch.review.figures import accuracy_vs_lr, learning_curves, lr_curves
from lrsearch.review.report import StudyReport

__all__ = ["write_page"]

_STYLE = """body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right}
td:first-child,th:first-child{text-align:left}.verdict{font-size:1.15rem;background:#f3f6fa;padding:.8rem}
.charts section{margin:1.5rem 0}.note{color:#555}"""


def _table(report: StudyReport) -> str:
    header, rows = report.table()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="groups"><tr>{head}</tr>{body}</table>'


def _importances(report: StudyReport) -> str:
    import plotly.graph_objects as go

    ranked = sorted(report.importances.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in ranked], y=[k for k, _ in ranked], orientation="h"))
    fig.update_layout(
        title="Parameter importances (PED-ANOVA, completed search trials)",
        template="plotly_white",
        height=max(300, 28 * len(ranked) + 120),
        xaxis_title="importance",
    )
    return fig.to_html(
        full_html=False, include_plotlyjs=False, div_id="importances", default_width="100%", config={"responsive": True}
    )


def _discovered(report: StudyReport) -> str:
    """A PBT study's discovered schedule and the lineage it came down (nothing for a search)."""
    if report.discovered is None:
        return ""
    e = html.escape
    return (
        f'<section id="pbt"><p><strong>PBT\'s discovered schedule</strong> ({e(report.lineage_text())}), to replay '
        f"in a study file:</p><pre>{e(report.discovered['snippet'])}</pre></section>"
    )


def write_page(report: StudyReport, trials: Sequence[FrozenTrial], path: Path) -> None:
    """The comparison with its intervals and the verdict, the best trials' learning-rate and learning
    curves, accuracy against learning rate (pruned and diverged trials marked), the importances."""
    e = html.escape
    figures = [
        (name, build(trials, report.compare, metric=report.metric, maximize=report.maximize))
        for name, build in (
            ("lr_curves", lr_curves),
            ("learning_curves", learning_curves),
            ("accuracy_vs_lr", accuracy_vs_lr),
        )
    ]
    charts = [
        fig.to_html(
            full_html=False, include_plotlyjs=(i == 0), div_id=name, default_width="100%", config={"responsive": True}
        )
        for i, (name, fig) in enumerate(figures)
    ]
    if report.importances:
        charts.append(_importances(report))
    c = report.counts
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(report.study)}: lrsearch report</title>
<style>{_STYLE}</style></head><body>
<h1>{e(report.study)}</h1>
<p><strong>Question:</strong> {e(report.question)}</p>
<p class="verdict" id="verdict">{e(report.verdict)}</p>
<p>{c["complete"]} complete, {c["pruned"]} pruned ({c["diverged"]} diverged), {c["fail"]} failed trials;
{c["repeats"]} of them repeats (each group's best configuration re-run with new seeds).</p>
{_table(report)}
<p class="note">best val / its test: the group's best search trial (chosen on validation {e(report.metric)}; its
test {e(report.metric)} chose nothing). mean test ± 95% CI: the repeats' test {e(report.metric)}, a t-interval.</p>
<p><strong>Test:</strong> {e(report.test)} ({e(report.test_why)}). {e(report.tests_text())}</p>
{_discovered(report)}
<div class="charts">{"".join(f"<section>{chart}</section>" for chart in charts)}</div>
</body></html>
"""
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {path}: {exc.strerror}") from None
