"""The charts a study is reviewed with (plotly figures): the dashboard keeps them with the study, the HTML
report embeds them. Every figure is built from the study's trials alone (their user attrs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from lrsearch.schema import REPEAT_OF
from lrsearch.search.repeats import best_per_group, group_of

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["accuracy_vs_lr", "learning_curves", "lr_curves", "peak_lr"]

# Legends under the plot: beside it they take half of a narrow chart's width.
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 480,
    "margin": {"l": 60, "r": 60, "t": 60, "b": 40},
    "legend": {"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0},
}


def peak_lr(trial: FrozenTrial) -> float | None:
    """The trial's learning rate: the sampled ``lr``, else (a fixed rate, an arm) the highest its schedule
    reached, which is the base rate for every schedule but the cyclic ones."""
    if "lr" in trial.params:
        return float(trial.params["lr"])
    history = [v for v in trial.user_attrs.get("lr_history", []) if v is not None and math.isfinite(v)]
    return max(history) if history else None


def _best(trials: Sequence[FrozenTrial], compare: str, maximize: bool) -> dict[object, FrozenTrial]:
    return dict(sorted(best_per_group(trials, compare, maximize=maximize).items(), key=lambda kv: str(kv[0])))


def lr_curves(
    trials: Sequence[FrozenTrial], compare: str, *, metric: str = "accuracy", maximize: bool = True
) -> go.Figure:
    """The learning rate per epoch of the best trial of each compared group, overlaid."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for group, trial in _best(trials, compare, maximize).items():
        lrs = trial.user_attrs.get("lr_history", [])
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(lrs) + 1)),
                y=lrs,
                mode="lines",
                line_shape="hv",
                name=f"{group} (trial {trial.number})",
            )
        )
    fig.update_layout(
        title=f"Learning rate per epoch: the best trial of each {compare}",
        xaxis_title="epoch",
        yaxis_title="learning rate",
        **_LAYOUT,
    )
    fig.update_yaxes(type="log")
    return fig


def learning_curves(
    trials: Sequence[FrozenTrial], compare: str, *, metric: str = "accuracy", maximize: bool = True
) -> go.Figure:
    """The validation metric (solid) and training loss (dotted, right axis) per epoch of the best trial of
    each compared group."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    for i, (group, trial) in enumerate(_best(trials, compare, maximize).items()):
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        values = [trial.intermediate_values[k] for k in sorted(trial.intermediate_values)]
        loss = trial.user_attrs.get("train_loss_history", [])
        fig.add_trace(
            go.Scatter(
                x=sorted(trial.intermediate_values),
                y=values,
                mode="lines",
                line_color=colour,
                name=f"{group}: validation {metric}",
                legendgroup=str(group),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(loss) + 1)),
                y=loss,
                mode="lines",
                yaxis="y2",
                line={"color": colour, "dash": "dot"},
                name=f"{group}: training loss",
                legendgroup=str(group),
            )
        )
    fig.update_layout(
        title=f"Learning curves: the best trial of each {compare}",
        xaxis_title="epoch",
        yaxis={"title": f"validation {metric}"},
        yaxis2={"title": "training loss", "overlaying": "y", "side": "right"},
        **_LAYOUT,
    )
    return fig


def accuracy_vs_lr(
    trials: Sequence[FrozenTrial], compare: str, *, metric: str = "accuracy", maximize: bool = True
) -> go.Figure:
    """Every finished search trial's validation metric against its learning rate (log axis), coloured by
    compared group; pruned trials hollow (their last reported value), diverged ones as crosses at the worst
    end (0 where higher is better, the highest value shown where lower is)."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    marks = {"complete": "circle", "pruned": "circle-open", "diverged": "x"}
    groups: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    for trial in trials:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED) or REPEAT_OF in trial.user_attrs:
            continue
        lr = peak_lr(trial)
        if lr is None or lr <= 0:
            continue
        kind = "diverged" if trial.user_attrs.get("diverged") else trial.state.name.lower()
        last = trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None
        value = None if kind == "diverged" else trial.value if trial.value is not None else last
        if value is None and kind != "diverged":
            continue
        groups.setdefault((str(group_of(trial, compare)), kind), []).append((lr, value, trial.number))  # type: ignore[arg-type]
    shown = [v for points in groups.values() for _, v, _ in points if v is not None and math.isfinite(v)]
    worst = 0.0 if maximize else max(shown, default=1.0)
    groups = {key: [(lr, worst if v is None else v, n) for lr, v, n in points] for key, points in groups.items()}
    colours = {g: qualitative.Plotly[i % len(qualitative.Plotly)] for i, g in enumerate(sorted({g for g, _ in groups}))}
    for (group, kind), points in sorted(groups.items()):
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                customdata=[p[2] for p in points],
                mode="markers",
                name=f"{group} ({kind})",
                marker={"symbol": marks[kind], "size": 9, "color": colours[group]},
                hovertemplate=f"trial %{{customdata}}<br>lr %{{x:.3g}}<br>{metric} %{{y:.4f}}",
            )
        )
    fig.update_layout(
        title=f"Validation {metric} vs learning rate, by {compare}",
        xaxis_title="learning rate",
        yaxis_title=f"validation {metric}",
        **_LAYOUT,
    )
    fig.update_xaxes(type="log")
    return fig
