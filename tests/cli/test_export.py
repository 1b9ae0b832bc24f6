from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.cli.conftest import Outcome, assert_one_line_error
from tests.conftest import write_study


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_each_format(lrsearch: Callable[..., Outcome], tmp_path: Path, suffix: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert lrsearch("run", "--study", str(write_study(tmp_path, n_trials=3, population=3)), "--storage", url).code == 0
    out = tmp_path / f"trials{suffix}"
    outcome = lrsearch("export", "--study", "small", "--storage", url, "--out", str(out))
    assert outcome.code == 0 and "3 trials" in outcome.out
    frame = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".json": pd.read_json}[suffix](out)
    assert len(frame) == 3
    assert {"number", "value_val_accuracy", "state", "params_lr", "params_schedule", "user_attrs_test_accuracy"} <= set(
        frame.columns
    )  # the metric is named


@pytest.mark.parametrize(
    ("name", "fragment"), [("t.xlsx", "must end in .csv, .parquet or .json"), ("no/dir/t.csv", "does not exist")]
)
def test_bad_output(lrsearch: Callable[..., Outcome], tmp_path: Path, name: str, fragment: str) -> None:
    assert_one_line_error(lrsearch("export", "--study", "x", "--out", str(tmp_path / name)), 2, fragment)


def test_a_study_that_does_not_exist_creates_no_database(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    outcome = lrsearch(
        "export", "--study", "x", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--out", str(tmp_path / "t.csv")
    )
    assert_one_line_error(outcome, 2, f"no study database at {tmp_path / 's.db'}")
    assert list(tmp_path.iterdir()) == []
