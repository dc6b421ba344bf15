"""Figures of rareness: log-probability histograms (paper Fig. 6) and recall by rareness
(Fig. 2). Tables of ``rem_core.analysis.recall`` in, plotly figures out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rem_core.analysis import RecallCurve, ood_aurocs
from rem_core.errors import InputError
from rem_core.viz.theme import OTHER_COLOR, SET_COLORS, chart_layout

__all__ = ["HISTOGRAM_GROUPS", "log_prob_histogram", "recall_figure"]

GroupBy = Literal["size", "split", "set"]

#: The groups each histogram compares, in drawing order: Fig. 6's three panels.
HISTOGRAM_GROUPS: dict[str, tuple[str, ...]] = {
    "size": ("regular", "large"),
    "split": ("source", "validation"),
    "set": ("validation", "large", "other region", "pedestrian"),
}


def _group_values(groups: pd.DataFrame, by: GroupBy) -> dict[str, np.ndarray]:
    if by == "size":
        rows = groups[groups["class"] == "vehicle"]
        key = rows["size"]
    elif by == "split":
        rows = groups[groups["class"] == "vehicle"]
        key = rows["split"]
    else:
        rows, key = groups, groups["set"]
    return {
        name: rows.loc[(key == name).to_numpy(), "log_prob"].to_numpy(np.float64)
        for name in HISTOGRAM_GROUPS[by]
    }


def log_prob_histogram(
    groups: pd.DataFrame, by: GroupBy = "set", *, bins: int = 60, height: int = 360
) -> go.Figure:
    """Overlaid density histograms of ground-truth log-probabilities (paper Fig. 6).

    Args:
        groups: the table of ``rem_core.analysis.log_prob_groups`` (one row per box).
        by: ``"size"`` (Regular vs Large vehicles, every split), ``"split"`` (vehicles of the
            source pool vs validation) or ``"set"`` (validation's regular vehicles against the
            OOD sets: Large, the other region, pedestrians; the legend gives each set's AUROC
            of ``-log p`` against validation).
        bins: number of common bins over the finite values.
        height: figure height in pixels.

    Returns:
        One histogram trace per non-empty group, normalised to a probability density so
        groups of very different sizes compare; x is ``log p`` (rarer to the left).
    """
    if by not in HISTOGRAM_GROUPS:
        raise InputError(f"by: must be one of {', '.join(HISTOGRAM_GROUPS)}, got {by!r}")
    for column in ("class", "size", "split", "set", "log_prob"):
        if column not in groups.columns:
            raise InputError(f"groups: missing column {column!r} (see log_prob_groups)")
    values = {k: v[np.isfinite(v)] for k, v in _group_values(groups, by).items()}
    finite = [v for v in values.values() if len(v)]
    fig = go.Figure()
    if finite:
        lo = float(min(v.min() for v in finite))
        hi = float(max(v.max() for v in finite))
        size = (hi - lo) / bins if hi > lo else 1.0
        aurocs = ood_aurocs(groups) if by == "set" else {}
        for name, v in values.items():
            if not len(v):
                continue
            label = f"{name} ({len(v):,})"
            if name in aurocs and np.isfinite(aurocs[name]):
                label += f", AUROC {aurocs[name]:.3f}"
            fig.add_trace(
                go.Histogram(
                    x=v,
                    name=label,
                    histnorm="probability density",
                    xbins=dict(start=lo, end=hi + size, size=size),
                    marker_color=SET_COLORS.get(name, OTHER_COLOR),
                    opacity=0.6,
                    hovertemplate="log p %{x:.1f}<br>density %{y:.3f}<extra>" + name + "</extra>",
                )
            )
    fig.update_layout(barmode="overlay")
    titles = {"size": "by size", "split": "by split", "set": "out-of-distribution sets"}
    return chart_layout(
        fig, title=f"Log-probability, {titles[by]}", x_title="log p", y_title="density",
        height=height,
    )  # fmt: skip


def recall_figure(curves: Mapping[str, RecallCurve], *, height: int = 360) -> go.Figure:
    """Recall per rareness-percentile bin, one line per detector (paper Fig. 2).

    Args:
        curves: ``recall_by_rareness`` results by name; the legend gives each one's rank
            correlation between rareness and recall.
        height: figure height in pixels.

    Returns:
        x: a bin's upper rareness percentile (the rarest objects on the right); y: recall.
    """
    fig = go.Figure()
    palette = ("#4c9be8", "#ff9f1c", "#3ddc97", "#b388ff", "#ff4b4b")
    for i, (name, curve) in enumerate(curves.items()):
        bins = curve.bins[curve.bins["n_gt"] > 0]
        rho = "n/a" if not np.isfinite(curve.spearman) else f"{curve.spearman:+.2f}"
        fig.add_trace(
            go.Scatter(
                x=bins["upper"],
                y=bins["recall"],
                customdata=np.c_[bins["lower"], bins["n_gt"]],
                mode="lines+markers",
                name=f"{name} (Spearman {rho})",
                line=dict(color=palette[i % len(palette)]),
                hovertemplate=(
                    "percentile %{customdata[0]:.0f}-%{x:.0f}<br>recall %{y:.3f}"
                    "<br>%{customdata[1]} objects<extra></extra>"
                ),
            )
        )
    fig = chart_layout(
        fig, title="Recall by rareness", x_title="rareness percentile (rarest right)",
        y_title="recall", height=height,
    )  # fmt: skip
    fig.update_yaxes(range=[0, 1.02])
    return fig
