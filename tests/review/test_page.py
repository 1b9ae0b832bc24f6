from __future__ import annotations

import re
from pathlib import Path

import optuna

from lrsearch.review.page import write_page
from lrsearch.review.report import build_report
from lrsearch.storage.opening import open_storage
from tests.conftest import Reviewed


def test_one_self_contained_page(reviewed: Reviewed, tmp_path: Path) -> None:
    study = optuna.load_study(study_name="small", storage=open_storage(reviewed.url, None))
    report = build_report(study)
    page = tmp_path / "r.html"
    write_page(report, study.get_trials(), page)
    text = page.read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", text)  # nothing fetched: it opens offline
    assert text.count("plotly.js v") == 1  # plotly's script, inlined once
    for chart in ("lr_curves", "learning_curves", "accuracy_vs_lr", "importances"):
        assert f'id="{chart}"' in text
    assert report.verdict.split(":")[0] in text and 'id="groups"' in text
    for group in report.groups:
        assert f"<td>{group.value}</td>" in text
