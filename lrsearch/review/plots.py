"""Line charts to PNG (matplotlib) or self-contained HTML (plotly, opens offline), and small multi-panel
SVG charts written by hand (a trial's curves: microseconds each, where matplotlib takes a tenth of a second
or more, longer than training a blobs trial)."""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from lrsearch.errors import ConfigError, RuntimeFailure

__all__ = ["PLOT_FORMATS", "Panel", "check_plot_path", "line_chart", "svg_panels"]

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
    path: Path,
    series: Series,
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    log_y: bool = False,
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


def _png(
    path: Path, series: Series, title: str, x_label: str, y_label: str, log_x: bool, log_y: bool, stepwise: bool
) -> None:
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


def _html(
    path: Path, series: Series, title: str, x_label: str, y_label: str, log_x: bool, log_y: bool, stepwise: bool
) -> None:
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


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


@dataclasses.dataclass(frozen=True)
class Panel:
    """One chart of an SVG row: named lines over a shared x."""

    title: str
    x: Sequence[float]
    lines: Mapping[str, Sequence[float]]
    log_y: bool = False


def svg_panels(panels: Sequence[Panel], *, title: str = "", width: int = 300, height: int = 220) -> str:
    """Panels side by side in one self-contained SVG document; non-finite points are left out (a log axis
    also leaves out values <= 0)."""
    top = 22 if title else 0
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * len(panels)}" height="{height + top}" '
            f'font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>'
        )
    ]
    if title:
        parts.append(f'<text x="8" y="15" font-size="13" font-weight="bold">{html.escape(title)}</text>')
    for i, panel in enumerate(panels):
        parts.append(f'<g transform="translate({i * width},{top})">{_svg_panel(panel, width, height)}</g>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_panel(panel: Panel, width: int, height: int) -> str:
    left, right, top, bottom = 52, 10, 20, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    scale = (lambda v: math.log10(v)) if panel.log_y else (lambda v: v)
    usable = lambda v: v is not None and math.isfinite(v) and (v > 0 or not panel.log_y)
    ys = [scale(v) for line in panel.lines.values() for v in line if usable(v)]
    out = [
        f'<text x="{left}" y="13" font-weight="bold">{html.escape(panel.title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    if not ys or not panel.x:
        return "".join(out)
    x0, x1 = min(panel.x), max(panel.x)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    px = lambda x: left + (x - x0) / ((x1 - x0) or 1) * plot_w
    py = lambda y: top + plot_h - (y - y0) / (y1 - y0) * plot_h
    for k in range(3):
        y = y0 + (y1 - y0) * k / 2
        label = f"{10**y:.2g}" if panel.log_y else f"{y:.3g}"
        out.append(f'<text x="{left - 4}" y="{py(y) + 4:.1f}" text-anchor="end">{label}</text>')
    out.append(
        f'<text x="{left}" y="{height - 8}">{x0:g}</text>'
        f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end">epoch {x1:g}</text>'
    )
    for j, (name, line) in enumerate(panel.lines.items()):
        colour = _COLOURS[j % len(_COLOURS)]
        points = " ".join(f"{px(x):.1f},{py(scale(v)):.1f}" for x, v in zip(panel.x, line, strict=False) if usable(v))
        if points:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        if len(panel.lines) > 1:  # the legend sits under the chart, between the x labels: no curve is hidden
            out.append(
                f'<text x="{left + plot_w * (j + 1) / (len(panel.lines) + 1):.0f}" y="{height - 8}" '
                f'text-anchor="middle" fill="{colour}">{html.escape(name)}</text>'
            )
    return "".join(out)
