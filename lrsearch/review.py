"""What a study shows in optuna-dashboard: a note with the question (written when the study is created) and
the current answer (rewritten at the end of each run), and charts kept with the study."""

from __future__ import annotations

import warnings

import optuna
import optuna_dashboard

from lrsearch.figures import accuracy_vs_lr, lr_curves
from lrsearch.report import StudyReport
from lrsearch.search.space import Choice, FloatRange, IntRange, Param
from lrsearch.studies import StudySpec

__all__ = ["CHARTS", "publish", "study_note"]

#: The ids of the charts kept with a study (saving one again replaces it).
CHARTS = ("lr_per_epoch", "accuracy_vs_lr")


def _describe(param: Param) -> str:
    if isinstance(param, Choice):
        return "one of " + ", ".join(f"`{Choice.encode(v)}`" for v in param.values)
    assert isinstance(param, FloatRange | IntRange)
    scale = ", log scale" if param.log else ""
    step = f", step {param.step}" if param.step not in (None, 1) else ""
    return f"{param.low:g} to {param.high:g}{scale}{step}"


def _question(spec: StudySpec) -> list[str]:
    space = spec.space
    lines = [f"# {spec.name}", "", f"**Question:** {spec.question}", "",
             f"**Trainer:** `{spec.trainer}`, {spec.epochs} epochs per trial. "
             f"**Compared:** `{spec.compare}`, the best of each group re-run with {spec.repeats} new seeds.", "",
             "**Search space:**", ""]  # fmt: skip
    lines += [f"- `{name}`: {_describe(param)}" for name, param in space.params.items()]
    for branch, entries in space.branches.items():
        lines += [f"- `{branch}.{k}` (when {branch}): {_describe(v) if isinstance(v, Choice | FloatRange | IntRange) else v}"
                  for k, v in entries.items()]  # fmt: skip
    lines += [f"- arm `{name}`: " + ", ".join(f"{k} = {v}" for k, v in settings.items()) for name, settings in space.arms.items()]
    if space.fixed:
        lines += ["- fixed: " + ", ".join(f"{k} = {v}" for k, v in space.fixed.items())]
    budget = [f"{spec.n_trials} search trials" if spec.n_trials else None,
              f"a {spec.timeout:g} s timeout" if spec.timeout else None]  # fmt: skip
    lines += ["", f"**Budget:** {' and '.join(b for b in budget if b)}; {spec.population} trials trained at once, "
              f"sampler `{spec.sampler}`, pruner `{spec.pruner}`."]  # fmt: skip
    return lines


def _answer(report: StudyReport) -> list[str]:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = ["", "## Answer so far", "", f"**Verdict:** {report.verdict}", "",
             f"| {report.compare} | trials | complete | pruned | diverged | best trial | best val | its test | "
             "repeats: test accuracy, mean ± 95% CI |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for g in report.groups:
        best = f"#{g.best_trial}" if g.best_trial is not None else "-"
        lines.append(f"| {g.value} | {g.trials} | {g.completed} | {g.pruned} | {g.diverged} | {best} | "
                     f"{fmt(g.best_val_accuracy)} | {fmt(g.best_test_accuracy)} | {g.repeats or '-'} |")  # fmt: skip
    if report.comparisons:
        pairs = "; ".join(f"{c.leader} vs {c.other}: t = {c.t:.2f}, p = {c.p:.3g}" for c in report.comparisons)
        lines += ["", f"**Test:** {report.test} ({report.test_why}). {pairs}."]
    if report.importances:
        ranked = ", ".join(f"`{k}` {v:.2f}" for k, v in report.importances.items())
        lines += ["", f"**Parameter importances** (PED-ANOVA): {ranked}."]
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plotly's deprecation chatter is not the user's business
        for chart, build in zip(CHARTS, (lr_curves, accuracy_vs_lr), strict=True):
            optuna_dashboard.save_plotly_graph_object(study, build(trials, spec.compare), graph_object_id=chart)
