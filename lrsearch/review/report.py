"""What a study says: per compared group its counts and best trial, the mean and 95% interval over the
repeats of that best configuration, a significance test between the groups, the parameter importances,
and the verdict in one sentence.

The evidence is the repeats: a group's best trial is the maximum of many noisy runs, so its own value is
flattering; its repeats (the same configuration, new seeds) were not selected. They are compared on the
test split's metric (accuracy, or the problem's own; higher or lower better as the study's direction says),
which chose nothing (the search chose on validation).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from lrsearch.schema import PBT_SCHEDULE, REPEAT_OF
from lrsearch.search.evidence import ALPHA, Difference, Interval, degenerate, difference, look_level, t_interval, welch
from lrsearch.search.pbt import lineage, study_snippet
from lrsearch.search.repeats import best_per_group, group_of
from lrsearch.search.study import metadata, metric_of

__all__ = ["Comparison", "GroupSummary", "StudyReport", "build_report"]

TEST_NAME = "Welch's t-test"
TEST_WHY = (
    "two-sided, on the repeats' test {metric}: the repeats are independent runs (new seeds) of each group's best "
    "configuration, and Welch's test does not assume equal variances in the groups; with more than two groups the "
    "leader is tested against each other group with Holm's correction"
)


@dataclasses.dataclass(frozen=True)
class GroupSummary:
    value: Any
    trials: int
    completed: int
    pruned: int
    diverged: int
    failed: int
    best_trial: int | None
    best_val: float | None
    best_test: float | None
    best_params: dict[str, Any]
    repeats: Interval | None  # test metric of the best configuration's repeats
    degenerate: bool = False  # two or more repeats, all the same value: no spread, no test


@dataclasses.dataclass(frozen=True)
class Comparison:
    leader: Any
    other: Any
    t: float
    p: float  # Holm-corrected when there are several comparisons


@dataclasses.dataclass(frozen=True)
class StudyReport:
    study: str
    question: str
    trainer: str
    compare: str
    counts: dict[str, int]
    groups: list[GroupSummary]
    comparisons: list[Comparison]
    importances: dict[str, float]
    verdict: str
    metric: str = "accuracy"
    maximize: bool = True
    test: str = TEST_NAME
    test_why: str = TEST_WHY.format(metric="accuracy")
    #: The leader less the runner-up, with its interval at 1 - ``level`` (None without two tested groups).
    difference: Difference | None = None
    #: The level a difference is significant at: 0.05, or a sequential study's per-look level.
    level: float = ALPHA
    #: A PBT study's best trial, its lineage ([trial, the last epoch it contributed]) and the schedule its
    #: weights followed, as a study-file snippet (``search.pbt``); None for a search.
    discovered: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {str(k): clean(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            return value

        out = dataclasses.asdict(self)
        for group, summary in zip(out["groups"], self.groups, strict=True):
            if summary.repeats is not None:
                group["repeats"] = {
                    "n": summary.repeats.n,
                    "mean": summary.repeats.mean,
                    "ci95_half_width": summary.repeats.half_width,
                    "values": list(summary.repeats.values),
                }
        return clean(out)

    def table(self) -> tuple[list[str], list[list[str]]]:
        """The comparison as text, a row per group: what the terminal, the study note and the page show."""
        header = [
            self.compare or "group",
            "trials",
            "complete",
            "pruned",
            "diverged",
            "best trial",
            "best val",
            "its test",
            "repeats",
            "mean test",
            "± 95% CI",
        ]
        rows = []
        for g in self.groups:
            r = g.repeats
            rows.append(
                [
                    str(g.value),
                    str(g.trials),
                    str(g.completed),
                    str(g.pruned),
                    str(g.diverged),
                    "-" if g.best_trial is None else f"#{g.best_trial}",
                    _fmt(g.best_val),
                    _fmt(g.best_test),
                    str(r.n) if r else "0",
                    _fmt(r.mean) if r else "-",
                    _fmt(r.half_width) if r else "-",
                ]
            )
        return header, rows

    def tests_text(self) -> str:
        """Each comparison's t and p, in one line."""
        return "; ".join(f"{c.leader} vs {c.other}: t = {c.t:.2f}, p = {c.p:.3g}" for c in self.comparisons)

    def lineage_text(self) -> str:
        """A PBT study's best member and whose weights it went on from, in one line ("" for a search)."""
        if self.discovered is None:
            return ""
        path = " -> ".join(f"#{number} to epoch {until}" for number, until in self.discovered["lineage"])
        return f"best member #{self.discovered['trial']}; its weights' lineage: {path}"

    def importances_text(self) -> str:
        """The parameter importances, highest first, in one line."""
        return ", ".join(f"{k} {v:.2f}" for k, v in self.importances.items())


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _test(trial: FrozenTrial, metric: str) -> float | None:
    value = trial.user_attrs.get(f"test_{metric}")
    return float(value) if value is not None else None


def _group_summary(
    value: Any, trials: list[FrozenTrial], best: FrozenTrial | None, repeats: list[FrozenTrial], metric: str
) -> GroupSummary:
    def count(state: TrialState) -> int:
        return sum(t.state == state for t in trials)

    return GroupSummary(
        value=value,
        trials=len(trials),
        completed=count(TrialState.COMPLETE),
        pruned=count(TrialState.PRUNED),
        diverged=sum(bool(t.user_attrs.get("diverged")) for t in trials),
        failed=count(TrialState.FAIL),
        best_trial=best.number if best else None,
        best_val=best.value if best else None,
        best_test=_test(best, metric) if best else None,
        best_params=dict(best.params) if best else {},
        repeats=t_interval(values := [_test(t, metric) for t in repeats if t.state == TrialState.COMPLETE]),
        degenerate=degenerate(values),
    )


def _tested(groups: list[GroupSummary], maximize: bool) -> list[GroupSummary]:
    """Groups with at least two repeats that spread, best mean first: the ones a test can compare (a
    degenerate group has nothing to test against)."""
    sign = -1 if maximize else 1
    testable = (g for g in groups if g.repeats and g.repeats.n >= 2 and not g.degenerate)
    return sorted(testable, key=lambda g: sign * g.repeats.mean)  # type: ignore[union-attr]


def _comparisons(tested: list[GroupSummary]) -> list[Comparison]:
    """The leader against each other tested group (``_tested``: best first)."""
    if len(tested) < 2:
        return []
    leader, others = tested[0], tested[1:]
    raw = []
    for other in others:
        test = welch(leader.repeats.values, other.repeats.values)  # type: ignore[union-attr]
        raw.append((other, test.t, test.p))
    # Holm: the k-th smallest of m p-values times (m - k), kept monotone.
    order = sorted(range(len(raw)), key=lambda i: raw[i][2] if math.isfinite(raw[i][2]) else 1.0)
    adjusted = [1.0] * len(raw)
    running = 0.0
    for rank, i in enumerate(order):
        p = raw[i][2] if math.isfinite(raw[i][2]) else 1.0
        running = max(running, min(1.0, p * (len(raw) - rank)))
        adjusted[i] = running
    return [Comparison(leader.value, other.value, t, adjusted[i]) for i, (other, t, _) in enumerate(raw)]


def _verdict(
    compare: str,
    groups: list[GroupSummary],
    comparisons: list[Comparison],
    metric: str,
    maximize: bool,
    gap: Difference | None,
    level: float,
) -> str:
    stuck = [str(g.value) for g in groups if g.degenerate]
    caveat = (
        f" The repeats of {compare} = {', '.join(stuck)} are all the same value (degenerate: no spread to test "
        "against), so they are no evidence either way."
        if stuck
        else ""
    )
    if comparisons and gap is not None:
        leader, runner_up = _tested(groups, maximize)[:2]
        p = comparisons[0].p  # against the runner-up
        at = "" if level == ALPHA else f", each look of the sequential repeats at {level:.3g}"
        figures = (
            f"test {metric} {leader.repeats} vs {runner_up.repeats} for {compare} = {runner_up.value} "
            f"(95% CI over repeats; difference {gap.mean:+.4f}, {gap.level:.2%} CI [{gap.low:+.4f}, {gap.high:+.4f}]; "
            f"{TEST_NAME} p = {p:.3g}{at})"
        )
        if p < level:
            rest = " and every other group" if len(comparisons) > 1 and all(c.p < level for c in comparisons) else ""
            return f"{compare} = {leader.value} wins over the runner-up{rest}: {figures}.{caveat}"
        beaten = [str(c.other) for c in comparisons if c.p < level]
        beats = (
            f" It is significantly better than {', '.join(beaten)} (Holm-corrected p < {level:.3g})." if beaten else ""
        )
        return (
            f"No significant difference between the two best: {compare} = {leader.value} leads with {figures}; "
            f"these repeats rule out a difference larger than {gap.bound:.4f} in test {metric} either way, "
            f"and more repeats would be needed to separate them.{beats}{caveat}"
        )
    sign = -1 if maximize else 1
    ranked = sorted((g for g in groups if g.best_val is not None), key=lambda g: sign * g.best_val)  # type: ignore[operator]
    if not ranked:
        return "No trial has completed yet: nothing to compare."
    if len(ranked) == 1:
        return f"Only {compare} = {ranked[0].value} has completed trials: nothing to compare it with.{caveat}"
    return (
        f"{compare} = {ranked[0].value} has the best single trial (val {metric} {ranked[0].best_val:.4f} "
        f"vs {ranked[1].best_val:.4f}), but without repeats of at least two seeds per group that spread this is "
        f"one draw each, not evidence.{caveat}"
    )


def _importances(study: optuna.Study, trials: list[FrozenTrial]) -> dict[str, float]:
    completed = [t for t in trials if t.state == TrialState.COMPLETE and REPEAT_OF not in t.user_attrs]
    if len(completed) < 3:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError):  # too few distinct values, or a space that changed between trials
        return {}
    return {k: round(float(v), 4) for k, v in importances.items()}


def _group_order(value: Any) -> tuple[int, float, str]:
    """Numbers by value, then everything else by name."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _discovered(trials: list[FrozenTrial], maximize: bool) -> dict[str, Any] | None:
    """What a PBT study's best completed member followed, through its lineage."""
    members = {t.number: t for t in trials if PBT_SCHEDULE in t.user_attrs}  # written with its exploits
    done = [t for t in members.values() if t.state == TrialState.COMPLETE and t.value is not None]
    if not done:
        return None
    best = (max if maximize else min)(done, key=lambda t: t.value)  # type: ignore[arg-type, return-value]
    pieces = lineage(members, best.number)
    found = best.user_attrs[PBT_SCHEDULE]
    return {
        "trial": best.number,
        "lineage": [list(piece) for piece in pieces],
        "schedule": found,
        "snippet": study_snippet(found),
    }


def build_report(study: optuna.Study) -> StudyReport:
    meta = metadata(study)
    compare = meta.get("compare", "")
    trials = study.get_trials(deepcopy=False)
    search = [t for t in trials if REPEAT_OF not in t.user_attrs]
    maximize, metric = study.direction == StudyDirection.MAXIMIZE, metric_of(study)
    best = best_per_group(trials, compare, maximize=maximize)
    values = sorted({group_of(t, compare) for t in search} - {None}, key=_group_order)
    groups = [
        _group_summary(
            value,
            [t for t in search if group_of(t, compare) == value],
            best.get(value),
            [t for t in trials if best.get(value) is not None and t.user_attrs.get(REPEAT_OF) == best[value].number],
            metric,
        )
        for value in values
    ]
    tested = _tested(groups, maximize)
    comparisons = _comparisons(tested)
    most = meta.get("max_repeats", meta.get("repeats", 0))
    level = look_level(meta.get("repeats", 0), most) if most > meta.get("repeats", 0) else ALPHA
    # The difference's interval at the level it is tested at: it excludes zero exactly when the test rejects.
    pair = [g.repeats.values for g in tested[:2] if g.repeats is not None]
    gap = difference(*pair, level=1 - level) if len(pair) == 2 else None
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    counts["diverged"] = sum(bool(t.user_attrs.get("diverged")) for t in trials)
    counts["repeats"] = len(trials) - len(search)
    return StudyReport(
        study=study.study_name,
        question=meta.get("question", ""),
        trainer=meta.get("trainer", ""),
        compare=compare,
        counts=counts,
        groups=groups,
        comparisons=comparisons,
        importances=_importances(study, trials),
        verdict=_verdict(compare, groups, comparisons, metric, maximize, gap, level),
        metric=metric,
        maximize=maximize,
        test_why=TEST_WHY.format(metric=metric),
        difference=gap,
        level=level,
        discovered=_discovered(search, maximize),
    )
