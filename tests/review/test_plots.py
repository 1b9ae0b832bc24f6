from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from lrsearch.errors import ConfigError
from lrsearch.review.plots import Panel, check_plot_path, line_chart, svg_panels


@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_writes_both_formats(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"chart{suffix}"
    line_chart(
        path,
        {"a": ([0, 1, 2], [1.0, 0.5, 0.1]), "b": ([0, 1, 2], [0.2, 0.2, 0.2])},
        title="t",
        x_label="x",
        y_label="y",
        log_y=True,
        stepwise=True,
    )
    assert path.stat().st_size > 1000


@pytest.mark.parametrize(
    ("name", "message"), [("chart.svg", "must end in .png or .html"), ("nowhere/c.png", "does not exist")]
)
def test_rejected_before_any_work(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_plot_path(tmp_path / name)


def test_svg_panels_are_one_valid_document() -> None:
    svg = svg_panels(
        [
            Panel("learning rate", [1, 2, 3], {"lr": [0.1, 0.01, 0.001]}, log_y=True),
            Panel("loss", [1, 2, 3], {"train": [1.0, float("nan"), 0.2], "validation": [1.1, 0.6, 0.3]}),
        ],
        title="trial <7>",
    )
    root = ElementTree.fromstring(svg)
    lines = root.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert root.get("width") == "600" and len(lines) == 3
    assert [len(line.get("points", "").split()) for line in lines] == [3, 2, 3]  # the NaN is left out
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "trial <7>" in texts and {"train", "validation", "learning rate"} <= set(texts)
    assert "0.1" in texts and "0.001" in texts  # the log axis is labelled in rates, not exponents


@pytest.mark.parametrize("values", [[], [float("nan")], [0.0, -1.0]])
def test_svg_panel_without_drawable_values(values: list[float]) -> None:
    svg = svg_panels([Panel("lr", list(range(len(values))), {"lr": values}, log_y=True)])
    assert ElementTree.fromstring(svg).find(".//{http://www.w3.org/2000/svg}polyline") is None
