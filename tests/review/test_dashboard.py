from __future__ import annotations

import json

import optuna
import optuna_dashboard
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects

from lrsearch.review.dashboard import CHARTS, publish, study_note
from lrsearch.review.report import build_report
from lrsearch.spec.files import find_study
from lrsearch.spec.studies import load_study_file
from lrsearch.storage.opening import open_storage
from tests.conftest import Reviewed


def system_attrs(study: optuna.Study) -> dict:
    return study._storage.get_study_system_attrs(study._study_id)


def test_the_note_states_the_question_space_and_budget() -> None:
    spec = load_study_file(find_study("cosine_vs_step"))
    note = study_note(spec)
    assert note.startswith("# cosine_vs_step\n") and spec.question in note
    assert "`fashion_mnist`, 8 epochs per trial" in note
    assert "- `lr`: 0.02 to 0.5, log scale" in note and "- `schedule`: one of `cosine`, `step`" in note
    assert "- `step.milestones` (when step): one of `4,6`, `5,7`, `6`" in note
    assert "16 search trials" in note and "pruner `median`" in note and "Answer" not in note


def test_a_run_leaves_the_answer_and_the_charts_with_the_study(reviewed: Reviewed) -> None:
    study = optuna.load_study(study_name="small", storage=open_storage(reviewed.url, None))
    note = optuna_dashboard.get_note(study)
    report = build_report(study)
    assert "**Question:**" in note and "## Answer so far" in note and report.verdict in note
    for group in report.groups:
        assert f"| {group.value} | {group.trials} |" in note
    charts = get_plotly_graph_objects(system_attrs(study))
    assert set(charts) == set(CHARTS)
    lr_chart = json.loads(charts["lr_per_epoch"])
    assert len(lr_chart["data"]) == len(report.groups) and all(len(t["y"]) == 12 for t in lr_chart["data"])
    assert sum(len(t["x"]) for t in json.loads(charts["accuracy_vs_lr"])["data"]) == 8  # every search trial


def test_publishing_again_replaces_the_note_and_charts(reviewed: Reviewed) -> None:
    study = optuna.load_study(study_name="small", storage=open_storage(reviewed.url, None))
    spec = load_study_file(reviewed.folder / "small.toml")
    before = len(system_attrs(study))
    publish(study, spec, build_report(study))
    study = optuna.load_study(study_name="small", storage=open_storage(reviewed.url, None))
    assert set(get_plotly_graph_objects(system_attrs(study))) == set(CHARTS)
    assert optuna_dashboard.get_note(study) == study_note(spec, build_report(study))
    assert len(system_attrs(study)) <= before + 2  # a note version, not a second copy of everything
