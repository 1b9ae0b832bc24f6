from __future__ import annotations

from pathlib import Path

import pytest

from lrsearch.errors import ConfigError
from lrsearch.plots import check_plot_path, line_chart


@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_writes_both_formats(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"chart{suffix}"
    line_chart(path, {"a": ([0, 1, 2], [1.0, 0.5, 0.1]), "b": ([0, 1, 2], [0.2, 0.2, 0.2])},
               title="t", x_label="x", y_label="y", log_y=True, stepwise=True)  # fmt: skip
    assert path.stat().st_size > 1000


@pytest.mark.parametrize(("name", "message"), [("chart.svg", "must end in .png or .html"), ("nowhere/c.png", "does not exist")])
def test_rejected_before_any_work(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_plot_path(tmp_path / name)
