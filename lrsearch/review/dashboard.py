"""What a study shows in optuna-dashboard: a note with the question (written when the study is created) and
the current answer (rewritten at the end of each run), and charts kept with the study."""

from __future__ import annotations

import optuna
import optuna_dashboard

from lrsearch.review.figures import accuracy_vs_lr, lr_curves
from lrsearch.review.report import StudyReport
from lrsearch.spec.space import Choice, FloatRange, IntRange, Param
from lrsearch.spec.studies import AUTO, StudySpec

__all__ = ["CHARTS", "publish", "study_note"]

#: The ids of the charts kept with a study (saving one again replaces it).
CHARTS = ("lr_per_epoch", "accuracy_vs_lr")


def _seeds(spec: StudySpec) -> str:
    if spec.max_repeats is None or spec.max_repeats == spec.repeats:
        return f"{spec.repeats} new seeds"
    return (
        f"{spec.repeats} to {spec.max_repeats} new seeds (more for the two leading groups until their "
        "difference is significant)"
    )


def _describe(param: Param) -> str:
    if isinstance(param, Choice):
        return "one of " + ", ".join(f"`{Choice.encode(v)}`" for v in param.values)
    assert isinstance(param, FloatRange | IntRange)
    scale = ", log scale" if param.log else ""
    step = f", step {param.step}" if param.step not in (None, 1) else ""
    return f"{param.low:g} to {param.high:g}{scale}{step}"


def _question(spec: StudySpec) -> list[str]:
    space = spec.space
    lines = [
        f"# {spec.name}",
        "",
        f"**Question:** {spec.question}",
        "",
        (
            f"**Trainer:** `{spec.trainer}`, {spec.epochs} epochs per trial. "
            f"**Compared:** `{spec.compare}`, the best of each group re-run with {_seeds(spec)}."
        ),
        "",
        "**Search space:**",
        "",
    ]
    lines += [f"- `{name}`: {_describe(param)}" for name, param in space.params.items()]
    for branch, entries in space.branches.items():
        lines += [
            f"- `{branch}.{k}` (when {branch}): {_describe(v) if isinstance(v, Choice | FloatRange | IntRange) else v}"
            for k, v in entries.items()
        ]
    lines += [
        f"- arm `{name}`: " + ", ".join(f"{k} = {v}" for k, v in settings.items())
        for name, settings in space.arms.items()
    ]
    if space.fixed:
        lines += ["- fixed: " + ", ".join(f"{k} = {v}" for k, v in space.fixed.items())]
    budget = [
        f"{spec.n_trials} search trials" if spec.n_trials else None,
        f"a {spec.timeout:g} s timeout" if spec.timeout else None,
    ]
    at_once = (
        "as many trials as trains fastest on each worker's device"
        if spec.population == AUTO
        else (f"{spec.population} trials")
    )
    lines += [
        "",
        (
            f"**Budget:** {' and '.join(b for b in budget if b)}; {at_once} trained at once, "
            f"sampler `{spec.sampler}`, pruner `{spec.pruner}`."
        ),
    ]
    return lines


def _answer(report: StudyReport) -> list[str]:
    header, rows = report.table()
    lines = [
        "",
        "## Answer so far",
        "",
        f"**Verdict:** {report.verdict}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        f"Repeats: the best configuration of each group re-run with new seeds; their test {report.metric}.",
    ]
    if report.comparisons:
        lines += ["", f"**Test:** {report.test} ({report.test_why}). {report.tests_text()}."]
    if report.importances:
        lines += ["", f"**Parameter importances** (PED-ANOVA): {report.importances_text()}."]
    if report.discovered is not None:
        lines += [
            "",
            f"**PBT's discovered schedule** ({report.lineage_text()}), to replay in a study file:",
            "",
            "```toml",
            report.discovered["snippet"].rstrip(),
            "```",
        ]
    return lines


def study_note(spec: StudySpec, report: StudyReport | None = None) -> str:
    """The study's note: the question, search space and budget; with a report, the answer so far."""
    return "\n".join(_question(spec) + (_answer(report) if report is not None else [])) + "\n"


def publish(study: optuna.Study, spec: StudySpec, report: StudyReport | None = None) -> None:
    """Write the note and, once trials have finished, the charts."""
    optuna_dashboard.save_note(study, study_note(spec, report))
    if report is None:
        return
    trials = study.get_trials(deepcopy=False)
    for chart, build in zip(CHARTS, (lr_curves, accuracy_vs_lr), strict=True):
        figure = build(trials, spec.compare, metric=report.metric, maximize=report.maximize)
        optuna_dashboard.save_plotly_graph_object(study, figure, graph_object_id=chart)
