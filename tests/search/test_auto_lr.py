from __future__ import annotations

from pathlib import Path

import torch

from lrsearch.engine import load_problem
from lrsearch.search.auto_lr import LR_RANGE, resolve_auto_lr
from lrsearch.search.runner import worker_id
from lrsearch.search.study import join_study
from lrsearch.spec.space import FloatRange
from lrsearch.spec.studies import load_study_file
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import resolve_url
from tests.conftest import write_study


def test_auto_runs_the_range_test_once_per_study(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    path.write_text(path.read_text().replace("lr = { low = 0.001, high = 0.3, log = true }", 'lr = "auto"'))
    spec = load_study_file(path)
    assert spec.space.params["lr"].auto  # type: ignore[union-attr]
    url = resolve_url(f"sqlite:///{tmp_path / 's.db'}")
    study = join_study(spec, open_storage(url), worker=worker_id())
    problem = load_problem("blobs", device=torch.device("cpu"))
    resolved = resolve_auto_lr(spec, study, problem)
    found = study.user_attrs[LR_RANGE]
    assert resolved.space.params["lr"] == FloatRange(found["low"], found["high"], log=True)
    assert found["low"] < found["suggested"] < found["high"]
    # A second worker reads the stored range instead of testing again.
    study.set_user_attr(LR_RANGE, {"low": 0.01, "high": 0.2, "suggested": 0.05})
    again = resolve_auto_lr(spec, join_study(spec, open_storage(url), worker="other:1"), problem)
    assert again.space.params["lr"] == FloatRange(0.01, 0.2, log=True)
    assert resolve_auto_lr(again, study, problem) is again  # nothing automatic left to resolve
