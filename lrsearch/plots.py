"""Line charts to PNG (matplotlib) or self-contained HTML (plotly, opens offline)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lrsearch.errors import ConfigError, RuntimeFailure

__all__ = ["PLOT_FORMATS", "check_plot_path", "line_chart"]

PLOT_FORMATS = (".png", ".html")
Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def check_plot_path(path: Path) -> Path:
    """Reject an unsupported format or a missing folder before any work is done."""
    if path.suffix.lower() not in PLOT_FORMATS:
        raise ConfigError(f"plot file must end in .png or .html but got {path.name!r}")
    if not path.parent.is_dir():
        raise ConfigError(f"plot folder {path.parent} does not exist")
    return path


def line_chart(
    path: Path, series: Series, *, title: str, x_label: str, y_label: str, log_x: bool = False, log_y: bool = False,
    stepwise: bool = False,
) -> None:
    """One line per series (name -> (x, y)) on one chart, written to ``path``. ``stepwise`` holds each value
    until the next x (a rate is constant within its step)."""
    check_plot_path(path)
    axes = (log_x, log_y, stepwise)
    try:
        if path.suffix.lower() == ".png":
            _png(path, series, title, x_label, y_label, *axes)
        else:
            _html(path, series, title, x_label, y_label, *axes)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {path}: {exc}") from exc


def _png(path: Path, series: Series, title: str, x_label: str, y_label: str, log_x: bool, log_y: bool,
         stepwise: bool) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), label=name, linewidth=1.6, drawstyle="steps-post" if stepwise else "default")
    ax.set(title=title, xlabel=x_label, ylabel=y_label)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _html(path: Path, series: Series, title: str, x_label: str, y_label: str, log_x: bool, log_y: bool,
          stepwise: bool) -> None:  # fmt: skip
    import plotly.graph_objects as go

    shape = "hv" if stepwise else "linear"
    fig = go.Figure(
        [go.Scatter(x=list(x), y=list(y), mode="lines", name=name, line_shape=shape) for name, (x, y) in series.items()]
    )
    fig.update_layout(title=title, xaxis_title=x_label, yaxis_title=y_label, template="plotly_white")
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    fig.write_html(path, include_plotlyjs=True, full_html=True)
