from __future__ import annotations

from pathlib import Path

import torch

from lrsearch.engine import load_problem
from lrsearch.search.auto_population import resolve_auto_population
from lrsearch.spec.studies import load_study_file
from tests.conftest import write_study


def test_auto_is_measured_on_the_device_and_said(tmp_path: Path) -> None:
    problem = load_problem("blobs", device=torch.device("cpu"))
    said: list[str] = []
    spec = load_study_file(write_study(tmp_path, population='"auto"', n_trials=32))
    sized = resolve_auto_population(spec, problem, said.append)
    assert isinstance(sized.population, int) and 1 <= sized.population <= 8  # a quarter of 32
    assert said and said[0].startswith(f"population auto: {sized.population} on cpu")
    given = load_study_file(write_study(tmp_path, population=4))
    assert resolve_auto_population(given, problem, said.append) is given and len(said) == 1
