from __future__ import annotations

import json
import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState
from scipy import stats

from lrsearch.review.report import build_report
from lrsearch.schema import METADATA, REPEAT_OF
from lrsearch.search.evidence import t_interval

GROUPS = ("cosine", "step", "constant")


def add(
    study: optuna.Study,
    schedule: str,
    value: float | None,
    *,
    state: TrialState = TrialState.COMPLETE,
    test: float | None = None,
    repeat_of: int | None = None,
    diverged: bool = False,
    lr: float = 0.1,
) -> int:
    attrs: dict[str, object] = {"test_accuracy": test if test is not None else value, "diverged": diverged}
    if repeat_of is not None:
        attrs[REPEAT_OF] = repeat_of
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            value=value if state == TrialState.COMPLETE else None,
            params={"schedule": schedule, "lr": lr},
            distributions={"schedule": CategoricalDistribution(GROUPS), "lr": FloatDistribution(0.01, 1.0, log=True)},
            user_attrs=attrs,
            intermediate_values={1: value or 0.0},
        )
    )
    return len(study.trials) - 1


def study_with(repeats: dict[str, list[float]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize", study_name="known")
    study.set_user_attr(METADATA, {"question": "Is cosine better?", "compare": "schedule", "trainer": "blobs"})
    for i, schedule in enumerate(repeats):
        add(study, schedule, 0.80 + i / 100, lr=0.05 * (i + 1))
        best = add(study, schedule, 0.90 - i / 100, lr=0.02 * (i + 1))
        add(study, schedule, 0.5, state=TrialState.PRUNED, diverged=True)
        for value in repeats[schedule]:
            add(study, schedule, value, repeat_of=best)
    return study


def test_t_interval() -> None:
    interval = t_interval([1.0, 2.0, 3.0])
    assert interval is not None and interval.mean == 2.0
    assert interval.half_width == pytest.approx(stats.t.ppf(0.975, 2) * 1 / math.sqrt(3))
    single = t_interval([0.5, float("nan")])
    assert single is not None and single.n == 1 and single.half_width is None
    assert t_interval([]) is None


def test_a_clear_winner() -> None:
    report = build_report(study_with({"cosine": [0.90, 0.91, 0.92], "step": [0.80, 0.81, 0.79]}))
    cosine, step = (next(g for g in report.groups if g.value == v) for v in ("cosine", "step"))
    assert step.repeats is not None and step.repeats.mean == pytest.approx(0.80)
    assert (cosine.trials, cosine.completed, cosine.pruned, cosine.diverged) == (3, 2, 1, 1)
    assert cosine.best_val == pytest.approx(0.90) and cosine.best_params["lr"] == pytest.approx(0.02)
    assert cosine.repeats is not None and cosine.repeats.mean == pytest.approx(0.91) and cosine.repeats.n == 3
    expected = stats.ttest_ind([0.90, 0.91, 0.92], [0.80, 0.81, 0.79], equal_var=False)
    (comparison,) = report.comparisons
    assert (comparison.leader, comparison.other) == ("cosine", "step")
    assert comparison.p == pytest.approx(expected.pvalue) and comparison.t == pytest.approx(expected.statistic)
    assert report.verdict.startswith("schedule = cosine wins over the runner-up: test accuracy 0.9100 ± ")
    assert "every other group" not in report.verdict  # there is no other
    assert "Welch's t-test p = " in report.verdict and report.question == "Is cosine better?"
    assert report.counts["repeats"] == 6 and report.counts["diverged"] == 2
    json.dumps(report.to_json())  # plain JSON


def test_overlapping_repeats_are_no_evidence_of_a_difference() -> None:
    report = build_report(study_with({"cosine": [0.90, 0.85, 0.88], "step": [0.89, 0.84, 0.87]}))
    assert report.verdict.startswith("No significant difference between the two best: schedule = cosine leads")
    assert report.comparisons[0].p > 0.05


def test_an_undecided_answer_says_how_large_a_difference_the_repeats_rule_out() -> None:
    report = build_report(study_with({"cosine": [0.90, 0.85, 0.88], "step": [0.89, 0.84, 0.87]}))
    gap = report.difference
    assert gap is not None and gap.mean == pytest.approx(0.01) and gap.low < 0 < gap.high
    assert f"rule out a difference larger than {gap.bound:.4f} in test accuracy either way" in report.verdict
    assert f"difference +0.0100, 95.00% CI [{gap.low:+.4f}, {gap.high:+.4f}]" in report.verdict
    json.dumps(report.to_json())


def test_a_group_whose_repeats_all_collapsed_is_degenerate_not_a_win() -> None:
    """Every repeat of step at chance, the same value: Welch's test would give p = 0 against any spread."""
    report = build_report(study_with({"cosine": [0.90, 0.85, 0.88], "step": [0.10, 0.10, 0.10]}))
    step = next(g for g in report.groups if g.value == "step")
    assert step.degenerate and not report.comparisons and report.difference is None
    assert "wins" not in report.verdict
    assert "The repeats of schedule = step are all the same value (degenerate" in report.verdict


def test_a_sequential_study_tests_at_its_look_level() -> None:
    study = study_with({"cosine": [0.90, 0.91, 0.92], "step": [0.88, 0.89, 0.885]})
    meta = {**study.user_attrs[METADATA], "repeats": 3, "max_repeats": 10}
    study.set_user_attr(METADATA, meta)
    report = build_report(study)
    assert report.level == pytest.approx(0.05 / 8)
    assert 0.05 / 8 < report.comparisons[0].p < 0.05  # significant at 0.05, not at the look level
    assert report.verdict.startswith("No significant difference") and "each look of the sequential" in report.verdict


def test_holm_correction_with_three_groups() -> None:
    repeats = {"cosine": [0.90, 0.91, 0.92], "step": [0.80, 0.81, 0.79], "constant": [0.88, 0.89, 0.885]}
    report = build_report(study_with(repeats))
    raw = {g: stats.ttest_ind(repeats["cosine"], repeats[g], equal_var=False).pvalue for g in ("step", "constant")}
    ordered = sorted(raw, key=raw.get)  # Holm: smallest p times 2, the next times 1, kept monotone
    expected = {ordered[0]: min(1, raw[ordered[0]] * 2)}
    expected[ordered[1]] = max(expected[ordered[0]], min(1, raw[ordered[1]]))
    assert {c.other: c.p for c in report.comparisons} == pytest.approx(expected)
    assert report.verdict.startswith("schedule = cosine wins over the runner-up and every other group")


def test_the_verdict_names_the_groups_the_leader_beats() -> None:
    repeats = {"cosine": [0.90, 0.91, 0.92], "step": [0.70, 0.71, 0.69], "constant": [0.90, 0.905, 0.91]}
    verdict = build_report(study_with(repeats)).verdict
    assert verdict.startswith("No significant difference between the two best: schedule = cosine leads")
    assert verdict.endswith("It is significantly better than step (Holm-corrected p < 0.05).")


def test_without_repeats_the_verdict_says_it_is_one_draw() -> None:
    report = build_report(study_with({"cosine": [], "step": []}))
    assert all(g.repeats is None for g in report.groups) and not report.comparisons
    assert "has the best single trial" in report.verdict and "not evidence" in report.verdict


def test_importances_from_search_trials() -> None:
    study = study_with({"cosine": [0.9, 0.91], "step": [0.8, 0.82]})
    for i in range(8):
        add(study, GROUPS[i % 2], 0.7 + 0.02 * i, lr=0.01 * 1.5**i)
    importances = build_report(study).importances
    assert set(importances) == {"schedule", "lr"} and sum(importances.values()) == pytest.approx(1.0, abs=1e-3)
