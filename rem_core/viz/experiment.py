"""The active-learning experiment's results: AP per row beside the paper's, and recall curves."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.stats import spearmanr

from rem_core.analysis import RecallCurve
from rem_core.errors import InputError
from rem_core.viz.theme import chart_layout

__all__ = ["GROUP_COLORS", "experiment_ap_figure", "mean_recall_curve"]

#: A colour per kind of row.
GROUP_COLORS = {
    "reference": "#8c96a8",
    "oracle": "#b388ff",
    "baseline": "#4c9be8",
    "ours": "#ff9f1c",
    "budget": "#3ddc97",
}


def experiment_ap_figure(table: pd.DataFrame, metric: str = "ap_large", *, height: int = 380):
    """AP of each row (mean over seeds), coloured by kind, with the paper's value as a
    marker where it is known.

    Whiskers show the 95% interval when ``table`` has ``<metric>_low`` and
    ``<metric>_high`` (``rem_core.experiment.with_intervals``), else one standard
    deviation over seeds.

    Args:
        table: ``rem_core.experiment.results_table`` output, with or without intervals.
        metric: ``ap_large``, ``ap_regular`` or ``ap_all``.
        height: figure height in pixels.
    """
    fig = go.Figure()
    intervals = {f"{metric}_low", f"{metric}_high"} <= set(table.columns)
    for group, color in GROUP_COLORS.items():
        rows = table[table["group"] == group]
        if rows.empty:
            continue
        mean = rows[metric]
        if intervals:
            above = (rows[f"{metric}_high"] - mean).fillna(0.0)
            below = (mean - rows[f"{metric}_low"]).fillna(0.0)
            spread = (
                rows[f"{metric}_low"].map(_number) + " to " + rows[f"{metric}_high"].map(_number)
            )
            what = "95% interval %{customdata[1]}"
        else:
            above = below = rows[f"{metric}_std"].fillna(0.0)
            spread = above.map(_number)
            what = "± %{customdata[1]}"
        fig.add_trace(
            go.Bar(
                x=rows["label"],
                y=mean,
                error_y=dict(
                    type="data", symmetric=False, array=above, arrayminus=below, visible=True,
                    color="#d0d4dc",
                ),
                name=group,
                marker_color=color,
                customdata=np.c_[rows["seeds"], spread, rows["human_labels"]],
                hovertemplate=(
                    f"%{{x}}<br>%{{y:.3f}}, {what} over %{{customdata[0]}} seeds"
                    "<br>human labels %{customdata[2]}<extra></extra>"
                ),
            )
        )  # fmt: skip
    if metric == "ap_large" and "paper_ap_large" in table:
        known = table[table["paper_ap_large"].notna()]
        if not known.empty:
            fig.add_trace(
                go.Scatter(
                    x=known["label"],
                    y=known["paper_ap_large"],
                    mode="markers",
                    name="paper",
                    marker=dict(symbol="diamond", size=11, color="#ffffff"),
                    hovertemplate="%{x}: paper %{y:.3f}<extra></extra>",
                )
            )
    what = {"ap_large": "Large", "ap_regular": "Regular", "ap_all": "All"}[metric]
    fig = chart_layout(
        fig, title=f"{what} AP after retraining", x_title="", y_title=f"AP ({what})",
        height=height,
    )  # fmt: skip
    fig.update_layout(barmode="group", bargap=0.25)
    fig.update_xaxes(categoryorder="array", categoryarray=table["label"].tolist())
    return fig


def _number(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"


def mean_recall_curve(by_seed: Mapping[int, pd.DataFrame]) -> RecallCurve:
    """One recall-by-rareness curve from the same bins of several seeds: pooled counts."""
    frames = list(by_seed.values())
    if not frames:
        raise InputError("by_seed: no curves")
    bins = frames[0][["lower", "upper"]].copy()
    bins["n_gt"] = sum(f["n_gt"].to_numpy() for f in frames)
    bins["n_detected"] = sum(f["n_detected"].to_numpy() for f in frames)
    with np.errstate(invalid="ignore", divide="ignore"):
        bins["recall"] = bins["n_detected"] / bins["n_gt"].where(bins["n_gt"] > 0)
    valid = bins["n_gt"] > 0
    rho = float("nan")
    if valid.sum() > 2 and bins.loc[valid, "recall"].nunique() > 1:
        rho = float(spearmanr(bins.loc[valid, "upper"], bins.loc[valid, "recall"]).statistic)
    width = float(bins["upper"].iloc[0] - bins["lower"].iloc[0]) if len(bins) else 0.0
    return RecallCurve(bins=bins, spearman=rho, bin_width=width)
